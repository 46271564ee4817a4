package ai.k2j.engine;

import ai.k2j.kernels.KvPrecision;
import ai.k2j.loaders.WeightFormat;

/**
 * How a {@link BatchEngine} is sized.
 *
 * @param backend      "cpu" (default), "cuda" or "reference" (see {@link ai.k2j.engine.ModelOptions})
 * @param threads      backend threads; &lt;= 0 means all cores
 * @param maxContext   most tokens (prompt + generated) one sequence may hold; &lt;= 0: max_position_embeddings
 *                     capped at 8192
 * @param maxBatch     most sequences decoding together (every choice of an {@code n > 1} request counts)
 * @param kvBlocks     KV cache blocks of {@link ai.k2j.engine.ModelContext#KV_BLOCK_SIZE} tokens shared by all
 *                     sequences; &lt;= 0: enough for {@code maxBatch} full contexts, capped at {@link #DEFAULT_KV_BYTES}
 *                     of cache (but never fewer than one full context plus one block)
 * @param stepTokens   most tokens one forward step processes (prefill chunks + decode tokens + drafts);
 *                     &lt;= 0: max(256, maxBatch · (draftTokens + 1))
 * @param draftTokens  tokens the draft model proposes per step for speculative requests (used with a draft)
 * @param weightFormat null or NATIVE keeps the checkpoint's dtype; Q8_0/Q4_0 quantize at load
 * @param kvCache      the KV cache's precision; null: {@link ModelOptions#DEFAULT_KV_CACHE}
 */
public record EngineOptions(String backend, int threads, int maxContext, int maxBatch, int kvBlocks, int stepTokens,
                            int draftTokens, WeightFormat weightFormat, KvPrecision kvCache) {

    /** Options with the default KV cache precision. */
    public EngineOptions(String backend, int threads, int maxContext, int maxBatch, int kvBlocks, int stepTokens,
                         int draftTokens, WeightFormat weightFormat) {
        this(backend, threads, maxContext, maxBatch, kvBlocks, stepTokens, draftTokens, weightFormat, null);
    }

    /** Default cap of the automatically sized KV cache: 4 GiB of keys and values (of the cache's precision). */
    public static final long DEFAULT_KV_BYTES = 4L << 30;

    public EngineOptions {
        if (kvCache == null) {
            kvCache = ModelOptions.DEFAULT_KV_CACHE;
        }
        if (maxBatch < 1 || maxBatch > 1024) {
            throw new IllegalArgumentException("maxBatch must be in [1, 1024], got " + maxBatch);
        }
        if (draftTokens < 1 || draftTokens > 16) {
            throw new IllegalArgumentException("draftTokens must be in [1, 16], got " + draftTokens);
        }
    }

    public static EngineOptions defaults() {
        return new EngineOptions("cpu", 0, 0, 16, 0, 0, 4, null, null);
    }

    public EngineOptions withBackend(String b) {
        return new EngineOptions(b, threads, maxContext, maxBatch, kvBlocks, stepTokens, draftTokens, weightFormat, kvCache);
    }

    public EngineOptions withThreads(int t) {
        return new EngineOptions(backend, t, maxContext, maxBatch, kvBlocks, stepTokens, draftTokens, weightFormat, kvCache);
    }

    public EngineOptions withMaxContext(int c) {
        return new EngineOptions(backend, threads, c, maxBatch, kvBlocks, stepTokens, draftTokens, weightFormat, kvCache);
    }

    public EngineOptions withMaxBatch(int b) {
        return new EngineOptions(backend, threads, maxContext, b, kvBlocks, stepTokens, draftTokens, weightFormat, kvCache);
    }

    public EngineOptions withKvBlocks(int blocks) {
        return new EngineOptions(backend, threads, maxContext, maxBatch, blocks, stepTokens, draftTokens, weightFormat, kvCache);
    }

    public EngineOptions withStepTokens(int t) {
        return new EngineOptions(backend, threads, maxContext, maxBatch, kvBlocks, t, draftTokens, weightFormat, kvCache);
    }

    public EngineOptions withDraftTokens(int k) {
        return new EngineOptions(backend, threads, maxContext, maxBatch, kvBlocks, stepTokens, k, weightFormat, kvCache);
    }

    public EngineOptions withKvCache(KvPrecision p) {
        return new EngineOptions(backend, threads, maxContext, maxBatch, kvBlocks, stepTokens, draftTokens, weightFormat,
                p);
    }

    public EngineOptions withWeightFormat(WeightFormat f) {
        return new EngineOptions(backend, threads, maxContext, maxBatch, kvBlocks, stepTokens, draftTokens, f, kvCache);
    }
}
