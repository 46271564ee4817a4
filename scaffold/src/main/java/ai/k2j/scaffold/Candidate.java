package ai.k2j.scaffold;

/**
 * One of best-of-N's samples: its text, token count, and the answer extracted from it ({@code null} when none
 * was found).
 */
public record Candidate(int index, String text, int tokens, String finishReason, String answer) {
}
