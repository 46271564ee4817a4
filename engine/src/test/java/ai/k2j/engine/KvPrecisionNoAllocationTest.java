package ai.k2j.engine;

import ai.k2j.engine.TestModels.Spec;
import ai.k2j.kernels.KvPrecision;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.Arena;
import java.lang.management.ManagementFactory;
import java.util.Map;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Greedy decode steps over a BF16 or FP8 KV cache on the CPU backend allocate nothing on the calling thread (which
 * runs its share of every op, attention's widening of the cache elements included), as NoAllocationTest checks for
 * the float32 cache: after a JIT warm-up, one of up to five windows of 100 steps must allocate 0 bytes.
 */
class KvPrecisionNoAllocationTest {

    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    @ParameterizedTest(name = "{0}")
    @EnumSource(value = KvPrecision.class, names = {"BF16", "FP8_E4M3"})
    void decodeStepsAllocateNothing(KvPrecision precision) {
        assertTrue(THREADS.isThreadAllocatedMemorySupported() && THREADS.isThreadAllocatedMemoryEnabled());
        ModelConfig c = Spec.gqa().withVocab(1000).config();
        try (Arena arena = Arena.ofShared()) {
            Map<String, Tensor> w = TestModels.weights(c, DType.BF16, 3, arena);
            ModelContext model = new ModelContext(ai.k2j.engine.model.Architectures.load(c,
                    name -> Optional.ofNullable(w.get(name)), "test-model", LanguageModel.createBackend("cpu", 2), null),
                    ModelContext.Limits.singleSequence(2048), precision);
            assertEquals(precision, model.kvPrecision());
            Sampler sampler = new Sampler(c.vocabSize());
            sampler.reset(SamplingParams.greedy());
            DecodeLoop loop = new DecodeLoop(model, sampler);
            try (Sequence seq = model.newSequence()) {
                int token = loop.prefill(seq, TestModels.randomTokens(20, c.vocabSize(), 1));
                for (int i = 0; i < 1500; i++) {
                    token = loop.step(token);
                }
                long tid = Thread.currentThread().threadId();
                long overhead = Long.MAX_VALUE;
                for (int i = 0; i < 10; i++) {
                    long a = THREADS.getThreadAllocatedBytes(tid);
                    overhead = Math.min(overhead, THREADS.getThreadAllocatedBytes(tid) - a);
                }
                StringBuilder windows = new StringBuilder();
                long best = Long.MAX_VALUE;
                for (int window = 0; window < 5 && best != 0; window++) {
                    long before = THREADS.getThreadAllocatedBytes(tid);
                    for (int i = 0; i < 100; i++) {
                        token = loop.step(token);
                    }
                    long bytes = THREADS.getThreadAllocatedBytes(tid) - before - overhead;
                    windows.append(bytes).append(' ');
                    best = Math.min(best, bytes);
                }
                assertEquals(0, best, "bytes allocated over 100 decode steps with a " + precision + " cache (per window: "
                        + windows.toString().trim() + ")");
            }
            model.backend().close();
        }
    }
}
