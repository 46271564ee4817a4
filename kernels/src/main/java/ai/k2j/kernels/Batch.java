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
    }

    /** Empties the batch for the next step (the arrays keep their contents; the counts say what is valid). */
    public void clear() {
        nTokens = 0;
        nSeqs = 0;
        nLogits = 0;
    }

    /** Cache slot (block·blockSize + offset) of token t, given the cache's block size. */
    public int slotOf(int t, int blockSize) {
        int seq = seqOfToken[t];
        int pos = positions[t];
        return blockTables[seq * maxBlocksPerSeq + pos / blockSize] * blockSize + pos % blockSize;
    }
}
