package ai.k2j.engine;

/**
 * Host-side bookkeeping of the paged KV cache's blocks: a free stack plus a reference count per block
 * (forked sequences share blocks until one of them writes, see {@link Sequence#fork()}). Not thread-safe:
 * owned by the engine's step loop.
 */
final class KvBlockAllocator {
    private final int blockSize;
    private final int[] freeStack;
    private int freeCount;
    private final int[] refCount;

    KvBlockAllocator(int numBlocks, int blockSize) {
        this.blockSize = blockSize;
        this.freeStack = new int[numBlocks];
        this.refCount = new int[numBlocks];
        // pop order 0, 1, 2, ... (cosmetic: block ids follow allocation order in a fresh cache)
        for (int i = 0; i < numBlocks; i++) {
            freeStack[i] = numBlocks - 1 - i;
        }
        this.freeCount = numBlocks;
    }

    int blockSize() {
        return blockSize;
    }

    int numBlocks() {
        return refCount.length;
    }

    int freeBlocks() {
        return freeCount;
    }

    /** Throws {@link KvCacheFullException} unless {@code n} blocks are free. */
    void require(int n) {
        if (n > freeCount) {
            throw new KvCacheFullException(n, freeCount, refCount.length, blockSize);
        }
    }

    int allocate() {
        require(1);
        int block = freeStack[--freeCount];
        refCount[block] = 1;
        return block;
    }

    void retain(int block) {
        if (refCount[block] <= 0) {
            throw new IllegalStateException("KV block " + block + " is not allocated");
        }
        refCount[block]++;
    }

    void release(int block) {
        if (refCount[block] <= 0) {
            throw new IllegalStateException("KV block " + block + " released twice");
        }
        if (--refCount[block] == 0) {
            freeStack[freeCount++] = block;
        }
    }

    boolean isShared(int block) {
        return refCount[block] > 1;
    }
}
