package ai.k2j.bench.cuda;

import ai.k2j.kernels.Batch;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.Weight;
import ai.k2j.kernels.cuda.CudaBackend;
import ai.k2j.kernels.cuda.CudaException;
import ai.k2j.kernels.cuda.CudaGraph;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * The fastest end-to-end check of a CUDA machine (tools/gpu/smoke.sh): finds the libraries, opens the device,
 * compiles every kernel, checks a BF16 and a Q4_0 GEMV against the host, replays a captured graph, and measures
 * device-to-device copy bandwidth and GEMV bandwidth. Prints a report; exit status 0 when every check passed,
 * 1 when one failed, 2 when CUDA is unavailable.
 */
public final class CudaSmoke {

    private CudaSmoke() {
    }

    public static void main(String[] args) {
        System.out.println("k2j CUDA smoke check; Java " + Runtime.version() + " on " + System.getProperty("os.name") + " "
                + System.getProperty("os.arch"));
        List<String> failures = new ArrayList<>();
        long t0 = System.nanoTime();
        CudaBackend be;
        try {
            be = new CudaBackend();
        } catch (CudaException e) {  // no driver or device, libraries not found
            System.out.println("CUDA unavailable: " + e.getMessage());
            System.out.println("SMOKE UNAVAILABLE");
            System.exit(2);
            return;
        }
        try (be; Arena arena = Arena.ofShared()) {
            System.out.printf("backend ready in %.1f s%n%s", (System.nanoTime() - t0) / 1e9, be.describe());
            if (be.nvrtcFailure() != null) {
                failures.add("NVRTC failed, prebuilt CUBINs used: " + be.nvrtcFailure());
            }
            CudaBackend.Options tuned = be.options();
            for (int rows : new int[] {1, 4}) {  // both GEMV kernel families: one row per warp, four
                be.retune(tuned.withGemvRows(rows));
                System.out.printf("GEMV kernels with %d row(s) per warp:%n", rows);
                check(failures, gemvCheck(be, arena, DType.BF16, 4096, 4096));
                check(failures, gemvCheck(be, arena, DType.Q4_0, 1000, 2048));
                check(failures, gemvCheck(be, arena, DType.Q8_0, 1003, 1024));
            }
            be.retune(tuned);
            check(failures, graphCheck(be, arena));
            copyBandwidth(be);
            for (DType dt : new DType[] {DType.BF16, DType.Q8_0, DType.Q4_0, DType.F32}) {
                gemvBandwidth(be, arena, dt, 8192, 8192);
            }
            gemvBandwidth(be, arena, DType.BF16, 37888, 3584);  // Qwen2.5-7B gate|up
            gemvBandwidth(be, arena, DType.BF16, 3584, 18944);  // and down
        } catch (RuntimeException e) {
            e.printStackTrace(System.out);
            failures.add(e.toString());
        }
        if (failures.isEmpty()) {
            System.out.println("SMOKE PASSED");
            System.exit(0);
        }
        System.out.println("SMOKE FAILED:");
        failures.forEach(f -> System.out.println("  " + f));
        System.exit(1);
    }

    private static void check(List<String> failures, String problem) {
        if (problem != null) {
            failures.add(problem);
        }
    }

    /** Deterministic pseudo-random weights in dtype's layout, and their exact float values. */
    private static Tensor weights(Arena arena, DType dt, int rows, int cols, float[] valuesOut) {
        long elements = (long) rows * cols;
        MemorySegment seg = arena.allocate(dt.bytesFor(elements), 64);
        long state = 0x9E3779B97F4A7C15L;
        switch (dt) {
            case BF16, F32 -> {
                for (long i = 0; i < elements; i++) {
                    state = state * 6364136223846793005L + 1442695040888963407L;
                    float v = ((state >>> 40) / (float) (1 << 24) - 0.5f) * 0.2f;
                    int bits = Float.floatToRawIntBits(v) & 0xffff0000;  // exactly representable in BF16
                    float exact = Float.intBitsToFloat(bits);
                    if (dt == DType.BF16) {
                        seg.setAtIndex(ValueLayout.JAVA_SHORT, i, (short) (bits >>> 16));
                    } else {
                        seg.setAtIndex(ValueLayout.JAVA_FLOAT, i, exact);
                    }
                    if (valuesOut != null) {
                        valuesOut[(int) i] = exact;
                    }
                }
            }
            case Q8_0, Q4_0 -> {
                int blockBytes = dt.blockBytes();
                for (long b = 0; b < elements / 32; b++) {
                    state = state * 6364136223846793005L + 1442695040888963407L;
                    float d = 0.001f + ((state >>> 40) / (float) (1 << 24)) * 0.01f;
                    short dh = Float.floatToFloat16(d);
                    float dv = Float.float16ToFloat(dh);
                    long base = b * blockBytes;
                    seg.set(ValueLayout.JAVA_SHORT_UNALIGNED, base, dh);
                    for (int j = 0; j < blockBytes - 2; j++) {
                        state = state * 6364136223846793005L + 1442695040888963407L;
                        byte q = (byte) (state >>> 56);
                        seg.set(ValueLayout.JAVA_BYTE, base + 2 + j, q);
                        if (valuesOut != null) {
                            int e = (int) (b * 32);
                            if (dt == DType.Q8_0) {
                                valuesOut[e + j] = q * dv;
                            } else {
                                valuesOut[e + j] = ((q & 15) - 8) * dv;
                                valuesOut[e + j + 16] = (((q & 0xff) >>> 4) - 8) * dv;
                            }
                        }
                    }
                }
            }
            default -> throw new IllegalArgumentException(dt.toString());
        }
        return new Tensor("smoke." + dt, dt, new long[] {rows, cols}, seg);
    }

    private static Buffer upload(CudaBackend be, float[] v) {
        Buffer b = be.allocate(v.length);
        be.upload(v, 0, b, 0, v.length);
        return b;
    }

    private static String gemvCheck(CudaBackend be, Arena arena, DType dt, int rows, int cols) {
        float[] w = new float[rows * cols];
        Weight weight = be.matrix(List.of(weights(arena, dt, rows, cols, w)), WeightFormat.NATIVE);
        float[] x = new float[cols];
        for (int i = 0; i < cols; i++) {
            x[i] = (float) Math.sin(i * 0.37) + 0.1f;
        }
        Buffer xb = upload(be, x);
        Buffer out = be.allocate(rows);
        be.matmul(weight, null, xb, 1, out);
        float[] got = new float[rows];
        be.download(out, 0, got, 0, rows);
        double worst = 0;
        for (int r = 0; r < rows; r++) {
            double s = 0;
            double abs = 0;
            for (int c = 0; c < cols; c++) {
                double p = (double) w[r * cols + c] * x[c];
                s += p;
                abs += Math.abs(p);
            }
            worst = Math.max(worst, Math.abs(got[r] - s) / Math.max(abs, 1e-30));
        }
        boolean ok = worst <= 1e-4;
        System.out.printf("GEMV %s %dx%d vs host: max error %.2e of sum|w*x| -> %s%n", dt, rows, cols, worst,
                ok ? "ok" : "FAILED");
        return ok ? null : "GEMV " + dt + " error " + worst;
    }

    private static String graphCheck(CudaBackend be, Arena arena) {
        int rows = 512;
        int cols = 256;
        Weight w = be.matrix(List.of(weights(arena, DType.BF16, rows, cols, null)), WeightFormat.NATIVE);
        Buffer x = be.allocate(cols);
        float[] xv = new float[cols];
        for (int i = 0; i < cols; i++) {
            xv[i] = i % 7 - 3;
        }
        be.upload(xv, 0, x, 0, cols);
        Buffer eager = be.allocate(rows);
        Buffer replayed = be.allocate(rows);
        Batch batch = new Batch(1, 1, 1);
        batch.nTokens = 1;
        batch.nSeqs = 1;
        be.matmul(w, null, x, 1, eager);
        be.beginCapture(batch);
        be.matmul(w, null, x, 1, replayed);
        be.add(replayed, eager, 1, rows);  // replayed = 2 * eager
        try (CudaGraph g = be.endCapture()) {
            long t = System.nanoTime();
            for (int i = 0; i < 100; i++) {
                be.replay(g, batch);
            }
            be.sync();
            double us = (System.nanoTime() - t) / 1e3 / 100;
            float[] a = new float[rows];
            float[] b = new float[rows];
            be.download(eager, 0, a, 0, rows);
            be.download(replayed, 0, b, 0, rows);
            for (int i = 0; i < rows; i++) {
                if (Math.abs(b[i] - 2 * a[i]) > 1e-5 * Math.max(1, Math.abs(a[i]))) {
                    System.out.println("graph replay: row " + i + " got " + b[i] + ", expected " + 2 * a[i] + " -> FAILED");
                    return "graph replay mismatch";
                }
            }
            System.out.printf("graph capture/replay (%d ops): ok, %.1f us per replay incl. batch upload%n",
                    g.operations(), us);
        }
        return null;
    }

    private static void copyBandwidth(CudaBackend be) {
        double gbs = be.copyBandwidthGBs();
        System.out.printf("device-to-device copy: %.0f GB/s (1 GiB x 10, counting read + write = 2 x bytes)%n", gbs);
    }

    /**
     * n=1 GEMV time and weight GB/s, with one and with four rows per warp (then back to the default): 50 products
     * captured into one graph, replayed, timed by the host around a sync (launch gaps inside the graph count).
     */
    private static void gemvBandwidth(CudaBackend be, Arena arena, DType dt, int rows, int cols) {
        DType source = dt.isQuantized() ? dt : DType.BF16;
        Weight w = be.matrix(List.of(weights(arena, source, rows, cols, null)), WeightFormat.parse(dt.name()));
        Buffer x = be.allocate(cols);
        Buffer out = be.allocate(rows);
        Batch batch = new Batch(1, 1, 1);
        batch.nTokens = 1;
        batch.nSeqs = 1;
        CudaBackend.Options tuned = be.options();
        try {
            for (int rowsPerWarp : new int[] {1, 4}) {
                be.retune(tuned.withGemvRows(rowsPerWarp));
                int reps = 50;
                be.beginCapture(batch);
                try {
                    for (int i = 0; i < reps; i++) {
                        be.matmul(w, null, x, 1, out);
                    }
                } catch (RuntimeException e) {
                    be.abortCapture();
                    throw e;
                }
                try (CudaGraph g = be.endCapture()) {
                    be.replay(g, batch);
                    be.sync();
                    long t0 = System.nanoTime();
                    be.replay(g, batch);
                    be.sync();
                    double s = (System.nanoTime() - t0) / 1e9 / reps;
                    System.out.printf("GEMV %s %dx%d n=1, %d row(s)/warp: %.1f us, %.0f GB/s of weights%n", dt, rows,
                            cols, rowsPerWarp, s * 1e6, w.byteSize() / s / 1e9);
                }
            }
        } finally {
            be.retune(tuned);
        }
    }
}
