package ai.k2j.loaders;

/**
 * RoPE scaling parameters as HF transformers defines them ({@code rope_scaling} in classic configs,
 * {@code rope_parameters} in transformers 5). {@code type} is "default" when no scaling applies.
 * Absent optional numbers are {@code NaN} (doubles) or 0 (original max positions).
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
        boolean truncate) {

    public static final RopeScaling NONE =
            new RopeScaling("default", 1.0, 0, Double.NaN, Double.NaN, Double.NaN, Double.NaN, Double.NaN, true);

    public boolean isYarn() {
        return "yarn".equals(type);
    }

    public boolean isDefault() {
        return "default".equals(type);
    }
}
