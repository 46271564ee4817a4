package ai.k2j.engine;

import ai.k2j.kernels.Batch;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * After every speculative round, the target's and the draft's KV caches hold exactly what a fresh prefill of the
 * accepted text gives: probing each cache (through a copy-on-write fork, so the generation goes on undisturbed)
 * with the same tokens yields bit-identical logits to a fresh sequence prefilled with the accepted tokens and
 * the same probe, and the caches hold no more blocks than those tokens need. Greedy and sampled, with a
 * rejection-heavy random draft and a mostly-accepted noisy draft, on every backend in the build.
 */
class RollbackTest {

    static Stream<String> backends() {
        return SpecTestSupport.backends().stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void cachesEqualAFreshPrefillOfTheAcceptedTextAfterEveryRound(String backend) {
        int vocab = 80;
        ModelConfig tc = SpecTestSupport.config(2, vocab);
        try (Arena arena = Arena.ofShared()) {
            Map<String, Tensor> tw = SpecTestSupport.weights(tc, DType.F32, 61, arena);
            // room for the generation's sequence, a probe fork and a fresh reference sequence
            ModelContext.Limits limits = new ModelContext.Limits(128, 256, 1, 16, 3 * 8 + 2);
            ModelContext target = SpecTestSupport.model(tc, tw, limits, backend);
            List<ModelContext> drafts = List.of(
                    SpecTestSupport.model(SpecTestSupport.smallDraftConfig(vocab),
                            SpecTestSupport.weights(SpecTestSupport.smallDraftConfig(vocab), DType.F32, 62, arena),
                            limits, backend),
                    SpecTestSupport.model(tc, SpecTestSupport.noisyCopy(tw, 0.1, 63, arena), limits, backend));
            int rounds = 0;
            for (ModelContext draft : drafts) {
                SpeculativeDecoder decoder = new SpeculativeDecoder(target, draft);
                for (SamplingParams sampling : List.of(SamplingParams.greedy(), SamplingParams.of(1.0, 1.0, 0, 5)))
                for (Speculation speculation : List.of(Speculation.draftModel(5), Speculation.draftTree(6))) {
                    int[] prompt = SpecTestSupport.randomTokens(21, vocab, 64);
                    int n = 90;
                    int[] expected = sampling.isGreedy() ? SpecTestSupport.plainGreedy(target, prompt, n) : null;
                    int[] got = new int[n];
                    decoder.reset(sampling, speculation);
                    try (Sequence seq = target.newSequence()) {
                        got[0] = decoder.prefill(seq, prompt, n);
                        int lastLength = -1;
                        for (int i = 1; i < n; i++) {
                            got[i] = decoder.step(got[i - 1]);
                            int length = decoder.historyLength();
                            if (length == lastLength) {
                                continue; // the tokens came from the same round: caches unchanged
                            }
                            lastLength = length;
                            rounds++;
                            int[] accepted = Arrays.copyOf(decoder.history(), length);
                            assertEquals(length - 1, seq.length(), "the target caches all but the newest token");
                            assertCacheIsFreshPrefill(target, seq, accepted, speculation.describe()
                                    + " target after round " + rounds);
                            Sequence draftSeq = decoder.draftSequence();
                            assertTrue(draftSeq.length() <= length, "the draft caches only accepted tokens");
                            assertTrue(draftSeq.length() >= length - 2, "the draft lags by at most two tokens");
                            assertCacheIsFreshPrefill(draft, draftSeq, accepted, "draft after round " + rounds);
                        }
                    } finally {
                        decoder.finish();
                    }
                    if (expected != null) {
                        assertArrayEquals(expected, got, "probing the caches changed the greedy output");
                    }
                    SpeculativeStats stats = decoder.stats();
                    assertTrue(stats.verified() > stats.accepted(), "some proposals must be rejected: " + stats);
                }
            }
            assertEquals(limits.kvBlocks(), target.freeKvBlocks(), "the target's blocks all came back");
            for (ModelContext d : drafts) {
                assertEquals(limits.kvBlocks(), d.freeKvBlocks(), "the draft's blocks all came back");
                d.backend().close();
            }
            assertTrue(rounds > 50, "only " + rounds + " rounds checked");
            target.backend().close();
        }
    }

    /** seq holds accepted[0, seq.length()): probe it and a fresh prefill of those tokens with the same tokens. */
    static void assertCacheIsFreshPrefill(ModelContext model, Sequence seq, int[] accepted, String what) {
        int held = seq.length();
        assertEquals((held + ModelContext.KV_BLOCK_SIZE - 1) / ModelContext.KV_BLOCK_SIZE, seq.blockCount(),
                what + ": blocks held for " + held + " tokens");
        int[] probe = new int[6];
        probe[0] = accepted[held == accepted.length ? held - 1 : held];
        for (int i = 1; i < probe.length; i++) {
            probe[i] = (probe[i - 1] * 7 + i) % model.vocabSize();
        }
        Batch batch = model.newBatch();
        float[] fromCache;
        try (Sequence fork = seq.fork()) {
            batch.clear();
            fork.addTo(batch, probe, 0, probe.length, probe.length);
            fromCache = Arrays.copyOf(model.forward(batch), probe.length * model.vocabSize());
        }
        float[] fresh;
        try (Sequence ref = model.newSequence()) {
            if (held > 0) {
                batch.clear();
                ref.addTo(batch, accepted, 0, held, 0);
                model.forward(batch);
            }
            batch.clear();
            ref.addTo(batch, probe, 0, probe.length, probe.length);
            fresh = Arrays.copyOf(model.forward(batch), probe.length * model.vocabSize());
        }
        assertArrayEquals(fresh, fromCache, what + ": logits through the rolled-back cache differ from a fresh prefill"
                + " of the " + held + " accepted tokens");
    }
}
