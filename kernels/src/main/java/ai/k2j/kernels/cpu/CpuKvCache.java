package ai.k2j.kernels.cpu;

import ai.k2j.kernels.PagedKvCache;

/**
 * Paged float32 KV storage: per layer one array of keys and one of values, {@code numBlocks · blockSize · kvDim}
 * floats each, block b in floats [b·blockSize·kvDim, (b+1)·blockSize·kvDim). Within a block, values are row-major
 * (slot j's kvDim floats at (b·blockSize + j)·kvDim) and keys column-major (column c of the block's slots is
 * blockSize consecutive floats at (b·kvDim + c)·blockSize): decode attention then loads one key column for a run
 * of positions as one vector and sums q·k without horizontal reductions ({@link Kernels#attendHead}).
 */
final class CpuKvCache extends PagedKvCache {
    final float[][] keys;
    final float[][] values;

    CpuKvCache(int layers, int kvDim, int numBlocks, int blockSize) {
        super(layers, kvDim, numBlocks, blockSize);
        long perLayer = (long) numBlocks * blockSize * kvDim;
        if (perLayer > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("KV cache layer too large for the CPU backend: " + numBlocks + " blocks x "
                    + blockSize + " slots x " + kvDim + " floats = " + perLayer + " floats (max " + (Integer.MAX_VALUE - 8) + ")");
        }
        this.keys = new float[layers][(int) perLayer];
        this.values = new float[layers][(int) perLayer];
    }

    /** Stores kvDim floats of src at srcOff as the key of slot j of block b of a layer (column-major in the block). */
    void putKey(int layer, int b, int j, float[] src, int srcOff) {
        float[] k = keys[layer];
        int base = b * blockSize * kvDim + j;
        for (int c = 0; c < kvDim; c++) {
            k[base + c * blockSize] = src[srcOff + c];
        }
    }

    /** A copy of the key stored in slot j of block b of a layer (tests). */
    float[] key(int layer, int b, int j) {
        float[] k = new float[kvDim];
        for (int c = 0; c < kvDim; c++) {
            k[c] = keys[layer][(b * kvDim + c) * blockSize + j];
        }
        return k;
    }

    @Override
    protected void copyBlockData(int src, int dst) {
        int len = blockSize * kvDim;
        for (int l = 0; l < layers; l++) {
            System.arraycopy(keys[l], src * len, keys[l], dst * len, len);
            System.arraycopy(values[l], src * len, values[l], dst * len, len);
        }
    }

    @Override
    protected void copySlotData(int src, int dst) {
        // keys are column-major within a block: column c of slot j of block b at (b·kvDim + c)·blockSize + j
        int srcKey = (src / blockSize) * kvDim * blockSize + src % blockSize;
        int dstKey = (dst / blockSize) * kvDim * blockSize + dst % blockSize;
        for (int l = 0; l < layers; l++) {
            float[] k = keys[l];
            for (int c = 0; c < kvDim; c++) {
                k[dstKey + c * blockSize] = k[srcKey + c * blockSize];
            }
            System.arraycopy(values[l], src * kvDim, values[l], dst * kvDim, kvDim);
        }
    }
}
