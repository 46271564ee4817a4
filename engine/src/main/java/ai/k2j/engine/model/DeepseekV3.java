package ai.k2j.engine.model;

import ai.k2j.kernels.Backend;
import ai.k2j.kernels.Batch;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.KvCache;
import ai.k2j.kernels.KvPrecision;
import ai.k2j.kernels.RopeTable;
import ai.k2j.kernels.Rows;
import ai.k2j.kernels.Weight;
import ai.k2j.loaders.DeepseekConfig;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.ModelFormatException;
import ai.k2j.loaders.RopeScaling;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;

import java.util.List;

/**
 * The DeepSeek-V3 decoder (HF {@code DeepseekV3ForCausalLM}: DeepSeek-V3/R1, and Kimi K2, whose config says
 * {@code model_type: kimi_k2}): multi-head latent attention (MLA) and a sigmoid-routed mixture of experts with
 * shared experts. The fields are {@link DeepseekConfig}'s.
 *
 * <pre>
 *   x = embed(tokens)
 *   per layer:  h = rmsNorm(x)
 *     MLA:      q = q_b(rmsNorm(q_a(h)))  (or q_proj(h))          each head: [q_nope | q_rope]
 *               [c | r] = kv_a(h);  c = rmsNorm(c)                 latent c (kv_lora_rank), one rope key r
 *               rope(q_rope), rope(r);  store [c | r] in the cache (kv_lora_rank + qk_rope_head_dim floats)
 *               q_lat_h = W_UK_hᵀ·q_nope_h                          (absorbed: k_nope_h = W_UK_h·c)
 *               o_lat_h = Σ_p softmax_p((q_lat_h·c_p + q_rope_h·r_p)·scale) · c_p
 *               x += o_proj([W_UV_h·o_lat_h]_h)                     (absorbed: v_h = W_UV_h·c)
 *               h = rmsNorm(x)
 *     dense:    x += down(silu(gate(h))·up(h))                     (the first first_k_dense_replace layers)
 *     MoE:      x += Σ_chosen w_e·expert_e(h) + shared(h)          ({@link SigmoidRouting} picks e and w_e)
 *   logits = lm_head(rmsNorm(x[logit rows]))
 * </pre>
 *
 * <p><b>Absorbed form everywhere.</b> HF expands c into per-head keys k = [W_UK_h·c | r] and values W_UV_h·c;
 * since q·k = (W_UK_hᵀ·q_nope)·c + q_rope·r and Σ p·(W_UV_h·c) = W_UV_h·(Σ p·c), k2j attends in the latent space
 * and caches only [c | r] per token and layer: kv_lora_rank + qk_rope_head_dim floats (576 for DeepSeek-V3 and
 * Kimi K2) where the expanded cache would hold heads × (qk_head_dim + v_head_dim) (64 × 320 for Kimi K2). Prefill
 * and decode run the same form; the tests check it against an independent expanded-form reference at every step.
 * The latent row is stored in the cache's key slot (first half) and value slot (second half), so the paged cache
 * serves it unchanged ({@link Backend#latentAttention}).
 *
 * <p><b>RoPE</b> turns only the rope parts. The query rows are reordered at load so every head's rope part sits in
 * one view (and de-interleaved when {@code rope_interleave}, see {@link MlaTensors#queryRows}); the softmax scale
 * is qk_head_dim^−½, times mscale² with mscale = 0.1·mscale_all_dim·ln(factor) + 1 under YaRN, as HF.
 *
 * <p><b>Experts</b> route on the host as in {@link Qwen3}: each chosen expert runs once over its tokens (a decode
 * step reads only the chosen experts' weights; a prefill chunk multiplies each expert's weights with a matrix).
 * FP8 checkpoints are dequantized at load to float32 ({@link ai.k2j.loaders.Fp8Blocks}), exact to
 * dequantize-then-matmul.
 */
final class DeepseekV3 implements DecoderModel {

    /**
     * Benchmark switch ({@code -Dk2j.moe.ungrouped=true}): run each (token, expert) pair on its own instead of each
     * expert once over its tokens, to measure what grouping saves in prefill (docs/deepseek-v3.md). Same results.
     */
    private static final boolean UNGROUPED = Boolean.getBoolean("k2j.moe.ungrouped");

    /** One SwiGLU MLP: a dense layer's, a routed expert's, or a layer's shared experts. */
    private record Mlp(Weight gateUp, Weight down) {
        long byteSize() {
            return gateUp.byteSize() + down.byteSize();
        }
    }

    /** MLA's weights of one layer; qA and qANorm are null without q LoRA (then qB is q_proj). */
    private record Attention(Weight qA, Buffer qANorm, Weight qB, Weight kvA, Buffer kvANorm, Weight absorbedKeys,
                             Weight absorbedValues, Weight o) {
        long byteSize() {
            return (qA == null ? 0 : qA.byteSize()) + qB.byteSize() + kvA.byteSize() + absorbedKeys.byteSize()
                    + absorbedValues.byteSize() + o.byteSize();
        }
    }

    /** A layer: mlp is null in an MoE layer; router, bias, experts and shared are null in a dense one. */
    private record Layer(Buffer inputNorm, Attention attention, Buffer postNorm, Mlp mlp, Weight router,
                         float[] correctionBias, Mlp[] experts, Mlp shared) {
    }

    private final ModelConfig config;
    private final DeepseekConfig ds;
    private final Backend backend;
    private final Weight embedTokens;
    private final Layer[] layers;
    private final Buffer finalNorm;
    private final Weight lmHead;

    private final int hidden;
    private final int heads;
    private final float eps;
    private final float softmaxScale;

    private DeepseekV3(ModelConfig config, Backend backend, Weight embedTokens, Layer[] layers, Buffer finalNorm,
                       Weight lmHead) {
        this.config = config;
        this.ds = config.deepseek();
        this.backend = backend;
        this.embedTokens = embedTokens;
        this.layers = layers;
        this.finalNorm = finalNorm;
        this.lmHead = lmHead;
        hidden = config.hiddenSize();
        heads = config.numHeads();
        eps = (float) config.rmsNormEps();
        softmaxScale = softmaxScale(config);
    }

    /** HF's DeepseekV3Attention.scaling: qk_head_dim^−½, times yarn_get_mscale(factor, mscale_all_dim)² when set. */
    static float softmaxScale(ModelConfig config) {
        double scale = Math.pow(config.deepseek().qkHeadDim(), -0.5);
        RopeScaling s = config.ropeScaling();
        if (!s.isDefault() && !Double.isNaN(s.mscaleAllDim()) && s.mscaleAllDim() != 0) {
            double mscale = RopeFrequencies.getMscale(s.factor(), s.mscaleAllDim());
            scale = scale * mscale * mscale;
        }
        return (float) scale;
    }

    static DeepseekV3 load(ModelConfig config, WeightMap w, Backend backend, WeightFormat weightFormat) {
        DeepseekConfig ds = config.deepseek();
        if (!backend.supportsLatentAttention() || (ds.routedExperts() > 0 && !backend.supportsMixtureOfExperts())) {
            throw new UnsupportedOperationException(w.source() + ": " + config.architecture() + " needs the "
                    + "latent-attention and mixture-of-experts ops, which the " + backend.name()
                    + " backend does not have");
        }
        MlaTensors t = new MlaTensors(w, ds);
        int h = config.hiddenSize();
        int heads = config.numHeads();
        String hiddenField = "hidden_size=" + h;
        String headsField = "num_attention_heads=" + heads + ", qk_nope_head_dim=" + ds.qkNopeHeadDim()
                + ", qk_rope_head_dim=" + ds.qkRopeHeadDim();
        Layer[] layers = new Layer[config.numLayers()];
        for (int i = 0; i < layers.length; i++) {
            String p = "model.layers." + i + ".";
            String a = p + "self_attn.";
            Weight qA = null;
            Buffer qANorm = null;
            Tensor q;
            if (ds.hasQLora()) {
                String lora = "q_lora_rank=" + ds.qLoraRank();
                qA = backend.matrix(List.of(t.get(a + "q_a_proj.weight", lora + ", " + hiddenField, ds.qLoraRank(), h)),
                        weightFormat);
                qANorm = backend.vector(List.of(t.get(a + "q_a_layernorm.weight", lora, ds.qLoraRank())));
                q = t.get(a + "q_b_proj.weight", headsField + ", " + lora, (long) heads * ds.qkHeadDim(),
                        ds.qLoraRank());
            } else {
                q = t.get(a + "q_proj.weight", headsField + ", q_lora_rank=null, " + hiddenField,
                        (long) heads * ds.qkHeadDim(), h);
            }
            Tensor kvA = t.get(a + "kv_a_proj_with_mqa.weight", "kv_lora_rank=" + ds.kvLoraRank()
                    + ", qk_rope_head_dim=" + ds.qkRopeHeadDim() + ", " + hiddenField, ds.latentWidth(), h);
            Tensor kvB = t.get(a + "kv_b_proj.weight", "num_attention_heads=" + heads + ", qk_nope_head_dim="
                            + ds.qkNopeHeadDim() + ", v_head_dim=" + ds.vHeadDim() + ", kv_lora_rank=" + ds.kvLoraRank(),
                    (long) heads * (ds.qkNopeHeadDim() + ds.vHeadDim()), ds.kvLoraRank());
            Attention attention = new Attention(qA, qANorm,
                    backend.matrix(List.of(t.queryRows(q, heads)), weightFormat),
                    backend.matrix(List.of(t.latentRows(kvA)), weightFormat),
                    backend.vector(List.of(t.get(a + "kv_a_layernorm.weight", "kv_lora_rank=" + ds.kvLoraRank(),
                            ds.kvLoraRank()))),
                    backend.matrix(List.of(t.absorbedKeys(kvB, heads)), null),
                    backend.matrix(List.of(t.absorbedValues(kvB, heads)), null),
                    backend.matrix(List.of(t.get(a + "o_proj.weight", "num_attention_heads=" + heads + ", v_head_dim="
                            + ds.vHeadDim() + ", " + hiddenField, h, (long) heads * ds.vHeadDim())), weightFormat));
            Mlp mlp = null;
            Weight router = null;
            float[] bias = null;
            Mlp[] experts = null;
            Mlp shared = null;
            if (ds.isMoeLayer(i)) {
                String expertsField = "n_routed_experts=" + ds.routedExperts();
                // the router stays in the checkpoint's dtype: its rounding would change which experts run
                router = backend.matrix(List.of(t.get(p + "mlp.gate.weight", expertsField + ", " + hiddenField,
                        ds.routedExperts(), h)), null);
                bias = t.hostVector(p + "mlp.gate.e_score_correction_bias", expertsField, ds.routedExperts());
                experts = new Mlp[ds.routedExperts()];
                for (int e = 0; e < experts.length; e++) {
                    experts[e] = mlp(t, p + "mlp.experts." + e + ".", "moe_intermediate_size=" + ds.moeIntermediateSize()
                            + ", " + expertsField, h, ds.moeIntermediateSize(), backend, weightFormat);
                }
                if (w.has(p + "mlp.experts." + experts.length + ".gate_proj.weight")) {
                    throw new ModelFormatException(w.source() + ": tensor '" + p + "mlp.experts." + experts.length
                            + ".gate_proj.weight' exists, but config.json says n_routed_experts=" + experts.length);
                }
                if (ds.sharedExperts() > 0) {
                    shared = mlp(t, p + "mlp.shared_experts.", "n_shared_experts=" + ds.sharedExperts()
                                    + " × moe_intermediate_size=" + ds.moeIntermediateSize(), h,
                            ds.sharedExperts() * ds.moeIntermediateSize(), backend, weightFormat);
                }
            } else {
                mlp = mlp(t, p + "mlp.", "intermediate_size=" + config.intermediateSize() + " (dense layer: "
                        + "first_k_dense_replace=" + ds.firstKDenseReplace() + ")", h, config.intermediateSize(),
                        backend, weightFormat);
            }
            layers[i] = new Layer(backend.vector(List.of(t.get(p + "input_layernorm.weight", hiddenField, h))),
                    attention,
                    backend.vector(List.of(t.get(p + "post_attention_layernorm.weight", hiddenField, h))),
                    mlp, router, bias, experts, shared);
        }
        Buffer finalNorm = backend.vector(List.of(w.get("model.norm.weight", h)));
        Embeddings e = Embeddings.load(config, w, backend, weightFormat);
        return new DeepseekV3(config, backend, e.table(), layers, finalNorm, e.lmHead());
    }

    private static Mlp mlp(MlaTensors t, String prefix, String fields, int h, int ff, Backend backend,
                           WeightFormat weightFormat) {
        String all = fields + ", hidden_size=" + h;
        return new Mlp(
                backend.matrix(List.of(t.get(prefix + "gate_proj.weight", all, ff, h),
                        t.get(prefix + "up_proj.weight", all, ff, h)), weightFormat),
                backend.matrix(List.of(t.get(prefix + "down_proj.weight", all, h, ff)), weightFormat));
    }

    /** The buffers of one context. */
    private record Buffers(Buffer x, Buffer xNorm, Buffer qa, Buffer q, Rows qNope, Rows qRope, Buffer kva,
                           Rows latent, Rows keyHalf, Rows valueHalf, Rows kRope, Buffer qLatent, Buffer oLatent,
                           Rows qLatentRows, Rows oLatentRows,
                           Buffer attnOut, Buffer proj, Buffer gateUp, Buffer ffn, Buffer logitHidden, Buffer logits,
                           RopeTable rope, Buffer routerLogits, Buffer expertIn, SigmoidRouting routing)
            implements Workspace {
    }

    @Override
    public Workspace newWorkspace(int maxTokens, int maxLogitRows, int maxContext) {
        long t = maxTokens;
        int nope = ds.qkNopeHeadDim();
        int rope = ds.qkRopeHeadDim();
        int qWidth = heads * ds.qkHeadDim();
        int latentWidth = ds.latentWidth();
        int half = latentWidth / 2;
        int ff = config.intermediateSize();
        if (ds.routedExperts() > 0) {
            ff = Math.max(ff, Math.max(ds.moeIntermediateSize(), ds.sharedExperts() * ds.moeIntermediateSize()));
        }
        Buffer q = backend.allocate(t * qWidth);
        Buffer kva = backend.allocate(t * latentWidth);
        Buffer qLatent = backend.allocate(t * heads * ds.kvLoraRank());
        Buffer oLatent = backend.allocate(t * heads * ds.kvLoraRank());
        RopeFrequencies freqs = RopeFrequencies.of(config, maxContext);
        boolean moe = ds.routedExperts() > 0;
        return new Buffers(backend.allocate(t * hidden), backend.allocate(t * hidden),
                ds.hasQLora() ? backend.allocate(t * ds.qLoraRank()) : null,
                q, Rows.of(q, 0, qWidth, heads * nope), Rows.of(q, heads * nope, qWidth, heads * rope),
                kva, Rows.of(kva, 0, latentWidth, ds.kvLoraRank()), Rows.of(kva, 0, latentWidth, half),
                Rows.of(kva, half, latentWidth, half), Rows.of(kva, ds.kvLoraRank(), latentWidth, rope),
                qLatent, oLatent, Rows.of(qLatent, heads * ds.kvLoraRank()), Rows.of(oLatent, heads * ds.kvLoraRank()),
                backend.allocate(t * heads * ds.vHeadDim()), backend.allocate(t * hidden),
                backend.allocate(t * 2L * ff), backend.allocate(t * ff), backend.allocate((long) maxLogitRows * hidden),
                backend.allocate((long) maxLogitRows * config.vocabSize()),
                backend.ropeTable(freqs.invFreq(), freqs.attentionScaling(), maxContext),
                moe ? backend.allocate(t * ds.routedExperts()) : null, moe ? backend.allocate(t * hidden) : null,
                moe ? new SigmoidRouting(maxTokens, ds) : null);
    }

    @Override
    public void forward(Workspace workspace, KvCache cache, Batch batch) {
        Buffers b = (Buffers) workspace;
        int n = batch.nTokens;
        int rope = ds.qkRopeHeadDim();
        int lora = ds.kvLoraRank();
        backend.embed(embedTokens, batch, b.x);
        backend.rmsNorm(b.x, layers[0].inputNorm, eps, n, hidden, b.xNorm);
        for (int l = 0; l < layers.length; l++) {
            Layer layer = layers[l];
            Attention a = layer.attention;
            // queries: [all heads' q_nope | all heads' q_rope] per row
            if (a.qA != null) {
                backend.matmul(a.qA, null, b.xNorm, n, b.qa);
                backend.rmsNorm(b.qa, a.qANorm, eps, n, ds.qLoraRank(), b.qa);
                backend.matmul(a.qB, null, b.qa, n, b.q);
            } else {
                backend.matmul(a.qB, null, b.xNorm, n, b.q);
            }
            // the latent row [c | r]: normed c, roped r, stored as the cache row
            backend.matmul(a.kvA, null, b.xNorm, n, b.kva);
            backend.rmsNormHeads(b.latent, lora, a.kvANorm, eps, n);
            backend.rope(b.qRope, rope, batch, b.rope);
            backend.rope(b.kRope, rope, batch, b.rope);
            backend.storeKv(cache, l, b.keyHalf, b.valueHalf, batch);
            // attention in the latent space, then out of it
            backend.headMatmul(a.absorbedKeys, heads, b.qNope, n, b.qLatent);
            backend.latentAttention(b.qLatentRows, b.qRope, cache, l, batch, heads, lora, softmaxScale, b.oLatent);
            backend.headMatmul(a.absorbedValues, heads, b.oLatentRows, n, b.attnOut);
            backend.matmul(a.o, null, b.attnOut, n, b.proj);
            backend.addRmsNorm(b.x, b.proj, layer.postNorm, eps, n, hidden, b.xNorm);
            // feed-forward: x += mlp(xNorm)
            if (layer.mlp != null) {
                backend.matmulSiluMul(layer.mlp.gateUp, b.xNorm, n, b.gateUp, b.ffn);
                backend.matmul(layer.mlp.down, null, b.ffn, n, b.proj);
            } else {
                experts(layer, b, n);
                if (layer.shared != null) {
                    backend.matmulSiluMul(layer.shared.gateUp, b.xNorm, n, b.gateUp, b.ffn);
                    backend.matmul(layer.shared.down, null, b.ffn, n, b.proj);
                }
            }
            boolean added = layer.mlp != null || layer.shared != null;
            if (l + 1 < layers.length) {
                if (added) {
                    backend.addRmsNorm(b.x, b.proj, layers[l + 1].inputNorm, eps, n, hidden, b.xNorm);
                } else {
                    backend.rmsNorm(b.x, layers[l + 1].inputNorm, eps, n, hidden, b.xNorm);
                }
            } else if (added) {
                backend.add(b.x, b.proj, n, hidden);
            }
        }
        if (batch.nLogits > 0) {
            backend.gatherRows(b.x, hidden, batch, b.logitHidden);
            backend.rmsNorm(b.logitHidden, finalNorm, eps, batch.nLogits, hidden, b.logitHidden);
            backend.matmul(lmHead, null, b.logitHidden, batch.nLogits, b.logits);
        }
    }

    /** x += the weighted outputs of each token's chosen experts, each chosen expert run once over its tokens. */
    private void experts(Layer layer, Buffers b, int n) {
        SigmoidRouting r = b.routing;
        int numExperts = ds.routedExperts();
        backend.matmul(layer.router, null, b.xNorm, n, b.routerLogits);
        backend.download(b.routerLogits, 0, r.routerLogits, 0, n * numExperts);
        r.route(n, layer.correctionBias);
        if (UNGROUPED) {
            int k = ds.expertsPerToken();
            for (int t = 0; t < n; t++) {
                for (int j = 0; j < k; j++) {
                    int pair = t * k + j;
                    r.pairRow[0] = t;
                    r.pairScale[0] = r.chosenWeights[pair];
                    backend.gatherRows(b.xNorm, hidden, r.pairRow, 0, 1, b.expertIn);
                    Mlp expert = layer.experts[r.chosen[pair]];
                    backend.matmulSiluMul(expert.gateUp, b.expertIn, 1, b.gateUp, b.ffn);
                    backend.matmul(expert.down, null, b.ffn, 1, b.proj);
                    backend.scatterAdd(b.proj, hidden, r.pairRow, r.pairScale, 0, 1, b.x);
                }
            }
            return;
        }
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

    /** The latent rows [c_kv | k_rope] stay float32: the latent attention kernels read them as floats. */
    @Override
    public KvPrecision kvPrecision(KvPrecision requested) {
        return KvPrecision.F32;
    }

    /**
     * Not recorded as graphs: routing downloads the router logits mid-step, and the latent attention sizes its
     * scratch from each step's positions.
     */
    @Override
    public boolean recordable() {
        return false;
    }

    @Override
    public ModelConfig config() {
        return config;
    }

    @Override
    public Backend backend() {
        return backend;
    }

    /** Half a latent row: the cache's key slot holds [c | r]'s first half, its value slot the second. */
    @Override
    public int kvDim() {
        return ds.latentWidth() / 2;
    }

    @Override
    public int kvLayers() {
        return layers.length;
    }

    /** Attention, dense MLPs, and per MoE layer the router, the shared experts and k routed experts. */
    @Override
    public long weightBytesPerToken() {
        long total = lmHead.byteSize();
        for (Layer layer : layers) {
            total += layer.attention.byteSize();
            if (layer.mlp != null) {
                total += layer.mlp.byteSize();
            } else {
                total += layer.router.byteSize() + (long) ds.expertsPerToken() * layer.experts[0].byteSize()
                        + (layer.shared == null ? 0 : layer.shared.byteSize());
            }
        }
        return total;
    }
}
