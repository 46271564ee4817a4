package ai.k2j.cli;

import ai.k2j.engine.Speculation;
import ai.k2j.engine.SpeculativeBench;
import ai.k2j.engine.LanguageModel;
import ai.k2j.engine.ModelOptions;
import ai.k2j.engine.SamplingParams;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * {@code k2j spec-bench}: plain against speculative decoding in one run on the same prompts, with speedup,
 * acceptance rate α, cost ratio c and the theoretical speedup ({@link SpeculativeBench}). Defaults: the demo pair
 * on 8 held-out code prompts of 96 tokens, 128 new tokens, greedy, k = 4. Meant to be reached as
 * {@code k2j bench --draft DIR} too, once the bench verb exists.
 */
final class SpeculativeBenchCommand implements Command {

    static final VerbSpec SPEC = new VerbSpec("spec-bench", "plain vs speculative decoding", List.of(
            Flag.option("model", "DIR", "the demo target, models/demo/target", "target model"),
            Flag.option("draft", "DIR|none", "models/demo/draft with the default model; none otherwise, then only"
                    + " --lookup rows run", "draft model, same vocabulary"),
            Flag.toggle("no-draft", "no draft model, the same as --draft none"),
            Flag.option("draft-tokens", "2,3,4", "4", "fixed draft lengths to measure, comma-separated, 1 to 15"),
            Flag.toggle("adaptive", "also measure the cost-aware draft length (starting at the first of the list), and"
                    + " with --lookup the cost-aware lookup length"),
            Flag.toggle("lookup", "also measure prompt lookup (n-gram 3, 6 tokens)"),
            Flag.option("tree", "4,6", "none", "also measure draft trees of these sizes (drafted tokens per target"
                    + " pass), comma-separated, 1 to 15"),
            Flag.option("prompts", "FILE", "models/demo/heldout_code.txt", "text to take prompts from"),
            Flag.option("num-prompts", "N", "8", "prompts, at evenly spaced line starts"),
            Flag.option("prompt-tokens", "N", "96", "tokens per prompt"),
            Flag.option("max-tokens", "N", "128", "tokens generated per prompt and setting"),
            Flag.option("warmup", "N", "64", "tokens generated per setting before measuring"),
            Flag.option("temperature", "T", "0", "0 = greedy"),
            Flag.option("top-p", "P", "1", "nucleus sampling"),
            Flag.option("top-k", "K", "0", "keep the K most likely tokens, 0 = off"),
            Flag.option("min-p", "P", "0", "drop tokens below P x the top probability"),
            Flag.option("seed", "S", "1", "sampling seed"),
            Flag.option("threads", "N", "all processors", "CPU threads"),
            Flag.option("backend", "cpu|cuda|reference", "cpu", "compute backend"),
            Flag.option("kv-cache", "bf16|fp8|f32", "bf16", "KV cache precision (CUDA draft trees need f32)"),
            Flag.toggle("json", "print the result as one JSON object")), null);

    @Override
    public VerbSpec spec() {
        return SPEC;
    }

    @Override
    public int run(Args args, PrintStream out, PrintStream err) {
        Path model = args.has("model") ? args.path("model") : null;
        String draftFlag = args.string("draft", null);
        boolean noDraft = args.flag("no-draft") || "none".equals(draftFlag);
        List<Integer> ks = new ArrayList<>();
        ks.addAll(draftSizes(args.string("draft-tokens", "4"), "--draft-tokens"));
        List<Integer> trees = args.has("tree") ? draftSizes(args.string("tree", null), "--tree") : List.of();
        boolean adaptive = args.flag("adaptive");
        boolean lookup = args.flag("lookup");
        Path promptsFile = args.has("prompts") ? args.path("prompts") : null;
        int numPrompts = Cli.intAtLeast(args, "num-prompts", 8, 1);
        int promptTokens = Cli.intAtLeast(args, "prompt-tokens", 96, 1);
        int maxTokens = Cli.intAtLeast(args, "max-tokens", 128, 2);
        int warmUp = Cli.intAtLeast(args, "warmup", 64, 0);
        double temperature = args.decimal("temperature", 0);
        double topP = args.decimal("top-p", 1);
        int topK = Cli.intAtLeast(args, "top-k", 0, 0);
        double minP = args.decimal("min-p", 0);
        long seed = args.longValue("seed", 1);
        int threads = Cli.intAtLeast(args, "threads", 0, 1);
        String backend = args.string("backend", "cpu");
        boolean json = args.flag("json");
        args.finish();
        SamplingParams sampling;
        try {
            sampling = new SamplingParams(temperature, topP, topK, minP, seed);
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage());
        }

        Path modelDir = model != null ? model : SpeculationFlags.demo("target");
        if (!Files.isDirectory(modelDir)) {
            throw new IllegalArgumentException("model directory not found: " + modelDir);
        }
        Path draftDir = null;
        if (draftFlag != null && !noDraft) {
            draftDir = Path.of(draftFlag);
            if (!Files.isDirectory(draftDir)) {
                throw new IllegalArgumentException("draft model directory not found: " + draftDir);
            }
        } else if (model == null && !noDraft) {
            draftDir = SpeculationFlags.demo("draft");
        }
        List<Speculation> settings = new ArrayList<>();
        if (draftDir != null) {
            for (int k : ks) {
                settings.add(Speculation.draftModel(k));
            }
            if (adaptive) {
                settings.add(Speculation.adaptiveDraftModel(ks.getFirst()));
            }
            for (int n : trees) {
                settings.add(Speculation.draftTree(n));
            }
        } else if ((adaptive && !lookup) || args.has("draft-tokens") || !trees.isEmpty()) {
            throw new UsageException("--draft-tokens, --tree and --adaptive need a draft model (--draft DIR)");
        }
        if (lookup) {
            settings.add(new Speculation(Speculation.Mode.PROMPT_LOOKUP, SpeculationFlags.DEFAULT_LOOKUP_TOKENS, false,
                    Speculation.DEFAULT_NGRAM));
            if (adaptive) {
                settings.add(new Speculation(Speculation.Mode.PROMPT_LOOKUP, SpeculationFlags.DEFAULT_LOOKUP_TOKENS,
                        true, Speculation.DEFAULT_NGRAM));
            }
        }
        if (settings.isEmpty()) {
            throw new UsageException("nothing to compare: give a draft model (--draft DIR) or --lookup");
        }
        Path textFile = promptsFile != null ? promptsFile : SpeculationFlags.home().resolve(
                "models/demo/heldout_code.txt");
        String text;
        try {
            text = Files.readString(textFile);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read prompts from " + textFile + ": " + e.getMessage(), e);
        }

        ModelOptions options = ModelOptions.defaults().withBackend(backend).withThreads(threads).withDraft(draftDir)
                .withKvCache(Cli.kvPrecision(args));
        try (LanguageModel lm = LanguageModel.load(modelDir, options)) {
            List<int[]> prompts = SpeculativeBench.heldOutPrompts(text, lm::encode, numPrompts, promptTokens);
            if (prompts.isEmpty()) {
                throw new IllegalArgumentException(textFile + " gives no prompt of at least " + (promptTokens / 2)
                        + " tokens");
            }
            if (promptTokens + maxTokens > lm.maxContext()) {
                throw new UsageException("--prompt-tokens + --max-tokens (" + (promptTokens + maxTokens)
                        + ") exceed the context of " + lm.maxContext());
            }
            err.println("[k2j] spec-bench: target " + modelDir + (draftDir != null ? ", draft " + draftDir : "")
                    + ", " + prompts.size() + " prompts from " + textFile);
            SpeculativeBench.Result result = SpeculativeBench.run(lm, new SpeculativeBench.Config(prompts, maxTokens,
                    sampling, settings, warmUp), line -> err.println("[k2j] " + line));
            if (json) {
                Map<String, Object> m = new java.util.LinkedHashMap<>();
                m.put("target", modelDir.toString());
                m.put("draft", draftDir == null ? null : draftDir.toString());
                m.put("prompts_file", textFile.toString());
                m.putAll(result.toMap());
                out.println(Cli.JSON.valueToTree(m).toString());
            } else {
                out.print(result.table());
            }
            out.flush();
            return 0;
        }
    }

    /** A comma-separated list of draft sizes, each 1 to {@link Speculation#MAX_DRAFT_TOKENS}. */
    private static List<Integer> draftSizes(String list, String flag) {
        List<Integer> sizes = new ArrayList<>();
        for (String part : list.split(",")) {
            int k;
            try {
                k = Integer.parseInt(part.trim());
            } catch (NumberFormatException e) {
                throw new UsageException(flag + " must be comma-separated integers, got '" + part + "'");
            }
            if (k < 1 || k > Speculation.MAX_DRAFT_TOKENS) {
                throw new UsageException(flag + " values must be in [1, " + Speculation.MAX_DRAFT_TOKENS + "], got "
                        + k);
            }
            sizes.add(k);
        }
        return sizes;
    }
}
