package ai.k2j.bench;

import ai.k2j.engine.ModelContext;
import ai.k2j.engine.Sequence;
import ai.k2j.kernels.Batch;

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
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * Whole-model steps of a Qwen2.5-0.5B-shaped model (random weights in memory, or {@code -p model=DIR}):
 * {@link #decodeStep} is one greedy decode step at a context of 128–640 tokens (the {@code weightBytes} counter's
 * rate is the achieved bandwidth), {@link #prefillChunk} one 256-token prefill chunk from position 0 (the
 * {@code tokens} counter's rate is prefill tokens per second).
 *
 * <p>Run: {@code java --add-modules jdk.incubator.vector -jar bench/target/benchmarks.jar ModelBench}
 * ({@code -p weights=q4_0 -p threads=2 -p layers=24}).
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 3)
@Measurement(iterations = 5, time = 3)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-Xmx8g"})
@State(Scope.Thread)
public class ModelBench {

    static final int PREFIX = 128;
    static final int MAX_CONTEXT = 640;
    static final int CHUNK = 256;

    @Param({"bf16", "q8_0", "q4_0"})
    public String weights;

    /** 0 = all processors. */
    @Param({"0"})
    public int threads;

    /** Decoder layers of the in-memory model (24 is Qwen2.5-0.5B). */
    @Param({"24"})
    public int layers;

    /** A model directory to load instead of the in-memory one (empty: in-memory). */
    @Param({""})
    public String model;

    private Arena arena;
    private ModelContext m;
    private Batch batch;
    private Sequence decodeSeq;
    private Sequence prefillSeq;
    private int[] prompt;
    private final int[] argmax = new int[1];
    private int token;

    @AuxCounters(AuxCounters.Type.OPERATIONS)
    @State(Scope.Thread)
    public static class Counters {
        public long weightBytes;
        public long tokens;
    }

    @Setup(Level.Trial)
    public void setup() {
        arena = Arena.ofShared();
        m = SyntheticWeights.load(model, layers, SyntheticWeights.format(weights), threads, 2 * MAX_CONTEXT, arena);
        batch = m.newBatch();
        prompt = new SplittableRandom(7).ints(CHUNK, 0, m.vocabSize()).toArray();
        decodeSeq = m.newSequence();
        batch.clear();
        decodeSeq.addTo(batch, prompt, 0, PREFIX, 1);
        m.forwardArgmax(batch, argmax);
        token = argmax[0];
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        decodeSeq.close();
        m.backend().close();
        arena.close();
    }

    @Benchmark
    public int decodeStep(Counters c) {
        if (decodeSeq.length() >= MAX_CONTEXT) {
            decodeSeq.rollback(PREFIX);
        }
        batch.clear();
        decodeSeq.addTo(batch, token, true);
        m.forwardArgmax(batch, argmax);
        token = argmax[0];
        c.weightBytes += m.weightBytesPerToken();
        c.tokens++;
        return token;
    }

    @Benchmark
    public int prefillChunk(Counters c) {
        if (prefillSeq == null) {
            prefillSeq = m.newSequence();
        }
        prefillSeq.rollback(0);
        batch.clear();
        prefillSeq.addTo(batch, prompt, 0, CHUNK, 1);
        m.forwardArgmax(batch, argmax);
        c.tokens += CHUNK;
        return argmax[0];
    }
}
