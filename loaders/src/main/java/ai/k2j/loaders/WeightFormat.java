package ai.k2j.loaders;

import java.util.Locale;

/**
 * The encoding weight matrices are kept in by a backend: {@link #NATIVE} keeps each checkpoint tensor's own dtype;
 * the others convert at load (F16/BF16/F32 by rounding, Q8_0/Q4_0 with llama.cpp's reference quantizers in
 * {@link Quantizer}). Parsed once, where the user's string enters ({@link #parse}); backends take the type.
 */
public enum WeightFormat {
    NATIVE(null),
    F32(DType.F32),
    F16(DType.F16),
    BF16(DType.BF16),
    Q8_0(DType.Q8_0),
    Q4_0(DType.Q4_0);

    private final DType dtype;

    WeightFormat(DType dtype) {
        this.dtype = dtype;
    }

    /**
     * null, blank or "native" → {@link #NATIVE}; otherwise one of f32, f16, bf16, q8_0, q4_0 (any case).
     *
     * @throws IllegalArgumentException naming the string and the accepted formats
     */
    public static WeightFormat parse(String format) {
        if (format == null || format.isBlank()) {
            return NATIVE;
        }
        try {
            return valueOf(format.trim().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("unknown weight format '" + format
                    + "' (expected native, f32, f16, bf16, q8_0 or q4_0)");
        }
    }

    /** The dtype this format converts to, or null for {@link #NATIVE}. */
    public DType dtype() {
        return dtype;
    }

    /** The dtype a tensor of {@code source} dtype ends up in under this format. */
    public DType target(DType source) {
        return dtype == null ? source : dtype;
    }

    /** The lower-case name users type ("native", "q8_0", ...). */
    @Override
    public String toString() {
        return name().toLowerCase(Locale.ROOT);
    }
}
