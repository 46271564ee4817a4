package ai.k2j.plan;

import java.util.Locale;

/**
 * How weights are stored in SRAM. Activations and the KV cache stay 16-bit; 8-bit weights are dequantised in the
 * datapath (W8A16), so they halve SRAM but run at the 16-bit SIMD rate.
 */
public enum WeightDType {
    /** bfloat16, 2 bytes per weight. */
    BF16(2.0),
    /** 8-bit float (e4m3), 1 byte per weight. */
    FP8(1.0),
    /** 8-bit integer with one bf16 scale per 32 weights (Q8_0-style): 34 bytes per 32 weights. */
    Q8(34.0 / 32.0);

    private final double bytesPerWeight;

    WeightDType(double bytesPerWeight) {
        this.bytesPerWeight = bytesPerWeight;
    }

    public double bytesPerWeight() {
        return bytesPerWeight;
    }

    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }

    public static WeightDType parse(String s) {
        for (WeightDType d : values()) {
            if (d.label().equals(s.toLowerCase(Locale.ROOT))) {
                return d;
            }
        }
        throw new PlanException("unknown weight dtype '" + s + "' (bf16, fp8, q8)");
    }
}
