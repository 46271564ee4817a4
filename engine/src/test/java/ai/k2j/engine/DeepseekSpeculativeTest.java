package ai.k2j.engine;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

/**
 * DeepSeek-V3 models under speculative decoding, as {@code generate} and {@code serve} run them: greedy ids with a
 * draft model (another tiny DeepSeek-V3 of the same vocabulary) and with prompt lookup equal plain greedy decoding
 * on a single sequence ({@link LanguageModel}), and the batching engine ({@link BatchEngine}, what {@code serve}
 * uses) gives the same ids with the draft model, for several requests decoded together. The verification steps run
 * k+1 tokens through MLA and the routed experts at once, after which rejected tokens are rolled back.
 */
class DeepseekSpeculativeTest {

    static Stream<String> backends() {
        return TestModels.backends().stream();
    }

    private static Path fixture(String name) {
        return DeepseekGoldenTest.dir().resolve(name);
    }

    /** A prompt that repeats itself, so prompt lookup finds drafts. */
    private static int[] prompt(int seed) {
        int[] part = TestModels.randomTokens(24, 500, seed);
        int[] prompt = new int[part.length * 3];
        for (int i = 0; i < prompt.length; i++) {
            prompt[i] = part[i % part.length];
        }
        return prompt;
    }

    @ParameterizedTest
    @MethodSource("backends")
    void draftAndLookupGreedyIdsEqualPlainGreedy(String backend) {
        Path target = fixture("dsv3_qlora_groups_f32");
        Path draft = fixture("dsv3_kimi_like_bf16");
        ModelOptions options = ModelOptions.defaults().withBackend(backend).withThreads(2).withDraft(draft);
        try (LanguageModel lm = LanguageModel.load(target, options)) {
            for (int seed = 1; seed <= 2; seed++) {
                int[] p = prompt(seed);
                GenerationRequest plain = GenerationRequest.of(p, 24, SamplingParams.greedy())
                        .withSpeculation(Speculation.none());
                int[] want = lm.generate(plain, null).ids();
                for (Speculation s : List.of(Speculation.draftModel(3), Speculation.adaptiveDraftModel(4),
                        Speculation.promptLookup(4))) {
                    GenerationResult r = lm.generate(GenerationRequest.of(p, 24, SamplingParams.greedy())
                            .withSpeculation(s), null);
                    assertArrayEquals(want, r.ids(), s.describe() + " on " + backend + ", prompt " + seed);
                    assertNotNull(r.speculation(), s.describe());
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void batchingEngineWithDraftGivesThePlainGreedyIds(String backend) throws Exception {
        Path target = fixture("dsv3_qlora_groups_f32");
        Path draft = fixture("dsv3_kimi_like_bf16");
        List<int[]> want = new ArrayList<>();
        try (LanguageModel lm = LanguageModel.load(target, ModelOptions.defaults().withBackend(backend).withThreads(2))) {
            for (int seed = 1; seed <= 3; seed++) {
                want.add(lm.generate(GenerationRequest.of(prompt(seed), 16, SamplingParams.greedy()), null).ids());
            }
        }
        EngineOptions options = EngineOptions.defaults().withBackend(backend).withThreads(2).withMaxContext(256)
                .withDraftTokens(3);
        try (BatchEngine engine = BatchEngine.load(target, draft, options)) {
            List<RequestHandle> handles = new ArrayList<>();
            for (int seed = 1; seed <= 3; seed++) {
                handles.add(engine.submit(new EngineRequest(GenerationRequest.of(prompt(seed), 16,
                        SamplingParams.greedy()), 1, true), null));
            }
            for (int i = 0; i < handles.size(); i++) {
                ChoiceResult r = handles.get(i).await().get(0);
                assertArrayEquals(want.get(i), r.ids(), "request " + i + " on " + backend);
                assertEquals(FinishReason.LENGTH, r.finishReason());
            }
        }
    }
}
