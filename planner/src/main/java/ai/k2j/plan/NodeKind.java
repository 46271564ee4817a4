package ai.k2j.plan;

/** What a placed partition holds and computes. */
public enum NodeKind {
    /** Token embedding table (lookup). */
    EMBEDDING,
    /** Tied embedding and output head: one table serves the lookup and the logits GEMV. */
    EMBEDDING_LM_HEAD,
    /** RMSNorm strip in front of the attention or the MLP of a layer (a 1-column partition). */
    NORM,
    /** q/k/v/o projections, RoPE and the attention residual add. */
    ATTENTION,
    /** One layer's KV cache, with the scores, softmax and weighted sum over it. */
    KV_CACHE,
    /** gate/up/down projections and the MLP residual add (dense layers). */
    MLP,
    /** MoE router (gate GEMV and top-k); designed, see docs/wafer-plan.md "MoE". */
    ROUTER,
    /** One routed or shared expert of an MoE layer (an MLP partition); designed, see docs/wafer-plan.md "MoE". */
    EXPERT,
    /** The final RMSNorm before the output head. */
    FINAL_NORM,
    /** Output head (logits GEMV) and greedy argmax. */
    LM_HEAD
}
