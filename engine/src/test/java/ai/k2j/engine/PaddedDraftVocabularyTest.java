package ai.k2j.engine;

import ai.k2j.kernels.Backend;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.GenerationConfig;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.ModelFormatException;
import ai.k2j.loaders.RopeScaling;
import ai.k2j.loaders.Tensor;
import ai.k2j.testing.TestCheckpoints;
import ai.k2j.tokenizer.Tokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.locks.ReentrantLock;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A draft whose vocabulary is the target's less padding rows (Qwen2.5: 151,936 ids up to 7B, 152,064 from 14B,
 * one tokenizer), in miniature: a target of 160 ids and a draft of 152 (the target's weights with noise, its first
 * 152 embedding rows). Greedy speculation on both paths (the caller-thread decoder and the batching engine's runner)
 * reproduces plain decoding with drafts accepted; a prompt ending in ids the draft lacks (it reads them as id 0)
 * and sampled speculation run; DraftCompatibility accepts the real Qwen2.5 pair's sizes with its tokenizer and
 * refuses a draft larger than the target or smaller than the tokenizer.
 */
class PaddedDraftVocabularyTest {

    static final int TARGET_VOCAB = 160;
    static final int DRAFT_VOCAB = 152;

    static List<String> backends() {
        return SpecTestSupport.backends();
    }

    private static ModelConfig config(int vocab) {
        return new ModelConfig("Qwen2ForCausalLM", "qwen2", 32, 48, 2, 4, 2, 8, vocab, 512, 1e-6, 10000,
                RopeScaling.NONE, true, "float32", -1, new int[] {DRAFT_VOCAB - 1});
    }

    /** The target's weights with 5% noise, the embedding (tied: also the LM head) cut to the draft's ids. */
    private static Map<String, Tensor> draftWeights(Map<String, Tensor> target, Arena arena) {
        Map<String, Tensor> w = new HashMap<>(SpecTestSupport.noisyCopy(target, 0.05, 9, arena));
        Tensor embed = w.get("model.embed_tokens.weight");
        float[][] rows = TestModels.read(embed);
        int cols = rows[0].length;
        float[] cut = new float[DRAFT_VOCAB * cols];
        for (int r = 0; r < DRAFT_VOCAB; r++) {
            System.arraycopy(rows[r], 0, cut, r * cols, cols);
        }
        w.put("model.embed_tokens.weight", TestModels.tensor("model.embed_tokens.weight", embed.dtype(),
                new long[] {DRAFT_VOCAB, cols}, cut, arena));
        return w;
    }

    @ParameterizedTest
    @MethodSource("backends")
    void greedySpeculationWithAPaddedDraftEqualsPlainDecoding(String backend) {
        Arena arena = Arena.ofShared();
        ModelConfig tc = config(TARGET_VOCAB);
        Map<String, Tensor> tw = SpecTestSupport.weights(tc, DType.F32, 5, arena);
        Map<String, Tensor> dw = draftWeights(tw, arena);
        try (LanguageModel lm = SpecTestSupport.languageModel(tc, tw, config(DRAFT_VOCAB), dw, 256, backend, arena)) {
            assertEquals(DRAFT_VOCAB, SpecTestSupport.draftOf(lm).vocabSize());
            int[] prompt = TestCheckpoints.tokens(20, DRAFT_VOCAB, 3);
            // the last prompt ids are padding ids the draft lacks: it catches up on them read as id 0
            int[] foreign = prompt.clone();
            foreign[foreign.length - 1] = TARGET_VOCAB - 1;
            foreign[foreign.length - 3] = DRAFT_VOCAB;
            for (int[] p : new int[][] {prompt, foreign}) {
                GenerationRequest plain = new GenerationRequest(p, 30, SamplingParams.greedy(), List.of(), true,
                        Speculation.none());
                GenerationResult expected = lm.generate(plain, null);
                for (Speculation s : List.of(Speculation.draftModel(3), Speculation.adaptiveDraftModel(4))) {
                    GenerationResult r = lm.generate(plain.withSpeculation(s), null);
                    assertArrayEquals(expected.ids(), r.ids(), backend + " " + s.describe());
                    if (!s.adaptive()) { // the cost-aware length may rightly take plain steps only
                        assertTrue(r.speculation().accepted() > 0, "a close draft gets drafts accepted: "
                                + r.speculation());
                    }
                }
            }
            // sampled: the draft's distribution is padded with zeros to the target's width
            GenerationRequest sampled = new GenerationRequest(prompt, 30, SamplingParams.of(0.9, 1.0, 0, 77),
                    List.of(), true, Speculation.draftModel(4));
            GenerationResult a = lm.generate(sampled, null);
            GenerationResult b = lm.generate(sampled, null);
            assertArrayEquals(a.ids(), b.ids(), "same seed, same tokens");
            assertEquals(30, a.generatedTokens());
            assertTrue(a.speculation().accepted() > 0, a.speculation().toString());
        }
    }

    @Test
    void theBatchingEnginesRunnerPadsTheDraftToo() {
        Arena arena = Arena.ofShared();
        ModelConfig tc = config(TARGET_VOCAB);
        Map<String, Tensor> tw = SpecTestSupport.weights(tc, DType.F32, 5, arena);
        Map<String, Tensor> dw = draftWeights(tw, arena);
        try (Backend backend = LanguageModel.createBackend("reference", 1);
             LoadedModel target = LoadedModel.of(tc, GenerationConfig.DEFAULT, n -> Optional.ofNullable(tw.get(n)),
                     "target", backend, null, null, arena::close);
             LoadedModel draft = LoadedModel.of(config(DRAFT_VOCAB), GenerationConfig.DEFAULT,
                     n -> Optional.ofNullable(dw.get(n)), "draft", backend, null, null, null);
             BatchEngine engine = BatchEngine.over(target, draft, EngineOptions.defaults().withBackend("reference")
                     .withMaxContext(128).withMaxBatch(4).withDraftTokens(3).withKvCache(
                             ai.k2j.kernels.KvPrecision.F32), new ReentrantLock())) {
            List<RequestHandle> spec = new ArrayList<>();
            List<GenerationRequest> requests = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                int[] p = TestCheckpoints.tokens(8 + 5 * i, DRAFT_VOCAB, 40 + i);
                p[p.length - 1] = DRAFT_VOCAB + i; // ids the draft lacks
                GenerationRequest g = new GenerationRequest(p, 16, SamplingParams.greedy(), List.of(), true);
                requests.add(g);
                spec.add(engine.submit(new EngineRequest(g, 1, true), null));
            }
            for (int i = 0; i < requests.size(); i++) {
                ChoiceResult r = spec.get(i).await().get(0);
                ChoiceResult plain = engine.generate(new EngineRequest(requests.get(i), 1, false)).get(0);
                assertArrayEquals(plain.ids(), r.ids(), "request " + i);
                assertTrue(r.draftProposed() > 0, "request " + i + " drafted");
            }
            assertTrue(engine.metrics().draftTokensAccepted() > 0, "a close draft gets drafts accepted");
        }
    }

    @Test
    void compatibilityAcceptsOnlyPaddingDifferences() {
        Tokenizer t = Tokenizer.load(TestCheckpoints.qwenTokenizer());
        int tokens = t.vocabSize();
        assertTrue(tokens <= 151936, "the Qwen tokenizer fits the small models' vocabulary: " + tokens);
        // Qwen2.5-0.5B drafting for Qwen2.5-32B
        DraftCompatibility.check("32b", qwen(152064), t, "0.5b", qwen(151936), Tokenizer.load(
                TestCheckpoints.qwenTokenizer()));
        ModelFormatException larger = assertThrows(ModelFormatException.class, () -> DraftCompatibility.check(
                "0.5b", qwen(151936), t, "32b", qwen(152064), t));
        assertTrue(larger.getMessage().contains("vocab_size 152064 exceeds the target's 151936"), larger.getMessage());
        ModelFormatException cut = assertThrows(ModelFormatException.class, () -> DraftCompatibility.check(
                "32b", qwen(152064), t, "cut", qwen(tokens - 1), t));
        assertTrue(cut.getMessage().contains("smaller than the " + tokens + " tokens"), cut.getMessage());
        ModelFormatException blind = assertThrows(ModelFormatException.class, () -> DraftCompatibility.check(
                "32b", qwen(152064), null, "0.5b", qwen(151936), null));
        assertTrue(blind.getMessage().contains("padding"), blind.getMessage());
    }

    private static ModelConfig qwen(int vocab) {
        return new ModelConfig("Qwen2ForCausalLM", "qwen2", 64, 96, 1, 4, 2, 16, vocab, 32768, 1e-6, 1e6,
                RopeScaling.NONE, true, "bfloat16", 151643, new int[] {151645});
    }
}
