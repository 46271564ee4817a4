package ai.k2j.kernels.cuda;

import ai.k2j.kernels.PagedKvCache;

/** The paged KV cache in device memory: per layer a key region and a value region, slot-major. */
final class DevKvCache extends PagedKvCache {
    final CudaBackend owner;
    final long base;
    final long regionBytes;

    DevKvCache(CudaBackend owner, long base, int layers, int kvDim, int numBlocks, int blockSize) {
        super(layers, kvDim, numBlocks, blockSize);
        this.owner = owner;
        this.base = base;
        this.regionBytes = 4L * numBlocks * blockSize * kvDim;
    }

    long k(int layer) {
        return base + 2L * layer * regionBytes;
    }

    long v(int layer) {
        return base + (2L * layer + 1) * regionBytes;
    }

    @Override
    protected void copyBlockData(int src, int dst) {
        owner.enterOutsideCapture("copyBlock");
        long blockBytes = 4L * blockSize * kvDim;
        for (int l = 0; l < layers; l++) {
            owner.driver().copyDeviceAsync(k(l) + dst * blockBytes, k(l) + src * blockBytes, blockBytes);
            owner.driver().copyDeviceAsync(v(l) + dst * blockBytes, v(l) + src * blockBytes, blockBytes);
        }
    }

    @Override
    protected void copySlotData(int src, int dst) {
        owner.enterOutsideCapture("copySlot");
        long slotBytes = 4L * kvDim; // slot-major: a slot's kvDim floats are contiguous
        for (int l = 0; l < layers; l++) {
            owner.driver().copyDeviceAsync(k(l) + dst * slotBytes, k(l) + src * slotBytes, slotBytes);
            owner.driver().copyDeviceAsync(v(l) + dst * slotBytes, v(l) + src * slotBytes, slotBytes);
        }
    }
}
