package ai.k2j.cli;


import ai.k2j.engine.Speculation;
import ai.k2j.engine.SpeculativeStats;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * The model and speculative-decoding flags shared by {@code generate} and {@code spec-bench}:
 * {@code --model DIR} (default: the committed demo target), {@code --draft DIR|none} / {@code --no-draft}
 * (default: the demo draft when the model is the default one, else none), {@code --draft-tokens K},
 * {@code --adaptive}, {@code --lookup}, {@code --ngram N}.
 *
 * @param model       the target model directory
 * @param draft       the draft model directory, or null
 * @param speculation what generation uses: the draft model (adaptive unless {@code --draft-tokens} alone is
 *                    given), prompt lookup, or none
 */
record SpeculationFlags(Path model, Path draft, Speculation speculation) {

    /** Proposals per prompt-lookup round when --draft-tokens is not given. */
    static final int DEFAULT_LOOKUP_TOKENS = 6;

    static final List<Flag> FLAGS = List.of(
            Flag.option("model", "DIR", "the demo model, models/demo/target", "model directory"),
            Flag.option("draft", "DIR|none", "models/demo/draft when --model is not given, else none",
                    "draft model for speculative decoding (same vocabulary as the model); none: plain decoding"),
            Flag.toggle("no-draft", "plain decoding, the same as --draft none"),
            Flag.option("draft-tokens", "K", "adaptive from " + Speculation.DEFAULT_DRAFT_TOKENS + "; "
                    + DEFAULT_LOOKUP_TOKENS + " with --lookup", "tokens drafted per target pass, 1 to "
                    + Speculation.MAX_DRAFT_TOKENS + " (fixed unless --adaptive is given too)"),
            Flag.toggle("adaptive", "cost-aware draft length: each round drafts the length (0 = a plain step) that"
                    + " maximizes the expected tokens/s under the measured costs and acceptance (the default unless"
                    + " --draft-tokens is given alone)"),
            Flag.toggle("lookup", "prompt-lookup drafting instead of a draft model: propose what followed the"
                    + " latest earlier occurrence of the context's last n-gram (cost-aware length unless"
                    + " --draft-tokens is given alone)"),
            Flag.option("ngram", "N", String.valueOf(Speculation.DEFAULT_NGRAM), "--lookup: longest n-gram matched,"
                    + " 1 to 8"));

    /** Reads and cross-checks the flags (usage errors only: nothing is looked up on disk yet). */
    static Parsed parse(Args args) {
        Path model = args.has("model") ? args.path("model") : null;
        boolean noDraft = args.flag("no-draft");
        String draftFlag = args.string("draft", null);
        boolean lookup = args.flag("lookup");
        Integer ngramFlag = args.has("ngram") ? args.integer("ngram", 0) : null;
        boolean adaptive = args.flag("adaptive");
        Integer k = args.has("draft-tokens") ? args.integer("draft-tokens", 0) : null;
        if (k != null && (k < 1 || k > Speculation.MAX_DRAFT_TOKENS)) {
            throw new UsageException("--draft-tokens must be in [1, " + Speculation.MAX_DRAFT_TOKENS + "], got " + k);
        }
        if (noDraft && draftFlag != null && !draftFlag.equals("none")) {
            throw new UsageException("--no-draft contradicts --draft " + draftFlag);
        }
        boolean draftOff = noDraft || "none".equals(draftFlag);
        Path draft = draftFlag != null && !draftOff ? Path.of(draftFlag) : null;
        int ngram = 0;
        if (ngramFlag != null && !lookup) {
            throw new UsageException("--ngram needs --lookup");
        }
        if (lookup) {
            if (draft != null) {
                throw new UsageException("--lookup drafts without a model: give --lookup or --draft DIR, not both");
            }
            ngram = ngramFlag != null ? ngramFlag : Speculation.DEFAULT_NGRAM;
            if (ngram < 1 || ngram > 8) {
                throw new UsageException("--ngram must be in [1, 8], got " + ngram);
            }
        }
        if ((k != null || adaptive) && !lookup && (draftOff || (draft == null && model != null))) {
            throw new UsageException("--draft-tokens and --adaptive need a draft model (--draft DIR) or --lookup");
        }
        return new Parsed(model, draft, draftOff || lookup, ngram, k, adaptive || k == null);
    }

    /**
     * Flags as given. model null: the demo target; draft null: none, or the demo draft when the model is the
     * demo's and the draft was not turned off; ngram &gt; 0: prompt lookup.
     */
    record Parsed(Path model, Path draft, boolean noDraftModel, int ngram, Integer draftTokens, boolean adaptive) {

        /** Finds the directories (failing, exit 1, when one is missing) and settles the speculation. */
        SpeculationFlags resolve() {
            Path m = model != null ? existing(model, "model") : demo("target");
            if (ngram > 0) {
                return new SpeculationFlags(m, null, new Speculation(Speculation.Mode.PROMPT_LOOKUP,
                        draftTokens != null ? draftTokens : DEFAULT_LOOKUP_TOKENS, adaptive, ngram));
            }
            Path d = null;
            if (draft != null) {
                d = existing(draft, "draft model");
            } else if (!noDraftModel && model == null) {
                d = demo("draft");
            }
            if (d == null) {
                return new SpeculationFlags(m, null, Speculation.none());
            }
            Speculation s = draftTokens != null && !adaptive ? Speculation.draftModel(draftTokens)
                    : Speculation.adaptiveDraftModel(draftTokens != null ? draftTokens
                    : Speculation.DEFAULT_DRAFT_TOKENS);
            return new SpeculationFlags(m, d, s);
        }

        private static Path existing(Path dir, String what) {
            if (!Cli.isModel(dir)) {
                throw new IllegalArgumentException(what + " directory (or GGUF file) not found: " + dir);
            }
            return dir;
        }
    }

    /** {@code <k2j home>/models/demo/NAME}; fails naming the place when the demo model is not there. */
    static Path demo(String name) {
        Path dir = home().resolve("models/demo").resolve(name);
        if (!Files.isRegularFile(dir.resolve("config.json"))) {
            throw new IllegalArgumentException("no --model given and the demo model is not at " + dir
                    + " (set -Dk2j.home=REPO or K2J_HOME to the k2j checkout, or pass --model DIR)");
        }
        return dir;
    }

    /**
     * The k2j checkout: {@code -Dk2j.home} (the launcher sets it), else {@code K2J_HOME}, else the repository
     * holding this class ({@code engine/target/classes} or {@code engine/target/k2j-engine-*.jar}), else the
     * working directory.
     */
    static Path home() {
        String prop = System.getProperty("k2j.home");
        if (prop != null && !prop.isBlank()) {
            return Path.of(prop);
        }
        String env = System.getenv("K2J_HOME");
        if (env != null && !env.isBlank()) {
            return Path.of(env);
        }
        try {
            var source = SpeculationFlags.class.getProtectionDomain().getCodeSource();
            if (source != null) {
                Path p = Path.of(source.getLocation().toURI()).toAbsolutePath();
                for (int up = 0; up < 4 && p != null; up++, p = p.getParent()) {
                    if (Files.isDirectory(p.resolve("models/demo"))) {
                        return p;
                    }
                }
            }
        } catch (URISyntaxException | SecurityException | IllegalArgumentException e) {
            // fall through
        }
        return Path.of("").toAbsolutePath();
    }

    /** One stderr line: the acceptance rate and what it bought. */
    static String summary(SpeculativeStats s, Path draft) {
        String source = draft != null ? "draft " + shortPath(draft) : "prompt lookup";
        return String.format(Locale.ROOT, "[k2j] speculative decoding (%s, %s): acceptance rate %.1f%% (%d of %d"
                        + " drafts), %.2f tokens per target pass, drafting %.0f%% of decode time",
                source, s.speculation(), 100 * s.acceptanceRate(), s.accepted(), s.verified(),
                s.tokensPerTargetPass(), 100 * s.draftTimeShare());
    }

    /** A path under the k2j home relative to it (models/demo/draft), others as given. */
    static Path shortPath(Path p) {
        Path abs = p.toAbsolutePath().normalize();
        Path home = home().toAbsolutePath().normalize();
        return abs.startsWith(home) ? home.relativize(abs) : p;
    }
}
