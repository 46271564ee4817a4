package ai.k2j.kernels.cuda;

import ai.k2j.kernels.KvPrecision;
import ai.k2j.kernels.PagedKvCache;

/**
 * The paged KV cache in device memory: per layer a key region and a value region, slot-major, elements of the
 * cache's precision (4, 2 or 1 bytes). An FP8 cache also has, per layer, a key-scale and a value-scale region of
 * one float per (slot, kv head) after all the element regions.
 */
final class DevKvCache extends PagedKvCache {
    final CudaBackend owner;
    final long base;
    final long regionBytes;
    /** Bytes of one layer's key (or value) scales: slots × kvHeads floats; 0 unless FP8. */
    final long scaleRegionBytes;

    DevKvCache(CudaBackend owner, long base, int layers, int kvDim, int numBlocks, int blockSize,
               KvPrecision precision, int headDim) {
        super(layers, kvDim, numBlocks, blockSize, precision, headDim);
        this.owner = owner;
        this.base = base;
        this.regionBytes = (long) precision.bytesPerValue() * numBlocks * blockSize * kvDim;
        this.scaleRegionBytes = precision == KvPrecision.FP8_E4M3 ? 4L * numBlocks * blockSize * (kvDim / headDim) : 0;
    }

    /** Bytes of the whole allocation. */
    static long totalBytes(int layers, int kvDim, int numBlocks, int blockSize, KvPrecision precision, int headDim) {
        long slots = (long) numBlocks * blockSize;
        long perLayer = 2L * precision.bytesPerValue() * slots * kvDim;
        if (precision == KvPrecision.FP8_E4M3) {
            perLayer += 2L * 4 * slots * (kvDim / headDim);
        }
        return perLayer * layers;
    }

    long k(int layer) {
        return base + 2L * layer * regionBytes;
    }

    long v(int layer) {
        return base + (2L * layer + 1) * regionBytes;
    }

    /** The layer's key scales (FP8), else 0. */
    long kScale(int layer) {
        return scaleRegionBytes == 0 ? 0 : base + 2L * layers * regionBytes + 2L * layer * scaleRegionBytes;
    }

    /** The layer's value scales (FP8), else 0. */
    long vScale(int layer) {
        return scaleRegionBytes == 0 ? 0 : base + 2L * layers * regionBytes + (2L * layer + 1) * scaleRegionBytes;
    }

    @Override
    protected void copyBlockData(int src, int dst) {
        owner.enterOutsideCapture("copyBlock");
        long blockBytes = (long) precision.bytesPerValue() * blockSize * kvDim;
        long scaleBytes = 4L * blockSize * kvHeads();
        for (int l = 0; l < layers; l++) {
            owner.driver().copyDeviceAsync(k(l) + dst * blockBytes, k(l) + src * blockBytes, blockBytes);
            owner.driver().copyDeviceAsync(v(l) + dst * blockBytes, v(l) + src * blockBytes, blockBytes);
            if (scaleRegionBytes != 0) {
                owner.driver().copyDeviceAsync(kScale(l) + dst * scaleBytes, kScale(l) + src * scaleBytes, scaleBytes);
                owner.driver().copyDeviceAsync(vScale(l) + dst * scaleBytes, vScale(l) + src * scaleBytes, scaleBytes);
            }
        }
    }

    @Override
    protected void copySlotData(int src, int dst) {
        owner.enterOutsideCapture("copySlot");
        long slotBytes = (long) precision.bytesPerValue() * kvDim; // slot-major: a slot's kvDim elements are contiguous
        long scaleBytes = 4L * kvHeads(); // FP8: the slot's per-head scales, also slot-major
        for (int l = 0; l < layers; l++) {
            owner.driver().copyDeviceAsync(k(l) + dst * slotBytes, k(l) + src * slotBytes, slotBytes);
            owner.driver().copyDeviceAsync(v(l) + dst * slotBytes, v(l) + src * slotBytes, slotBytes);
            if (scaleRegionBytes != 0) {
                owner.driver().copyDeviceAsync(kScale(l) + dst * scaleBytes, kScale(l) + src * scaleBytes, scaleBytes);
                owner.driver().copyDeviceAsync(vScale(l) + dst * scaleBytes, vScale(l) + src * scaleBytes, scaleBytes);
            }
        }
    }
}
