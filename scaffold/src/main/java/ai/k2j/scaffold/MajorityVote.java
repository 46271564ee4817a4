package ai.k2j.scaffold;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Self-consistency: the answer most candidates extract wins (answers compared as {@link Answers#equivalent});
 * among tied answers the one reached first (lowest candidate index); the chosen candidate is the first holding
 * the winning answer. Candidates without an answer do not vote; when none has one, candidate 0 is chosen.
 * Score = the number of candidates sharing a candidate's answer.
 */
public final class MajorityVote implements Verifier {

    @Override
    public Verdict choose(String question, List<Candidate> candidates) {
        if (candidates.isEmpty()) {
            throw new IllegalArgumentException("no candidates to choose from");
        }
        Map<String, List<Candidate>> groups = group(candidates);
        List<Double> scores = new ArrayList<>();
        for (Candidate c : candidates) {
            List<Candidate> g = c.answer() == null ? null : groups.get(key(c.answer(), groups));
            scores.add(g == null ? 0.0 : g.size());
        }
        if (groups.isEmpty()) {
            return new Verdict(candidates.get(0).index(), scores, "no candidate stated an answer; took the first", 0);
        }
        int chosen = candidates.get(winnerAmong(candidates)).index();
        List<Candidate> winning = groups.get(key(candidates.stream().filter(c -> c.index() == chosen).findFirst()
                .orElseThrow().answer(), groups));
        return new Verdict(chosen, scores, "majority answer '" + Answers.normalize(winning.get(0).answer()) + "' ("
                + winning.size() + " of " + candidates.size() + " votes)", 0);
    }

    /** Position (in {@code candidates}) of the first candidate holding the majority answer; 0 when none answers. */
    static int winnerAmong(List<Candidate> candidates) {
        Map<String, List<Candidate>> groups = group(candidates);
        List<Candidate> best = null;
        for (List<Candidate> g : groups.values()) { // insertion order = first appearance, so ties keep the first
            if (best == null || g.size() > best.size()) {
                best = g;
            }
        }
        return best == null ? 0 : candidates.indexOf(best.get(0));
    }

    /** Candidates grouped by equivalent answer, groups in order of first appearance. */
    private static Map<String, List<Candidate>> group(List<Candidate> candidates) {
        Map<String, List<Candidate>> groups = new LinkedHashMap<>();
        for (Candidate c : candidates) {
            if (c.answer() == null) {
                continue;
            }
            String k = key(c.answer(), groups);
            groups.computeIfAbsent(k == null ? Answers.normalize(c.answer()) : k, x -> new ArrayList<>()).add(c);
        }
        return groups;
    }

    /** The existing group key equivalent to {@code answer}, or null. */
    private static String key(String answer, Map<String, List<Candidate>> groups) {
        for (String k : groups.keySet()) {
            if (Answers.equivalent(k, answer)) {
                return k;
            }
        }
        return null;
    }
}
