package ai.k2j.scaffold;

import java.util.ArrayList;
import java.util.List;
import java.util.function.ToDoubleFunction;

/**
 * Picks the answer among best-of-N's candidates. Built in: {@link MajorityVote} (answers extracted and counted),
 * {@link PairwiseJudge} (the model compares candidates two at a time); user checks plug in here, e.g. running a
 * candidate's code against unit tests:
 * <pre>{@code
 * Verifier tests = Verifier.scoring(c -> runUnitTests(c.text()) ? 1 : 0);
 * }</pre>
 * Implementations must be thread-safe when shared across concurrent scaffold calls.
 */
@FunctionalInterface
public interface Verifier {

    Verdict choose(String question, List<Candidate> candidates);

    /** Highest score wins; ties go to the majority answer among the tied, then to the lowest index. */
    static Verifier scoring(ToDoubleFunction<Candidate> score) {
        return (question, candidates) -> {
            List<Double> scores = new ArrayList<>();
            double best = Double.NEGATIVE_INFINITY;
            for (Candidate c : candidates) {
                double s = score.applyAsDouble(c);
                scores.add(s);
                best = Math.max(best, s);
            }
            List<Candidate> top = new ArrayList<>();
            for (int i = 0; i < candidates.size(); i++) {
                if (scores.get(i) == best) {
                    top.add(candidates.get(i));
                }
            }
            int chosen = top.size() == 1 ? top.get(0).index()
                    : top.get(MajorityVote.winnerAmong(top)).index();
            return new Verdict(chosen, scores, "highest user score " + best
                    + (top.size() > 1 ? " (" + top.size() + " tied; majority answer among them)" : ""), 0);
        };
    }
}
