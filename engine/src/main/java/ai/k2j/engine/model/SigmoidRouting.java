package ai.k2j.engine.model;

import ai.k2j.loaders.DeepseekConfig;

import java.util.Arrays;

/**
 * DeepSeek-V3's router on the host (HF's {@code DeepseekV3MoE.route_tokens_to_experts}, {@code noaux_tc}), for a
 * step's tokens, with the (token, expert) pairs then grouped by expert:
 *
 * <ol>
 * <li>s = sigmoid(router logits) in float32; the choice score is s + e_score_correction_bias (the bias only
 *     steers the choice: the weights are the unbiased s).</li>
 * <li>With {@code n_group} groups of consecutive experts, a group scores the sum of its two best choice scores; the
 *     best {@code topk_group} groups stay, the other experts' choice scores become 0 (not −∞, as HF's
 *     {@code masked_fill(…, 0.0)}: when every kept score is negative, a masked expert can win).</li>
 * <li>The top {@code num_experts_per_tok} choice scores win (ties to the lower id); their weights s are divided by
 *     their sum + 1e-20 when {@code norm_topk_prob}, then multiplied by {@code routed_scaling_factor}.</li>
 * </ol>
 *
 * All state is sized once for a step of up to maxTokens tokens, so routing a step allocates nothing.
 */
final class SigmoidRouting {

    final float[] routerLogits;   // [maxTokens, experts], downloaded from the backend
    final int[] chosen;           // [maxTokens, topK]
    final float[] chosenWeights;  // [maxTokens, topK]
    final int[] groupStart;       // [experts + 1]: expert e's pairs are rows[groupStart[e], groupStart[e + 1])
    final int[] rows;             // token rows grouped by expert, ascending within a group
    final float[] scales;         // routing weight of each pair, in rows' order
    final int[] pairRow = new int[1];       // one pair at a time (the ungrouped benchmark path)
    final float[] pairScale = new float[1];

    private final DeepseekConfig config;
    private final float[] choice;      // one token's choice scores
    private final float[] groupScores; // one token's group scores
    private final boolean[] keptGroup;

    SigmoidRouting(int maxTokens, DeepseekConfig config) {
        this.config = config;
        int experts = config.routedExperts();
        int pairs = maxTokens * config.expertsPerToken();
        routerLogits = new float[maxTokens * experts];
        chosen = new int[pairs];
        chosenWeights = new float[pairs];
        groupStart = new int[experts + 1];
        rows = new int[pairs];
        scales = new float[pairs];
        choice = new float[experts];
        groupScores = new float[config.nGroup()];
        keptGroup = new boolean[config.nGroup()];
    }

    /** Routes tokens [0, n) from {@link #routerLogits} with the layer's correction bias, then groups the pairs. */
    void route(int n, float[] correctionBias) {
        int experts = config.routedExperts();
        int k = config.expertsPerToken();
        int groups = config.nGroup();
        int perGroup = experts / groups;
        for (int t = 0; t < n; t++) {
            int base = t * experts;
            for (int e = 0; e < experts; e++) {
                float s = sigmoid(routerLogits[base + e]);
                routerLogits[base + e] = s; // the weights read s back below
                choice[e] = s + correctionBias[e];
            }
            if (groups > 1) {
                for (int g = 0; g < groups; g++) {
                    float best = Float.NEGATIVE_INFINITY;
                    float second = Float.NEGATIVE_INFINITY;
                    for (int e = g * perGroup; e < (g + 1) * perGroup; e++) {
                        if (choice[e] > best) {
                            second = best;
                            best = choice[e];
                        } else if (choice[e] > second) {
                            second = choice[e];
                        }
                    }
                    groupScores[g] = best + second;
                }
                Arrays.fill(keptGroup, false);
                for (int j = 0; j < config.topkGroup(); j++) {
                    int bestGroup = -1;
                    for (int g = 0; g < groups; g++) {
                        if (!keptGroup[g] && (bestGroup < 0 || groupScores[g] > groupScores[bestGroup])) {
                            bestGroup = g;
                        }
                    }
                    keptGroup[bestGroup] = true;
                }
                for (int e = 0; e < experts; e++) {
                    if (!keptGroup[e / perGroup]) {
                        choice[e] = 0f;
                    }
                }
            }
            float sum = 0;
            for (int j = 0; j < k; j++) {
                int best = -1;
                for (int e = 0; e < experts; e++) {
                    if (!Float.isNaN(choice[e]) && (best < 0 || choice[e] > choice[best])) {
                        best = e;
                    }
                }
                choice[best] = Float.NaN; // taken
                chosen[t * k + j] = best;
                chosenWeights[t * k + j] = routerLogits[base + best];
                sum += routerLogits[base + best];
            }
            float denominator = sum + 1e-20f;
            float scaling = (float) config.routedScalingFactor();
            for (int j = 0; j < k; j++) {
                float w = chosenWeights[t * k + j];
                if (config.normTopkProb()) {
                    w /= denominator;
                }
                chosenWeights[t * k + j] = w * scaling;
            }
        }
        groupByExpert(n);
    }

    /** Counting sort of the step's pairs by expert; tokens stay ascending within each expert's group. */
    private void groupByExpert(int n) {
        int experts = config.routedExperts();
        int k = config.expertsPerToken();
        int[] start = groupStart;
        Arrays.fill(start, 0);
        for (int i = 0; i < n * k; i++) {
            start[chosen[i] + 1]++;
        }
        for (int e = 0; e < experts; e++) {
            start[e + 1] += start[e];
        }
        for (int t = 0; t < n; t++) {
            for (int j = 0; j < k; j++) {
                int e = chosen[t * k + j];
                rows[start[e]] = t; // start[e] is expert e's fill cursor here, restored below
                scales[start[e]] = chosenWeights[t * k + j];
                start[e]++;
            }
        }
        for (int e = experts; e > 0; e--) {
            start[e] = start[e - 1];
        }
        start[0] = 0;
    }

    /** torch's float32 sigmoid, 1 / (1 + e^−x). */
    static float sigmoid(float x) {
        return (float) (1.0 / (1.0 + Math.exp(-x)));
    }
}
