package ai.k2j.engine;

import ai.k2j.engine.TestModels.Spec;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.GenerationConfig;
import ai.k2j.loaders.ModelConfig;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LanguageModelTest {

    private final ModelConfig config = Spec.gqa().config();
    private LanguageModel lm;

    @BeforeEach
    void load() {
        Arena arena = Arena.ofShared();
        lm = TestModels.languageModel(config, TestModels.weights(config, DType.F32, 77, arena), 300, arena);
    }

    @AfterEach
    void close() {
        lm.close();
    }

    /** Greedy decoding through the KV cache equals re-running the whole prefix and taking the argmax. */
    @Test
    void greedyGenerationEqualsArgmaxOfFullRecomputation() {
        int[] prompt = TestModels.randomTokens(270, config.vocabSize(), 5); // > one 256-token prefill chunk
        GenerationResult r = lm.generate(new GenerationRequest(prompt, 12, SamplingParams.greedy(), List.of(), true),
                null);
        assertEquals(12, r.generatedTokens());
        assertEquals(FinishReason.LENGTH, r.finishReason());
        assertEquals(270, r.promptTokens());
        int[] ids = prompt;
        for (int i = 0; i < 12; i++) {
            float[][] logits = lm.logits(ids);
            int next = Sampler.argmax(logits[ids.length - 1], 0, config.vocabSize());
            assertEquals(next, r.ids()[i], "token " + i);
            ids = Qwen2ModelTest.concat(ids, new int[] {next});
        }
        assertTrue(r.prefillNanos() > 0 && r.decodeNanos() > 0);
    }

    @Test
    void logitsCoverEveryPositionAndMatchTheNaiveModel() {
        Arena arena = Arena.ofShared();
        var weights = TestModels.weights(config, DType.F32, 77, arena);
        int[] ids = TestModels.randomTokens(40, config.vocabSize(), 9); // more than the 16-row logit chunk
        float[][] ours = lm.logits(ids);
        double[][] naive = NaiveQwen2.logits(config, weights, ids);
        assertEquals(40, ours.length);
        for (int t = 0; t < ids.length; t++) {
            for (int v = 0; v < config.vocabSize(); v++) {
                assertEquals(naive[t][v], ours[t][v], 1e-4 * Math.max(1, Math.abs(naive[t][v])), "pos " + t);
            }
        }
        arena.close();
    }

    @Test
    void promptLongerThanTheContextIsRejectedWithTheNumbers() {
        int[] prompt = new int[301];
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> lm.generate(GenerationRequest.of(prompt, 5, SamplingParams.greedy()), null));
        assertTrue(e.getMessage().contains("301") && e.getMessage().contains("300"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> lm.logits(prompt));
        IllegalArgumentException badId = assertThrows(IllegalArgumentException.class,
                () -> lm.generate(GenerationRequest.of(new int[] {1, config.vocabSize()}, 5, null), null));
        assertTrue(badId.getMessage().contains(String.valueOf(config.vocabSize())), badId.getMessage());
    }

    @Test
    void generationStopsWhenTheContextIsFull() {
        int[] prompt = TestModels.randomTokens(296, config.vocabSize(), 1);
        GenerationResult r = lm.generate(new GenerationRequest(prompt, 100, SamplingParams.greedy(), List.of(), true),
                null);
        assertEquals(4, r.generatedTokens(), "prompt + generated = maxContext");
        assertEquals(FinishReason.LENGTH, r.finishReason());
        GenerationResult full = lm.generate(
                new GenerationRequest(new int[300], 10, SamplingParams.greedy(), List.of(), true), null);
        assertEquals(0, full.generatedTokens());
        assertEquals(FinishReason.LENGTH, full.finishReason());
        GenerationResult none = lm.generate(GenerationRequest.of(new int[] {1, 2}, 0, null), null);
        assertEquals(0, none.generatedTokens());
    }

    @Test
    void endOfSequenceFromGenerationConfigStopsUnlessIgnored() {
        int[] prompt = TestModels.randomTokens(6, config.vocabSize(), 4);
        int[] free = lm.generate(new GenerationRequest(prompt, 10, SamplingParams.greedy(), List.of(), true), null)
                .ids();
        int eos = free[4];
        int at = 0;
        while (free[at] != eos) {
            at++;
        }
        Arena arena = Arena.ofShared();
        var weights = TestModels.weights(config, DType.F32, 77, arena);
        GenerationConfig generation = new GenerationConfig(new int[] {eos}, -1, -1, false, 1, 1, 0, 1);
        try (LanguageModel withEos = LanguageModel.create(config, generation,
                name -> java.util.Optional.ofNullable(weights.get(name)), "eos-model",
                new ai.k2j.kernels.ReferenceBackend(), null, 64, null, arena::close)) {
            GenerationResult stopped = withEos.generate(GenerationRequest.of(prompt, 10, SamplingParams.greedy()),
                    null);
            assertEquals(FinishReason.STOP, stopped.finishReason());
            assertArrayEquals(Arrays.copyOf(free, at + 1), stopped.ids(), "the eos id ends (and is kept in) ids");
            GenerationResult ignored = withEos.generate(
                    new GenerationRequest(prompt, 10, SamplingParams.greedy(), List.of(), true), null);
            assertArrayEquals(free, ignored.ids());
            assertEquals(FinishReason.LENGTH, ignored.finishReason());
        }
    }

    @Test
    void listenerSeesEveryTokenAndCanCancel() {
        int[] prompt = TestModels.randomTokens(10, config.vocabSize(), 2);
        List<Integer> seen = new ArrayList<>();
        GenerationResult r = lm.generate(new GenerationRequest(prompt, 50, SamplingParams.greedy(), List.of(), true),
                (id, text) -> {
                    seen.add(id);
                    assertEquals("", text, "no tokenizer, no text");
                    return seen.size() < 3;
                });
        assertEquals(FinishReason.CANCELLED, r.finishReason());
        assertEquals(3, r.generatedTokens());
        assertEquals(seen, Arrays.stream(r.ids()).boxed().toList());
    }

    @Test
    void listenerCannotReenterTheModel() {
        int[] prompt = {1, 2, 3};
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> lm.generate(
                GenerationRequest.of(prompt, 5, null), (id, text) -> lm.logits(prompt) == null));
        assertTrue(e.getMessage().contains("TokenListener"), e.getMessage());
        assertThrows(IllegalStateException.class, () -> lm.generate(GenerationRequest.of(prompt, 5, null),
                (id, text) -> {
                    lm.close();
                    return true;
                }));
        // the model is still usable afterwards
        assertEquals(5, lm.generate(new GenerationRequest(prompt, 5, null, List.of(), true), null).generatedTokens());
    }

    @Test
    void seededSamplingIsReproducible() {
        int[] prompt = TestModels.randomTokens(8, config.vocabSize(), 3);
        SamplingParams p = new SamplingParams(4.0, 0.95, 30, 0.0, 2024);
        int[] a = lm.generate(new GenerationRequest(prompt, 30, p, List.of(), true), null).ids();
        int[] b = lm.generate(new GenerationRequest(prompt, 30, p, List.of(), true), null).ids();
        assertArrayEquals(a, b);
        int[] c = lm.generate(new GenerationRequest(prompt, 30, new SamplingParams(4.0, 0.95, 30, 0.0, 2025),
                List.of(), true), null).ids();
        assertNotEquals(Arrays.toString(a), Arrays.toString(c));
    }

    @Test
    void stopStringsWithoutATokenizerAreRejected() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> lm.generate(
                new GenerationRequest(new int[] {1}, 5, null, List.of("x"), false), null));
        assertTrue(e.getMessage().contains("tokenizer"), e.getMessage());
        assertThrows(IllegalStateException.class, lm::tokenizer);
    }

    @Test
    void closedModelRefusesWork() {
        lm.close();
        assertThrows(IllegalStateException.class, () -> lm.logits(new int[] {1}));
        lm.close(); // idempotent
    }

    @Test
    void defaultContextIsCappedAndBackendsResolve() {
        assertEquals(8192, LanguageModel.resolveMaxContext(
                new Spec("big", 32, 48, 1, 4, 2, 8, 64, true, DType.F32, ai.k2j.loaders.RopeScaling.NONE, 1e4, 32768)
                        .config(), 0));
        assertEquals(512, LanguageModel.resolveMaxContext(config, 0));
        assertEquals(100, LanguageModel.resolveMaxContext(config, 100));
        try (var b = LanguageModel.createBackend("reference", 0)) {
            assertEquals("reference", b.name());
        }
        try (var b = LanguageModel.createBackend("cpu", 1)) {
            assertTrue(b.name().equals("cpu") || b.name().equals("reference"), b.name());
        }
        assertThrows(IllegalArgumentException.class, () -> LanguageModel.createBackend("tpu", 0));
    }
}
