package ai.k2j.engine;

import ai.k2j.testing.TestCheckpoints;
import ai.k2j.kernels.Backend;

import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A continuous-batching step — schedule, build the batch, forward, sample (and draft + verify) for 4 sequences —
 * allocates nothing once warm: bytes allocated by the stepping thread over 50 steps must be zero.
 * (Text, stop strings and observer calls, outside the runner, build each token's String.)
 */
class BatchAllocationTest {

    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    @TempDir
    Path tmp;

    @ParameterizedTest(name = "{0} temperature {1} speculative {2}")
    @CsvSource({"reference, 0, false", "reference, 0.9, false", "reference, 0, true", "reference, 0.9, true",
            "cpu, 0, false", "cpu, 0.9, true"})
    void batchedStepsAllocateNothing(String backend, double temperature, boolean speculative) {
        if (!TestCheckpoints.backends().contains(backend)) {
            return; // the CPU backend is not in this build
        }
        Path dir = TestCheckpoints.write(tmp.resolve("m"), 32, 2, 512, 4, false);
        EngineOptions o = EngineOptions.defaults().withBackend(backend).withThreads(2).withMaxContext(2048)
                .withMaxBatch(4).withDraftTokens(3);
        try (Backend b = LanguageModel.createBackend(backend, 2);
             LoadedModel target = LoadedModel.load(dir, b, null);
             LoadedModel draft = speculative ? LoadedModel.load(dir, b, null) : null) {
            ModelContext.Limits limits = BatchEngine.limits(target.config(), o, speculative);
            ModelContext targetContext = target.newContext(limits);
            ModelContext draftContext = draft == null ? null : draft.newContext(new ModelContext.Limits(2048,
                    limits.maxBatchTokens(), 4, 4, limits.kvBlocks()));
            int k = speculative ? 3 : 0;
            Scheduler scheduler = new Scheduler(targetContext, k);
            ModelRunner runner = new ModelRunner(targetContext, draftContext, k);
            Scheduler.Admitter admitter = r -> {
                SeqState[] s = new SeqState[r.n()];
                for (int c = 0; c < s.length; c++) {
                    s[c] = new SeqState(r, c, k, new TokenEmitter(null, List.of(), new int[0], r.budget));
                    s[c].slot = runner.acquireSlot(r.request.samplingOf(c));
                }
                r.choices = s;
                return s;
            };
            Consumer<SeqState> onPreempt = s -> {
                throw new AssertionError("no preemption expected");
            };
            for (int i = 0; i < 4; i++) {
                GenerationRequest g = new GenerationRequest(TestCheckpoints.tokens(10 + i, 512, i), 2000,
                        new SamplingParams(temperature, 0.9, 0, 0, i), List.of(), true);
                scheduler.waiting.add(new RequestState(i + 1, new EngineRequest(g, 1, speculative),
                        GenerationObserver.NONE, new RequestHandle(() -> { }), 2000, k));
            }
            int[] generated = new int[1];
            Runnable step = () -> {
                List<SeqState> plan = scheduler.schedule(admitter, onPreempt);
                runner.run(plan);
                for (int i = 0; i < plan.size(); i++) {
                    SeqState s = plan.get(i);
                    for (int e = 0; e < s.emittedCount; e++) {
                        s.tokens[s.length++] = s.emitted[e];
                        generated[0]++;
                    }
                }
            };
            // warm-up: admission, lazy buffers, JIT (speculation emits up to 4 tokens a step: fewer steps fit)
            for (int i = 0; i < (speculative ? 300 : 1200); i++) {
                step.run();
            }
            assertEquals(4, scheduler.running.size());
            // Three windows of 50 steps; the quietest must allocate nothing. A real per-step allocation shows in
            // every window; a one-off (the JIT deoptimizing a method re-materializes scalar-replaced vectors)
            // shows in one.
            long tid = Thread.currentThread().threadId();
            long before = THREADS.getThreadAllocatedBytes(tid);
            long emptyReading = THREADS.getThreadAllocatedBytes(tid) - before;
            int tokensBefore = generated[0];
            long quietest = Long.MAX_VALUE;
            for (int window = 0; window < 3; window++) {
                before = THREADS.getThreadAllocatedBytes(tid);
                for (int i = 0; i < 50; i++) {
                    step.run();
                }
                quietest = Math.min(quietest, THREADS.getThreadAllocatedBytes(tid) - before - emptyReading);
            }
            assertEquals(0, quietest, "bytes allocated by 50 batched steps (" + backend + ", T=" + temperature
                    + ", speculative " + speculative + ")");
            assertTrue(generated[0] - tokensBefore >= 600, "4 sequences decoded together");
            for (SeqState s : scheduler.running) {
                s.releaseKv();
            }
        }
    }
}
