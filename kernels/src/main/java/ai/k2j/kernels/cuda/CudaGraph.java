package ai.k2j.kernels.cuda;

import ai.k2j.kernels.Batch;
import ai.k2j.kernels.GraphCapable;

import java.util.List;

/**
 * A captured and instantiated CUDA graph of backend ops (see {@link CudaBackend#beginCapture}). Replays with
 * {@link CudaBackend#replay}; bound to the {@link Batch} object it was captured with (its device copy is what the
 * graph's kernels read) and to that batch's token/sequence/logit counts. Close it to free the graph.
 */
public final class CudaGraph implements GraphCapable.Graph {

    final CudaBackend owner;
    final long graph;
    final long exec;
    final Batch batch;
    final int nTokens;
    final int nSeqs;
    final int nLogits;
    /** Host checks to repeat on every replay, recorded from the captured ops. */
    final int minRopePositions;
    final int minEmbedRows;
    final List<DevKvCache> caches;
    final int launches;
    boolean closed;

    CudaGraph(CudaBackend owner, long graph, long exec, Batch batch, int minRopePositions, int minEmbedRows,
              List<DevKvCache> caches, int launches) {
        this.owner = owner;
        this.graph = graph;
        this.exec = exec;
        this.batch = batch;
        this.nTokens = batch.nTokens;
        this.nSeqs = batch.nSeqs;
        this.nLogits = batch.nLogits;
        this.minRopePositions = minRopePositions;
        this.minEmbedRows = minEmbedRows;
        this.caches = caches;
        this.launches = launches;
    }

    /** Number of kernel launches and copies recorded. */
    public int operations() {
        return launches;
    }

    @Override
    public void close() {
        owner.destroyGraph(this);
    }

    @Override
    public String toString() {
        return "CudaGraph[" + launches + " ops, nTokens=" + nTokens + ", nSeqs=" + nSeqs + ", nLogits=" + nLogits + "]";
    }
}
