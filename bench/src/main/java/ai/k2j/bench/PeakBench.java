package ai.k2j.bench;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * The machine's arithmetic peaks as far as the Vector API reaches them, the yardstick for the prefill GEMM:
 * <ul>
 *   <li>{@code fp32Fma}: sixteen independent float FMA chains in registers (enough to cover the FMA latency on two
 *       pipes); the {@code flops} counter (2 per lane per FMA) gives the float32 peak.</li>
 *   <li>{@code int8Dot}: the best int8·int8 dot product the Vector API can express: JDK 25 has no widening
 *       multiply-add (no vpmaddwd, no VNNI vpdpbusd), so bytes are widened to shorts, multiplied, widened to ints
 *       and added; {@code macs} counts int8 multiply-adds. ggml's q8_0 dot does 64 of them per vpdpbusd.</li>
 * </ul>
 * Run with {@code -t 2} (both cores) and {@code -t 1}:
 * {@code java --add-modules jdk.incubator.vector -jar bench/target/benchmarks.jar PeakBench -t 2}
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
@State(Scope.Thread)
public class PeakBench {

    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    static final VectorSpecies<Short> S = VectorSpecies.of(short.class, F.vectorShape());
    static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    static final int ITERATIONS = 4096;
    /** Bytes per int8 operand: a few KB, so the dot runs from L1. */
    static final int BYTES = 4096;

    @AuxCounters(AuxCounters.Type.OPERATIONS)
    @State(Scope.Thread)
    public static class Counters {
        public long flops;
        public long macs;
    }

    private float[] seed;
    private byte[] a;
    private byte[] b;
    private float[] sink;

    @Setup
    public void setup() {
        seed = new float[F.length()];
        for (int i = 0; i < seed.length; i++) {
            seed[i] = 1f + i * 1e-7f;
        }
        a = new byte[BYTES];
        b = new byte[BYTES];
        for (int i = 0; i < BYTES; i++) {
            a[i] = (byte) (i * 7 - 100);
            b[i] = (byte) (i * 13 + 5);
        }
        sink = new float[F.length()];
    }

    @Benchmark
    public float fp32Fma(Counters c) {
        FloatVector m = FloatVector.fromArray(F, seed, 0);
        FloatVector k = m.mul(0.999999f);
        FloatVector a0 = m, a1 = m.add(1f), a2 = m.add(2f), a3 = m.add(3f), a4 = m.add(4f), a5 = m.add(5f);
        FloatVector a6 = m.add(6f), a7 = m.add(7f), a8 = m.add(8f), a9 = m.add(9f), a10 = m.add(10f);
        FloatVector a11 = m.add(11f), a12 = m.add(12f), a13 = m.add(13f), a14 = m.add(14f), a15 = m.add(15f);
        for (int i = 0; i < ITERATIONS; i++) {
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
        FloatVector s = a0.add(a1).add(a2.add(a3)).add(a4.add(a5).add(a6.add(a7)))
                .add(a8.add(a9).add(a10.add(a11)).add(a12.add(a13).add(a14.add(a15))));
        s.intoArray(sink, 0);
        c.flops += 2L * 16 * ITERATIONS * F.length();
        return sink[0];
    }

    @Benchmark
    public int int8Dot(Counters c) {
        IntVector s0 = IntVector.zero(I);
        IntVector s1 = s0;
        int step = B.length();
        for (int i = 0; i < BYTES; i += 2 * step) {
            ShortVector p0 = ((ShortVector) ByteVector.fromArray(B, a, i).convertShape(VectorOperators.B2S, S, 0))
                    .mul((ShortVector) ByteVector.fromArray(B, b, i).convertShape(VectorOperators.B2S, S, 0));
            ShortVector p1 = ((ShortVector) ByteVector.fromArray(B, a, i + step).convertShape(VectorOperators.B2S, S, 0))
                    .mul((ShortVector) ByteVector.fromArray(B, b, i + step).convertShape(VectorOperators.B2S, S, 0));
            // two products of |q| <= 127 fit a short; widen the halves and add
            ShortVector p = p0.add(p1);
            s0 = s0.add((IntVector) p.convertShape(VectorOperators.S2I, I, 0));
            s1 = s1.add((IntVector) p.convertShape(VectorOperators.S2I, I, 1));
        }
        c.macs += BYTES;
        return s0.add(s1).reduceLanes(VectorOperators.ADD);
    }
}
