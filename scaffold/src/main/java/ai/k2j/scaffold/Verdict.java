package ai.k2j.scaffold;

import java.util.List;

/**
 * A verifier's choice among the candidates: the chosen index, a score per candidate (votes, wins, or the
 * user's score; higher is better), a one-line reason, and the tokens the verifier itself generated.
 */
public record Verdict(int chosen, List<Double> scores, String reason, int tokens) {
    public Verdict {
        scores = List.copyOf(scores);
    }
}
