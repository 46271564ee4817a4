package ai.k2j.kernels;

/**
 * Optional {@link Backend} capability: record a whole forward step once and replay it per token with a single
 * launch (CUDA graphs), and sample on the device so only token ids come back. The engine checks
 * {@code backend instanceof GraphCapable}; backends without it run every op eagerly.
 *
 * <p>Contract: between {@link #beginCapture} and {@link #endCapture} the ops record instead of running, must use
 * the Batch given to beginCapture (unchanged), and nothing may synchronize or allocate. A graph replays the
 * recorded ops for that same Batch object refilled with the same nTokens/nSeqs/nLogits (tokens, positions,
 * KV lengths and block tables may change). Buffers the ops used must stay alive while the graph exists.
 */
public interface GraphCapable {

    /** A recorded step; close it to free it. */
    interface Graph extends AutoCloseable {
        @Override
        void close();
    }

    /** Uploads {@code batch} and starts recording ops (nothing runs until {@link #replay}). */
    void beginCapture(Batch batch);

    /** Ends the recording. */
    Graph endCapture();

    /** Abandons a recording after an op failed during it; the backend is usable again afterwards. */
    void abortCapture();

    /** Uploads {@code batch} (the captured object, refilled) and runs the graph; asynchronous like the ops. */
    void replay(Graph graph, Batch batch);

    /**
     * One token per row of logits [n, dim], drawn on the device: temperature, then top-k (0 = off), then
     * top-p (1 = off); temperature &lt;= 0 is argmax. {@code seed} makes the draws reproducible. Synchronizes.
     */
    void sample(Buffer logits, int n, int dim, float temperature, int topK, float topP, long seed, int[] out);
}
