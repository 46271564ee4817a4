package ai.k2j.engine;

import ai.k2j.loaders.DType;
import ai.k2j.loaders.GenerationConfig;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.RopeScaling;
import ai.k2j.loaders.Tensor;
import ai.k2j.kernels.Batch;

import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.SplittableRandom;

/** Opens the engine package's test helpers ({@link TestModels}) to the speculative decoding tests. */
public final class SpecTestSupport {

    private SpecTestSupport() {
    }

    /** A small GQA Qwen2 config (hidden 32, 4/2 heads, head_dim 8) with the given layers and vocabulary. */
    public static ModelConfig config(int layers, int vocab) {
        return new ModelConfig("Qwen2ForCausalLM", "qwen2", 32, 48, layers, 4, 2, 8, vocab, 512, 1e-6, 10000,
                RopeScaling.NONE, true, "float32", -1, new int[] {vocab - 1});
    }

    /** Another shape (hidden 24, MQA 3/1) for drafts that differ from the target in architecture too. */
    public static ModelConfig smallDraftConfig(int vocab) {
        return new ModelConfig("Qwen2ForCausalLM", "qwen2", 24, 40, 1, 3, 1, 8, vocab, 512, 1e-6, 10000,
                RopeScaling.NONE, true, "float32", -1, new int[] {vocab - 1});
    }

    /** The same config with fewer layers: a layer-skip draft reading the target's own first layers. */
    public static ModelConfig withLayers(ModelConfig c, int layers) {
        return new ModelConfig(c.architecture(), c.modelType(), c.hiddenSize(), c.intermediateSize(), layers,
                c.numHeads(), c.numKvHeads(), c.headDim(), c.vocabSize(), c.maxPositionEmbeddings(), c.rmsNormEps(),
                c.ropeTheta(), c.ropeScaling(), c.tieWordEmbeddings(), c.torchDtype(), c.bosTokenId(),
                c.eosTokenIds());
    }

    public static Map<String, Tensor> weights(ModelConfig c, DType dtype, long seed, Arena arena) {
        return TestModels.weights(c, dtype, seed, arena);
    }

    /** Every weight of {@code w} plus Gaussian noise of {@code sigma}·(its own spread): a draft that mostly agrees. */
    public static Map<String, Tensor> noisyCopy(Map<String, Tensor> w, double sigma, long seed, Arena arena) {
        SplittableRandom rnd = new SplittableRandom(seed);
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : w.entrySet()) {
            Tensor t = e.getValue();
            float[][] m = TestModels.read(t);
            int cols = m[0].length;
            float[] flat = new float[m.length * cols];
            double sumSq = 0;
            for (int r = 0; r < m.length; r++) {
                for (int c = 0; c < cols; c++) {
                    flat[r * cols + c] = m[r][c];
                    sumSq += (double) m[r][c] * m[r][c];
                }
            }
            double scale = sigma * Math.sqrt(sumSq / flat.length);
            for (int i = 0; i < flat.length; i++) {
                flat[i] += (float) (scale * TestModels.gaussian(rnd));
            }
            out.put(e.getKey(), TestModels.tensor(e.getKey(), t.dtype(), t.shape(), flat, arena));
        }
        return out;
    }

    public static ModelContext model(ModelConfig c, Map<String, Tensor> weights, ModelContext.Limits limits,
                                   String backend) {
        return TestModels.model(c, weights, limits, backend);
    }

    /** Backends in the build: "reference", plus "cpu" once the CPU backend is merged. */
    public static List<String> backends() {
        return TestModels.backends();
    }

    public static int[] randomTokens(int n, int vocab, long seed) {
        return TestModels.randomTokens(n, vocab, seed);
    }

    /** A LanguageModel with a draft, both in memory on one reference backend; closing it closes the arena. */
    public static LanguageModel languageModel(ModelConfig c, Map<String, Tensor> w, ModelConfig draftConfig,
                                              Map<String, Tensor> draftWeights, int maxContext, String backend,
                                              Arena arena) {
        return LanguageModel.create(c, GenerationConfig.DEFAULT, name -> Optional.ofNullable(w.get(name)),
                "test-model", LanguageModel.createBackend(backend, 2), null, maxContext, null, arena::close,
                draftConfig, name -> Optional.ofNullable(draftWeights.get(name)), null);
    }

    /** The draft model behind a LanguageModel (null without one). */
    public static ModelContext draftOf(LanguageModel lm) {
        return lm.draftModel();
    }

    /** The target model behind a LanguageModel. */
    public static ModelContext targetOf(LanguageModel lm) {
        return lm.model();
    }

    /** Plain greedy decoding straight on the model (the reference speculation must reproduce). */
    public static int[] plainGreedy(ModelContext model, int[] prompt, int n) {
        Sampler sampler = new Sampler(model.vocabSize());
        DecodeLoop loop = new DecodeLoop(model, sampler);
        int[] out = new int[n];
        try (Sequence seq = model.newSequence()) {
            out[0] = loop.prefill(seq, prompt);
            for (int i = 1; i < n; i++) {
                out[i] = loop.step(out[i - 1]);
            }
        }
        return out;
    }

    /** Logits of every position of {@code ids} for a fresh sequence, prefilled in one pass per batch limit. */
    public static float[][] allLogits(ModelContext model, int[] ids) {
        int vocab = model.vocabSize();
        float[][] out = new float[ids.length][];
        Batch batch = model.newBatch();
        int chunk = model.limits().maxLogitRows();
        try (Sequence seq = model.newSequence()) {
            for (int off = 0; off < ids.length; off += chunk) {
                int count = Math.min(chunk, ids.length - off);
                batch.clear();
                seq.addTo(batch, ids, off, count, count);
                float[] logits = model.forward(batch);
                for (int i = 0; i < count; i++) {
                    out[off + i] = java.util.Arrays.copyOfRange(logits, i * vocab, (i + 1) * vocab);
                }
            }
        }
        return out;
    }

    /** The repository root (surefire sets k2j.repoRoot), else the working directory's parent. */
    public static Path repoRoot() {
        String root = System.getProperty("k2j.repoRoot");
        return root != null ? Path.of(root) : Path.of("").toAbsolutePath().getParent();
    }
}
