package ai.k2j.loaders;

import com.fasterxml.jackson.databind.JsonNode;

import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Map;
import java.util.TreeMap;

/**
 * One AWQ or GPTQ linear layer as its checkpoint stores it (zero-copy slices of the safetensors mapping), with the
 * weight it stands for, {@code W[n, k] = (q[k, n] − zero[g(k), n]) · scale[g(k), n]} for output feature n and
 * input k, computed in float32 ((q − zero) is an exact small integer, then one rounding).
 *
 * <ul>
 *   <li><b>AWQ</b> (AutoAWQ's GEMM layout, {@code version: "gemm"}): {@code qweight} int32 [in, out/8], each int
 *       holding 8 output columns' 4-bit values in AWQ's order (nibble i holds column {@code ORDER[i]} of its 8:
 *       0, 2, 4, 6, 1, 3, 5, 7); {@code qzeros} int32 [in/group, out/8] packed the same way; {@code scales}
 *       f16 [in/group, out]; group g(k) = k / group_size.</li>
 *   <li><b>GPTQ</b> (AutoGPTQ / exllama packing of the published Qwen checkpoints): {@code qweight} int32
 *       [in·bits/32, out], each int holding 32/bits consecutive inputs of one column (lowest bits first);
 *       {@code qzeros} int32 [groups, out·bits/32] packed along the columns the same way, stored as zero − 1
 *       ({@code checkpoint_format} "gptq", the default) or as the zero ("gptq_v2"); {@code scales} f16
 *       [groups, out]; {@code g_idx} int32 [in] gives g(k) (with {@code desc_act} an arbitrary grouping; absent
 *       means k / group_size).</li>
 * </ul>
 */
public record PackedInt(Method method, int bits, int groupSize, int inFeatures, int outFeatures, boolean zeroMinusOne,
                        Tensor qweight, Tensor qzeros, Tensor scales, Tensor gIdx) {

    public enum Method { AWQ, GPTQ }

    /** AWQ's nibble order: nibble i of a packed int holds column ORDER[i] of its eight. */
    public static final int[] AWQ_ORDER = {0, 2, 4, 6, 1, 3, 5, 7};
    /** Column j of eight sits in nibble AWQ_NIBBLE[j]. */
    public static final int[] AWQ_NIBBLE = {0, 4, 1, 5, 2, 6, 3, 7};

    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    public int groups() {
        return scales.shape()[0] > Integer.MAX_VALUE ? -1 : (int) scales.dim(0);
    }

    /** The packed integer q[k, n]. */
    public int q(int k, int n) {
        if (method == Method.AWQ) {
            int word = qweight.data().getAtIndex(I32, (long) k * (outFeatures / 8) + n / 8);
            return (word >>> (4 * AWQ_NIBBLE[n % 8])) & 0xF;
        }
        int perInt = 32 / bits;
        int word = qweight.data().getAtIndex(I32, (long) (k / perInt) * outFeatures + n);
        return (word >>> (bits * (k % perInt))) & ((1 << bits) - 1);
    }

    /** The zero of group g, column n (GPTQ's stored zero − 1 already corrected). */
    public int zero(int g, int n) {
        if (method == Method.AWQ) {
            int word = qzeros.data().getAtIndex(I32, (long) g * (outFeatures / 8) + n / 8);
            return (word >>> (4 * AWQ_NIBBLE[n % 8])) & 0xF;
        }
        int perInt = 32 / bits;
        int word = qzeros.data().getAtIndex(I32, (long) g * (outFeatures / perInt) + n / perInt);
        int z = (word >>> (bits * (n % perInt))) & ((1 << bits) - 1);
        return zeroMinusOne ? z + 1 : z;
    }

    /** The scale of group g, column n, as float. */
    public float scale(int g, int n) {
        short bits16 = scales.data().getAtIndex(I16, (long) g * outFeatures + n);
        return scales.dtype() == DType.BF16 ? Float.intBitsToFloat(bits16 << 16) : Float.float16ToFloat(bits16);
    }

    /** The group of input k. */
    public int group(int k) {
        return gIdx == null ? k / groupSize : gIdx.data().getAtIndex(I32, k);
    }

    /** The config.json {@code quantization_config} k2j reads, or null when the model is not AWQ/GPTQ. */
    record Config(Method method, int bits, int groupSize, boolean zeroMinusOne) {}

    static Config config(JsonNode root, String src) {
        JsonNode q = root.get("quantization_config");
        if (q == null || q.isNull()) {
            return null;
        }
        String method = q.path("quant_method").asText("");
        int bits = q.path("bits").asInt(q.path("w_bit").asInt(4));
        int group = q.path("group_size").asInt(q.path("q_group_size").asInt(128));
        switch (method) {
            case "awq" -> {
                String version = q.path("version").asText("gemm").toLowerCase(java.util.Locale.ROOT);
                if (!version.equals("gemm")) {
                    throw new ModelFormatException(src + ": quantization_config.version '" + version
                            + "' is not supported (k2j reads AWQ's GEMM layout)");
                }
                if (bits != 4) {
                    throw new ModelFormatException(src + ": quantization_config.bits " + bits + " is not supported for"
                            + " AWQ (4)");
                }
                if (!q.path("zero_point").asBoolean(true)) {
                    throw new ModelFormatException(src + ": quantization_config.zero_point false is not supported");
                }
                checkGroup(group, src);
                return new Config(Method.AWQ, 4, group, false);
            }
            case "gptq" -> {
                if (bits != 4 && bits != 8) {
                    throw new ModelFormatException(src + ": quantization_config.bits " + bits + " is not supported for"
                            + " GPTQ (4 or 8)");
                }
                String format = q.path("checkpoint_format").asText("gptq");
                if (!format.equals("gptq") && !format.equals("gptq_v2")) {
                    throw new ModelFormatException(src + ": quantization_config.checkpoint_format '" + format
                            + "' is not supported (gptq, gptq_v2)");
                }
                if (group != -1) {
                    checkGroup(group, src);
                }
                return new Config(Method.GPTQ, bits, group, format.equals("gptq"));
            }
            case "fp8" -> {
                return null; // block FP8 (DeepSeek-V3) is no packed-int layout: DeepseekConfig reads and checks it
            }
            default -> throw new ModelFormatException(src + ": quantization_config.quant_method '" + method
                    + "' is not supported (k2j reads awq and gptq)");
        }
    }

    private static void checkGroup(int group, String src) {
        if (group <= 0 || group % 8 != 0) {
            throw new ModelFormatException(src + ": quantization_config.group_size " + group
                    + " must be a positive multiple of 8 (or -1 for GPTQ's one group)");
        }
    }

    /**
     * The checkpoint's tensors plus, for every {@code X.qweight}, the layer's weight as {@code X.weight} (a packed
     * dtype carrying this record), after checking every shape, dtype and group size against the config; the
     * source tensors stay listed as they are.
     */
    static Map<String, Tensor> addPackedWeights(Map<String, Tensor> tensors, Config config, String src) {
        Map<String, Tensor> out = new TreeMap<>(tensors);
        for (Tensor qweight : tensors.values()) {
            if (!qweight.name().endsWith(".qweight")) {
                continue;
            }
            String layer = qweight.name().substring(0, qweight.name().length() - ".qweight".length());
            PackedInt p = of(layer, tensors, config, src);
            DType dtype = p.method == Method.AWQ ? DType.AWQ_INT4 : p.bits == 4 ? DType.GPTQ_INT4 : DType.GPTQ_INT8;
            String name = layer + ".weight";
            if (tensors.containsKey(name)) {
                throw new ModelFormatException(src + ": layer '" + layer + "' has both '" + name + "' and a qweight");
            }
            out.put(name, new Tensor(name, dtype, new long[] {p.outFeatures, p.inFeatures}, qweight.data(), p));
        }
        return out;
    }

    private static Tensor need(Map<String, Tensor> tensors, String name, String layer, String src) {
        Tensor t = tensors.get(name);
        if (t == null) {
            throw new ModelFormatException(src + ": quantized layer '" + layer + "' has no '" + name + "'");
        }
        return t;
    }

    private static void expect(Tensor t, DType dtype, long rows, long cols, String what, String src) {
        if (t.rank() != 2 || t.dim(0) != rows || t.dim(1) != cols) {
            throw new ModelFormatException(src + ": tensor '" + t.name() + "' has shape " + java.util.Arrays.toString(
                    t.shape()) + ", but " + what + " needs [" + rows + ", " + cols + "]");
        }
        if (t.dtype() != dtype) {
            throw new ModelFormatException(src + ": tensor '" + t.name() + "' is " + t.dtype() + ", expected " + dtype);
        }
    }

    static PackedInt of(String layer, Map<String, Tensor> tensors, Config c, String src) {
        Tensor qweight = need(tensors, layer + ".qweight", layer, src);
        Tensor qzeros = need(tensors, layer + ".qzeros", layer, src);
        Tensor scales = need(tensors, layer + ".scales", layer, src);
        if (qweight.rank() != 2 || qweight.dtype() != DType.I32) {
            throw new ModelFormatException(src + ": tensor '" + qweight.name() + "' must be a 2-D I32 tensor, is "
                    + qweight);
        }
        if (scales.rank() != 2 || (scales.dtype() != DType.F16 && scales.dtype() != DType.BF16)) {
            throw new ModelFormatException(src + ": tensor '" + scales.name() + "' must be a 2-D F16 tensor, is " + scales);
        }
        int in;
        int out;
        int perInt = 32 / c.bits();
        if (c.method() == Method.AWQ) {
            in = (int) qweight.dim(0);
            out = (int) qweight.dim(1) * 8;
        } else {
            in = (int) qweight.dim(0) * perInt;
            out = (int) qweight.dim(1);
        }
        int group = c.groupSize() == -1 ? in : c.groupSize();
        if (in % group != 0) {
            throw new ModelFormatException(src + ": layer '" + layer + "' has " + in + " inputs, which group_size "
                    + group + " does not divide");
        }
        int groups = in / group;
        Tensor gIdx = tensors.get(layer + ".g_idx");
        if (c.method() == Method.AWQ) {
            expect(scales, scales.dtype(), groups, out, "AWQ scales of " + in + " inputs in groups of " + group, src);
            expect(qzeros, DType.I32, groups, out / 8, "AWQ qzeros", src);
            gIdx = null;
        } else {
            // with desc_act the groups are whatever g_idx says; scales still has one row per group
            groups = (int) scales.dim(0);
            if (gIdx == null && (long) groups * group != in) {
                throw new ModelFormatException(src + ": tensor '" + scales.name() + "' has " + groups + " groups, but "
                        + in + " inputs in groups of " + group + " need " + (in / group) + " (and there is no g_idx)");
            }
            expect(scales, scales.dtype(), groups, out, "GPTQ scales", src);
            if (out % perInt != 0) {
                throw new ModelFormatException(src + ": layer '" + layer + "' has " + out + " outputs, not a multiple"
                        + " of the " + perInt + " values a packed zero int holds");
            }
            expect(qzeros, DType.I32, groups, out / perInt, "GPTQ qzeros", src);
            if (gIdx != null) {
                if (gIdx.rank() != 1 || gIdx.dim(0) != in || gIdx.dtype() != DType.I32) {
                    throw new ModelFormatException(src + ": tensor '" + gIdx.name() + "' must be I32 [" + in + "], is "
                            + gIdx);
                }
                for (int k = 0; k < in; k++) {
                    int g = gIdx.data().getAtIndex(I32, k);
                    if (g < 0 || g >= groups) {
                        throw new ModelFormatException(src + ": tensor '" + gIdx.name() + "'[" + k + "] = " + g
                                + " is not a group of the " + groups + " in '" + scales.name() + "'");
                    }
                }
            }
        }
        return new PackedInt(c.method(), c.bits(), group, in, out, c.method() == Method.GPTQ && c.zeroMinusOne(),
                qweight, qzeros, scales, gIdx);
    }
}
