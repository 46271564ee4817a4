package ai.k2j.bench.cuda;

import ai.k2j.kernels.Batch;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.KvCache;
import ai.k2j.kernels.RopeTable;
import ai.k2j.kernels.Rows;
import ai.k2j.kernels.Weight;
import ai.k2j.kernels.cuda.CudaBackend;
import ai.k2j.kernels.cuda.CudaGraph;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.Locale;

/**
 * Per-op device time of one Qwen2.5 decoder layer at batch 1, as the decode graph runs it: each op (or op
 * sequence) is captured {@value #REPS} times into one CUDA graph, replayed, and the wall time per replay divided
 * by the repetitions, so launch gaps inside a graph count and host overhead does not. Compares the kernel
 * variants the backend can choose between ({@link CudaBackend#retune}: GEMV rows and warps per group, the decode vs
 * the general attention kernel, the fused ops vs their unfused pairs) on random BF16 weights at Qwen2.5-0.5B/1.5B/7B shapes.
 *
 * <pre>java ... ai.k2j.bench.cuda.CudaOpBench [--context 600,4000] [--presets 0.5b,1.5b,7b]</pre>
 */
public final class CudaOpBench {

    private static final int REPS = 20;
    private static final int TIMED_REPLAYS = 30;

    private record Shape(String name, int hidden, int heads, int kvHeads, int headDim, int inter) {
    }

    private static final List<Shape> SHAPES = List.of(
            new Shape("0.5b", 896, 14, 2, 64, 4864),
            new Shape("1.5b", 1536, 12, 2, 128, 8960),
            new Shape("7b", 3584, 28, 4, 128, 18944));

    private CudaOpBench() {
    }

    public static void main(String[] args) {
        int[] contexts = {600, 4000};
        List<String> presets = List.of("0.5b", "1.5b", "7b");
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--context" -> contexts = java.util.Arrays.stream(args[i + 1].split(",")).mapToInt(Integer::parseInt)
                        .toArray();
                case "--presets" -> presets = List.of(args[i + 1].split(","));
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        try (CudaBackend be = new CudaBackend(); Arena arena = Arena.ofShared()) {
            System.out.print(be.describe());
            for (Shape s : SHAPES) {
                if (presets.contains(s.name)) {
                    run(be, arena, s, contexts);
                }
            }
        }
    }

    private static void run(CudaBackend be, Arena arena, Shape s, int[] contexts) {
        int qDim = s.heads * s.headDim;
        int kvDim = s.kvHeads * s.headDim;
        int qkvDim = qDim + 2 * kvDim;
        Weight wqkv = be.matrix(List.of(bf16(arena, "qkv", qkvDim, s.hidden)), null);
        Weight wo = be.matrix(List.of(bf16(arena, "o", s.hidden, qDim)), null);
        Weight wgu = be.matrix(List.of(bf16(arena, "gateUp", 2 * s.inter, s.hidden)), null);
        Weight wdown = be.matrix(List.of(bf16(arena, "down", s.hidden, s.inter)), null);
        Buffer gamma = filled(be, s.hidden, 1f);
        Buffer bias = filled(be, qkvDim, 0.01f);
        Buffer x = filled(be, s.hidden, 0.5f);
        Buffer xn = be.allocate(s.hidden);
        Buffer qkv = filled(be, qkvDim, 0.1f);
        Buffer att = be.allocate(qDim);
        Buffer proj = be.allocate(s.hidden);
        Buffer gu = be.allocate(2L * s.inter);
        Buffer ffn = be.allocate(s.inter);
        int maxCtx = java.util.Arrays.stream(contexts).max().orElse(600) + 64;
        float[] invFreq = new float[s.headDim / 2];
        for (int i = 0; i < invFreq.length; i++) {
            invFreq[i] = (float) Math.pow(1e6, -2.0 * i / s.headDim);
        }
        RopeTable rope = be.ropeTable(invFreq, 1f, maxCtx);
        int blockSize = 16;
        int maxBlocks = (maxCtx + blockSize - 1) / blockSize;
        KvCache cache = be.kvCache(1, kvDim, maxBlocks, blockSize);
        Batch b = new Batch(1, 1, maxBlocks);
        b.nTokens = 1;
        b.nSeqs = 1;
        for (int j = 0; j < maxBlocks; j++) {
            b.blockTables[j] = j;
        }
        float scale = (float) (1 / Math.sqrt(s.headDim));
        Rows q = Rows.of(qkv, 0, qkvDim, qDim);
        Rows k = Rows.of(qkv, qDim, qkvDim, kvDim);
        Rows v = Rows.of(qkv, qDim + kvDim, qkvDim, kvDim);
        CudaBackend.Options tuned = be.options();

        System.out.printf(Locale.ROOT, "%n== Qwen2.5-%s shapes (hidden %d, heads %d/%d x %d, intermediate %d), BF16, batch 1%n",
                s.name, s.hidden, s.heads, s.kvHeads, s.headDim, s.inter);
        Tensor guTensor = bf16(arena, "gateUp", 2 * s.inter, s.hidden);
        Tensor downTensor = bf16(arena, "down", s.hidden, s.inter);
        List<Weight> gemvs = List.of(wqkv, wo, wgu, wdown,
                be.matrix(List.of(guTensor), WeightFormat.Q8_0), be.matrix(List.of(downTensor), WeightFormat.Q8_0),
                be.matrix(List.of(guTensor), WeightFormat.Q4_0), be.matrix(List.of(downTensor), WeightFormat.Q4_0));
        for (Weight w : gemvs) {
            double bytes = w.byteSize();
            for (int[] shape : new int[][] {{0, 0}, {1, 1}, {1, 4}, {4, 1}, {4, 4}}) {
                be.retune(tuned.withGemvRows(shape[0]).withGemvWarps(shape[1]));
                double us = time(be, b, () -> be.matmul(w, null, w.cols() == s.hidden ? xn : w.cols() == qDim ? att : ffn,
                        1, w.rows() == s.hidden ? proj : w.rows() == qkvDim ? qkv : gu));
                System.out.printf(Locale.ROOT, "gemv %-5s %6dx%-6d rows/warps %-9s %8.2f us  %6.0f GB/s%n", w.dtype(),
                        w.rows(), w.cols(), shape[0] == 0 ? "auto" : shape[0] + "/" + shape[1], us, bytes / us / 1e3);
            }
        }
        be.retune(tuned);
        for (boolean fused : new boolean[] {false, true}) {
            be.retune(tuned.withFusedOps(fused));
            double us = time(be, b, () -> be.matmulSiluMul(wgu, xn, 1, gu, ffn));
            System.out.printf(Locale.ROOT, "gate|up gemv + siluMul  %-8s %8.2f us%n", fused ? "fused" : "separate", us);
        }
        for (int ctx : contexts) {
            b.positions[0] = ctx - 1;
            b.seqKvLength[0] = ctx;
            for (boolean fused : new boolean[] {false, true}) {
                be.retune(tuned.withFusedOps(fused));
                double us = time(be, b, () -> be.ropeStoreKv(q, k, v, s.headDim, cache, 0, b, rope));
                System.out.printf(Locale.ROOT, "ctx %5d rope q,k + storeKv  %-8s %8.2f us%n", ctx,
                        fused ? "fused" : "separate", us);
            }
            for (int[] kernel : new int[][] {{0, 32}, {1, 32}, {1, 64}, {1, 128}}) {
                be.retune(tuned.withDecodeAttention(kernel[0] == 1).withDecodeSplitQuantum(kernel[1]));
                double us = time(be, b, () -> be.attention(q, cache, 0, b, s.kvHeads, s.headDim, scale, att));
                System.out.printf(Locale.ROOT, "ctx %5d attention %-7s split quantum %3s (+combine) %8.2f us%n", ctx,
                        kernel[0] == 1 ? "decode" : "general", kernel[0] == 1 ? Integer.toString(kernel[1]) : "16", us);
            }
            for (boolean after : new boolean[] {false, true}) {
                be.retune(after ? tuned : tuned.withDecodeAttention(false).withFusedOps(false).withGemvWarps(1));
                double us = time(be, b, () -> {
                    be.rmsNorm(x, gamma, 1e-6f, 1, s.hidden, xn);
                    be.matmul(wqkv, bias, xn, 1, qkv);
                    be.ropeStoreKv(q, k, v, s.headDim, cache, 0, b, rope);
                    be.attention(q, cache, 0, b, s.kvHeads, s.headDim, scale, att);
                    be.matmul(wo, null, att, 1, proj);
                    be.addRmsNorm(x, proj, gamma, 1e-6f, 1, s.hidden, xn);
                    be.matmulSiluMul(wgu, xn, 1, gu, ffn);
                    be.matmul(wdown, null, ffn, 1, proj);
                    be.addRmsNorm(x, proj, gamma, 1e-6f, 1, s.hidden, x);  // keeps x bounded over the repetitions
                });
                long layerBytes = 2L * ((long) qkvDim * s.hidden + (long) s.hidden * qDim + 3L * s.inter * s.hidden);
                System.out.printf(Locale.ROOT, "ctx %5d whole layer %-6s %8.2f us  (weights at %4.0f GB/s)%n", ctx,
                        after ? "after" : "before", us, layerBytes / us / 1e3);
            }
        }
        be.retune(tuned);
    }

    /** Device µs per repetition of ops, captured REPS times into one graph. */
    private static double time(CudaBackend be, Batch b, Runnable ops) {
        be.beginCapture(b);
        try {
            for (int r = 0; r < REPS; r++) {
                ops.run();
            }
        } catch (RuntimeException e) {
            be.abortCapture();
            throw e;
        }
        try (CudaGraph g = be.endCapture()) {
            for (int i = 0; i < 3; i++) {
                be.replay(g, b);
            }
            be.sync();
            long t0 = System.nanoTime();
            for (int i = 0; i < TIMED_REPLAYS; i++) {
                be.replay(g, b);
            }
            be.sync();
            return (System.nanoTime() - t0) / 1e3 / TIMED_REPLAYS / REPS;
        }
    }

    private static Buffer filled(CudaBackend be, int n, float amplitude) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) Math.sin(i * 0.61) * amplitude;
        }
        Buffer buf = be.allocate(n);
        be.upload(v, 0, buf, 0, n);
        return buf;
    }

    private static Tensor bf16(Arena arena, String name, int rows, int cols) {
        long n = (long) rows * cols;
        MemorySegment seg = arena.allocate(2 * n, 64);
        long state = name.hashCode() * 0x9E3779B97F4A7C15L;
        for (long i = 0; i < n; i++) {
            state = state * 6364136223846793005L + 1442695040888963407L;
            float v = ((state >>> 40) / (float) (1 << 24) - 0.5f) * 0.05f;
            seg.setAtIndex(ValueLayout.JAVA_SHORT, i, (short) (Float.floatToRawIntBits(v) >>> 16));
        }
        return new Tensor(name, DType.BF16, new long[] {rows, cols}, seg);
    }
}
