package ai.k2j.loaders;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * A named tensor whose bytes live off-heap (normally a zero-copy slice of a memory-mapped file).
 * Row-major; for a weight matrix shape is [rows = out features, cols = in features] as in PyTorch.
 *
 * <p>An AWQ or GPTQ layer's weight is a tensor of logical shape [out, in] whose dtype is the packed format
 * ({@link DType#isPacked}), whose data is the int32 {@code qweight}, and whose {@code packing} holds the layer's
 * other tensors (zeros, scales, g_idx); {@code packing} is null for every other tensor.
 */
public record Tensor(String name, DType dtype, long[] shape, MemorySegment data, PackedInt packing) {

    public Tensor {
        shape = shape.clone();
    }

    public Tensor(String name, DType dtype, long[] shape, MemorySegment data) {
        this(name, dtype, shape, data, null);
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    public long dim(int i) {
        return shape[i];
    }

    public long elements() {
        long n = 1;
        for (long s : shape) {
            n = Math.multiplyExact(n, s);
        }
        return n;
    }

    public long byteSize() {
        return data.byteSize();
    }

    /** Checks the shape, throwing a {@link ModelFormatException} naming the tensor when it differs. */
    public Tensor expectShape(long... expected) {
        if (!Arrays.equals(shape, expected)) {
            throw new ModelFormatException("tensor '" + name + "' has shape " + Arrays.toString(shape)
                    + ", expected " + Arrays.toString(expected));
        }
        return this;
    }

    @Override
    public String toString() {
        return name + " " + dtype + Arrays.toString(shape);
    }
}
