package ai.k2j.engine;

import ai.k2j.kernels.Batch;
import ai.k2j.kernels.GraphCapable;

/**
 * Recorded forward steps of a {@link GraphCapable} backend, one per (Batch object, nTokens, nSeqs, nLogits):
 * a shape that occurs on two consecutive steps is captured, then every step of that shape replays it with one
 * launch (a shape seen once runs eagerly). Only small
 * steps are recorded (decode, speculative verification): prefill chunks run eagerly, where launch overhead is
 * negligible next to the GEMMs. A few entries are kept; the least recently used one is closed beyond that.
 * Lookup and replay allocate nothing.
 */
final class StepGraphs implements AutoCloseable {

    /** Largest step recorded: the backend's small-batch (GEMV) path. */
    static final int MAX_TOKENS = 8;
    private static final int CAPACITY = 8;

    private final GraphCapable backend;
    private final Batch[] batches = new Batch[CAPACITY];
    private final int[] shapes = new int[CAPACITY];
    private final long[] lastUse = new long[CAPACITY];
    private final GraphCapable.Graph[] graphs = new GraphCapable.Graph[CAPACITY];
    private long clock;
    private Batch lastBatch;
    private int lastShape;
    private int captures;

    /** The eager forward step that gets recorded. */
    interface Step {
        void run(Batch batch);
    }

    StepGraphs(GraphCapable backend) {
        this.backend = backend;
    }

    static boolean eligible(Batch batch) {
        return batch.nTokens <= MAX_TOKENS && !batch.tree; // a tree step's kernels differ (not recorded)
    }

    /** Runs {@code step} on {@code batch}: replays its recorded graph, recording it first when it recurs. */
    void run(Batch batch, Step step) {
        int shape = batch.nTokens | batch.nSeqs << 8 | batch.nLogits << 20;
        int slot = -1;
        for (int i = 0; i < CAPACITY; i++) {
            if (graphs[i] != null && batches[i] == batch && shapes[i] == shape) {
                slot = i;
                break;
            }
        }
        if (slot < 0) {
            if (batch != lastBatch || shape != lastShape) {
                // a shape seen once (a prefill tail, a logits chunk, a server's passing mix) runs eagerly; one
                // that recurs on the next step (decode, verification) is worth recording
                lastBatch = batch;
                lastShape = shape;
                step.run(batch);
                return;
            }
            slot = victim();
            if (graphs[slot] != null) {
                graphs[slot].close();
                graphs[slot] = null;
                batches[slot] = null;
            }
            backend.beginCapture(batch);
            GraphCapable.Graph g;
            try {
                step.run(batch);
                g = backend.endCapture();
            } catch (RuntimeException | Error e) {
                backend.abortCapture();
                throw e;
            }
            graphs[slot] = g;
            batches[slot] = batch;
            shapes[slot] = shape;
            captures++;
        }
        lastUse[slot] = ++clock;
        backend.replay(graphs[slot], batch);
    }

    private int victim() {
        int v = 0;
        for (int i = 0; i < CAPACITY; i++) {
            if (graphs[i] == null) {
                return i;
            }
            if (lastUse[i] < lastUse[v]) {
                v = i;
            }
        }
        return v;
    }

    /** Graphs recorded so far (tests check that decode records once). */
    int captures() {
        return captures;
    }

    @Override
    public void close() {
        for (int i = 0; i < CAPACITY; i++) {
            if (graphs[i] != null) {
                graphs[i].close();
                graphs[i] = null;
                batches[i] = null;
            }
        }
    }
}
