package ai.k2j.testing;

import ai.k2j.loaders.Checkpoint;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.GgmlType;
import ai.k2j.loaders.GgufWriter;
import ai.k2j.loaders.KQuants;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.Quantizer;
import ai.k2j.loaders.SafeTensorsWriter;
import ai.k2j.loaders.Tensor;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.function.Function;

/**
 * GGUF files for tests, written the way llama.cpp's convert_hf_to_gguf.py writes them: tensors renamed
 * (model.layers.N.self_attn.q_proj.weight → blk.N.attn_q.weight), Llama's q/k rows permuted for its interleaved
 * RoPE, {@code <arch>.*} metadata from config.json, and the tokenizer as {@code tokenizer.ggml.*} (tokens by id,
 * NORMAL/CONTROL/USER_DEFINED/UNUSED types, "a b" merges, the pre-tokenizer's name).
 */
public final class GgufFixtures {
    private GgufFixtures() {
    }

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** convert_hf_to_gguf's names, HF suffix → GGUF suffix. */
    private static final Map<String, String> LAYER = Map.ofEntries(
            Map.entry("input_layernorm.weight", "attn_norm.weight"),
            Map.entry("self_attn.q_proj.weight", "attn_q.weight"), Map.entry("self_attn.k_proj.weight", "attn_k.weight"),
            Map.entry("self_attn.v_proj.weight", "attn_v.weight"), Map.entry("self_attn.q_proj.bias", "attn_q.bias"),
            Map.entry("self_attn.k_proj.bias", "attn_k.bias"), Map.entry("self_attn.v_proj.bias", "attn_v.bias"),
            Map.entry("self_attn.o_proj.weight", "attn_output.weight"),
            Map.entry("self_attn.q_norm.weight", "attn_q_norm.weight"),
            Map.entry("self_attn.k_norm.weight", "attn_k_norm.weight"),
            Map.entry("post_attention_layernorm.weight", "ffn_norm.weight"),
            Map.entry("mlp.gate_proj.weight", "ffn_gate.weight"), Map.entry("mlp.up_proj.weight", "ffn_up.weight"),
            Map.entry("mlp.down_proj.weight", "ffn_down.weight"));

    public static String ggufName(String hf) {
        switch (hf) {
            case "model.embed_tokens.weight" -> {
                return "token_embd.weight";
            }
            case "model.norm.weight" -> {
                return "output_norm.weight";
            }
            case "lm_head.weight" -> {
                return "output.weight";
            }
            default -> {
            }
        }
        String rest = hf.substring("model.layers.".length());
        int dot = rest.indexOf('.');
        return "blk." + rest.substring(0, dot) + "." + LAYER.get(rest.substring(dot + 1));
    }

    /**
     * Converts a safetensors checkpoint to GGUF: every 2-D matrix as {@code matrixType.apply(hfName)} (F32, F16,
     * BF16 copied/converted; Q8_0/Q4_0 through k2j's ggml-exact quantizer), vectors as F32.
     */
    public static Path convert(Path dir, Path out, Function<String, GgmlType> matrixType, Path tokenizerDir) {
        try (Checkpoint ck = Checkpoint.open(dir); Arena arena = Arena.ofConfined()) {
            ModelConfig c = ck.config();
            String arch = switch (c.architecture()) {
                case "Qwen2ForCausalLM" -> "qwen2";
                case "Qwen3ForCausalLM" -> "qwen3";
                case "LlamaForCausalLM" -> "llama";
                default -> throw new IllegalArgumentException(c.architecture());
            };
            GgufWriter w = new GgufWriter();
            w.putString("general.architecture", arch).putString("general.name", "test")
                    .putU32(arch + ".context_length", c.maxPositionEmbeddings())
                    .putU32(arch + ".embedding_length", c.hiddenSize())
                    .putU32(arch + ".block_count", c.numLayers())
                    .putU32(arch + ".feed_forward_length", c.intermediateSize())
                    .putU32(arch + ".attention.head_count", c.numHeads())
                    .putU32(arch + ".attention.head_count_kv", c.numKvHeads())
                    .putF32(arch + ".rope.freq_base", (float) c.ropeTheta())
                    .putF32(arch + ".attention.layer_norm_rms_epsilon", (float) c.rmsNormEps());
            if (arch.equals("qwen3")) {
                w.putU32(arch + ".attention.key_length", c.headDim()).putU32(arch + ".attention.value_length", c.headDim());
            }
            if (c.eosTokenIds().length > 0) {
                w.putU32("tokenizer.ggml.eos_token_id", c.eosTokenIds()[0]);
            }
            if (tokenizerDir != null) {
                putTokenizer(w, tokenizerDir, c.vocabSize());
            }
            for (String name : ck.tensorNames()) {
                if (name.equals("lm_head.weight") && c.tieWordEmbeddings()) {
                    continue;
                }
                Tensor t = ck.tensor(name);
                float[] f = floats(t);
                GgmlType type = t.rank() == 2 ? matrixType.apply(name) : GgmlType.F32;
                if (arch.equals("llama") && (name.endsWith("q_proj.weight") || name.endsWith("k_proj.weight"))) {
                    int groups = name.endsWith("q_proj.weight") ? c.numHeads() : c.numKvHeads();
                    f = permuteRows(f, (int) t.dim(0), (int) t.dim(1), groups);
                }
                w.addTensor(ggufName(name), type, t.shape(), encode(arena, f, type, t.shape()));
            }
            w.write(out);
        }
        return out;
    }

    /** convert_hf_to_gguf's permute: within each head of d rows, HF row j·d/2 + i goes to row 2i + j. */
    static float[] permuteRows(float[] f, int rows, int cols, int groups) {
        float[] out = new float[f.length];
        int d = rows / groups;
        for (int h = 0; h < groups; h++) {
            for (int i = 0; i < d / 2; i++) {
                for (int j = 0; j < 2; j++) {
                    System.arraycopy(f, (h * d + j * (d / 2) + i) * cols, out, (h * d + 2 * i + j) * cols, cols);
                }
            }
        }
        return out;
    }

    static float[] floats(Tensor t) {
        float[] f = new float[(int) t.elements()];
        for (int i = 0; i < f.length; i++) {
            f[i] = switch (t.dtype()) {
                case F32 -> t.data().get(F32, 4L * i);
                case BF16 -> Float.intBitsToFloat(t.data().get(ValueLayout.JAVA_SHORT_UNALIGNED, 2L * i) << 16);
                default -> throw new IllegalArgumentException(t.dtype().toString());
            };
        }
        return f;
    }

    static MemorySegment encode(Arena arena, float[] f, GgmlType type, long[] shape) {
        switch (type) {
            case F32 -> {
                MemorySegment s = arena.allocate(4L * f.length);
                MemorySegment.copy(f, 0, s, F32, 0, f.length);
                return s;
            }
            case F16 -> {
                MemorySegment s = arena.allocate(2L * f.length);
                for (int i = 0; i < f.length; i++) {
                    s.set(ValueLayout.JAVA_SHORT_UNALIGNED, 2L * i, Float.floatToFloat16(f[i]));
                }
                return s;
            }
            case Q8_0, Q4_0 -> {
                int cols = (int) shape[shape.length - 1];
                int rows = f.length / cols;
                MemorySegment s = arena.allocate(Quantizer.bytesFor(type.dtype(), rows, cols));
                long rowBytes = type.dtype().bytesFor(cols);
                for (int r = 0; r < rows; r++) {
                    Quantizer.quantizeRow(type.dtype(), f, r * cols, cols, s, r * rowBytes);
                }
                return s;
            }
            default -> throw new IllegalArgumentException("no test encoder for " + type);
        }
    }

    /** tokenizer.json (+ tokenizer_config.json's chat template) as tokenizer.ggml.* metadata, as the converter does. */
    public static void putTokenizer(GgufWriter w, Path tokenizerDir, int vocabSize) {
        try {
            ObjectMapper json = new ObjectMapper();
            JsonNode tok = json.readTree(tokenizerDir.resolve("tokenizer.json").toFile());
            Map<Integer, String> byId = new TreeMap<>();
            tok.get("model").get("vocab").properties().forEach(e -> byId.put(e.getValue().asInt(), e.getKey()));
            Map<Integer, JsonNode> added = new TreeMap<>();
            for (JsonNode a : tok.get("added_tokens")) {
                byId.put(a.get("id").asInt(), a.get("content").asText());
                added.put(a.get("id").asInt(), a);
            }
            int n = Math.max(vocabSize, ((TreeMap<Integer, String>) byId).lastKey() + 1);
            List<String> tokens = new ArrayList<>(n);
            int[] types = new int[n];
            for (int i = 0; i < n; i++) {
                if (!byId.containsKey(i)) {
                    tokens.add("[PAD" + i + "]");
                    types[i] = 5;
                } else if (added.containsKey(i)) {
                    String content = byId.get(i);
                    boolean control = added.get(i).path("special").asBoolean()
                            || (content.startsWith("<|") && content.endsWith("|>"));
                    tokens.add(content);
                    types[i] = control ? 3 : 4;
                } else {
                    tokens.add(byId.get(i));
                    types[i] = 1;
                }
            }
            List<String> merges = new ArrayList<>();
            for (JsonNode m : tok.get("model").get("merges")) {
                merges.add(m.isArray() ? m.get(0).asText() + " " + m.get(1).asText() : m.asText());
            }
            w.putString("tokenizer.ggml.model", "gpt2").putString("tokenizer.ggml.pre", "qwen2")
                    .putStrings("tokenizer.ggml.tokens", tokens).putI32s("tokenizer.ggml.token_type", types)
                    .putStrings("tokenizer.ggml.merges", merges);
            Path config = tokenizerDir.resolve("tokenizer_config.json");
            if (Files.exists(config)) {
                JsonNode template = json.readTree(config.toFile()).get("chat_template");
                if (template != null && template.isTextual()) {
                    w.putString("tokenizer.chat_template", template.asText());
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * A random Qwen2 model whose matrices are K-quant blocks of {@code type}, written twice: as a GGUF file and as
     * a float32 safetensors checkpoint of the same weights decoded by {@link KQuants} (so the two must agree).
     * hidden 256, intermediate 512, 2 layers, 4 heads / 2 KV heads, vocabulary 512 (rows must be multiples of 256).
     */
    public static void kQuantPair(Path gguf, Path f32Dir, DType type, long seed) {
        int hidden = 256;
        int inter = 512;
        int layers = 2;
        int vocab = 512;
        int heads = 4;
        int kvHeads = 2;
        int kv = hidden / heads * kvHeads;
        SplittableRandom rnd = new SplittableRandom(seed);
        try (Arena arena = Arena.ofConfined()) {
            Files.createDirectories(f32Dir);
            Files.writeString(f32Dir.resolve("config.json"), String.format(Locale.ROOT, """
                    {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": %d,
                     "intermediate_size": %d, "num_hidden_layers": %d, "num_attention_heads": %d,
                     "num_key_value_heads": %d, "vocab_size": %d, "max_position_embeddings": 1024,
                     "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": true, "eos_token_id": [%d]}
                    """, hidden, inter, layers, heads, kvHeads, vocab, vocab - 1));
            GgufWriter w = new GgufWriter();
            w.putString("general.architecture", "qwen2").putU32("qwen2.context_length", 1024)
                    .putU32("qwen2.embedding_length", hidden).putU32("qwen2.block_count", layers)
                    .putU32("qwen2.feed_forward_length", inter).putU32("qwen2.attention.head_count", heads)
                    .putU32("qwen2.attention.head_count_kv", kvHeads).putF32("qwen2.rope.freq_base", 10000f)
                    .putF32("qwen2.attention.layer_norm_rms_epsilon", 1e-6f)
                    .putU32("tokenizer.ggml.eos_token_id", vocab - 1);
            List<SafeTensorsWriter.Entry> st = new ArrayList<>();
            GgmlType gt = GgmlType.of(type);
            java.util.function.BiConsumer<String, long[]> matrix = (hf, shape) -> {
                MemorySegment blocks = randomBlocks(arena, type, shape[0], shape[1], 1.0 / Math.sqrt(shape[1]), rnd);
                w.addTensor(ggufName(hf), gt, shape, blocks);
                float[] f = new float[(int) (shape[0] * shape[1])];
                long rowBytes = type.bytesFor(shape[1]);
                for (int r = 0; r < shape[0]; r++) {
                    KQuants.dequantizeRow(type, blocks, r * rowBytes, (int) shape[1], f, (int) (r * shape[1]));
                }
                MemorySegment s = arena.allocate(4L * f.length);
                MemorySegment.copy(f, 0, s, F32, 0, f.length);
                st.add(new SafeTensorsWriter.Entry(hf, DType.F32, shape, s));
            };
            java.util.function.BiConsumer<String, Integer> vector = (hf, n) -> {
                float[] f = new float[n];
                for (int i = 0; i < n; i++) {
                    f[i] = (float) (hf.endsWith("bias") ? 0.1 * rnd.nextGaussian() : 1 + 0.1 * rnd.nextGaussian());
                }
                MemorySegment s = arena.allocate(4L * n);
                MemorySegment.copy(f, 0, s, F32, 0, n);
                w.addTensor(ggufName(hf), GgmlType.F32, new long[] {n}, s);
                st.add(new SafeTensorsWriter.Entry(hf, DType.F32, new long[] {n}, s));
            };
            matrix.accept("model.embed_tokens.weight", new long[] {vocab, hidden});
            for (int l = 0; l < layers; l++) {
                String p = "model.layers." + l + ".";
                vector.accept(p + "input_layernorm.weight", hidden);
                matrix.accept(p + "self_attn.q_proj.weight", new long[] {hidden, hidden});
                matrix.accept(p + "self_attn.k_proj.weight", new long[] {kv, hidden});
                matrix.accept(p + "self_attn.v_proj.weight", new long[] {kv, hidden});
                vector.accept(p + "self_attn.q_proj.bias", hidden);
                vector.accept(p + "self_attn.k_proj.bias", kv);
                vector.accept(p + "self_attn.v_proj.bias", kv);
                matrix.accept(p + "self_attn.o_proj.weight", new long[] {hidden, hidden});
                vector.accept(p + "post_attention_layernorm.weight", hidden);
                matrix.accept(p + "mlp.gate_proj.weight", new long[] {inter, hidden});
                matrix.accept(p + "mlp.up_proj.weight", new long[] {inter, hidden});
                matrix.accept(p + "mlp.down_proj.weight", new long[] {hidden, inter});
            }
            vector.accept("model.norm.weight", hidden);
            w.write(gguf);
            SafeTensorsWriter.writeCheckpoint(f32Dir, st, Long.MAX_VALUE);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * Random K-quant blocks whose values have about {@code scale} magnitude: random quants, scales and mins,
     * with the f16 super-block factors chosen so that (d·scale)·q spans about ±2·scale.
     */
    public static MemorySegment randomBlocks(Arena arena, DType type, long rows, long cols, double scale,
                                             SplittableRandom rnd) {
        long blocks = rows * cols / 256;
        MemorySegment s = arena.allocate(blocks * type.blockBytes());
        for (long b = 0; b < blocks; b++) {
            long at = b * type.blockBytes();
            for (int i = 0; i < type.blockBytes(); i++) {
                s.set(ValueLayout.JAVA_BYTE, at + i, (byte) rnd.nextInt(256));
            }
            switch (type) {
                case Q4_K, Q5_K -> {
                    int levels = type == DType.Q4_K ? 15 : 31;
                    float d = (float) (4 * scale / (63.0 * levels) * (0.5 + rnd.nextDouble()));
                    s.set(ValueLayout.JAVA_SHORT_UNALIGNED, at, Float.floatToFloat16(d));
                    s.set(ValueLayout.JAVA_SHORT_UNALIGNED, at + 2, Float.floatToFloat16(d * levels / 2));
                }
                case Q6_K -> {
                    float d = (float) (2 * scale / (127.0 * 32) * (0.5 + rnd.nextDouble()));
                    s.set(ValueLayout.JAVA_SHORT_UNALIGNED, at + 208, Float.floatToFloat16(d));
                }
                default -> throw new IllegalArgumentException(type.toString());
            }
        }
        return s;
    }
}
