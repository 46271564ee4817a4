package ai.k2j.plan;

import ai.k2j.loaders.ModelConfig;

/**
 * What the planner needs of a decoder-only transformer: its tensor shapes. Dense Qwen2/Llama layers are
 * planned today; {@link Moe} describes a mixture-of-experts layer (Kimi K2 / DeepSeek-V3 style: routed experts
 * plus shared experts, the first layers dense) whose experts become separate partitions. Reading such a shape
 * from a config.json is future work (k2j's loader reads Qwen2 configs), so an {@code Moe} shape is built in code.
 *
 * @param qkvBias Qwen2 has biases on q/k/v; Llama has none
 * @param moe     null for a dense model
 */
public record ModelShape(String name, String architecture, int hidden, int intermediate, int layers, int heads,
                         int kvHeads, int headDim, int vocab, boolean tiedEmbeddings, boolean qkvBias,
                         int maxPositions, Moe moe, Mla mla, boolean qkNorm) {

    /** A shape without Qwen3's per-head q/k RMSNorm. */
    public ModelShape(String name, String architecture, int hidden, int intermediate, int layers, int heads,
                      int kvHeads, int headDim, int vocab, boolean tiedEmbeddings, boolean qkvBias, int maxPositions,
                      Moe moe, Mla mla) {
        this(name, architecture, hidden, intermediate, layers, heads, kvHeads, headDim, vocab, tiedEmbeddings,
                qkvBias, maxPositions, moe, mla, false);
    }

    /** The same shape with Qwen3's per-head RMSNorm on q and k (before RoPE). */
    public ModelShape withQkNorm() {
        return new ModelShape(name, architecture, hidden, intermediate, layers, heads, kvHeads, headDim, vocab,
                tiedEmbeddings, qkvBias, maxPositions, moe, mla, true);
    }

    /** A dense or MoE shape with standard (GQA) attention. */
    public ModelShape(String name, String architecture, int hidden, int intermediate, int layers, int heads,
                      int kvHeads, int headDim, int vocab, boolean tiedEmbeddings, boolean qkvBias, int maxPositions,
                      Moe moe) {
        this(name, architecture, hidden, intermediate, layers, heads, kvHeads, headDim, vocab, tiedEmbeddings,
                qkvBias, maxPositions, moe, null);
    }

    /**
     * DeepSeek-V3-style multi-head latent attention: q through a rank-{@code qLoraRank} bottleneck, keys and values
     * through one compressed latent of {@code kvLoraRank} plus a shared RoPE key of {@code ropeDim}; the cache holds
     * only that latent and the RoPE key per token, and decode absorbs the up-projections into q and o.
     */
    public record Mla(int qLoraRank, int kvLoraRank, int nopeDim, int ropeDim, int vHeadDim) {
        public Mla {
            if (qLoraRank < 1 || kvLoraRank < 1 || nopeDim < 1 || ropeDim < 0 || vHeadDim < 1) {
                throw new PlanException("invalid MLA shape: q_lora_rank=" + qLoraRank + " kv_lora_rank="
                        + kvLoraRank + " qk_nope_head_dim=" + nopeDim + " qk_rope_head_dim=" + ropeDim
                        + " v_head_dim=" + vHeadDim);
            }
        }
    }

    /**
     * A mixture-of-experts MLP: {@code experts} routed experts of width {@code expertIntermediate}, {@code topK}
     * of them per token, plus {@code sharedExperts} always-on experts of the same width; layers below
     * {@code firstMoeLayer} (DeepSeek-V3's {@code first_k_dense_replace}), layers in {@code denseLayers}
     * (Qwen3-MoE's {@code mlp_only_layers}) and layers {@code i} with {@code (i + 1) % sparseStep != 0} (its
     * {@code decoder_sparse_step}) keep the dense MLP of width {@link #intermediate()}.
     */
    public record Moe(int experts, int topK, int expertIntermediate, int sharedExperts, int firstMoeLayer,
                      int sparseStep, java.util.List<Integer> denseLayers) {
        public Moe(int experts, int topK, int expertIntermediate, int sharedExperts, int firstMoeLayer) {
            this(experts, topK, expertIntermediate, sharedExperts, firstMoeLayer, 1, java.util.List.of());
        }

        public Moe {
            if (experts < 1 || topK < 1 || topK > experts || expertIntermediate < 1 || sharedExperts < 0
                    || firstMoeLayer < 0 || sparseStep < 1) {
                throw new PlanException("invalid MoE shape: experts=" + experts + " topK=" + topK
                        + " expertIntermediate=" + expertIntermediate + " sharedExperts=" + sharedExperts
                        + " firstMoeLayer=" + firstMoeLayer + " sparseStep=" + sparseStep);
            }
            denseLayers = java.util.List.copyOf(denseLayers);
        }

        public boolean isMoeLayer(int layer) {
            return layer >= firstMoeLayer && !denseLayers.contains(layer) && (layer + 1) % sparseStep == 0;
        }
    }

    public ModelShape {
        if (hidden < 1 || intermediate < 1 || layers < 1 || heads < 1 || kvHeads < 1 || headDim < 1 || vocab < 1) {
            throw new PlanException("model " + name + ": all sizes must be positive");
        }
        if (heads % kvHeads != 0) {
            throw new PlanException("model " + name + ": heads (" + heads + ") not a multiple of kv heads ("
                    + kvHeads + ")");
        }
    }

    /** The shape of a config k2j's loader read (dense, or Qwen3-MoE); {@code name} labels it in the plan. */
    public static ModelShape of(ModelConfig c, String name) {
        boolean bias = c.hasQkvBias() && !c.architecture().startsWith("Mistral");
        Moe moe = null;
        if (c.moe() != null) {
            ai.k2j.loaders.MoeConfig m = c.moe();
            moe = new Moe(m.numExperts(), m.expertsPerToken(), m.expertIntermediateSize(), 0, 0,
                    m.decoderSparseStep(), java.util.Arrays.stream(m.mlpOnlyLayers()).boxed().toList());
        }
        return new ModelShape(name, c.architecture(), c.hiddenSize(), c.intermediateSize(), c.numLayers(),
                c.numHeads(), c.numKvHeads(), c.headDim(), c.vocabSize(), c.tieWordEmbeddings(), bias,
                c.maxPositionEmbeddings(), moe, null, c.hasQkNorm());
    }

    public int qDim() {
        return heads * headDim;
    }

    public int kvDim() {
        return kvHeads * headDim;
    }

    public boolean isMoe(int layer) {
        return moe != null && moe.isMoeLayer(layer);
    }

    /** q/k/v/o projection weights (and q/k/v biases; MLA: its down/up projections and latent norms) of one layer. */
    public long attentionParams() {
        if (mla != null) {
            long h = hidden;
            long qk = mla.nopeDim() + mla.ropeDim();
            return h * mla.qLoraRank() + mla.qLoraRank() + (long) mla.qLoraRank() * heads * qk
                    + h * (mla.kvLoraRank() + mla.ropeDim()) + mla.kvLoraRank()
                    + (long) mla.kvLoraRank() * heads * (mla.nopeDim() + mla.vHeadDim())
                    + (long) heads * mla.vHeadDim() * h;
        }
        long h = hidden, q = qDim(), kv = kvDim();
        return h * (q + 2 * kv) + (qkvBias ? q + 2 * kv : 0) + q * h + (qkNorm ? 2L * headDim : 0);
    }

    /** gate/up/down weights of one dense MLP. */
    public long denseMlpParams() {
        return 3L * hidden * intermediate;
    }

    /** One expert's gate/up/down weights. */
    public long expertParams() {
        return 3L * hidden * moe.expertIntermediate();
    }

    /** The router (gate) of an MoE layer: hidden x experts. */
    public long routerParams() {
        return (long) hidden * moe.experts();
    }

    public long mlpParams(int layer) {
        if (!isMoe(layer)) {
            return denseMlpParams();
        }
        return routerParams() + (long) (moe.experts() + moe.sharedExperts()) * expertParams();
    }

    public long layerParams(int layer) {
        return attentionParams() + mlpParams(layer) + 2L * hidden;
    }

    public long embeddingParams() {
        return (long) vocab * hidden;
    }

    /** All parameters (the embedding counted once when tied), as HF counts them. */
    public long parameterCount() {
        long n = 0;
        for (int l = 0; l < layers; l++) {
            n += layerParams(l);
        }
        return n + embeddingParams() * (tiedEmbeddings ? 1 : 2) + hidden;
    }

    /** Bytes of KV cache per token per layer at 16 bits (MLA: the latent plus the RoPE key). */
    public long kvBytesPerTokenPerLayer() {
        if (mla != null) {
            return 2L * (mla.kvLoraRank() + mla.ropeDim());
        }
        return 2L * kvDim() * 2;
    }
}
