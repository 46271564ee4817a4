package ai.k2j.kernels.cuda;

import ai.k2j.kernels.Batch;
import ai.k2j.kernels.GraphCapable;

import java.util.ArrayList;
import java.util.List;

/**
 * CUDA graphs of backend ops: stream capture into a graph ({@link #begin} … {@link #end}), and {@link #replay},
 * which re-uploads the Batch, repeats on the host the checks the ops made at capture (token ids, RoPE range, block
 * tables), and launches the whole step at once. The backend guards each call (open, context current, not nested).
 */
final class GraphRecorder {

    /** What a recording remembers: its Batch, and the host checks replay must repeat. */
    static final class Capture {
        final Batch batch;
        int minRopePositions = Integer.MAX_VALUE;
        int minEmbedRows = Integer.MAX_VALUE;
        final List<DevKvCache> caches = new ArrayList<>();
        int ops;

        Capture(Batch batch) {
            this.batch = batch;
        }
    }

    private final CudaBackend owner;
    private final CudaContext cx;
    private final DeviceBatches batches;

    GraphRecorder(CudaBackend owner, CudaContext cx, DeviceBatches batches) {
        this.owner = owner;
        this.cx = cx;
        this.batches = batches;
    }

    void begin(Batch batch) {
        batches.sync(batch, 0);
        cx.capture = new Capture(batch);
        try {
            cx.driver.beginCapture();
        } catch (RuntimeException e) {
            cx.capture = null;
            throw e;
        }
    }

    CudaGraph end() {
        if (cx.capture == null) {
            throw new IllegalStateException("endCapture without beginCapture");
        }
        Capture c = cx.capture;
        cx.capture = null;
        long graph = cx.driver.endCapture();
        long exec;
        try {
            exec = cx.driver.instantiate(graph);
        } catch (RuntimeException e) {
            cx.driver.graphDestroy(graph, 0);
            throw e;
        }
        CudaGraph g = new CudaGraph(owner, graph, exec, c.batch, c.minRopePositions, c.minEmbedRows,
                List.copyOf(c.caches), c.ops);
        cx.graphs.add(g);
        return g;
    }

    void abort() {
        if (cx.capture == null) {
            return;
        }
        cx.capture = null;
        try {
            long graph = cx.driver.endCapture();
            cx.driver.graphDestroy(graph, 0);
        } catch (CudaException e) {
            // an invalidated capture ends with an error; the stream has left capture mode either way
        }
    }

    void replay(GraphCapable.Graph step, Batch batch) {
        if (!(step instanceof CudaGraph graph) || graph.owner != owner || graph.closed) {
            throw new IllegalArgumentException("replay: graph is closed or belongs to another backend");
        }
        if (batch != graph.batch) {
            throw new IllegalArgumentException("replay: the graph reads the device copy of the Batch object it was"
                    + " captured with; pass that same object (refilled)");
        }
        if (batch.nTokens != graph.nTokens || batch.nSeqs != graph.nSeqs || batch.nLogits != graph.nLogits) {
            throw new IllegalArgumentException("replay: graph captured with nTokens/nSeqs/nLogits = " + graph.nTokens
                    + "/" + graph.nSeqs + "/" + graph.nLogits + ", batch has " + batch.nTokens + "/" + batch.nSeqs + "/"
                    + batch.nLogits);
        }
        DeviceBatch db = batches.sync(batch, 0);
        for (int t = 0; t < batch.nTokens; t++) {
            if (batch.positions[t] >= graph.minRopePositions) {
                throw new IllegalArgumentException("Batch.positions[" + t + "]=" + batch.positions[t]
                        + " beyond the RoPE table (" + graph.minRopePositions + " positions)");
            }
            if (batch.tokens[t] < 0 || batch.tokens[t] >= graph.minEmbedRows) {
                throw new IllegalArgumentException("Batch.tokens[" + t + "]=" + batch.tokens[t]
                        + " outside the embedding table [0, " + graph.minEmbedRows + ")");
            }
        }
        for (int i = 0; i < graph.caches.size(); i++) {  // indexed: no iterator on the per-token path
            DevKvCache c = graph.caches.get(i);
            if (!db.matches(batch, c.blockSize())) {
                batches.upload(db, batch);
            }
            batches.validateBlocks(db, c);
        }
        if (cx.profiler != null) {
            cx.profiler.begin("graph_replay");
            cx.driver.graphLaunch(graph.exec);
            cx.profiler.end();
        } else {
            cx.driver.graphLaunch(graph.exec);
        }
    }

    /** Frees a graph (the backend still open: synchronizes first, then frees scratch it kept alive). */
    void destroy(CudaGraph g) {
        g.closed = true;
        cx.graphs.remove(g);
        cx.driver.makeCurrent();
        cx.driver.synchronize();
        cx.driver.graphDestroy(g.graph, g.exec);
        cx.freeRetiredIfIdle();
    }

    void addCloseSteps(List<Runnable> steps) {
        for (CudaGraph g : List.copyOf(cx.graphs)) {
            steps.add(() -> {
                g.closed = true;
                cx.driver.graphDestroy(g.graph, g.exec);
            });
        }
        cx.graphs.clear();
    }
}
