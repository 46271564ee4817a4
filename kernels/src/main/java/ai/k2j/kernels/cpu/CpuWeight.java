package ai.k2j.kernels.cpu;

import ai.k2j.kernels.Weight;
import ai.k2j.loaders.DType;

import java.lang.foreign.MemorySegment;

/**
 * A weight matrix as one or more row-major segments stacked by rows (e.g. fused q/k/v): part p holds global rows
 * {@code [partStart[p], partStart[p+1])}, each row {@code partRowBytes[p]} long, in {@code partDtype[p]}. The
 * segments are normally zero-copy slices of the memory-mapped checkpoint. Parts share a dtype except in mixed
 * GGUF files (a Q4_K_M file's Q6_K attn_v beside Q4_K attn_q/attn_k), where each part keeps its own.
 */
final class CpuWeight implements Weight {
    final DType dtype;
    final int rows;
    final int cols;
    final long rowBytes;
    final MemorySegment[] segments;
    /** [parts + 1] first global row of each part, then rows */
    final int[] partStart;
    /** Each part's dtype and row length (all {@link #dtype} and {@link #rowBytes} unless mixed). */
    final DType[] partDtype;
    final long[] partRowBytes;
    /** AWQ/GPTQ parts prepared for {@link PackedIntKernels} (their segment is the qweight), else null. */
    PackedIntKernels.Part[] packed;

    CpuWeight(DType dtype, int cols, MemorySegment[] segments, int[] partStart) {
        this(filled(dtype, segments.length), cols, segments, partStart);
    }

    CpuWeight(DType[] partDtype, int cols, MemorySegment[] segments, int[] partStart) {
        this.dtype = partDtype[0];
        this.cols = cols;
        this.rowBytes = dtype.bytesFor(cols);
        this.segments = segments;
        this.partStart = partStart;
        this.rows = partStart[partStart.length - 1];
        this.partDtype = partDtype.clone();
        this.partRowBytes = new long[partDtype.length];
        for (int p = 0; p < partDtype.length; p++) {
            partRowBytes[p] = partDtype[p].bytesFor(cols);
        }
    }

    private static DType[] filled(DType dtype, int parts) {
        DType[] a = new DType[parts];
        java.util.Arrays.fill(a, dtype);
        return a;
    }

    /** Index of the part holding global row r. */
    int partOf(int r) {
        int p = 0;
        while (partStart[p + 1] <= r) {
            p++;
        }
        return p;
    }

    @Override
    public int rows() {
        return rows;
    }

    @Override
    public int cols() {
        return cols;
    }

    @Override
    public DType dtype() {
        return dtype;
    }

    @Override
    public long byteSize() {
        long bytes = 0;
        for (int p = 0; p < partDtype.length; p++) {
            bytes += (partStart[p + 1] - partStart[p]) * partRowBytes[p];
        }
        return bytes;
    }

    @Override
    public String toString() {
        return "CpuWeight[" + rows + " x " + cols + " " + dtype + ", " + segments.length + " part(s)]";
    }
}
