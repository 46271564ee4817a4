package ai.k2j.loaders;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Block quantization of float weights to k2j's Q8_0 and Q4_0 (llama.cpp's layouts and reference rounding, so a
 * k2j checkpoint holds the same bytes llama.cpp's {@code quantize_row_q8_0_ref}/{@code _q4_0_ref} would write).
 *
 * <ul>
 *   <li>Q8_0, 34 bytes per 32 values: f16 d = max|x|/127, then q = round-half-away(x/d) as int8. Value d·q.</li>
 *   <li>Q4_0, 18 bytes per 32 values: f16 d = m/−8 where m is the value of largest magnitude (sign kept), then
 *       16 bytes: byte j = (q_j) | (q_{j+16} &lt;&lt; 4) with q = min(15, trunc(x/d + 8.5)). Value d·(q − 8).</li>
 * </ul>
 * Rows are quantized independently; a row's length must be a multiple of 32. Sources may be F32, BF16 or F16.
 */
public final class Quantizer {
    private Quantizer() {
    }

    private static final ValueLayout.OfShort I16_LE = Halfs.LE_SHORT;

    /** Whether {@code target} is a block format this class writes (Q8_0 or Q4_0). */
    public static boolean isBlockFormat(DType target) {
        return target == DType.Q8_0 || target == DType.Q4_0;
    }

    /** Bytes a quantized copy of a {@code [rows, cols]} matrix takes. */
    public static long bytesFor(DType target, long rows, long cols) {
        return Math.multiplyExact(rows, target.bytesFor(cols));
    }

    /**
     * Quantizes the 2-D tensor {@code src} ({@code [rows, cols]}, F32/BF16/F16, cols a multiple of 32) into
     * {@code out} (at least {@link #bytesFor} bytes), row by row, on {@code threads} threads.
     *
     * @throws IllegalArgumentException naming the tensor when its dtype, rank or width cannot be quantized
     */
    public static void quantize(Tensor src, DType target, MemorySegment out, int threads) {
        check(src, target);
        long rows = src.dim(0);
        int cols = (int) src.dim(1);
        if (out.byteSize() < bytesFor(target, rows, cols)) {
            throw new IllegalArgumentException("output of " + out.byteSize() + " bytes is too small for " + target
                    + " of tensor '" + src.name() + "' (" + bytesFor(target, rows, cols) + " bytes)");
        }
        long srcRowBytes = src.dtype().bytesFor(cols);
        long dstRowBytes = target.bytesFor(cols);
        int parts = (int) Math.max(1, Math.min(Math.max(1, threads), rows / 64));
        if (parts == 1) {
            quantizeRows(src, target, out, 0, rows, cols, srcRowBytes, dstRowBytes);
            return;
        }
        try (ExecutorService pool = Executors.newFixedThreadPool(parts)) {
            List<Future<?>> done = new ArrayList<>();
            for (int p = 0; p < parts; p++) {
                long r0 = rows * p / parts;
                long r1 = rows * (p + 1) / parts;
                done.add(pool.submit(() -> quantizeRows(src, target, out, r0, r1, cols, srcRowBytes, dstRowBytes)));
            }
            for (Future<?> f : done) {
                f.get();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while quantizing '" + src.name() + "'", e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException re) {
                throw re;
            }
            throw new IllegalStateException("quantizing '" + src.name() + "' failed", e.getCause());
        }
    }

    /** Refuses tensors that cannot be quantized to {@code target}, naming them. */
    public static void check(Tensor src, DType target) {
        if (!isBlockFormat(target)) {
            throw new IllegalArgumentException(target + " is not a block format (Q8_0 or Q4_0), asked for tensor '"
                    + src.name() + "'");
        }
        switch (src.dtype()) {
            case F32, BF16, F16 -> {
            }
            default -> throw new IllegalArgumentException("tensor '" + src.name() + "' is " + src.dtype()
                    + "; only F32, BF16 and F16 weights can be quantized to " + target);
        }
        if (src.rank() != 2) {
            throw new IllegalArgumentException("tensor '" + src.name() + "' " + src + " is not a matrix");
        }
        if (src.dim(1) % 32 != 0 || src.dim(1) > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("tensor '" + src.name() + "' has " + src.dim(1) + " columns; " + target
                    + " needs a multiple of 32");
        }
        long expected = src.dtype().bytesFor(src.elements());
        if (src.data().byteSize() != expected) {
            throw new IllegalArgumentException("tensor '" + src.name() + "' " + src + " has " + src.data().byteSize()
                    + " bytes of data, expected " + expected);
        }
    }

    private static void quantizeRows(Tensor src, DType target, MemorySegment out, long r0, long r1, int cols,
                                     long srcRowBytes, long dstRowBytes) {
        float[] row = new float[cols];
        for (long r = r0; r < r1; r++) {
            decodeRow(src.dtype(), src.data(), r * srcRowBytes, cols, row);
            quantizeRow(target, row, 0, cols, out, r * dstRowBytes);
        }
    }

    /** The F32/BF16/F16 row at byte {@code off} of {@code data} as floats (exact). */
    private static void decodeRow(DType dtype, MemorySegment data, long off, int cols, float[] out) {
        for (int c = 0; c < cols; c++) {
            out[c] = switch (dtype) {
                case F32 -> data.get(Halfs.LE_FLOAT, off + 4L * c);
                case BF16 -> Halfs.bf16ToFloat(data.get(I16_LE, off + 2L * c));
                case F16 -> Halfs.f16ToFloat(data.get(I16_LE, off + 2L * c));
                default -> throw new IllegalStateException("not a float dtype: " + dtype);
            };
        }
    }

    /** Quantizes x[from, from + cols) (cols a multiple of 32) into {@code out} at byte {@code at}. */
    public static void quantizeRow(DType target, float[] x, int from, int cols, MemorySegment out, long at) {
        if (cols % 32 != 0) {
            throw new IllegalArgumentException(target + " rows need a multiple of 32 values, got " + cols);
        }
        for (int b = 0; b < cols / 32; b++) {
            switch (target) {
                case Q8_0 -> blockQ8_0(x, from + 32 * b, out, at + 34L * b);
                case Q4_0 -> blockQ4_0(x, from + 32 * b, out, at + 18L * b);
                default -> throw new IllegalArgumentException(target + " is not a block format (Q8_0 or Q4_0)");
            }
        }
    }

    /** llama.cpp's quantize_row_q8_0_ref for one block: d = max|x|/127, q = round-half-away(x·(1/d)). */
    static void blockQ8_0(float[] x, int from, MemorySegment out, long at) {
        float amax = 0;
        for (int j = 0; j < 32; j++) {
            amax = Math.max(amax, Math.abs(x[from + j]));
        }
        float d = amax / 127f;
        float id = d != 0 ? 1f / d : 0f;
        out.set(I16_LE, at, Float.floatToFloat16(d));
        for (int j = 0; j < 32; j++) {
            out.set(ValueLayout.JAVA_BYTE, at + 2 + j, (byte) roundHalfAway(x[from + j] * id));
        }
    }

    /** llama.cpp's quantize_row_q4_0_ref for one block: d = m/−8 (m: the value of largest magnitude). */
    static void blockQ4_0(float[] x, int from, MemorySegment out, long at) {
        float amax = 0;
        float max = 0;
        for (int j = 0; j < 32; j++) {
            float v = x[from + j];
            if (amax < Math.abs(v)) {
                amax = Math.abs(v);
                max = v;
            }
        }
        float d = max / -8f;
        float id = d != 0 ? 1f / d : 0f;
        out.set(I16_LE, at, Float.floatToFloat16(d));
        for (int j = 0; j < 16; j++) {
            int lo = Math.min(15, (int) (x[from + j] * id + 8.5f));
            int hi = Math.min(15, (int) (x[from + 16 + j] * id + 8.5f));
            out.set(ValueLayout.JAVA_BYTE, at + 2 + j, (byte) (lo | (hi << 4)));
        }
    }

    /** C's roundf: halves round away from zero (Java's Math.round rounds them up). */
    public static int roundHalfAway(float v) {
        float a = Math.abs(v);
        float r = (float) Math.floor(a);
        if (a - r >= 0.5f) {
            r += 1;
        }
        return (int) Math.copySign(r, v);
    }
}
