package ai.k2j.engine;

import ai.k2j.kernels.Backend;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.Weight;
import ai.k2j.kernels.cpu.CpuBackend;
import ai.k2j.loaders.Checkpoint;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelFormatException;
import ai.k2j.loaders.SafeTensorsWriter;
import ai.k2j.loaders.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * AWQ (GEMM) and GPTQ (4 and 8 bits, with and without desc_act) checkpoints written here in each format's exact
 * layout from random integers, zeros and scales, then read by k2j: the CPU kernels on the packed form must give,
 * bit for bit, the float32 chain Σ_k fma(W[n,k], x[k]) over W decoded by this test's own unpacker (written from the
 * formats' descriptions, independent of k2j's PackedInt), and a model of such layers must match the float32 model
 * of the decoded weights.
 */
class PackedIntCheckpointTest {

    @TempDir
    Path dir;

    /** From AutoAWQ's description: nibble i of a packed int holds column AWQ_PACK_ORDER[i] of its eight. */
    static final int[] AWQ_PACK_ORDER = {0, 2, 4, 6, 1, 3, 5, 7};

    enum Format { AWQ, GPTQ4, GPTQ8, GPTQ4_DESC_ACT }

    /** One layer's integers: q[k][n] (k input, n output), zeros and scales per group, and each input's group. */
    record Layer(int in, int out, int bits, int group, int[][] q, int[][] zeros, float[][] scales, int[] groupOf) {
        /** W[n][k] as the formats define it, in float32. */
        float weight(int n, int k) {
            int g = groupOf[k];
            return (float) (q[k][n] - zeros[g][n]) * scales[g][n];
        }
    }

    static Layer randomLayer(int in, int out, Format f, int group, SplittableRandom rnd) {
        int bits = f == Format.GPTQ8 ? 8 : 4;
        int levels = 1 << bits;
        int groups = in / group;
        int[][] q = new int[in][out];
        for (int[] row : q) {
            for (int n = 0; n < out; n++) {
                row[n] = rnd.nextInt(levels);
            }
        }
        int[][] zeros = new int[groups][out];
        float[][] scales = new float[groups][out];
        for (int g = 0; g < groups; g++) {
            for (int n = 0; n < out; n++) {
                // GPTQ v1 stores zero − 1, so a stored value needs zero ≥ 1
                zeros[g][n] = f == Format.AWQ ? rnd.nextInt(levels) : 1 + rnd.nextInt(levels - 1);
                float s = (float) ((0.5 + rnd.nextDouble()) * 2.0 / (levels * Math.sqrt(in)));
                scales[g][n] = Float.float16ToFloat(Float.floatToFloat16(s)); // what an f16 tensor holds
            }
        }
        int[] groupOf = new int[in];
        for (int k = 0; k < in; k++) {
            groupOf[k] = k / group;
        }
        if (f == Format.GPTQ4_DESC_ACT) { // act-order: inputs were quantized in a permuted order
            for (int k = in - 1; k > 0; k--) {
                int j = rnd.nextInt(k + 1);
                int t = groupOf[k];
                groupOf[k] = groupOf[j];
                groupOf[j] = t;
            }
        }
        return new Layer(in, out, bits, group, q, zeros, scales, groupOf);
    }

    static MemorySegment ints(Arena arena, int[] v) {
        MemorySegment s = arena.allocate(4L * v.length);
        MemorySegment.copy(v, 0, s, ValueLayout.JAVA_INT_UNALIGNED, 0, v.length);
        return s;
    }

    /** The layer's tensors in the format's exact layout, named {@code prefix.qweight} etc. */
    static void pack(List<SafeTensorsWriter.Entry> out, Arena arena, String prefix, Layer l, Format f) {
        int groups = l.scales.length;
        int[] qweight;
        int[] qzeros;
        long[] qShape;
        long[] zShape;
        if (f == Format.AWQ) {
            qweight = new int[l.in * l.out / 8];
            for (int k = 0; k < l.in; k++) {
                for (int b = 0; b < l.out / 8; b++) {
                    int word = 0;
                    for (int i = 0; i < 8; i++) {
                        word |= l.q[k][8 * b + AWQ_PACK_ORDER[i]] << (4 * i);
                    }
                    qweight[k * (l.out / 8) + b] = word;
                }
            }
            qzeros = new int[groups * l.out / 8];
            for (int g = 0; g < groups; g++) {
                for (int b = 0; b < l.out / 8; b++) {
                    int word = 0;
                    for (int i = 0; i < 8; i++) {
                        word |= l.zeros[g][8 * b + AWQ_PACK_ORDER[i]] << (4 * i);
                    }
                    qzeros[g * (l.out / 8) + b] = word;
                }
            }
            qShape = new long[] {l.in, l.out / 8};
            zShape = new long[] {groups, l.out / 8};
        } else {
            int per = 32 / l.bits;
            qweight = new int[l.in / per * l.out];
            for (int i = 0; i < l.in / per; i++) {
                for (int n = 0; n < l.out; n++) {
                    int word = 0;
                    for (int j = 0; j < per; j++) {
                        word |= l.q[i * per + j][n] << (l.bits * j);
                    }
                    qweight[i * l.out + n] = word;
                }
            }
            qzeros = new int[groups * l.out / per];
            for (int g = 0; g < groups; g++) {
                for (int m = 0; m < l.out / per; m++) {
                    int word = 0;
                    for (int j = 0; j < per; j++) {
                        word |= (l.zeros[g][m * per + j] - 1) << (l.bits * j); // v1: stored as zero − 1
                    }
                    qzeros[g * (l.out / per) + m] = word;
                }
            }
            qShape = new long[] {l.in / per, l.out};
            zShape = new long[] {groups, l.out / per};
            out.add(new SafeTensorsWriter.Entry(prefix + ".g_idx", DType.I32, new long[] {l.in}, ints(arena, l.groupOf)));
        }
        out.add(new SafeTensorsWriter.Entry(prefix + ".qweight", DType.I32, qShape, ints(arena, qweight)));
        out.add(new SafeTensorsWriter.Entry(prefix + ".qzeros", DType.I32, zShape, ints(arena, qzeros)));
        MemorySegment s = arena.allocate(2L * groups * l.out);
        for (int g = 0; g < groups; g++) {
            for (int n = 0; n < l.out; n++) {
                s.set(ValueLayout.JAVA_SHORT_UNALIGNED, 2L * (g * l.out + n), Float.floatToFloat16(l.scales[g][n]));
            }
        }
        out.add(new SafeTensorsWriter.Entry(prefix + ".scales", DType.F16, new long[] {groups, l.out}, s));
    }

    static String quantizationConfig(Format f, int group) {
        return switch (f) {
            case AWQ -> "{\"quant_method\": \"awq\", \"bits\": 4, \"group_size\": " + group
                    + ", \"version\": \"gemm\", \"zero_point\": true}";
            case GPTQ4, GPTQ4_DESC_ACT -> "{\"quant_method\": \"gptq\", \"bits\": 4, \"group_size\": " + group
                    + ", \"desc_act\": " + (f == Format.GPTQ4_DESC_ACT) + ", \"sym\": false}";
            case GPTQ8 -> "{\"quant_method\": \"gptq\", \"bits\": 8, \"group_size\": " + group
                    + ", \"desc_act\": false, \"sym\": true}";
        };
    }

    private Path singleLayer(Format f, Layer l) throws IOException {
        Path d = Files.createDirectories(dir.resolve("layer-" + f));
        Files.writeString(d.resolve("config.json"), "{\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_size\": 64,"
                + " \"intermediate_size\": 64, \"num_hidden_layers\": 1, \"num_attention_heads\": 1, \"vocab_size\": 8,"
                + " \"quantization_config\": " + quantizationConfig(f, l.group) + "}");
        try (Arena arena = Arena.ofConfined()) {
            List<SafeTensorsWriter.Entry> e = new ArrayList<>();
            pack(e, arena, "layer", l, f);
            SafeTensorsWriter.writeCheckpoint(d, e, Long.MAX_VALUE);
        }
        return d;
    }

    @Test
    void kernelsGiveTheFloat32ChainOfTheDecodedWeightsBitForBit() throws IOException {
        SplittableRandom rnd = new SplittableRandom(1);
        for (Format f : Format.values()) {
            int in = 384;
            int out = 200; // not a multiple of the vector width: the scalar edge runs too
            Layer l = randomLayer(in, out, f, 128, rnd);
            Path d = singleLayer(f, l);
            int n = 3;
            float[] x = new float[n * in];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) rnd.nextGaussian();
            }
            try (Checkpoint ck = Checkpoint.open(d); CpuBackend b = new CpuBackend(2)) {
                Tensor w = ck.tensor("layer.weight");
                assertEquals(f == Format.AWQ ? DType.AWQ_INT4 : f == Format.GPTQ8 ? DType.GPTQ_INT8 : DType.GPTQ_INT4,
                        w.dtype());
                assertEquals(List.of((long) out, (long) in), List.of(w.dim(0), w.dim(1)));
                // two stacked parts, as fused q/k/v are: the split must not matter
                Weight weight = b.matrix(List.of(w, w), null);
                assertEquals(2L * in * out * l.bits / 8, weight.byteSize());
                float[] y = matmul(b, weight, x, n);
                float[] one = matmul(b, weight, java.util.Arrays.copyOfRange(x, in, 2 * in), 1);
                for (int t = 0; t < n; t++) {
                    for (int c = 0; c < out; c++) {
                        float chain = 0f;
                        double exact = 0;
                        double mag = 0;
                        for (int k = 0; k < in; k++) {
                            float wk = l.weight(c, k);
                            chain = Math.fma(wk, x[t * in + k], chain);
                            exact += (double) wk * x[t * in + k];
                            mag += Math.abs((double) wk * x[t * in + k]);
                        }
                        String where = f + " token " + t + " column " + c;
                        assertEquals(Float.floatToRawIntBits(chain), Float.floatToRawIntBits(y[t * 2 * out + c]), where);
                        assertEquals(Float.floatToRawIntBits(chain), Float.floatToRawIntBits(y[t * 2 * out + out + c]),
                                where + " (second part)");
                        assertEquals(exact, y[t * 2 * out + c], 1e-5 * mag, where);
                        if (t == 1) {
                            assertEquals(Float.floatToRawIntBits(chain), Float.floatToRawIntBits(one[c]), where);
                        }
                    }
                }
            }
        }
    }

    static float[] matmul(Backend b, Weight w, float[] x, int n) {
        Buffer xb = b.allocate(x.length);
        Buffer out = b.allocate((long) n * w.rows());
        float[] host = new float[(int) ((long) n * w.rows())];
        // upload through a one-row-at-a-time path the Backend contract offers: vector() of F32 tensors
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(4L * x.length);
            MemorySegment.copy(x, 0, s, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, x.length);
            xb = b.vector(List.of(new Tensor("x", DType.F32, new long[] {x.length}, s)));
        }
        b.matmul(w, null, xb, n, out);
        b.download(out, 0, host, 0, host.length);
        return host;
    }

    /** A Qwen2 model whose seven projections per layer are packed layers; and the float32 model of their weights. */
    private void modelPair(Format f, Path packedDir, Path f32Dir, long seed) throws IOException {
        int hidden = 256;
        int inter = 512;
        int vocab = 512;
        int kv = 128;
        SplittableRandom rnd = new SplittableRandom(seed);
        String config = String.format(Locale.ROOT, """
                {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": %d,
                 "intermediate_size": %d, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                 "vocab_size": %d, "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
                 "tie_word_embeddings": true, "eos_token_id": [%d]%s}
                """, hidden, inter, vocab, vocab - 1, "%s");
        Files.createDirectories(packedDir);
        Files.createDirectories(f32Dir);
        Files.writeString(packedDir.resolve("config.json"),
                String.format(Locale.ROOT, config, ", \"quantization_config\": " + quantizationConfig(f, 128)));
        Files.writeString(f32Dir.resolve("config.json"), String.format(Locale.ROOT, config, ""));
        try (Arena arena = Arena.ofConfined()) {
            List<SafeTensorsWriter.Entry> packed = new ArrayList<>();
            List<SafeTensorsWriter.Entry> plain = new ArrayList<>();
            java.util.function.BiConsumer<String, float[]> both = (name, v) -> {
                MemorySegment s = arena.allocate(4L * v.length);
                MemorySegment.copy(v, 0, s, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, v.length);
                long[] shape = name.contains("embed") ? new long[] {vocab, hidden} : new long[] {v.length};
                packed.add(new SafeTensorsWriter.Entry(name, DType.F32, shape, s));
                plain.add(new SafeTensorsWriter.Entry(name, DType.F32, shape, s));
            };
            float[] embed = new float[vocab * hidden];
            for (int i = 0; i < embed.length; i++) {
                embed[i] = (float) rnd.nextGaussian();
            }
            both.accept("model.embed_tokens.weight", embed);
            for (int layer = 0; layer < 2; layer++) {
                String p = "model.layers." + layer + ".";
                for (String[] proj : new String[][] {{"self_attn.q_proj", "256", "256"}, {"self_attn.k_proj", "256", "128"},
                        {"self_attn.v_proj", "256", "128"}, {"self_attn.o_proj", "256", "256"},
                        {"mlp.gate_proj", "256", "512"}, {"mlp.up_proj", "256", "512"}, {"mlp.down_proj", "512", "256"}}) {
                    int in = Integer.parseInt(proj[1]);
                    int out = Integer.parseInt(proj[2]);
                    Layer l = randomLayer(in, out, f, 128, rnd);
                    pack(packed, arena, p + proj[0], l, f);
                    float[] w = new float[out * in];
                    for (int n = 0; n < out; n++) {
                        for (int k = 0; k < in; k++) {
                            w[n * in + k] = l.weight(n, k);
                        }
                    }
                    MemorySegment s = arena.allocate(4L * w.length);
                    MemorySegment.copy(w, 0, s, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, w.length);
                    plain.add(new SafeTensorsWriter.Entry(p + proj[0] + ".weight", DType.F32, new long[] {out, in}, s));
                }
                for (String bias : new String[] {"q_proj", "k_proj", "v_proj"}) {
                    float[] v = new float[bias.equals("q_proj") ? hidden : kv];
                    for (int i = 0; i < v.length; i++) {
                        v[i] = (float) (0.1 * rnd.nextGaussian());
                    }
                    both.accept(p + "self_attn." + bias + ".bias", v);
                }
                float[] ones = new float[hidden];
                java.util.Arrays.fill(ones, 1f);
                both.accept(p + "input_layernorm.weight", ones);
                both.accept(p + "post_attention_layernorm.weight", ones);
            }
            float[] ones = new float[hidden];
            java.util.Arrays.fill(ones, 1f);
            both.accept("model.norm.weight", ones);
            SafeTensorsWriter.writeCheckpoint(packedDir, packed, Long.MAX_VALUE);
            SafeTensorsWriter.writeCheckpoint(f32Dir, plain, Long.MAX_VALUE);
        }
    }

    @Test
    void modelsOfPackedLayersMatchTheirFloat32Weights() throws IOException {
        int[] prompt = ai.k2j.testing.TestCheckpoints.tokens(10, 512, 4);
        for (Format f : Format.values()) {
            Path packed = dir.resolve("m-" + f);
            Path f32 = dir.resolve("f-" + f);
            modelPair(f, packed, f32, 40 + f.ordinal());
            ModelOptions o = ModelOptions.defaults().withBackend("cpu").withThreads(2).withMaxContext(64);
            float[][] a;
            float[][] e;
            try (LanguageModel lm = LanguageModel.load(packed, o)) {
                a = lm.logits(prompt);
            }
            try (LanguageModel lm = LanguageModel.load(f32, o)) {
                e = lm.logits(prompt);
            }
            double maxDiff = 0;
            double maxAbs = 0;
            for (int t = 0; t < prompt.length; t++) {
                for (int i = 0; i < e[t].length; i++) {
                    maxDiff = Math.max(maxDiff, Math.abs(e[t][i] - a[t][i]));
                    maxAbs = Math.max(maxAbs, Math.abs(e[t][i]));
                }
            }
            assertTrue(maxAbs > 0.1, f + ": logits are not trivial");
            assertTrue(maxDiff <= 1e-4 * maxAbs, f + ": max |Δlogit| " + maxDiff + " of " + maxAbs);
        }
    }

    @Test
    void badPackingIsNamed() throws IOException {
        SplittableRandom rnd = new SplittableRandom(3);
        Layer l = randomLayer(256, 64, Format.GPTQ4, 128, rnd);
        Path d = singleLayer(Format.GPTQ4, l);
        // group size that does not divide the inputs
        String cfg = Files.readString(d.resolve("config.json"));
        Files.writeString(d.resolve("config.json"), cfg.replace("\"group_size\": 128", "\"group_size\": 96"));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Checkpoint.open(d));
        assertTrue(e.getMessage().contains("'layer'") && e.getMessage().contains("group_size 96"), e.getMessage());
        // unsupported bits
        Files.writeString(d.resolve("config.json"), cfg.replace("\"bits\": 4", "\"bits\": 3"));
        e = assertThrows(ModelFormatException.class, () -> Checkpoint.open(d));
        assertTrue(e.getMessage().contains("quantization_config.bits 3"), e.getMessage());
        // AWQ config over GPTQ tensors: read as AWQ, the qweight holds 32 inputs, which the groups do not divide
        Files.writeString(d.resolve("config.json"), cfg.replace(quantizationConfig(Format.GPTQ4, 128),
                quantizationConfig(Format.AWQ, 128)));
        e = assertThrows(ModelFormatException.class, () -> Checkpoint.open(d));
        assertTrue(e.getMessage().contains("'layer'") && e.getMessage().contains("32 inputs"), e.getMessage());
        // GPTQ scales with a wrong group count
        Files.writeString(d.resolve("config.json"), cfg.replace("\"group_size\": 128", "\"group_size\": 64"));
        Path noGidx = Files.createDirectories(dir.resolve("no-gidx"));
        Files.writeString(noGidx.resolve("config.json"), cfg.replace("\"group_size\": 128", "\"group_size\": 64"));
        try (Arena arena = Arena.ofConfined()) {
            List<SafeTensorsWriter.Entry> entries = new ArrayList<>();
            pack(entries, arena, "layer", l, Format.GPTQ4);
            entries.removeIf(x -> x.name().endsWith(".g_idx"));
            SafeTensorsWriter.writeCheckpoint(noGidx, entries, Long.MAX_VALUE);
        }
        e = assertThrows(ModelFormatException.class, () -> Checkpoint.open(noGidx));
        assertTrue(e.getMessage().contains("'layer.scales'") && e.getMessage().contains("2 groups"), e.getMessage());
        // missing scales
        Files.writeString(d.resolve("config.json"), cfg);
        Path noScales = Files.createDirectories(dir.resolve("no-scales"));
        Files.writeString(noScales.resolve("config.json"), cfg);
        try (Arena arena = Arena.ofConfined()) {
            List<SafeTensorsWriter.Entry> entries = new ArrayList<>();
            pack(entries, arena, "layer", l, Format.GPTQ4);
            entries.removeIf(x -> x.name().endsWith(".scales"));
            SafeTensorsWriter.writeCheckpoint(noScales, entries, Long.MAX_VALUE);
        }
        e = assertThrows(ModelFormatException.class, () -> Checkpoint.open(noScales));
        assertTrue(e.getMessage().contains("'layer.scales'"), e.getMessage());
    }
}
