package ai.k2j.loaders;

import com.fasterxml.jackson.databind.JsonNode;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * The architecture half of an HF {@code config.json} for {@code Qwen2ForCausalLM} and its relatives
 * ({@code LlamaForCausalLM}, {@code Qwen3ForCausalLM}, {@code Qwen3MoeForCausalLM}: {@link #moe} is null for a
 * dense model; {@code DeepseekV3ForCausalLM}: {@link #deepseek} holds its MLA/MoE fields and {@link #headDim} is
 * qk_rope_head_dim, the part RoPE turns).
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
        int[] eosTokenIds,
        MoeConfig moe,
        DeepseekConfig deepseek) {

    private static final Set<String> SUPPORTED_ROPE = Set.of("default", "yarn", "linear", "dynamic", "llama3");

    /** Architectures whose attention and MLP projections have no biases (Qwen2's q/k/v have them). */
    private static final Set<String> BIASLESS = Set.of("LlamaForCausalLM", "Qwen3ForCausalLM", "Qwen3MoeForCausalLM",
            "DeepseekV3ForCausalLM");

    /** A model without DeepSeek-V3's MLA/MoE fields. */
    public ModelConfig(String architecture, String modelType, int hiddenSize, int intermediateSize, int numLayers,
                       int numHeads, int numKvHeads, int headDim, int vocabSize, int maxPositionEmbeddings,
                       double rmsNormEps, double ropeTheta, RopeScaling ropeScaling, boolean tieWordEmbeddings,
                       String torchDtype, int bosTokenId, int[] eosTokenIds, MoeConfig moe) {
        this(architecture, modelType, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads, headDim,
                vocabSize, maxPositionEmbeddings, rmsNormEps, ropeTheta, ropeScaling, tieWordEmbeddings, torchDtype,
                bosTokenId, eosTokenIds, moe, null);
    }

    /** A dense model (no mixture of experts). */
    public ModelConfig(String architecture, String modelType, int hiddenSize, int intermediateSize, int numLayers,
                       int numHeads, int numKvHeads, int headDim, int vocabSize, int maxPositionEmbeddings,
                       double rmsNormEps, double ropeTheta, RopeScaling ropeScaling, boolean tieWordEmbeddings,
                       String torchDtype, int bosTokenId, int[] eosTokenIds) {
        this(architecture, modelType, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads, headDim,
                vocabSize, maxPositionEmbeddings, rmsNormEps, ropeTheta, ropeScaling, tieWordEmbeddings, torchDtype,
                bosTokenId, eosTokenIds, null);
    }

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
        ropeScaling = ropeScaling == null ? RopeScaling.NONE : ropeScaling;
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

    /** Whether q/k/v projections carry biases (Qwen2 yes; Llama, Qwen3 no). */
    public boolean hasQkvBias() {
        return !BIASLESS.contains(architecture);
    }

    /** Whether q and k get a per-head RMSNorm before RoPE (Qwen3's q_norm, k_norm). */
    public boolean hasQkNorm() {
        return architecture.startsWith("Qwen3");
    }

    /** Whether layer {@code layer}'s MLP is a mixture of experts. */
    public boolean isMoeLayer(int layer) {
        return moe != null && moe.isMoeLayer(layer);
    }

    /** Parameter count implied by the shapes (embedding counted once when tied). */
    public long parameterCount() {
        return parameters(false);
    }

    /**
     * Parameters one token's forward pass multiplies with: all but the experts the router does not pick (MoE);
     * equal to {@link #parameterCount} for a dense model. The embedding table counts once (a tied table is the
     * lm_head; an untied one is only gathered from, but counts as HF's "active parameters" do).
     */
    public long activeParameterCount() {
        return parameters(true);
    }

    private long parameters(boolean activeOnly) {
        if (deepseek != null) {
            return deepseekParameters(activeOnly);
        }
        long h = hiddenSize, q = qDim(), kv = kvDim();
        long attention = h * q + 2 * h * kv + q * h   // q, k, v, o projections
                + (hasQkvBias() ? q + 2 * kv : 0)
                + (hasQkNorm() ? 2L * headDim : 0)
                + 2 * h;                              // input and post-attention RMSNorm
        long total = 0;
        for (int l = 0; l < numLayers; l++) {
            total += attention;
            if (isMoeLayer(l)) {
                long expert = 3 * h * moe.expertIntermediateSize();
                total += (long) moe.numExperts() * h  // router
                        + (activeOnly ? moe.expertsPerToken() : moe.numExperts()) * expert;
            } else {
                total += 3 * h * intermediateSize;
            }
        }
        long emb = (long) vocabSize * h;
        return total + emb + (tieWordEmbeddings ? 0 : emb) + h;
    }

    private long deepseekParameters(boolean activeOnly) {
        long h = hiddenSize;
        long total = 0;
        for (int l = 0; l < numLayers; l++) {
            total += deepseek.attentionParameters(h, numHeads);
            total += deepseek.isMoeLayer(l) ? deepseek.moeParameters(h, activeOnly) : 3 * h * intermediateSize;
        }
        long emb = (long) vocabSize * h;
        return total + emb + (tieWordEmbeddings ? 0 : emb) + h;
    }

    @Override
    public int[] eosTokenIds() {
        return eosTokenIds.clone();
    }

    /** Reads a config.json; a missing file, bad JSON or a bad field is a {@link ModelFormatException}. */
    public static ModelConfig read(Path configJson) {
        String text;
        if (ModelFiles.present(configJson)) {
            ModelFiles.requireRegularFile(configJson);
        }
        try {
            text = Files.readString(configJson);
        } catch (NoSuchFileException e) {
            throw new ModelFormatException(configJson + ": config.json not found");
        } catch (IOException e) {
            throw new ModelFormatException(configJson + ": cannot read: " + e, e);
        }
        return parse(text, configJson.toString());
    }

    /** Parses config.json text; {@code source} names it in errors. */
    public static ModelConfig parse(String json, String source) {
        JsonNode root = Json.parseObject(json, source);
        String arch = "Qwen2ForCausalLM";
        JsonNode archs = root.get("architectures");
        if (!Json.absent(archs)) {
            if (!archs.isArray() || (!archs.isEmpty() && !archs.get(0).isTextual())) {
                throw new ModelFormatException(source + ": field 'architectures' must be a list of strings, got " + archs);
            }
            if (!archs.isEmpty()) {
                arch = archs.get(0).textValue();
            }
        }
        String modelType = Json.optString(root, "model_type", "qwen2", source);
        int hidden = Json.requireInt(root, "hidden_size", source);
        int inter = Json.requireInt(root, "intermediate_size", source);
        int layers = Json.requireInt(root, "num_hidden_layers", source);
        int heads = Json.requireInt(root, "num_attention_heads", source);
        int kvHeads = Json.optInt(root, "num_key_value_heads", heads, source);
        int vocab = Json.requireInt(root, "vocab_size", source);
        requirePositive(source, "hidden_size", hidden);
        requirePositive(source, "intermediate_size", inter);
        requirePositive(source, "num_hidden_layers", layers);
        requirePositive(source, "num_attention_heads", heads);
        requirePositive(source, "num_key_value_heads", kvHeads);
        requirePositive(source, "vocab_size", vocab);
        int headDim;
        if (arch.equals("DeepseekV3ForCausalLM")) {
            headDim = 0; // qk_rope_head_dim, set below
        } else if (Json.absent(root.get("head_dim"))) {
            if (hidden % heads != 0) {
                throw new ModelFormatException(source + ": hidden_size " + hidden
                        + " is not divisible by num_attention_heads " + heads + " and no head_dim is given");
            }
            headDim = hidden / heads;
        } else {
            headDim = Json.requireInt(root, "head_dim", source);
            requirePositive(source, "head_dim", headDim);
        }
        DeepseekConfig deepseek = null;
        if (arch.equals("DeepseekV3ForCausalLM")) {
            deepseek = DeepseekConfig.parse(root, source, heads, kvHeads);
            headDim = deepseek.qkRopeHeadDim(); // RoPE turns only the rope part of each head (HF sets head_dim so)
        }
        int maxPos = Json.optInt(root, "max_position_embeddings", 32768, source);
        requirePositive(source, "max_position_embeddings", maxPos);
        double eps = Json.optDouble(root, "rms_norm_eps", 1e-6, source);
        if (!(eps > 0) || Double.isInfinite(eps)) {
            throw new ModelFormatException(source + ": rms_norm_eps must be a finite number > 0, got " + eps);
        }
        String hiddenAct = Json.optString(root, "hidden_act", "silu", source);
        if (!hiddenAct.equals("silu")) {
            throw new ModelFormatException(source + ": hidden_act '" + hiddenAct + "' is not supported (only silu)");
        }

        // rope: transformers 5 writes rope_parameters {rope_theta, rope_type, ...}; classic writes
        // rope_theta at the top and rope_scaling {type|rope_type, factor, ...} or null.
        JsonNode ropeParams = root.get("rope_parameters");
        JsonNode scalingNode;
        double theta;
        if (!Json.absent(ropeParams)) {
            if (!ropeParams.isObject()) {
                throw new ModelFormatException(source + ": field 'rope_parameters' must be an object, got " + ropeParams);
            }
            for (Map.Entry<String, JsonNode> e : ropeParams.properties()) {
                if (e.getValue().isObject()) { // {"full_attention": {...}, "sliding_attention": {...}}
                    throw new ModelFormatException(source + ": per-layer-type rope_parameters ('" + e.getKey()
                            + "') are not supported");
                }
            }
            theta = Json.optDouble(ropeParams, "rope_theta", Json.optDouble(root, "rope_theta", 10000.0, source),
                    source);
            scalingNode = ropeParams;
        } else {
            theta = Json.optDouble(root, "rope_theta", 10000.0, source);
            scalingNode = root.get("rope_scaling");
        }
        if (!(theta > 0) || Double.isInfinite(theta)) {
            throw new ModelFormatException(source + ": rope_theta must be a finite number > 0, got " + theta);
        }
        RopeScaling scaling = parseScaling(scalingNode, source);

        if (BIASLESS.contains(arch) && (Json.optBoolean(root, "attention_bias", false, source)
                || Json.optBoolean(root, "mlp_bias", false, source))) {
            throw new ModelFormatException(source + ": attention_bias/mlp_bias true is not supported for " + arch
                    + " (k2j loads these without biases, as the published checkpoints are)");
        }
        MoeConfig moe = null;
        // the hub's config.json says num_experts; transformers 5 writes it as num_local_experts
        String expertsField = Json.absent(root.get("num_experts")) && !Json.absent(root.get("num_local_experts"))
                ? "num_local_experts" : "num_experts";
        if (deepseek == null
                && (arch.equals("Qwen3MoeForCausalLM") || Json.optInt(root, expertsField, 0, source) > 0)) {
            try {
                moe = new MoeConfig(Json.requireInt(root, expertsField, source),
                        Json.requireInt(root, "num_experts_per_tok", source),
                        Json.requireInt(root, "moe_intermediate_size", source),
                        Json.optBoolean(root, "norm_topk_prob", false, source),
                        Json.optInt(root, "decoder_sparse_step", 1, source),
                        Json.optIds(root, "mlp_only_layers", source));
            } catch (ModelFormatException e) {
                if (!e.getMessage().startsWith("config: ")) { // field errors already name the file
                    throw e;
                }
                throw new ModelFormatException(source + ": " + e.getMessage().substring("config: ".length()), e);
            }
        }
        boolean tie = Json.optBoolean(root, "tie_word_embeddings", false, source);
        String dtype = Json.absent(root.get("dtype"))
                ? Json.optString(root, "torch_dtype", "bfloat16", source)
                : Json.optString(root, "dtype", "bfloat16", source);
        int bos = Json.optInt(root, "bos_token_id", -1, source);
        int[] eos = Json.optIds(root, "eos_token_id", source);
        try {
            return new ModelConfig(arch, modelType, hidden, inter, layers, heads, kvHeads, headDim, vocab, maxPos,
                    eps, theta, scaling, tie, dtype, bos, eos, moe, deepseek);
        } catch (ModelFormatException e) { // the constructor cannot know the file name
            throw new ModelFormatException(source + ": " + e.getMessage().replaceFirst("^config: ", ""), e);
        }
    }

    private static void requirePositive(String source, String field, int value) {
        if (value <= 0) {
            throw new ModelFormatException(source + ": field '" + field + "' must be positive, got " + value);
        }
    }

    private static RopeScaling parseScaling(JsonNode n, String source) {
        if (Json.absent(n)) {
            return RopeScaling.NONE;
        }
        if (!n.isObject()) {
            throw new ModelFormatException(source + ": field 'rope_scaling' must be an object or null, got " + n);
        }
        String type = !Json.absent(n.get("rope_type")) ? Json.optString(n, "rope_type", "default", source)
                : Json.optString(n, "type", "default", source);
        if (!SUPPORTED_ROPE.contains(type)) {
            throw new ModelFormatException(source + ": rope type '" + type + "' is not supported (supported: "
                    + SUPPORTED_ROPE + ")");
        }
        if (type.equals("default")) {
            return RopeScaling.NONE;
        }
        double factor = Json.optDouble(n, "factor", Double.NaN, source);
        if (!(factor > 0) || Double.isInfinite(factor)) {
            throw new ModelFormatException(source + ": rope scaling '" + type + "' needs a positive 'factor', got "
                    + n.get("factor"));
        }
        if (type.equals("llama3")) {
            double low = Json.optDouble(n, "low_freq_factor", Double.NaN, source);
            double high = Json.optDouble(n, "high_freq_factor", Double.NaN, source);
            int original = Json.optInt(n, "original_max_position_embeddings", 0, source);
            if (!(low > 0) || !(high > low) || Double.isInfinite(high) || original <= 0) {
                throw new ModelFormatException(source + ": rope scaling 'llama3' needs low_freq_factor > 0, "
                        + "high_freq_factor > low_freq_factor and original_max_position_embeddings > 0, got "
                        + n.get("low_freq_factor") + ", " + n.get("high_freq_factor") + ", "
                        + n.get("original_max_position_embeddings"));
            }
            return new RopeScaling(type, factor, original, Double.NaN, Double.NaN, Double.NaN, Double.NaN,
                    Double.NaN, true, low, high);
        }
        return new RopeScaling(type, factor,
                Json.optInt(n, "original_max_position_embeddings", 0, source),
                Json.optDouble(n, "beta_fast", Double.NaN, source),
                Json.optDouble(n, "beta_slow", Double.NaN, source),
                Json.optDouble(n, "mscale", Double.NaN, source),
                Json.optDouble(n, "mscale_all_dim", Double.NaN, source),
                Json.optDouble(n, "attention_factor", Double.NaN, source),
                Json.optBoolean(n, "truncate", true, source));
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ModelConfig c
                && Objects.equals(architecture, c.architecture)
                && Objects.equals(modelType, c.modelType)
                && hiddenSize == c.hiddenSize
                && intermediateSize == c.intermediateSize
                && numLayers == c.numLayers
                && numHeads == c.numHeads
                && numKvHeads == c.numKvHeads
                && headDim == c.headDim
                && vocabSize == c.vocabSize
                && maxPositionEmbeddings == c.maxPositionEmbeddings
                && Double.compare(rmsNormEps, c.rmsNormEps) == 0
                && Double.compare(ropeTheta, c.ropeTheta) == 0
                && Objects.equals(ropeScaling, c.ropeScaling)
                && tieWordEmbeddings == c.tieWordEmbeddings
                && Objects.equals(torchDtype, c.torchDtype)
                && bosTokenId == c.bosTokenId
                && Arrays.equals(eosTokenIds, c.eosTokenIds)
                && Objects.equals(moe, c.moe)
                && Objects.equals(deepseek, c.deepseek);
    }

    @Override
    public int hashCode() {
        return Objects.hash(architecture, modelType, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads,
                headDim, vocabSize, maxPositionEmbeddings, rmsNormEps, ropeTheta, ropeScaling, tieWordEmbeddings,
                torchDtype, bosTokenId, Arrays.hashCode(eosTokenIds), moe, deepseek);
    }

    @Override
    public String toString() {
        return "ModelConfig[" + architecture + ", " + modelType + ", hidden=" + hiddenSize + ", intermediate="
                + intermediateSize + ", layers=" + numLayers + ", heads=" + numHeads + ", kvHeads=" + numKvHeads
                + ", headDim=" + headDim + ", vocab=" + vocabSize + ", maxPos=" + maxPositionEmbeddings
                + ", eps=" + rmsNormEps + ", ropeTheta=" + ropeTheta + ", " + ropeScaling + ", tie="
                + tieWordEmbeddings + ", dtype=" + torchDtype + ", bos=" + bosTokenId + ", eos="
                + Arrays.toString(eosTokenIds) + (moe == null ? "" : ", " + moe)
                + (deepseek == null ? "" : ", " + deepseek) + "]";
    }
}
