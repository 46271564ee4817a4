package ai.k2j.engine;

import ai.k2j.loaders.Checkpoint;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link NoAllocationTest}'s check for the Llama, Qwen3 and Qwen3-MoE definitions (their golden models): a greedy
 * decode step allocates nothing. For MoE that covers the host-side routing (router logits download, top-k, grouping
 * per expert), which works in buffers sized once per context.
 */
class NewArchitecturesNoAllocationTest {

    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    static Stream<String[]> cases() {
        List<String[]> out = new ArrayList<>();
        for (String fixture : List.of("qwen3_moe_f32", "qwen3_tied_bf16", "llama3_untied_f32")) {
            for (String backend : TestModels.backends()) {
                out.add(new String[] {fixture, backend});
            }
        }
        return out.stream();
    }

    @ParameterizedTest(name = "{0} on {1}")
    @MethodSource("cases")
    void greedyDecodeStepsAllocateNothing(String fixture, String backend) {
        assertTrue(THREADS.isThreadAllocatedMemorySupported() && THREADS.isThreadAllocatedMemoryEnabled(),
                "this JVM cannot measure per-thread allocation");
        try (Checkpoint ckpt = Checkpoint.open(GoldenTest.goldenDir().resolve(fixture))) {
            int vocab = ckpt.config().vocabSize();
            ModelContext model = ModelContext.load(ckpt.config(), ckpt::find, fixture,
                    LanguageModel.createBackend(backend, 2), ModelContext.Limits.singleSequence(1024), null);
            Sampler sampler = new Sampler(vocab);
            sampler.reset(SamplingParams.greedy());
            DecodeLoop loop = new DecodeLoop(model, sampler);
            try (Sequence seq = model.newSequence()) {
                int token = loop.prefill(seq, TestModels.randomTokens(20, vocab, 1));
                for (int i = 0; i < 600; i++) { // warm-up: let the JIT compile the step
                    token = loop.step(token);
                }
                long tid = Thread.currentThread().threadId();
                StringBuilder windows = new StringBuilder();
                long best = Long.MAX_VALUE;
                for (int window = 0; window < 5 && best != 0; window++) {
                    long before = THREADS.getThreadAllocatedBytes(tid);
                    for (int i = 0; i < 50; i++) {
                        token = loop.step(token);
                    }
                    long bytes = THREADS.getThreadAllocatedBytes(tid) - before;
                    windows.append(bytes).append(' ');
                    best = Math.min(best, bytes);
                }
                assertEquals(0, best, "bytes allocated over 50 decode steps of " + fixture + " on " + backend
                        + " (per window: " + windows.toString().trim() + ")");
                assertTrue(token >= 0 && token < vocab);
            }
            model.backend().close();
        }
    }

    /**
     * A Qwen3-MoE decode step streams the attention matrices, each MoE layer's router and its 2 chosen experts (not
     * all 8), the dense layer's MLP and the lm_head: what k2j bench divides by to report bandwidth.
     */
    @org.junit.jupiter.api.Test
    void moeWeightBytesPerTokenCountOnlyTheChosenExperts() {
        try (Checkpoint ckpt = Checkpoint.open(GoldenTest.goldenDir().resolve("qwen3_moe_f32"))) {
            ModelContext model = ModelContext.load(ckpt.config(), ckpt::find, "qwen3_moe_f32",
                    LanguageModel.createBackend("reference", 1), ModelContext.Limits.singleSequence(64), null);
            long attention = 3 * (64L * (64 + 32 + 32) + 64 * 64);
            long expert = 3L * 64 * 48;
            long moeLayers = 2 * (8 * 64 + 2 * expert);
            long denseLayer = 3L * 64 * 128;
            long lmHead = 512L * 64;
            assertEquals(4 * (attention + moeLayers + denseLayer + lmHead), model.weightBytesPerToken());
            model.backend().close();
        }
    }
}
