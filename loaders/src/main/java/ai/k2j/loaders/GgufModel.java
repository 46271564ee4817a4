package ai.k2j.loaders;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A GGUF file read as a k2j model: its {@code <arch>.*} metadata as a {@link ModelConfig} (what config.json would
 * say), its end-of-sequence ids as a {@link GenerationConfig}, and its tensors under the HF names the model
 * definitions look up ({@code blk.0.attn_q.weight} → {@code model.layers.0.self_attn.q_proj.weight}).
 *
 * <p>Architectures: {@code qwen2}, {@code qwen3} and {@code llama}. llama.cpp's converter permutes the rows of
 * Llama's q and k projections so that its interleaved RoPE applies to them; k2j rotates halves (as HF does), so
 * those two matrices are un-permuted here into a copy (whole rows move, so every row-blocked type copies exactly;
 * the other tensors stay zero-copy). Qwen2 and Qwen3 GGUFs use the rotate-half RoPE and are not permuted.
 */
public final class GgufModel {

    private static final Map<String, String> ARCHITECTURES = Map.of(
            "qwen2", "Qwen2ForCausalLM", "qwen3", "Qwen3ForCausalLM", "llama", "LlamaForCausalLM");

    private final GgufFile file;
    private final ModelConfig config;
    private final GenerationConfig generationConfig;
    private final Map<String, Tensor> tensors;

    private GgufModel(GgufFile file, ModelConfig config, GenerationConfig generationConfig, Map<String, Tensor> tensors) {
        this.file = file;
        this.config = config;
        this.generationConfig = generationConfig;
        this.tensors = tensors;
    }

    /** Reads the model; the permuted copies (Llama's q/k) are allocated in {@code arena}. */
    public static GgufModel of(GgufFile gguf, Arena arena) {
        String src = gguf.path().toString();
        String arch = gguf.string("general.architecture");
        String hfClass = ARCHITECTURES.get(arch);
        if (hfClass == null) {
            throw new ModelFormatException(src + ": GGUF architecture '" + arch + "' is not supported (k2j reads "
                    + String.join(", ", new java.util.TreeSet<>(ARCHITECTURES.keySet())) + ")");
        }
        if (gguf.hasTensor("rope_freqs.weight")) {
            throw new ModelFormatException(src + ": tensor 'rope_freqs.weight' (llama3 RoPE frequency factors) is not"
                    + " supported in GGUF files yet; load the safetensors checkpoint instead");
        }
        Tensor embed = gguf.tensor("token_embd.weight");
        int layers = (int) positive(gguf, arch + ".block_count");
        int hidden = (int) positive(gguf, arch + ".embedding_length");
        int heads = (int) positive(gguf, arch + ".attention.head_count");

        ObjectNode c = new ObjectMapper().createObjectNode();
        c.putArray("architectures").add(hfClass);
        c.put("model_type", arch);
        c.put("hidden_size", hidden);
        c.put("intermediate_size", positive(gguf, arch + ".feed_forward_length"));
        c.put("num_hidden_layers", layers);
        c.put("num_attention_heads", heads);
        c.put("num_key_value_heads", gguf.integer(arch + ".attention.head_count_kv", heads));
        if (gguf.has(arch + ".attention.key_length")) {
            c.put("head_dim", positive(gguf, arch + ".attention.key_length"));
        }
        c.put("vocab_size", embed.dim(0));
        c.put("max_position_embeddings", gguf.integer(arch + ".context_length", 32768));
        c.put("rms_norm_eps", decimal(gguf.real(arch + ".attention.layer_norm_rms_epsilon", 1e-6)));
        c.put("rope_theta", decimal(gguf.real(arch + ".rope.freq_base", 10000.0)));
        if (gguf.has(arch + ".rope.scaling.type") && !gguf.string(arch + ".rope.scaling.type").equals("none")) {
            throw new ModelFormatException(src + ": metadata '" + arch + ".rope.scaling.type' = '"
                    + gguf.string(arch + ".rope.scaling.type") + "' is not supported in GGUF files yet");
        }
        c.put("tie_word_embeddings", !gguf.hasTensor("output.weight"));
        // what config.json would say of unquantized weights (info shows it); quantized files say bfloat16
        c.put("torch_dtype", switch (embed.dtype()) {
            case F32 -> "float32";
            case F16 -> "float16";
            default -> "bfloat16";
        });
        ArrayNode eos = c.putArray("eos_token_id");
        for (String key : List.of("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id")) {
            if (gguf.has(key)) {
                long id = gguf.integer(key);
                if (id < 0 || id >= embed.dim(0)) {
                    throw new ModelFormatException(src + ": metadata '" + key + "' = " + id + " is outside the "
                            + embed.dim(0) + "-token vocabulary");
                }
                boolean seen = false;
                for (var e : eos) {
                    seen |= e.asLong() == id;
                }
                if (!seen) {
                    eos.add(id);
                }
            }
        }
        if (gguf.has("tokenizer.ggml.bos_token_id")) {
            c.put("bos_token_id", gguf.integer("tokenizer.ggml.bos_token_id"));
        }
        ModelConfig config = ModelConfig.parse(c.toString(), src + " (GGUF metadata)");
        GenerationConfig generation = GenerationConfig.parse("{\"eos_token_id\": " + eos + "}", src);

        Map<String, Tensor> named = new TreeMap<>();
        for (GgufFile.TensorInfo info : gguf.tensorInfos().values()) {
            String hf = hfName(info.name());
            if (hf == null) {
                continue; // e.g. rope_freqs or tensors of parts k2j does not run; unused names are not loaded
            }
            Tensor t = gguf.tensor(info.name());
            if (arch.equals("llama") && (info.name().endsWith(".attn_q.weight") || info.name().endsWith(".attn_k.weight"))) {
                int groups = info.name().endsWith(".attn_q.weight") ? heads
                        : (int) gguf.integer(arch + ".attention.head_count_kv", heads);
                t = unpermuteRows(t, groups, arena, src);
            }
            named.put(hf, new Tensor(hf, t.dtype(), t.shape(), t.data()));
        }
        return new GgufModel(gguf, config, generation, Collections.unmodifiableMap(named));
    }

    /**
     * GGUF stores these as f32 that the converter rounded from config.json's decimal: the shortest decimal of that
     * float is config.json's value (1e-6, not 9.99999997e-7), so the model computes as from config.json.
     */
    private static double decimal(double f32) {
        return Double.parseDouble(Float.toString((float) f32));
    }

    private static long positive(GgufFile gguf, String key) {
        long v = gguf.integer(key);
        if (v <= 0 || v > Integer.MAX_VALUE) {
            throw new ModelFormatException(gguf.path() + ": metadata '" + key + "' = " + v + ", expected 1.."
                    + Integer.MAX_VALUE);
        }
        return v;
    }

    private static final Map<String, String> LAYER_NAMES = new LinkedHashMap<>();

    static {
        LAYER_NAMES.put("attn_norm.weight", "input_layernorm.weight");
        LAYER_NAMES.put("attn_q.weight", "self_attn.q_proj.weight");
        LAYER_NAMES.put("attn_k.weight", "self_attn.k_proj.weight");
        LAYER_NAMES.put("attn_v.weight", "self_attn.v_proj.weight");
        LAYER_NAMES.put("attn_q.bias", "self_attn.q_proj.bias");
        LAYER_NAMES.put("attn_k.bias", "self_attn.k_proj.bias");
        LAYER_NAMES.put("attn_v.bias", "self_attn.v_proj.bias");
        LAYER_NAMES.put("attn_output.weight", "self_attn.o_proj.weight");
        LAYER_NAMES.put("attn_q_norm.weight", "self_attn.q_norm.weight");
        LAYER_NAMES.put("attn_k_norm.weight", "self_attn.k_norm.weight");
        LAYER_NAMES.put("ffn_norm.weight", "post_attention_layernorm.weight");
        LAYER_NAMES.put("ffn_gate.weight", "mlp.gate_proj.weight");
        LAYER_NAMES.put("ffn_up.weight", "mlp.up_proj.weight");
        LAYER_NAMES.put("ffn_down.weight", "mlp.down_proj.weight");
    }

    /** The HF name of a GGUF tensor name, or null for names k2j does not map. */
    static String hfName(String gguf) {
        switch (gguf) {
            case "token_embd.weight" -> {
                return "model.embed_tokens.weight";
            }
            case "output_norm.weight" -> {
                return "model.norm.weight";
            }
            case "output.weight" -> {
                return "lm_head.weight";
            }
            default -> {
            }
        }
        if (!gguf.startsWith("blk.")) {
            return null;
        }
        int dot = gguf.indexOf('.', 4);
        if (dot < 0) {
            return null;
        }
        String layer = gguf.substring(4, dot);
        if (layer.isEmpty() || !layer.chars().allMatch(Character::isDigit) || layer.length() > 6) {
            return null;
        }
        String part = LAYER_NAMES.get(gguf.substring(dot + 1));
        return part == null ? null : "model.layers." + Integer.parseInt(layer) + "." + part;
    }

    /**
     * Undoes convert_hf_to_gguf's {@code permute}: within each of {@code groups} heads of d rows, GGUF row
     * {@code 2i + j} is HF row {@code j·d/2 + i}.
     */
    static Tensor unpermuteRows(Tensor t, int groups, Arena arena, String src) {
        if (t.rank() != 2 || t.dim(0) % groups != 0 || (t.dim(0) / groups) % 2 != 0) {
            throw new ModelFormatException(src + ": tensor '" + t.name() + "' " + t + " cannot be split into "
                    + groups + " heads of an even number of rows");
        }
        long rows = t.dim(0);
        long rowBytes = t.dtype().bytesFor(t.dim(1));
        int d = (int) (rows / groups);
        MemorySegment out = arena.allocate(t.byteSize(), 64);
        for (int h = 0; h < groups; h++) {
            for (int i = 0; i < d / 2; i++) {
                for (int j = 0; j < 2; j++) {
                    long from = (long) h * d + 2L * i + j;
                    long to = (long) h * d + (long) j * (d / 2) + i;
                    MemorySegment.copy(t.data(), from * rowBytes, out, to * rowBytes, rowBytes);
                }
            }
        }
        return new Tensor(t.name(), t.dtype(), t.shape(), out);
    }

    public GgufFile file() {
        return file;
    }

    public ModelConfig config() {
        return config;
    }

    public GenerationConfig generationConfig() {
        return generationConfig;
    }

    /** The tensors k2j maps, by HF name. */
    public Map<String, Tensor> tensors() {
        return tensors;
    }

    /**
     * What the file holds, for {@code k2j info}: "GGUF v3, Q4_K_M: Q4_K ×n, Q6_K ×m, F32 ×k" (the file type name
     * from general.file_type when present, then the tensor types by count).
     */
    public String describe() {
        Map<GgmlType, Integer> counts = new TreeMap<>();
        for (GgufFile.TensorInfo t : file.tensorInfos().values()) {
            counts.merge(t.type(), 1, Integer::sum);
        }
        StringBuilder sb = new StringBuilder("GGUF v" + file.version());
        if (file.has("general.file_type")) {
            sb.append(", ").append(fileTypeName(file.integer("general.file_type")));
        }
        sb.append(" (");
        String sep = "";
        for (Map.Entry<GgmlType, Integer> e : counts.entrySet()) {
            sb.append(sep).append(e.getKey()).append(" ×").append(e.getValue());
            sep = ", ";
        }
        return sb.append(" tensors)").toString();
    }

    /** llama.cpp's name of the file type (general.file_type), e.g. MOSTLY_Q4_K_M, or "mixed" when absent. */
    public String fileType() {
        return file.has("general.file_type") ? fileTypeName(file.integer("general.file_type")) : "mixed";
    }

    /** llama.cpp's llama_ftype names (general.file_type). */
    static String fileTypeName(long ftype) {
        return switch ((int) ftype) {
            case 0 -> "ALL_F32";
            case 1 -> "MOSTLY_F16";
            case 2 -> "MOSTLY_Q4_0";
            case 3 -> "MOSTLY_Q4_1";
            case 7 -> "MOSTLY_Q8_0";
            case 8 -> "MOSTLY_Q5_0";
            case 9 -> "MOSTLY_Q5_1";
            case 10 -> "MOSTLY_Q2_K";
            case 11 -> "MOSTLY_Q3_K_S";
            case 12 -> "MOSTLY_Q3_K_M";
            case 13 -> "MOSTLY_Q3_K_L";
            case 14 -> "MOSTLY_Q4_K_S";
            case 15 -> "MOSTLY_Q4_K_M";
            case 16 -> "MOSTLY_Q5_K_S";
            case 17 -> "MOSTLY_Q5_K_M";
            case 18 -> "MOSTLY_Q6_K";
            case 32 -> "MOSTLY_BF16";
            default -> "file type " + ftype;
        };
    }
}
