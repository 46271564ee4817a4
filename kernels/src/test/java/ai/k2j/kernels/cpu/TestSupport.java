package ai.k2j.kernels.cpu;

import ai.k2j.kernels.Batch;
import ai.k2j.kernels.Buffer;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;

/** Test data: tensors in native segments (like mmapped ones), buffer access, and dtype rounding. */
final class TestSupport {
    private TestSupport() {
    }

    /** Test tensors live for the whole test run (a few MB). */
    static final Arena ARENA = Arena.ofAuto();

    static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED;
    static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED;

    static float[] random(Random rnd, int n, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (rnd.nextFloat() * 2 - 1) * scale;
        }
        return a;
    }

    /** The value a float becomes when stored as dtype (bf16 truncated, f16 rounded to nearest). */
    static float round(DType dtype, float v) {
        return switch (dtype) {
            case F32 -> v;
            case BF16 -> Float.intBitsToFloat(Float.floatToRawIntBits(v) & 0xFFFF0000);
            case F16 -> Float.float16ToFloat(Float.floatToFloat16(v));
            default -> throw new IllegalArgumentException(dtype.toString());
        };
    }

    /**
     * A tensor of the given shape holding {@code values} in dtype; rounds {@code values} in place to what the
     * tensor holds, so a reference computed from them sees exactly the stored weights.
     */
    static Tensor tensor(String name, DType dtype, float[] values, long... shape) {
        int n = values.length;
        MemorySegment seg = ARENA.allocate(dtype.bytesFor(n), 16);
        for (int i = 0; i < n; i++) {
            float v = round(dtype, values[i]);
            values[i] = v;
            switch (dtype) {
                case F32 -> seg.set(F32_LE, 4L * i, v);
                case BF16 -> seg.set(I16_LE, 2L * i, (short) (Float.floatToRawIntBits(v) >>> 16));
                case F16 -> seg.set(I16_LE, 2L * i, Float.floatToFloat16(v));
                default -> throw new IllegalArgumentException(dtype.toString());
            }
        }
        return new Tensor(name, dtype, shape, seg);
    }

    /** A tensor whose raw 16-bit patterns are given (to test every bf16/f16 bit pattern). */
    static Tensor rawTensor16(String name, DType dtype, short[] bits, long... shape) {
        MemorySegment seg = ARENA.allocate(2L * bits.length, 16);
        for (int i = 0; i < bits.length; i++) {
            seg.set(I16_LE, 2L * i, bits[i]);
        }
        return new Tensor(name, dtype, shape, seg);
    }

    static float[] data(Buffer b) {
        return ((CpuBuffer) b).data;
    }

    static Buffer buffer(CpuBackend backend, float[] values) {
        Buffer b = backend.allocate(values.length);
        System.arraycopy(values, 0, data(b), 0, values.length);
        return b;
    }

    /** Largest |a − b| over the arrays' common prefix of length n. */
    static double maxAbsDiff(float[] a, double[] b, int n) {
        double m = 0;
        for (int i = 0; i < n; i++) {
            m = Math.max(m, Math.abs(a[i] - b[i]));
        }
        return m;
    }

    /** A batch of tokens from one sequence at consecutive positions [start, start + n) with an identity table. */
    static Batch singleSequence(int n, int start, int maxBlocks) {
        Batch b = new Batch(Math.max(1, n), 1, maxBlocks);
        b.nTokens = n;
        b.nSeqs = 1;
        for (int t = 0; t < n; t++) {
            b.positions[t] = start + t;
        }
        for (int j = 0; j < maxBlocks; j++) {
            b.blockTables[j] = j;
        }
        b.seqKvLength[0] = start + n;
        return b;
    }
}
