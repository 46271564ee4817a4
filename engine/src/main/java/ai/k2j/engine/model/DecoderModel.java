package ai.k2j.engine.model;

import ai.k2j.kernels.Backend;
import ai.k2j.kernels.Batch;
import ai.k2j.kernels.KvCache;
import ai.k2j.kernels.KvPrecision;
import ai.k2j.loaders.ModelConfig;

/**
 * An architecture's definition (llama.cpp's model, vLLM's model class): its weights on a backend, checked against
 * the config when loaded, and its forward pass written in {@link Backend} ops. It holds no per-run state: the
 * buffers a step writes ({@link Workspace}), the KV cache and the limits belong to the runtime context
 * ({@link ai.k2j.engine.ModelContext}), so one definition could serve several contexts.
 *
 * <p>Adding an architecture means one class implementing this (its weight map and its forward pass) and a line in
 * {@link Architectures}.
 */
public interface DecoderModel {

    ModelConfig config();

    /** The backend the weights live on. */
    Backend backend();

    /** Floats one token's key (and, separately, its value) takes per layer in the KV cache. */
    int kvDim();

    /** Layers that keep a KV cache. */
    int kvLayers();

    /** Bytes one decode step reads from weights (every matrix it multiplies once, plus one embedding row). */
    long weightBytesPerToken();

    /**
     * The buffers a step writes, for steps of up to {@code maxTokens} tokens and {@code maxLogitRows} logit rows at
     * positions below {@code maxContext} (the RoPE table's length).
     */
    Workspace newWorkspace(int maxTokens, int maxLogitRows, int maxContext);

    /**
     * Whether a step can be recorded as a CUDA graph and replayed: false when the forward pass needs the host
     * mid-step (MoE routing downloads the router logits).
     */
    default boolean recordable() {
        return true;
    }

    /**
     * The precision this model's KV cache is made in when {@code requested} is asked for: the request itself, unless
     * the cache rows are not per-head keys and values that the backends' precision codecs understand.
     */
    default KvPrecision kvPrecision(KvPrecision requested) {
        return requested;
    }

    /**
     * One step over the batch's tokens: stores their keys and values in {@code cache} and writes the logits of
     * {@code batch.logitRows} into {@link Workspace#logits()} (row i at offset i·vocab). The caller has checked the
     * batch against the workspace's limits. Must not allocate.
     */
    void forward(Workspace workspace, KvCache cache, Batch batch);
}
