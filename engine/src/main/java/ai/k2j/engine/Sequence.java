package ai.k2j.engine;

import ai.k2j.kernels.Batch;
import ai.k2j.kernels.KvCache;

/**
 * One sequence's KV state in the paged cache: its length (tokens whose keys/values are stored, or will be
 * once the batch it was added to runs) and its block table. Created by {@link ModelContext#newSequence()};
 * {@link #close()} returns its blocks. Not thread-safe; owned by the step loop.
 *
 * <p>Speculative decoding: add the draft tokens, run the batch, then {@link #rollback} to the accepted length;
 * the rejected positions are simply overwritten by the next tokens added, so rollback then re-feed equals a
 * fresh prefill. Forks ({@link #fork()}) share blocks copy-on-write.
 */
public final class Sequence implements AutoCloseable {

    private final KvBlockAllocator allocator;
    private final KvCache cache;
    private final int maxContext;
    private final int blockSize;
    private final int[] blockTable;
    private int blocks;
    private int length;
    private boolean closed;

    Sequence(KvBlockAllocator allocator, KvCache cache, int maxContext) {
        this.allocator = allocator;
        this.cache = cache;
        this.maxContext = maxContext;
        this.blockSize = allocator.blockSize();
        this.blockTable = new int[(maxContext + blockSize - 1) / blockSize];
    }

    /** Tokens in this sequence's KV (including those added to a batch that has not run yet). */
    public int length() {
        return length;
    }

    /** The most tokens this sequence may hold (the model's maxContext). */
    public int maxLength() {
        return maxContext;
    }

    /** Blocks this sequence holds (shared ones included). */
    public int blockCount() {
        return blocks;
    }

    /**
     * Adds {@code count} tokens at positions {@code length() ..} to the batch as one more sequence of it,
     * reserving KV blocks, and advances {@link #length()}. Logits are requested for the last
     * {@code logitsForLast} of them (0 for a non-final prefill chunk, 1 for decoding, all for verification).
     *
     * @throws KvCacheFullException  when too few blocks are free (nothing changes)
     * @throws IllegalStateException when the sequence would exceed maxContext or the batch is full
     */
    public void addTo(Batch batch, int[] tokens, int offset, int count, int logitsForLast) {
        checkOpen();
        if (count <= 0 || offset < 0 || offset + count > tokens.length) {
            throw new IllegalArgumentException("tokens [" + offset + ", " + (offset + count) + ") out of range for "
                    + tokens.length + " ids");
        }
        if (logitsForLast < 0 || logitsForLast > count) {
            throw new IllegalArgumentException("logitsForLast " + logitsForLast + " not in [0, " + count + "]");
        }
        checkRoom(batch, count, logitsForLast);
        reserve(length + count);
        int seqIndex = appendSequence(batch, count);
        for (int i = 0; i < count; i++) {
            appendToken(batch, seqIndex, tokens[offset + i], length + i, i >= count - logitsForLast);
        }
        length += count;
    }

    /** Adds one token (a decode step) with or without logits; see {@link #addTo(Batch, int[], int, int, int)}. */
    public void addTo(Batch batch, int token, boolean wantLogits) {
        checkOpen();
        checkRoom(batch, 1, wantLogits ? 1 : 0);
        reserve(length + 1);
        int seqIndex = appendSequence(batch, 1);
        appendToken(batch, seqIndex, token, length, wantLogits);
        length += 1;
    }

    /**
     * Claims KV slots for {@code count} more positions without computing them: their keys and values are whatever
     * the cache holds there. For benchmarks of decoding at a long context (attention's cost does not depend on the
     * values) without spending the prefill; generation never calls it.
     *
     * @throws KvCacheFullException  when too few blocks are free (nothing changes)
     * @throws IllegalStateException when the sequence would exceed maxContext
     */
    public void advanceUncomputed(int count) {
        checkOpen();
        if (count < 0 || length + count > maxContext) {
            throw new IllegalStateException("sequence of " + length + " tokens cannot advance by " + count
                    + ": the context holds at most " + maxContext);
        }
        reserve(length + count);
        length += count;
    }

    /**
     * Adds a draft tree of {@code count} tokens as one more sequence of the batch, every token with logits: token i
     * ({@code tokens[offset + i]}) is the child of token {@code parents[i]} ({@code parents[0] = -1}: the root,
     * which follows the sequence's last token; else {@code 0 ≤ parents[i] < i}). Token i's key/value go to cache
     * position {@code length() + i}, its RoPE position is {@code length()} + its depth, and it attends to the
     * sequence's cache before the tree plus its ancestors and itself ({@link Batch#tree}). Advances
     * {@link #length()} by count; after the step, {@link #keepTreePath} keeps one root-to-node path.
     *
     * @throws IllegalArgumentException on a malformed tree (count outside [1, {@link Batch#MAX_TREE_TOKENS}], a
     *                                  parent not before its child)
     */
    public void addTree(Batch batch, int[] tokens, int offset, int[] parents, int count) {
        checkOpen();
        if (count <= 0 || count > Batch.MAX_TREE_TOKENS || offset < 0 || offset + count > tokens.length
                || count > parents.length) {
            throw new IllegalArgumentException("a draft tree holds 1 to " + Batch.MAX_TREE_TOKENS + " tokens; got "
                    + count + " (tokens [" + offset + ", " + (offset + count) + ") of " + tokens.length + ", "
                    + parents.length + " parents)");
        }
        for (int i = 0; i < count; i++) {
            if (i == 0 ? parents[0] != -1 : parents[i] < 0 || parents[i] >= i) {
                throw new IllegalArgumentException("draft tree token " + i + " has parent " + parents[i]
                        + "; the root's must be -1 and every other token's an earlier token");
            }
        }
        checkRoom(batch, count, count);
        reserve(length + count);
        int seqIndex = appendSequence(batch, count);
        batch.tree = true;
        batch.seqTreeBase[seqIndex] = length;
        int first = batch.nTokens;
        for (int i = 0; i < count; i++) {
            int parentRow = i == 0 ? -1 : first + parents[i];
            int depth = i == 0 ? 0 : batch.positions[parentRow] - length + 1;
            appendToken(batch, seqIndex, tokens[offset + i], length + depth, true);
            int t = first + i;
            batch.kvPositions[t] = length + i;
            batch.treeMask[t] = (i == 0 ? 0 : batch.treeMask[parentRow]) | 1L << i;
        }
        length += count;
    }

    /**
     * Keeps one path of the draft tree added last (at cache positions {@code treeStart ..}): moves the keys and
     * values of tree tokens {@code path[0, n)} (root first, each the parent of the next, so strictly increasing)
     * to positions {@code treeStart, treeStart + 1, ..} and forgets every position from {@code treeStart + n} on.
     */
    public void keepTreePath(int treeStart, int[] path, int n) {
        checkOpen();
        if (treeStart < 0 || n < 0 || treeStart + n > length) {
            throw new IllegalArgumentException("tree path of " + n + " tokens from position " + treeStart
                    + " does not fit the sequence's " + length);
        }
        for (int d = 0; d < n; d++) {
            int from = treeStart + path[d];
            if (path[d] < d || from >= length || (d > 0 && path[d] <= path[d - 1])) {
                throw new IllegalArgumentException("tree path entry " + d + " is token " + path[d]
                        + "; a path's tokens increase from the root and stay within the tree");
            }
            if (path[d] != d) { // the target index d ≤ path[d], and path[d'] > path[d] for d' > d: no source is overwritten
                cache.copySlot(slotOf(from), slotOf(treeStart + d));
            }
        }
        rollback(treeStart + n);
    }

    private int slotOf(int position) {
        return blockTable[position / blockSize] * blockSize + position % blockSize;
    }

    /**
     * Forgets every position from {@code newLength} on (their KV stays in place and is overwritten by the
     * next tokens added) and returns the blocks no longer needed.
     */
    public void rollback(int newLength) {
        checkOpen();
        if (newLength < 0 || newLength > length) {
            throw new IllegalArgumentException("cannot roll back a sequence of length " + length + " to "
                    + newLength);
        }
        int keep = blocksFor(newLength);
        while (blocks > keep) {
            allocator.release(blockTable[--blocks]);
        }
        length = newLength;
    }

    /**
     * A new sequence with the same contents, sharing every block; whichever sequence next writes into a shared
     * block first gets a private copy of it.
     */
    public Sequence fork() {
        checkOpen();
        Sequence copy = new Sequence(allocator, cache, maxContext);
        for (int i = 0; i < blocks; i++) {
            allocator.retain(blockTable[i]);
            copy.blockTable[i] = blockTable[i];
        }
        copy.blocks = blocks;
        copy.length = length;
        return copy;
    }

    /** Returns every block to the cache. Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        while (blocks > 0) {
            allocator.release(blockTable[--blocks]);
        }
        length = 0;
    }

    public boolean isClosed() {
        return closed;
    }

    // ------------------------------------------------------------------------------------------------

    private void checkRoom(Batch batch, int count, int logits) {
        if (length + count > maxContext) {
            throw new IllegalStateException("sequence of " + length + " tokens cannot take " + count
                    + " more: the context holds at most " + maxContext);
        }
        if (batch.nSeqs >= batch.maxSeqs) {
            throw new IllegalStateException("batch already holds its maximum of " + batch.maxSeqs + " sequences");
        }
        if (batch.nTokens + count > batch.maxTokens) {
            throw new IllegalStateException("batch of " + batch.nTokens + " tokens cannot take " + count
                    + " more (max " + batch.maxTokens + ")");
        }
        if (blocksFor(length + count) > batch.maxBlocksPerSeq) {
            throw new IllegalStateException("batch block tables hold " + batch.maxBlocksPerSeq
                    + " blocks per sequence, " + blocksFor(length + count) + " needed");
        }
        if (batch.nLogits + logits > batch.maxTokens) {
            throw new IllegalStateException("batch logit rows are full");
        }
    }

    /** Makes the table cover {@code newLength} positions with private copies of every block about to be written. */
    private void reserve(int newLength) {
        int firstWritten = length / blockSize;
        int needed = blocksFor(newLength);
        int shared = 0;
        for (int b = firstWritten; b < Math.min(blocks, needed); b++) {
            if (allocator.isShared(blockTable[b])) {
                shared++;
            }
        }
        allocator.require(Math.max(0, needed - blocks) + shared); // all or nothing
        for (int b = firstWritten; b < Math.min(blocks, needed); b++) {
            int old = blockTable[b];
            if (allocator.isShared(old)) {
                int copy = allocator.allocate();
                cache.copyBlock(old, copy);
                allocator.release(old);
                blockTable[b] = copy;
            }
        }
        while (blocks < needed) {
            blockTable[blocks++] = allocator.allocate();
        }
    }

    private int appendSequence(Batch batch, int count) {
        int seqIndex = batch.nSeqs++;
        System.arraycopy(blockTable, 0, batch.blockTables, seqIndex * batch.maxBlocksPerSeq, blocks);
        batch.seqKvLength[seqIndex] = length + count;
        batch.seqTreeBase[seqIndex] = Integer.MAX_VALUE; // a plain sequence; addTree sets its tree's base
        return seqIndex;
    }

    private static void appendToken(Batch batch, int seqIndex, int token, int position, boolean wantLogits) {
        int t = batch.nTokens++;
        batch.tokens[t] = token;
        batch.positions[t] = position;
        batch.seqOfToken[t] = seqIndex;
        batch.kvPositions[t] = position;
        batch.treeMask[t] = 0;
        if (wantLogits) {
            batch.logitRows[batch.nLogits++] = t;
        }
    }

    private int blocksFor(int tokens) {
        return (tokens + blockSize - 1) / blockSize;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("sequence is closed");
        }
    }
}
