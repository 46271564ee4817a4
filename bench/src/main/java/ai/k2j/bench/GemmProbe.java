package ai.k2j.bench;

import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.Weight;
import ai.k2j.kernels.cpu.CpuBackend;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
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
 * fraction of the peak, after as many unmeasured repetitions (and any bytes the last one allocated: a kernel not
 * yet compiled by C2 boxes its vectors). It also prints what the Vector API makes of int8 arithmetic: JDK 25 has no widening
 * int8/int16 multiply-add (no vpmaddubsw/vpmaddwd, no VNNI vpdpbusd, no AVX512-BF16 vdpbf16ps), so the best int8
 * dot it can express widens bytes to shorts, multiplies, widens to ints and adds; measured beside a float dot
 * product of the same length from L1.
 * <pre>
 *   java --add-modules jdk.incubator.vector -cp bench/target/benchmarks.jar ai.k2j.bench.GemmProbe
 *        [--dtypes BF16,Q8_0,Q4_0] [--model 0.5b|1.5b|7b | --shapes 4864x896,896x4864,...] [--tokens 128] [--reps 15]
 * </pre>
 * The model presets are Qwen2.5's per-layer matrices: gate|up, down, q|k|v, o.
 */
public final class GemmProbe {
    private GemmProbe() {
    }

    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final ThreadMXBean MX = ManagementFactory.getThreadMXBean();
    private static final com.sun.management.ThreadMXBean ALLOC = (com.sun.management.ThreadMXBean) MX;

    public static void main(String[] args) {
        String dtypes = "BF16,Q8_0,Q4_0";
        String shapes = "4864x896,896x4864,1152x896,896x896";
        int tokens = 128;
        int reps = 15;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--dtypes" -> dtypes = args[i + 1];
                case "--shapes" -> shapes = args[i + 1];
                case "--model" -> shapes = switch (args[i + 1]) {
                    case "0.5b" -> "4864x896,896x4864,1152x896,896x896";
                    case "1.5b" -> "17920x1536,1536x8960,2048x1536,1536x1536";
                    case "7b" -> "37888x3584,3584x18944,4608x3584,3584x3584";
                    default -> throw new IllegalArgumentException("unknown model preset " + args[i + 1]);
                };
                case "--tokens" -> tokens = Integer.parseInt(args[i + 1]);
                case "--reps" -> reps = Integer.parseInt(args[i + 1]);
                default -> throw new IllegalArgumentException("unknown flag " + args[i]);
            }
        }
        double peak = fmaPeak(reps);
        System.out.printf(Locale.ROOT, "fp32 FMA peak (1 thread, %d-bit vectors): %.1f GFLOP/cpu-s%n",
                F.vectorBitSize(), peak);
        double[] dots = dotRates(reps);
        System.out.printf(Locale.ROOT, "dot products from L1, 1 thread: float32 FMA %.1f G multiply-adds/cpu-s, int8 via"
                + " the Vector API (widen, multiply, widen, add) %.1f G/cpu-s%n", dots[0], dots[1]);
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
                    long allocated = 0;
                    for (int r = 0; r < reps; r++) { // warm-up: until C2 has compiled the kernels, they box vectors
                        backend.matmul(w, null, x, tokens, out);
                    }
                    for (int r = 0; r < reps; r++) {
                        long a0 = ALLOC.getCurrentThreadAllocatedBytes();
                        long c0 = MX.getCurrentThreadCpuTime();
                        backend.matmul(w, null, x, tokens, out);
                        best = Math.min(best, (MX.getCurrentThreadCpuTime() - c0) * 1e-9);
                        allocated = ALLOC.getCurrentThreadAllocatedBytes() - a0; // the last repetition's
                    }
                    double f = 2.0 * rows * cols * tokens;
                    flops += f;
                    seconds += best;
                    line.append(String.format(Locale.ROOT, "  %s %.1f", shape, f / best * 1e-9));
                    if (allocated > 0) {
                        line.append(String.format(Locale.ROOT, " (allocated %d B)", allocated));
                    }
                }
                System.out.printf(Locale.ROOT, "%-5s tokens %d: all shapes %.1f GFLOP/cpu-s = %.0f%% of peak;%s%n", dt,
                        tokens, flops / seconds * 1e-9, 100 * flops / seconds * 1e-9 / peak, line);
            }
        }
    }

    private static final float[] SINK = new float[64];
    private static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class,
            VectorShape.forBitSize(F.vectorBitSize() / 2));
    private static final VectorSpecies<Short> S = VectorSpecies.of(short.class, F.vectorShape());
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    private static long dotSink;

    /** {float32, int8} multiply-adds per CPU-second of a 4096-element dot product from L1, best of reps. */
    static double[] dotRates(int reps) {
        int n = 4096;
        byte[] a = new byte[n];
        byte[] b = new byte[n];
        float[] fa = new float[n];
        float[] fb = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (byte) ((i * 7) % 255 - 127);
            b[i] = (byte) ((i * 13) % 255 - 127);
            fa[i] = a[i];
            fb[i] = b[i];
        }
        double bestF = 0;
        double bestI = 0;
        int calls = 20000;
        for (int r = 0; r < 2 * reps; r++) {
            long c0 = MX.getCurrentThreadCpuTime();
            for (int k = 0; k < calls; k++) {
                dotSink += (long) dotF32(fa, fb);
            }
            bestF = Math.max(bestF, (double) calls * n / ((MX.getCurrentThreadCpuTime() - c0) * 1e-9) * 1e-9);
            c0 = MX.getCurrentThreadCpuTime();
            for (int k = 0; k < calls; k++) {
                dotSink += dotI8(a, b);
            }
            bestI = Math.max(bestI, (double) calls * n / ((MX.getCurrentThreadCpuTime() - c0) * 1e-9) * 1e-9);
        }
        return new double[] {bestF, bestI};
    }

    private static float dotF32(float[] a, float[] b) {
        int l = F.length();
        FloatVector s0 = FloatVector.zero(F);
        FloatVector s1 = s0;
        FloatVector s2 = s0;
        FloatVector s3 = s0;
        for (int i = 0; i < a.length; i += 4 * l) {
            s0 = FloatVector.fromArray(F, a, i).fma(FloatVector.fromArray(F, b, i), s0);
            s1 = FloatVector.fromArray(F, a, i + l).fma(FloatVector.fromArray(F, b, i + l), s1);
            s2 = FloatVector.fromArray(F, a, i + 2 * l).fma(FloatVector.fromArray(F, b, i + 2 * l), s2);
            s3 = FloatVector.fromArray(F, a, i + 3 * l).fma(FloatVector.fromArray(F, b, i + 3 * l), s3);
        }
        return s0.add(s1).add(s2.add(s3)).reduceLanes(VectorOperators.ADD);
    }

    /** int8 dot (|values| ≤ 127): two products fit a short, so pairs are added before widening to ints. */
    private static int dotI8(byte[] a, byte[] b) {
        IntVector s0 = IntVector.zero(I);
        IntVector s1 = s0;
        int step = B.length();
        for (int i = 0; i < a.length; i += 2 * step) {
            ShortVector p0 = ((ShortVector) ByteVector.fromArray(B, a, i).convertShape(VectorOperators.B2S, S, 0))
                    .mul((ShortVector) ByteVector.fromArray(B, b, i).convertShape(VectorOperators.B2S, S, 0));
            ShortVector p1 = ((ShortVector) ByteVector.fromArray(B, a, i + step).convertShape(VectorOperators.B2S, S, 0))
                    .mul((ShortVector) ByteVector.fromArray(B, b, i + step).convertShape(VectorOperators.B2S, S, 0));
            ShortVector p = p0.add(p1);
            s0 = s0.add((IntVector) p.convertShape(VectorOperators.S2I, I, 0));
            s1 = s1.add((IntVector) p.convertShape(VectorOperators.S2I, I, 1));
        }
        return s0.add(s1).reduceLanes(VectorOperators.ADD);
    }

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
