package ai.k2j.loaders;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * The architecture half of an HF {@code config.json} for {@code Qwen2ForCausalLM} (and close relatives).
 * Reads both the classic form ({@code rope_theta}, {@code rope_scaling}) and the transformers-5 form
 * ({@code rope_parameters}).
 */
public record ModelConfig(
        String architecture,
        String modelType,
        int hiddenSize,
        int intermediateSize,
        int numLayers,
        int numHeads,
        int numKvHeads,
        int headDim,
        int vocabSize,
        int maxPositionEmbeddings,
        double rmsNormEps,
        double ropeTheta,
        RopeScaling ropeScaling,
        boolean tieWordEmbeddings,
        String torchDtype,
        int bosTokenId,
        int[] eosTokenIds) {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Set<String> SUPPORTED_ROPE = Set.of("default", "yarn", "linear", "dynamic");

    public ModelConfig {
        if (hiddenSize <= 0 || intermediateSize <= 0 || numLayers <= 0 || numHeads <= 0 || numKvHeads <= 0
                || headDim <= 0 || vocabSize <= 0) {
            throw new ModelFormatException("config: all sizes must be positive (hidden_size=" + hiddenSize
                    + ", intermediate_size=" + intermediateSize + ", num_hidden_layers=" + numLayers
                    + ", num_attention_heads=" + numHeads + ", num_key_value_heads=" + numKvHeads
                    + ", head_dim=" + headDim + ", vocab_size=" + vocabSize + ")");
        }
        if (numHeads % numKvHeads != 0) {
            throw new ModelFormatException("config: num_attention_heads (" + numHeads
                    + ") is not a multiple of num_key_value_heads (" + numKvHeads + ")");
        }
        if (headDim % 2 != 0) {
            throw new ModelFormatException("config: head_dim must be even for RoPE, got " + headDim);
        }
        eosTokenIds = eosTokenIds == null ? new int[0] : eosTokenIds.clone();
    }

    public int qDim() {
        return numHeads * headDim;
    }

    public int kvDim() {
        return numKvHeads * headDim;
    }

    /** Number of query heads sharing one key/value head (GQA group size). */
    public int groupSize() {
        return numHeads / numKvHeads;
    }

    /** Parameter count implied by the shapes (embedding counted once when tied). */
    public long parameterCount() {
        long h = hiddenSize, q = qDim(), kv = kvDim(), ff = intermediateSize;
        long perLayer = h * q + q          // q_proj + bias
                + 2 * (h * kv + kv)        // k_proj, v_proj + bias
                + q * h                    // o_proj
                + 3 * h * ff               // gate, up, down
                + 2 * h;                   // two RMSNorm weights
        long emb = (long) vocabSize * h;
        return numLayers * perLayer + emb + (tieWordEmbeddings ? 0 : emb) + h;
    }

    @Override
    public int[] eosTokenIds() {
        return eosTokenIds.clone();
    }

    public static ModelConfig read(Path configJson) {
        String text;
        try {
            text = Files.readString(configJson);
        } catch (NoSuchFileException e) {
            throw new ModelFormatException(configJson + ": config.json not found");
        } catch (IOException e) {
            throw new ModelFormatException(configJson + ": cannot read: " + e.getMessage(), e);
        }
        return parse(text, configJson.toString());
    }

    public static ModelConfig parse(String json, String source) {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (JsonProcessingException e) {
            throw new ModelFormatException(source + ": invalid JSON: " + e.getOriginalMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new ModelFormatException(source + ": expected a JSON object");
        }
        // transformers 5 nests the text config for multimodal models; Qwen2 keeps it flat.
        String arch = root.path("architectures").isArray() && !root.path("architectures").isEmpty()
                ? root.path("architectures").get(0).asText() : "Qwen2ForCausalLM";
        String modelType = root.path("model_type").asText("qwen2");
        int hidden = requireInt(root, "hidden_size", source);
        int inter = requireInt(root, "intermediate_size", source);
        int layers = requireInt(root, "num_hidden_layers", source);
        int heads = requireInt(root, "num_attention_heads", source);
        int kvHeads = optInt(root, "num_key_value_heads", heads, source);
        int vocab = requireInt(root, "vocab_size", source);
        int headDim = optInt(root, "head_dim", heads > 0 && hidden % heads == 0 ? hidden / heads : -1, source);
        if (headDim <= 0) {
            throw new ModelFormatException(source + ": hidden_size " + hidden
                    + " is not divisible by num_attention_heads " + heads + " and no head_dim is given");
        }
        int maxPos = optInt(root, "max_position_embeddings", 32768, source);
        double eps = optDouble(root, "rms_norm_eps", 1e-6, source);
        String hiddenAct = root.path("hidden_act").asText("silu");
        if (!hiddenAct.equals("silu")) {
            throw new ModelFormatException(source + ": hidden_act '" + hiddenAct + "' is not supported (only silu)");
        }

        // rope: transformers 5 writes rope_parameters {rope_theta, rope_type, ...}; classic writes
        // rope_theta at the top and rope_scaling {type|rope_type, factor, ...} or null.
        JsonNode ropeParams = root.get("rope_parameters");
        JsonNode scalingNode;
        double theta;
        if (ropeParams != null && ropeParams.isObject()) {
            theta = optDouble(ropeParams, "rope_theta", optDouble(root, "rope_theta", 10000.0, source), source);
            scalingNode = ropeParams;
        } else {
            theta = optDouble(root, "rope_theta", 10000.0, source);
            scalingNode = root.get("rope_scaling");
        }
        RopeScaling scaling = parseScaling(scalingNode, source);

        boolean tie = root.path("tie_word_embeddings").asBoolean(false);
        String dtype = root.hasNonNull("dtype") ? root.get("dtype").asText()
                : root.path("torch_dtype").asText("bfloat16");
        int bos = root.path("bos_token_id").isNumber() ? root.get("bos_token_id").asInt() : -1;
        int[] eos = ids(root.get("eos_token_id"));
        return new ModelConfig(arch, modelType, hidden, inter, layers, heads, kvHeads, headDim, vocab, maxPos, eps,
                theta, scaling, tie, dtype, bos, eos);
    }

    private static RopeScaling parseScaling(JsonNode n, String source) {
        if (n == null || n.isNull() || !n.isObject()) {
            return RopeScaling.NONE;
        }
        String type = n.hasNonNull("rope_type") ? n.get("rope_type").asText()
                : n.hasNonNull("type") ? n.get("type").asText() : "default";
        if (!SUPPORTED_ROPE.contains(type)) {
            throw new ModelFormatException(source + ": rope type '" + type + "' is not supported (supported: "
                    + SUPPORTED_ROPE + ")");
        }
        if (type.equals("default")) {
            return RopeScaling.NONE;
        }
        double factor = optDouble(n, "factor", Double.NaN, source);
        if (!(factor > 0)) {
            throw new ModelFormatException(source + ": rope scaling '" + type + "' needs a positive 'factor'");
        }
        return new RopeScaling(type, factor,
                optInt(n, "original_max_position_embeddings", 0, source),
                optDouble(n, "beta_fast", Double.NaN, source),
                optDouble(n, "beta_slow", Double.NaN, source),
                optDouble(n, "mscale", Double.NaN, source),
                optDouble(n, "mscale_all_dim", Double.NaN, source),
                optDouble(n, "attention_factor", Double.NaN, source),
                n.path("truncate").asBoolean(true));
    }

    private static int[] ids(JsonNode n) {
        if (n == null || n.isNull()) {
            return new int[0];
        }
        if (n.isNumber()) {
            return new int[] {n.asInt()};
        }
        List<Integer> out = new ArrayList<>();
        if (n.isArray()) {
            n.forEach(e -> {
                if (e.isNumber()) {
                    out.add(e.asInt());
                }
            });
        }
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    private static int requireInt(JsonNode root, String field, String source) {
        JsonNode n = root.get(field);
        if (n == null || n.isNull()) {
            throw new ModelFormatException(source + ": required field '" + field + "' is missing");
        }
        if (!n.canConvertToInt() || !n.isIntegralNumber()) {
            throw new ModelFormatException(source + ": field '" + field + "' must be an integer, got " + n);
        }
        return n.asInt();
    }

    private static int optInt(JsonNode root, String field, int dflt, String source) {
        JsonNode n = root.get(field);
        if (n == null || n.isNull()) {
            return dflt;
        }
        if (!n.isIntegralNumber() || !n.canConvertToInt()) {
            throw new ModelFormatException(source + ": field '" + field + "' must be an integer, got " + n);
        }
        return n.asInt();
    }

    private static double optDouble(JsonNode root, String field, double dflt, String source) {
        JsonNode n = root.get(field);
        if (n == null || n.isNull()) {
            return dflt;
        }
        if (!n.isNumber()) {
            throw new ModelFormatException(source + ": field '" + field + "' must be a number, got " + n);
        }
        return n.asDouble();
    }
}
