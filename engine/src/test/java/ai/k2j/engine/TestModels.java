package ai.k2j.engine;

import ai.k2j.kernels.ReferenceBackend;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.GenerationConfig;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.RopeScaling;
import ai.k2j.loaders.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.SplittableRandom;

/** Random small Qwen2 models built in memory (Tensor records over Arena segments), for tests. */
public final class TestModels {

    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private TestModels() {
    }

    /** A model's shape; {@link #config()} turns it into a ModelConfig. */
    public record Spec(String name, int hidden, int intermediate, int layers, int heads, int kvHeads, int headDim, int vocab,
                boolean tied, DType dtype, RopeScaling rope, double theta, int maxPositions) {

        static Spec gqa() {
            return new Spec("gqa-f32-tied", 32, 48, 2, 4, 2, 8, 64, true, DType.F32, RopeScaling.NONE, 10000, 512);
        }

        public ModelConfig config() {
            return new ModelConfig("Qwen2ForCausalLM", "qwen2", hidden, intermediate, layers, heads, kvHeads, headDim,
                    vocab, maxPositions, 1e-6, theta, rope, tied, "float32", -1, new int[] {vocab - 1});
        }

        Spec withVocab(int v) {
            return new Spec(name, hidden, intermediate, layers, heads, kvHeads, headDim, v, tied, dtype, rope, theta,
                    maxPositions);
        }

        @Override
        public String toString() {
            return name;
        }
    }

    public static RopeScaling yarn(double factor, int originalMax) {
        return new RopeScaling("yarn", factor, originalMax, Double.NaN, Double.NaN, Double.NaN, Double.NaN,
                Double.NaN, true);
    }

    public static RopeScaling linear(double factor) {
        return new RopeScaling("linear", factor, 0, Double.NaN, Double.NaN, Double.NaN, Double.NaN, Double.NaN, true);
    }

    /** Every weight of a Qwen2 model with HF names, random but well-scaled, encoded in {@code dtype}. */
    static Map<String, Tensor> weights(ModelConfig c, DType dtype, long seed, Arena arena) {
        SplittableRandom rnd = new SplittableRandom(seed);
        Map<String, Tensor> w = new LinkedHashMap<>();
        int h = c.hiddenSize();
        int q = c.qDim();
        int kv = c.kvDim();
        int ff = c.intermediateSize();
        int v = c.vocabSize();
        put(w, arena, rnd, dtype, "model.embed_tokens.weight", 1.0, 0, v, h);
        for (int l = 0; l < c.numLayers(); l++) {
            String p = "model.layers." + l + ".";
            put(w, arena, rnd, dtype, p + "input_layernorm.weight", 0.1, 1, h);
            put(w, arena, rnd, dtype, p + "self_attn.q_proj.weight", 1.5 / Math.sqrt(h), 0, q, h);
            put(w, arena, rnd, dtype, p + "self_attn.k_proj.weight", 1.5 / Math.sqrt(h), 0, kv, h);
            put(w, arena, rnd, dtype, p + "self_attn.v_proj.weight", 1.0 / Math.sqrt(h), 0, kv, h);
            put(w, arena, rnd, dtype, p + "self_attn.q_proj.bias", 0.2, 0, q);
            put(w, arena, rnd, dtype, p + "self_attn.k_proj.bias", 0.2, 0, kv);
            put(w, arena, rnd, dtype, p + "self_attn.v_proj.bias", 0.2, 0, kv);
            put(w, arena, rnd, dtype, p + "self_attn.o_proj.weight", 1.0 / Math.sqrt(q), 0, h, q);
            put(w, arena, rnd, dtype, p + "post_attention_layernorm.weight", 0.1, 1, h);
            put(w, arena, rnd, dtype, p + "mlp.gate_proj.weight", 1.0 / Math.sqrt(h), 0, ff, h);
            put(w, arena, rnd, dtype, p + "mlp.up_proj.weight", 1.0 / Math.sqrt(h), 0, ff, h);
            put(w, arena, rnd, dtype, p + "mlp.down_proj.weight", 1.0 / Math.sqrt(ff), 0, h, ff);
        }
        put(w, arena, rnd, dtype, "model.norm.weight", 0.1, 1, h);
        if (!c.tieWordEmbeddings()) {
            put(w, arena, rnd, dtype, "lm_head.weight", 2.0 / Math.sqrt(h), 0, v, h);
        }
        return w;
    }

    private static void put(Map<String, Tensor> w, Arena arena, SplittableRandom rnd, DType dtype, String name,
                            double scale, double mean, long... shape) {
        long n = 1;
        for (long s : shape) {
            n *= s;
        }
        float[] values = new float[(int) n];
        for (int i = 0; i < n; i++) {
            values[i] = (float) (mean + scale * gaussian(rnd));
        }
        w.put(name, tensor(name, dtype, shape, values, arena));
    }

    static Tensor tensor(String name, DType dtype, long[] shape, float[] values, Arena arena) {
        MemorySegment seg = arena.allocate(dtype.bytesFor(values.length), 8);
        for (int i = 0; i < values.length; i++) {
            switch (dtype) {
                case F32 -> seg.set(F32, 4L * i, values[i]);
                case F16 -> seg.set(I16, 2L * i, Float.floatToFloat16(values[i]));
                case BF16 -> seg.set(I16, 2L * i, ReferenceBackend.floatToBf16(values[i]));
                default -> throw new IllegalArgumentException(dtype.toString());
            }
        }
        return new Tensor(name, dtype, shape, seg);
    }

    static double gaussian(SplittableRandom rnd) {
        // Box-Muller; deterministic for a seed
        double u = 1 - rnd.nextDouble();
        double v = rnd.nextDouble();
        return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    }

    static int[] randomTokens(int n, int vocab, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = rnd.nextInt(vocab);
        }
        return t;
    }

    /** A ModelContext over the reference backend; the arena must outlive it. */
    static ModelContext model(ModelConfig c, Map<String, Tensor> weights, ModelContext.Limits limits) {
        return model(c, weights, limits, "reference");
    }

    /** A ModelContext over the named backend (closed by closing {@code model.backend()}). */
    static ModelContext model(ModelConfig c, Map<String, Tensor> weights, ModelContext.Limits limits, String backend) {
        return ModelContext.load(c, name -> Optional.ofNullable(weights.get(name)), "test-model",
                LanguageModel.createBackend(backend, 2), limits, null);
    }

    /** "reference", plus "cpu" once the CPU backend is in the build. */
    static List<String> backends() {
        List<String> out = new ArrayList<>(List.of("reference"));
        try {
            Class.forName(LanguageModel.CPU_BACKEND_CLASS);
            out.add("cpu");
        } catch (ClassNotFoundException e) {
            // not merged yet
        }
        return out;
    }

    static LanguageModel languageModel(ModelConfig c, Map<String, Tensor> weights, int maxContext, Arena arena) {
        return LanguageModel.create(c, GenerationConfig.DEFAULT, name -> Optional.ofNullable(weights.get(name)),
                "test-model", new ReferenceBackend(), null, maxContext, null, arena::close);
    }

    /** Reads a tensor as float[rows][cols] (or [1][n] for 1-D), decoding the dtype independently of main code. */
    static float[][] read(Tensor t) {
        int rows = t.rank() == 1 ? 1 : (int) t.dim(0);
        int cols = (int) t.dim(t.rank() - 1);
        float[][] m = new float[rows][cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                long i = (long) r * cols + c;
                m[r][c] = switch (t.dtype()) {
                    case F32 -> t.data().get(F32, 4 * i);
                    case F16 -> Float.float16ToFloat(t.data().get(I16, 2 * i));
                    case BF16 -> Float.intBitsToFloat((t.data().get(I16, 2 * i) & 0xFFFF) << 16);
                    default -> throw new IllegalArgumentException(t.dtype().toString());
                };
            }
        }
        return m;
    }
}
