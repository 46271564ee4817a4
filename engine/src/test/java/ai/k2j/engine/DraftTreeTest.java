package ai.k2j.engine;

import ai.k2j.kernels.Batch;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The draft tree's shape (EAGLE-2's path-probability rule), its greedy walk, the tree attention mask against
 * linear passes, and malformed trees refused. Exactness of whole generations is in GreedyExactnessTest, the
 * sampled distribution in SampledDistributionTest, the caches after compaction in RollbackTest.
 */
class DraftTreeTest {

    /** A distribution over 8 tokens putting the given probabilities on the given tokens, the rest spread thin. */
    private static float[] dist(int[] tokens, double[] probs) {
        float[] d = new float[8];
        for (int i = 0; i < tokens.length; i++) {
            d[tokens[i]] = (float) probs[i];
        }
        return d;
    }

    /** Teaches the calibration: a chain token of draft probability p is accepted with chance chain(p), and so on. */
    private static void calibrate(DraftTree tree) {
        for (int i = 0; i < 1000; i++) {
            // chain tokens: accepted as often as their probability says; siblings: 3 in 4 of those the draft gives 0.2+
            for (int b = 0; b < 10; b++) {
                double prob = (b + 0.5) / 10;
                tree.record(prob, false, i % 100 < prob * 100);
                tree.record(prob, true, b >= 2 ? i % 4 != 0 : false);
            }
        }
    }

    @Test
    void selectsTheNodesOfHighestPathProbability() {
        DraftTree tree = new DraftTree(8, 15);
        calibrate(tree);
        tree.clear();
        // depth 0: chain 3 (0.5), runners-up 5 (0.3), 1 (0.2); depth 1: chain 4 (0.9), 6 (0.1); depth 2: chain 2 (0.4), 7 (0.35)
        tree.addDepth(dist(new int[] {3, 5, 1}, new double[] {0.5, 0.3, 0.2}), 0, false, 3);
        tree.addDepth(dist(new int[] {4, 6}, new double[] {0.9, 0.1}), 0, false, 4);
        tree.addDepth(dist(new int[] {2, 7}, new double[] {0.4, 0.35}), 0, false, 2);
        // calibrated path chances: chain 0.5, 0.45, 0.18; siblings 5: 0.5·0.75 = 0.375, 1: 0.5·0.25·0.75 = 0.094,
        // 6: 0.5·0.1·0 = 0, 7: 0.45·0.6·0.75 = 0.2025
        assertEquals(2, tree.select(3), "chain 0.5, 0.45, then sibling 5 (0.375) before the third chain node (0.18)");
        tree.build(9);
        assertEquals(4, tree.size());
        assertArrayEquals(new int[] {9, 3, 4, 5}, Arrays.copyOf(tree.tokens(), 4));
        assertArrayEquals(new int[] {-1, 0, 1, 0}, Arrays.copyOf(tree.parents(), 4));
        assertEquals(3, tree.select(5), "0.5, 0.45, 0.375, 0.2025 (sibling 7 under the chain's 4), then 0.18");
        tree.build(9);
        assertArrayEquals(new int[] {9, 3, 4, 2, 5, 7}, Arrays.copyOf(tree.tokens(), 6));
        assertArrayEquals(new int[] {-1, 0, 1, 2, 0, 2}, Arrays.copyOf(tree.parents(), 6));
    }

    @Test
    void anUncalibratedTreeTrustsTheChain() {
        DraftTree tree = new DraftTree(8, 15);
        tree.clear();
        tree.addDepth(dist(new int[] {3, 5}, new double[] {0.3, 0.3}), 0, false, 3);
        tree.addDepth(dist(new int[] {4, 6}, new double[] {0.3, 0.3}), 0, false, 4);
        // priors: chain tokens 0.8, siblings 0.25 → chain 0.8, 0.64 beat a sibling's 0.2·0.25
        assertEquals(2, tree.select(2));
    }

    @Test
    void greedyWalkFollowsTheTargetsArgmaxThroughSiblings() {
        DraftTree tree = new DraftTree(8, 15);
        calibrate(tree);
        tree.clear();
        tree.addDepth(dist(new int[] {3, 5}, new double[] {0.6, 0.4}), 0, false, 3);
        tree.addDepth(dist(new int[] {4, 6}, new double[] {0.7, 0.3}), 0, false, 4);
        tree.select(4); // chain 3, 4 (0.6, 0.42); siblings 5 (0.4·0.75), 6 (0.6·0.3·0.75)
        tree.build(9);
        assertArrayEquals(new int[] {9, 3, 4, 5, 6}, Arrays.copyOf(tree.tokens(), 5));
        // target argmax per node: after root 3 (chain), after 3 → 6 (the sibling at depth 1), after 6 → 2
        int[] argmax = {3, 6, 0, 0, 2};
        assertEquals(2, tree.verifyGreedy(argmax));
        assertArrayEquals(new int[] {0, 1, 4}, Arrays.copyOf(tree.path(), tree.pathLength()));
        assertEquals(2, tree.next(), "the target's token after the accepted sibling");
        assertEquals(1, tree.chainAccepted());
        // the root's sibling: after root 5, then the sibling is a leaf and the target's token after it follows
        argmax = new int[] {5, 0, 0, 7, 0};
        assertEquals(1, tree.verifyGreedy(argmax));
        assertEquals(7, tree.next());
        assertEquals(0, tree.chainAccepted());
        // nothing matches at the root: the target's own token
        argmax = new int[] {1, 0, 0, 0, 0};
        assertEquals(0, tree.verifyGreedy(argmax));
        assertEquals(1, tree.next());
        assertTrue(tree.rejected());
    }

    /** Every tree row's logits equal those of a linear pass over its root-to-node path, on every backend. */
    @Test
    void treeAttentionEqualsLinearPassesOverEachPath() {
        int vocab = 40;
        ModelConfig c = SpecTestSupport.config(2, vocab);
        for (String backend : SpecTestSupport.backends()) {
            try (Arena arena = Arena.ofShared()) {
                Map<String, Tensor> w = SpecTestSupport.weights(c, DType.F32, 21, arena);
                ModelContext model = SpecTestSupport.model(c, w, ModelContext.Limits.singleSequence(96), backend);
                int[] prompt = SpecTestSupport.randomTokens(19, vocab, 22);
                int[] tokens = {7, 3, 9, 11, 3, 30, 5};
                int[] parents = {-1, 0, 1, 0, 3, 2, 1};
                Batch batch = model.newBatch();
                float[] treeLogits;
                try (Sequence seq = model.newSequence()) {
                    batch.clear();
                    seq.addTo(batch, prompt, 0, prompt.length, 0);
                    model.forward(batch);
                    batch.clear();
                    seq.addTree(batch, tokens, 0, parents, tokens.length);
                    treeLogits = Arrays.copyOf(model.forward(batch), tokens.length * vocab);
                }
                for (int node = 0; node < tokens.length; node++) {
                    int depth = 0;
                    for (int a = node; a > 0; a = parents[a]) {
                        depth++;
                    }
                    int[] path = new int[depth + 1];
                    for (int a = node, d = depth; a >= 0; a = parents[a], d--) {
                        path[d] = tokens[a];
                    }
                    int[] ids = Arrays.copyOf(prompt, prompt.length + path.length);
                    System.arraycopy(path, 0, ids, prompt.length, path.length);
                    float[] linear;
                    try (Sequence seq = model.newSequence()) {
                        batch.clear();
                        seq.addTo(batch, prompt, 0, prompt.length, 0);
                        model.forward(batch);
                        batch.clear();
                        seq.addTo(batch, path, 0, path.length, 1);
                        linear = Arrays.copyOf(model.forward(batch), vocab);
                    }
                    assertArrayEquals(linear, Arrays.copyOfRange(treeLogits, node * vocab, (node + 1) * vocab),
                            backend + ": tree node " + node + " vs a linear pass over its path");
                }
                model.backend().close();
            }
        }
    }

    @Test
    void malformedTreesAreRefused() {
        ModelConfig c = SpecTestSupport.config(1, 16);
        try (Arena arena = Arena.ofShared()) {
            ModelContext model = SpecTestSupport.model(c, SpecTestSupport.weights(c, DType.F32, 1, arena),
                    ModelContext.Limits.singleSequence(96), "reference");
            Batch batch = model.newBatch();
            try (Sequence seq = model.newSequence()) {
                int[] tokens = {1, 2, 3};
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> seq.addTree(batch, tokens, 0, new int[] {-1, 2, 0}, 3));
                assertTrue(e.getMessage().contains("token 1 has parent 2"), e.getMessage());
                assertThrows(IllegalArgumentException.class, () -> seq.addTree(batch, tokens, 0, new int[] {0, 0, 0}, 3));
                assertThrows(IllegalArgumentException.class,
                        () -> seq.addTree(batch, new int[70], 0, new int[70], 70));
                assertEquals(0, seq.length(), "a refused tree adds nothing");
                batch.clear();
                seq.addTree(batch, tokens, 0, new int[] {-1, 0, 0}, 3);
                e = assertThrows(IllegalArgumentException.class, () -> seq.keepTreePath(0, new int[] {0, 2, 1}, 3));
                assertTrue(e.getMessage().contains("increase"), e.getMessage());
            }
            model.backend().close();
        }
    }
}
