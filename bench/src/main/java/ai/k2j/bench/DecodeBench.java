package ai.k2j.bench;

import ai.k2j.engine.GenerationRequest;
import ai.k2j.engine.GenerationResult;
import ai.k2j.engine.LanguageModel;
import ai.k2j.engine.ModelOptions;
import ai.k2j.engine.SamplingParams;
import ai.k2j.kernels.cuda.CudaBackend;
import ai.k2j.loaders.Checkpoint;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.WeightFormat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Prefill and decode throughput of one model on one backend, for tools/gpu/bench-gpu.sh (GPU machine, no Maven):
 * <pre>
 *   java ... ai.k2j.bench.DecodeBench --model DIR [--backend cuda] [--prompt-tokens 512] [--gen-tokens 256]
 *            [--runs 3] [--weight-format native|q8_0|q4_0] [--json FILE (appended)] [--label NAME]
 * </pre>
 * Each run generates gen-tokens + 1 greedy tokens (eos ignored) after a random prompt of prompt-tokens ids:
 * prefill tok/s = prompt / time to the first token; decode tok/s = gen-tokens / time of the remaining steps.
 * Reported: the median run, weight bytes streamed per decode token (every matrix once), achieved GB/s, and on
 * CUDA its ratio to the device-to-device copy bandwidth measured in the same process. One JSON object per
 * model is appended to --json; a one-line summary goes to stdout. Not registered as a k2j verb: the CLI's
 * {@code bench} verb belongs to the CPU benchmark work.
 */
public final class DecodeBench {

    /** {@code --name value} pairs (a diagnostic's flags, not the CLI's). */
    private static Map<String, String> flags(String[] argv) {
        Map<String, String> m = new HashMap<>();
        for (int i = 0; i < argv.length; i++) {
            if (!argv[i].startsWith("--") || i + 1 == argv.length) {
                throw new IllegalArgumentException("DecodeBench: expected --flag value, got '" + argv[i] + "'");
            }
            m.put(argv[i].substring(2), argv[++i]);
        }
        return m;
    }

    private DecodeBench() {
    }

    public static void main(String[] argv) {
        Map<String, String> args = flags(argv);
        if (!args.containsKey("model")) {
            throw new IllegalArgumentException("DecodeBench: missing --model DIR");
        }
        Path model = Path.of(args.remove("model"));
        String backend = args.getOrDefault("backend", "cuda");
        int promptTokens = Integer.parseInt(args.getOrDefault("prompt-tokens", "512"));
        int genTokens = Integer.parseInt(args.getOrDefault("gen-tokens", "256"));
        int runs = Integer.parseInt(args.getOrDefault("runs", "3"));
        String format = args.getOrDefault("weight-format", "native");
        String label = args.getOrDefault("label", model.getFileName().toString());
        String json = args.getOrDefault("json", "");
        args.keySet().removeAll(List.of("backend", "prompt-tokens", "gen-tokens", "runs", "weight-format", "label",
                "json"));
        if (!args.isEmpty()) {
            throw new IllegalArgumentException("DecodeBench: unknown flags " + args.keySet());
        }

        double copyGBs = Double.NaN;
        if (backend.equals("cuda")) {
            try (CudaBackend probe = new CudaBackend()) {
                copyGBs = probe.copyBandwidthGBs();
            }
        }

        long weightBytes;
        DType dtype;
        ModelConfig config;
        try (Checkpoint cp = Checkpoint.open(model)) {
            config = cp.config();
            dtype = cp.find("model.layers.0.self_attn.q_proj.weight").orElseThrow().dtype();
        }
        DType stored = format.equalsIgnoreCase("native") ? dtype : DType.valueOf(format.toUpperCase(Locale.ROOT));
        weightBytes = weightBytesPerToken(config, stored);

        long t0 = System.nanoTime();
        ModelOptions options = ModelOptions.defaults().withBackend(backend)
                .withMaxContext(promptTokens + genTokens + 16)
                .withWeightFormat(WeightFormat.parse(format));
        try (LanguageModel lm = LanguageModel.load(model, options)) {
            double loadS = (System.nanoTime() - t0) / 1e9;
            int[] prompt = new SplittableRandom(1).ints(promptTokens, 0, Math.min(config.vocabSize(), 151643))
                    .toArray();
            // warm-up: kernels, cuBLAS handles, the recorded decode step, JIT
            lm.generate(new GenerationRequest(prompt, 16, SamplingParams.greedy(), List.of(), true), null);
            double[] prefill = new double[runs];
            double[] decode = new double[runs];
            for (int r = 0; r < runs; r++) {
                GenerationResult res = lm.generate(new GenerationRequest(prompt, genTokens + 1,
                        SamplingParams.greedy(), List.of(), true), null);
                if (res.generatedTokens() != genTokens + 1) {
                    throw new IllegalStateException("generated " + res.generatedTokens() + " tokens, expected "
                            + (genTokens + 1));
                }
                prefill[r] = promptTokens / (res.prefillNanos() / 1e9);
                decode[r] = genTokens / (res.decodeNanos() / 1e9);
            }
            double prefillTps = median(prefill);
            double decodeTps = median(decode);
            double achieved = weightBytes * decodeTps / 1e9;
            String graphs = System.getProperty("k2j.graphs", "true");
            String line = String.format(Locale.ROOT,
                    "{\"engine\":\"k2j\",\"label\":\"%s\",\"model\":\"%s\",\"backend\":\"%s\",\"weights\":\"%s\","
                            + "\"graphs\":%s,\"prompt_tokens\":%d,\"gen_tokens\":%d,\"runs\":%d,\"load_s\":%.2f,"
                            + "\"prefill_tok_s\":%.1f,\"decode_tok_s\":%.1f,\"decode_ms_per_token\":%.4f,"
                            + "\"weight_bytes_per_token\":%d,\"achieved_gb_s\":%.1f,\"copy_gb_s\":%.1f,"
                            + "\"roofline_fraction\":%.3f,\"decode_tok_s_runs\":%s,\"prefill_tok_s_runs\":%s}",
                    label, model.toString().replace("\\", "/"), backend, stored, graphs, promptTokens, genTokens, runs,
                    loadS, prefillTps, decodeTps, 1e3 / decodeTps, weightBytes, achieved,
                    Double.isNaN(copyGBs) ? -1 : copyGBs, Double.isNaN(copyGBs) ? -1 : achieved / copyGBs,
                    Arrays.toString(round(decode)), Arrays.toString(round(prefill)));
            System.out.printf(Locale.ROOT, "k2j %-14s %-5s %-5s graphs=%-5s prefill %8.0f tok/s  decode %7.1f tok/s"
                            + "  %6.0f GB/s  (%.0f%% of copy %.0f GB/s)%n", label, backend, stored, graphs, prefillTps,
                    decodeTps, achieved, 100 * achieved / copyGBs, copyGBs);
            System.out.println(line);
            if (!json.isEmpty()) {
                try {
                    Files.writeString(Path.of(json), line + "\n", StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                            StandardOpenOption.APPEND);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }
        }
    }

    /** Bytes of every matrix read once per decode token (embedding lookup aside), in dtype. */
    static long weightBytesPerToken(ModelConfig c, DType dtype) {
        long h = c.hiddenSize();
        long perLayer = (c.qDim() + 2L * c.kvDim()) * h + h * c.qDim() + 3L * c.intermediateSize() * h;
        long elements = perLayer * c.numLayers() + (long) c.vocabSize() * h;
        return dtype.bytesFor(elements);
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    private static double[] round(double[] v) {
        double[] r = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            r[i] = Math.round(v[i] * 10) / 10.0;
        }
        return r;
    }
}
