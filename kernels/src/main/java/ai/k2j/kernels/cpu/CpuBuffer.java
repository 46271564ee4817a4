package ai.k2j.kernels.cpu;

import ai.k2j.kernels.Buffer;

/**
 * A float32 buffer on the Java heap. Activations are small and hot; a {@code float[]} is addressed without the
 * liveness and bounds bookkeeping of an off-heap segment and measured faster here (see FACTS.md).
 */
final class CpuBuffer implements Buffer {
    final float[] data;

    CpuBuffer(float[] data) {
        this.data = data;
    }

    @Override
    public long size() {
        return data.length;
    }

    @Override
    public String toString() {
        return "CpuBuffer[" + data.length + "]";
    }
}
