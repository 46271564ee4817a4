package ai.k2j.kernels.cpu;

import ai.k2j.kernels.Weight;
import ai.k2j.loaders.DType;

import java.lang.foreign.MemorySegment;

/**
 * A weight matrix as one or more row-major segments stacked by rows (e.g. fused q/k/v): part p holds global rows
 * {@code [partStart[p], partStart[p+1])}, each row {@code rowBytes} long. The segments are normally zero-copy
 * slices of the memory-mapped checkpoint.
 */
final class CpuWeight implements Weight {
    final DType dtype;
    final int rows;
    final int cols;
    final long rowBytes;
    final MemorySegment[] segments;
    /** [parts + 1] first global row of each part, then rows */
    final int[] partStart;

    CpuWeight(DType dtype, int cols, MemorySegment[] segments, int[] partStart) {
        this.dtype = dtype;
        this.cols = cols;
        this.rowBytes = dtype.bytesFor(cols);
        this.segments = segments;
        this.partStart = partStart;
        this.rows = partStart[partStart.length - 1];
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
        return rows * rowBytes;
    }

    @Override
    public String toString() {
        return "CpuWeight[" + rows + " x " + cols + " " + dtype + ", " + segments.length + " part(s)]";
    }
}
