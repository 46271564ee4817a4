package ai.k2j.engine.model;

import ai.k2j.kernels.Backend;
import ai.k2j.kernels.Weight;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;

import java.util.List;

/**
 * The token embedding table and the lm_head, as every decoder here loads them. The lm_head is a matmul and
 * follows the weight format, except that Q4_0 keeps it at Q8_0 ({@link #lmHeadFormat}). Tied (as HF): lm_head is
 * embed_tokens, whatever lm_head.weight the file may hold, and one matrix serves both (so a load-time --quant
 * gathers embeddings from the quantized table, exactly as a checkpoint written by {@code k2j quantize} does).
 * Untied, the embedding is only gathered from and keeps its dtype.
 */
record Embeddings(Weight table, Weight lmHead) {

    static Embeddings load(ModelConfig config, WeightMap w, Backend backend, WeightFormat weightFormat) {
        int h = config.hiddenSize();
        int v = config.vocabSize();
        Tensor embed = w.get("model.embed_tokens.weight", v, h);
        boolean keepNative = weightFormat == null || weightFormat == WeightFormat.NATIVE;
        WeightFormat headFormat = lmHeadFormat(weightFormat);
        if (config.tieWordEmbeddings()) {
            Weight table = backend.matrix(List.of(embed), keepNative || embed.dtype().isQuantized() ? null : headFormat);
            return new Embeddings(table, table);
        }
        Weight table = backend.matrix(List.of(embed), null);
        Tensor head = w.get("lm_head.weight", v, h);
        return new Embeddings(table,
                backend.matrix(List.of(head), keepNative || head.dtype().isQuantized() ? null : headFormat));
    }

    /**
     * The format the lm_head (and a tied embedding) is converted to under {@code weightFormat}: the same, except
     * that Q4_0 models keep their lm_head at Q8_0. The lm_head turns the last hidden state straight into logits,
     * and 4-bit blocks there cost far more next-token KL divergence than in the layer matrices
     * (docs/performance.md has the measurements). An lm_head already quantized in the checkpoint stays as stored.
     */
    static WeightFormat lmHeadFormat(WeightFormat weightFormat) {
        return weightFormat == WeightFormat.Q4_0 ? WeightFormat.Q8_0 : weightFormat;
    }
}
