package ai.k2j.bench;

import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.Weight;
import ai.k2j.kernels.cpu.CpuBackend;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;

import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.lang.foreign.Arena;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The matmul kernels per weight dtype, through {@link CpuBackend#matmul} on the backend's own threads.
 *
 * <ul>
 *   <li>{@code tokens = 1}: matrix-vector (decode). The weights are {@code copies} distinct matrices of
 *       {@code shape} ({@code rows x cols}, Qwen2.5-0.5B's gate/up and down shapes by default) cycled through, more
 *       than the last-level cache holds, so each op streams its matrix from memory. The {@code bytes} counter is
 *       weight bytes read: its rate is the achieved bandwidth.</li>
 *   <li>{@code tokens = 64}: a prefill tile pass; the {@code flops} counter (2·rows·cols·tokens per op) gives
 *       GFLOP/s.</li>
 * </ul>
 * Run: {@code java --add-modules jdk.incubator.vector -jar bench/target/benchmarks.jar KernelBench}
 * (narrow with {@code -p dtype=Q4_0 -p tokens=1}).
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-Xmx8g"})
@State(Scope.Thread)
public class KernelBench {

    @Param({"BF16", "F16", "Q8_0", "Q4_0", "F32"})
    public String dtype;

    @Param({"4864x896", "896x4864"})
    public String shape;

    @Param({"1", "64"})
    public int tokens;

    /** 0 = all processors. */
    @Param({"0"})
    public int threads;

    /** Total weight bytes (source dtype) cycled through by the one-token case: well past any last-level cache. */
    @Param({"268435456"})
    public long footprint;

    private Arena arena;
    private CpuBackend backend;
    private Weight[] weights;
    private Buffer x;
    private Buffer out;
    private int next;
    private long bytesPerOp;
    private long flopsPerOp;

    @AuxCounters(AuxCounters.Type.OPERATIONS)
    @State(Scope.Thread)
    public static class Counters {
        public long bytes;
        public long flops;
    }

    @Setup(Level.Trial)
    public void setup() {
        String[] rc = shape.split("x");
        int rows = Integer.parseInt(rc[0]);
        int cols = Integer.parseInt(rc[1]);
        DType target = DType.valueOf(dtype);
        DType source = target.isQuantized() ? DType.BF16 : target;
        arena = Arena.ofShared();
        backend = new CpuBackend(threads);
        long oneMatrix = source.bytesFor((long) rows * cols);
        int copies = tokens == 1 ? (int) Math.max(1, footprint / oneMatrix) : 1;
        weights = new Weight[copies];
        for (int i = 0; i < copies; i++) {
            Tensor t = SyntheticWeights.matrix("w" + i, source, rows, cols, i + 1, arena);
            weights[i] = backend.matrix(List.of(t), target.isQuantized() ? WeightFormat.parse(target.name()) : null);
        }
        x = backend.allocate((long) tokens * cols);
        out = backend.allocate((long) tokens * rows);
        bytesPerOp = weights[0].byteSize();
        flopsPerOp = 2L * rows * cols * tokens;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        backend.close();
        arena.close();
    }

    @Benchmark
    public void matmul(Counters c) {
        Weight w = weights[next];
        next = next + 1 == weights.length ? 0 : next + 1;
        backend.matmul(w, null, x, tokens, out);
        c.bytes += bytesPerOp;
        c.flops += flopsPerOp;
    }
}
