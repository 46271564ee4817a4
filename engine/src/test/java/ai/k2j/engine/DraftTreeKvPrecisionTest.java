package ai.k2j.engine;

import ai.k2j.engine.model.Architectures;
import ai.k2j.kernels.KvPrecision;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.Arena;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Draft trees over a narrow KV cache: greedy tree speculation gives exactly the tokens of plain greedy decoding over
 * the same BF16 (or FP8) cache, on every backend in the build. The tree pass reads the narrow cache under the tree
 * mask, and an accepted sibling's keys and values (FP8: with their scales) are moved by KvCache.copySlot, so a
 * wrong decode or copy would change later tokens.
 */
class DraftTreeKvPrecisionTest {

    static Stream<String> backends() {
        return SpecTestSupport.backends().stream();
    }

    private static ModelContext model(ModelConfig c, Map<String, Tensor> w, ModelContext.Limits limits,
                                      String backend, KvPrecision precision) {
        return new ModelContext(Architectures.load(c, name -> Optional.ofNullable(w.get(name)), "test-model",
                LanguageModel.createBackend(backend, 2), null), limits, precision);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void greedyDraftTreeOverANarrowCacheEqualsPlainGreedyOverIt(String backend) {
        int vocab = 96;
        for (KvPrecision precision : List.of(KvPrecision.BF16, KvPrecision.FP8_E4M3)) {
            long branchAccepts = 0;
            int cases = 0;
            ModelConfig tc = SpecTestSupport.config(3, vocab);
            try (Arena arena = Arena.ofShared()) {
                Map<String, Tensor> tw = SpecTestSupport.weights(tc, DType.F32, 31, arena);
                ModelContext.Limits limits = ModelContext.Limits.singleSequence(160);
                ModelContext target = model(tc, tw, limits, backend, precision);
                assertEquals(precision, target.kvPrecision());
                List<ModelContext> drafts = List.of(
                        model(tc, SpecTestSupport.noisyCopy(tw, 0.08, 231, arena), limits, backend, precision),
                        model(tc, SpecTestSupport.noisyCopy(tw, 0.3, 232, arena), limits, backend, precision),
                        model(SpecTestSupport.smallDraftConfig(vocab), SpecTestSupport.weights(
                                SpecTestSupport.smallDraftConfig(vocab), DType.F32, 233, arena), limits, backend,
                                precision));
                for (int p = 0; p < 3; p++) {
                    int[] prompt = SpecTestSupport.randomTokens(5 + 11 * p, vocab, 40 + p);
                    int n = 48;
                    int[] expected = SpecTestSupport.plainGreedy(target, prompt, n);
                    for (ModelContext draft : drafts) {
                        SpeculativeDecoder decoder = new SpeculativeDecoder(target, draft);
                        for (Speculation s : List.of(Speculation.draftTree(4), Speculation.draftTree(15))) {
                            GreedyExactnessTest.run(decoder, target, prompt, n, SamplingParams.greedy(), s, expected,
                                    backend + " " + precision + " " + s.describe() + " prompt " + p);
                            branchAccepts += decoder.branchAccepts();
                            cases++;
                        }
                    }
                }
                target.backend().close();
                for (ModelContext d : drafts) {
                    d.backend().close();
                }
            }
            assertEquals(3 * 3 * 2, cases);
            assertTrue(branchAccepts > 0, backend + " " + precision
                    + ": no round accepted a sibling, so no accepted path was compacted by copySlot");
        }
    }
}
