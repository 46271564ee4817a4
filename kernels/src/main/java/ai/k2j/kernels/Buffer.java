package ai.k2j.kernels;

/** A backend-owned float32 buffer (heap/off-heap on CPU, device memory on CUDA). */
public interface Buffer {
    /** Capacity in floats. */
    long size();
}
