package ai.k2j.engine;

import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.DoubleAdder;
import java.util.concurrent.atomic.LongAdder;

/**
 * A cumulative latency histogram in seconds with fixed bucket bounds (Prometheus' layout: counts of observations
 * ≤ each bound, plus the sum and count). Thread-safe and allocation-free to record.
 */
public final class Histogram {

    /** Bounds from 1 ms to 60 s, roughly ×2.5 per bucket. */
    public static final double[] LATENCY_BOUNDS = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
            5, 10, 30, 60};

    private final double[] bounds;
    private final AtomicLongArray counts; // per bucket (not cumulative); the last is +Inf
    private final DoubleAdder sum = new DoubleAdder();
    private final LongAdder count = new LongAdder();

    public Histogram(double[] bounds) {
        this.bounds = bounds.clone();
        for (int i = 1; i < bounds.length; i++) {
            if (!(bounds[i] > bounds[i - 1])) {
                throw new IllegalArgumentException("bucket bounds must increase");
            }
        }
        this.counts = new AtomicLongArray(bounds.length + 1);
    }

    public void observe(double seconds) {
        int i = 0;
        while (i < bounds.length && seconds > bounds[i]) {
            i++;
        }
        counts.incrementAndGet(i);
        sum.add(seconds);
        count.increment();
    }

    public void observeNanos(long nanos) {
        observe(nanos * 1e-9);
    }

    public double[] bounds() {
        return bounds.clone();
    }

    /** Cumulative counts: element i counts observations ≤ bounds[i]; the last element counts all (+Inf). */
    public long[] cumulativeCounts() {
        long[] out = new long[counts.length()];
        long running = 0;
        for (int i = 0; i < out.length; i++) {
            running += counts.get(i);
            out[i] = running;
        }
        return out;
    }

    public double sum() {
        return sum.sum();
    }

    public long count() {
        return count.sum();
    }
}
