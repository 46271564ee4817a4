package ai.k2j.loaders;

/**
 * RoPE scaling parameters as HF transformers defines them ({@code rope_scaling} in classic configs,
 * {@code rope_parameters} in transformers 5). {@code type} is "default" when no scaling applies.
 * Absent optional numbers are {@code NaN} (doubles) or 0 (original max positions).
 * {@code lowFreqFactor}/{@code highFreqFactor} are Llama 3's ({@code rope_type: llama3}).
 */
public record RopeScaling(
        String type,
        double factor,
        int originalMaxPositionEmbeddings,
        double betaFast,
        double betaSlow,
        double mscale,
        double mscaleAllDim,
        double attentionFactor,
        boolean truncate,
        double lowFreqFactor,
        double highFreqFactor) {

    public static final RopeScaling NONE =
            new RopeScaling("default", 1.0, 0, Double.NaN, Double.NaN, Double.NaN, Double.NaN, Double.NaN, true);

    /** Scaling without Llama 3's frequency factors (every type but llama3). */
    public RopeScaling(String type, double factor, int originalMaxPositionEmbeddings, double betaFast, double betaSlow,
                       double mscale, double mscaleAllDim, double attentionFactor, boolean truncate) {
        this(type, factor, originalMaxPositionEmbeddings, betaFast, betaSlow, mscale, mscaleAllDim, attentionFactor,
                truncate, Double.NaN, Double.NaN);
    }

    public boolean isYarn() {
        return "yarn".equals(type);
    }

    public boolean isDefault() {
        return "default".equals(type);
    }
}
