package ai.k2j.bench;

import ai.k2j.engine.ModelContext;
import ai.k2j.kernels.cpu.CpuBackend;
import ai.k2j.loaders.Checkpoint;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.RopeScaling;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;

/**
 * Random weights for the benchmarks, made in memory (no files): matrices of a given shape, or a whole Qwen2 model
 * with Qwen2.5-0.5B's shape (hidden 896, 24 layers, 14/2 heads, intermediate 4864, vocab 151936, tied). Values are
 * N(0, 0.02)-ish bf16, norms 1: the speed of every kernel is independent of the values.
 */
final class SyntheticWeights {
    private SyntheticWeights() {
    }

    static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;

    /** A [rows, cols] tensor of random values in dtype (F32, BF16 or F16). */
    static Tensor matrix(String name, DType dtype, int rows, int cols, long seed, Arena arena) {
        long n = (long) rows * cols;
        MemorySegment seg = arena.allocate(dtype.bytesFor(n), 64);
        long state = seed * 0x9E3779B97F4A7C15L + 1;
        for (long i = 0; i < n; i++) {
            state = state * 6364136223846793005L + 1442695040888963407L;
            float v = ((state >>> 40) / (float) (1 << 24) - 0.5f) * 0.07f; // uniform, std 0.02
            switch (dtype) {
                case F32 -> seg.set(F32, 4 * i, v);
                case BF16 -> seg.set(I16, 2 * i, (short) (Float.floatToRawIntBits(v) >>> 16));
                case F16 -> seg.set(I16, 2 * i, Float.floatToFloat16(v));
                default -> throw new IllegalArgumentException("random " + dtype + " is not supported");
            }
        }
        return new Tensor(name, dtype, new long[] {rows, cols}, seg);
    }

    static Tensor vector(String name, int n, float value, Arena arena) {
        MemorySegment seg = arena.allocate(4L * n, 64);
        for (int i = 0; i < n; i++) {
            seg.set(F32, 4L * i, value);
        }
        return new Tensor(name, DType.F32, new long[] {n}, seg);
    }

    /** Qwen2.5-0.5B's shape, with {@code layers} decoder layers. */
    static ModelConfig qwen05b(int layers) {
        return new ModelConfig("Qwen2ForCausalLM", "qwen2", 896, 4864, layers, 14, 2, 64, 151936, 32768, 1e-6, 1e6,
                RopeScaling.NONE, true, "bfloat16", 151643, new int[] {151645});
    }

    /** Every tensor of a Qwen2 model with HF names, BF16 matrices, F32 norms (1) and biases (0). */
    static Map<String, Tensor> model(ModelConfig c, Arena arena) {
        Map<String, Tensor> w = new HashMap<>();
        int h = c.hiddenSize();
        int q = c.qDim();
        int kv = c.kvDim();
        int ff = c.intermediateSize();
        long seed = 1;
        w.put("model.embed_tokens.weight", matrix("model.embed_tokens.weight", DType.BF16, c.vocabSize(), h, seed++,
                arena));
        for (int l = 0; l < c.numLayers(); l++) {
            String p = "model.layers." + l + ".";
            w.put(p + "input_layernorm.weight", vector(p + "input_layernorm.weight", h, 1, arena));
            w.put(p + "post_attention_layernorm.weight", vector(p + "post_attention_layernorm.weight", h, 1, arena));
            w.put(p + "self_attn.q_proj.weight", matrix(p + "self_attn.q_proj.weight", DType.BF16, q, h, seed++, arena));
            w.put(p + "self_attn.k_proj.weight", matrix(p + "self_attn.k_proj.weight", DType.BF16, kv, h, seed++, arena));
            w.put(p + "self_attn.v_proj.weight", matrix(p + "self_attn.v_proj.weight", DType.BF16, kv, h, seed++, arena));
            w.put(p + "self_attn.q_proj.bias", vector(p + "self_attn.q_proj.bias", q, 0, arena));
            w.put(p + "self_attn.k_proj.bias", vector(p + "self_attn.k_proj.bias", kv, 0, arena));
            w.put(p + "self_attn.v_proj.bias", vector(p + "self_attn.v_proj.bias", kv, 0, arena));
            w.put(p + "self_attn.o_proj.weight", matrix(p + "self_attn.o_proj.weight", DType.BF16, h, q, seed++, arena));
            w.put(p + "mlp.gate_proj.weight", matrix(p + "mlp.gate_proj.weight", DType.BF16, ff, h, seed++, arena));
            w.put(p + "mlp.up_proj.weight", matrix(p + "mlp.up_proj.weight", DType.BF16, ff, h, seed++, arena));
            w.put(p + "mlp.down_proj.weight", matrix(p + "mlp.down_proj.weight", DType.BF16, h, ff, seed++, arena));
        }
        w.put("model.norm.weight", vector("model.norm.weight", h, 1, arena));
        return w;
    }

    /**
     * A ModelContext on a CpuBackend: from {@code dir} when given (any HF-style checkpoint, e.g. from
     * {@code k2j synth}), else the in-memory Qwen2.5-0.5B shape with {@code layers} layers.
     *
     * @param format null for the weights' own dtype, or q8_0 / q4_0
     */
    static ModelContext load(String dir, int layers, WeightFormat format, int threads, int context, Arena arena) {
        CpuBackend backend = new CpuBackend(threads);
        ModelContext.Limits limits = ModelContext.Limits.singleSequence(context);
        if (dir != null && !dir.isBlank()) {
            Checkpoint ckpt = Checkpoint.open(Path.of(dir)); // mapped for the life of the benchmark process
            return ModelContext.load(ckpt.config(), ckpt::find, dir, backend, limits, format);
        }
        ModelConfig c = qwen05b(layers);
        Map<String, Tensor> w = model(c, arena);
        return ModelContext.load(c, name -> Optional.ofNullable(w.get(name)), "synthetic qwen2.5-0.5b", backend, limits,
                format);
    }

    /** "bf16" (or "native") keeps the weights' dtype; q8_0 / q4_0 quantize at load. */
    static WeightFormat format(String weights) {
        return weights.equalsIgnoreCase("bf16") ? WeightFormat.NATIVE : WeightFormat.parse(weights);
    }
}
