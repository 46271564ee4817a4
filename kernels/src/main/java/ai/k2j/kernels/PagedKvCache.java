package ai.k2j.kernels;

/**
 * The geometry every backend's paged KV cache shares — layers, kvDim, blocks of blockSize slots, checked once here —
 * and the bounds check of {@link #copyBlock}; a backend supplies only where the floats live.
 */
public abstract class PagedKvCache implements KvCache {
    protected final int layers;
    protected final int kvDim;
    protected final int numBlocks;
    protected final int blockSize;
    protected final KvPrecision precision;
    /** Elements per kv head: FP8's scales are per (slot, head); kvDim for the other precisions. */
    protected final int headDim;

    protected PagedKvCache(int layers, int kvDim, int numBlocks, int blockSize) {
        this(layers, kvDim, numBlocks, blockSize, KvPrecision.F32, kvDim);
    }

    /** A cache of {@code precision}; headDim must divide kvDim (FP8 keeps one scale per head of a slot). */
    protected PagedKvCache(int layers, int kvDim, int numBlocks, int blockSize, KvPrecision precision, int headDim) {
        if (precision == null) {
            throw new IllegalArgumentException("KV cache precision is null");
        }
        if (headDim <= 0 || kvDim % headDim != 0) {
            throw new IllegalArgumentException("KV cache head dim " + headDim + " does not divide kvDim " + kvDim);
        }
        this.precision = precision;
        this.headDim = headDim;
        if (layers <= 0 || kvDim <= 0 || numBlocks <= 0 || blockSize <= 0) {
            throw new IllegalArgumentException("KV cache dimensions must be positive: layers=" + layers + " kvDim="
                    + kvDim + " numBlocks=" + numBlocks + " blockSize=" + blockSize);
        }
        this.layers = layers;
        this.kvDim = kvDim;
        this.numBlocks = numBlocks;
        this.blockSize = blockSize;
    }

    @Override
    public final int layers() {
        return layers;
    }

    @Override
    public final int kvDim() {
        return kvDim;
    }

    @Override
    public final int numBlocks() {
        return numBlocks;
    }

    @Override
    public final int blockSize() {
        return blockSize;
    }

    @Override
    public final KvPrecision precision() {
        return precision;
    }

    /** Elements per kv head (the FP8 scale granularity). */
    public final int headDim() {
        return headDim;
    }

    /** kv heads per slot: kvDim / headDim. */
    public final int kvHeads() {
        return kvDim / headDim;
    }

    /** Total slots per layer. */
    public final int slots() {
        return numBlocks * blockSize;
    }

    @Override
    public final void copyBlock(int src, int dst) {
        if (src < 0 || src >= numBlocks || dst < 0 || dst >= numBlocks) {
            throw new IndexOutOfBoundsException("copyBlock(" + src + ", " + dst + ") outside the cache's blocks [0, "
                    + numBlocks + ")");
        }
        if (src != dst) {
            copyBlockData(src, dst);
        }
    }

    /** Copies block {@code src}'s slots to block {@code dst} in every layer; both are valid and distinct. */
    protected abstract void copyBlockData(int src, int dst);

    @Override
    public final void copySlot(int src, int dst) {
        if (src < 0 || src >= slots() || dst < 0 || dst >= slots()) {
            throw new IndexOutOfBoundsException("copySlot(" + src + ", " + dst + ") outside the cache's slots [0, "
                    + slots() + ")");
        }
        if (src != dst) {
            copySlotData(src, dst);
        }
    }

    /** Copies slot {@code src}'s key and value to slot {@code dst} in every layer; both are valid and distinct. */
    protected abstract void copySlotData(int src, int dst);
}
