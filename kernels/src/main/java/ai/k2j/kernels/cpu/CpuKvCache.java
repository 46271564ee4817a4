package ai.k2j.kernels.cpu;

import ai.k2j.kernels.KvCodec;
import ai.k2j.kernels.KvPrecision;
import ai.k2j.kernels.PagedKvCache;

/**
 * Paged KV storage: per layer one array of keys and one of values, {@code numBlocks · blockSize · kvDim} elements
 * each, block b in elements [b·blockSize·kvDim, (b+1)·blockSize·kvDim). Within a block, values are row-major
 * (slot j's kvDim elements at (b·blockSize + j)·kvDim) and keys column-major (column c of the block's slots is
 * blockSize consecutive elements at (b·kvDim + c)·blockSize): decode attention then loads one key column for a run
 * of positions as one vector and sums q·k without horizontal reductions ({@link Kernels#attendHead}).
 *
 * <p>The elements are float32 ({@link #keys}/{@link #values}), bfloat16 bits ({@link #keys16}/{@link #values16})
 * or FP8 E4M3 bits ({@link #keys8}/{@link #values8}) by precision; only that pair is allocated. FP8 adds one scale
 * per (kv head, slot), head-major ({@link #keyScales}[layer][head · slots + slot]), so the scales of a run of
 * positions load as one vector too.
 */
final class CpuKvCache extends PagedKvCache {
    final float[][] keys;
    final float[][] values;
    final short[][] keys16;
    final short[][] values16;
    final byte[][] keys8;
    final byte[][] values8;
    final float[][] keyScales;
    final float[][] valueScales;

    CpuKvCache(int layers, int kvDim, int numBlocks, int blockSize) {
        this(layers, kvDim, numBlocks, blockSize, KvPrecision.F32, kvDim);
    }

    CpuKvCache(int layers, int kvDim, int numBlocks, int blockSize, KvPrecision precision, int headDim) {
        super(layers, kvDim, numBlocks, blockSize, precision, headDim);
        long perLayer = (long) numBlocks * blockSize * kvDim;
        if (perLayer > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("KV cache layer too large for the CPU backend: " + numBlocks + " blocks x "
                    + blockSize + " slots x " + kvDim + " values = " + perLayer + " (max " + (Integer.MAX_VALUE - 8)
                    + " per layer; use a smaller --max-context)");
        }
        long bytes = precision.bytesPerToken(layers, kvDim, headDim) * numBlocks * blockSize;
        Runtime rt = Runtime.getRuntime();
        long available = rt.maxMemory() - (rt.totalMemory() - rt.freeMemory());
        if (bytes > available) {
            throw new IllegalArgumentException(String.format(java.util.Locale.ROOT,
                    "the %s KV cache needs %.2f GiB (%d layers x %d tokens x %d values x 2) but the JVM has %.2f GiB"
                            + " free; use a smaller --max-context, --kv-cache fp8, or a larger -Xmx", precision,
                    bytes / 0x1p30, layers, (long) numBlocks * blockSize, kvDim, available / 0x1p30));
        }
        int n = (int) perLayer;
        int scaleCount = numBlocks * blockSize * (kvDim / headDim);
        boolean f32 = precision == KvPrecision.F32;
        boolean bf16 = precision == KvPrecision.BF16;
        boolean fp8 = precision == KvPrecision.FP8_E4M3;
        this.keys = f32 ? new float[layers][n] : null;
        this.values = f32 ? new float[layers][n] : null;
        this.keys16 = bf16 ? new short[layers][n] : null;
        this.values16 = bf16 ? new short[layers][n] : null;
        this.keys8 = fp8 ? new byte[layers][n] : null;
        this.values8 = fp8 ? new byte[layers][n] : null;
        this.keyScales = fp8 ? new float[layers][scaleCount] : null;
        this.valueScales = fp8 ? new float[layers][scaleCount] : null;
    }

    /**
     * Stores the key and value rows (kvDim floats each, at src[keyOff..] and src[valueOff..]) in slot j of block b
     * of a layer, converted to the cache's precision.
     */
    void put(int layer, int b, int j, float[] src, int keyOff, int valueOff) {
        int slot = b * blockSize + j;
        int keyBase = b * blockSize * kvDim + j;
        int valueBase = slot * kvDim;
        switch (precision) {
            case F32 -> {
                float[] k = keys[layer];
                for (int c = 0; c < kvDim; c++) {
                    k[keyBase + c * blockSize] = src[keyOff + c];
                }
                System.arraycopy(src, valueOff, values[layer], valueBase, kvDim);
            }
            case BF16 -> {
                short[] k = keys16[layer];
                short[] v = values16[layer];
                for (int c = 0; c < kvDim; c++) {
                    k[keyBase + c * blockSize] = KvCodec.bf16Bits(src[keyOff + c]);
                    v[valueBase + c] = KvCodec.bf16Bits(src[valueOff + c]);
                }
            }
            case FP8_E4M3 -> {
                byte[] k = keys8[layer];
                byte[] v = values8[layer];
                int slots = numBlocks * blockSize;
                for (int h = 0; h < kvDim / headDim; h++) {
                    int c0 = h * headDim;
                    float ks = KvCodec.fp8Scale(src, keyOff + c0, headDim);
                    float vs = KvCodec.fp8Scale(src, valueOff + c0, headDim);
                    keyScales[layer][h * slots + slot] = ks;
                    valueScales[layer][h * slots + slot] = vs;
                    for (int c = c0; c < c0 + headDim; c++) {
                        k[keyBase + c * blockSize] = KvCodec.fp8Bits(src[keyOff + c] / ks);
                        v[valueBase + c] = KvCodec.fp8Bits(src[valueOff + c] / vs);
                    }
                }
            }
        }
    }

    /** Stores kvDim floats of src at srcOff as the key of slot j of block b of a layer (F32 caches; tests). */
    void putKey(int layer, int b, int j, float[] src, int srcOff) {
        float[] k = keys[layer];
        int base = b * blockSize * kvDim + j;
        for (int c = 0; c < kvDim; c++) {
            k[base + c * blockSize] = src[srcOff + c];
        }
    }

    /** The key stored in slot j of block b of a layer, as floats (tests). */
    float[] key(int layer, int b, int j) {
        float[] k = new float[kvDim];
        int slots = numBlocks * blockSize;
        for (int c = 0; c < kvDim; c++) {
            int i = (b * kvDim + c) * blockSize + j;
            k[c] = switch (precision) {
                case F32 -> keys[layer][i];
                case BF16 -> KvCodec.bf16Value(keys16[layer][i]);
                case FP8_E4M3 -> KvCodec.fp8Value(keys8[layer][i]) * keyScales[layer][(c / headDim) * slots + b * blockSize + j];
            };
        }
        return k;
    }

    @Override
    protected void copyBlockData(int src, int dst) {
        int len = blockSize * kvDim;
        int slots = numBlocks * blockSize;
        for (int l = 0; l < layers; l++) {
            switch (precision) {
                case F32 -> {
                    System.arraycopy(keys[l], src * len, keys[l], dst * len, len);
                    System.arraycopy(values[l], src * len, values[l], dst * len, len);
                }
                case BF16 -> {
                    System.arraycopy(keys16[l], src * len, keys16[l], dst * len, len);
                    System.arraycopy(values16[l], src * len, values16[l], dst * len, len);
                }
                case FP8_E4M3 -> {
                    System.arraycopy(keys8[l], src * len, keys8[l], dst * len, len);
                    System.arraycopy(values8[l], src * len, values8[l], dst * len, len);
                    for (int h = 0; h < kvDim / headDim; h++) {
                        int from = h * slots + src * blockSize;
                        int to = h * slots + dst * blockSize;
                        System.arraycopy(keyScales[l], from, keyScales[l], to, blockSize);
                        System.arraycopy(valueScales[l], from, valueScales[l], to, blockSize);
                    }
                }
            }
        }
    }

    @Override
    protected void copySlotData(int src, int dst) {
        // keys are column-major within a block: column c of slot j of block b at (b·kvDim + c)·blockSize + j
        int srcKey = (src / blockSize) * kvDim * blockSize + src % blockSize;
        int dstKey = (dst / blockSize) * kvDim * blockSize + dst % blockSize;
        int slots = numBlocks * blockSize;
        for (int l = 0; l < layers; l++) {
            switch (precision) {
                case F32 -> {
                    float[] k = keys[l];
                    for (int c = 0; c < kvDim; c++) {
                        k[dstKey + c * blockSize] = k[srcKey + c * blockSize];
                    }
                    System.arraycopy(values[l], src * kvDim, values[l], dst * kvDim, kvDim);
                }
                case BF16 -> {
                    short[] k = keys16[l];
                    for (int c = 0; c < kvDim; c++) {
                        k[dstKey + c * blockSize] = k[srcKey + c * blockSize];
                    }
                    System.arraycopy(values16[l], src * kvDim, values16[l], dst * kvDim, kvDim);
                }
                case FP8_E4M3 -> {
                    byte[] k = keys8[l];
                    for (int c = 0; c < kvDim; c++) {
                        k[dstKey + c * blockSize] = k[srcKey + c * blockSize];
                    }
                    System.arraycopy(values8[l], src * kvDim, values8[l], dst * kvDim, kvDim);
                    for (int h = 0; h < kvDim / headDim; h++) { // the slot's per-head scales travel with it
                        keyScales[l][h * slots + dst] = keyScales[l][h * slots + src];
                        valueScales[l][h * slots + dst] = valueScales[l][h * slots + src];
                    }
                }
            }
        }
    }
}
