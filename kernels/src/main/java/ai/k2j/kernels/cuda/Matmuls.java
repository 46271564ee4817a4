package ai.k2j.kernels.cuda;

import ai.k2j.loaders.DType;

/**
 * Matrix products: the GEMV kernels for small n (decode, speculative verification, everything inside a graph;
 * optionally with the gate|up silu·mul epilogue) and cuBLAS for prefill ({@link CudaBackend.PrefillGemm}).
 */
final class Matmuls {
    /** Bytes of the dequantization scratch (F32, or BF16 in the tensor-core mode) for cuBLAS on F16/Q8_0/Q4_0. */
    private static final long DEQUANT_SCRATCH_BYTES = 256L << 20;

    private final CudaContext cx;
    private Cublas cublas;
    private String cublasProblem;

    Matmuls(CudaContext cx) {
        this.cx = cx;
    }

    /** Whether a product of n rows goes to cuBLAS (else the GEMV kernels). */
    boolean usesCublas(int n) {
        return n >= cx.options.gemmMinTokens() && cx.options.prefillGemm() != CudaBackend.PrefillGemm.KERNEL
                && cx.capture == null && cublas() != null;
    }

    /** out[n, rows] = x[n, cols] · Wᵀ (+ bias): cuBLAS or the GEMV kernels (arguments checked by the caller). */
    void matmul(DevWeight w, DevBuffer bias, long x, int n, long out) {
        if (usesCublas(n)) {
            gemmCublas(cublas, w, bias, x, n, out);
        } else {
            gemv(w, bias == null ? 0 : bias.ptr, x, n, out, 0);
        }
    }

    /** Whether {@link #gemv} can add the silu·mul epilogue for this gate|up matrix at n rows. */
    boolean fusesSiluMul(DevWeight w, int n) {
        return !usesCublas(n) && w.rows % 2 == 0 && w.cols % CudaKernels.chunkElements(w.dtype) == 0;
    }

    /**
     * Rows per warp group of the GEMV kernels: 4 (each activation load serves four rows, and four rows' loads are
     * in flight per lane; measured faster than one row per warp for every dtype and Qwen2.5 shape, CudaOpBench);
     * {@link CudaBackend.Options#gemvRows} = 1 or 4 forces one (comparisons).
     */
    private int gemvRows() {
        return cx.options.gemvRows() == 1 ? 1 : 4;
    }

    /**
     * Warps per row group. Dense types: 4 (the fastest or within 0.3 µs of it at every Qwen2.5 shape measured on an
     * H200 by CudaOpBench). Quantized types and the fused gate|up GEMV (where 4 warps measured 1.6 µs slower on
     * 0.5B's, 0.8 µs faster on 1.5B's): 4 when the matrix has too few row groups to keep every SM busy with one warp
     * each (fewer than 16 per SM, e.g. down projections) and rows long enough to give each of the 128 lanes a
     * chunk; else 1 (more warps per row made the many-row quantized matrices slower).
     * {@link CudaBackend.Options#gemvWarps} = 1 or 4 forces one (comparisons).
     */
    private int gemvWarps(long groups, int chunks, boolean dense) {
        int forced = cx.options.gemvWarps();
        if (forced == 1 || forced == 4) {
            return forced;
        }
        if (dense) {
            return chunks >= 32 ? 4 : 1;
        }
        return groups < 16L * cx.driver.multiprocessors() && chunks >= 64 ? 4 : 1;
    }

    /**
     * out = x W^T (+ bias) for n tokens, in launches of up to 8 tokens. act != 0: W is [gate; up] and
     * silu(gate) * up goes to act [n, rows / 2] as well (the fast path only).
     */
    void gemv(DevWeight w, long bias, long x, int n, long out, long act) {
        int e = CudaKernels.chunkElements(w.dtype);
        boolean fast = w.cols % e == 0;
        int rowsPerGroup = act != 0 ? 2 : fast ? gemvRows() : 1;
        long groups = act != 0 ? w.rows / 2 : (w.rows + rowsPerGroup - 1) / rowsPerGroup;
        int warps = fast ? gemvWarps(groups, w.cols / e, act == 0 && !w.dtype.isQuantized()) : 1;
        int blocks = (int) ((groups * warps + 3) / 4);  // 4 warps per block
        int wi = warps == 4 ? 1 : 0;
        for (int t0 = 0; t0 < n; t0 += 8) {
            int nb = Math.min(8, n - t0);
            long xp = x + 4L * t0 * w.cols;
            long op = out + 4L * t0 * w.rows;
            cx.args.reset().ptr(w.data).ptr(w.scales).ptr(xp).ptr(bias).ptr(op).i32(w.rows).i32(w.cols);
            if (act != 0) {
                cx.args.ptr(act + 4L * t0 * (w.rows / 2));
                cx.launch(cx.k.gemvSilu[w.code][wi][nb], cx.profiler == null ? "gemv" : w.profileName() + " +silu",
                        blocks, 1, 128);
            } else if (fast) {
                cx.launch(rowsPerGroup == 4 ? cx.k.gemvR4[w.code][wi][nb] : cx.k.gemv[w.code][wi][nb],
                        cx.profiler == null ? "gemv" : w.profileName(), blocks, 1, 128);
            } else {
                cx.args.i32(w.code).i32(nb);
                cx.launch(cx.k.gemvGeneric, "gemv_generic", blocks, 1, 128);
            }
        }
    }

    void gemmCublas(Cublas cb, DevWeight w, DevBuffer bias, long x, int n, long out) {
        long count = (long) n * w.cols;
        // BF16 GEMMs need compute capability 8.0+; older cards run the tensor-core mode's GEMMs by SGEMM
        boolean tensorCores = cx.options.prefillGemm() == CudaBackend.PrefillGemm.AUTO && w.dtype != DType.F32
                && cx.driver.computeMajor() >= 8;
        if (tensorCores) {
            // BF16 activations (rounded once per GEMM input), BF16 weights: as stored, or dequantized in row chunks
            long bf = cx.bf16Scratch.ensure(count * 2);
            cx.args.reset().ptr(x).ptr(bf).i64(count);
            cx.launch(cx.k.f32ToBf16, "f32_to_bf16", cx.grid(count), 1, 256);
            if (w.dtype == DType.BF16) {
                cb.gemm(w.data, bf, Cublas.CUDA_R_16BF, out, w.rows, n, w.cols, w.rows);
            } else {
                int chunkRows = (int) Math.max(1, Math.min(w.rows, DEQUANT_SCRATCH_BYTES / (2L * w.cols)));
                long scratch = cx.dequantScratch.ensure(2L * chunkRows * w.cols);
                for (int r0 = 0; r0 < w.rows; r0 += chunkRows) {
                    int nr = Math.min(chunkRows, w.rows - r0);
                    cx.args.reset().ptr(w.data).ptr(w.scales).i32(w.code).i32(r0).i32(nr).i32(w.cols).ptr(scratch);
                    cx.launch(cx.k.dequantBf16, "dequant_bf16", cx.grid((long) nr * w.cols), 1, 256);
                    cb.gemm(scratch, bf, Cublas.CUDA_R_16BF, out + 4L * r0, nr, n, w.cols, w.rows);
                }
            }
        } else if (w.dtype == DType.F32) {
            cb.gemm(w.data, x, Cublas.CUDA_R_32F, out, w.rows, n, w.cols, w.rows);
        } else {
            int chunkRows = (int) Math.max(1, Math.min(w.rows, DEQUANT_SCRATCH_BYTES / (4L * w.cols)));
            long scratch = cx.dequantScratch.ensure(4L * chunkRows * w.cols);
            for (int r0 = 0; r0 < w.rows; r0 += chunkRows) {
                int nr = Math.min(chunkRows, w.rows - r0);
                cx.args.reset().ptr(w.data).ptr(w.scales).i32(w.code).i32(r0).i32(nr).i32(w.cols).ptr(scratch);
                cx.launch(cx.k.dequantF32, "dequant_f32", cx.grid((long) nr * w.cols), 1, 256);
                cb.gemm(scratch, x, Cublas.CUDA_R_32F, out + 4L * r0, nr, n, w.cols, w.rows);
            }
        }
        if (bias != null) {
            cx.args.reset().ptr(out).ptr(bias.ptr).i32(n).i32(w.rows);
            cx.launch(cx.k.addBias, "add_bias", cx.grid((long) n * w.rows), 1, 256);
        }
    }

    /** cuBLAS, opened on first use; null (with a reason in describeGemm) when it cannot be loaded. */
    Cublas cublas() {
        if (cublas == null && cublasProblem == null) {
            if (cx.driver.libraries().cublas() == null) {
                cublasProblem = "libcublas.so not found (set -Dk2j.cuda.cublas=/abs/path/libcublas.so.13)";
            } else {
                try {
                    cublas = Cublas.open(cx.driver.libraries().cublas(), cx.driver.stream());
                } catch (CudaException e) {
                    cublasProblem = e.getMessage();
                }
            }
            if (cublasProblem != null) {
                System.getLogger(CudaBackend.class.getName()).log(System.Logger.Level.WARNING,
                        "cuBLAS unavailable, prefill matmuls use the GEMV kernels: " + cublasProblem);
            }
        }
        return cublas;
    }

    /** Why cuBLAS is not used, or null when it is (or has not been needed yet). */
    String cublasProblem() {
        return cublasProblem;
    }

    void close() {
        if (cublas != null) {
            cublas.close();
        }
    }
}
