package ai.k2j.engine;

/**
 * How to load a model. backend: "cpu" (default; falls back to "reference" with a warning when the CPU backend
 * is not in the build), "cuda", or "reference" (the slow scalar oracle). threads &lt;= 0: all available processors.
 * maxContext &lt;= 0: the model's max_position_embeddings, capped to keep the KV cache reasonable.
 * weightFormat: null/"native" keeps the checkpoint's dtype; "q8_0"/"q4_0" quantize at load.
 */
public record ModelOptions(String backend, int threads, int maxContext, String weightFormat) {

    public static ModelOptions defaults() {
        return new ModelOptions("cpu", 0, 0, null);
    }

    public ModelOptions withThreads(int t) {
        return new ModelOptions(backend, t, maxContext, weightFormat);
    }

    public ModelOptions withMaxContext(int c) {
        return new ModelOptions(backend, threads, c, weightFormat);
    }

    public ModelOptions withBackend(String b) {
        return new ModelOptions(b, threads, maxContext, weightFormat);
    }

    public ModelOptions withWeightFormat(String f) {
        return new ModelOptions(backend, threads, maxContext, f);
    }
}
