package ai.k2j.scaffold;

/**
 * How the test-time scaffold runs.
 *
 * @param plan            plan before you think: a planning pass first, its plan placed before the reasoning prompt
 * @param planPrompt      the planning prompt; {@code {question}} is replaced by the question
 * @param planMaxTokens   most tokens of the plan
 * @param reasoningPrompt the prompt answered by the candidates when planning; {@code {plan}} and {@code {question}}
 *                        are replaced
 * @param directPrompt    the prompt answered without a plan; {@code {question}} is replaced
 * @param bestOf          candidates sampled (one batch); 1 = no selection
 * @param verifier        "majority" (answer extraction + vote), "judge" (the model as pairwise judge), or "first"
 */
public record ScaffoldOptions(boolean plan, String planPrompt, int planMaxTokens, String reasoningPrompt,
                              String directPrompt, int bestOf, String verifier) {

    public static final String DEFAULT_PLAN_PROMPT = """
            Do not solve the problem yet. Write a short plan: the key facts and the steps to take, in at most \
            five short bullet points.

            Problem: {question}""";

    public static final String DEFAULT_REASONING_PROMPT = """
            {question}

            A plan to follow:
            {plan}

            Solve the problem following the plan, then give the final answer as \\boxed{ANSWER}.""";

    public static final String DEFAULT_DIRECT_PROMPT = """
            {question}

            Solve the problem, then give the final answer as \\boxed{ANSWER}.""";

    public ScaffoldOptions {
        if (planMaxTokens < 1) {
            throw new IllegalArgumentException("plan max tokens must be >= 1, got " + planMaxTokens);
        }
        if (bestOf < 1 || bestOf > 64) {
            throw new IllegalArgumentException("best_of must be in [1, 64], got " + bestOf);
        }
        if (!planPrompt.contains("{question}")) {
            throw new IllegalArgumentException("the planning prompt must contain {question}");
        }
        if (!reasoningPrompt.contains("{plan}") || !reasoningPrompt.contains("{question}")) {
            throw new IllegalArgumentException("the reasoning prompt must contain {plan} and {question}");
        }
        if (!directPrompt.contains("{question}")) {
            throw new IllegalArgumentException("the direct prompt must contain {question}");
        }
        if (!verifier.equals("majority") && !verifier.equals("judge") && !verifier.equals("first")) {
            throw new IllegalArgumentException("verifier must be majority, judge or first, got '" + verifier + "'");
        }
    }

    /** The full scaffold: plan, then best of 3 by majority vote. */
    public static ScaffoldOptions defaults() {
        return new ScaffoldOptions(true, DEFAULT_PLAN_PROMPT, 256, DEFAULT_REASONING_PROMPT, DEFAULT_DIRECT_PROMPT, 3,
                "majority");
    }

    /** No scaffold: one sample of the direct prompt. */
    public static ScaffoldOptions none() {
        return defaults().withPlan(false).withBestOf(1);
    }

    public ScaffoldOptions withPlan(boolean p) {
        return new ScaffoldOptions(p, planPrompt, planMaxTokens, reasoningPrompt, directPrompt, bestOf, verifier);
    }

    public ScaffoldOptions withPlanPrompt(String t) {
        return new ScaffoldOptions(plan, t, planMaxTokens, reasoningPrompt, directPrompt, bestOf, verifier);
    }

    public ScaffoldOptions withPlanMaxTokens(int t) {
        return new ScaffoldOptions(plan, planPrompt, t, reasoningPrompt, directPrompt, bestOf, verifier);
    }

    public ScaffoldOptions withReasoningPrompt(String t) {
        return new ScaffoldOptions(plan, planPrompt, planMaxTokens, t, directPrompt, bestOf, verifier);
    }

    public ScaffoldOptions withDirectPrompt(String t) {
        return new ScaffoldOptions(plan, planPrompt, planMaxTokens, reasoningPrompt, t, bestOf, verifier);
    }

    public ScaffoldOptions withBestOf(int n) {
        return new ScaffoldOptions(plan, planPrompt, planMaxTokens, reasoningPrompt, directPrompt, n, verifier);
    }

    public ScaffoldOptions withVerifier(String v) {
        return new ScaffoldOptions(plan, planPrompt, planMaxTokens, reasoningPrompt, directPrompt, bestOf, v);
    }

    /** Whether this does anything beyond one plain sample. */
    public boolean isActive() {
        return plan || bestOf > 1;
    }
}
