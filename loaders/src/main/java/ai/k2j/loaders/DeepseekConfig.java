package ai.k2j.loaders;

import com.fasterxml.jackson.databind.JsonNode;

/**
 * The DeepSeek-V3 half of a {@code DeepseekV3ForCausalLM} config.json (DeepSeek-V3/R1, and Kimi K2, whose
 * config says {@code model_type: kimi_k2} with the same class): multi-head latent attention (MLA) and the
 * sigmoid-routed mixture of experts.
 *
 * <p>MLA: q = q_b(RMSNorm(q_a(x))) when {@code q_lora_rank} is set (else q_proj(x)), heads of
 * {@code qk_nope_head_dim + qk_rope_head_dim}; {@code kv_a_proj_with_mqa} gives the latent c_kv
 * ({@code kv_lora_rank}) and one shared rope key ({@code qk_rope_head_dim}); {@code kv_b_proj} expands c_kv to
 * each head's k_nope and v ({@code v_head_dim}).
 *
 * <p>MoE: layers from {@code first_k_dense_replace} on have {@code n_routed_experts} experts of width
 * {@code moe_intermediate_size}, {@code num_experts_per_tok} chosen per token by sigmoid scores plus
 * {@code e_score_correction_bias} within the best {@code topk_group} of {@code n_group} groups, weighted by the
 * unbiased scores (divided by their sum when {@code norm_topk_prob}) times {@code routed_scaling_factor}, plus
 * {@code n_shared_experts} always-on experts (one MLP of {@code n_shared_experts · moe_intermediate_size}).
 *
 * @param qLoraRank     0 when the config has no q LoRA ({@code q_lora_rank: null})
 * @param fp8BlockRows  {@code quantization_config.weight_block_size[0]}, 0 when the checkpoint is not FP8
 * @param fp8BlockCols  {@code quantization_config.weight_block_size[1]}, 0 when the checkpoint is not FP8
 */
public record DeepseekConfig(int qLoraRank, int kvLoraRank, int qkNopeHeadDim, int qkRopeHeadDim, int vHeadDim,
                             boolean ropeInterleave, int routedExperts, int sharedExperts, int expertsPerToken,
                             int moeIntermediateSize, int firstKDenseReplace, int nGroup, int topkGroup,
                             boolean normTopkProb, double routedScalingFactor, int fp8BlockRows, int fp8BlockCols) {

    public DeepseekConfig {
        need(kvLoraRank > 0, "kv_lora_rank must be positive, got " + kvLoraRank);
        need(qLoraRank >= 0, "q_lora_rank must be positive or null, got " + qLoraRank);
        need(qkNopeHeadDim > 0 && qkRopeHeadDim > 0 && vHeadDim > 0, "qk_nope_head_dim (" + qkNopeHeadDim
                + "), qk_rope_head_dim (" + qkRopeHeadDim + ") and v_head_dim (" + vHeadDim + ") must be positive");
        need(qkRopeHeadDim % 2 == 0, "qk_rope_head_dim must be even for RoPE, got " + qkRopeHeadDim);
        need((kvLoraRank + qkRopeHeadDim) % 2 == 0, "kv_lora_rank + qk_rope_head_dim must be even (the latent "
                + "cache row is split in two halves), got " + (kvLoraRank + qkRopeHeadDim));
        need(firstKDenseReplace >= 0, "first_k_dense_replace must be >= 0, got " + firstKDenseReplace);
        if (routedExperts > 0) {
            need(expertsPerToken > 0 && expertsPerToken <= routedExperts, "num_experts_per_tok ("
                    + expertsPerToken + ") must be in [1, n_routed_experts (" + routedExperts + ")]");
            need(moeIntermediateSize > 0, "moe_intermediate_size must be positive, got " + moeIntermediateSize);
            need(sharedExperts >= 0, "n_shared_experts must be >= 0, got " + sharedExperts);
            need(nGroup > 0 && routedExperts % nGroup == 0, "n_routed_experts (" + routedExperts
                    + ") must be a multiple of n_group (" + nGroup + ")");
            need(topkGroup > 0 && topkGroup <= nGroup, "topk_group (" + topkGroup + ") must be in [1, n_group ("
                    + nGroup + ")]");
            // HF scores a group by the sum of its best two experts
            need(routedExperts / nGroup >= 2, "each of n_group (" + nGroup + ") groups needs at least 2 of the "
                    + routedExperts + " n_routed_experts");
            need(expertsPerToken <= topkGroup * (routedExperts / nGroup), "num_experts_per_tok (" + expertsPerToken
                    + ") exceeds the experts of topk_group (" + topkGroup + ") groups");
            need(routedScalingFactor > 0 && !Double.isInfinite(routedScalingFactor),
                    "routed_scaling_factor must be a finite number > 0, got " + routedScalingFactor);
        }
        need((fp8BlockRows == 0) == (fp8BlockCols == 0) && fp8BlockRows >= 0 && fp8BlockCols >= 0,
                "quantization_config.weight_block_size must be two positive integers, got [" + fp8BlockRows + ", "
                        + fp8BlockCols + "]");
    }

    private static void need(boolean ok, String message) {
        if (!ok) {
            throw new ModelFormatException("config: " + message);
        }
    }

    public boolean hasQLora() {
        return qLoraRank > 0;
    }

    /** qk_nope_head_dim + qk_rope_head_dim: one query (and expanded key) head. */
    public int qkHeadDim() {
        return qkNopeHeadDim + qkRopeHeadDim;
    }

    /** kv_lora_rank + qk_rope_head_dim: the floats one token's latent cache row holds per layer. */
    public int latentWidth() {
        return kvLoraRank + qkRopeHeadDim;
    }

    public boolean isFp8() {
        return fp8BlockRows > 0;
    }

    /** As HF's DeepseekV3DecoderLayer: MoE from layer first_k_dense_replace on (when there are routed experts). */
    public boolean isMoeLayer(int layer) {
        return routedExperts > 0 && layer >= firstKDenseReplace;
    }

    /** Parameters of one layer's attention (projections and their norms) with {@code heads} heads. */
    long attentionParameters(long hidden, long heads) {
        long q = hasQLora()
                ? hidden * qLoraRank + qLoraRank + (long) qLoraRank * heads * qkHeadDim()
                : hidden * heads * qkHeadDim();
        return q + hidden * latentWidth() + kvLoraRank + (long) kvLoraRank * heads * (qkNopeHeadDim + vHeadDim)
                + heads * vHeadDim * hidden + 2 * hidden;
    }

    /** Parameters of one MoE layer's MLP: router (+ its bias), shared experts and all or the chosen routed experts. */
    long moeParameters(long hidden, boolean activeOnly) {
        long expert = 3 * hidden * moeIntermediateSize;
        return (long) routedExperts * hidden + routedExperts + sharedExperts * expert
                + (activeOnly ? expertsPerToken : routedExperts) * expert;
    }

    /** Reads the DeepSeek-V3 fields of a config.json (its MLA/MoE fields and quantization_config). */
    static DeepseekConfig parse(JsonNode root, String source, int heads, int kvHeads) {
        if (kvHeads != heads) {
            throw new ModelFormatException(source + ": DeepseekV3ForCausalLM needs num_key_value_heads == "
                    + "num_attention_heads (MLA expands one latent per head), got " + kvHeads + " and " + heads);
        }
        String scoring = Json.optString(root, "scoring_func", "sigmoid", source);
        if (!scoring.equals("sigmoid")) {
            throw new ModelFormatException(source + ": scoring_func '" + scoring + "' is not supported for "
                    + "DeepseekV3ForCausalLM (k2j routes as HF does: sigmoid)");
        }
        String topkMethod = Json.optString(root, "topk_method", "noaux_tc", source);
        if (!topkMethod.equals("noaux_tc")) {
            throw new ModelFormatException(source + ": topk_method '" + topkMethod + "' is not supported for "
                    + "DeepseekV3ForCausalLM (k2j routes as HF does: noaux_tc)");
        }
        int moeLayerFreq = Json.optInt(root, "moe_layer_freq", 1, source);
        if (moeLayerFreq != 1) {
            throw new ModelFormatException(source + ": moe_layer_freq " + moeLayerFreq + " is not supported (HF's "
                    + "DeepseekV3 makes every layer from first_k_dense_replace on MoE, as moe_layer_freq 1 does)");
        }
        int blockRows = 0;
        int blockCols = 0;
        JsonNode quant = root.get("quantization_config");
        if (!Json.absent(quant)) {
            String method = Json.optString(quant, "quant_method", "", source);
            if (!method.equals("fp8")) {
                throw new ModelFormatException(source + ": quantization_config.quant_method '" + method
                        + "' is not supported (k2j reads DeepSeek's block-quantized fp8)");
            }
            String fmt = Json.optString(quant, "fmt", "e4m3", source);
            if (!fmt.equals("e4m3")) {
                throw new ModelFormatException(source + ": quantization_config.fmt '" + fmt
                        + "' is not supported (only e4m3)");
            }
            JsonNode block = quant.get("weight_block_size");
            if (Json.absent(block) || !block.isArray() || block.size() != 2 || !block.get(0).canConvertToInt()
                    || !block.get(1).canConvertToInt() || block.get(0).intValue() <= 0
                    || block.get(1).intValue() <= 0) {
                throw new ModelFormatException(source + ": quantization_config.weight_block_size must be two "
                        + "positive integers, got " + block);
            }
            blockRows = block.get(0).intValue();
            blockCols = block.get(1).intValue();
        }
        try {
            return new DeepseekConfig(
                    Json.optInt(root, "q_lora_rank", 0, source),
                    Json.requireInt(root, "kv_lora_rank", source),
                    Json.requireInt(root, "qk_nope_head_dim", source),
                    Json.requireInt(root, "qk_rope_head_dim", source),
                    Json.requireInt(root, "v_head_dim", source),
                    Json.optBoolean(root, "rope_interleave", true, source),
                    Json.optInt(root, "n_routed_experts", 0, source),
                    Json.optInt(root, "n_shared_experts", 0, source),
                    Json.optInt(root, "num_experts_per_tok", 0, source),
                    Json.optInt(root, "moe_intermediate_size", 0, source),
                    Json.optInt(root, "first_k_dense_replace", 0, source),
                    Json.optInt(root, "n_group", 1, source),
                    Json.optInt(root, "topk_group", 1, source),
                    Json.optBoolean(root, "norm_topk_prob", true, source),
                    Json.optDouble(root, "routed_scaling_factor", 1.0, source),
                    blockRows, blockCols);
        } catch (ModelFormatException e) {
            if (!e.getMessage().startsWith("config: ")) {
                throw e;
            }
            throw new ModelFormatException(source + ": " + e.getMessage().substring("config: ".length()), e);
        }
    }
}
