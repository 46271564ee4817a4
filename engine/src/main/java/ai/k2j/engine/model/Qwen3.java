package ai.k2j.engine.model;

import ai.k2j.kernels.Backend;
import ai.k2j.kernels.Batch;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.KvCache;
import ai.k2j.kernels.RopeTable;
import ai.k2j.kernels.Rows;
import ai.k2j.kernels.Weight;
import ai.k2j.loaders.WeightFormat;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.MoeConfig;

import java.util.List;

/**
 * The Qwen3 decoder, dense (HF {@code Qwen3ForCausalLM}) and mixture-of-experts ({@code Qwen3MoeForCausalLM}):
 * weights and forward pass. Against Qwen2: no q/k/v biases, {@code head_dim} given by the config, and a per-head
 * RMSNorm on queries and keys before RoPE. MoE layers replace the MLP by a softmax router over
 * {@code num_experts} SwiGLU experts of which each token uses the top {@code num_experts_per_tok} (no shared
 * expert); {@code decoder_sparse_step} and {@code mlp_only_layers} leave some layers dense.
 *
 * <pre>
 *   x = embed(tokens)
 *   per layer:  h = rmsNorm(x)
 *               q|k|v = h·[Wq|Wk|Wv]ᵀ                        (one fused matmul)
 *               q = rmsNorm_head(q)·q_norm, k = rmsNorm_head(k)·k_norm   (each head of headDim)
 *               rope(q), rope(k);  store k, v in the cache
 *               x += attention(q, cache)·Woᵀ
 *               h = rmsNorm(x)
 *     dense:    x += (silu(h·Wgateᵀ)·(h·Wupᵀ))·Wdownᵀ
 *     MoE:      p = softmax(h·Wrouterᵀ); the top-k experts e with weights p_e (÷ their sum if norm_topk_prob)
 *               x += Σ_e p_e · expert_e(h)                   (expert_e: the dense MLP with e's weights)
 *   logits = lm_head(rmsNorm(x[logit rows]))
 * </pre>
 *
 * <p>Routing runs on the host: the router logits ([tokens, experts], small) are downloaded, each token's experts
 * chosen, and the batch's tokens grouped by expert, so each chosen expert runs once over all its tokens (a prefill
 * chunk multiplies each expert's weights with a matrix, not row by row) and experts no token chose are not read.
 * A token's expert outputs are added to x in ascending expert order, as HF's loop over experts does.
 */
final class Qwen3 implements DecoderModel {

    /** One expert's (or a dense layer's) SwiGLU MLP. */
    private record Mlp(Weight gateUp, Weight down) {
        long byteSize() {
            return gateUp.byteSize() + down.byteSize();
        }
    }

    /** One decoder layer's weights; {@code router} and {@code experts} are null in a dense layer, {@code mlp} in MoE. */
    private record Layer(Buffer inputNorm, Weight qkv, Buffer qNorm, Buffer kNorm, Weight o, Buffer postNorm, Mlp mlp,
                         Weight router, Mlp[] experts) {
    }

    private final ModelConfig config;
    private final Backend backend;
    private final Weight embedTokens;
    private final Layer[] layers;
    private final Buffer finalNorm;
    private final Weight lmHead;
    private final MoeConfig moe;

    private final int hidden;
    private final int qDim;
    private final int kvDim;
    private final int headDim;
    private final int kvHeads;
    private final float eps;
    private final float attentionScale;

    private Qwen3(ModelConfig config, Backend backend, Weight embedTokens, Layer[] layers, Buffer finalNorm,
                  Weight lmHead) {
        this.config = config;
        this.backend = backend;
        this.embedTokens = embedTokens;
        this.layers = layers;
        this.finalNorm = finalNorm;
        this.lmHead = lmHead;
        this.moe = config.moe();
        hidden = config.hiddenSize();
        qDim = config.qDim();
        kvDim = config.kvDim();
        headDim = config.headDim();
        kvHeads = config.numKvHeads();
        eps = (float) config.rmsNormEps();
        attentionScale = (float) (1.0 / Math.sqrt(headDim));
    }

    /** Loads the weights named as in HF checkpoints (experts one by one, as published), shapes checked. */
    static Qwen3 load(ModelConfig config, WeightMap w, Backend backend, WeightFormat weightFormat) {
        if (config.moe() != null && !backend.supportsMixtureOfExperts()) {
            throw new UnsupportedOperationException(w.source() + ": " + config.architecture() + " needs the "
                    + "mixture-of-experts ops, which the " + backend.name() + " backend does not have");
        }
        int h = config.hiddenSize();
        int q = config.qDim();
        int kv = config.kvDim();
        int hd = config.headDim();
        Layer[] layers = new Layer[config.numLayers()];
        for (int i = 0; i < layers.length; i++) {
            String p = "model.layers." + i + ".";
            Mlp mlp = null;
            Weight router = null;
            Mlp[] experts = null;
            if (config.isMoeLayer(i)) {
                MoeConfig m = config.moe();
                // the router stays in the checkpoint's dtype under --quant: it is tiny, and its rounding would
                // change which experts run, not just their outputs
                router = backend.matrix(List.of(w.get(p + "mlp.gate.weight", m.numExperts(), h)), null);
                experts = new Mlp[m.numExperts()];
                for (int e = 0; e < experts.length; e++) {
                    experts[e] = mlp(w, p + "mlp.experts." + e + ".", h, m.expertIntermediateSize(), backend,
                            weightFormat);
                }
            } else {
                mlp = mlp(w, p + "mlp.", h, config.intermediateSize(), backend, weightFormat);
            }
            layers[i] = new Layer(
                    backend.vector(List.of(w.get(p + "input_layernorm.weight", h))),
                    backend.matrix(List.of(
                            w.get(p + "self_attn.q_proj.weight", q, h),
                            w.get(p + "self_attn.k_proj.weight", kv, h),
                            w.get(p + "self_attn.v_proj.weight", kv, h)), weightFormat),
                    backend.vector(List.of(w.get(p + "self_attn.q_norm.weight", hd))),
                    backend.vector(List.of(w.get(p + "self_attn.k_norm.weight", hd))),
                    backend.matrix(List.of(w.get(p + "self_attn.o_proj.weight", h, q)), weightFormat),
                    backend.vector(List.of(w.get(p + "post_attention_layernorm.weight", h))),
                    mlp, router, experts);
        }
        Buffer finalNorm = backend.vector(List.of(w.get("model.norm.weight", h)));
        Embeddings e = Embeddings.load(config, w, backend, weightFormat);
        return new Qwen3(config, backend, e.table(), layers, finalNorm, e.lmHead());
    }

    private static Mlp mlp(WeightMap w, String prefix, int h, int ff, Backend backend, WeightFormat weightFormat) {
        return new Mlp(
                backend.matrix(List.of(
                        w.get(prefix + "gate_proj.weight", ff, h),
                        w.get(prefix + "up_proj.weight", ff, h)), weightFormat),
                backend.matrix(List.of(w.get(prefix + "down_proj.weight", h, ff)), weightFormat));
    }

    /** Host-side routing state of one step, sized for maxTokens (MoE models only). */
    private static final class Routing {
        final float[] routerLogits;   // [maxTokens, experts], downloaded
        final int[] chosen;           // [maxTokens, topK] expert ids of each token
        final float[] chosenWeights;  // [maxTokens, topK]
        final int[] groupStart;       // [experts + 1]: expert e's tokens are rows[groupStart[e], groupStart[e+1])
        final int[] rows;             // [maxTokens · topK] token rows grouped by expert, ascending within a group
        final float[] scales;         // routing weight of each (expert, token) pair in rows' order

        Routing(int maxTokens, MoeConfig moe) {
            int pairs = maxTokens * moe.expertsPerToken();
            routerLogits = new float[maxTokens * moe.numExperts()];
            chosen = new int[pairs];
            chosenWeights = new float[pairs];
            groupStart = new int[moe.numExperts() + 1];
            rows = new int[pairs];
            scales = new float[pairs];
        }
    }

    /** The buffers of one context (MoE models add the router logits, the experts' input rows and the routing). */
    private record Buffers(Buffer x, Buffer xNorm, Buffer qkv, Rows q, Rows k, Rows v, Buffer attnOut, Buffer proj,
                           Buffer gateUp, Buffer ffn, Buffer logitHidden, Buffer logits, RopeTable rope,
                           Buffer routerLogits, Buffer expertIn, Routing routing) implements Workspace {
    }

    @Override
    public Workspace newWorkspace(int maxTokens, int maxLogitRows, int maxContext) {
        long t = maxTokens;
        int qkvDim = qDim + 2 * kvDim;
        Buffer qkv = backend.allocate(t * qkvDim);
        int ff = config.intermediateSize();
        if (moe != null) {
            ff = Math.max(ff, moe.expertIntermediateSize());
        }
        RopeFrequencies freqs = RopeFrequencies.of(config, maxContext);
        return new Buffers(backend.allocate(t * hidden), backend.allocate(t * hidden), qkv,
                Rows.of(qkv, 0, qkvDim, qDim), Rows.of(qkv, qDim, qkvDim, kvDim), Rows.of(qkv, qDim + kvDim, qkvDim, kvDim),
                backend.allocate(t * qDim), backend.allocate(t * hidden), backend.allocate(t * 2L * ff),
                backend.allocate(t * ff), backend.allocate((long) maxLogitRows * hidden),
                backend.allocate((long) maxLogitRows * config.vocabSize()),
                backend.ropeTable(freqs.invFreq(), freqs.attentionScaling(), maxContext),
                moe == null ? null : backend.allocate(t * moe.numExperts()),
                moe == null ? null : backend.allocate(t * hidden),
                moe == null ? null : new Routing(maxTokens, moe));
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
            backend.matmul(layer.qkv, null, b.xNorm, n, b.qkv);
            backend.rmsNormHeads(b.q, headDim, layer.qNorm, eps, n);
            backend.rmsNormHeads(b.k, headDim, layer.kNorm, eps, n);
            backend.ropeStoreKv(b.q, b.k, b.v, headDim, cache, l, batch, b.rope);
            backend.attention(b.q, cache, l, batch, kvHeads, headDim, attentionScale, b.attnOut);
            backend.matmul(layer.o, null, b.attnOut, n, b.proj);
            backend.addRmsNorm(b.x, b.proj, layer.postNorm, eps, n, hidden, b.xNorm);
            // feed-forward block: x += mlp(xNorm)
            if (layer.mlp != null) {
                backend.matmulSiluMul(layer.mlp.gateUp, b.xNorm, n, b.gateUp, b.ffn);
                backend.matmul(layer.mlp.down, null, b.ffn, n, b.proj);
                if (l + 1 < layers.length) {
                    backend.addRmsNorm(b.x, b.proj, layers[l + 1].inputNorm, eps, n, hidden, b.xNorm);
                } else {
                    backend.add(b.x, b.proj, n, hidden);
                }
            } else {
                experts(layer, b, n);
                if (l + 1 < layers.length) {
                    backend.rmsNorm(b.x, layers[l + 1].inputNorm, eps, n, hidden, b.xNorm);
                }
            }
        }
        if (batch.nLogits > 0) {
            backend.gatherRows(b.x, hidden, batch, b.logitHidden);
            backend.rmsNorm(b.logitHidden, finalNorm, eps, batch.nLogits, hidden, b.logitHidden);
            backend.matmul(lmHead, null, b.logitHidden, batch.nLogits, b.logits);
        }
    }

    /** x += the weighted outputs of each token's chosen experts, each expert run once over its tokens. */
    private void experts(Layer layer, Buffers b, int n) {
        Routing r = b.routing;
        int numExperts = moe.numExperts();
        backend.matmul(layer.router, null, b.xNorm, n, b.routerLogits);
        backend.download(b.routerLogits, 0, r.routerLogits, 0, n * numExperts);
        route(r, n);
        for (int e = 0; e < numExperts; e++) {
            int from = r.groupStart[e];
            int count = r.groupStart[e + 1] - from;
            if (count == 0) {
                continue;
            }
            Buffer in = b.xNorm;
            if (count < n) { // the whole batch (always so in decode) needs no gather
                backend.gatherRows(b.xNorm, hidden, r.rows, from, count, b.expertIn);
                in = b.expertIn;
            }
            Mlp expert = layer.experts[e];
            backend.matmulSiluMul(expert.gateUp, in, count, b.gateUp, b.ffn);
            backend.matmul(expert.down, null, b.ffn, count, b.proj);
            backend.scatterAdd(b.proj, hidden, r.rows, r.scales, from, count, b.x);
        }
    }

    /**
     * HF's router on the host: softmax over the experts in float32, the top k (ties to the lower id), divided by
     * their sum when norm_topk_prob; then the (token, expert) pairs grouped by expert, tokens ascending.
     */
    private void route(Routing r, int n) {
        int numExperts = moe.numExperts();
        int k = moe.expertsPerToken();
        float[] logits = r.routerLogits;
        for (int t = 0; t < n; t++) {
            int base = t * numExperts;
            float max = Float.NEGATIVE_INFINITY;
            for (int e = 0; e < numExperts; e++) {
                max = Math.max(max, logits[base + e]);
            }
            float sum = 0;
            for (int e = 0; e < numExperts; e++) {
                float p = (float) Math.exp(logits[base + e] - max);
                logits[base + e] = p;
                sum += p;
            }
            float chosenSum = 0;
            for (int j = 0; j < k; j++) {
                int best = -1;
                for (int e = 0; e < numExperts; e++) {
                    if (logits[base + e] >= 0 && (best < 0 || logits[base + e] > logits[base + best])) {
                        best = e;
                    }
                }
                float p = logits[base + best] / sum;
                logits[base + best] = -1; // taken
                r.chosen[t * k + j] = best;
                r.chosenWeights[t * k + j] = p;
                chosenSum += p;
            }
            if (moe.normTopkProb()) {
                for (int j = 0; j < k; j++) {
                    r.chosenWeights[t * k + j] /= chosenSum;
                }
            }
        }
        // counting sort of the pairs by expert; tokens stay ascending within each expert's group
        int[] start = r.groupStart;
        java.util.Arrays.fill(start, 0);
        for (int i = 0; i < n * k; i++) {
            start[r.chosen[i] + 1]++;
        }
        for (int e = 0; e < numExperts; e++) {
            start[e + 1] += start[e];
        }
        for (int t = 0; t < n; t++) {
            for (int j = 0; j < k; j++) {
                int e = r.chosen[t * k + j];
                // start[e] is used as expert e's fill cursor, then restored below
                r.rows[start[e]] = t;
                r.scales[start[e]] = r.chosenWeights[t * k + j];
                start[e]++;
            }
        }
        for (int e = numExperts; e > 0; e--) {
            start[e] = start[e - 1];
        }
        start[0] = 0;
    }

    /** MoE steps route on the host (a download mid-step), so they cannot be recorded as graphs. */
    @Override
    public boolean recordable() {
        return moe == null;
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

    /** For MoE: the router and k experts per MoE layer (experts of a layer have equal sizes), not all experts. */
    @Override
    public long weightBytesPerToken() {
        long total = lmHead.byteSize();
        for (Layer layer : layers) {
            total += layer.qkv.byteSize() + layer.o.byteSize();
            if (layer.mlp != null) {
                total += layer.mlp.byteSize();
            } else {
                total += layer.router.byteSize() + (long) moe.expertsPerToken() * layer.experts[0].byteSize();
            }
        }
        return total;
    }
}
