package ai.k2j.kernels.cuda;

import ai.k2j.kernels.RopeTable;

/** A RoPE cos/sin table in device memory. */
final class DevRope implements RopeTable {
    final CudaBackend owner;
    final long cos;
    final long sin;
    final int maxPositions;
    final int half;

    DevRope(CudaBackend owner, long cos, long sin, int maxPositions, int half) {
        this.owner = owner;
        this.cos = cos;
        this.sin = sin;
        this.maxPositions = maxPositions;
        this.half = half;
    }

    @Override
    public int maxPositions() {
        return maxPositions;
    }

    @Override
    public int halfDim() {
        return half;
    }
}
