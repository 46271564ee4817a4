package ai.k2j.bench;

import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.Weight;
import ai.k2j.kernels.cpu.CpuBackend;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.Arena;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Prefill GEMM efficiency per core, measured in thread CPU time so that a machine shared with other tenants
 * still gives a usable figure (wall-clock rates there depend on who else runs): one thread, the CPU backend's
 * matmul of {@code tokens} rows through each listed matrix shape, and the float32 FMA peak of the same thread
 * (sixteen independent FMA chains in registers). Prints GFLOP per CPU-second (best of the repetitions) and the
 * fraction of the peak.
 * <pre>
 *   java --add-modules jdk.incubator.vector -cp bench/target/benchmarks.jar ai.k2j.bench.GemmProbe
 *        [--dtypes BF16,Q8_0,Q4_0] [--shapes 4864x896,896x4864,1152x896,896x896] [--tokens 128] [--reps 15]
 * </pre>
 */
public final class GemmProbe {
    private GemmProbe() {
    }

    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final ThreadMXBean MX = ManagementFactory.getThreadMXBean();

    public static void main(String[] args) {
        String dtypes = "BF16,Q8_0,Q4_0";
        String shapes = "4864x896,896x4864,1152x896,896x896";
        int tokens = 128;
        int reps = 15;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--dtypes" -> dtypes = args[i + 1];
                case "--shapes" -> shapes = args[i + 1];
                case "--tokens" -> tokens = Integer.parseInt(args[i + 1]);
                case "--reps" -> reps = Integer.parseInt(args[i + 1]);
                default -> throw new IllegalArgumentException("unknown flag " + args[i]);
            }
        }
        double peak = fmaPeak(reps);
        System.out.printf(Locale.ROOT, "fp32 FMA peak (1 thread, %d-bit vectors): %.1f GFLOP/cpu-s%n",
                F.vectorBitSize(), peak);
        try (Arena arena = Arena.ofShared(); CpuBackend backend = new CpuBackend(1)) {
            for (String dt : dtypes.split(",")) {
                DType target = DType.valueOf(dt);
                DType source = target.isQuantized() ? DType.BF16 : target;
                double flops = 0;
                double seconds = 0;
                StringBuilder line = new StringBuilder();
                for (String shape : shapes.split(",")) {
                    String[] rc = shape.split("x");
                    int rows = Integer.parseInt(rc[0]);
                    int cols = Integer.parseInt(rc[1]);
                    Tensor t = SyntheticWeights.matrix("w", source, rows, cols, 1, arena);
                    Weight w = backend.matrix(List.of(t), target.isQuantized() ? WeightFormat.parse(dt) : null);
                    Buffer x = backend.allocate((long) tokens * cols);
                    Buffer out = backend.allocate((long) tokens * rows);
                    double best = Double.MAX_VALUE;
                    for (int r = 0; r < reps; r++) {
                        long c0 = MX.getCurrentThreadCpuTime();
                        backend.matmul(w, null, x, tokens, out);
                        best = Math.min(best, (MX.getCurrentThreadCpuTime() - c0) * 1e-9);
                    }
                    double f = 2.0 * rows * cols * tokens;
                    flops += f;
                    seconds += best;
                    line.append(String.format(Locale.ROOT, "  %s %.1f", shape, f / best * 1e-9));
                }
                System.out.printf(Locale.ROOT, "%-5s tokens %d: all shapes %.1f GFLOP/cpu-s = %.0f%% of peak;%s%n", dt,
                        tokens, flops / seconds * 1e-9, 100 * flops / seconds * 1e-9 / peak, line);
            }
        }
    }

    private static final float[] SINK = new float[64];

    /** Float32 FMA rate of this thread, GFLOP per CPU-second (best of reps). */
    static double fmaPeak(int reps) {
        float[] seed = new float[F.length()];
        Arrays.fill(seed, 1f);
        double best = 0;
        int iterations = 1 << 20;
        for (int r = 0; r < reps; r++) {
            long c0 = MX.getCurrentThreadCpuTime();
            fmaLoop(seed, iterations);
            double s = (MX.getCurrentThreadCpuTime() - c0) * 1e-9;
            best = Math.max(best, 2.0 * 16 * iterations * F.length() / s * 1e-9);
        }
        return best;
    }

    private static void fmaLoop(float[] seed, int iterations) {
        FloatVector m = FloatVector.fromArray(F, seed, 0);
        FloatVector k = m.mul(0.999999f);
        FloatVector a0 = m, a1 = m.add(1f), a2 = m.add(2f), a3 = m.add(3f), a4 = m.add(4f), a5 = m.add(5f);
        FloatVector a6 = m.add(6f), a7 = m.add(7f), a8 = m.add(8f), a9 = m.add(9f), a10 = m.add(10f);
        FloatVector a11 = m.add(11f), a12 = m.add(12f), a13 = m.add(13f), a14 = m.add(14f), a15 = m.add(15f);
        for (int i = 0; i < iterations; i++) {
            a0 = a0.fma(k, m);
            a1 = a1.fma(k, m);
            a2 = a2.fma(k, m);
            a3 = a3.fma(k, m);
            a4 = a4.fma(k, m);
            a5 = a5.fma(k, m);
            a6 = a6.fma(k, m);
            a7 = a7.fma(k, m);
            a8 = a8.fma(k, m);
            a9 = a9.fma(k, m);
            a10 = a10.fma(k, m);
            a11 = a11.fma(k, m);
            a12 = a12.fma(k, m);
            a13 = a13.fma(k, m);
            a14 = a14.fma(k, m);
            a15 = a15.fma(k, m);
        }
        a0.add(a1).add(a2.add(a3)).add(a4.add(a5).add(a6.add(a7)))
                .add(a8.add(a9).add(a10.add(a11)).add(a12.add(a13).add(a14.add(a15)))).intoArray(SINK, 0);
    }
}
