package ai.k2j.engine;

import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Greedy speculative decoding gives exactly the tokens of plain greedy decoding, whatever the draft: a random
 * draft (almost every proposal rejected), a noisy copy of the target (most accepted), the target itself (all
 * accepted: the bonus path), a layer-skip draft made of the target's first layer, and prompt lookup; for draft
 * lengths 1 to 15, adaptive, draft trees of 4 and 15 tokens, many prompts and several target seeds, on every
 * backend in the build.
 */
class GreedyExactnessTest {

    static Stream<String> backends() {
        return SpecTestSupport.backends().stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void greedySpeculationEqualsPlainGreedyForEveryDraft(String backend) {
        int vocab = 96;
        int cases = 0;
        double lowestAlpha = 1;
        double highestAlpha = 0;
        for (long targetSeed : new long[] {11, 12, 13}) {
            ModelConfig tc = SpecTestSupport.config(3, vocab);
            try (Arena arena = Arena.ofShared()) {
                Map<String, Tensor> tw = SpecTestSupport.weights(tc, DType.F32, targetSeed, arena);
                ModelContext.Limits limits = ModelContext.Limits.singleSequence(160);
                ModelContext target = SpecTestSupport.model(tc, tw, limits, backend);
                List<Draft> drafts = new ArrayList<>();
                drafts.add(new Draft("random", SpecTestSupport.model(SpecTestSupport.smallDraftConfig(vocab),
                        SpecTestSupport.weights(SpecTestSupport.smallDraftConfig(vocab), DType.F32, targetSeed + 100,
                                arena), limits, backend)));
                drafts.add(new Draft("noisy", SpecTestSupport.model(tc,
                        SpecTestSupport.noisyCopy(tw, 0.08, targetSeed + 200, arena), limits, backend)));
                drafts.add(new Draft("self", SpecTestSupport.model(tc, tw, limits, backend)));
                drafts.add(new Draft("layer-skip", SpecTestSupport.model(SpecTestSupport.withLayers(tc, 1), tw, limits,
                        backend)));
                List<Speculation> settings = List.of(Speculation.draftModel(1), Speculation.draftModel(3),
                        Speculation.draftModel(6), Speculation.draftModel(15), Speculation.adaptiveDraftModel(4),
                        Speculation.draftTree(4), Speculation.draftTree(15));
                for (int p = 0; p < 4; p++) {
                    int[] prompt = prompt(p, vocab, targetSeed);
                    int n = 48;
                    int[] expected = SpecTestSupport.plainGreedy(target, prompt, n);
                    for (Draft d : drafts) {
                        SpeculativeDecoder decoder = new SpeculativeDecoder(target, d.model);
                        // the adaptive setting with costs under which drafting pays: its choices then do not
                        // depend on this machine's timing (plain steps and the draft's windowed catch-up after them
                        // are covered by CostAwareSpeculationTest)
                        double[] passes = new double[16];
                        for (int t = 1; t <= 16; t++) {
                            passes[t - 1] = 1000 + 10 * (t - 1);
                        }
                        decoder.adaptiveLength().pinCosts(10, passes);
                        for (Speculation s : settings) {
                            SpeculativeStats stats = run(decoder, target, prompt, n, SamplingParams.greedy(), s,
                                    expected, d.name + " " + s.describe() + " prompt " + p + " seed " + targetSeed);
                            cases++;
                            if (d.name.equals("self")) {
                                assertEquals(1.0, stats.acceptanceRate(), "the target drafting for itself");
                            }
                            lowestAlpha = Math.min(lowestAlpha, stats.acceptanceRate());
                            highestAlpha = Math.max(highestAlpha, stats.acceptanceRate());
                        }
                    }
                    SpeculativeDecoder lookupOnly = new SpeculativeDecoder(target, null);
                    for (int k : new int[] {2, 8}) {
                        run(lookupOnly, target, prompt, n, SamplingParams.greedy(), Speculation.promptLookup(k),
                                expected, "lookup k=" + k + " prompt " + p);
                        cases++;
                    }
                }
                target.backend().close();
                for (Draft d : drafts) {
                    d.model.backend().close();
                }
            }
        }
        assertEquals(3 * 4 * (4 * 7 + 2), cases);
        assertTrue(lowestAlpha < 0.3 && highestAlpha == 1.0,
                "the drafts should span rejection-heavy to all-accepted: alpha in [" + lowestAlpha + ", "
                        + highestAlpha + "]");
    }

    /** Generation that ends close to the context limit: rounds shrink their drafts to what still fits. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void draftsShrinkAtTheEndOfTheBudgetAndContext(String backend) {
        int vocab = 64;
        ModelConfig tc = SpecTestSupport.config(2, vocab);
        try (Arena arena = Arena.ofShared()) {
            Map<String, Tensor> tw = SpecTestSupport.weights(tc, DType.F32, 5, arena);
            ModelContext.Limits limits = ModelContext.Limits.singleSequence(40);
            ModelContext target = SpecTestSupport.model(tc, tw, limits, backend);
            ModelContext self = SpecTestSupport.model(tc, tw, limits, backend);
            SpeculativeDecoder decoder = new SpeculativeDecoder(target, self);
            for (int promptLength : new int[] {1, 17, 33, 39}) {
                int[] prompt = SpecTestSupport.randomTokens(promptLength, vocab, promptLength);
                int n = 40 - promptLength; // fills the context exactly
                int[] expected = SpecTestSupport.plainGreedy(target, prompt, n);
                for (Speculation s : List.of(Speculation.draftModel(7), Speculation.draftTree(9))) {
                    SpeculativeStats stats = run(decoder, target, prompt, n, SamplingParams.greedy(), s, expected,
                            s.describe() + " prompt " + promptLength);
                    assertEquals(n - 1, stats.emitted(), "no token is produced past the budget");
                }
            }
            target.backend().close();
            self.backend().close();
        }
    }

    /** Runs one generation through the decoder, checks ids against {@code expected}, returns the statistics. */
    static SpeculativeStats run(SpeculativeDecoder decoder, ModelContext target, int[] prompt, int n,
                                SamplingParams sampling, Speculation s, int[] expected, String what) {
        int[] got = new int[n];
        decoder.reset(sampling, s);
        try (Sequence seq = target.newSequence()) {
            got[0] = decoder.prefill(seq, prompt, n);
            for (int i = 1; i < n; i++) {
                got[i] = decoder.step(got[i - 1]);
            }
            assertTrue(seq.length() <= prompt.length + n, what + ": target cache holds more than the output");
        } finally {
            decoder.finish();
        }
        if (expected != null) {
            assertArrayEquals(expected, got, what + ": speculative greedy ids differ from plain greedy\n  plain "
                    + Arrays.toString(expected) + "\n  spec  " + Arrays.toString(got));
        }
        return decoder.stats();
    }

    /** Prompts of 1 to ~60 tokens, some with repeats so prompt lookup finds n-grams. */
    private static int[] prompt(int p, int vocab, long seed) {
        return switch (p) {
            case 0 -> new int[] {(int) (seed % vocab)};
            case 1 -> SpecTestSupport.randomTokens(7, vocab, seed * 31 + 1);
            case 2 -> {
                int[] base = SpecTestSupport.randomTokens(9, vocab, seed * 31 + 2);
                int[] rep = new int[45];
                for (int i = 0; i < rep.length; i++) {
                    rep[i] = base[i % base.length];
                }
                yield rep;
            }
            default -> SpecTestSupport.randomTokens(60, vocab, seed * 31 + 3);
        };
    }

    private record Draft(String name, ModelContext model) {
    }
}
