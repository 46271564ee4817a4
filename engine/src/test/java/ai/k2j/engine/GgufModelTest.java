package ai.k2j.engine;

import ai.k2j.loaders.Checkpoint;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.GgmlType;
import ai.k2j.loaders.ModelFormatException;
import ai.k2j.loaders.WeightFormat;
import ai.k2j.testing.GgufFixtures;
import ai.k2j.testing.TestCheckpoints;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * GGUF files load as the checkpoints they were converted from: the same config, the same tensors under HF names
 * (Llama's q/k un-permuted), the same logits bit for bit where the weights are the same bytes (F32, and Q8_0/Q4_0,
 * whose blocks are k2j's own layout), and close to float32 for the K-quants.
 */
class GgufModelTest {

    @TempDir
    Path dir;

    private static final int[] PROMPT = TestCheckpoints.tokens(12, 512, 3);

    private static float[][] logits(Path model, String backend, WeightFormat format) {
        try (LanguageModel lm = LanguageModel.load(model, ModelOptions.defaults().withBackend(backend).withThreads(2)
                .withMaxContext(64).withWeightFormat(format))) {
            return lm.logits(PROMPT);
        }
    }

    private static void assertSameBits(float[][] a, float[][] b) {
        assertEquals(a.length, b.length);
        for (int t = 0; t < a.length; t++) {
            assertArrayEquals(a[t], b[t], 0f, "row " + t);
        }
    }

    @Test
    void f32GgufGivesTheSafetensorsLogitsBitForBit() {
        Path st = TestCheckpoints.write(dir.resolve("st"), 64, 2, 512, 11, false);
        Path gguf = GgufFixtures.convert(st, dir.resolve("m.gguf"), n -> GgmlType.F32, null);
        try (Checkpoint a = Checkpoint.open(st); Checkpoint b = Checkpoint.open(gguf)) {
            assertEquals(a.config(), b.config());
            assertEquals(a.tensorNames(), b.tensorNames());
            assertTrue(b.format().startsWith("GGUF v3") && b.format().contains("F32"), b.format());
        }
        for (String backend : TestCheckpoints.backends()) {
            assertSameBits(logits(st, backend, null), logits(gguf, backend, null));
        }
    }

    @Test
    void q8AndQ4GgufBlocksAreK2jsOwnLayout() {
        Path st = TestCheckpoints.write(dir.resolve("st"), 64, 2, 512, 12, false);
        // the file k2j's --quant q8_0 would make at load, and q4_0 with its Q8_0 tied embedding
        Path q8 = GgufFixtures.convert(st, dir.resolve("q8.gguf"), n -> GgmlType.Q8_0, null);
        Path q4 = GgufFixtures.convert(st, dir.resolve("q4.gguf"),
                n -> n.equals("model.embed_tokens.weight") ? GgmlType.Q8_0 : GgmlType.Q4_0, null);
        for (String backend : TestCheckpoints.backends()) {
            assertSameBits(logits(st, backend, WeightFormat.Q8_0), logits(q8, backend, null));
            assertSameBits(logits(st, backend, WeightFormat.Q4_0), logits(q4, backend, null));
        }
    }

    @Test
    void llamaGgufIsUnpermuted() throws IOException {
        Path st = TestCheckpoints.write(dir.resolve("llama"), 64, 2, 512, 13, false);
        String config = Files.readString(st.resolve("config.json"))
                .replace("Qwen2ForCausalLM", "LlamaForCausalLM").replace("\"qwen2\"", "\"llama\"");
        Files.writeString(st.resolve("config.json"), config);
        Path gguf = GgufFixtures.convert(st, dir.resolve("llama.gguf"), n -> GgmlType.F32, null);
        try (Checkpoint b = Checkpoint.open(gguf)) {
            assertEquals("LlamaForCausalLM", b.config().architecture());
        }
        assertSameBits(logits(st, "cpu", null), logits(gguf, "cpu", null));
    }

    @Test
    void kQuantGgufsComputeTheirDecodedWeights() {
        for (DType type : new DType[] {DType.Q4_K, DType.Q5_K, DType.Q6_K}) {
            Path gguf = dir.resolve(type + ".gguf");
            Path f32 = dir.resolve(type + "-f32");
            GgufFixtures.kQuantPair(gguf, f32, type, 21);
            try (Checkpoint ck = Checkpoint.open(gguf)) {
                assertEquals(type, ck.tensor("model.layers.0.mlp.down_proj.weight").dtype());
            }
            float[][] expected = logits(f32, "cpu", null);
            float[][] actual = logits(gguf, "cpu", null);
            double maxDiff = 0;
            double maxAbs = 0;
            for (int t = 0; t < expected.length; t++) {
                for (int i = 0; i < expected[t].length; i++) {
                    maxDiff = Math.max(maxDiff, Math.abs(expected[t][i] - actual[t][i]));
                    maxAbs = Math.max(maxAbs, Math.abs(expected[t][i]));
                }
            }
            assertTrue(maxAbs > 0.1, type + ": logits are not trivial");
            assertTrue(maxDiff <= 1e-4 * maxAbs, type + ": max |Δlogit| " + maxDiff + " of " + maxAbs);
            // and decode (one token at a time) agrees with the prompt pass's last row
            try (LanguageModel lm = LanguageModel.load(gguf, ModelOptions.defaults().withBackend("cpu").withThreads(2)
                    .withMaxContext(64))) {
                float[][] all = lm.logits(PROMPT);
                float[][] shorter = lm.logits(java.util.Arrays.copyOf(PROMPT, 5));
                assertArrayEquals(all[4], shorter[4], 0f, type + ": a row does not depend on the batch");
            }
        }
    }

    @Test
    void aKQuantCannotBeConvertedToAnotherQuantAtLoad() {
        Path gguf = dir.resolve("q4k.gguf");
        GgufFixtures.kQuantPair(gguf, dir.resolve("q4k-f32"), DType.Q4_K, 5);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> logits(gguf, "cpu", WeightFormat.Q8_0));
        assertTrue(e.getMessage().contains("Q4_K") && e.getMessage().contains("q8_0"), e.getMessage());
    }

    @Test
    void unsupportedArchitectureIsNamed() throws IOException {
        Path st = TestCheckpoints.write(dir.resolve("st"), 64, 1, 512, 14, false);
        Path gguf = GgufFixtures.convert(st, dir.resolve("m.gguf"), n -> GgmlType.F32, null);
        byte[] b = Files.readAllBytes(gguf);
        String s = new String(b, java.nio.charset.StandardCharsets.ISO_8859_1).replace("qwen2", "gemma"); // same length
        Path gemma = dir.resolve("gemma.gguf");
        Files.write(gemma, s.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Checkpoint.open(gemma));
        assertTrue(e.getMessage().contains("gemma.gguf") && e.getMessage().contains("'gemma'"), e.getMessage());
    }
}
