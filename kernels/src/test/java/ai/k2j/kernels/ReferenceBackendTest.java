package ai.k2j.kernels;

import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelFormatException;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ReferenceBackendTest {

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Arena arena = Arena.ofConfined();
    private final ReferenceBackend backend = new ReferenceBackend();

    @AfterEach
    void close() {
        backend.close();
        arena.close();
    }

    private Tensor f32(String name, long[] shape, float... values) {
        MemorySegment seg = arena.allocate(4L * values.length);
        for (int i = 0; i < values.length; i++) {
            seg.set(F32, 4L * i, values[i]);
        }
        return new Tensor(name, DType.F32, shape, seg);
    }

    private Tensor half(String name, DType dtype, long[] shape, float... values) {
        MemorySegment seg = arena.allocate(2L * values.length);
        for (int i = 0; i < values.length; i++) {
            seg.set(I16, 2L * i, dtype == DType.F16 ? Float.floatToFloat16(values[i])
                    : ReferenceBackend.floatToBf16(values[i]));
        }
        return new Tensor(name, dtype, shape, seg);
    }

    private float[] download(Buffer b, int n) {
        float[] out = new float[n];
        backend.download(b, 0, out, 0, n);
        return out;
    }

    private Buffer upload(float... values) {
        Tensor t = f32("x", new long[] {values.length}, values);
        return backend.vector(List.of(t));
    }

    @Test
    void bfloat16ConversionRoundsToNearestEven() {
        assertEquals(1f, ReferenceBackend.bf16ToFloat((short) 0x3F80));
        assertEquals(-2f, ReferenceBackend.bf16ToFloat((short) 0xC000));
        assertEquals((short) 0x3F80, ReferenceBackend.floatToBf16(Float.intBitsToFloat(0x3F808000)), "tie to even");
        assertEquals((short) 0x3F82, ReferenceBackend.floatToBf16(Float.intBitsToFloat(0x3F818000)), "tie to even");
        assertEquals((short) 0x3F81, ReferenceBackend.floatToBf16(Float.intBitsToFloat(0x3F808001)), "above half");
    }

    /** Stacked parts of every plain dtype give x·Wᵀ + b, row by row in part order. */
    @Test
    void matmulOverStackedPartsAndDtypes() {
        float[] a = {1, 2, 3, 4, 5, 6};       // [2, 3]
        float[] b = {0.5f, -1, 2};             // [1, 3]
        float[] x = {1, 0, -1, 2, 1, 0.25f};   // [2, 3]
        float[] bias = {0.5f, 1, -1};
        for (DType d : new DType[] {DType.F32, DType.F16, DType.BF16}) {
            Tensor ta = d == DType.F32 ? f32("a", new long[] {2, 3}, a) : half("a", d, new long[] {2, 3}, a);
            Tensor tb = d == DType.F32 ? f32("b", new long[] {1, 3}, b) : half("b", d, new long[] {1, 3}, b);
            Weight w = backend.matrix(List.of(ta, tb), null);
            assertEquals(3, w.rows());
            assertEquals(d, w.dtype());
            Buffer out = backend.allocate(6);
            backend.matmul(w, upload(bias), upload(x), 2, out);
            float[] expected = {1 - 3 + 0.5f, 4 - 6 + 1, 0.5f - 2 - 1, 2 + 2 + 0.75f + 0.5f, 8 + 5 + 1.5f + 1,
                    1 - 1 + 0.5f - 1};
            assertArrayEquals(expected, download(out, 6), 1e-6f, d.toString());
        }
    }

    @Test
    void quantizedRowsDecodeAsLlamaCppBlocks() {
        // Q8_0: f16 scale 0.5, q_j = j − 16
        MemorySegment q8 = arena.allocate(34);
        q8.set(I16, 0, Float.floatToFloat16(0.5f));
        for (int j = 0; j < 32; j++) {
            q8.set(ValueLayout.JAVA_BYTE, 2 + j, (byte) (j - 16));
        }
        // Q4_0: f16 scale 2, byte j = (j) | (15 − j) << 4 → value j = 2·(j − 8), value 16 + j = 2·(7 − j)
        MemorySegment q4 = arena.allocate(18);
        q4.set(I16, 0, Float.floatToFloat16(2f));
        for (int j = 0; j < 16; j++) {
            q4.set(ValueLayout.JAVA_BYTE, 2 + j, (byte) (j | ((15 - j) << 4)));
        }
        Weight w8 = backend.matrix(List.of(new Tensor("q8", DType.Q8_0, new long[] {1, 32}, q8)), null);
        Weight w4 = backend.matrix(List.of(new Tensor("q4", DType.Q4_0, new long[] {1, 32}, q4)), null);
        Buffer out = backend.allocate(32);
        for (int i = 0; i < 32; i++) {
            // one-hot x picks column i
            float[] x = new float[32];
            x[i] = 1;
            Buffer xb = upload(x);
            backend.matmul(w8, null, xb, 1, out);
            assertEquals(0.5f * (i - 16), download(out, 1)[0], "q8 column " + i);
            backend.matmul(w4, null, xb, 1, out);
            float expected4 = i < 16 ? 2f * (i - 8) : 2f * (7 - (i - 16));
            assertEquals(expected4, download(out, 1)[0], "q4 column " + i);
        }
        assertEquals(34, w8.byteSize());
        assertEquals(18, w4.byteSize());
    }

    @Test
    void quantizingAtLoadFollowsLlamaCppErrorBounds() {
        float[] row = new float[64];
        for (int i = 0; i < 64; i++) {
            row[i] = (float) Math.sin(i * 0.7) * (i < 32 ? 3 : 0.01f);
        }
        Tensor t = f32("w", new long[] {1, 64}, row);
        Weight q8 = backend.matrix(List.of(t), WeightFormat.Q8_0);
        Weight q4 = backend.matrix(List.of(t), WeightFormat.Q4_0);
        assertEquals(DType.Q8_0, q8.dtype());
        assertEquals(DType.Q4_0, q4.dtype());
        Buffer out = backend.allocate(1);
        for (int i = 0; i < 64; i++) {
            float[] x = new float[64];
            x[i] = 1;
            float amax = 0;
            for (int j = (i / 32) * 32; j < (i / 32) * 32 + 32; j++) {
                amax = Math.max(amax, Math.abs(row[j]));
            }
            backend.matmul(q8, null, upload(x), 1, out);
            assertEquals(row[i], download(out, 1)[0], amax / 127 * 0.51 + 1e-3 * amax, "q8 " + i);
            backend.matmul(q4, null, upload(x), 1, out);
            // Q4_0 maps the largest magnitude to −8·d, so the opposite end (+7·d at most) may clip by up to d
            assertEquals(row[i], download(out, 1)[0], amax / 8 * 1.01 + 1e-3 * amax, "q4 " + i);
        }
        assertThrows(IllegalArgumentException.class, () -> backend.matrix(List.of(f32("odd", new long[] {1, 3},
                1, 2, 3)), WeightFormat.Q8_0), "columns must be a multiple of 32");
    }

    /** Scales and codes from numpy emulating llama.cpp's quantize_row_q8_0_ref / q4_0_ref in float32. */
    @Test
    void quantizationMatchesLlamaCppReferenceExactly() {
        float[] row = new float[32];
        for (int i = 0; i < 32; i++) {
            row[i] = (float) Math.sin(i * 0.7) * 3;
        }
        int[] q8 = {0, 82, 126, 110, 43, -45, -111, -126, -81, 2, 84, 126, 109, 41, -47, -113, -125, -79, 4, 86,
                127, 108, 39, -49, -114, -125, -77, 6, 87, 127, 107, 37};
        float d8 = 0x1.804p-6f;
        int[] q4 = {8, 3, 0, 1, 5, 11, 15, 15, 13, 8, 3, 0, 1, 5, 11, 15, 15, 13, 8, 3, 0, 1, 6, 11, 15, 15, 13, 8,
                3, 0, 1, 6};
        float d4 = -0x1.7d4p-2f;
        Tensor t = f32("w", new long[] {1, 32}, row);
        Weight w8 = backend.matrix(List.of(t), WeightFormat.Q8_0);
        Weight w4 = backend.matrix(List.of(t), WeightFormat.Q4_0);
        Buffer out = backend.allocate(1);
        for (int i = 0; i < 32; i++) {
            float[] x = new float[32];
            x[i] = 1;
            backend.matmul(w8, null, upload(x), 1, out);
            assertEquals(d8 * q8[i], download(out, 1)[0], 0f, "q8 " + i);
            backend.matmul(w4, null, upload(x), 1, out);
            assertEquals(d4 * (q4[i] - 8), download(out, 1)[0], 0f, "q4 " + i);
        }
    }

    @Test
    void mismatchedPartsAreRejectedNamingTheTensor() {
        Tensor a = f32("first", new long[] {1, 2}, 1, 2);
        Tensor b = f32("second", new long[] {1, 3}, 1, 2, 3);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> backend.matrix(List.of(a, b), null));
        assertTrue(e.getMessage().contains("second"), e.getMessage());
        Tensor shortData = new Tensor("short", DType.F32, new long[] {2, 2}, arena.allocate(12));
        e = assertThrows(ModelFormatException.class, () -> backend.matrix(List.of(shortData), null));
        assertTrue(e.getMessage().contains("short") && e.getMessage().contains("16"), e.getMessage());
    }

    @Test
    void embedNormAddSiluGatherArgmax() {
        Weight table = backend.matrix(List.of(f32("emb", new long[] {3, 2}, 1, 2, 3, 4, 5, 6)), null);
        Batch batch = new Batch(4, 1, 1);
        batch.nTokens = 2;
        batch.tokens[0] = 2;
        batch.tokens[1] = 0;
        Buffer x = backend.allocate(4);
        backend.embed(table, batch, x);
        assertArrayEquals(new float[] {5, 6, 1, 2}, download(x, 4));

        backend.rmsNorm(x, upload(1, 2), 0f, 2, 2, x);
        double r0 = Math.sqrt((25 + 36) / 2.0);
        double r1 = Math.sqrt((1 + 4) / 2.0);
        assertArrayEquals(new float[] {(float) (5 / r0), (float) (12 / r0), (float) (1 / r1), (float) (4 / r1)},
                download(x, 4), 1e-6f);

        Buffer gateUp = upload(0, 2, 3, -1);  // one row: gate [0, 2], up [3, -1]
        Buffer out = backend.allocate(2);
        backend.siluMul(gateUp, 1, 2, out);
        assertArrayEquals(new float[] {0, (float) (-2 / (1 + Math.exp(-2)))}, download(out, 2), 1e-6f);

        Buffer y = upload(1, 1, 1, 1);
        Buffer z = upload(1, 2, 3, 4);
        backend.add(z, y, 2, 2);
        assertArrayEquals(new float[] {2, 3, 4, 5}, download(z, 4));

        batch.nLogits = 1;
        batch.logitRows[0] = 1;
        Buffer g = backend.allocate(2);
        backend.gatherRows(z, 2, batch, g);
        assertArrayEquals(new float[] {4, 5}, download(g, 2));

        int[] best = new int[2];
        backend.argmax(upload(1, 7, 7, 3, 9, 9), 2, 3, best);
        assertArrayEquals(new int[] {1, 1}, best, "ties pick the lowest index");

        batch.tokens[0] = 3;
        assertThrows(IllegalArgumentException.class, () -> backend.embed(table, batch, x));
    }

    @Test
    void ropeRotatesHalvesByPositionTimesFrequency() {
        RopeTable table = backend.ropeTable(new float[] {1f, 0.5f}, 1f, 8);
        Batch batch = new Batch(2, 1, 1);
        batch.nTokens = 2;
        batch.positions[0] = 0;
        batch.positions[1] = 3;
        // rows of stride 5: one unrotated column, then one head of 4 = halves (a0, a1 | b0, b1)
        Buffer x = upload(9, 1, 2, 3, 4, 9, 1, 2, 3, 4);
        backend.rope(Rows.of(x, 1, 5, 1 * 4), 4, batch, table);
        float[] r = download(x, 10);
        assertArrayEquals(new float[] {9, 1, 2, 3, 4}, java.util.Arrays.copyOf(r, 5), 1e-6f, "position 0: identity");
        double c0 = Math.cos(3), s0 = Math.sin(3), c1 = Math.cos(1.5), s1 = Math.sin(1.5);
        assertArrayEquals(new float[] {9, (float) (1 * c0 - 3 * s0), (float) (2 * c1 - 4 * s1),
                (float) (3 * c0 + 1 * s0), (float) (4 * c1 + 2 * s1)},
                java.util.Arrays.copyOfRange(r, 5, 10), 1e-6f);
        batch.positions[1] = 8;
        assertThrows(IllegalArgumentException.class, () -> backend.rope(Rows.of(x, 1, 5, 1 * 4), 4, batch, table));
    }

    /** Two sequences in scattered blocks; GQA with 2 query heads over 1 kv head; causal within the batch. */
    @Test
    void pagedCausalAttentionMatchesHandComputation() {
        int headDim = 2;
        KvCache cache = backend.kvCache(1, headDim, 4, 2);
        Batch batch = new Batch(4, 2, 2);
        // sequence 0: 3 tokens in blocks [3, 1]; sequence 1: 1 token in block [0]
        batch.nTokens = 4;
        batch.nSeqs = 2;
        int[] seqOf = {0, 0, 0, 1};
        int[] pos = {0, 1, 2, 0};
        for (int t = 0; t < 4; t++) {
            batch.seqOfToken[t] = seqOf[t];
            batch.positions[t] = pos[t];
        }
        batch.blockTables[0] = 3;
        batch.blockTables[1] = 1;
        batch.blockTables[2] = 0;
        batch.seqKvLength[0] = 3;
        batch.seqKvLength[1] = 1;
        // qkv rows: q (2 heads × 2) | k (2) | v (2), stride 8
        float[][] q = {{1, 0, 0, 1}, {0, 1, 1, 1}, {1, 1, -1, 0}, {2, 2, 2, 2}};
        float[][] k = {{1, 0}, {0, 2}, {1, 1}, {5, 5}};
        float[][] v = {{1, 2}, {3, 4}, {5, 6}, {7, 8}};
        float[] qkv = new float[32];
        for (int t = 0; t < 4; t++) {
            System.arraycopy(q[t], 0, qkv, t * 8, 4);
            System.arraycopy(k[t], 0, qkv, t * 8 + 4, 2);
            System.arraycopy(v[t], 0, qkv, t * 8 + 6, 2);
        }
        Buffer qkvBuf = upload(qkv);
        backend.storeKv(cache, 0, Rows.of(qkvBuf, 4, 8, cache.kvDim()), Rows.of(qkvBuf, 6, 8, cache.kvDim()), batch);
        Buffer out = backend.allocate(16);
        float scale = 0.7f;
        backend.attention(Rows.of(qkvBuf, 0, 8, 2 * headDim), cache, 0, batch, 1, headDim, scale, out);
        float[] o = download(out, 16);
        for (int t = 0; t < 4; t++) {
            int first = seqOf[t] == 0 ? 0 : 3;
            for (int h = 0; h < 2; h++) {
                double[] w = new double[pos[t] + 1];
                double sum = 0;
                for (int p = 0; p <= pos[t]; p++) {
                    float[] key = k[first + p];
                    w[p] = Math.exp(scale * (q[t][2 * h] * key[0] + q[t][2 * h + 1] * key[1]));
                    sum += w[p];
                }
                for (int i = 0; i < 2; i++) {
                    double e = 0;
                    for (int p = 0; p <= pos[t]; p++) {
                        e += w[p] / sum * v[first + p][i];
                    }
                    assertEquals(e, o[t * 4 + h * 2 + i], 1e-6, "token " + t + " head " + h + " dim " + i);
                }
            }
        }
        // copy-on-write support: block 3 (positions 0-1 of sequence 0) copied to block 2
        cache.copyBlock(3, 2);
        batch.blockTables[0] = 2;
        Buffer again = backend.allocate(16);
        backend.attention(Rows.of(qkvBuf, 0, 8, 2 * headDim), cache, 0, batch, 1, headDim, scale, again);
        assertArrayEquals(o, download(again, 16));
    }
}
