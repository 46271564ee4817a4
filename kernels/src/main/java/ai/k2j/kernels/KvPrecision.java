package ai.k2j.kernels;

import java.util.Locale;

/**
 * How a paged KV cache stores keys and values (docs/kv-cache.md). Attention always computes in float32; the
 * precision is what the cache keeps between steps, so a long context reads 2 (BF16) or ~1 (FP8) bytes per value
 * instead of 4.
 * <ul>
 *   <li>{@link #F32}: exact; the exactness tests and the reference oracle's comparisons use it.</li>
 *   <li>{@link #BF16}: each value rounded to bfloat16 (nearest even), the default for generation.</li>
 *   <li>{@link #FP8_E4M3}: each value as FP8 E4M3 (max 448, no infinities) times one float32 scale per token slot
 *       and kv head, the head's absolute maximum / 448 ({@link KvCodec#quantizeHeadFp8}).</li>
 * </ul>
 */
public enum KvPrecision {
    F32(4, "f32"),
    BF16(2, "bf16"),
    FP8_E4M3(1, "fp8");

    private final int bytesPerValue;
    private final String flagName;

    KvPrecision(int bytesPerValue, String flagName) {
        this.bytesPerValue = bytesPerValue;
        this.flagName = flagName;
    }

    /** Bytes one stored key or value element takes (scales aside). */
    public int bytesPerValue() {
        return bytesPerValue;
    }

    /** The name users type ({@code --kv-cache f32|bf16|fp8}). */
    public String flagName() {
        return flagName;
    }

    /**
     * Bytes the cache holds per token over all layers: keys and values of kvDim elements, plus FP8's one float32
     * scale per kv head for each.
     */
    public long bytesPerToken(int layers, int kvDim, int headDim) {
        long perLayer = 2L * kvDim * bytesPerValue;
        if (this == FP8_E4M3) {
            perLayer += 2L * 4 * (kvDim / headDim);
        }
        return perLayer * layers;
    }

    /** f32, bf16 or fp8 (also fp8_e4m3 and float32/bfloat16), case-insensitive. */
    public static KvPrecision parse(String s) {
        if (s == null) {
            throw new IllegalArgumentException("KV cache precision is null (expected f32, bf16 or fp8)");
        }
        return switch (s.trim().toLowerCase(Locale.ROOT)) {
            case "f32", "float32", "fp32" -> F32;
            case "bf16", "bfloat16" -> BF16;
            case "fp8", "fp8_e4m3", "e4m3" -> FP8_E4M3;
            default -> throw new IllegalArgumentException("unknown KV cache precision '" + s
                    + "' (expected f32, bf16 or fp8)");
        };
    }
}
