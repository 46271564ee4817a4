package ai.k2j.engine;

import ai.k2j.engine.TestModels.Spec;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.Arena;
import java.lang.management.ManagementFactory;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The decode step (feed a token, run the model, sample) allocates nothing: bytes allocated by the generating
 * thread over a window of 100 steps, read from {@link com.sun.management.ThreadMXBean}, must be zero (in one of
 * up to five consecutive windows, so that a one-off JVM event cannot fail it while any per-step allocation does). Warm-up steps first
 * let the JIT compile the loop (interpreted code allocates nothing extra either, but compilation of the
 * measured code must not be attributed to it).
 */
class NoAllocationTest {

    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    static Stream<String> backends() {
        return TestModels.backends().stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void greedyDecodeStepsAllocateNothing(String backend) {
        assertZeroAllocationPerStep(SamplingParams.greedy(), backend);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void sampledDecodeStepsAllocateNothing(String backend) {
        assertZeroAllocationPerStep(new SamplingParams(0.9, 0.9, 40, 0.02, 7), backend);
        assertZeroAllocationPerStep(new SamplingParams(1.0, 0.8, 0, 0, 8), backend); // top-p over the whole vocabulary
    }

    private static void assertZeroAllocationPerStep(SamplingParams params, String backend) {
        assertTrue(THREADS.isThreadAllocatedMemorySupported() && THREADS.isThreadAllocatedMemoryEnabled(),
                "this JVM cannot measure per-thread allocation");
        ModelConfig c = Spec.gqa().withVocab(1000).config();
        try (Arena arena = Arena.ofShared()) {
            Map<String, Tensor> w = TestModels.weights(c, DType.BF16, 3, arena);
            ModelContext model = TestModels.model(c, w, ModelContext.Limits.singleSequence(2048), backend);
            Sampler sampler = new Sampler(c.vocabSize());
            sampler.reset(params);
            DecodeLoop loop = new DecodeLoop(model, sampler);
            try (Sequence seq = model.newSequence()) {
                int token = loop.prefill(seq, TestModels.randomTokens(20, c.vocabSize(), 1));
                for (int i = 0; i < 1500; i++) { // warm-up: let the JIT compile the step
                    token = loop.step(token);
                }
                long overhead = measureOverhead();
                long tid = Thread.currentThread().threadId();
                // Up to five windows of 100 steps; one must allocate nothing. A per-step allocation shows in every
                // window; a one-off JVM event (a rare tens-of-bytes blip seen on a busy machine when the caller
                // parks for its workers, or a JIT event) does not fail the test.
                StringBuilder windows = new StringBuilder();
                long best = Long.MAX_VALUE;
                for (int window = 0; window < 5 && best != 0; window++) {
                    long before = THREADS.getThreadAllocatedBytes(tid);
                    for (int i = 0; i < 100; i++) {
                        token = loop.step(token);
                    }
                    long after = THREADS.getThreadAllocatedBytes(tid);
                    long bytes = after - before - overhead;
                    windows.append(bytes).append(' ');
                    best = Math.min(best, bytes);
                }
                assertEquals(0, best, "bytes allocated over 100 decode steps on " + backend + " with " + params
                        + " (per window: " + windows.toString().trim() + ")");
                assertTrue(seq.length() >= 1620 && seq.length() <= 2020, "sequence length " + seq.length());
                assertTrue(token >= 0 && token < c.vocabSize());
            }
            model.backend().close();
        }
    }

    /** What two back-to-back readings of the counter cost by themselves. */
    private static long measureOverhead() {
        long tid = Thread.currentThread().threadId();
        long min = Long.MAX_VALUE;
        for (int i = 0; i < 10; i++) {
            long a = THREADS.getThreadAllocatedBytes(tid);
            long b = THREADS.getThreadAllocatedBytes(tid);
            min = Math.min(min, b - a);
        }
        return min;
    }
}
