package ai.k2j.kernels;

/**
 * Paged key/value storage on a backend: per layer, {@code numBlocks × blockSize} token slots of kvDim floats
 * for keys and the same for values. Which blocks belong to which sequence is host-side bookkeeping
 * (the engine's block allocator) passed to ops through {@link Batch#blockTables}; rolling a sequence back is
 * a host-side length change, the data stays.
 */
public interface KvCache {
    int layers();

    int kvDim();

    int numBlocks();

    int blockSize();

    /** How keys and values are stored ({@link KvPrecision}); float32 unless the backend was asked otherwise. */
    default KvPrecision precision() {
        return KvPrecision.F32;
    }

    /** Copies the slots of block {@code src} to block {@code dst} in every layer (for copy-on-write forks). */
    void copyBlock(int src, int dst);

    /**
     * Copies the key and value of slot {@code src} (block·blockSize + offset) to slot {@code dst} in every layer:
     * after a draft tree is verified, the accepted path's entries move to consecutive positions.
     */
    void copySlot(int src, int dst);
}
