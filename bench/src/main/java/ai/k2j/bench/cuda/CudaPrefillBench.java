package ai.k2j.bench.cuda;

import ai.k2j.engine.GenerationRequest;
import ai.k2j.engine.GenerationResult;
import ai.k2j.engine.LanguageModel;
import ai.k2j.engine.ModelOptions;
import ai.k2j.engine.SamplingParams;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.Weight;
import ai.k2j.kernels.cuda.CudaBackend;
import ai.k2j.loaders.Checkpoint;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Prefill on the GPU (tools/gpu/bench-prefill.sh), two parts:
 *
 * <pre>
 * java ... ai.k2j.bench.cuda.CudaPrefillBench --gemm 0.5b,7b,32b [--rows 256] [--json FILE] [--label L]
 * java ... ai.k2j.bench.cuda.CudaPrefillBench --model DIR --prompts 512,4096,16384 [--runs 2] [--json FILE] [--label L]
 * java ... ai.k2j.bench.cuda.CudaPrefillBench --model DIR --batch 32 --prompts 128 --gen 128 [--json FILE]
 * (--backend cpu|reference runs the --model parts elsewhere: a dry run of the harness)
 * </pre>
 *
 * {@code --gemm}: the BF16 GEMM peak cuBLAS reaches on this card (8192³, the call k2j uses: BF16×BF16, FP32
 * accumulate and output), then per Qwen2.5 preset the four prefill GEMMs of a layer (q|k|v, o, gate|up, down) at
 * {@code rows} tokens (the engine's prefill chunk): k2j's {@code matmul} as the model calls it (activation rounding,
 * GEMM, bias) and raw cuBLAS at the same shape, in TFLOP/s and as fractions of the peak; the layer's total is
 * time-weighted. The mode is the backend's (system properties: -Dk2j.cuda.prefillGemm).
 *
 * <p>{@code --model}: prefill tok/s of the model for each prompt length (a random prompt, one generated token,
 * GenerationResult.prefillNanos, best of {@code runs} after a warm-up), in the mode the system properties select.
 * With {@code --batch N}: N concurrent greedy requests through the continuous-batching engine (aggregate tok/s;
 * steps of more than 8 tokens run the tensor-core GEMMs). One JSON object per measurement is appended to
 * {@code --json}.
 */
public final class CudaPrefillBench {

    private record Shape(String name, int hidden, int heads, int kvHeads, int headDim, int inter, int layers) {
    }

    private static final List<Shape> SHAPES = List.of(
            new Shape("0.5b", 896, 14, 2, 64, 4864, 24),
            new Shape("1.5b", 1536, 12, 2, 128, 8960, 28),
            new Shape("7b", 3584, 28, 4, 128, 18944, 28),
            new Shape("32b", 5120, 40, 8, 128, 27648, 64));

    private CudaPrefillBench() {
    }

    public static void main(String[] argv) throws IOException {
        String gemm = null;
        String model = null;
        int[] prompts = {512, 4096, 16384};
        int runs = 2;
        int rows = 256;
        String json = "";
        String label = "";
        int batch = 0;
        int gen = 128;
        String backend = "cuda";
        for (int i = 0; i < argv.length; i += 2) {
            if (i + 1 >= argv.length) {
                throw new IllegalArgumentException("CudaPrefillBench: " + argv[i] + " needs a value");
            }
            String v = argv[i + 1];
            switch (argv[i]) {
                case "--gemm" -> gemm = v;
                case "--model" -> model = v;
                case "--prompts" -> prompts = Arrays.stream(v.split(",")).mapToInt(Integer::parseInt).toArray();
                case "--runs" -> runs = Integer.parseInt(v);
                case "--rows" -> rows = Integer.parseInt(v);
                case "--json" -> json = v;
                case "--label" -> label = v;
                case "--batch" -> batch = Integer.parseInt(v);
                case "--gen" -> gen = Integer.parseInt(v);
                case "--backend" -> backend = v;
                default -> throw new IllegalArgumentException("CudaPrefillBench: unknown flag " + argv[i]);
            }
        }
        String mode = System.getProperty("k2j.cuda.prefillGemm", "auto") + "/"
                + System.getProperty("k2j.cuda.prefillAttention", "general") + "/chunk"
                + System.getProperty("k2j.prefillChunk", "256");
        if (gemm != null) {
            gemmBench(gemm.split(","), rows, mode, json, label);
        }
        if (model != null && batch > 0) {
            batchBench(Path.of(model), backend, batch, prompts[0], gen, mode, json, label.isEmpty() ? Path.of(model)
                    .getFileName().toString() : label);
        } else if (model != null) {
            prefillBench(Path.of(model), backend, prompts, runs, mode, json, label.isEmpty() ? Path.of(model).getFileName()
                    .toString() : label);
        }
        if (gemm == null && model == null) {
            throw new IllegalArgumentException("CudaPrefillBench: give --gemm PRESETS and/or --model DIR");
        }
    }

    // ------------------------------------------------------------------------------------------------ GEMMs

    private static void gemmBench(String[] presets, int rows, String mode, String json, String label)
            throws IOException {
        try (CudaBackend be = new CudaBackend(); Arena arena = Arena.ofShared()) {
            System.out.print(be.describe());
            double peak = be.cublasBf16GemmTflops(8192, 8192, 8192, 5);
            System.out.printf(Locale.ROOT, "cuBLAS BF16 GEMM peak (8192^3, FP32 out) on %s: %.1f TFLOP/s%n",
                    be.deviceName(), peak);
            emit(json, String.format(Locale.ROOT, "{\"engine\":\"cublas\",\"what\":\"bf16_gemm_peak\",\"device\":\"%s\","
                    + "\"m\":8192,\"n\":8192,\"k\":8192,\"tflops\":%.2f}", be.deviceName(), peak));
            for (String p : presets) {
                Shape s = SHAPES.stream().filter(x -> x.name.equals(p)).findFirst().orElseThrow(
                        () -> new IllegalArgumentException("unknown preset " + p + " (0.5b, 1.5b, 7b, 32b)"));
                int qkv = (s.heads + 2 * s.kvHeads) * s.headDim;
                int[][] mats = {{qkv, s.hidden}, {s.hidden, s.heads * s.headDim}, {2 * s.inter, s.hidden},
                        {s.hidden, s.inter}};
                String[] names = {"qkv", "o", "gate_up", "down"};
                double k2jSeconds = 0;
                double cublasSeconds = 0;
                double flops = 0;
                for (int i = 0; i < mats.length; i++) {
                    int m = mats[i][0];
                    int k = mats[i][1];
                    double f = 2.0 * m * rows * k;
                    double ours = k2jMatmulSeconds(be, arena, m, k, rows, i == 0);
                    double raw = f / (be.cublasBf16GemmTflops(m, rows, k, 7) * 1e12);
                    k2jSeconds += ours;
                    cublasSeconds += raw;
                    flops += f;
                    System.out.printf(Locale.ROOT, "  %-5s %-8s %6d x %-6d n=%d: k2j %7.1f TFLOP/s (%4.0f%% of peak)  "
                                    + "cuBLAS %7.1f (%4.0f%%)  [%s]%n", s.name, names[i], m, k, rows,
                            f / ours / 1e12, 100 * f / ours / 1e12 / peak, f / raw / 1e12, 100 * f / raw / 1e12 / peak,
                            mode);
                }
                double k2jT = flops / k2jSeconds / 1e12;
                double rawT = flops / cublasSeconds / 1e12;
                System.out.printf(Locale.ROOT, "  %-5s layer GEMMs n=%d: k2j %.1f TFLOP/s = %.0f%% of the peak; cuBLAS at"
                        + " these shapes %.1f (%.0f%%) [%s]%n", s.name, rows, k2jT, 100 * k2jT / peak, rawT,
                        100 * rawT / peak, mode);
                emit(json, String.format(Locale.ROOT, "{\"engine\":\"k2j\",\"what\":\"prefill_gemm\",\"label\":\"%s\","
                                + "\"preset\":\"%s\",\"mode\":\"%s\",\"device\":\"%s\",\"rows\":%d,\"k2j_tflops\":%.2f,"
                                + "\"cublas_same_shapes_tflops\":%.2f,\"peak_tflops\":%.2f,\"k2j_fraction_of_peak\":%.3f}",
                        label, s.name, mode, be.deviceName(), rows, k2jT, rawT, peak, k2jT / peak));
            }
        }
    }

    /** Seconds per k2j matmul of n rows through W [m, k] (BF16, random), mean of 10 after a warm-up. */
    private static double k2jMatmulSeconds(CudaBackend be, Arena arena, int m, int k, int n, boolean bias) {
        Weight w = be.matrix(List.of(randomBf16(arena, m, k)), null);
        Buffer x = be.allocate((long) n * k);
        float[] host = new float[n * k];
        SplittableRandom rnd = new SplittableRandom(3);
        for (int i = 0; i < host.length; i++) {
            host[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        be.upload(host, 0, x, 0, host.length);
        Buffer b = bias ? be.allocate(m) : null;
        Buffer out = be.allocate((long) n * m);
        be.matmul(w, b, x, n, out);
        be.sync();
        int reps = 10;
        long t0 = System.nanoTime();
        for (int r = 0; r < reps; r++) {
            be.matmul(w, b, x, n, out);
        }
        be.sync();
        return (System.nanoTime() - t0) / 1e9 / reps;
    }

    private static Tensor randomBf16(Arena arena, int rows, int cols) {
        long count = (long) rows * cols;
        MemorySegment seg = arena.allocate(2 * count, 16);
        SplittableRandom rnd = new SplittableRandom(rows * 31L + cols);
        for (long i = 0; i < count; i++) {
            // random sign and mantissa, exponent of 2^-6..2^-5: weights of a trained model's magnitude
            int bits = (rnd.nextInt() & 0x807f) | 0x3c80;
            seg.set(ValueLayout.JAVA_SHORT_UNALIGNED, 2 * i, (short) bits);
        }
        return new Tensor("w", DType.BF16, new long[] {rows, cols}, seg);
    }

    // ------------------------------------------------------------------------------------------------ prefill

    private static void prefillBench(Path model, String backend, int[] prompts, int runs, String mode, String json,
                                     String label) throws IOException {
        int longest = Arrays.stream(prompts).max().orElse(512);
        ModelConfig config;
        try (Checkpoint cp = Checkpoint.open(model)) {
            config = cp.config();
        }
        long t0 = System.nanoTime();
        ModelOptions options = ModelOptions.defaults().withBackend(backend).withMaxContext(longest + 32);
        try (LanguageModel lm = LanguageModel.load(model, options)) {
            System.out.printf(Locale.ROOT, "k2j %s loaded in %.1f s [%s]%n", label, (System.nanoTime() - t0) / 1e9,
                    mode);
            int vocab = Math.min(config.vocabSize(), 151643);
            int[] warm = new SplittableRandom(0).ints(Math.min(300, longest), 0, vocab).toArray();
            lm.generate(new GenerationRequest(warm, 2, SamplingParams.greedy(), List.of(), true), null);  // kernels, JIT
            for (int len : prompts) {
                int[] prompt = new SplittableRandom(len).ints(len, 0, vocab).toArray();
                List<Double> tps = new ArrayList<>();
                for (int r = 0; r < runs; r++) {
                    GenerationResult res = lm.generate(new GenerationRequest(prompt, 1, SamplingParams.greedy(),
                            List.of(), true), null);
                    tps.add(len / (res.prefillNanos() / 1e9));
                }
                double best = tps.stream().mapToDouble(Double::doubleValue).max().orElse(0);
                System.out.printf(Locale.ROOT, "k2j %-14s prompt %6d: prefill %9.0f tok/s (runs %s) [%s]%n", label, len,
                        best, tps.stream().map(v -> String.format(Locale.ROOT, "%.0f", v)).toList(), mode);
                emit(json, String.format(Locale.ROOT, "{\"engine\":\"k2j\",\"what\":\"prefill\",\"label\":\"%s\","
                                + "\"mode\":\"%s\",\"prompt_tokens\":%d,\"prefill_tok_s\":%.1f,\"runs\":%s}", label, mode,
                        len, best, tps.stream().map(v -> String.format(Locale.ROOT, "%.1f", v)).toList()));
            }
        }
    }

    // ------------------------------------------------------------------------------------------------ batched decode

    /**
     * {@code batch} concurrent greedy requests (random prompts of {@code prompt} tokens, {@code gen} tokens each,
     * eos ignored) through the continuous-batching engine: aggregate generated tok/s over the wall time from the
     * first submit to the last completion (prefill included, as HF's batched generate is timed), after a warm-up
     * round of the same shape.
     */
    private static void batchBench(Path model, String backend, int batch, int prompt, int gen, String mode,
                                   String json, String label) throws IOException {
        ai.k2j.engine.EngineOptions options = ai.k2j.engine.EngineOptions.defaults().withBackend(backend)
                .withMaxBatch(batch).withMaxContext(prompt + gen + 32);
        try (ai.k2j.engine.BatchEngine engine = ai.k2j.engine.BatchEngine.load(model, null, options)) {
            int vocab = Math.min(engine.vocabSize(), 151643);
            for (int round = 0; round < 2; round++) {
                List<ai.k2j.engine.RequestHandle> handles = new ArrayList<>();
                long t0 = System.nanoTime();
                for (int i = 0; i < batch; i++) {
                    int[] ids = new SplittableRandom(1000L * round + i).ints(prompt, 0, vocab).toArray();
                    handles.add(engine.submit(new ai.k2j.engine.EngineRequest(new GenerationRequest(ids, gen,
                            SamplingParams.greedy(), List.of(), true), 1, false), null));
                }
                long tokens = 0;
                for (ai.k2j.engine.RequestHandle h : handles) {
                    tokens += h.await().get(0).ids().length;
                }
                double s = (System.nanoTime() - t0) / 1e9;
                if (round == 0) {
                    continue;  // warm-up: kernels, graphs, cuBLAS
                }
                System.out.printf(Locale.ROOT, "k2j %-14s batch %d x (prompt %d + %d): %d tokens in %.2f s = %.0f tok/s"
                        + " aggregate [%s]%n", label, batch, prompt, gen, tokens, s, tokens / s, mode);
                emit(json, String.format(Locale.ROOT, "{\"engine\":\"k2j\",\"what\":\"batched_decode\",\"label\":\"%s\","
                                + "\"mode\":\"%s\",\"batch\":%d,\"prompt_tokens\":%d,\"gen_tokens\":%d,"
                                + "\"generated\":%d,\"seconds\":%.3f,\"aggregate_tok_s\":%.1f}", label, mode, batch,
                        prompt, gen, tokens, s, tokens / s));
            }
        }
    }

    private static void emit(String json, String line) throws IOException {
        if (!json.isEmpty()) {
            Files.writeString(Path.of(json), line + "\n", StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                    StandardOpenOption.APPEND);
        }
    }
}
