package ai.k2j.loaders;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * DeepSeek's block-quantized FP8 weights: a {@link DType#F8_E4M3} matrix {@code [R, C]} and a float32
 * {@code <name>_scale_inv} of shape {@code [ceil(R / blockRows), ceil(C / blockCols)]} (the last row and column of
 * blocks may be partial), {@code (blockRows, blockCols)} from config.json's
 * {@code quantization_config.weight_block_size}. The value of element (r, c) is
 * {@code float(q[r, c]) · scale_inv[r / blockRows, c / blockCols]}, one float32 multiply, as DeepSeek's
 * {@code weight_dequant} and HF compute it; {@link #dequantize} produces exactly those floats.
 */
public final class Fp8Blocks {

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** The 256 e4m3fn values by bit pattern (every one exact in float32). */
    private static final float[] E4M3 = new float[256];

    static {
        for (int bits = 0; bits < 256; bits++) {
            E4M3[bits] = decode(bits);
        }
    }

    private Fp8Blocks() {
    }

    /** The e4m3fn value of a bit pattern: exponent bias 7, subnormals at exponent 0, S.1111.111 is NaN. */
    static float decode(int bits) {
        int exponent = (bits >>> 3) & 0xF;
        int mantissa = bits & 0x7;
        float sign = (bits & 0x80) != 0 ? -1f : 1f;
        if (exponent == 0xF && mantissa == 0x7) {
            return Float.NaN;
        }
        float magnitude = exponent == 0
                ? mantissa / 8f * 0x1p-6f
                : (1f + mantissa / 8f) * (float) Math.scalb(1.0, exponent - 7);
        return sign * magnitude;
    }

    /** The float value of an e4m3fn byte. */
    public static float value(byte b) {
        return E4M3[b & 0xFF];
    }

    /** Number of blocks covering {@code length} values, the last one possibly partial. */
    public static long blocks(long length, int block) {
        return (length + block - 1) / block;
    }

    /**
     * Checks that {@code scaleInv} is the float32 block-scale tensor of {@code weight} under
     * {@code weight_block_size = [blockRows, blockCols]}, naming both tensors, the field and the file on failure.
     */
    public static void check(Tensor weight, Tensor scaleInv, int blockRows, int blockCols, String source) {
        if (weight.dtype() != DType.F8_E4M3 || weight.rank() != 2) {
            throw new ModelFormatException(source + ": tensor '" + weight.name() + "' is " + weight.dtype()
                    + Arrays.toString(weight.shape()) + "; an FP8 block-quantized weight must be a 2-D F8_E4M3 matrix");
        }
        if (weight.byteSize() != weight.elements()) {
            throw new ModelFormatException(source + ": tensor '" + weight.name() + "' holds " + weight.byteSize()
                    + " bytes, but F8_E4M3" + Arrays.toString(weight.shape()) + " needs " + weight.elements());
        }
        if (blockRows <= 0 || blockCols <= 0) {
            throw new ModelFormatException(source + ": quantization_config.weight_block_size [" + blockRows + ", "
                    + blockCols + "] must be positive (FP8 tensor '" + weight.name() + "')");
        }
        long[] want = {blocks(weight.dim(0), blockRows), blocks(weight.dim(1), blockCols)};
        if (scaleInv.dtype() != DType.F32 || !Arrays.equals(scaleInv.shape(), want)) {
            throw new ModelFormatException(source + ": tensor '" + scaleInv.name() + "' is " + scaleInv.dtype()
                    + Arrays.toString(scaleInv.shape()) + ", but quantization_config.weight_block_size ["
                    + blockRows + ", " + blockCols + "] over '" + weight.name() + "' "
                    + Arrays.toString(weight.shape()) + " implies F32" + Arrays.toString(want));
        }
        if (scaleInv.byteSize() != 4 * scaleInv.elements()) {
            throw new ModelFormatException(source + ": tensor '" + scaleInv.name() + "' holds " + scaleInv.byteSize()
                    + " bytes, F32" + Arrays.toString(scaleInv.shape()) + " needs " + 4 * scaleInv.elements());
        }
    }

    /**
     * The float32 matrix {@code weight} encodes (see the class comment), in memory of an automatic arena (freed
     * when no weight refers to it any more). {@link #check} runs first.
     */
    public static Tensor dequantize(Tensor weight, Tensor scaleInv, int blockRows, int blockCols, String source) {
        check(weight, scaleInv, blockRows, blockCols, source);
        int rows = Math.toIntExact(weight.dim(0));
        int cols = Math.toIntExact(weight.dim(1));
        long scaleCols = scaleInv.dim(1);
        MemorySegment q = weight.data();
        MemorySegment s = scaleInv.data();
        MemorySegment out = Arena.ofAuto().allocate(4L * rows * cols, 8);
        for (int r = 0; r < rows; r++) {
            long scaleRow = (r / blockRows) * scaleCols;
            long rowBase = (long) r * cols;
            for (int c = 0; c < cols; c++) {
                float scale = s.get(F32, 4 * (scaleRow + c / blockCols));
                out.set(F32, 4 * (rowBase + c), value(q.get(ValueLayout.JAVA_BYTE, rowBase + c)) * scale);
            }
        }
        return new Tensor(weight.name(), DType.F32, weight.shape(), out);
    }
}
