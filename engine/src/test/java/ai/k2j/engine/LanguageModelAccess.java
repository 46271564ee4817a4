package ai.k2j.engine;

import ai.k2j.loaders.ModelConfig;

/** Package-private engine entry points for tests in other packages. */
public final class LanguageModelAccess {
    private LanguageModelAccess() {
    }

    /** {@link LanguageModel#resolveMaxContext}. */
    public static int resolve(ModelConfig config, int requested) {
        return LanguageModel.resolveMaxContext(config, requested);
    }

    /** {@link LanguageModel#contextWarning}. */
    public static String warning(ModelConfig config, int requested) {
        return LanguageModel.contextWarning(config, requested);
    }
}
