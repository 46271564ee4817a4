package ai.k2j.kernels;

/** Precomputed RoPE cos/sin on a backend (see {@link Backend#ropeTable}). */
public interface RopeTable {
    int maxPositions();

    /** headDim / 2 frequencies. */
    int halfDim();
}
