package ai.k2j.kernels.cpu;

import ai.k2j.kernels.RopeTable;

/** cos/sin rows of halfDim floats per position, already multiplied by the attention scaling. */
final class CpuRopeTable implements RopeTable {
    final int maxPositions;
    final int halfDim;
    /** [maxPositions, halfDim] */
    final float[] cos;
    /** [maxPositions, halfDim] */
    final float[] sin;

    CpuRopeTable(float[] invFreq, float attentionScaling, int maxPositions) {
        if (maxPositions < 0) {
            throw new IllegalArgumentException("maxPositions must be >= 0, got " + maxPositions);
        }
        if (invFreq.length == 0) {
            throw new IllegalArgumentException("invFreq is empty");
        }
        this.maxPositions = maxPositions;
        this.halfDim = invFreq.length;
        long size = (long) maxPositions * halfDim;
        if (size > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("RoPE table too large: " + maxPositions + " x " + halfDim);
        }
        this.cos = new float[(int) size];
        this.sin = new float[(int) size];
        for (int p = 0; p < maxPositions; p++) {
            for (int i = 0; i < halfDim; i++) {
                // As HF computes it in float32: the angle is a float product, cos/sin are rounded to float, then scaled.
                float angle = (float) p * invFreq[i];
                cos[p * halfDim + i] = (float) Math.cos(angle) * attentionScaling;
                sin[p * halfDim + i] = (float) Math.sin(angle) * attentionScaling;
            }
        }
    }

    @Override
    public int maxPositions() {
        return maxPositions;
    }

    @Override
    public int halfDim() {
        return halfDim;
    }
}
