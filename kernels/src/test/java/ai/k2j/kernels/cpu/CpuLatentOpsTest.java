package ai.k2j.kernels.cpu;

import ai.k2j.kernels.Backend;
import ai.k2j.kernels.Batch;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.KvCache;
import ai.k2j.kernels.ReferenceBackend;
import ai.k2j.kernels.Rows;
import ai.k2j.kernels.Weight;
import ai.k2j.loaders.DType;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;

import static ai.k2j.kernels.cpu.TestSupport.random;
import static ai.k2j.kernels.cpu.TestSupport.tensor;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * MLA's ops on the CPU backend (1 thread, and 2 threads splitting even tiny ops) against the reference backend:
 * {@code headMatmul} over a strided view with F32 and BF16 weights, and {@code latentAttention} over two sequences
 * whose blocks are scattered through the cache, with rows of odd latent/rope widths.
 */
class CpuLatentOpsTest {

    private static float[] read(Backend b, Buffer buf, int n) {
        float[] out = new float[n];
        b.download(buf, 0, out, 0, n);
        return out;
    }

    /** A CPU buffer holding {@code values} (the reference backend's are filled by {@link #refBuffer}). */
    private static Buffer upload(CpuBackend b, float[] values) {
        Buffer buf = b.allocate(values.length);
        System.arraycopy(values, 0, TestSupport.data(buf), 0, values.length);
        return buf;
    }

    @Test
    void headMatmulMatchesThePlainSum() {
        int heads = 5, perHead = 7, cols = 19, n = 4, stride = heads * cols + 6, offset = 3;
        Random rnd = new Random(11);
        for (DType dtype : List.of(DType.F32, DType.BF16)) {
            float[] w = random(rnd, heads * perHead * cols, 1f);
            var t = tensor("w", dtype, w, heads * perHead, cols);
            float[] x = random(rnd, n * stride, 1f);
            for (CpuBackend b : new CpuBackend[] {new CpuBackend(1), new CpuBackend(2, 0)}) {
                Weight weight = b.matrix(List.of(t), null);
                Buffer xb = upload(b, x);
                Buffer out = b.allocate((long) n * heads * perHead);
                b.headMatmul(weight, heads, Rows.of(xb, offset, stride, heads * cols), n, out);
                float[] got = read(b, out, n * heads * perHead);
                for (int tk = 0; tk < n; tk++) {
                    for (int r = 0; r < heads * perHead; r++) {
                        double sum = 0;
                        for (int i = 0; i < cols; i++) {
                            sum += (double) w[r * cols + i] * x[tk * stride + offset + (r / perHead) * cols + i];
                        }
                        assertEquals(sum, got[tk * heads * perHead + r], 1e-4, dtype + " token " + tk + " row " + r);
                    }
                }
                assertThrows(IllegalArgumentException.class, () -> b.headMatmul(weight, 4, Rows.of(xb, offset, stride,
                        heads * cols), n, out), "4 heads do not split 35 rows");
                b.close();
            }
        }
    }

    @Test
    void latentAttentionMatchesTheReferenceOverScatteredBlocks() {
        int heads = 3, latent = 10, rope = 4, kvDim = (latent + rope) / 2, blockSize = 4, numBlocks = 8;
        int[] lengths = {11, 7};
        int[][] tables = {{5, 2, 7}, {1, 6, 0}};
        int n = lengths[0] + lengths[1];
        Batch batch = new Batch(n, 2, 3);
        batch.nSeqs = 2;
        int t = 0;
        for (int s = 0; s < 2; s++) {
            batch.seqKvLength[s] = lengths[s];
            System.arraycopy(tables[s], 0, batch.blockTables, s * 3, 3);
            for (int p = 0; p < lengths[s]; p++) {
                batch.tokens[t] = 0;
                batch.positions[t] = p;
                batch.seqOfToken[t] = s;
                t++;
            }
        }
        batch.nTokens = n;
        Random rnd = new Random(17);
        float[] rows = random(rnd, n * 2 * kvDim, 1f);           // each token's [c | r]
        int qStride = heads * (latent + rope) + 2;
        float[] q = random(rnd, n * qStride, 1f);                  // [q_lat heads | q_rope heads | pad] per token
        float scale = 0.3f;

        ReferenceBackend ref = new ReferenceBackend();
        float[] want = run(ref, refBuffer(ref, rows), refBuffer(ref, q), batch, heads, latent, rope, kvDim, blockSize,
                numBlocks, qStride, scale);
        for (CpuBackend b : new CpuBackend[] {new CpuBackend(1), new CpuBackend(2, 0)}) {
            float[] got = run(b, upload(b, rows), upload(b, q), batch, heads, latent, rope, kvDim, blockSize,
                    numBlocks, qStride, scale);
            for (int i = 0; i < want.length; i++) {
                assertEquals(want[i], got[i], 1e-5, "output " + i + " on " + b.threads() + " thread(s)");
            }
            b.close();
        }
        ref.close();
    }

    /** The reference backend's buffers are filled by a matmul with an identity matrix (it has no upload op). */
    private static Buffer refBuffer(ReferenceBackend ref, float[] values) {
        int n = values.length;
        int cols = 1;
        // out[0, r] = x[0, 0] · w[r, 0] with x = 1 and w = values as an [n, 1] matrix: out = values
        float[] ones = {1f};
        Weight w = ref.matrix(List.of(tensor("v", DType.F32, values.clone(), n, cols)), null);
        Weight unit = ref.matrix(List.of(tensor("one", DType.F32, ones, 1, 1)), null);
        Buffer x = ref.allocate(1);
        // x = 1: embed row 0 of the [1, 1] matrix holding 1
        Batch b = new Batch(1, 1, 1);
        b.nTokens = 1;
        b.tokens[0] = 0;
        ref.embed(unit, b, x);
        Buffer out = ref.allocate(n);
        ref.matmul(w, null, x, 1, out);
        return out;
    }

    private static float[] run(Backend b, Buffer rows, Buffer q, Batch batch, int heads, int latent, int rope, int kvDim,
                               int blockSize, int numBlocks, int qStride, float scale) {
        KvCache cache = b.kvCache(1, kvDim, numBlocks, blockSize);
        b.storeKv(cache, 0, Rows.of(rows, 0, 2 * kvDim, kvDim), Rows.of(rows, kvDim, 2 * kvDim, kvDim), batch);
        Buffer out = b.allocate((long) batch.nTokens * heads * latent);
        b.latentAttention(Rows.of(q, 0, qStride, heads * latent), Rows.of(q, heads * latent, qStride, heads * rope),
                cache, 0, batch, heads, latent, scale, out);
        return read(b, out, batch.nTokens * heads * latent);
    }
}
