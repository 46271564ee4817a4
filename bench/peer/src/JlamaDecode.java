import com.github.tjake.jlama.model.AbstractModel;
import com.github.tjake.jlama.model.ModelSupport;
import com.github.tjake.jlama.model.functions.Generator;
import com.github.tjake.jlama.safetensors.DType;
import com.github.tjake.jlama.safetensors.prompt.PromptContext;
import com.github.tjake.jlama.tensor.operations.TensorOperationsProvider;

import java.io.File;
import java.lang.reflect.Field;
import java.util.Locale;
import java.util.Optional;
import java.util.UUID;

/**
 * Jlama side of the peer comparison: load a model directory with Jlama, run one warm-up generation, then time
 * greedy decoding of TOKENS tokens and print one JSON line.
 *
 * <p>Decode speed is measured like k2j's {@code decode_tokens_per_second}: tokens after the first (the first comes
 * from the prefill) over the time between the first and the last token callback, so prompt processing is excluded.
 *
 * <pre>java -cp 'target/lib/*:target/classes' JlamaDecode MODEL_DIR THREADS TOKENS WORKING_DTYPE MODEL_QUANT PROMPT</pre>
 * WORKING_DTYPE is Jlama's working-memory type (F32 or BF16); MODEL_QUANT is none, I8 or Q4 (Jlama quantizes the
 * weights at load time).
 */
public final class JlamaDecode {
    public static void main(String[] a) throws Exception {
        if (a.length != 6) {
            System.err.println("usage: JlamaDecode MODEL_DIR THREADS TOKENS WORKING_DTYPE(F32|BF16) MODEL_QUANT(none|I8|Q4) PROMPT");
            System.exit(2);
        }
        File dir = new File(a[0]);
        int threads = Integer.parseInt(a[1]);
        int tokens = Integer.parseInt(a[2]);
        DType working = DType.valueOf(a[3]);
        Optional<DType> quant = a[4].equalsIgnoreCase("none") ? Optional.empty() : Optional.of(DType.valueOf(a[4]));
        String prompt = a[5];

        long t0 = System.nanoTime();
        // workingQuantizationType I8 is what Jlama's own CLI passes; the model constructor replaces it by the
        // weights' dtype when the weights are not quantized (read back below).
        AbstractModel model = ModelSupport.loadModel(dir, null, working, DType.I8, quant, Optional.of(threads));
        double loadSeconds = (System.nanoTime() - t0) / 1e9;

        Run warm = generate(model, prompt, tokens);
        Run timed = generate(model, prompt, tokens);

        String json = String.format(Locale.ROOT,
                "{\"engine\":\"jlama\",\"version\":\"0.8.4\",\"threads\":%d,\"model_dtype\":\"%s\",\"working_dtype\":\"%s\","
                        + "\"working_quant_dtype\":\"%s\",\"model_quant\":\"%s\",\"tensor_operations\":\"%s\","
                        + "\"prompt_tokens\":%d,\"completion_tokens\":%d,\"finish_reason\":\"%s\","
                        + "\"decode_tokens_per_second\":%.3f,\"warmup_decode_tokens_per_second\":%.3f,"
                        + "\"prompt_ms\":%d,\"load_seconds\":%.3f,\"text\":%s}",
                threads, field(model, "modelDType"), field(model, "workingDType"), field(model, "workingQType"),
                quant.map(Enum::name).orElse("none"), TensorOperationsProvider.get().name(),
                timed.promptTokens, timed.tokens, timed.finish, timed.decodeTokensPerSecond(),
                warm.decodeTokensPerSecond(), timed.promptMs, loadSeconds, quote(timed.text));
        System.out.println(json);
        System.out.flush();
        // Jlama's executor threads are not daemons.
        System.exit(0);
    }

    record Run(int promptTokens, int tokens, String finish, long promptMs, long firstNanos, long lastNanos, String text) {
        double decodeTokensPerSecond() {
            return tokens > 1 ? (tokens - 1) * 1e9 / (lastNanos - firstNanos) : 0;
        }
    }

    static Run generate(AbstractModel model, String prompt, int tokens) {
        long[] first = {0};
        long[] last = {0};
        int[] count = {0};
        // Jlama 0.8.4's ntokens is a position bound (prompt included): the prefill samples one token, then it decodes
        // from position promptLen up to ntokens, so promptLen + tokens - 1 gives exactly `tokens` tokens.
        int promptLen = model.encodePrompt(PromptContext.of(prompt)).length;
        Generator.Response r = model.generate(UUID.randomUUID(), PromptContext.of(prompt), 0.0f, promptLen + tokens - 1,
                (text, ms) -> {
                    long now = System.nanoTime();
                    if (count[0]++ == 0) {
                        first[0] = now;
                    }
                    last[0] = now;
                });
        return new Run(r.promptTokens, count[0], String.valueOf(r.finishReason), r.promptTimeMs, first[0], last[0],
                r.responseText);
    }

    static String field(AbstractModel m, String name) throws ReflectiveOperationException {
        Field f = AbstractModel.class.getDeclaredField(name);
        f.setAccessible(true);
        return String.valueOf(f.get(m));
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
