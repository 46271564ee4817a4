package ai.k2j.cli;

import ai.k2j.engine.ModelContext;
import ai.k2j.engine.Sequence;
import ai.k2j.kernels.Backend;
import ai.k2j.kernels.Batch;
import ai.k2j.kernels.ReferenceBackend;
import ai.k2j.kernels.cpu.CpuBackend;
import ai.k2j.loaders.Checkpoint;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.WeightFormat;

import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * {@code k2j bench}: prefill and decode speed of one model, and how close decoding comes to the memory roofline.
 *
 * <p>In one process: load (optionally quantizing), measure the machine's read bandwidth with the backend's own
 * threads ({@link CpuBackend#readProbe}), warm the JIT up, then prefill a prompt of pseudo-random token ids
 * (chunks of 256) and decode greedily, timing every step. Batch-1 decoding reads every weight once per token, so
 * weight bytes per token × tokens per second is the bandwidth achieved; its ratio to the measured read bandwidth
 * is the roofline ratio. Allocation per decoded token (calling thread plus workers) is reported too.
 *
 * <p>The probe runs twice over. Passes interleaved with the timed decode steps (one after every
 * {@value #PROBE_EVERY} steps, outside the steps' timing) see the same seconds of a shared machine as the decode
 * does, and their mean (the better of the two load widths' means) is the roofline: mean against mean. The best
 * single pass seen (before, during or after) is reported too, with the ratio against it: on a machine whose
 * neighbours come and go, the best pass is a quiet instant that the decode's mean over seconds cannot match.
 */
final class BenchCommand implements Command {

    static final int DEFAULT_PROMPT = 512;
    static final int DEFAULT_GEN = 128;
    /** Decode steps per warm-up round: enough for C2 to compile the decode kernels. */
    static final int WARMUP_DECODE = 64;
    /** Decode steps between two interleaved bandwidth-probe passes. */
    static final int PROBE_EVERY = 4;

    static final VerbSpec SPEC = new VerbSpec("bench", "speed vs the roofline", List.of(
            Flag.required("model", "DIR", "HF-style model directory"),
            Flag.option("quant", "q8_0|q4_0", "the checkpoint's dtype", "quantize weights at load"),
            Flag.option("prompt-tokens", "N", String.valueOf(DEFAULT_PROMPT), "prompt length to prefill"),
            Flag.option("gen-tokens", "M", String.valueOf(DEFAULT_GEN), "tokens to generate (the first from the"
                    + " prefill)"),
            Flag.option("threads", "N", "all processors", "CPU threads"),
            Flag.option("warmup", "N", "2", "untimed warm-up rounds first"),
            Flag.option("bandwidth-mb", "MB", "1024", "memory the bandwidth probe reads per pass"),
            Flag.option("backend", "cpu|reference", "cpu", "compute backend"),
            Flag.toggle("json", "print one JSON object instead of the text report"),
            Flag.option("draft", "DIR", null, "instead: plain vs speculative decoding on the same prompts, with"
                    + " speedup, acceptance rate and the theoretical bound (flags as 'k2j spec-bench')")), null);

    @Override
    public VerbSpec spec() {
        return SPEC;
    }

    /** Everything one run measured. Times in seconds unless named otherwise. */
    record Report(String model, String backend, String weights, int threads, int promptTokens, int genTokens,
                  double prefillSeconds, double decodeSeconds, double ttftMs, double p50Ms, double p99Ms,
                  long weightBytesPerToken, double bandwidth, double bestBandwidth, int probePasses,
                  double allocBytesPerToken, int vectorBits) {

        double prefillTokensPerSecond() {
            return promptTokens / prefillSeconds;
        }

        /** The first token comes from the prefill; the other genTokens − 1 are decode steps. */
        double decodeTokensPerSecond() {
            return (genTokens - 1) / decodeSeconds;
        }

        /** Bytes per second the decode steps streamed from weights. */
        double achievedBandwidth() {
            return weightBytesPerToken * decodeTokensPerSecond();
        }

        /** Achieved over the interleaved probe's mean: the same seconds of the machine on both sides. */
        double rooflineRatio() {
            return bandwidth > 0 ? achievedBandwidth() / bandwidth : Double.NaN;
        }

        /** Achieved over the best single probe pass of the run (the strictest reading). */
        double rooflineRatioVsBest() {
            return bestBandwidth > 0 ? achievedBandwidth() / bestBandwidth : Double.NaN;
        }
    }

    @Override
    public int run(Args args, PrintStream out, PrintStream err) {
        if (args.has("draft")) {
            // bench --draft DIR: plain vs speculative decoding on the same prompts (docs/speculative.md)
            return new SpeculativeBenchCommand().run(args.declare(SpeculativeBenchCommand.SPEC), out, err);
        }
        Path dir = args.path("model");
        WeightFormat quant = Cli.quantFormat(args.string("quant", null), "--quant");
        int prompt = Cli.intAtLeast(args, "prompt-tokens", DEFAULT_PROMPT, 1);
        int gen = Cli.intAtLeast(args, "gen-tokens", DEFAULT_GEN, 2);
        int threads = Cli.intAtLeast(args, "threads", Runtime.getRuntime().availableProcessors(), 1);
        int warmup = Cli.intAtLeast(args, "warmup", 2, 0);
        int bandwidthMb = Cli.intAtLeast(args, "bandwidth-mb", 1024, 16);
        String backendName = args.string("backend", "cpu");
        if (!backendName.equals("cpu") && !backendName.equals("reference")) {
            throw new UsageException("--backend must be cpu or reference, got '" + backendName + "'");
        }
        boolean json = args.flag("json");
        args.finish();
        Path modelDir = Cli.modelDir(args);

        Report r = measure(modelDir, quant, prompt, gen, threads, warmup, (long) bandwidthMb << 20, backendName, err);
        if (json) {
            out.println(toJson(r).toString());
        } else {
            printText(r, out);
        }
        return 0;
    }

    /** Loads the model and runs the benchmark; progress goes to {@code err}. */
    static Report measure(Path dir, WeightFormat quant, int prompt, int gen, int threads, int warmup, long probeBytes,
                          String backendName, PrintStream err) {
        try (Checkpoint ckpt = Checkpoint.open(dir);
             Backend backend = backendName.equals("cpu") ? new CpuBackend(threads) : new ReferenceBackend()) {
            ModelConfig config = ckpt.config();
            if (prompt + gen > config.maxPositionEmbeddings()) {
                throw new IllegalArgumentException("prompt + gen tokens (" + (prompt + gen) + ") exceed the model's "
                        + config.maxPositionEmbeddings() + " positions");
            }
            int warmPrompt = Math.min(prompt, ModelContext.PREFILL_CHUNK);
            int warmGen = Math.max(2, Math.min(WARMUP_DECODE, config.maxPositionEmbeddings() - warmPrompt));
            int context = Math.max(prompt + gen, warmPrompt + warmGen);
            long t0 = System.nanoTime();
            ModelContext model = ModelContext.load(config, ckpt::find, dir.toString(), backend,
                    ModelContext.Limits.singleSequence(context), quant);
            err.printf(Locale.ROOT, "[k2j] bench: loaded %s (%s) in %.1f s; %d thread(s)%n", dir,
                    quant == null ? "native dtype" : quant, (System.nanoTime() - t0) / 1e9, threads);

            // The probe first, so the vector classes it loads are loaded before the model's kernels compile (one
            // loaded later invalidated them: they ran interpreted, allocating, into the timed run); its own loops,
            // invalidated in turn by the model's classes, are compiled again after the warm-up.
            CpuBackend.ReadProbe probe = backend instanceof CpuBackend cpu ? cpu.readProbe(probeBytes) : null;
            try {
                int[] promptIds = new SplittableRandom(42).ints(prompt, 0, config.vocabSize()).toArray();
                Run run = new Run(model, Math.max(gen, warmGen));
                for (int w = 0; w < warmup; w++) {
                    run.once(Arrays.copyOf(promptIds, warmPrompt), warmGen, null);
                    err.printf(Locale.ROOT, "[k2j] bench: warm-up %d/%d%n", w + 1, warmup);
                }
                if (probe != null) {
                    probe.warmUp();
                }
                double before = probe == null ? Double.NaN : probe.best(5);
                run.once(promptIds, gen, probe);
                double best = probe == null ? Double.NaN : Math.max(Math.max(before, probe.best(5)), run.probeBest);
                // Too few decode steps for an interleaved pass (gen ≤ PROBE_EVERY): the best pass is all there is.
                double bandwidth = probe == null ? Double.NaN : run.probePasses() > 0 ? run.probeMean() : best;
                long[] steps = Arrays.copyOf(run.stepNanos, gen - 1);
                Arrays.sort(steps);
                double p50 = steps.length == 0 ? 0 : steps[steps.length / 2] / 1e6;
                double p99 = steps.length == 0 ? 0 : steps[Math.min(steps.length - 1, (int) Math.ceil(0.99 * steps.length) - 1)]
                        / 1e6;
                String weights = quant != null ? quant.name() : ckpt.gguf().isPresent()
                        ? "GGUF " + ckpt.gguf().get().fileType() : ckpt.tensor(
                        "model.layers.0.mlp.down_proj.weight").dtype().name();
                int vectorBits = jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.vectorBitSize();
                return new Report(dir.toString(), backend.name(), weights, threads, prompt, gen,
                        run.prefillNanos / 1e9, run.decodeNanos / 1e9, run.firstTokenNanos / 1e6, p50, p99,
                        model.weightBytesPerToken(), bandwidth, best, run.probePasses(),
                        run.allocatedBytes / (double) (gen - 1), vectorBits);
            } finally {
                if (probe != null) {
                    probe.close();
                }
            }
        }
    }

    /** One prefill + decode, timed; preallocated so the decode steps themselves allocate nothing. */
    private static final class Run {
        final ModelContext model;
        final Batch batch;
        final long[] stepNanos;
        final int[] argmax = new int[1];
        long prefillNanos;
        long firstTokenNanos;
        long decodeNanos;
        long allocatedBytes;
        /** Interleaved probe passes of the last timed run: bytes/s summed and counted per width (0 preferred, 1 256-bit). */
        final double[] probeSum = new double[2];
        final int[] probeCount = new int[2];
        double probeBest;
        private final com.sun.management.ThreadMXBean mx =
                (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        private final long[] threadIds;
        private final long[] allocBefore;

        Run(ModelContext model, int gen) {
            this.model = model;
            this.batch = model.newBatch();
            this.stepNanos = new long[Math.max(1, gen)];
            long[] workers = model.backend() instanceof CpuBackend cpu ? cpu.workerThreadIds() : new long[0];
            this.threadIds = new long[workers.length + 1];
            System.arraycopy(workers, 0, threadIds, 1, workers.length);
            this.allocBefore = new long[threadIds.length];
        }

        /** Mean of the interleaved passes: the better of the two widths' means. */
        double probeMean() {
            double m = 0;
            for (int w = 0; w < 2; w++) {
                if (probeCount[w] > 0) {
                    m = Math.max(m, probeSum[w] / probeCount[w]);
                }
            }
            return m;
        }

        int probePasses() {
            return probeCount[0] + probeCount[1];
        }

        /** Prefill, then gen − 1 timed decode steps; with a probe, one pass after every PROBE_EVERY steps, untimed. */
        void once(int[] prompt, int gen, CpuBackend.ReadProbe probe) {
            threadIds[0] = Thread.currentThread().threadId();
            probeSum[0] = probeSum[1] = 0;
            probeCount[0] = probeCount[1] = 0;
            probeBest = 0;
            try (Sequence seq = model.newSequence()) {
                long start = System.nanoTime();
                model.prefill(seq, batch, prompt, 0, prompt.length, true);
                model.forwardArgmax(batch, argmax);
                int token = argmax[0];
                long prefilled = System.nanoTime();
                prefillNanos = prefilled - start;
                firstTokenNanos = prefillNanos;
                for (int i = 0; i < threadIds.length; i++) {
                    allocBefore[i] = mx.getThreadAllocatedBytes(threadIds[i]);
                }
                long decoding = 0;
                for (int i = 1; i < gen; i++) {
                    long begin = System.nanoTime();
                    batch.clear();
                    seq.addTo(batch, token, true);
                    model.forwardArgmax(batch, argmax);
                    token = argmax[0];
                    long took = System.nanoTime() - begin;
                    stepNanos[i - 1] = took;
                    decoding += took;
                    if (probe != null && i % PROBE_EVERY == 0) {
                        int w = (i / PROBE_EVERY) & 1;
                        for (int k = 0; k < threadIds.length; k++) {
                            allocBefore[k] -= mx.getThreadAllocatedBytes(threadIds[k]);
                        }
                        double bw = probe.pass(w == 1);
                        for (int k = 0; k < threadIds.length; k++) { // what a pass allocates is not the decode's
                            allocBefore[k] += mx.getThreadAllocatedBytes(threadIds[k]);
                        }
                        probeSum[w] += bw;
                        probeCount[w]++;
                        probeBest = Math.max(probeBest, bw);
                    }
                }
                decodeNanos = decoding;
                long allocated = 0;
                for (int i = 0; i < threadIds.length; i++) {
                    allocated += mx.getThreadAllocatedBytes(threadIds[i]) - allocBefore[i];
                }
                allocatedBytes = allocated;
            }
        }
    }

    static ObjectNode toJson(Report r) {
        ObjectNode o = Cli.JSON.createObjectNode();
        o.put("model", r.model());
        o.put("backend", r.backend());
        o.put("weights", r.weights());
        o.put("threads", r.threads());
        o.put("vector_bits", r.vectorBits());
        o.put("prompt_tokens", r.promptTokens());
        o.put("gen_tokens", r.genTokens());
        o.put("prefill_tokens_per_second", r.prefillTokensPerSecond());
        o.put("decode_tokens_per_second", r.decodeTokensPerSecond());
        o.put("time_to_first_token_ms", r.ttftMs());
        o.put("inter_token_latency_p50_ms", r.p50Ms());
        o.put("inter_token_latency_p99_ms", r.p99Ms());
        o.put("weight_bytes_per_token", r.weightBytesPerToken());
        o.put("achieved_gb_per_second", r.achievedBandwidth() / 1e9);
        o.put("read_bandwidth_gb_per_second", r.bandwidth() / 1e9);
        o.put("roofline_ratio", r.rooflineRatio());
        o.put("read_bandwidth_best_gb_per_second", r.bestBandwidth() / 1e9);
        o.put("roofline_ratio_vs_best", r.rooflineRatioVsBest());
        o.put("probe_passes_interleaved", r.probePasses());
        o.put("prefill_to_decode_ratio", r.prefillTokensPerSecond() / r.decodeTokensPerSecond());
        o.put("allocated_bytes_per_token", r.allocBytesPerToken());
        return o;
    }

    private static void printText(Report r, PrintStream out) {
        out.printf(Locale.ROOT, "model            %s (%s weights, %s backend, %d threads, %d-bit vectors)%n", r.model(),
                r.weights(), r.backend(), r.threads(), r.vectorBits());
        out.printf(Locale.ROOT, "prefill          %.1f tok/s (%d tokens); time to first token %.0f ms%n",
                r.prefillTokensPerSecond(), r.promptTokens(), r.ttftMs());
        out.printf(Locale.ROOT, "decode           %.2f tok/s (%d tokens); inter-token p50 %.2f ms, p99 %.2f ms%n",
                r.decodeTokensPerSecond(), r.genTokens(), r.p50Ms(), r.p99Ms());
        out.printf(Locale.ROOT, "weights/token    %s%n", Cli.bytes(r.weightBytesPerToken()));
        if (Double.isNaN(r.bandwidth())) {
            out.printf(Locale.ROOT, "bandwidth        %.2f GB/s achieved (read bandwidth not measured: the probe runs on the "
                    + "cpu backend's threads)%n", r.achievedBandwidth() / 1e9);
        } else {
            out.printf(Locale.ROOT, "bandwidth        %.2f GB/s achieved, %.2f GB/s read bandwidth (mean of %d probe passes "
                    + "between the decode steps): %.0f%% of the roofline%n", r.achievedBandwidth() / 1e9,
                    r.bandwidth() / 1e9, r.probePasses(), 100 * r.rooflineRatio());
            out.printf(Locale.ROOT, "                 best single probe pass %.2f GB/s: %.0f%% of that%n",
                    r.bestBandwidth() / 1e9, 100 * r.rooflineRatioVsBest());
        }
        out.printf(Locale.ROOT, "prefill/decode   %.1fx%n", r.prefillTokensPerSecond() / r.decodeTokensPerSecond());
        out.printf(Locale.ROOT, "allocation       %.1f bytes per decoded token%n", r.allocBytesPerToken());
    }
}
