package ai.k2j.engine;


import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.Function;

/**
 * Plain against speculative decoding, measured in one run on the same prompts with the same loaded models, and
 * compared with theory. Per prompt, plain decoding runs first and then every speculative setting (interleaved,
 * so drift of a shared machine hits all alike); every generation makes exactly {@code maxTokens} tokens (end of
 * sequence ignored). For each setting:
 *
 * <ul>
 *   <li>speedup: speculative decode tokens/s ÷ plain decode tokens/s (the prefill is excluded from both);</li>
 *   <li>α: accepted ÷ tested drafts ({@link SpeculativeStats#acceptanceRate()});</li>
 *   <li>c: drafting time per proposed token ÷ the time of a plain target step;</li>
 *   <li>the theoretical speedup (1 − α^(k+1)) / ((1 − α)(1 + c·k)) (Leviathan et al., 2023), with k the mean
 *       draft length per target pass (the fixed k, slightly less where a round was shortened at the end of the
 *       token budget; for adaptive and lookup settings, whose lengths vary, the bound is only indicative), and
 *       the measured speedup as a fraction of it;</li>
 *   <li>v: a verification pass's time ÷ a plain step's: the bound assumes 1 (a target pass over k + 1 tokens
 *       costs what one over a single token does, true while decode is memory-bound); the bound with the measured
 *       v, τ / (c·k + v), shows how much of the gap that explains.</li>
 * </ul>
 * Greedy runs also check that every speculative output equals the plain one.
 */
public final class SpeculativeBench {

    private SpeculativeBench() {
    }

    /**
     * @param prompts      prompt ids, each run plain and with every setting
     * @param maxTokens    tokens generated per prompt and setting
     * @param sampling     the same for every run (seeds included, so sampled runs are reproducible)
     * @param speculations the settings compared with plain decoding
     * @param warmUpTokens tokens generated once per setting before measuring (lets the JIT compile the loops)
     */
    public record Config(List<int[]> prompts, int maxTokens, SamplingParams sampling, List<Speculation> speculations,
                         int warmUpTokens) {
        public Config {
            if (prompts.isEmpty() || maxTokens < 2) {
                throw new IllegalArgumentException("need at least one prompt and two tokens per generation");
            }
            prompts = List.copyOf(prompts);
            speculations = List.copyOf(speculations);
        }
    }

    /** One speculative setting against plain decoding. */
    public record Row(String speculation, double k, double alpha, double tokensPerPass, double costRatio,
                      double verifyCost, double tokensPerSecond, double speedup, double theoreticalSpeedup,
                      double boundWithVerifyCost, double fractionOfTheory, boolean sameTokensAsPlain,
                      SpeculativeStats stats) {

        public Map<String, Object> toMap() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("speculation", speculation);
            m.put("k", k);
            m.put("alpha", alpha);
            m.put("tokens_per_target_pass", tokensPerPass);
            m.put("c", costRatio);
            m.put("verify_cost", verifyCost);
            m.put("decode_tokens_per_second", tokensPerSecond);
            m.put("speedup", speedup);
            m.put("theoretical_speedup", theoreticalSpeedup);
            m.put("bound_with_verify_cost", boundWithVerifyCost);
            m.put("fraction_of_theory", fractionOfTheory);
            m.put("same_tokens_as_plain", sameTokensAsPlain);
            m.put("stats", stats.toMap());
            return m;
        }
    }

    /**
     * @param plainTokensPerSecond plain decode throughput over all prompts
     * @param targetStepMillis     one plain decode step (one target pass over one token)
     */
    public record Result(int prompts, double meanPromptTokens, int maxTokens, SamplingParams sampling, String backend,
                         double plainTokensPerSecond, double targetStepMillis, List<Row> rows) {

        public Map<String, Object> toMap() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("prompts", prompts);
            m.put("mean_prompt_tokens", meanPromptTokens);
            m.put("max_tokens", maxTokens);
            m.put("sampling", sampling.isGreedy() ? "greedy" : String.format(Locale.ROOT,
                    "temperature %s, top_p %s, top_k %d, min_p %s, seed %d", sampling.temperature(), sampling.topP(),
                    sampling.topK(), sampling.minP(), sampling.seed()));
            m.put("backend", backend);
            m.put("plain_decode_tokens_per_second", plainTokensPerSecond);
            m.put("target_step_ms", targetStepMillis);
            m.put("rows", rows.stream().map(Row::toMap).toList());
            return m;
        }

        /** A fixed-width table, one row per setting. */
        public String table() {
            StringBuilder sb = new StringBuilder();
            sb.append(String.format(Locale.ROOT, "plain decode: %.1f tok/s (%.3f ms per target step), %d prompts of"
                            + " ~%.0f tokens, %d new tokens each, %s, backend %s%n", plainTokensPerSecond,
                    targetStepMillis, prompts, meanPromptTokens, maxTokens,
                    sampling.isGreedy() ? "greedy" : "temperature " + sampling.temperature(), backend));
            sb.append(String.format(Locale.ROOT, "%-22s %5s %6s %8s %6s %6s %8s %8s %8s %8s %7s %s%n", "speculation",
                    "k", "alpha", "tok/pass", "c", "v", "tok/s", "speedup", "theory", "w/ v", "ratio",
                    sampling.isGreedy() ? "same" : ""));
            for (Row r : rows) {
                sb.append(String.format(Locale.ROOT, "%-22s %5.2f %6.3f %8.2f %6.3f %6.2f %8.1f %7.2fx %7.2fx %7.2fx"
                                + " %7.2f %s%n", r.speculation, r.k, r.alpha, r.tokensPerPass, r.costRatio,
                        r.verifyCost, r.tokensPerSecond, r.speedup, r.theoreticalSpeedup, r.boundWithVerifyCost,
                        r.fractionOfTheory, sampling.isGreedy() ? (r.sameTokensAsPlain ? "yes" : "NO") : ""));
            }
            sb.append(String.format(Locale.ROOT, "draft lengths chosen: share of plain steps (k = 0); mean k per"
                    + " target pass in each stretch of %d generated tokens, over the prompts%n",
                    SpeculativeStats.TIMELINE_TOKENS));
            for (Row r : rows) {
                sb.append(String.format(Locale.ROOT, "%-22s %5.1f%%  k:", r.speculation,
                        100 * r.stats.plainStepShare()));
                for (double k : r.stats.draftLengthTimeline()) {
                    sb.append(Double.isNaN(k) ? "    -" : String.format(Locale.ROOT, " %4.1f", k));
                }
                sb.append(System.lineSeparator());
            }
            return sb.toString();
        }
    }

    /** Runs the comparison; {@code progress} receives a line per prompt (may be null). */
    public static Result run(LanguageModel model, Config config, Consumer<String> progress) {
        Consumer<String> log = progress == null ? s -> { } : progress;
        int n = config.speculations().size();
        // warm-up: every code path once
        int[] first = config.prompts().getFirst();
        if (config.warmUpTokens() > 0) {
            generate(model, first, config.warmUpTokens(), config.sampling(), Speculation.none());
            for (Speculation s : config.speculations()) {
                generate(model, first, config.warmUpTokens(), config.sampling(), s);
            }
        }
        long plainNanos = 0;
        long plainTokens = 0;
        long[] specNanos = new long[n];
        long[] specTokens = new long[n];
        boolean[] same = new boolean[n];
        Arrays.fill(same, true);
        SpeculativeStats[] stats = new SpeculativeStats[n];
        long promptTokens = 0;
        int p = 0;
        for (int[] prompt : config.prompts()) {
            promptTokens += prompt.length;
            GenerationResult plain = generate(model, prompt, config.maxTokens(), config.sampling(), Speculation.none());
            plainNanos += plain.decodeNanos();
            plainTokens += plain.generatedTokens() - 1;
            StringBuilder line = new StringBuilder(String.format(Locale.ROOT, "prompt %d/%d (%d tokens): plain %.1f"
                    + " tok/s", ++p, config.prompts().size(), prompt.length, plain.decodeTokensPerSecond()));
            for (int i = 0; i < n; i++) {
                Speculation s = config.speculations().get(i);
                GenerationResult r = generate(model, prompt, config.maxTokens(), config.sampling(), s);
                specNanos[i] += r.decodeNanos();
                specTokens[i] += r.generatedTokens() - 1;
                same[i] &= Arrays.equals(plain.ids(), r.ids());
                stats[i] = stats[i] == null ? r.speculation() : stats[i].plus(r.speculation());
                line.append(String.format(Locale.ROOT, ", %s %.1f tok/s (alpha %.2f)", s.describe(),
                        r.decodeTokensPerSecond(), r.speculation().acceptanceRate()));
            }
            log.accept(line.toString());
        }
        double plainRate = plainTokens * 1e9 / plainNanos;
        double stepNanos = (double) plainNanos / plainTokens;
        List<Row> rows = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            Speculation s = config.speculations().get(i);
            SpeculativeStats st = stats[i];
            double k = st.meanDraftLength(); // = the fixed k, less the rounds shortened at the end of the budget
            double alpha = st.acceptanceRate();
            double c = st.proposed() > 0 ? st.draftNanos() / (double) st.proposed() / stepNanos : 0;
            double v = st.targetPasses() > 0 ? st.targetNanos() / (double) st.targetPasses() / stepNanos : 0;
            double rate = specTokens[i] * 1e9 / specNanos[i];
            double speedup = rate / plainRate;
            double tau = expectedTokensPerPass(alpha, k);
            double theory = tau / (1 + c * k);
            double withV = tau / (c * k + v);
            rows.add(new Row(s.describe(), k, alpha, st.tokensPerTargetPass(), c, v, rate, speedup, theory, withV,
                    speedup / theory, same[i], st));
        }
        String backend = model.backendName();
        return new Result(config.prompts().size(), (double) promptTokens / config.prompts().size(), config.maxTokens(),
                config.sampling(), backend, plainRate, stepNanos / 1e6, rows);
    }

    /** (1 − α^(k+1)) / (1 − α): expected tokens per target pass at per-token acceptance α, for real k. */
    public static double expectedTokensPerPass(double alpha, double k) {
        if (alpha >= 1) {
            return k + 1;
        }
        return (1 - Math.pow(alpha, k + 1)) / (1 - alpha);
    }

    /** The theoretical speedup (1 − α^(k+1)) / ((1 − α)(1 + c·k)). */
    public static double theoreticalSpeedup(double alpha, double c, double k) {
        return expectedTokensPerPass(alpha, k) / (1 + c * k);
    }

    private static GenerationResult generate(LanguageModel model, int[] prompt, int maxTokens, SamplingParams sampling,
                                             Speculation s) {
        return model.generate(new GenerationRequest(prompt, maxTokens, sampling, List.of(), true, s), null);
    }

    /**
     * Prompts from held-out text, chosen as tools/demo-model/golden.py chooses its acceptance prompts (so the
     * figures compare with HF's): {@code count} start offsets at evenly spaced line starts, each prompt the first
     * {@code promptTokens} tokens of the 16·promptTokens characters from there; prompts shorter than half of
     * that are skipped. Offsets count code points, as Python's do.
     */
    public static List<int[]> heldOutPrompts(String text, Function<String, int[]> encode, int count,
                                             int promptTokens) {
        int[] cps = text.codePoints().toArray();
        List<Integer> lineStarts = new ArrayList<>();
        lineStarts.add(0);
        for (int i = 0; i < cps.length; i++) {
            if (cps[i] == '\n') {
                lineStarts.add(i + 1);
            }
        }
        List<int[]> prompts = new ArrayList<>();
        for (int j = 0; j < count; j++) {
            int start = lineStarts.get((int) ((long) j * lineStarts.size() / count));
            int end = Math.min(cps.length, start + 16 * promptTokens);
            int[] ids = encode.apply(new String(cps, start, end - start));
            ids = Arrays.copyOf(ids, Math.min(ids.length, promptTokens));
            if (ids.length >= promptTokens / 2 && ids.length > 0) {
                prompts.add(ids);
            }
        }
        return prompts;
    }
}
