package ai.k2j.scaffold;

import ai.k2j.engine.SamplingParams;
import ai.k2j.tokenizer.ChatMessage;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The test-time scaffold of K2 Think: plan before you think, then best-of-N with a verifier.
 * <ol>
 *   <li>Plan (optional): the planner (the same model or another) answers the planning prompt with a short plan;</li>
 *   <li>Reason: the plan is placed before the question in the reasoning prompt (without a plan, the direct
 *       prompt), and N candidates are sampled as one batch;</li>
 *   <li>Verify: the verifier picks one — majority vote over extracted answers, the model as pairwise judge, the
 *       first, or any user {@link Verifier}.</li>
 * </ol>
 * <pre>{@code
 * Scaffold scaffold = new Scaffold(new EngineGenerator(engine, false), ScaffoldOptions.defaults());
 * ThinkResult r = scaffold.think("What is 17 * 3?", new SamplingParams(1.0, 0.95, 0, 0, 1), 512);
 * r.chosen().text();
 * }</pre>
 * Thread-safe when its generators and verifier are.
 */
public final class Scaffold {

    private final Generator reasoner;
    private final Generator planner;
    private final ScaffoldOptions options;
    private final Verifier verifier;
    private final String verifierName;

    /** Plans and judges with the same model; the verifier named by the options. */
    public Scaffold(Generator model, ScaffoldOptions options) {
        this(model, model, options, null);
    }

    /**
     * @param planner  generates the plan (may be {@code reasoner})
     * @param verifier a user verifier, or null for the one named by {@code options.verifier()} (a "judge" judges
     *                 with the reasoner)
     */
    public Scaffold(Generator reasoner, Generator planner, ScaffoldOptions options, Verifier verifier) {
        this.reasoner = reasoner;
        this.planner = planner;
        this.options = options;
        if (verifier != null) {
            this.verifier = verifier;
            this.verifierName = "custom";
        } else {
            this.verifierName = options.verifier();
            this.verifier = switch (options.verifier()) {
                case "majority" -> new MajorityVote();
                case "judge" -> new PairwiseJudge(reasoner);
                default -> (q, candidates) -> new Verdict(candidates.get(0).index(),
                        candidates.stream().map(c -> c.index() == 0 ? 1.0 : 0.0).toList(), "first candidate", 0);
            };
        }
    }

    public ScaffoldOptions options() {
        return options;
    }

    /**
     * Runs the scaffold on one question. The plan samples with {@code sampling} under a different seed; candidate
     * {@code i} with seed {@code sampling.seed() + i}.
     *
     * @param maxTokens most tokens per candidate
     */
    public ThinkResult think(String question, SamplingParams sampling, int maxTokens) {
        String plan = null;
        int planTokens = 0;
        String prompt;
        if (options.plan()) {
            SamplingParams planSampling = new SamplingParams(sampling.temperature(), sampling.topP(), sampling.topK(),
                    sampling.minP(), sampling.seed() ^ 0x9E3779B97F4A7C15L);
            Generator.Sample p = planner.generate(List.of(ChatMessage.user(fill(options.planPrompt(),
                    Map.of("question", question)))), 1, planSampling, options.planMaxTokens()).get(0);
            plan = p.text().strip();
            planTokens = p.tokens();
            prompt = fill(options.reasoningPrompt(), Map.of("plan", plan.isEmpty() ? "(none)" : plan,
                    "question", question));
        } else {
            prompt = fill(options.directPrompt(), Map.of("question", question));
        }
        List<Generator.Sample> samples = reasoner.generate(List.of(ChatMessage.user(prompt)), options.bestOf(),
                sampling, maxTokens);
        List<Candidate> candidates = new ArrayList<>(samples.size());
        for (int i = 0; i < samples.size(); i++) {
            Generator.Sample s = samples.get(i);
            candidates.add(new Candidate(i, s.text(), s.tokens(), s.finishReason(), Answers.extract(s.text())));
        }
        Verdict verdict = candidates.size() == 1
                ? new Verdict(0, List.of(1.0), "single candidate", 0)
                : verifier.choose(question, candidates);
        return new ThinkResult(question, plan, planTokens, prompt, candidates, verifierName, verdict);
    }

    /** Replaces each {name} of the template in one pass (values are not themselves expanded). */
    static String fill(String template, Map<String, String> values) {
        StringBuilder out = new StringBuilder(template.length() + 256);
        int i = 0;
        while (i < template.length()) {
            char c = template.charAt(i);
            if (c == '{') {
                int close = template.indexOf('}', i);
                if (close > i) {
                    String value = values.get(template.substring(i + 1, close));
                    if (value != null) {
                        out.append(value);
                        i = close + 1;
                        continue;
                    }
                }
            }
            out.append(c);
            i++;
        }
        return out.toString();
    }
}
