package ai.k2j.loaders;

import java.util.Arrays;

/**
 * The mixture-of-experts half of a Qwen3-MoE {@code config.json}: each MoE layer's MLP is {@code numExperts}
 * SwiGLU experts of width {@code expertIntermediateSize}, of which a softmax router picks {@code expertsPerToken}
 * per token (no shared expert).
 *
 * @param numExperts             {@code num_experts}
 * @param expertsPerToken        {@code num_experts_per_tok} (top-k)
 * @param expertIntermediateSize {@code moe_intermediate_size}
 * @param normTopkProb           {@code norm_topk_prob}: renormalize the k chosen probabilities to sum to 1
 * @param decoderSparseStep      {@code decoder_sparse_step}: layer i is MoE when (i + 1) % step == 0
 * @param mlpOnlyLayers          {@code mlp_only_layers}: layers that keep a dense MLP regardless
 */
public record MoeConfig(int numExperts, int expertsPerToken, int expertIntermediateSize, boolean normTopkProb,
                        int decoderSparseStep, int[] mlpOnlyLayers) {

    public MoeConfig {
        if (numExperts <= 0 || expertsPerToken <= 0 || expertIntermediateSize <= 0 || decoderSparseStep <= 0) {
            throw new ModelFormatException("config: num_experts (" + numExperts + "), num_experts_per_tok ("
                    + expertsPerToken + "), moe_intermediate_size (" + expertIntermediateSize
                    + ") and decoder_sparse_step (" + decoderSparseStep + ") must be positive");
        }
        if (expertsPerToken > numExperts) {
            throw new ModelFormatException("config: num_experts_per_tok (" + expertsPerToken
                    + ") exceeds num_experts (" + numExperts + ")");
        }
        mlpOnlyLayers = mlpOnlyLayers == null ? new int[0] : mlpOnlyLayers.clone();
    }

    @Override
    public int[] mlpOnlyLayers() {
        return mlpOnlyLayers.clone();
    }

    /** As HF's Qwen3MoeDecoderLayer: not in mlp_only_layers and (layer + 1) a multiple of decoder_sparse_step. */
    public boolean isMoeLayer(int layer) {
        for (int l : mlpOnlyLayers) {
            if (l == layer) {
                return false;
            }
        }
        return (layer + 1) % decoderSparseStep == 0;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof MoeConfig m && numExperts == m.numExperts && expertsPerToken == m.expertsPerToken
                && expertIntermediateSize == m.expertIntermediateSize && normTopkProb == m.normTopkProb
                && decoderSparseStep == m.decoderSparseStep && Arrays.equals(mlpOnlyLayers, m.mlpOnlyLayers);
    }

    @Override
    public int hashCode() {
        return 31 * java.util.Objects.hash(numExperts, expertsPerToken, expertIntermediateSize, normTopkProb,
                decoderSparseStep) + Arrays.hashCode(mlpOnlyLayers);
    }

    @Override
    public String toString() {
        return "MoE[experts=" + numExperts + ", topK=" + expertsPerToken + ", expertFf=" + expertIntermediateSize
                + ", normTopk=" + normTopkProb + ", sparseStep=" + decoderSparseStep + ", mlpOnly="
                + Arrays.toString(mlpOnlyLayers) + "]";
    }
}
