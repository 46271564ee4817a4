package ai.k2j.engine;

/**
 * The log-probability of a generated token under the model's distribution at its position (log-softmax of the
 * raw logits: before temperature, top-k/top-p and any {@link TokenConstraint}, as OpenAI and vLLM report them),
 * and the {@code top.length} most likely tokens there, most likely first (ties: lower id first).
 */
public record TokenLogprob(int id, float logprob, int[] topIds, float[] topLogprobs) {
}
