package ai.k2j.kernels.cuda;

import ai.k2j.kernels.Batch;

import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The device copies of the engine's {@link Batch} objects: one {@link DeviceBatch} per object, re-uploaded only when
 * what an op reads changed, at most {@link #MAX_BATCH_OBJECTS} kept (the least recently used one no graph reads is
 * freed beyond that), and the block-table check every KV op needs.
 */
final class DeviceBatches {
    private static final int MAX_BATCH_OBJECTS = 32;

    private final CudaContext cx;
    private final Map<Batch, DeviceBatch> batches = new IdentityHashMap<>();
    private DeviceBatch lastBatch;
    private long useClock;

    DeviceBatches(CudaContext cx) {
        this.cx = cx;
    }

    /** The device copy of batch if it exists (no upload, no allocation). */
    DeviceBatch current(Batch batch) {
        return lastBatch != null && lastBatch.batch == batch ? lastBatch : batches.get(batch);
    }

    /**
     * The device copy of batch, re-uploaded when what the ops read changed (blockSize > 0: including the block
     * table entries in use). During a capture a change is an error.
     */
    DeviceBatch sync(Batch batch, int blockSize) {
        if (batch == null) {
            throw new IllegalArgumentException("batch is null");
        }
        DeviceBatch db = current(batch);
        if (db == null) {
            if (cx.capture != null) {
                throw new IllegalStateException("a Batch other than the one given to beginCapture was used while"
                        + " capturing");
            }
            if (batches.size() >= MAX_BATCH_OBJECTS) {
                evictLeastRecent();
            }
            db = new DeviceBatch(cx.driver, batch);
            batches.put(batch, db);
        }
        db.lastUse = ++useClock;
        lastBatch = db;
        if (!db.matches(batch, blockSize)) {
            if (cx.capture != null) {
                throw new IllegalStateException("the Batch changed while capturing a CUDA graph; fill it before"
                        + " beginCapture and change it only between replays");
            }
            DeviceBatch.checkCounts(batch);
            upload(db, batch);
        }
        return db;
    }

    void upload(DeviceBatch db, Batch batch) {
        if (cx.profiler != null && cx.capture == null) {
            cx.profiler.begin("batch_upload(H2D)");
            db.upload(cx.driver, batch);
            cx.profiler.end();
        } else {
            db.upload(cx.driver, batch);
        }
    }

    /**
     * Every block-table entry the batch's kernels read for this cache must name a block of it: checked with
     * {@link Batch#blockOf} at each used block of each sequence, once per upload and cache.
     */
    void validateBlocks(DeviceBatch db, DevKvCache c) {
        if (cx.capture != null && !cx.capture.caches.contains(c)) {
            cx.capture.caches.add(c);  // replay repeats this check for new block tables
        }
        if (db.validatedKvGeneration == db.generation && db.validatedKvCache == c) {
            return;
        }
        Batch b = db.batch;
        for (int s = 0; s < b.nSeqs; s++) {
            int maxPos = db.maxPosition(s);
            for (int p = 0; p <= maxPos; p += c.blockSize()) {
                b.blockOf(s, p, c.blockSize(), c.numBlocks());
            }
        }
        db.validatedKvGeneration = db.generation;
        db.validatedKvCache = c;
    }

    /**
     * Frees the device copy of the least recently used Batch that no graph reads (Batch objects are meant to be
     * allocated once; this only bounds memory when an engine creates them per request).
     */
    private void evictLeastRecent() {
        DeviceBatch victim = null;
        for (DeviceBatch db : batches.values()) {
            boolean pinned = cx.capture != null && cx.capture.batch == db.batch;
            for (CudaGraph g : cx.graphs) {
                pinned |= g.batch == db.batch;
            }
            if (!pinned && (victim == null || db.lastUse < victim.lastUse)) {
                victim = db;
            }
        }
        if (victim == null) {
            throw new IllegalStateException(MAX_BATCH_OBJECTS + " Batch objects are in use by CUDA graphs; close graphs"
                    + " or reuse Batch objects");
        }
        cx.driver.synchronize();  // queued kernels may still read its buffer
        batches.remove(victim.batch);
        if (lastBatch == victim) {
            lastBatch = null;
        }
        victim.free(cx.driver);
    }

    void addCloseSteps(List<Runnable> steps) {
        for (DeviceBatch db : batches.values()) {
            steps.add(() -> db.free(cx.driver));
        }
        batches.clear();
        lastBatch = null;
    }
}
