/**
 * The embeddable engine: {@code LanguageModel} (one call, one generation; concurrent callers are batched),
 * {@code BatchEngine} (continuous batching for servers), speculative decoding, and the model definitions
 * ({@code ai.k2j.engine.model}) over the backend contract.
 */
module k2j.engine {
    requires transitive k2j.loaders;
    requires transitive k2j.tokenizer;
    requires transitive k2j.kernels;

    exports ai.k2j.engine;
    exports ai.k2j.engine.model;
}
