package ai.k2j.kernels.cuda;

import ai.k2j.kernels.KvCache;

/** The paged KV cache in device memory: per layer a key region and a value region, slot-major. */
final class DevKvCache implements KvCache {
    final CudaBackend owner;
    final long base;
    final int layers;
    final int kvDim;
    final int numBlocks;
    final int blockSize;
    final long regionBytes;

    DevKvCache(CudaBackend owner, long base, int layers, int kvDim, int numBlocks, int blockSize) {
        this.owner = owner;
        this.base = base;
        this.layers = layers;
        this.kvDim = kvDim;
        this.numBlocks = numBlocks;
        this.blockSize = blockSize;
        this.regionBytes = 4L * numBlocks * blockSize * kvDim;
    }

    long k(int layer) {
        return base + 2L * layer * regionBytes;
    }

    long v(int layer) {
        return base + (2L * layer + 1) * regionBytes;
    }

    @Override
    public int layers() {
        return layers;
    }

    @Override
    public int kvDim() {
        return kvDim;
    }

    @Override
    public int numBlocks() {
        return numBlocks;
    }

    @Override
    public int blockSize() {
        return blockSize;
    }

    @Override
    public void copyBlock(int src, int dst) {
        owner.enterOutsideCapture("copyBlock");
        if (src < 0 || src >= numBlocks || dst < 0 || dst >= numBlocks) {
            throw new IllegalArgumentException("copyBlock(" + src + ", " + dst + ") outside [0, " + numBlocks + ")");
        }
        if (src == dst) {
            return;
        }
        long blockBytes = 4L * blockSize * kvDim;
        for (int l = 0; l < layers; l++) {
            owner.driver().copyDeviceAsync(k(l) + dst * blockBytes, k(l) + src * blockBytes, blockBytes);
            owner.driver().copyDeviceAsync(v(l) + dst * blockBytes, v(l) + src * blockBytes, blockBytes);
        }
    }
}
