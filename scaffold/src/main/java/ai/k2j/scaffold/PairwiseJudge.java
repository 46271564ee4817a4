package ai.k2j.scaffold;

import ai.k2j.engine.SamplingParams;
import ai.k2j.tokenizer.ChatMessage;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The model as a judge: a knockout over the candidates, two at a time. The reigning candidate (first: candidate
 * 0) meets each next one; the judge, prompted with the question and both responses, answers "A" or "B" (greedy,
 * a few tokens); the winner reigns on. N − 1 judge calls in all. A reply naming neither (or a pair too long for the
 * judge's context) keeps the reigning candidate, so a judge that cannot follow the format degrades to "take the
 * first". Score = matches won.
 */
public final class PairwiseJudge implements Verifier {

    /** Placeholders: {question}, {a}, {b}. */
    public static final String DEFAULT_PROMPT = """
            Two responses to the same question follow. Which one answers it correctly? Reply with the single \
            letter A or B.

            Question:
            {question}

            Response A:
            {a}

            Response B:
            {b}

            Better response (A or B):""";

    private static final Pattern VERDICT = Pattern.compile("\\b([AB])\\b");

    private final Generator judge;
    private final String prompt;
    private final int maxTokens;

    public PairwiseJudge(Generator judge) {
        this(judge, DEFAULT_PROMPT, 8);
    }

    public PairwiseJudge(Generator judge, String prompt, int maxTokens) {
        if (!prompt.contains("{a}") || !prompt.contains("{b}")) {
            throw new IllegalArgumentException("the judge prompt must contain {a} and {b}");
        }
        this.judge = judge;
        this.prompt = prompt;
        this.maxTokens = maxTokens;
    }

    @Override
    public Verdict choose(String question, List<Candidate> candidates) {
        if (candidates.isEmpty()) {
            throw new IllegalArgumentException("no candidates to choose from");
        }
        double[] wins = new double[candidates.size()];
        int reigning = 0;
        int tokens = 0;
        int undecided = 0;
        for (int i = 1; i < candidates.size(); i++) {
            String text = prompt.replace("{question}", question)
                    .replace("{a}", candidates.get(reigning).text())
                    .replace("{b}", candidates.get(i).text());
            String letter;
            try {
                Generator.Sample reply = judge.generate(List.of(ChatMessage.user(text)), 1, SamplingParams.greedy(),
                        maxTokens).get(0);
                tokens += reply.tokens();
                letter = verdictOf(reply.text());
            } catch (IllegalArgumentException e) {
                letter = null; // the two responses do not fit the judge's context: no verdict
            }
            if ("B".equals(letter)) {
                reigning = i;
            } else if (letter == null) {
                undecided++;
            }
            wins[reigning]++;
        }
        List<Double> scores = new ArrayList<>();
        Arrays.stream(wins).forEach(scores::add);
        return new Verdict(candidates.get(reigning).index(), scores, "pairwise judge: candidate "
                + candidates.get(reigning).index() + " won " + (int) wins[reigning] + " of "
                + (candidates.size() - 1) + " matches" + (undecided > 0 ? " (" + undecided
                + " replies named neither A nor B)" : ""), tokens);
    }

    /** "A" or "B": the first standalone letter of the reply, or null. */
    static String verdictOf(String reply) {
        Matcher m = VERDICT.matcher(reply);
        return m.find() ? m.group(1) : null;
    }
}
