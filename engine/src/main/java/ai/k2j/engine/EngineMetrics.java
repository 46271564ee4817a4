package ai.k2j.engine;

import java.util.concurrent.atomic.LongAdder;

/**
 * What a {@link BatchEngine} has done and is doing: counters since start, gauges refreshed every step, and
 * latency histograms. Thread-safe to read at any time (a server's /metrics reads it while the engine runs).
 */
public final class EngineMetrics {

    // counters
    final LongAdder requestsSubmitted = new LongAdder();
    final LongAdder requestsFinished = new LongAdder();
    final LongAdder requestsFailed = new LongAdder();
    final LongAdder choicesCancelled = new LongAdder();
    final LongAdder promptTokens = new LongAdder();
    final LongAdder generatedTokens = new LongAdder();
    final LongAdder steps = new LongAdder();
    final LongAdder stepTokens = new LongAdder();
    final LongAdder preemptions = new LongAdder();
    final LongAdder draftProposed = new LongAdder();
    final LongAdder draftAccepted = new LongAdder();

    // gauges, written by the step thread
    volatile int waitingRequests;
    volatile int runningSequences;
    volatile int kvBlocksFree;
    volatile int kvBlocksTotal;

    final Histogram timeToFirstToken = new Histogram(Histogram.LATENCY_BOUNDS);
    final Histogram interTokenLatency = new Histogram(Histogram.LATENCY_BOUNDS);
    final Histogram requestLatency = new Histogram(Histogram.LATENCY_BOUNDS);

    /** Generated tokens per second over the last {@link #RATE_WINDOW_SECONDS} seconds. */
    private final RateWindow tokenRate = new RateWindow(RATE_WINDOW_SECONDS);

    public static final int RATE_WINDOW_SECONDS = 10;

    EngineMetrics() {
    }

    void recordGenerated(int tokens, long nowNanos) {
        generatedTokens.add(tokens);
        tokenRate.add(tokens, nowNanos);
    }

    public long requestsSubmitted() {
        return requestsSubmitted.sum();
    }

    public long requestsFinished() {
        return requestsFinished.sum();
    }

    public long requestsFailed() {
        return requestsFailed.sum();
    }

    public long choicesCancelled() {
        return choicesCancelled.sum();
    }

    public long promptTokens() {
        return promptTokens.sum();
    }

    public long generatedTokens() {
        return generatedTokens.sum();
    }

    /** Forward steps run by the target model. */
    public long steps() {
        return steps.sum();
    }

    /** Tokens processed by target forward steps (prefill + decode + drafts verified). */
    public long stepTokens() {
        return stepTokens.sum();
    }

    /** Sequences evicted from the KV cache to make room (they resume by recomputing their KV). */
    public long preemptions() {
        return preemptions.sum();
    }

    public long draftTokensProposed() {
        return draftProposed.sum();
    }

    public long draftTokensAccepted() {
        return draftAccepted.sum();
    }

    /** Accepted / proposed draft tokens since start; NaN before any speculation. */
    public double acceptanceRate() {
        long p = draftProposed.sum();
        return p == 0 ? Double.NaN : (double) draftAccepted.sum() / p;
    }

    /** Requests submitted but not yet admitted to the batch (the queue depth). */
    public int waitingRequests() {
        return waitingRequests;
    }

    /** Sequences holding a batch slot (decoding, prefilling or preempted). */
    public int runningSequences() {
        return runningSequences;
    }

    public int kvBlocksFree() {
        return kvBlocksFree;
    }

    public int kvBlocksTotal() {
        return kvBlocksTotal;
    }

    public double tokensPerSecond() {
        return tokenRate.perSecond(System.nanoTime());
    }

    public Histogram timeToFirstToken() {
        return timeToFirstToken;
    }

    public Histogram interTokenLatency() {
        return interTokenLatency;
    }

    /** Submission to the last choice's end. */
    public Histogram requestLatency() {
        return requestLatency;
    }

    /** Counts per whole second over a sliding window (allocation-free ring of buckets). */
    static final class RateWindow {
        private final long[] second;
        private final long[] count;

        RateWindow(int seconds) {
            second = new long[seconds];
            count = new long[seconds];
            java.util.Arrays.fill(second, Long.MIN_VALUE);
        }

        synchronized void add(long n, long nowNanos) {
            long s = Math.floorDiv(nowNanos, 1_000_000_000L);
            int i = (int) Math.floorMod(s, second.length);
            if (second[i] != s) {
                second[i] = s;
                count[i] = 0;
            }
            count[i] += n;
        }

        /** Mean rate over the window's completed seconds plus the current partial one. */
        synchronized double perSecond(long nowNanos) {
            long s = Math.floorDiv(nowNanos, 1_000_000_000L);
            long total = 0;
            for (int i = 0; i < second.length; i++) {
                if (second[i] > s - second.length && second[i] <= s) {
                    total += count[i];
                }
            }
            double partial = Math.floorMod(nowNanos, 1_000_000_000L) * 1e-9;
            return total / (second.length - 1 + partial);
        }
    }
}
