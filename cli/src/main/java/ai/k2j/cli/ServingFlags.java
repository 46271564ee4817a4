package ai.k2j.cli;

import ai.k2j.engine.BatchEngine;
import ai.k2j.engine.EngineOptions;
import ai.k2j.scaffold.ScaffoldOptions;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** Flags shared by serve, think and eval: which model(s), how the batching engine is sized, the scaffold. */
final class ServingFlags {

    /** The id {@code serve} gives the demo pair it serves when no --model is given. */
    static final String DEMO_MODEL_ID = "k2j-demo";

    /** The engine flags of think and eval (--model required). */
    static final List<Flag> ENGINE_FLAGS = engineFlags(Flag.required("model", "DIR",
            "HF-style model directory (config.json, *.safetensors, tokenizer.json)"));

    /** The engine flags of serve: without --model, the demo pair. */
    static final List<Flag> SERVE_ENGINE_FLAGS = engineFlags(Flag.option("model", "DIR",
            "the demo model models/demo/target with the draft models/demo/draft, served as " + DEMO_MODEL_ID,
            "HF-style model directory (config.json, *.safetensors, tokenizer.json)"));

    private static List<Flag> engineFlags(Flag model) {
        return List.of(model,
                Flag.option("draft", "DIR|none", null, "draft model for speculative decoding (shares the model's"
                        + " vocabulary); none: no draft"),
                Flag.option("draft-tokens", "K", "4", "tokens the draft proposes per step, 1 to 16"),
                Flag.option("backend", "cpu|cuda|reference", "cpu", "compute backend"),
                Flag.option("threads", "N", "all processors", "CPU threads"),
                Flag.option("ctx", "N", "the model's, capped at 8192", "context length per sequence"),
                Flag.option("kv-cache", "bf16|fp8|f32", "bf16", "KV cache precision (docs/kv-cache.md)"),
                Flag.option("max-batch", "B", "16", "sequences decoding together, at most 1024"),
                Flag.option("kv-blocks", "N", "max-batch full contexts, capped at 4 GiB",
                        "KV cache blocks of 16 tokens"));
    }

    static final List<Flag> SCAFFOLD_FLAGS = List.of(
            Flag.toggle("no-plan", "skip plan-before-you-think"),
            Flag.option("plan-prompt", "T", null, "planning prompt; {question} is replaced (\\n unescaped)"),
            Flag.option("reasoning-prompt", "T", null, "prompt after planning; {plan} and {question} are replaced"),
            Flag.option("direct-prompt", "T", null, "prompt without a plan; {question} is replaced"),
            Flag.option("plan-max-tokens", "N", String.valueOf(ScaffoldOptions.defaults().planMaxTokens()),
                    "most tokens of the plan"),
            Flag.option("best-of", "N", String.valueOf(ScaffoldOptions.defaults().bestOf()),
                    "candidates sampled as one batch (1 = no selection)"),
            Flag.option("verifier", "majority|judge|first", ScaffoldOptions.defaults().verifier(),
                    "majority (answer extraction + vote), judge (the model compares candidates pairwise)"
                            + " or first"));

    private final Path model;
    private final Path draft;
    private final boolean demo;
    private final boolean draftOff;
    final EngineOptions options;

    private ServingFlags(Path model, Path draft, boolean demo, boolean draftOff, EngineOptions options) {
        this.model = model;
        this.draft = draft;
        this.demo = demo;
        this.draftOff = draftOff;
        this.options = options;
    }

    /** Reads the engine flags (call before {@link Args#finish()}); --model is required. */
    static ServingFlags read(Args args, int defaultMaxBatch) {
        return read(args, defaultMaxBatch, false);
    }

    /**
     * Reads the engine flags (call before {@link Args#finish()}). With {@code demoByDefault} and no --model, the
     * committed demo target with the demo draft (unless --draft none), as {@code generate} does.
     */
    static ServingFlags read(Args args, int defaultMaxBatch, boolean demoByDefault) {
        boolean demo = demoByDefault && !args.has("model");
        Path model = demo ? null : args.path("model");
        String draftFlag = args.has("draft") ? args.required("draft") : null;
        boolean draftOff = "none".equals(draftFlag);
        Path draft = draftFlag != null && !draftOff ? Path.of(draftFlag) : null;
        int k = atLeast(args, "draft-tokens", 4, 1);
        if (k > 16) {
            throw new UsageException("--draft-tokens must be <= 16, got " + k);
        }
        if (args.has("draft-tokens") && draft == null && !(demo && !draftOff)) {
            throw new UsageException("--draft-tokens needs --draft");
        }
        String backend = args.string("backend", "cpu");
        int threads = atLeast(args, "threads", 0, 1);
        int ctx = atLeast(args, "ctx", 0, 2);
        int maxBatch = atLeast(args, "max-batch", defaultMaxBatch, 1);
        if (maxBatch > 1024) {
            throw new UsageException("--max-batch must be <= 1024, got " + maxBatch);
        }
        int kvBlocks = atLeast(args, "kv-blocks", 0, 1);
        EngineOptions o = EngineOptions.defaults().withBackend(backend).withThreads(threads).withMaxContext(ctx)
                .withMaxBatch(maxBatch).withKvBlocks(kvBlocks).withDraftTokens(k).withKvCache(Cli.kvPrecision(args));
        return new ServingFlags(model, draft, demo, draftOff, o);
    }

    /** True when no --model was given and the demo pair is served. */
    boolean demo() {
        return demo;
    }

    /** The model directory (the demo target when {@link #demo()}; fails naming the place when it is missing). */
    Path model() {
        return demo ? SpeculationFlags.demo("target") : model;
    }

    /** The draft model directory, or null. */
    Path draft() {
        return demo && draft == null && !draftOff ? SpeculationFlags.demo("draft") : draft;
    }

    /** Loads the engine after checking the directories exist. */
    BatchEngine load() {
        Path m = model();
        Path d = draft();
        requireDir(m);
        if (d != null) {
            requireDir(d);
        }
        return BatchEngine.load(m, d, options);
    }

    static void requireDir(Path dir) {
        if (!Cli.isModel(dir)) {
            throw new IllegalArgumentException("model directory (or GGUF file) not found: " + dir);
        }
    }

    /** Reads the scaffold flags over {@code base}. */
    static ScaffoldOptions scaffold(Args args, ScaffoldOptions base) {
        ScaffoldOptions o = base;
        try {
            if (args.flag("no-plan")) {
                o = o.withPlan(false);
            }
            if (args.has("plan-prompt")) {
                o = o.withPlanPrompt(unescape(args.required("plan-prompt")));
            }
            if (args.has("reasoning-prompt")) {
                o = o.withReasoningPrompt(unescape(args.required("reasoning-prompt")));
            }
            if (args.has("direct-prompt")) {
                o = o.withDirectPrompt(unescape(args.required("direct-prompt")));
            }
            o = o.withPlanMaxTokens(atLeast(args, "plan-max-tokens", o.planMaxTokens(), 1));
            o = o.withBestOf(atLeast(args, "best-of", o.bestOf(), 1));
            o = o.withVerifier(args.string("verifier", o.verifier()));
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage());
        }
        return o;
    }

    static int atLeast(Args args, String key, int dflt, int min) {
        return Cli.intAtLeast(args, key, dflt, min);
    }

    static double inRange(Args args, String key, double dflt, double min, double max) {
        double v = args.decimal(key, dflt);
        if (!(v >= min && v <= max)) {
            throw new UsageException("--" + key + " must be in [" + min + ", " + max + "], got " + v);
        }
        return v;
    }

    /** {@code \n}, {@code \t}, {@code \\} written on a command line become the characters. */
    static String unescape(String s) {
        return Cli.unescape(s);
    }
}
