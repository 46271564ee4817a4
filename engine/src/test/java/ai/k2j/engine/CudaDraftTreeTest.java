package ai.k2j.engine;

import ai.k2j.engine.model.Architectures;
import ai.k2j.kernels.Batch;
import ai.k2j.kernels.KvPrecision;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.Tensor;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Draft trees on CUDA (the {@code attention_tree} kernel, tree cache writes at kvPositions, {@code copySlot}):
 * every tree row's logits match a linear pass over its path (to float tolerance: the tree kernel sums in another
 * order than the decode kernels), the compacted cache equals a fresh prefill to the same tolerance, and greedy
 * tree speculation on the demo pair gives plain greedy's tokens. Needs a CUDA GPU.
 */
@Tag("gpu")
class CudaDraftTreeTest {

    @Test
    void treeRowsMatchLinearPassesOnCuda() {
        CudaEngineTest.cuda(ai.k2j.kernels.cuda.CudaBackend.PrefillGemm.AUTO).close(); // skip or fail w/o CUDA
        int vocab = 40;
        ModelConfig c = SpecTestSupport.config(2, vocab);
        try (Arena arena = Arena.ofShared()) {
            Map<String, Tensor> w = SpecTestSupport.weights(c, DType.F32, 21, arena);
            ModelContext model = SpecTestSupport.model(c, w, ModelContext.Limits.singleSequence(96), "cuda");
            int[] prompt = SpecTestSupport.randomTokens(19, vocab, 22);
            int[] tokens = {7, 3, 9, 11, 3, 30, 5};
            int[] parents = {-1, 0, 1, 0, 3, 2, 1};
            Batch batch = model.newBatch();
            float[] treeLogits;
            float[] afterCompaction;
            int[] path = {0, 3, 4}; // root, 11, 3: a path off the chain, so keepTreePath moves entries
            int[] probe = {5, 6};
            try (Sequence seq = model.newSequence()) {
                batch.clear();
                seq.addTo(batch, prompt, 0, prompt.length, 0);
                model.forward(batch);
                batch.clear();
                seq.addTree(batch, tokens, 0, parents, tokens.length);
                treeLogits = Arrays.copyOf(model.forward(batch), tokens.length * vocab);
                seq.keepTreePath(prompt.length, path, path.length);
                batch.clear();
                seq.addTo(batch, probe, 0, probe.length, probe.length);
                afterCompaction = Arrays.copyOf(model.forward(batch), probe.length * vocab);
            }
            for (int node = 0; node < tokens.length; node++) {
                int depth = 0;
                for (int a = node; a > 0; a = parents[a]) {
                    depth++;
                }
                int[] ids = new int[depth + 1];
                for (int a = node, d = depth; a >= 0; a = parents[a], d--) {
                    ids[d] = tokens[a];
                }
                float[] linear = linear(model, batch, prompt, ids, 1);
                assertClose(linear, Arrays.copyOfRange(treeLogits, node * vocab, (node + 1) * vocab),
                        "tree node " + node);
            }
            int[] kept = new int[path.length + probe.length];
            for (int i = 0; i < path.length; i++) {
                kept[i] = tokens[path[i]];
            }
            System.arraycopy(probe, 0, kept, path.length, probe.length);
            assertClose(linear(model, batch, prompt, kept, probe.length), afterCompaction,
                    "probe after keepTreePath");
            model.backend().close();
        }
    }

    @Test
    void greedyTreeSpeculationEqualsPlainOnTheDemoPairOnCuda() throws Exception {
        CudaEngineTest.cuda(ai.k2j.kernels.cuda.CudaBackend.PrefillGemm.AUTO).close();
        String root = System.getProperty("k2j.repoRoot");
        Path demo = (root != null ? Path.of(root) : Path.of("").toAbsolutePath().getParent()).resolve("models/demo");
        // CUDA's tree attention reads F32 caches only (the default is BF16)
        ModelOptions options = ModelOptions.defaults().withBackend("cuda").withKvCache(ai.k2j.kernels.KvPrecision.F32);
        try (LanguageModel lm = LanguageModel.load(demo.resolve("target"), options.withDraft(demo.resolve("draft")))) {
            String text = Files.readString(demo.resolve("heldout_code.txt"), StandardCharsets.UTF_8);
            for (int start : new int[] {0, text.length() / 2}) {
                int[] ids = lm.encode(text.substring(start, Math.min(text.length(), start + 400)));
                int[] prompt = Arrays.copyOf(ids, Math.min(ids.length, 96));
                GenerationRequest plain = new GenerationRequest(prompt, 48, SamplingParams.greedy(), List.of(), true)
                        .withSpeculation(Speculation.none());
                int[] expected = lm.generate(plain, null).ids();
                for (int n : new int[] {4, 8}) {
                    GenerationResult r = lm.generate(plain.withSpeculation(Speculation.draftTree(n)), null);
                    assertArrayEquals(expected, r.ids(), "draft tree n=" + n + " on CUDA, prompt at " + start);
                    assertTrue(r.speculation().tokensPerTargetPass() > 1.5, "trees should accept: " + r.speculation());
                }
            }
        }
    }

    /** attention_tree reads float caches: a tree step over a BF16 or FP8 device cache fails naming the precision. */
    @Test
    void treeStepsOverANarrowCacheFailClearlyOnCuda() {
        CudaEngineTest.cuda(ai.k2j.kernels.cuda.CudaBackend.PrefillGemm.AUTO).close();
        int vocab = 40;
        ModelConfig c = SpecTestSupport.config(2, vocab);
        for (KvPrecision precision : List.of(KvPrecision.BF16, KvPrecision.FP8_E4M3)) {
            try (Arena arena = Arena.ofShared()) {
                Map<String, Tensor> w = SpecTestSupport.weights(c, DType.F32, 21, arena);
                ModelContext model = new ModelContext(Architectures.load(c, name -> Optional.ofNullable(w.get(name)),
                        "test-model", LanguageModel.createBackend("cuda", 2), null),
                        ModelContext.Limits.singleSequence(96), precision);
                Batch batch = model.newBatch();
                try (Sequence seq = model.newSequence()) {
                    batch.clear();
                    seq.addTo(batch, new int[] {1, 2, 3}, 0, 3, 0);
                    model.forward(batch);
                    batch.clear();
                    seq.addTree(batch, new int[] {4, 5, 6}, 0, new int[] {-1, 0, 0}, 3);
                    IllegalStateException e = assertThrows(IllegalStateException.class, () -> model.forward(batch));
                    assertTrue(e.getMessage().contains(precision.toString()), e.getMessage());
                }
                model.backend().close();
            }
        }
    }

    private static float[] linear(ModelContext model, Batch batch, int[] prompt, int[] ids, int logits) {
        try (Sequence seq = model.newSequence()) {
            batch.clear();
            seq.addTo(batch, prompt, 0, prompt.length, 0);
            model.forward(batch);
            batch.clear();
            seq.addTo(batch, ids, 0, ids.length, logits);
            return Arrays.copyOf(model.forward(batch), logits * model.vocabSize());
        }
    }

    private static void assertClose(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what);
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], 1e-3f + 1e-3f * Math.abs(expected[i]), what + " logit " + i);
        }
    }
}
