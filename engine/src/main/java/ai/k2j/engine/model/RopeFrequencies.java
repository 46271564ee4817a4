package ai.k2j.engine.model;

import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.RopeScaling;

/**
 * RoPE inverse frequencies and the attention scaling that multiplies cos/sin, computed as HF transformers 5
 * does ({@code ROPE_INIT_FUNCTIONS} in {@code modeling_rope_utils.py}), including its float32 arithmetic:
 * the exponents, powers, reciprocals and the YaRN blend are float32 operations in torch's order, so the
 * frequencies are bit-identical to HF's (up to the last ulp of float32 {@code pow}).
 *
 * <ul>
 * <li>default: invFreq[i] = 1 / base^(2i/dim), scaling 1.</li>
 * <li>linear: the default frequencies divided by {@code factor}.</li>
 * <li>dynamic (NTK): HF recomputes the base from the running sequence length once it exceeds
 *     max_position_embeddings. k2j fixes the frequencies at load for seq_len = max(maxContext,
 *     max_position_embeddings): identical to HF for every sequence within max_position_embeddings (where the
 *     base is unchanged), an approximation beyond it.</li>
 * <li>yarn: HF's {@code _compute_yarn_parameters}: original_max_position_embeddings from rope_scaling, else
 *     max_position_embeddings (a top-level original_max_position_embeddings is not read by
 *     {@link ModelConfig}); attention_factor given, else get_mscale(factor, mscale)/get_mscale(factor,
 *     mscale_all_dim) when both are set (non-zero), else get_mscale(factor) = 0.1·ln(factor)+1 (1 when
 *     factor ≤ 1); beta_fast/beta_slow default 32/1 (also when 0); the correction range is floored/ceiled when
 *     {@code truncate} (default) and clamped to [0, dim−1]; a linear ramp over dim/2 blends interpolated
 *     (1/(factor·pos_freq)) and extrapolated (1/pos_freq) frequencies.</li>
 * <li>llama3: HF's {@code _compute_llama3_parameters}: with wavelen = 2π/invFreq, wavelengths longer than
 *     original_max_position_embeddings/low_freq_factor are divided by factor, shorter than
 *     original/high_freq_factor are kept, and those between blend the two with
 *     smooth = (original/wavelen − low)/(high − low): (1−smooth)·inv/factor + smooth·inv.</li>
 * </ul>
 *
 * @param invFreq          headDim/2 inverse frequencies
 * @param attentionScaling multiplies cos and sin (YaRN's attention factor; 1 otherwise)
 */
public record RopeFrequencies(float[] invFreq, float attentionScaling) {

    public RopeFrequencies {
        invFreq = invFreq.clone();
    }

    @Override
    public float[] invFreq() {
        return invFreq.clone();
    }

    /** The frequencies of {@code config}'s rope scaling, for sequences of up to {@code maxContext} tokens. */
    public static RopeFrequencies of(ModelConfig config, int maxContext) {
        RopeScaling s = config.ropeScaling();
        int dim = config.headDim();
        double base = config.ropeTheta();
        return switch (s.type()) {
            case "default" -> new RopeFrequencies(defaultInvFreq(base, dim), 1f);
            case "linear" -> new RopeFrequencies(linear(base, dim, s.factor()), 1f);
            case "dynamic" -> new RopeFrequencies(
                    dynamic(base, dim, s.factor(), config.maxPositionEmbeddings(), maxContext), 1f);
            case "yarn" -> yarn(base, dim, config.maxPositionEmbeddings(), s);
            case "llama3" -> new RopeFrequencies(llama3(base, dim, s), 1f);
            default -> throw new IllegalArgumentException("unsupported rope type '" + s.type() + "'");
        };
    }

    /** 1 / base^(2i/dim) in float32, as torch computes {@code 1.0 / (base ** (arange(0, dim, 2).float() / dim))}. */
    static float[] defaultInvFreq(double base, int dim) {
        float[] inv = new float[dim / 2];
        for (int i = 0; i < inv.length; i++) {
            inv[i] = 1f / powF32(base, exponent(i, dim));
        }
        return inv;
    }

    static float[] linear(double base, int dim, double factor) {
        float[] inv = defaultInvFreq(base, dim);
        for (int i = 0; i < inv.length; i++) {
            inv[i] = inv[i] / (float) factor;
        }
        return inv;
    }

    static float[] dynamic(double base, int dim, double factor, int maxPositionEmbeddings, int maxContext) {
        int seqLen = Math.max(maxContext, maxPositionEmbeddings);
        // Python float math, as HF: base * ((factor * seq_len / max_pos) - (factor - 1)) ** (dim / (dim - 2))
        double scaledBase = base * Math.pow(factor * seqLen / maxPositionEmbeddings - (factor - 1),
                (double) dim / (dim - 2));
        return defaultInvFreq(scaledBase, dim);
    }

    static RopeFrequencies yarn(double base, int dim, int maxPositionEmbeddings, RopeScaling s) {
        double factor = s.factor();
        int originalMax = s.originalMaxPositionEmbeddings() > 0 ? s.originalMaxPositionEmbeddings()
                : maxPositionEmbeddings;

        double attentionFactor;
        if (!Double.isNaN(s.attentionFactor())) {
            attentionFactor = s.attentionFactor();
        } else if (truthy(s.mscale()) && truthy(s.mscaleAllDim())) {
            attentionFactor = getMscale(factor, s.mscale()) / getMscale(factor, s.mscaleAllDim());
        } else {
            attentionFactor = getMscale(factor, 1);
        }
        // Python's `x or default`: absent (NaN here) and 0 both fall back.
        double betaFast = truthy(s.betaFast()) ? s.betaFast() : 32;
        double betaSlow = truthy(s.betaSlow()) ? s.betaSlow() : 1;

        double low = correctionDim(betaFast, dim, base, originalMax);
        double high = correctionDim(betaSlow, dim, base, originalMax);
        if (s.truncate()) {
            low = Math.floor(low);
            high = Math.ceil(high);
        }
        low = Math.max(low, 0);
        high = Math.min(high, dim - 1);
        if (low == high) {
            high += 0.001; // HF: prevent a singular ramp
        }

        int half = dim / 2;
        float[] inv = new float[half];
        for (int i = 0; i < half; i++) {
            float posFreq = powF32(base, exponent(i, dim));
            float extrapolation = 1f / posFreq;
            float interpolation = 1f / ((float) factor * posFreq);
            // torch: (arange(half, float32) - low) / (high - low), clamped to [0, 1]
            float ramp = ((float) i - (float) low) / (float) (high - low);
            ramp = Math.min(Math.max(ramp, 0f), 1f);
            float extrapolationFactor = 1f - ramp;
            inv[i] = interpolation * (1f - extrapolationFactor) + extrapolation * extrapolationFactor;
        }
        return new RopeFrequencies(inv, (float) attentionFactor);
    }

    /** Llama 3.1's frequency scaling, in torch's float32 order (Python scalars meet float32 tensors as float32). */
    static float[] llama3(double base, int dim, RopeScaling s) {
        float[] inv = defaultInvFreq(base, dim);
        float factor = (float) s.factor();
        float low = (float) s.lowFreqFactor();
        float oldContext = s.originalMaxPositionEmbeddings();
        float lowFreqWavelen = (float) (s.originalMaxPositionEmbeddings() / s.lowFreqFactor());
        float highFreqWavelen = (float) (s.originalMaxPositionEmbeddings() / s.highFreqFactor());
        float lowHighSpan = (float) (s.highFreqFactor() - s.lowFreqFactor());
        for (int i = 0; i < inv.length; i++) {
            float wavelen = (float) (2 * Math.PI) / inv[i];
            float scaled = wavelen > lowFreqWavelen ? inv[i] / factor : inv[i];
            boolean medium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
            if (medium) {
                float smooth = (oldContext / wavelen - low) / lowHighSpan;
                scaled = (1f - smooth) * scaled / factor + smooth * scaled;
            }
            inv[i] = scaled;
        }
        return inv;
    }

    /** HF's get_mscale: 0.1·mscale·ln(scale) + 1, or 1 when scale ≤ 1. */
    static double getMscale(double scale, double mscale) {
        return scale <= 1 ? 1.0 : 0.1 * mscale * Math.log(scale) + 1.0;
    }

    /** Dimension at which a frequency completes {@code rotations} turns over {@code maxPositions}. */
    static double correctionDim(double rotations, int dim, double base, int maxPositions) {
        return dim * Math.log(maxPositions / (rotations * 2 * Math.PI)) / (2 * Math.log(base));
    }

    /** float32 (2i)/dim. */
    private static float exponent(int i, int dim) {
        return (float) (2 * i) / (float) dim;
    }

    /** float32 pow with a float32 base, as torch's {@code python_float ** float32_tensor}. */
    private static float powF32(double base, float exponent) {
        return (float) Math.pow((float) base, exponent);
    }

    private static boolean truthy(double v) {
        return !Double.isNaN(v) && v != 0;
    }
}
