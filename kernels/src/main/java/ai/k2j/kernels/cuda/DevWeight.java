package ai.k2j.kernels.cuda;

import ai.k2j.kernels.Weight;
import ai.k2j.loaders.DType;

/** A weight matrix in device memory (quantized values and f16 scales in separate arrays, see docs/cuda.md). */
final class DevWeight implements Weight {
    final CudaBackend owner;
    final long data;
    final long scales;
    final int rows;
    final int cols;
    final DType dtype;
    final int code;
    final String name;

    DevWeight(CudaBackend owner, long data, long scales, int rows, int cols, DType dtype, String name) {
        this.owner = owner;
        this.data = data;
        this.scales = scales;
        this.rows = rows;
        this.cols = cols;
        this.dtype = dtype;
        this.code = CudaKernels.code(dtype);
        this.name = name;
    }

    private String profileName;

    /** "gemv ROWSxCOLS DTYPE": the profiler's op name (built once). */
    String profileName() {
        if (profileName == null) {
            profileName = "gemv " + rows + "x" + cols + " " + dtype;
        }
        return profileName;
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
        return rows * dtype.bytesFor(cols);
    }

    @Override
    public String toString() {
        return "CudaWeight[" + name + " " + dtype + " " + rows + "x" + cols + "]";
    }
}
