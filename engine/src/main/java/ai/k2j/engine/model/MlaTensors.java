package ai.k2j.engine.model;

import ai.k2j.loaders.DType;
import ai.k2j.loaders.DeepseekConfig;
import ai.k2j.loaders.Fp8Blocks;
import ai.k2j.loaders.ModelFormatException;
import ai.k2j.loaders.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * Load-time tensor work for {@link DeepseekV3}: looking weights up with errors that name the config fields
 * behind their shapes, FP8 block dequantization, and the row orders and absorbed matrices MLA's decode needs.
 * Tensors made here live in automatic arenas (freed when no weight refers to them).
 */
final class MlaTensors {

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final WeightMap weights;
    private final DeepseekConfig config;

    MlaTensors(WeightMap weights, DeepseekConfig config) {
        this.weights = weights;
        this.config = config;
    }

    /**
     * The tensor {@code name} of exactly {@code shape}; {@code fields} names the config.json fields that imply the
     * shape (e.g. "kv_lora_rank=512, qk_rope_head_dim=64, hidden_size=7168"). An F8_E4M3 tensor is returned
     * dequantized to float32 with its {@code <name>_scale_inv} ({@link Fp8Blocks}).
     */
    Tensor get(String name, String fields, long... shape) {
        Tensor t = weights.lookup().apply(name).orElseThrow(() -> new ModelFormatException(weights.source()
                + ": missing tensor '" + name + "' (config.json: " + fields + ")"));
        if (!Arrays.equals(t.shape(), shape)) {
            throw new ModelFormatException(weights.source() + ": tensor '" + name + "' has shape "
                    + Arrays.toString(t.shape()) + ", but config.json (" + fields + ") implies "
                    + Arrays.toString(shape));
        }
        if (t.dtype() != DType.F8_E4M3) {
            return t;
        }
        if (!config.isFp8()) {
            throw new ModelFormatException(weights.source() + ": tensor '" + name + "' is F8_E4M3, but config.json "
                    + "has no quantization_config (fp8, weight_block_size) to say how its scales are blocked");
        }
        String scaleName = name + "_scale_inv";
        Tensor scale = weights.lookup().apply(scaleName).orElseThrow(() -> new ModelFormatException(
                weights.source() + ": missing tensor '" + scaleName + "': FP8 weight '" + name + "' needs its "
                        + "block scales (quantization_config.weight_block_size [" + config.fp8BlockRows() + ", "
                        + config.fp8BlockCols() + "])"));
        return Fp8Blocks.dequantize(t, scale, config.fp8BlockRows(), config.fp8BlockCols(), weights.source());
    }

    /** A 1-D float vector read to the host (the router's e_score_correction_bias), F32, BF16 or F16. */
    float[] hostVector(String name, String fields, int length) {
        Tensor t = get(name, fields, length);
        float[] out = new float[length];
        for (int i = 0; i < length; i++) {
            out[i] = element(t, i);
        }
        return out;
    }

    /**
     * The query projection's rows reordered for MLA on the backend: HF's per-head [nope | rope] rows become all
     * heads' nope rows, then all heads' rope rows, so the rope parts form one view RoPE runs over. With
     * {@code rope_interleave} the rope rows are also de-interleaved (even then odd dimensions), which turns
     * DeepSeek's interleaved pairs into the rotate-half layout: both q and k get the same permutation, so their
     * dot products are unchanged.
     */
    Tensor queryRows(Tensor q, int heads) {
        int nope = config.qkNopeHeadDim();
        int rope = config.qkRopeHeadDim();
        int qk = config.qkHeadDim();
        int[] order = new int[heads * qk];
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < nope; i++) {
                order[h * nope + i] = h * qk + i;
            }
            for (int j = 0; j < rope; j++) {
                order[heads * nope + h * rope + j] = h * qk + nope + ropeSource(j);
            }
        }
        return permuteRows(q, order);
    }

    /** kv_a_proj_with_mqa's rows: c_kv's as stored, the shared rope key's de-interleaved like the queries'. */
    Tensor latentRows(Tensor kvA) {
        int lora = config.kvLoraRank();
        int[] order = new int[config.latentWidth()];
        for (int i = 0; i < lora; i++) {
            order[i] = i;
        }
        for (int j = 0; j < config.qkRopeHeadDim(); j++) {
            order[lora + j] = lora + ropeSource(j);
        }
        return permuteRows(kvA, order);
    }

    /** Which stored rope dimension lands at position j (HF's view(d/2, 2).transpose when interleaved). */
    private int ropeSource(int j) {
        int half = config.qkRopeHeadDim() / 2;
        if (!config.ropeInterleave()) {
            return j;
        }
        return j < half ? 2 * j : 2 * (j - half) + 1;
    }

    /**
     * W_UKᵀ per head, from kv_b_proj [heads·(nope + v), kv_lora]: row h·kv_lora + c holds kv_b[h·(nope+v) + i, c]
     * for i in [0, nope), so q_latent_h = W_UK_hᵀ·q_nope_h is one {@code headMatmul}. Kept in kv_b's dtype when
     * that is a float type (a transpose is exact), float32 otherwise.
     */
    Tensor absorbedKeys(Tensor kvB, int heads) {
        int lora = config.kvLoraRank();
        int nope = config.qkNopeHeadDim();
        int per = nope + config.vHeadDim();
        DType dtype = outputType(kvB);
        MemorySegment out = Arena.ofAuto().allocate((long) heads * lora * nope * bytes(dtype), 8);
        for (int h = 0; h < heads; h++) {
            for (int c = 0; c < lora; c++) {
                for (int i = 0; i < nope; i++) {
                    copyElement(kvB, ((long) h * per + i) * lora + c, out, dtype, ((long) h * lora + c) * nope + i);
                }
            }
        }
        return new Tensor(kvB.name() + "[absorbed keys]", dtype, new long[] {(long) heads * lora, nope}, out);
    }

    /** W_UV per head: kv_b_proj's v rows, [heads·v, kv_lora], so out_h = W_UV_h·o_latent_h is one headMatmul. */
    Tensor absorbedValues(Tensor kvB, int heads) {
        int nope = config.qkNopeHeadDim();
        int v = config.vHeadDim();
        int[] order = new int[heads * v];
        for (int h = 0; h < heads; h++) {
            for (int j = 0; j < v; j++) {
                order[h * v + j] = h * (nope + v) + nope + j;
            }
        }
        return permuteRows(kvB, order);
    }

    /** A copy of t whose row i is t's row order[i] (any dtype whose rows are whole blocks). */
    static Tensor permuteRows(Tensor t, int[] order) {
        long rowBytes = t.dtype().bytesFor(t.dim(1));
        MemorySegment out = Arena.ofAuto().allocate(rowBytes * order.length, 8);
        for (int i = 0; i < order.length; i++) {
            MemorySegment.copy(t.data(), order[i] * rowBytes, out, i * rowBytes, rowBytes);
        }
        return new Tensor(t.name(), t.dtype(), new long[] {order.length, t.dim(1)}, out);
    }

    private static DType outputType(Tensor t) {
        return switch (t.dtype()) {
            case F32, BF16, F16 -> t.dtype();
            default -> throw new ModelFormatException("tensor '" + t.name() + "' is " + t.dtype()
                    + "; kv_b_proj must be F32, BF16, F16 or F8_E4M3 (k2j transposes it for the absorbed decode)");
        };
    }

    private static int bytes(DType d) {
        return d == DType.F32 ? 4 : 2;
    }

    private static void copyElement(Tensor src, long index, MemorySegment dst, DType dtype, long dstIndex) {
        if (dtype == DType.F32) {
            dst.set(F32, 4 * dstIndex, src.data().get(F32, 4 * index));
        } else {
            dst.set(I16, 2 * dstIndex, src.data().get(I16, 2 * index));
        }
    }

    private static float element(Tensor t, long i) {
        return switch (t.dtype()) {
            case F32 -> t.data().get(F32, 4 * i);
            case BF16 -> Float.intBitsToFloat((t.data().get(I16, 2 * i) & 0xFFFF) << 16);
            case F16 -> Float.float16ToFloat(t.data().get(I16, 2 * i));
            default -> throw new ModelFormatException("tensor '" + t.name() + "' is " + t.dtype()
                    + "; expected F32, BF16 or F16");
        };
    }
}
