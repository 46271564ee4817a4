package ai.k2j.engine;

import ai.k2j.kernels.KvPrecision;
import ai.k2j.loaders.WeightFormat;

import java.nio.file.Path;

/**
 * How to load a model. backend: "cpu" (default; falls back to "reference" with a warning when the CPU backend
 * is not in the build), "cuda", or "reference" (the slow scalar oracle). threads &lt;= 0: all available processors.
 * maxContext &lt;= 0: the model's max_position_embeddings, capped to keep the KV cache reasonable.
 * weightFormat: null or NATIVE keeps the checkpoint's dtype; Q8_0/Q4_0 quantize at load ({@link WeightFormat#parse}
 * turns a user's string into one).
 * draft: null, or a draft model directory for speculative decoding (any Qwen2-family model sharing the target's
 * vocabulary; loaded on the same backend with the same context and weight format, see
 * {@link ai.k2j.engine.Speculation}).
 * kvCache: how the KV cache stores keys and values ({@link KvPrecision}; null means the default, BF16; F32 is exact).
 */
public record ModelOptions(String backend, int threads, int maxContext, WeightFormat weightFormat, Path draft,
                           KvPrecision kvCache) {

    /** The KV cache precision when none is asked for. */
    public static final KvPrecision DEFAULT_KV_CACHE = KvPrecision.BF16;

    public ModelOptions {
        if (kvCache == null) {
            kvCache = DEFAULT_KV_CACHE;
        }
    }

    /** Options with the default KV cache. */
    public ModelOptions(String backend, int threads, int maxContext, WeightFormat weightFormat, Path draft) {
        this(backend, threads, maxContext, weightFormat, draft, null);
    }

    /** Options without a draft model. */
    public ModelOptions(String backend, int threads, int maxContext, WeightFormat weightFormat) {
        this(backend, threads, maxContext, weightFormat, null, null);
    }

    public static ModelOptions defaults() {
        return new ModelOptions("cpu", 0, 0, null, null, null);
    }

    public ModelOptions withThreads(int t) {
        return new ModelOptions(backend, t, maxContext, weightFormat, draft, kvCache);
    }

    public ModelOptions withMaxContext(int c) {
        return new ModelOptions(backend, threads, c, weightFormat, draft, kvCache);
    }

    public ModelOptions withBackend(String b) {
        return new ModelOptions(b, threads, maxContext, weightFormat, draft, kvCache);
    }

    public ModelOptions withWeightFormat(WeightFormat f) {
        return new ModelOptions(backend, threads, maxContext, f, draft, kvCache);
    }

    /** Loads {@code dir} (null: none) as the draft model for speculative decoding. */
    public ModelOptions withDraft(Path dir) {
        return new ModelOptions(backend, threads, maxContext, weightFormat, dir, kvCache);
    }

    /** The KV cache's precision (null: the default). */
    public ModelOptions withKvCache(KvPrecision p) {
        return new ModelOptions(backend, threads, maxContext, weightFormat, draft, p);
    }
}
