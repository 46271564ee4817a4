package ai.k2j.engine;

import ai.k2j.engine.model.RopeFrequencies;
import ai.k2j.engine.TestModels.Spec;
import ai.k2j.kernels.Batch;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.ModelFormatException;
import ai.k2j.loaders.RopeScaling;
import ai.k2j.loaders.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class Qwen2ModelTest {

    static Stream<Spec> specs() {
        return Stream.of(
                new Spec("mha-f32-untied", 32, 48, 2, 4, 4, 8, 61, false, DType.F32, RopeScaling.NONE, 10000, 512),
                new Spec("gqa-f32-tied", 32, 48, 2, 4, 2, 8, 64, true, DType.F32, RopeScaling.NONE, 10000, 512),
                new Spec("mqa-bf16-untied", 24, 40, 3, 6, 1, 4, 50, false, DType.BF16, RopeScaling.NONE, 1e6, 512),
                new Spec("gqa-f16-tied", 32, 64, 2, 4, 2, 8, 70, true, DType.F16, RopeScaling.NONE, 10000, 512),
                // head_dim ≠ hidden/heads, YaRN beyond the original 16 positions (Qwen2.5's long-context recipe)
                new Spec("yarn-gqa-f32", 32, 48, 2, 4, 2, 16, 64, false, DType.F32, TestModels.yarn(4, 16), 100,
                        64),
                new Spec("linear-mha-bf16", 16, 32, 1, 2, 2, 8, 40, true, DType.BF16, TestModels.linear(2), 10000,
                        512));
    }

    static Stream<String> backends() {
        return TestModels.backends().stream();
    }

    static Stream<Arguments> specsOnBackends() {
        return specs().flatMap(spec -> backends().map(backend -> Arguments.of(spec, backend)));
    }

    /** Every position of a prompt through ModelContext on each backend vs the naive double model. */
    @ParameterizedTest(name = "{0} on {1}")
    @MethodSource("specsOnBackends")
    void forwardMatchesNaiveImplementation(Spec spec, String backend) {
        ModelConfig c = spec.config();
        int n = 37; // crosses two KV block boundaries
        try (Arena arena = Arena.ofShared()) {
            Map<String, Tensor> w = TestModels.weights(c, spec.dtype(), 42, arena);
            int[] tokens = TestModels.randomTokens(n, c.vocabSize(), 7);
            double[][] expected = NaiveQwen2.logits(c, w, tokens);
            ModelContext model = TestModels.model(c, w, new ModelContext.Limits(64, 64, 1, 64, 4), backend);
            float[][] actual = allLogits(model, tokens, n);
            double worst = 0;
            for (int t = 0; t < n; t++) {
                worst = Math.max(worst, relativeError(actual[t], expected[t]));
            }
            assertTrue(worst <= 1e-4, spec + " on " + backend + ": worst relative error " + worst);
            // the logits must actually vary (a broken model tends to produce constants)
            assertTrue(spread(expected[n - 1]) > 0.5, "test model logits are too flat to be a meaningful check");
            model.backend().close();
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void multiSequenceBatchEqualsEachSequenceAlone(String backend) {
        ModelConfig c = Spec.gqa().config();
        try (Arena arena = Arena.ofShared()) {
            Map<String, Tensor> w = TestModels.weights(c, DType.F32, 1, arena);
            ModelContext.Limits limits = new ModelContext.Limits(64, 64, 3, 32, 16);
            ModelContext model = TestModels.model(c, w, limits, backend);
            int[] a = TestModels.randomTokens(5, c.vocabSize(), 11);
            int[] b = TestModels.randomTokens(19, c.vocabSize(), 12);
            int[] d = TestModels.randomTokens(1, c.vocabSize(), 13);

            // alone: prefill, then one decode token each
            float[][] aAlone = runAlone(model, a, 3);
            float[][] bAlone = runAlone(model, b, 4);
            float[][] dAlone = runAlone(model, d, 5);

            // together: one prefill batch of all three, then one decode batch of all three
            Batch batch = model.newBatch();
            try (Sequence sa = model.newSequence(); Sequence sb = model.newSequence(); Sequence sd = model.newSequence()) {
                batch.clear();
                sa.addTo(batch, a, 0, a.length, 1);
                sb.addTo(batch, b, 0, b.length, 1);
                sd.addTo(batch, d, 0, d.length, 1);
                float[] logits = model.forward(batch);
                assertRowEquals(aAlone[0], logits, 0, "a prefill");
                assertRowEquals(bAlone[0], logits, 1, "b prefill");
                assertRowEquals(dAlone[0], logits, 2, "d prefill");

                batch.clear();
                sb.addTo(batch, 4, true);  // order differs from prefill on purpose
                sa.addTo(batch, 3, true);
                sd.addTo(batch, 5, true);
                logits = model.forward(batch);
                assertRowEquals(bAlone[1], logits, 0, "b decode");
                assertRowEquals(aAlone[1], logits, 1, "a decode");
                assertRowEquals(dAlone[1], logits, 2, "d decode");
            }
            assertEquals(16, model.freeKvBlocks(), "closing the sequences frees every block");
            model.backend().close();
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void rollbackThenRefeedEqualsFreshPrefill(String backend) {
        ModelConfig c = Spec.gqa().config();
        try (Arena arena = Arena.ofShared()) {
            Map<String, Tensor> w = TestModels.weights(c, DType.F32, 3, arena);
            ModelContext model = TestModels.model(c, w, new ModelContext.Limits(64, 64, 1, 32, 4), backend);
            int[] prompt = TestModels.randomTokens(30, c.vocabSize(), 21);
            int[] draft = TestModels.randomTokens(6, c.vocabSize(), 22);
            int[] accepted = TestModels.randomTokens(10, c.vocabSize(), 23);
            Batch batch = model.newBatch();

            float[] refed;
            try (Sequence seq = model.newSequence()) {
                feed(model, batch, seq, prompt, 0);
                feed(model, batch, seq, draft, draft.length); // speculative tokens, verified in one step
                assertEquals(36, seq.length());
                assertEquals(3, seq.blockCount());
                seq.rollback(14);                           // reject: back into the first block
                assertEquals(14, seq.length());
                assertEquals(1, seq.blockCount(), "blocks past the new length are returned");
                assertEquals(3, model.freeKvBlocks());
                refed = feed(model, batch, seq, accepted, accepted.length).clone();
            }
            int[] fresh = new int[24];
            System.arraycopy(prompt, 0, fresh, 0, 14);
            System.arraycopy(accepted, 0, fresh, 14, 10);
            float[][] expected = allLogits(model, fresh, fresh.length);
            for (int i = 0; i < 10; i++) {
                assertRowEquals(expected[14 + i], refed, i, "re-fed position " + (14 + i));
            }
            assertThrows(IllegalArgumentException.class, () -> {
                try (Sequence s = model.newSequence()) {
                    s.rollback(1);
                }
            });
            model.backend().close();
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void chunkedPrefillEqualsOneShot(String backend) {
        ModelConfig c = Spec.gqa().config();
        try (Arena arena = Arena.ofShared()) {
            Map<String, Tensor> w = TestModels.weights(c, DType.F32, 4, arena);
            ModelContext model = TestModels.model(c, w, new ModelContext.Limits(64, 64, 1, 64, 4), backend);
            int[] prompt = TestModels.randomTokens(45, c.vocabSize(), 31);
            float[][] oneShot = allLogits(model, prompt, prompt.length);
            Batch batch = model.newBatch();
            try (Sequence seq = model.newSequence()) {
                for (int off = 0; off < prompt.length; off += 7) {
                    int count = Math.min(7, prompt.length - off);
                    batch.clear();
                    seq.addTo(batch, prompt, off, count, count);
                    float[] logits = model.forward(batch);
                    for (int i = 0; i < count; i++) {
                        assertRowEquals(oneShot[off + i], logits, i, "position " + (off + i));
                    }
                }
            }
            model.backend().close();
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void forkSharesBlocksAndCopiesOnWrite(String backend) {
        ModelConfig c = Spec.gqa().config();
        try (Arena arena = Arena.ofShared()) {
            Map<String, Tensor> w = TestModels.weights(c, DType.F32, 5, arena);
            ModelContext model = TestModels.model(c, w, new ModelContext.Limits(64, 64, 2, 32, 8), backend);
            int[] prompt = TestModels.randomTokens(20, c.vocabSize(), 41);
            int[] left = TestModels.randomTokens(5, c.vocabSize(), 42);
            int[] right = TestModels.randomTokens(3, c.vocabSize(), 43);
            Batch batch = model.newBatch();
            float[] leftLogits;
            float[] rightLogits;
            try (Sequence parent = model.newSequence()) {
                feed(model, batch, parent, prompt, 0);
                assertEquals(6, model.freeKvBlocks());
                try (Sequence child = parent.fork()) {
                    assertEquals(6, model.freeKvBlocks(), "a fork shares its parent's blocks");
                    assertEquals(20, child.length());
                    rightLogits = feed(model, batch, child, right, right.length).clone();
                    assertEquals(5, model.freeKvBlocks(), "writing into the shared partial block copies it");
                    leftLogits = feed(model, batch, parent, left, left.length).clone();
                }
            }
            assertEquals(8, model.freeKvBlocks());
            float[][] expectLeft = allLogits(model, concat(prompt, left), 25);
            float[][] expectRight = allLogits(model, concat(prompt, right), 23);
            for (int i = 0; i < left.length; i++) {
                assertRowEquals(expectLeft[20 + i], leftLogits, i, "parent after fork");
            }
            for (int i = 0; i < right.length; i++) {
                assertRowEquals(expectRight[20 + i], rightLogits, i, "child after fork");
            }
            model.backend().close();
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void fullKvCacheIsAClearErrorAndChangesNothing(String backend) {
        ModelConfig c = Spec.gqa().config();
        try (Arena arena = Arena.ofShared()) {
            Map<String, Tensor> w = TestModels.weights(c, DType.F32, 6, arena);
            ModelContext model = TestModels.model(c, w, new ModelContext.Limits(64, 64, 2, 8, 2), backend);
            Batch batch = model.newBatch();
            try (Sequence seq = model.newSequence()) {
                feed(model, batch, seq, TestModels.randomTokens(32, c.vocabSize(), 1), 0);
                batch.clear();
                KvCacheFullException e = assertThrows(KvCacheFullException.class, () -> seq.addTo(batch, 1, true));
                assertTrue(e.getMessage().contains("needs 1 more blocks") && e.getMessage().contains("0 of 2"),
                        e.getMessage());
                assertEquals(32, seq.length());
                assertEquals(0, batch.nTokens, "a refused sequence leaves the batch untouched");
            }
            assertEquals(2, model.freeKvBlocks());
            model.backend().close();
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void contextLimitIsEnforcedPerSequence(String backend) {
        ModelConfig c = Spec.gqa().config();
        try (Arena arena = Arena.ofShared()) {
            Map<String, Tensor> w = TestModels.weights(c, DType.F32, 6, arena);
            ModelContext model = TestModels.model(c, w, new ModelContext.Limits(20, 32, 1, 8, 4), backend);
            Batch batch = model.newBatch();
            try (Sequence seq = model.newSequence()) {
                IllegalStateException e = assertThrows(IllegalStateException.class,
                        () -> seq.addTo(batch, new int[21], 0, 21, 1));
                assertTrue(e.getMessage().contains("at most 20"), e.getMessage());
            }
            model.backend().close();
        }
    }

    @Test
    void shapeAndPresenceAreValidatedNamingTheTensor() {
        ModelConfig c = Spec.gqa().config();
        try (Arena arena = Arena.ofShared()) {
            Map<String, Tensor> w = new HashMap<>(TestModels.weights(c, DType.F32, 7, arena));
            String name = "model.layers.1.self_attn.k_proj.weight";
            w.put(name, TestModels.tensor(name, DType.F32, new long[] {8, 32}, new float[256], arena));
            ModelFormatException bad = assertThrows(ModelFormatException.class,
                    () -> TestModels.model(c, w, ModelContext.Limits.singleSequence(32)));
            assertTrue(bad.getMessage().contains(name) && bad.getMessage().contains("[8, 32]")
                    && bad.getMessage().contains("[16, 32]"), bad.getMessage());

            w.remove("model.layers.0.mlp.up_proj.weight");
            w.put(name, TestModels.weights(c, DType.F32, 7, arena).get(name));
            ModelFormatException missing = assertThrows(ModelFormatException.class,
                    () -> TestModels.model(c, w, ModelContext.Limits.singleSequence(32)));
            assertTrue(missing.getMessage().contains("model.layers.0.mlp.up_proj.weight"), missing.getMessage());

            ModelConfig untied = new Spec("u", 32, 48, 2, 4, 2, 8, 64, false, DType.F32, RopeScaling.NONE, 1e4, 64)
                    .config();
            Map<String, Tensor> noHead = new HashMap<>(TestModels.weights(untied, DType.F32, 7, arena));
            noHead.remove("lm_head.weight");
            ModelFormatException head = assertThrows(ModelFormatException.class,
                    () -> TestModels.model(untied, noHead, ModelContext.Limits.singleSequence(32)));
            assertTrue(head.getMessage().contains("lm_head.weight"), head.getMessage());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void oversizedBatchIsRejected(String backend) {
        ModelConfig c = Spec.gqa().config();
        try (Arena arena = Arena.ofShared()) {
            Map<String, Tensor> w = TestModels.weights(c, DType.F32, 8, arena);
            ModelContext model = TestModels.model(c, w, new ModelContext.Limits(64, 16, 1, 4, 4), backend);
            Batch batch = new Batch(32, 1, 4);
            try (Sequence seq = model.newSequence()) {
                seq.addTo(batch, new int[20], 0, 20, 1);
                assertThrows(IllegalArgumentException.class, () -> model.forward(batch));
                batch.clear();
                seq.rollback(0);
                seq.addTo(batch, new int[8], 0, 8, 8);
                assertThrows(IllegalArgumentException.class, () -> model.forward(batch), "8 logit rows > 4");
            }
            model.backend().close();
        }
    }

    // ------------------------------------------------------------------------------------------------

    /** Logits of every position of tokens[0, n) in one prefill step of a fresh sequence. */
    static float[][] allLogits(ModelContext model, int[] tokens, int n) {
        Batch batch = model.newBatch();
        try (Sequence seq = model.newSequence()) {
            batch.clear();
            seq.addTo(batch, tokens, 0, n, n);
            float[] flat = model.forward(batch);
            float[][] out = new float[n][];
            for (int t = 0; t < n; t++) {
                out[t] = Arrays.copyOfRange(flat, t * model.vocabSize(), (t + 1) * model.vocabSize());
            }
            return out;
        }
    }

    /** Prefill logits (last row) then one decode token's logits, each as row 0, 1 of the result. */
    private static float[][] runAlone(ModelContext model, int[] prompt, int next) {
        Batch batch = model.newBatch();
        try (Sequence seq = model.newSequence()) {
            float[] first = feed(model, batch, seq, prompt, 1).clone();
            batch.clear();
            seq.addTo(batch, next, true);
            float[] second = model.forward(batch);
            return new float[][] {Arrays.copyOf(first, model.vocabSize()), Arrays.copyOf(second, model.vocabSize())};
        }
    }

    private static float[] feed(ModelContext model, Batch batch, Sequence seq, int[] tokens, int logitsForLast) {
        batch.clear();
        seq.addTo(batch, tokens, 0, tokens.length, logitsForLast);
        return model.forward(batch);
    }

    static void assertRowEquals(float[] expected, float[] flat, int row, String what) {
        float[] actual = Arrays.copyOfRange(flat, row * expected.length, (row + 1) * expected.length);
        double err = 0;
        double scale = 1;
        for (int i = 0; i < expected.length; i++) {
            err = Math.max(err, Math.abs(actual[i] - expected[i]));
            scale = Math.max(scale, Math.abs(expected[i]));
        }
        assertTrue(err <= 1e-5 * scale, what + ": max abs difference " + err);
    }

    private static double relativeError(float[] actual, double[] expected) {
        double err = 0;
        double scale = 1;
        for (int i = 0; i < expected.length; i++) {
            err = Math.max(err, Math.abs(actual[i] - expected[i]));
            scale = Math.max(scale, Math.abs(expected[i]));
        }
        return err / scale;
    }

    private static double spread(double[] v) {
        return Arrays.stream(v).max().orElseThrow() - Arrays.stream(v).min().orElseThrow();
    }

    static int[] concat(int[] a, int[] b) {
        int[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    @Test
    void ropeTableUsesHfFloat32Frequencies() {
        // sanity link between RopeFrequencies and the model: the naive double frequencies agree to float precision
        for (Spec spec : specs().toList()) {
            ModelConfig c = spec.config();
            float[] ours = RopeFrequencies.of(c, 64).invFreq();
            double[] naive = NaiveQwen2.invFreq(c);
            for (int i = 0; i < ours.length; i++) {
                assertEquals(naive[i], ours[i], 2e-7 * naive[i], spec + " frequency " + i);
            }
            assertEquals(NaiveQwen2.attentionScaling(c), RopeFrequencies.of(c, 64).attentionScaling(), 1e-7);
        }
    }
}
