package ai.k2j.engine.model;

import ai.k2j.kernels.Backend;
import ai.k2j.kernels.Batch;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.KvCache;
import ai.k2j.kernels.RopeTable;
import ai.k2j.kernels.Rows;
import ai.k2j.kernels.Weight;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;

import java.util.List;

/**
 * The Qwen2 decoder (HF {@code Qwen2ForCausalLM}): weights and forward pass. Llama 3.x ({@code LlamaForCausalLM}) is
 * the same structure without the q/k/v biases (its lm_head tied in 3.2 1B/3B, untied in 3.1 8B; RoPE usually with
 * {@code rope_type: llama3}, see {@link RopeFrequencies}), so it loads here with {@code qkvBias} false.
 *
 * <pre>
 *   x = embed(tokens)
 *   per layer:  h = rmsNorm(x)
 *               q|k|v = h·[Wq|Wk|Wv]ᵀ + [bq|bk|bv]         (one fused matmul; Llama: no bias)
 *               rope(q), rope(k);  store k, v in the cache
 *               x += attention(q, cache)·Woᵀ                 (GQA, scale 1/√headDim, no o_proj bias)
 *               h = rmsNorm(x)
 *               x += (silu(h·Wgateᵀ)·(h·Wupᵀ))·Wdownᵀ       (gate|up in one fused matmul)
 *   logits = lm_head(rmsNorm(x[logit rows]))                  (the norm is row-wise, so gather first)
 * </pre>
 */
final class Qwen2 implements DecoderModel {

    /** One decoder layer's weights on the backend. */
    private record Layer(Buffer inputNorm, Weight qkv, Buffer qkvBias, Weight o, Buffer postNorm, Weight gateUp,
                         Weight down) {
    }

    private final ModelConfig config;
    private final Backend backend;
    private final Weight embedTokens;
    private final Layer[] layers;
    private final Buffer finalNorm;
    private final Weight lmHead;

    private final int hidden;
    private final int qDim;
    private final int kvDim;
    private final int headDim;
    private final int kvHeads;
    private final int intermediate;
    private final float eps;
    private final float attentionScale;

    private Qwen2(ModelConfig config, Backend backend, Weight embedTokens, Layer[] layers, Buffer finalNorm,
                  Weight lmHead) {
        this.config = config;
        this.backend = backend;
        this.embedTokens = embedTokens;
        this.layers = layers;
        this.finalNorm = finalNorm;
        this.lmHead = lmHead;
        hidden = config.hiddenSize();
        qDim = config.qDim();
        kvDim = config.kvDim();
        headDim = config.headDim();
        kvHeads = config.numKvHeads();
        intermediate = config.intermediateSize();
        eps = (float) config.rmsNormEps();
        attentionScale = (float) (1.0 / Math.sqrt(headDim));
    }

    /**
     * Loads the weights named as in HF checkpoints, every shape checked against the config.
     *
     * @param qkvBias whether the checkpoint has q/k/v biases (Qwen2) or none (Llama)
     */
    static Qwen2 load(ModelConfig config, WeightMap w, Backend backend, WeightFormat weightFormat, boolean qkvBias) {
        int h = config.hiddenSize();
        int q = config.qDim();
        int kv = config.kvDim();
        int ff = config.intermediateSize();
        Layer[] layers = new Layer[config.numLayers()];
        for (int i = 0; i < layers.length; i++) {
            String p = "model.layers." + i + ".";
            layers[i] = new Layer(
                    backend.vector(List.of(w.get(p + "input_layernorm.weight", h))),
                    backend.matrix(List.of(
                            w.get(p + "self_attn.q_proj.weight", q, h),
                            w.get(p + "self_attn.k_proj.weight", kv, h),
                            w.get(p + "self_attn.v_proj.weight", kv, h)), weightFormat),
                    !qkvBias ? null : backend.vector(List.of(
                            w.get(p + "self_attn.q_proj.bias", q),
                            w.get(p + "self_attn.k_proj.bias", kv),
                            w.get(p + "self_attn.v_proj.bias", kv))),
                    backend.matrix(List.of(w.get(p + "self_attn.o_proj.weight", h, q)), weightFormat),
                    backend.vector(List.of(w.get(p + "post_attention_layernorm.weight", h))),
                    backend.matrix(List.of(
                            w.get(p + "mlp.gate_proj.weight", ff, h),
                            w.get(p + "mlp.up_proj.weight", ff, h)), weightFormat),
                    backend.matrix(List.of(w.get(p + "mlp.down_proj.weight", h, ff)), weightFormat));
        }
        Buffer finalNorm = backend.vector(List.of(w.get("model.norm.weight", h)));
        Embeddings e = Embeddings.load(config, w, backend, weightFormat);
        return new Qwen2(config, backend, e.table(), layers, finalNorm, e.lmHead());
    }

    /** The buffers of one context: activations [maxTokens, width], views of q|k|v, logits, the RoPE table. */
    private record Buffers(Buffer x, Buffer xNorm, Buffer qkv, Rows q, Rows k, Rows v, Buffer attnOut, Buffer proj,
                           Buffer gateUp, Buffer ffn, Buffer logitHidden, Buffer logits, RopeTable rope)
            implements Workspace {
    }

    @Override
    public Workspace newWorkspace(int maxTokens, int maxLogitRows, int maxContext) {
        long t = maxTokens;
        int qkvDim = qDim + 2 * kvDim;
        Buffer qkv = backend.allocate(t * qkvDim);
        RopeFrequencies freqs = RopeFrequencies.of(config, maxContext);
        return new Buffers(backend.allocate(t * hidden), backend.allocate(t * hidden), qkv,
                Rows.of(qkv, 0, qkvDim, qDim), Rows.of(qkv, qDim, qkvDim, kvDim), Rows.of(qkv, qDim + kvDim, qkvDim, kvDim),
                backend.allocate(t * qDim), backend.allocate(t * hidden), backend.allocate(t * 2L * intermediate),
                backend.allocate(t * intermediate), backend.allocate((long) maxLogitRows * hidden),
                backend.allocate((long) maxLogitRows * config.vocabSize()),
                backend.ropeTable(freqs.invFreq(), freqs.attentionScaling(), maxContext));
    }

    @Override
    public void forward(Workspace workspace, KvCache cache, Batch batch) {
        Buffers b = (Buffers) workspace;
        int n = batch.nTokens;
        backend.embed(embedTokens, batch, b.x);
        backend.rmsNorm(b.x, layers[0].inputNorm, eps, n, hidden, b.xNorm);
        for (int l = 0; l < layers.length; l++) {
            Layer layer = layers[l];
            // attention block (b.xNorm holds this layer's normed input)
            backend.matmul(layer.qkv, layer.qkvBias, b.xNorm, n, b.qkv);
            backend.ropeStoreKv(b.q, b.k, b.v, headDim, cache, l, batch, b.rope);
            backend.attention(b.q, cache, l, batch, kvHeads, headDim, attentionScale, b.attnOut);
            backend.matmul(layer.o, null, b.attnOut, n, b.proj);
            backend.addRmsNorm(b.x, b.proj, layer.postNorm, eps, n, hidden, b.xNorm);
            // feed-forward block
            backend.matmulSiluMul(layer.gateUp, b.xNorm, n, b.gateUp, b.ffn);
            backend.matmul(layer.down, null, b.ffn, n, b.proj);
            if (l + 1 < layers.length) {
                backend.addRmsNorm(b.x, b.proj, layers[l + 1].inputNorm, eps, n, hidden, b.xNorm);
            } else {
                backend.add(b.x, b.proj, n, hidden);
            }
        }
        if (batch.nLogits > 0) {
            backend.gatherRows(b.x, hidden, batch, b.logitHidden);
            backend.rmsNorm(b.logitHidden, finalNorm, eps, batch.nLogits, hidden, b.logitHidden);
            backend.matmul(lmHead, null, b.logitHidden, batch.nLogits, b.logits);
        }
    }

    @Override
    public ModelConfig config() {
        return config;
    }

    @Override
    public Backend backend() {
        return backend;
    }

    @Override
    public int kvDim() {
        return kvDim;
    }

    @Override
    public int kvLayers() {
        return layers.length;
    }

    @Override
    public long weightBytesPerToken() {
        long total = lmHead.byteSize();
        for (Layer layer : layers) {
            total += layer.qkv.byteSize() + layer.o.byteSize() + layer.gateUp.byteSize() + layer.down.byteSize();
        }
        return total;
    }
}
