package ai.k2j.kernels.cuda;

import ai.k2j.kernels.Batch;
import ai.k2j.kernels.KvPrecision;
import ai.k2j.kernels.Rows;

import static ai.k2j.kernels.cuda.Checks.checkKvViews;
import static ai.k2j.kernels.cuda.Checks.need;
import static ai.k2j.kernels.cuda.Checks.positive;

/**
 * RoPE and the paged KV cache writes: {@code rope}, {@code store_kv}, and {@code rope_store_kv} (both in one launch,
 * bit-equal to the pair). Positions are checked against the RoPE table and block tables with {@link Batch#blockOf}
 * (through {@link DeviceBatches#validateBlocks}); in a capture the checks replay must repeat are recorded.
 */
final class RopeKv {
    private final CudaContext cx;
    private final DeviceBatches batches;

    RopeKv(CudaContext cx, DeviceBatches batches) {
        this.cx = cx;
        this.batches = batches;
    }

    /** Rotate-half RoPE in place on the view's heads (table and buffer resolved by the backend). */
    void rope(DevBuffer xb, Rows heads, int headDim, DevRope r, Batch batch) {
        int n = batch.nTokens;
        int count = checkRopeHeads(heads, headDim, r, xb, n, "rope");
        DeviceBatch db = batches.sync(batch, 0);
        checkPositions(batch, r);
        launchRope(xb.ptr, n, heads.stride(), heads.offset(), count, r, db);
    }

    /** Each token's key and value rows into its cache slot (the {@code store_kv} kernel). */
    void storeKv(DevKvCache c, int layer, DevBuffer q, Rows keys, Rows values, Batch batch) {
        checkKvViews("storeKv", keys, values, c.kvDim());
        DeviceBatch db = batches.sync(batch, c.blockSize());
        int n = batch.nTokens;
        positive(n, "storeKv Batch.nTokens");
        need(q, (long) (n - 1) * keys.stride() + Math.max(keys.offset(), values.offset()) + c.kvDim(), "storeKv keys/values");
        batches.validateBlocks(db, c);
        // a tree token's cache index (kvPositions) is not its RoPE position; every store kernel takes the index array
        launchStore(c, layer, q.ptr, keys.stride(), keys.offset(), values.offset(), n, db,
                batch.tree ? db.kvPositionsPtr : db.positionsPtr);
    }

    /** The store kernel of the cache's precision: one thread per element (F32, BF16) or one warp per head (FP8). */
    private void launchStore(DevKvCache c, int layer, long x, int rowStride, int kOff, int vOff, int n, DeviceBatch db,
                             long slotPositionsPtr) {
        if (c.precision() == KvPrecision.FP8_E4M3) {
            cx.args.reset().ptr(x).i32(rowStride).i32(kOff).i32(vOff).i32(c.kvHeads()).i32(c.headDim()).i32(n)
                    .ptr(slotPositionsPtr).ptr(db.seqOfTokenPtr).ptr(db.blockTablesPtr).i32(db.maxBlocks)
                    .i32(c.blockSize()).ptr(c.k(layer)).ptr(c.v(layer)).ptr(c.kScale(layer)).ptr(c.vScale(layer));
            cx.launch(cx.k.storeKvFp8, "store_kv_fp8", cx.grid(32L * n * c.kvHeads() * 2), 1, 256);
            return;
        }
        cx.args.reset().ptr(x).i32(rowStride).i32(kOff).i32(vOff).i32(c.kvDim()).i32(n)
                .ptr(slotPositionsPtr).ptr(db.seqOfTokenPtr).ptr(db.blockTablesPtr).i32(db.maxBlocks).i32(c.blockSize())
                .ptr(c.k(layer)).ptr(c.v(layer));
        boolean bf16 = c.precision() == KvPrecision.BF16;
        cx.launch(bf16 ? cx.k.storeKvBf16 : cx.k.storeKv, bf16 ? "store_kv_bf16" : "store_kv",
                cx.grid((long) n * c.kvDim()), 1, 256);
    }

    /**
     * RoPE on the queries and keys and the cache writes: one {@code rope_store_kv} launch when the key heads follow
     * the query heads, else rope on the queries first (the backend has checked that the fused kernel applies).
     */
    void ropeStoreKv(DevBuffer xb, Rows queries, Rows keys, Rows values, int headDim, DevKvCache c, int layer,
                     DevRope r, Batch batch) {
        int n = batch.nTokens;
        int qHeads = checkRopeHeads(queries, headDim, r, xb, n, "ropeStoreKv queries");
        int kHeads = checkRopeHeads(keys, headDim, r, xb, n, "ropeStoreKv keys");
        checkKvViews("ropeStoreKv", keys, values, c.kvDim());
        DeviceBatch db = batches.sync(batch, c.blockSize());
        need(xb, (long) (n - 1) * keys.stride() + values.offset() + c.kvDim(), "ropeStoreKv values");
        checkPositions(batch, r);
        batches.validateBlocks(db, c);
        int ropeStart = keys.offset();
        int ropeHeads = kHeads;
        boolean adjacent = queries.offset() + queries.width() == keys.offset()
                && (values.offset() + c.kvDim() <= queries.offset() || values.offset() >= keys.offset() + keys.width());
        if (adjacent) {  // one rotated range: the query heads, then the key heads
            ropeStart = queries.offset();
            ropeHeads = qHeads + kHeads;
        } else {
            launchRope(xb.ptr, n, queries.stride(), queries.offset(), qHeads, r, db);
        }
        if (c.precision() == KvPrecision.FP8_E4M3) {
            // FP8's per-head scale needs the whole rotated head: rope in place, then the warp-per-head store
            launchRope(xb.ptr, n, keys.stride(), ropeStart, ropeHeads, r, db);
            launchStore(c, layer, xb.ptr, keys.stride(), keys.offset(), values.offset(), n, db, db.positionsPtr);
            return;
        }
        boolean bf16 = c.precision() == KvPrecision.BF16;
        cx.args.reset().ptr(xb.ptr).i32(n).i32(keys.stride()).i32(ropeStart).i32(ropeHeads).i32(r.half)
                .ptr(db.positionsPtr).ptr(r.cos).ptr(r.sin).i32(keys.offset()).i32(values.offset()).i32(c.kvDim())
                .ptr(db.seqOfTokenPtr).ptr(db.blockTablesPtr).i32(db.maxBlocks).i32(c.blockSize())
                .ptr(c.k(layer)).ptr(c.v(layer));
        cx.launch(bf16 ? cx.k.ropeStoreKvBf16 : cx.k.ropeStoreKv, bf16 ? "rope_store_kv_bf16" : "rope_store_kv", cx.grid((long) n * ropeHeads * r.half + (long) n * c.kvDim()), 1, 256);
    }

    private void launchRope(long x, int n, int rowStride, int colOffset, int heads, DevRope r, DeviceBatch db) {
        cx.args.reset().ptr(x).i32(n).i32(rowStride).i32(colOffset).i32(heads).i32(r.half).ptr(db.positionsPtr)
                .ptr(r.cos).ptr(r.sin);
        cx.launch(cx.k.rope, "rope", cx.grid((long) n * heads * r.half), 1, 256);
    }

    /** The number of heads in a RoPE view, after checking it against the table and the buffer. */
    private static int checkRopeHeads(Rows heads, int headDim, DevRope r, DevBuffer xb, int n, String what) {
        positive(n, what + " Batch.nTokens");
        if (headDim % 2 != 0 || headDim / 2 != r.half) {
            throw new IllegalArgumentException(what + ": headDim " + headDim + " does not match the table's "
                    + r.half + " frequencies");
        }
        if (heads.width() % headDim != 0) {
            throw new IllegalArgumentException(what + ": view width " + heads.width()
                    + " is not a whole number of heads of " + headDim);
        }
        need(xb, (long) (n - 1) * heads.stride() + heads.offset() + heads.width(), what);
        return heads.width() / headDim;
    }

    /** Every position within the RoPE table; recorded for replay's re-check while capturing. */
    private void checkPositions(Batch batch, DevRope r) {
        for (int t = 0; t < batch.nTokens; t++) {
            if (batch.positions[t] < 0 || batch.positions[t] >= r.maxPositions) {
                throw new IllegalArgumentException("Batch.positions[" + t + "]=" + batch.positions[t]
                        + " outside the RoPE table (" + r.maxPositions + " positions)");
            }
        }
        if (cx.capture != null) {
            cx.capture.minRopePositions = Math.min(cx.capture.minRopePositions, r.maxPositions);
        }
    }
}
