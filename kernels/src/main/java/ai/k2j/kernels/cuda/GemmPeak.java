package ai.k2j.kernels.cuda;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * The BF16 tensor-core GEMM throughput cuBLAS reaches on this device, measured with the very call the prefill
 * GEMMs use ({@code cublasGemmEx} BF16×BF16, FP32 accumulate and output) on random operands: the peak that the
 * benchmarks state k2j's prefill GEMMs as a fraction of.
 */
final class GemmPeak {
    private GemmPeak() {
    }

    /** Median TFLOP/s over {@code reps} timed calls (after one warm-up) of out[n, m] = x[n, k] · W[m, k]ᵀ. */
    static double bf16Tflops(CudaContext cx, Cublas cb, int m, int n, int k, int reps) {
        if (m <= 0 || n <= 0 || k <= 0 || reps <= 0) {
            throw new IllegalArgumentException("GEMM peak: m, n, k, reps must be positive, got " + m + ", " + n + ", "
                    + k + ", " + reps);
        }
        CudaDriver driver = cx.driver;
        long wBytes = 2L * m * k;
        long xBytes = 2L * n * k;
        long w = driver.malloc(wBytes);
        long x = 0;
        long out = 0;
        long e0 = 0;
        long e1 = 0;
        try {
            x = driver.malloc(xBytes);
            out = driver.malloc(4L * m * n);
            fillRandomBf16(cx, w, wBytes, 1);
            fillRandomBf16(cx, x, xBytes, 2);
            e0 = driver.eventCreate(true);
            e1 = driver.eventCreate(true);
            cb.gemm(w, x, Cublas.CUDA_R_16BF, out, m, n, k, m);  // warm-up (heuristics, workspace)
            double[] tflops = new double[reps];
            for (int r = 0; r < reps; r++) {
                driver.eventRecord(e0);
                cb.gemm(w, x, Cublas.CUDA_R_16BF, out, m, n, k, m);
                driver.eventRecord(e1);
                driver.eventSynchronize(e1);
                tflops[r] = 2.0 * m * n * k / (driver.elapsedMillis(e0, e1) / 1e3) / 1e12;
            }
            Arrays.sort(tflops);
            return tflops[reps / 2];
        } finally {
            if (e0 != 0) {
                driver.eventDestroy(e0);
            }
            if (e1 != 0) {
                driver.eventDestroy(e1);
            }
            driver.synchronize();
            driver.free(w);
            if (x != 0) {
                driver.free(x);
            }
            if (out != 0) {
                driver.free(out);
            }
        }
    }

    /** Random BF16 values in [-1, 1) (the staging buffer's pattern repeated over the allocation). */
    private static void fillRandomBf16(CudaContext cx, long dst, long bytes, long seed) {
        MemorySegment st = cx.staging();
        long chunk = Math.min(bytes, CudaContext.STAGING_BYTES) & ~1L;
        SplittableRandom rnd = new SplittableRandom(seed);
        for (long i = 0; i < chunk; i += 2) {
            st.set(ValueLayout.JAVA_SHORT_UNALIGNED, i, HostCodec.f32ToBf16((float) (rnd.nextDouble() * 2 - 1)));
        }
        for (long off = 0; off < bytes; off += chunk) {
            cx.driver.copyToDeviceAsync(dst + off, st.address(), Math.min(chunk, bytes - off));
        }
        cx.driver.synchronize();
    }
}
