package ai.k2j.kernels;

/**
 * Metadata of one forward step over {@code nTokens} tokens drawn from {@code nSeqs} sequences: preallocated
 * once at maximum size and refilled each step (no allocation per token). Tokens of one sequence are contiguous
 * and in position order. Fields are public arrays on purpose: this is a plain data carrier on the hot path.
 */
public final class Batch {
    public final int maxTokens;
    public final int maxSeqs;
    public final int maxBlocksPerSeq;

    /** Number of tokens in this step. */
    public int nTokens;
    /** token ids [maxTokens] */
    public final int[] tokens;
    /** absolute position of each token within its sequence [maxTokens] */
    public final int[] positions;
    /** index (0..nSeqs) of the sequence each token belongs to [maxTokens] */
    public final int[] seqOfToken;

    /** Number of sequences in this step. */
    public int nSeqs;
    /** KV length of each sequence after this step (= last position + 1) [maxSeqs] */
    public final int[] seqKvLength;
    /** block table of each sequence: seq i uses blockTables[i * maxBlocksPerSeq + j] for positions j·B.. */
    public final int[] blockTables;

    /** Number of rows whose logits are wanted. */
    public int nLogits;
    /** which token rows need logits [maxTokens] */
    public final int[] logitRows;

    /**
     * Whether this step verifies a draft tree (tokens whose cache index differs from their position). Then, and
     * only then, {@link #kvPositions}, {@link #treeMask} and {@link #seqTreeBase} are read: token t's key/value go
     * to cache index kvPositions[t] (RoPE still uses positions[t], the token's depth in the text), and t attends to
     * every cache index below seqTreeBase[s] (capped at its own index) plus index seqTreeBase[s] + j for each set
     * bit j of treeMask[t] (its ancestors in the tree and itself). A plain sequence in a tree step has
     * kvPositions = positions, seqTreeBase = {@link Integer#MAX_VALUE} and mask 0: causal as usual.
     */
    public boolean tree;
    /** cache index of each token's key/value in a tree step [maxTokens] */
    public final int[] kvPositions;
    /** tree tokens each token attends to, bit j = cache index seqTreeBase[seq] + j [maxTokens] */
    public final long[] treeMask;
    /** cache index of each sequence's first tree token (its tree's root) [maxSeqs] */
    public final int[] seqTreeBase;

    /** The most tokens one draft tree may hold (a tree token's ancestors are bits of one long). */
    public static final int MAX_TREE_TOKENS = 64;

    public Batch(int maxTokens, int maxSeqs, int maxBlocksPerSeq) {
        this.maxTokens = maxTokens;
        this.maxSeqs = maxSeqs;
        this.maxBlocksPerSeq = maxBlocksPerSeq;
        this.tokens = new int[maxTokens];
        this.positions = new int[maxTokens];
        this.seqOfToken = new int[maxTokens];
        this.seqKvLength = new int[maxSeqs];
        this.blockTables = new int[maxSeqs * maxBlocksPerSeq];
        this.logitRows = new int[maxTokens];
        this.kvPositions = new int[maxTokens];
        this.treeMask = new long[maxTokens];
        this.seqTreeBase = new int[maxSeqs];
    }

    /** Empties the batch for the next step (the arrays keep their contents; the counts say what is valid). */
    public void clear() {
        nTokens = 0;
        nSeqs = 0;
        nLogits = 0;
        tree = false;
    }

    /** The cache index of token t's key/value: its position, except in a tree step. */
    public int kvPositionOf(int t) {
        return tree ? kvPositions[t] : positions[t];
    }

    /**
     * How many leading cache indices of its sequence token t attends to in full: kvPositionOf(t) + 1 (causal),
     * or in a tree step for a tree token the tree's base (its ancestors follow, {@link #treeMask}).
     */
    public int attendedPrefix(int t) {
        int own = kvPositionOf(t) + 1;
        return tree ? Math.min(own, seqTreeBase[seqOfToken[t]]) : own;
    }

    /**
     * The tree tokens t attends to beyond {@link #attendedPrefix}: bit j = cache index seqTreeBase + j; 0 outside
     * tree steps and for plain tokens. Checked: every bit names an index at or below t's own.
     */
    public long treeAncestors(int t) {
        if (!tree) {
            return 0;
        }
        long mask = treeMask[t];
        if (mask != 0) {
            int base = seqTreeBase[seqOfToken[t]];
            int own = kvPositions[t];
            int highest = 63 - Long.numberOfLeadingZeros(mask);
            if (base < 0 || own < base || base + highest > own) {
                throw new IllegalArgumentException("tree mask of batch row " + t + " names cache index " + (base + highest)
                        + " past its own " + own + " (tree base " + base + ")");
            }
        }
        return mask;
    }

    /**
     * The paged-KV lookup every backend uses: the cache block holding position {@code pos} of batch sequence
     * {@code seq}, from its block table, checked.
     *
     * @throws IllegalArgumentException when seq is not a sequence of this step, pos is outside its block table, or
     *                                  the table names a block outside the cache's {@code numBlocks}
     */
    public int blockOf(int seq, int pos, int blockSize, int numBlocks) {
        if (seq < 0 || seq >= nSeqs || seq >= maxSeqs) {
            throw new IllegalArgumentException("sequence " + seq + " is outside the batch's [0, " + nSeqs + ")");
        }
        int index = pos / blockSize;
        if (pos < 0 || index >= maxBlocksPerSeq) {
            throw new IllegalArgumentException("position " + pos + " of sequence " + seq + " is outside the block table ("
                    + maxBlocksPerSeq + " blocks of " + blockSize + ")");
        }
        int block = blockTables[seq * maxBlocksPerSeq + index];
        if (block < 0 || block >= numBlocks) {
            throw new IllegalArgumentException("block table entry " + index + " of sequence " + seq + " is " + block
                    + ", outside the cache's " + numBlocks + " blocks");
        }
        return block;
    }

    /** Cache slot (block·blockSize + offset in the block) of position {@code pos} of sequence {@code seq}, checked. */
    public int slotAt(int seq, int pos, int blockSize, int numBlocks) {
        return blockOf(seq, pos, blockSize, numBlocks) * blockSize + pos % blockSize;
    }

    /** Cache slot of batch token {@code t} (its sequence's slot at its position), checked as {@link #blockOf}. */
    public int slotOf(int t, KvCache cache) {
        return slotAt(seqOfToken[t], kvPositionOf(t), cache.blockSize(), cache.numBlocks());
    }
}
