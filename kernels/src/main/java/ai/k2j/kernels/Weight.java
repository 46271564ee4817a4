package ai.k2j.kernels;

import ai.k2j.loaders.DType;

/** A weight matrix [rows, cols] prepared by a {@link Backend} for matmul. */
public interface Weight {
    int rows();

    int cols();

    DType dtype();

    /** Bytes one full pass over this matrix reads (what a decode step streams from memory). */
    long byteSize();
}
