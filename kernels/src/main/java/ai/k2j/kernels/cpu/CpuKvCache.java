package ai.k2j.kernels.cpu;

import ai.k2j.kernels.KvCache;

/**
 * Paged float32 KV storage: per layer one array of keys and one of values, each
 * {@code [numBlocks * blockSize][kvDim]}; slot s of a layer starts at float {@code s * kvDim}.
 */
final class CpuKvCache implements KvCache {
    final int layers;
    final int kvDim;
    final int numBlocks;
    final int blockSize;
    final float[][] keys;
    final float[][] values;

    CpuKvCache(int layers, int kvDim, int numBlocks, int blockSize) {
        if (layers <= 0 || kvDim <= 0 || numBlocks <= 0 || blockSize <= 0) {
            throw new IllegalArgumentException("KV cache dimensions must be positive: layers=" + layers
                    + " kvDim=" + kvDim + " numBlocks=" + numBlocks + " blockSize=" + blockSize);
        }
        long perLayer = (long) numBlocks * blockSize * kvDim;
        if (perLayer > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("KV cache layer too large for the CPU backend: " + numBlocks + " blocks x "
                    + blockSize + " slots x " + kvDim + " floats = " + perLayer + " floats (max " + (Integer.MAX_VALUE - 8) + ")");
        }
        this.layers = layers;
        this.kvDim = kvDim;
        this.numBlocks = numBlocks;
        this.blockSize = blockSize;
        this.keys = new float[layers][(int) perLayer];
        this.values = new float[layers][(int) perLayer];
    }

    /** Total slots per layer. */
    int slots() {
        return numBlocks * blockSize;
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
        if (src < 0 || src >= numBlocks || dst < 0 || dst >= numBlocks) {
            throw new IndexOutOfBoundsException("copyBlock(" + src + ", " + dst + ") outside [0, " + numBlocks + ")");
        }
        int len = blockSize * kvDim;
        for (int l = 0; l < layers; l++) {
            System.arraycopy(keys[l], src * len, keys[l], dst * len, len);
            System.arraycopy(values[l], src * len, values[l], dst * len, len);
        }
    }
}
