package ai.k2j.kernels.cuda;

import ai.k2j.kernels.Batch;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * The device copy of one {@link Batch} object's metadata, in one fixed int32 buffer (so a captured graph keeps
 * reading the same addresses): header [nTokens, nSeqs, nLogits, maxBlocksPerSeq, 0...], then tokens, positions,
 * seqOfToken, logitRows (maxTokens each), seqKvLength (maxSeqs), blockTables (maxSeqs × maxBlocksPerSeq); then,
 * read only by draft-tree steps ({@link Batch#tree}), kvPositions (maxTokens), seqTreeBase (maxSeqs) and treeMask
 * (maxTokens int64, 8-byte aligned). A tree step re-uploads on every op (no shadow of the tree fields).
 *
 * <p>Ops call {@link #sync}: it compares what the op's kernels will read with a host shadow of the last upload
 * and, only when something differs, re-uploads with one asynchronous copy from pinned memory (double-buffered;
 * an event guards reuse of each staging half). The comparison costs O(tokens + sequences + used blocks).
 */
final class DeviceBatch {

    private static final int HEADER = 8;

    final Batch batch;
    final int maxTokens;
    final int maxSeqs;
    final int maxBlocks;
    final long dev;
    final long tokensPtr;
    final long positionsPtr;
    final long seqOfTokenPtr;
    final long logitRowsPtr;
    final long seqKvLengthPtr;
    final long blockTablesPtr;
    final long kvPositionsPtr;
    final long seqTreeBasePtr;
    final long treeMaskPtr;
    private final int btOff;
    private final int treeOff;
    private final int maskOff;
    private final long totalInts;

    // shadow of the last upload
    private boolean valid;
    private boolean lastTree;
    private int nTokens;
    private int nSeqs;
    private int nLogits;
    private final int[] tokens;
    private final int[] positions;
    private final int[] seqOfToken;
    private final int[] logitRows;
    private final int[] seqKvLength;
    private final int[] blockTables;
    private final int[] maxPosOfSeq;

    private final MemorySegment[] staging = new MemorySegment[2];
    private final long[] events = new long[2];
    private final boolean[] eventPending = new boolean[2];
    private int nextStaging;

    /** Backend's use counter at the last op that used this batch (for eviction). */
    long lastUse;
    /** Incremented per upload; op validations are cached against it. */
    long generation;
    long validatedKvGeneration = -1;
    Object validatedKvCache;

    DeviceBatch(CudaDriver driver, Batch batch) {
        this.batch = batch;
        this.maxTokens = batch.maxTokens;
        this.maxSeqs = batch.maxSeqs;
        this.maxBlocks = batch.maxBlocksPerSeq;
        if (maxTokens < 1 || maxSeqs < 1 || maxBlocks < 1) {
            throw new IllegalArgumentException("Batch capacities must be >= 1: maxTokens=" + maxTokens + ", maxSeqs="
                    + maxSeqs + ", maxBlocksPerSeq=" + maxBlocks);
        }
        long plainInts = HEADER + 4L * maxTokens + maxSeqs + (long) maxSeqs * maxBlocks;
        this.btOff = Math.toIntExact(HEADER + 4L * maxTokens + maxSeqs);
        this.treeOff = Math.toIntExact((plainInts + 1) & ~1L);
        this.maskOff = Math.toIntExact((treeOff + (long) maxTokens + maxSeqs + 1) & ~1L);
        long ints = maskOff + 2L * maxTokens;
        this.totalInts = ints;
        this.dev = driver.malloc(ints * 4);
        this.tokensPtr = dev + 4L * HEADER;
        this.positionsPtr = tokensPtr + 4L * maxTokens;
        this.seqOfTokenPtr = positionsPtr + 4L * maxTokens;
        this.logitRowsPtr = seqOfTokenPtr + 4L * maxTokens;
        this.seqKvLengthPtr = logitRowsPtr + 4L * maxTokens;
        this.blockTablesPtr = dev + 4L * btOff;
        this.kvPositionsPtr = dev + 4L * treeOff;
        this.seqTreeBasePtr = kvPositionsPtr + 4L * maxTokens;
        this.treeMaskPtr = dev + 4L * maskOff;
        tokens = new int[maxTokens];
        positions = new int[maxTokens];
        seqOfToken = new int[maxTokens];
        logitRows = new int[maxTokens];
        seqKvLength = new int[maxSeqs];
        blockTables = new int[maxSeqs * maxBlocks];
        maxPosOfSeq = new int[maxSeqs];
        for (int i = 0; i < 2; i++) {
            staging[i] = driver.mallocHost(ints * 4);
            events[i] = driver.eventCreate(false);
        }
    }

    /** Basic consistency of the host batch; throws IllegalArgumentException naming the field. */
    static void checkCounts(Batch b) {
        if (b.nTokens < 1 || b.nTokens > b.maxTokens) {
            throw new IllegalArgumentException("Batch.nTokens=" + b.nTokens + " outside [1, " + b.maxTokens + "]");
        }
        if (b.nSeqs < 1 || b.nSeqs > b.maxSeqs) {
            throw new IllegalArgumentException("Batch.nSeqs=" + b.nSeqs + " outside [1, " + b.maxSeqs + "]");
        }
        if (b.nLogits < 0 || b.nLogits > b.maxTokens) {
            throw new IllegalArgumentException("Batch.nLogits=" + b.nLogits + " outside [0, " + b.maxTokens + "]");
        }
        for (int t = 0; t < b.nTokens; t++) {
            int s = b.seqOfToken[t];
            if (s < 0 || s >= b.nSeqs) {
                throw new IllegalArgumentException("Batch.seqOfToken[" + t + "]=" + s + " outside [0, " + b.nSeqs + ")");
            }
            if (b.positions[t] < 0) {
                throw new IllegalArgumentException("Batch.positions[" + t + "]=" + b.positions[t] + " is negative");
            }
        }
        for (int i = 0; i < b.nLogits; i++) {
            if (b.logitRows[i] < 0 || b.logitRows[i] >= b.nTokens) {
                throw new IllegalArgumentException("Batch.logitRows[" + i + "]=" + b.logitRows[i] + " outside [0, "
                        + b.nTokens + ")");
            }
        }
    }

    /** True when the device copy matches what ops read (blockSize > 0: also the block-table entries in use). */
    boolean matches(Batch b, int blockSize) {
        if (!valid || b.tree || lastTree || b.nTokens != nTokens || b.nSeqs != nSeqs || b.nLogits != nLogits) {
            return false;
        }
        int n = b.nTokens;
        if (!Arrays.equals(b.tokens, 0, n, tokens, 0, n)
                || !Arrays.equals(b.positions, 0, n, positions, 0, n)
                || !Arrays.equals(b.seqOfToken, 0, n, seqOfToken, 0, n)
                || !Arrays.equals(b.logitRows, 0, b.nLogits, logitRows, 0, b.nLogits)
                || !Arrays.equals(b.seqKvLength, 0, b.nSeqs, seqKvLength, 0, b.nSeqs)) {
            return false;
        }
        if (blockSize > 0) {
            // positions equal the shadow's here, so maxPosOfSeq (computed at upload) is current
            for (int s = 0; s < nSeqs; s++) {
                if (maxPosOfSeq[s] < 0) {
                    continue;
                }
                int used = Math.min(maxBlocks, maxPosOfSeq[s] / blockSize + 1);
                int from = s * maxBlocks;
                if (!Arrays.equals(b.blockTables, from, from + used, blockTables, from, from + used)) {
                    return false;
                }
            }
        }
        return true;
    }

    /** Copies the batch into the shadow and pinned staging, and enqueues one H2D copy on the stream. */
    void upload(CudaDriver driver, Batch b) {
        int i = nextStaging;
        nextStaging ^= 1;
        if (eventPending[i]) {
            driver.eventSynchronize(events[i]);  // the copy that last read this staging half is done
        }
        MemorySegment st = staging[i];
        nTokens = b.nTokens;
        nSeqs = b.nSeqs;
        nLogits = b.nLogits;
        int n = nTokens;
        System.arraycopy(b.tokens, 0, tokens, 0, n);
        System.arraycopy(b.positions, 0, positions, 0, n);
        System.arraycopy(b.seqOfToken, 0, seqOfToken, 0, n);
        System.arraycopy(b.logitRows, 0, logitRows, 0, nLogits);
        System.arraycopy(b.seqKvLength, 0, seqKvLength, 0, nSeqs);
        System.arraycopy(b.blockTables, 0, blockTables, 0, nSeqs * maxBlocks);
        Arrays.fill(maxPosOfSeq, 0, nSeqs, -1);
        for (int t = 0; t < n; t++) {
            int s = seqOfToken[t];
            maxPosOfSeq[s] = Math.max(maxPosOfSeq[s], b.kvPositionOf(t));
        }
        st.setAtIndex(ValueLayout.JAVA_INT, 0, nTokens);
        st.setAtIndex(ValueLayout.JAVA_INT, 1, nSeqs);
        st.setAtIndex(ValueLayout.JAVA_INT, 2, nLogits);
        st.setAtIndex(ValueLayout.JAVA_INT, 3, maxBlocks);
        MemorySegment.copy(tokens, 0, st, ValueLayout.JAVA_INT, 4L * HEADER, n);
        MemorySegment.copy(positions, 0, st, ValueLayout.JAVA_INT, 4L * (HEADER + maxTokens), n);
        MemorySegment.copy(seqOfToken, 0, st, ValueLayout.JAVA_INT, 4L * (HEADER + 2L * maxTokens), n);
        MemorySegment.copy(logitRows, 0, st, ValueLayout.JAVA_INT, 4L * (HEADER + 3L * maxTokens), nLogits);
        MemorySegment.copy(seqKvLength, 0, st, ValueLayout.JAVA_INT, 4L * (HEADER + 4L * maxTokens), nSeqs);
        MemorySegment.copy(blockTables, 0, st, ValueLayout.JAVA_INT, 4L * btOff, nSeqs * maxBlocks);
        long bytes = 4L * (btOff + (long) nSeqs * maxBlocks);
        lastTree = b.tree;
        if (b.tree) {
            MemorySegment.copy(b.kvPositions, 0, st, ValueLayout.JAVA_INT, 4L * treeOff, n);
            MemorySegment.copy(b.seqTreeBase, 0, st, ValueLayout.JAVA_INT, 4L * treeOff + 4L * maxTokens, nSeqs);
            MemorySegment.copy(b.treeMask, 0, st, ValueLayout.JAVA_LONG, 4L * maskOff, n);
            bytes = 4L * totalInts;
        }
        driver.copyToDeviceAsync(dev, st.address(), bytes);
        driver.eventRecord(events[i]);
        eventPending[i] = true;
        valid = true;
        generation++;
    }

    /** Highest position of sequence s in the uploaded batch, or -1 when it has no token in it. */
    int maxPosition(int s) {
        return maxPosOfSeq[s];
    }

    void free(CudaDriver driver) {
        for (int i = 0; i < 2; i++) {
            if (eventPending[i]) {
                driver.eventSynchronize(events[i]);
            }
            driver.eventDestroy(events[i]);
            driver.freeHost(staging[i]);
        }
        driver.free(dev);
    }
}
