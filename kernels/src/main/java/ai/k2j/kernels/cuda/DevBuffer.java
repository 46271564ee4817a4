package ai.k2j.kernels.cuda;

import ai.k2j.kernels.Buffer;

/** A float32 device buffer of a {@link CudaBackend}. */
final class DevBuffer implements Buffer {
    final CudaBackend owner;
    final long ptr;
    final long floats;

    DevBuffer(CudaBackend owner, long ptr, long floats) {
        this.owner = owner;
        this.ptr = ptr;
        this.floats = floats;
    }

    @Override
    public long size() {
        return floats;
    }

    @Override
    public String toString() {
        return "CudaBuffer[" + floats + " floats]";
    }
}
