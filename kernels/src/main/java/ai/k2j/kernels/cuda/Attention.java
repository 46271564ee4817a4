package ai.k2j.kernels.cuda;

import ai.k2j.kernels.Batch;
import ai.k2j.kernels.KvPrecision;

/**
 * Attention over the paged cache (flash-decoding): the decode kernel (up to 8 tokens, head dims 32·2^i) or the
 * general one, the key range split so ~2 blocks per SM are busy, then {@code attention_combine} over the live
 * splits. In a graph the splits are sized for the full context (see docs/cuda.md).
 */
final class Attention {
    /** Split lengths are multiples of this many keys (short splits: more blocks, shorter serial chains). */
    private static final int SPLIT_QUANTUM = 16;
    static final int MAX_SPLITS = 1024;
    /** Bytes of partial results (acc, max, sum per split) the split count may use. */
    private static final long PARTIAL_BUDGET = 256L << 20;
    /** (token, query head) rows per block of the tensor-core prefill kernel (FA_BM in prefill.cu). */
    private static final int FLASH_ROWS = 64;
    /** Its split lengths are multiples of this many keys (whole 64-key tiles, at least two per split). */
    private static final int FLASH_SPLIT_QUANTUM = 128;
    private static final double LOG2_E = 1.4426950408889634;

    private final CudaContext cx;
    private final String[] attentionNames = new String[MAX_SPLITS + 1];

    Attention(CudaContext cx) {
        this.cx = cx;
    }

    /**
     * Launches attention of n = batch.nTokens query rows at {@code q} (row stride {@code rowStride} floats) into
     * {@code out} [n, heads·headDim]; arguments and block tables checked by the caller.
     */
    void run(long q, int rowStride, DevKvCache c, int layer, Batch batch, DeviceBatch db, int heads, int kvHeads,
             int headDim, float scale, long out) {
        int n = batch.nTokens;
        int group = heads / kvHeads;
        long flash = flashKernel(n, headDim, c, layer);
        if (flash != 0) {
            runFlash(flash, q, rowStride, c, layer, batch, db, heads, kvHeads, headDim, scale, out);
            return;
        }
        // Split the key range so that ~2 blocks per SM are busy; in a graph, size splits for the full capacity
        // (the kernel skips positions past each token's own length).
        long span;
        if (cx.capture != null) {
            span = (long) db.maxBlocks * c.blockSize();
        } else {
            span = 1;
            for (int t = 0; t < n; t++) {
                span = Math.max(span, batch.positions[t] + 1L);
            }
        }
        long blocksPerSplit = (long) n * kvHeads;
        long wantSplits = Math.max(1, (2L * cx.driver.multiprocessors() + blocksPerSplit - 1) / blocksPerSplit);
        long perSplitFloats = (long) n * heads * (headDim + 2L);
        wantSplits = Math.min(wantSplits, Math.max(1, PARTIAL_BUDGET / (4 * perSplitFloats)));
        wantSplits = Math.min(wantSplits, MAX_SPLITS);
        // splits of >= SPLIT_QUANTUM keys; the kernel re-derives each token's split length from its own
        // length (ceil(len / nSplits) rounded up to the quantum), so in a graph the live splits follow the
        // sequence at replay and the rest exit at once (attention_combine reads only the live prefix)
        int gi = group <= 1 ? 0 : group <= 2 ? 1 : group <= 4 ? 2 : group <= 8 ? 3 : 4;
        int kv = CudaKernels.kvCode(c.precision());
        long decKernel = decodeAttentionKernel(kv, n, headDim, gi, rowStride, c.kvDim(), q, c.k(layer), c.v(layer));
        int quantum = decKernel != 0 ? cx.options.decodeSplitQuantum() : SPLIT_QUANTUM;
        long splitLen = roundUp(ceilDiv(span, wantSplits), quantum);
        int nSplits = (int) ceilDiv(span, splitLen);
        long pAcc = 0;
        long pMax = 0;
        long pSum = 0;
        if (nSplits > 1) {
            long accFloats = (long) n * heads * nSplits * headDim;
            long mFloats = (long) n * heads * nSplits;
            pAcc = cx.attnScratch.ensure(4 * (accFloats + 2 * mFloats));
            pMax = pAcc + 4 * accFloats;
            pSum = pMax + 4 * mFloats;
        }
        cx.args.reset().ptr(q).i32(rowStride).i32(heads).i32(kvHeads);
        if (decKernel == 0) {
            cx.args.i32(headDim);  // the decode kernel's head dim is a template parameter
        }
        cx.args.f32(scale).ptr(c.k(layer)).ptr(c.v(layer)).i32(c.kvDim())
                .ptr(db.positionsPtr).ptr(db.seqOfTokenPtr).ptr(db.blockTablesPtr).i32(db.maxBlocks).i32(c.blockSize())
                .i32(quantum).i32(nSplits).ptr(out).ptr(pAcc).ptr(pMax).ptr(pSum)
                .ptr(c.kScale(layer)).ptr(c.vScale(layer));
        cx.launch(decKernel != 0 ? decKernel : cx.k.attention[kv][gi], cx.profiler == null ? "attention" : attentionName(nSplits),
                n * kvHeads, nSplits, 128);
        if (nSplits > 1) {
            cx.args.reset().ptr(pAcc).ptr(pMax).ptr(pSum).i32(nSplits).i32(headDim).ptr(out);
            cx.launch(cx.k.attentionCombine, "attention_combine", n * heads, 1, 128);
        }
    }

    /**
     * The attention_dec kernel for this call, or 0 for the general one: batches of up to 8 tokens (decode and
     * speculative verification; prefill keeps the general kernel's wider chunks), head dims 32/64/128/256 with
     * (group rounded up to a power of two) * headDim / 32 <= 32, and the rows aligned for its vector loads.
     */
    private long decodeAttentionKernel(int kv, int n, int headDim, int gi, int rowStride, int kvDim, long q, long kc,
                                       long vc) {
        if (!cx.options.decodeAttention() || n > 8 || headDim % 32 != 0) {
            return 0;
        }
        int dl = headDim / 32;
        int di = Integer.numberOfTrailingZeros(dl);
        if (Integer.bitCount(dl) != 1 || di > 3) {
            return 0;
        }
        int vec = Math.min(dl, 4);  // floats per vector load of q (and of an F32 cache)
        int cacheBytes = kv == 0 ? 4 * vec : kv == 1 ? 2 * dl : dl;  // a lane's slice of a cache row: one load
        if (rowStride % vec != 0 || kvDim % vec != 0 || q % (4L * vec) != 0 || kc % cacheBytes != 0
                || vc % cacheBytes != 0) {
            return 0;
        }
        return cx.k.attentionDec[kv][di][gi];  // 0 where the group is too large for registers
    }

    /**
     * The tensor-core prefill kernel ({@code native/prefill.cu}) for this call, or 0: the tensor-core mode with
     * {@link CudaBackend.Options#flashPrefill}, batches of more than 8 tokens outside a graph (decode and
     * verification keep the FP32 decode kernel), head dims 16/32/64/128, an F32 cache (the kernel reads float
     * elements; BF16 and FP8 caches take the general kernel of their precision) whose rows take 16-byte loads, and
     * compute capability 8.0+ (BF16 mma.sync).
     */
    private long flashKernel(int n, int headDim, DevKvCache c, int layer) {
        if (cx.options.prefillGemm() != CudaBackend.PrefillGemm.AUTO || !cx.options.flashPrefill() || n <= 8
                || c.precision() != KvPrecision.F32 || cx.capture != null || cx.driver.computeMajor() < 8) {
            return 0;
        }
        int i = switch (headDim) {
            case 16 -> 0;
            case 32 -> 1;
            case 64 -> 2;
            case 128 -> 3;
            default -> -1;
        };
        if (i < 0 || c.kvDim() % 4 != 0 || c.k(layer) % 16 != 0 || c.v(layer) % 16 != 0) {
            return 0;
        }
        return cx.k.flashPrefill[i];
    }

    /**
     * Tiles of 64 (token, query head) rows per kv head; the keys split so ~2 blocks per SM are busy (splits of a
     * multiple of 128 keys), merged by attention_combine. Not in a graph: the splits follow this batch's positions.
     */
    private void runFlash(long kernel, long q, int rowStride, DevKvCache c, int layer, Batch batch, DeviceBatch db,
                          int heads, int kvHeads, int headDim, float scale, long out) {
        int n = batch.nTokens;
        int group = heads / kvHeads;
        long span = 1;
        for (int t = 0; t < n; t++) {
            span = Math.max(span, batch.positions[t] + 1L);
        }
        long tiles = ceilDiv((long) n * group, FLASH_ROWS);
        long blocks = tiles * kvHeads;
        long wantSplits = Math.max(1, ceilDiv(2L * cx.driver.multiprocessors(), blocks));
        long perSplitFloats = (long) n * heads * (headDim + 2L);
        wantSplits = Math.min(wantSplits, Math.max(1, PARTIAL_BUDGET / (4 * perSplitFloats)));
        wantSplits = Math.min(wantSplits, Math.min(MAX_SPLITS, 65535 / kvHeads));
        long splitLen = roundUp(ceilDiv(span, wantSplits), FLASH_SPLIT_QUANTUM);
        int nSplits = (int) ceilDiv(span, splitLen);
        long pAcc = 0;
        long pMax = 0;
        long pSum = 0;
        if (nSplits > 1) {
            long accFloats = (long) n * heads * nSplits * headDim;
            long mFloats = (long) n * heads * nSplits;
            pAcc = cx.attnScratch.ensure(4 * (accFloats + 2 * mFloats));
            pMax = pAcc + 4 * accFloats;
            pSum = pMax + 4 * mFloats;
        }
        if (tiles > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("attention: " + n + " tokens x " + group + " heads is too many rows");
        }
        cx.args.reset().ptr(q).i32(rowStride).i32(n).i32(heads).i32(kvHeads).f32((float) (scale * LOG2_E))
                .ptr(c.k(layer)).ptr(c.v(layer)).i32(c.kvDim())
                .ptr(db.positionsPtr).ptr(db.seqOfTokenPtr).ptr(db.blockTablesPtr).i32(db.maxBlocks).i32(c.blockSize())
                .i32((int) splitLen).i32(nSplits).ptr(out).ptr(pAcc).ptr(pMax).ptr(pSum);
        cx.launch(kernel, "flash_prefill", (int) tiles, kvHeads * nSplits, 128);
        if (nSplits > 1) {
            cx.args.reset().ptr(pAcc).ptr(pMax).ptr(pSum).i32(nSplits).i32(headDim).ptr(out);
            cx.launch(cx.k.attentionCombine, "attention_combine", n * heads, 1, 128);
        }
    }

    private String attentionName(int nSplits) {
        String s = attentionNames[nSplits];
        if (s == null) {
            s = "attention splits=" + nSplits;
            attentionNames[nSplits] = s;
        }
        return s;
    }

    private static long ceilDiv(long a, long b) {
        return (a + b - 1) / b;
    }

    private static long roundUp(long a, long m) {
        return ceilDiv(a, m) * m;
    }
}
