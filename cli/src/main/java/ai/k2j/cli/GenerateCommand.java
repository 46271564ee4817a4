package ai.k2j.cli;

import ai.k2j.engine.SpeculativeStats;
import ai.k2j.engine.GenerationRequest;
import ai.k2j.engine.GenerationResult;
import ai.k2j.engine.LanguageModel;
import ai.k2j.engine.ModelOptions;
import ai.k2j.kernels.KvPrecision;
import ai.k2j.engine.SamplingParams;
import ai.k2j.loaders.GenerationConfig;
import ai.k2j.tokenizer.ChatMessage;
import ai.k2j.loaders.WeightFormat;

import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ThreadLocalRandom;
import java.util.stream.Collectors;

/**
 * {@code k2j generate}: loads a model, generates from a prompt and streams the text to stdout as it comes.
 *
 * <p>Sampling defaults follow HF transformers: when the model's generation_config.json says
 * {@code do_sample: true}, its temperature/top_p/top_k are the defaults; otherwise (or without the file)
 * decoding is greedy. Each flag given overrides its one value.
 *
 * <p>Without {@code --model} it runs the committed demo model with its draft model, speculative decoding on
 * (see {@link SpeculationFlags}), and reports the acceptance rate on stderr and in {@code --json}.
 */
final class GenerateCommand implements Command {

    static final int DEFAULT_MAX_TOKENS = 256;

    static final VerbSpec SPEC = new VerbSpec("generate", "generate text", VerbSpec.join(List.of(
            SpeculationFlags.FLAGS.getFirst(),
            Flag.required("prompt", "TEXT", "prompt text (special tokens such as <|im_start|> written inline are"
                    + " kept)").inGroup("prompt", true),
            Flag.required("prompt-ids", "1,2,3", "prompt as comma-separated token ids instead of text")
                    .inGroup("prompt", true),
            Flag.toggle("chat", "wrap --prompt in the tokenizer's ChatML template as a user turn"),
            Flag.option("system", "TEXT", "the template's own", "system message for --chat"),
            Flag.option("thinking", "show|hide|off", "show", "with --chat on a thinking model (Qwen3): show prints the"
                    + " <think> block, hide generates it but prints only the answer, off asks the model to answer"
                    + " without thinking (a user turn's /think, /no_think also work)"),
            Flag.option("max-tokens", "N", String.valueOf(DEFAULT_MAX_TOKENS), "tokens to generate at most"),
            Flag.option("temperature", "T", "generation_config.json's when it has do_sample true, else greedy",
                    "0 = greedy"),
            Flag.option("top-p", "P", "generation_config.json's or 1", "nucleus sampling, in (0, 1]"),
            Flag.option("top-k", "K", "generation_config.json's or 0", "keep the K most likely tokens, 0 = off"),
            Flag.option("min-p", "P", "0", "drop tokens below P x the top probability, in [0, 1]"),
            Flag.option("seed", "S", "random, printed on stderr", "sampling seed"),
            Flag.option("stop", "STR", null, "also stop when the text contains STR (\\n, \\t, \\\\ are unescaped)"),
            Flag.option("threads", "N", "all processors", "CPU threads"),
            Flag.option("ctx", "N", "the model's, capped at 8192", "context length to allocate (up to the model's"
                    + " max_position_embeddings, or factor x original_max_position_embeddings with YaRN)"),
            Flag.option("kv-cache", "bf16|fp8|f32", "bf16", "KV cache precision: f32 is exact, fp8 (E4M3, a scale"
                    + " per head) a quarter of its memory (docs/kv-cache.md)"),
            Flag.option("backend", "cpu|cuda|reference", "cpu", "compute backend"),
            Flag.option("quant", "q8_0|q4_0", null, "quantize the weights at load (docs/performance.md)"),
            Flag.toggle("json", "print one JSON object with ids, text and timings instead of streaming")),
            SpeculationFlags.FLAGS.subList(1, SpeculationFlags.FLAGS.size())),
            "Without --model: the demo model with its draft, speculative decoding on.");

    @Override
    public VerbSpec spec() {
        return SPEC;
    }

    @Override
    public int run(Args args, PrintStream out, PrintStream err) {
        // ---- validate every flag before loading anything
        SpeculationFlags.Parsed models = SpeculationFlags.parse(args);
        boolean hasPrompt = args.has("prompt");
        boolean hasIds = args.has("prompt-ids");
        if (hasPrompt == hasIds) {
            throw new UsageException("give exactly one of --prompt TEXT or --prompt-ids 1,2,3");
        }
        String prompt = hasPrompt ? args.required("prompt") : null;
        int[] promptIds = hasIds ? args.ints("prompt-ids") : null;
        if (promptIds != null) {
            for (int id : promptIds) {
                if (id < 0) {
                    throw new UsageException("--prompt-ids must be non-negative token ids, got " + id);
                }
            }
        }
        boolean chat = args.flag("chat");
        String system = args.string("system", null);
        if (chat && !hasPrompt) {
            throw new UsageException("--chat needs --prompt TEXT");
        }
        if (system != null && !chat) {
            throw new UsageException("--system needs --chat");
        }
        String thinking = args.string("thinking", "show");
        if (!List.of("show", "hide", "off").contains(thinking)) {
            throw new UsageException("--thinking must be show, hide or off, got '" + thinking + "'");
        }
        if (!thinking.equals("show") && !chat) {
            throw new UsageException("--thinking needs --chat");
        }
        int maxTokens = Cli.intAtLeast(args, "max-tokens", DEFAULT_MAX_TOKENS, 0);
        Double temperature = optional(args, "temperature");
        Double topP = optional(args, "top-p");
        Integer topK = args.has("top-k") ? Cli.intAtLeast(args, "top-k", 0, 0) : null;
        double minP = args.decimal("min-p", 0);
        if (temperature != null && !(temperature >= 0)) {
            throw new UsageException("--temperature must be >= 0, got " + args.string("temperature", ""));
        }
        if (topP != null && !(topP > 0 && topP <= 1)) {
            throw new UsageException("--top-p must be in (0, 1], got " + args.string("top-p", ""));
        }
        if (!(minP >= 0 && minP <= 1)) {
            throw new UsageException("--min-p must be in [0, 1], got " + args.string("min-p", ""));
        }
        Long seed = args.has("seed") ? args.longValue("seed", 0) : null;
        String stop = args.has("stop") ? Cli.unescape(args.required("stop")) : null;
        if (stop != null && stop.isEmpty()) {
            throw new UsageException("--stop must not be empty");
        }
        int threads = Cli.intAtLeast(args, "threads", 0, 1);
        WeightFormat quant = Cli.quantFormat(args.string("quant", null), "--quant");
        int ctx = Cli.intAtLeast(args, "ctx", 0, 1);
        KvPrecision kvCache = Cli.kvPrecision(args);
        String backend = args.string("backend", "cpu");
        boolean json = args.flag("json");
        args.finish();

        // ---- load
        SpeculationFlags spec = models.resolve();
        Path modelDir = spec.model();
        long t0 = System.nanoTime();
        ModelOptions options = ModelOptions.defaults().withThreads(threads).withMaxContext(ctx).withBackend(backend)
                .withDraft(spec.draft()).withWeightFormat(quant).withKvCache(kvCache);
        try (LanguageModel model = LanguageModel.load(modelDir, options)) {
            double loadSeconds = (System.nanoTime() - t0) / 1e9;

            int[] ids;
            if (promptIds != null) {
                int vocab = model.config().vocabSize();
                for (int id : promptIds) {
                    if (id >= vocab) {
                        throw new IllegalArgumentException("prompt id " + id + " is outside the vocabulary (size "
                                + vocab + ") of " + modelDir);
                    }
                }
                ids = promptIds;
            } else if (chat) {
                List<ChatMessage> messages = new ArrayList<>();
                if (system != null) {
                    messages.add(ChatMessage.system(system));
                }
                messages.add(ChatMessage.user(prompt));
                if (!thinking.equals("show") && !model.tokenizer().chatTemplateThinks()) {
                    throw new IllegalArgumentException("--thinking " + thinking + ": the chat template of "
                            + modelDir + " has no thinking part (Qwen3 templates do)");
                }
                ids = model.encodeChat(messages, !thinking.equals("off"));
            } else {
                ids = model.encode(prompt);
            }
            if (ids.length == 0) {
                throw new IllegalArgumentException("the prompt encodes to no tokens");
            }

            // ---- sampling: flags, else generation_config.json when it asks to sample, else greedy
            GenerationConfig gc = model.generationConfig();
            boolean sampleByDefault = gc.doSample();
            long seedValue = seed != null ? seed : ThreadLocalRandom.current().nextLong(1L << 48);
            SamplingParams sampling = new SamplingParams(
                    temperature != null ? temperature : sampleByDefault ? gc.temperature() : 0,
                    topP != null ? topP : sampleByDefault ? gc.topP() : 1,
                    topK != null ? topK : sampleByDefault ? gc.topK() : 0,
                    minP, seedValue);
            GenerationRequest request = new GenerationRequest(ids, maxTokens, sampling,
                    stop == null ? List.of() : List.of(stop), false, spec.speculation());

            // ---- generate, streaming each token's text unless --json
            long[] firstTokenAt = {0};
            StreamPrinter printer = new StreamPrinter(json ? null : out, stop);
            boolean hideThinking = thinking.equals("hide");
            ThinkingHider hider = new ThinkingHider(printer);
            long start = System.nanoTime();
            GenerationResult result = model.generate(request, (id, text) -> {
                if (firstTokenAt[0] == 0) {
                    firstTokenAt[0] = System.nanoTime();
                }
                if (hideThinking) {
                    hider.push(text);
                } else {
                    printer.push(text);
                }
                return true;
            });
            double ttftMs = firstTokenAt[0] == 0 ? 0 : (firstTokenAt[0] - start) / 1e6;
            String shownText = hideThinking ? ThinkingHider.answer(result.text()) : result.text();
            printer.finish(shownText);
            if (!json && !Files.isRegularFile(modelDir.resolve("tokenizer.json"))) {
                // no tokenizer, no text: show the ids rather than nothing
                out.println(Arrays.stream(result.ids()).mapToObj(Integer::toString).collect(Collectors.joining(",")));
                err.println("[k2j] " + modelDir + " has no tokenizer.json: printed the generated ids");
            }

            if (json) {
                ObjectNode o = Cli.JSON.createObjectNode();
                var arr = o.putArray("ids");
                for (int id : result.ids()) {
                    arr.add(id);
                }
                o.put("text", shownText);
                o.put("finish_reason", result.finishReason().openAiName());
                o.put("prompt_tokens", result.promptTokens());
                o.put("completion_tokens", result.generatedTokens());
                o.put("prefill_tokens_per_second", result.prefillTokensPerSecond());
                o.put("decode_tokens_per_second", result.decodeTokensPerSecond());
                o.put("load_seconds", loadSeconds);
                o.put("time_to_first_token_ms", ttftMs);
                if (result.speculation() != null) {
                    ObjectNode so = o.putObject("speculation");
                    so.put("draft", spec.draft() == null ? null : spec.draft().toString());
                    so.setAll((ObjectNode) Cli.JSON.valueToTree(result.speculation().toMap()));
                }
                out.println(o.toString());
            }
            out.flush();

            err.printf(Locale.ROOT, "[k2j] load %.2f s | prompt %d tokens, prefill %.1f tok/s | generated %d tokens,"
                            + " decode %.1f tok/s | first token %.0f ms | finish %s%s%n",
                    loadSeconds, result.promptTokens(), result.prefillTokensPerSecond(), result.generatedTokens(),
                    result.decodeTokensPerSecond(), ttftMs, result.finishReason().openAiName(),
                    sampling.isGreedy() ? " | greedy" : " | seed " + seedValue);
            SpeculativeStats stats = result.speculation();
            if (stats != null) {
                err.println(SpeculationFlags.summary(stats, spec.draft()));
            }
            return 0;
        }
    }

    /**
     * Prints streamed text, holding back a tail that could be the start of the stop string so the stop string
     * itself never reaches stdout; at the end prints whatever of the final text is still missing.
     */
    static final class StreamPrinter {
        private final PrintStream out;
        private final String stop;
        private final StringBuilder text = new StringBuilder();
        private int printed;
        private boolean stopped;

        StreamPrinter(PrintStream out, String stop) {
            this.out = out;
            this.stop = stop;
        }

        void push(String piece) {
            if (out == null || stopped || piece.isEmpty()) {
                return;
            }
            text.append(piece);
            int safe = text.length();
            if (stop != null) {
                int at = text.indexOf(stop, Math.max(0, printed - stop.length()));
                if (at >= 0) {
                    safe = at;
                    stopped = true;
                } else {
                    safe -= heldBack();
                }
            }
            emit(safe);
        }

        /** Length of the longest suffix of the text that is a proper prefix of the stop string. */
        private int heldBack() {
            for (int k = Math.min(stop.length() - 1, text.length()); k > 0; k--) {
                if (endsWithPrefix(k)) {
                    return k;
                }
            }
            return 0;
        }

        private boolean endsWithPrefix(int k) {
            int base = text.length() - k;
            for (int i = 0; i < k; i++) {
                if (text.charAt(base + i) != stop.charAt(i)) {
                    return false;
                }
            }
            return true;
        }

        private void emit(int upTo) {
            if (upTo > printed) {
                out.append(text, printed, upTo);
                out.flush();
                printed = upTo;
            }
        }

        /** Completes the output with the final text (which has any stop string cut off) and a newline. */
        void finish(String finalText) {
            if (out == null) {
                return;
            }
            if (finalText.length() > printed && finalText.regionMatches(0, text.toString(), 0, printed)) {
                out.append(finalText, printed, finalText.length());
                printed = finalText.length();
            }
            if (printed > 0 && !finalText.endsWith("\n")) {
                out.println();
            }
            out.flush();
        }
    }

    /**
     * For {@code --thinking hide}: passes on only what follows a leading {@code <think>…</think>} block (and the
     * newlines after it); text that does not start with {@code <think>} passes unchanged.
     */
    static final class ThinkingHider {
        private static final String OPEN = "<think>";
        private static final String CLOSE = "</think>";
        private final StreamPrinter next;
        private final StringBuilder held = new StringBuilder();
        private boolean passing;
        private boolean trimming;

        ThinkingHider(StreamPrinter next) {
            this.next = next;
        }

        void push(String piece) {
            if (passing) {
                forward(piece);
                return;
            }
            held.append(piece);
            String lead = held.toString().stripLeading();
            if (!lead.startsWith(OPEN) && !OPEN.startsWith(lead)) {
                passing = true; // no thinking block: everything is the answer
                forward(held.toString());
                return;
            }
            int end = held.indexOf(CLOSE);
            if (end >= 0) {
                passing = true;
                trimming = true;
                forward(held.substring(end + CLOSE.length()));
            }
        }

        private void forward(String s) {
            if (trimming) {
                int i = 0;
                while (i < s.length() && s.charAt(i) == '\n') {
                    i++;
                }
                s = s.substring(i);
                trimming = s.isEmpty();
            }
            next.push(s);
        }

        /** The answer part of a whole generated text: what {@link #push} passes on, given all of it at once. */
        static String answer(String text) {
            if (!text.stripLeading().startsWith(OPEN)) {
                return text;
            }
            int end = text.indexOf(CLOSE);
            if (end < 0) {
                return ""; // still thinking when generation ended
            }
            int i = end + CLOSE.length();
            while (i < text.length() && text.charAt(i) == '\n') {
                i++;
            }
            return text.substring(i);
        }
    }

    private static Double optional(Args args, String key) {
        return args.has(key) ? args.decimal(key, 0) : null;
    }
}
