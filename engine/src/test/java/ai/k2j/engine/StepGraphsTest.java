package ai.k2j.engine;

import ai.k2j.kernels.Batch;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.GraphCapable;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** When StepGraphs records, replays, evicts and aborts, against a backend that only logs the calls. */
class StepGraphsTest {

    /** Logs "begin", "end", "abort", "replay#id", "close#id"; the step logs "op" (eager or recorded). */
    static final class FakeBackend implements GraphCapable {
        final List<String> log = new ArrayList<>();
        int next;

        final class FakeGraph implements Graph {
            final int id = next++;

            @Override
            public void close() {
                log.add("close#" + id);
            }
        }

        @Override
        public void beginCapture(Batch batch) {
            log.add("begin");
        }

        @Override
        public Graph endCapture() {
            log.add("end");
            return new FakeGraph();
        }

        @Override
        public void abortCapture() {
            log.add("abort");
        }

        @Override
        public void replay(Graph graph, Batch batch) {
            log.add("replay#" + ((FakeGraph) graph).id);
        }

        @Override
        public void sample(Buffer logits, int n, int dim, float temperature, int topK, float topP, long seed,
                           int[] out) {
            throw new UnsupportedOperationException();
        }
    }

    private static Batch batch(int tokens, int logits) {
        Batch b = new Batch(16, 1, 4);
        b.nTokens = tokens;
        b.nSeqs = 1;
        b.nLogits = logits;
        return b;
    }

    @Test
    void aShapeRunsEagerlyOnceThenIsRecordedOnceAndReplayed() {
        FakeBackend be = new FakeBackend();
        StepGraphs graphs = new StepGraphs(be);
        Batch decode = batch(1, 1);
        StepGraphs.Step step = b -> be.log.add("op");
        for (int i = 0; i < 4; i++) {
            graphs.run(decode, step);
        }
        assertEquals(List.of("op", "begin", "op", "end", "replay#0", "replay#0", "replay#0"), be.log);
        assertEquals(1, graphs.captures());
        // the same shape on another Batch object is another graph (kernels read that object's device copy)
        Batch other = batch(1, 1);
        be.log.clear();
        graphs.run(other, step);
        graphs.run(other, step);
        assertEquals(List.of("op", "begin", "op", "end", "replay#1"), be.log);
        graphs.close();
        assertTrue(be.log.contains("close#0") && be.log.contains("close#1"));
    }

    @Test
    void changingShapesAreNotRecordedAndTheLeastRecentGraphIsEvicted() {
        FakeBackend be = new FakeBackend();
        StepGraphs graphs = new StepGraphs(be);
        StepGraphs.Step step = b -> be.log.add("op");
        Batch b = batch(1, 1);
        for (int t = 1; t <= StepGraphs.MAX_TOKENS; t++) {  // every shape once: all eager
            b.nTokens = t;
            b.nLogits = t;
            graphs.run(b, step);
        }
        assertFalse(be.log.contains("begin"), be.log.toString());
        assertEquals(0, graphs.captures());
        // record 9 shapes (each twice in a row): the 9th evicts the first
        for (int s = 1; s <= 9; s++) {
            b.nTokens = 1 + (s - 1) % 8;
            b.nLogits = s <= 8 ? b.nTokens : 0;
            graphs.run(b, step);
            graphs.run(b, step);
        }
        assertEquals(9, graphs.captures());
        assertTrue(be.log.contains("close#0"), be.log.toString());
        assertFalse(be.log.contains("close#1"), be.log.toString());
    }

    @Test
    void aFailingCaptureIsAbortedAndRethrown() {
        FakeBackend be = new FakeBackend();
        StepGraphs graphs = new StepGraphs(be);
        Batch b = batch(2, 2);
        RuntimeException boom = new IllegalArgumentException("bad token");
        StepGraphs.Step failing = x -> {
            if (be.log.contains("begin")) {
                throw boom;
            }
        };
        graphs.run(b, failing);  // eager, fine
        RuntimeException e = assertThrows(RuntimeException.class, () -> graphs.run(b, failing));
        assertSame(boom, e);
        assertEquals(List.of("begin", "abort"), be.log);
        assertEquals(0, graphs.captures());
    }
}
