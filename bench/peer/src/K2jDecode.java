import ai.k2j.engine.GenerationRequest;
import ai.k2j.engine.GenerationResult;
import ai.k2j.engine.LanguageModel;
import ai.k2j.engine.ModelOptions;
import ai.k2j.engine.SamplingParams;

import java.nio.file.Path;
import java.util.Locale;

/**
 * k2j side of the peer comparison, shaped exactly like {@code JlamaDecode}: load, one warm-up generation (the
 * {@code k2j generate} CLI has none, so its first-run figure includes JIT warm-up), then one timed greedy
 * generation of TOKENS tokens, printed as one JSON line. Plain decoding (no draft model).
 *
 * <pre>java -cp 'ENGINE_JAR:engine/target/lib/*:target/classes' K2jDecode MODEL_DIR THREADS TOKENS WEIGHTS PROMPT</pre>
 * WEIGHTS is keep (the checkpoint's dtype, BF16 for the synthetic models) or f32 (converted at load).
 */
public final class K2jDecode {
    public static void main(String[] a) {
        if (a.length != 5) {
            System.err.println("usage: K2jDecode MODEL_DIR THREADS TOKENS WEIGHTS(keep|f32) PROMPT");
            System.exit(2);
        }
        Path dir = Path.of(a[0]);
        int threads = Integer.parseInt(a[1]);
        int tokens = Integer.parseInt(a[2]);
        String weights = a[3];
        String prompt = a[4];

        long t0 = System.nanoTime();
        ModelOptions options = ModelOptions.defaults().withThreads(threads).withDraft(null);
        if (!weights.equals("keep")) {
            options = options.withWeightFormat(weights);
        }
        try (LanguageModel model = LanguageModel.load(dir, options)) {
            double loadSeconds = (System.nanoTime() - t0) / 1e9;
            int[] ids = model.encode(prompt);
            GenerationRequest request = GenerationRequest.of(ids, tokens, SamplingParams.greedy());
            GenerationResult warm = model.generate(request, null);
            GenerationResult timed = model.generate(request, null);
            System.out.println(String.format(Locale.ROOT,
                    "{\"engine\":\"k2j\",\"threads\":%d,\"weights\":\"%s\",\"prompt_tokens\":%d,\"completion_tokens\":%d,"
                            + "\"finish_reason\":\"%s\",\"decode_tokens_per_second\":%.3f,"
                            + "\"warmup_decode_tokens_per_second\":%.3f,\"prompt_ms\":%.1f,\"load_seconds\":%.3f,\"text\":%s}",
                    threads, weights, timed.promptTokens(), timed.ids().length, timed.finishReason(),
                    timed.decodeTokensPerSecond(), warm.decodeTokensPerSecond(), timed.prefillNanos() / 1e6,
                    loadSeconds, quote(timed.text())));
        }
    }

    /** JSON string literal. */
    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }
}
