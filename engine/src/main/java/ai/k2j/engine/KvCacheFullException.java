package ai.k2j.engine;

/**
 * The KV cache has too few free blocks for a sequence to grow. A single-sequence caller sized the cache too
 * small (raise maxContext / the block count); a server should queue the request until blocks are freed.
 */
public final class KvCacheFullException extends RuntimeException {
    private final int blocksNeeded;
    private final int blocksFree;

    public KvCacheFullException(int blocksNeeded, int blocksFree, int blocksTotal, int blockSize) {
        super("KV cache full: a sequence needs " + blocksNeeded + " more blocks of " + blockSize
                + " tokens but only " + blocksFree + " of " + blocksTotal + " are free");
        this.blocksNeeded = blocksNeeded;
        this.blocksFree = blocksFree;
    }

    public int blocksNeeded() {
        return blocksNeeded;
    }

    public int blocksFree() {
        return blocksFree;
    }
}
