package ai.k2j.bench;

import com.github.tjake.jlama.model.AbstractModel;
import com.github.tjake.jlama.model.ModelSupport;
import com.github.tjake.jlama.safetensors.DType;
import com.github.tjake.jlama.safetensors.SafeTensorSupport;
import com.github.tjake.jlama.tensor.AbstractTensor;
import com.github.tjake.jlama.tensor.KvBufferCache;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.UUID;

/**
 * The peer side of bench/peer/run-jlama-vs-k2j.sh: the same measurement as {@code k2j bench} (prefill a prompt
 * of pseudo-random token ids in one batch, then greedy decoding timed per step) through Jlama's own API, on the
 * same model directory, printing the same JSON field names.
 *
 * <pre>
 * java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -cp bench/target/benchmarks.jar \
 *     ai.k2j.bench.JlamaBench --model DIR [--quant q4] [--prompt-tokens 512] [--gen-tokens 128] [--threads 2]
 * </pre>
 * Jlama runs BF16 weights as BF16 (working type F32, activations quantized to I8 for its Q4 kernels: its CLI's
 * defaults). {@code --quant q4} benchmarks Jlama's Q4 (blocks of 32 with a float scale, every matrix including
 * the embedding): the checkpoint is converted once with Jlama's own {@code SafeTensorSupport.quantizeModel} into
 * {@code DIR-jlama-Q4} (reused when present). Jlama 0.8.4 has no 8-bit weight format, and its load-time
 * quantization fails on BF16 Qwen2 checkpoints (attention's dot product has no BF16 × I8 kernel).
 */
public final class JlamaBench {
    private JlamaBench() {
    }

    public static void main(String[] argv) {
        String model = null;
        String quant = null;
        int prompt = 512;
        int gen = 128;
        int threads = Runtime.getRuntime().availableProcessors();
        int warmup = 2;
        for (int i = 0; i < argv.length; i++) {
            String a = argv[i];
            switch (a) {
                case "--model" -> model = argv[++i];
                case "--quant" -> quant = argv[++i].toLowerCase(Locale.ROOT);
                case "--prompt-tokens" -> prompt = Integer.parseInt(argv[++i]);
                case "--gen-tokens" -> gen = Integer.parseInt(argv[++i]);
                case "--threads" -> threads = Integer.parseInt(argv[++i]);
                case "--warmup" -> warmup = Integer.parseInt(argv[++i]);
                case "--json" -> {
                }
                default -> {
                    System.err.println("JlamaBench: unknown argument " + a);
                    System.exit(2);
                }
            }
        }
        if (model == null || gen < 2 || prompt < 1) {
            System.err.println("usage: JlamaBench --model DIR [--quant q4] [--prompt-tokens N] [--gen-tokens M>=2]"
                    + " [--threads T] [--warmup W]");
            System.exit(2);
        }
        if (quant != null && !quant.equals("q4") && !quant.equals("q4_0")) {
            throw new IllegalArgumentException("--quant must be q4 (Jlama has no other weight format), got " + quant);
        }
        String dir = quant == null ? model : jlamaQ4(Path.of(model)).toString();

        long t0 = System.nanoTime();
        AbstractModel m = ModelSupport.loadModel(new File(dir), null, DType.F32, DType.I8, Optional.empty(),
                Optional.of(threads));
        System.err.printf(Locale.ROOT, "[jlama] loaded %s (%s) in %.1f s; %d thread(s)%n", model,
                quant == null ? "native dtype" : quant, (System.nanoTime() - t0) / 1e9, threads);
        int vocab = m.getConfig().vocabularySize;
        int[] ids = new SplittableRandom(42).ints(prompt, 0, vocab).toArray();
        long[] steps = new long[gen - 1];
        double[] result = new double[3];
        try (KvBufferCache cache = new KvBufferCache(m)) {
            for (int w = 0; w < warmup; w++) {
                run(m, cache, Arrays.copyOf(ids, Math.min(prompt, 256)), 64, new long[63], new double[3]);
                System.err.printf("[jlama] warm-up %d/%d%n", w + 1, warmup);
            }
            run(m, cache, ids, gen, steps, result);
        }
        Arrays.sort(steps);
        double p50 = steps[steps.length / 2] / 1e6;
        double p99 = steps[Math.min(steps.length - 1, (int) Math.ceil(0.99 * steps.length) - 1)] / 1e6;
        double prefillSeconds = result[0];
        double decodeSeconds = result[1];
        System.out.printf(Locale.ROOT, "{\"engine\":\"jlama\",\"model\":\"%s\",\"weights\":\"%s\",\"threads\":%d,"
                        + "\"prompt_tokens\":%d,\"gen_tokens\":%d,\"prefill_tokens_per_second\":%.4f,"
                        + "\"decode_tokens_per_second\":%.4f,\"time_to_first_token_ms\":%.3f,"
                        + "\"inter_token_latency_p50_ms\":%.3f,\"inter_token_latency_p99_ms\":%.3f}%n",
                dir.replace("\\", "\\\\").replace("\"", "\\\""), quant == null ? "native" : "jlama-Q4", threads, prompt,
                gen, prompt / prefillSeconds, (gen - 1) / decodeSeconds, prefillSeconds * 1e3, p50, p99);
        m.close();
        System.exit(0); // Jlama's executor threads are not daemons
    }

    /**
     * {@code DIR-jlama-Q4}, written by Jlama's quantizer on first use. Jlama copies a README.md it expects next to
     * the weights, so it quantizes from a scratch directory of symbolic links plus an empty README.md.
     */
    static Path jlamaQ4(Path model) {
        Path out = model.resolveSibling(model.getFileName() + "-jlama-Q4");
        if (Files.isRegularFile(out.resolve("config.json"))) {
            return out;
        }
        try {
            Path stage = Files.createTempDirectory("jlama-stage");
            try (var files = Files.list(model)) {
                for (Path f : files.toList()) {
                    Files.createSymbolicLink(stage.resolve(f.getFileName()), f.toAbsolutePath());
                }
            }
            if (!Files.exists(stage.resolve("README.md"))) {
                Files.writeString(stage.resolve("README.md"), "");
            }
            System.err.println("[jlama] quantizing " + model + " to Jlama Q4 in " + out);
            SafeTensorSupport.quantizeModel(stage, DType.Q4, null, null, Optional.of(out));
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot quantize " + model + " with Jlama: " + e.getMessage(), e);
        }
    }

    /** Prefill {@code ids} in one batch, then gen − 1 greedy steps; result = {prefill s, decode s, last token}. */
    private static void run(AbstractModel m, KvBufferCache cache, int[] ids, int gen, long[] steps, double[] result) {
        KvBufferCache.KvBuffer kv = cache.getKvBuffer(UUID.randomUUID());
        AbstractTensor logits = m.makeDenseTensor(m.getConfig().vocabularySize);
        long start = System.nanoTime();
        AbstractTensor out = m.batchForward(ids, 0, kv);
        AbstractTensor last = out.slice(out.shape().first() - 1);
        int token = m.sample(last, 0f, 0f, logits);
        out.close();
        long prefilled = System.nanoTime();
        long previous = prefilled;
        for (int i = 1; i < gen; i++) {
            AbstractTensor o = m.forward(token, ids.length + i - 1, kv, Optional.empty());
            token = m.sample(o, 0f, 0f, logits);
            o.close();
            long now = System.nanoTime();
            steps[i - 1] = now - previous;
            previous = now;
        }
        result[0] = (prefilled - start) / 1e9;
        result[1] = (previous - prefilled) / 1e9;
        result[2] = token;
        logits.close();
    }
}
