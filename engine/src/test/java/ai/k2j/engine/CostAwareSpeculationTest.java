package ai.k2j.engine;

import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The cost-aware length inside the decoder, with pinned costs (decisions independent of this machine's timing):
 * where speculation loses it takes plain steps, its probes restart the lagging draft on a recent window, and the
 * greedy output stays the plain one; where speculation pays it drafts.
 */
class CostAwareSpeculationTest {

    private static double[] passes(double step, double perToken) {
        double[] t = new double[16];
        for (int n = 1; n <= 16; n++) {
            t[n - 1] = step + perToken * (n - 1);
        }
        return t;
    }

    @Test
    void plainStepsWhereSpeculationLosesDraftsWhereItPaysSameTokensEither() {
        int vocab = 80;
        ModelConfig c = SpecTestSupport.config(2, vocab);
        try (Arena arena = Arena.ofShared()) {
            Map<String, Tensor> w = SpecTestSupport.weights(c, DType.F32, 71, arena);
            ModelContext.Limits limits = ModelContext.Limits.singleSequence(512);
            ModelContext target = SpecTestSupport.model(c, w, limits, "reference");
            ModelContext draft = SpecTestSupport.model(c, SpecTestSupport.noisyCopy(w, 0.05, 72, arena), limits,
                    "reference");
            int[] prompt = SpecTestSupport.randomTokens(30, vocab, 73);
            int n = 300;
            int[] expected = SpecTestSupport.plainGreedy(target, prompt, n);
            SpeculativeDecoder decoder = new SpeculativeDecoder(target, draft);

            // the demo pair's CPU costs: each extra verified token ~0.9 of a step, a draft token 0.4
            decoder.adaptiveLength().pinCosts(400, passes(1000, 900));
            int maxBase = 0;
            int[] got = new int[n];
            decoder.reset(SamplingParams.greedy(), Speculation.adaptiveDraftModel(4));
            try (Sequence seq = target.newSequence()) {
                got[0] = decoder.prefill(seq, prompt, n);
                for (int i = 1; i < n; i++) {
                    got[i] = decoder.step(got[i - 1]);
                    maxBase = Math.max(maxBase, decoder.draftBase());
                    int lag = decoder.historyLength() - decoder.draftBase() - decoder.draftSequence().length();
                    assertTrue(lag >= 0, "the draft never holds more than the accepted text");
                }
            } finally {
                decoder.finish();
            }
            assertArrayEquals(expected, got, "plain steps and probes give the plain tokens");
            SpeculativeStats st = decoder.stats();
            assertTrue(st.plainStepShare() > 0.9, "speculation that loses is mostly off: " + st.plainStepShare());
            assertTrue(st.proposed() > 0, "but probed now and then");
            assertTrue(maxBase > 0, "a probe after many plain steps restarts the draft on the recent window");
            assertEquals(st.targetPasses(), java.util.Arrays.stream(st.roundsByDraftLength()).sum());

            // cheap verification and drafting: it drafts, and the output is still the plain one
            decoder.adaptiveLength().pinCosts(50, passes(1000, 20));
            decoder.reset(SamplingParams.greedy(), Speculation.adaptiveDraftModel(4));
            try (Sequence seq = target.newSequence()) {
                got[0] = decoder.prefill(seq, prompt, n);
                for (int i = 1; i < n; i++) {
                    got[i] = decoder.step(got[i - 1]);
                }
            } finally {
                decoder.finish();
            }
            assertArrayEquals(expected, got);
            st = decoder.stats();
            assertTrue(st.plainStepShare() < 0.1 && st.meanDraftLength() > 2, "pays: drafts " + st.meanDraftLength()
                    + " per pass, " + st.plainStepShare() + " plain");
            target.backend().close();
            draft.backend().close();
        }
    }
}
