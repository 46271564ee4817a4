package ai.k2j.engine.model;

import ai.k2j.loaders.DeepseekConfig;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * {@link SigmoidRouting} against an independent float64 transcription of HF's {@code route_tokens_to_experts}
 * written with sorts (not the selection loops of the code under test): which experts each token gets, with what
 * weights, and the grouping of the pairs by expert.
 */
class SigmoidRoutingTest {

    private static DeepseekConfig config(int experts, int topK, int groups, int topkGroup, boolean norm, double scaling) {
        return new DeepseekConfig(0, 32, 16, 8, 16, true, experts, 1, topK, 24, 1, groups, topkGroup, norm, scaling, 0, 0);
    }

    /** The reference: expert ids (ascending) and their weights for one token. */
    private record Choice(int[] experts, double[] weights) {
    }

    private static Choice reference(float[] logits, float[] bias, DeepseekConfig c) {
        int n = c.routedExperts();
        int perGroup = n / c.nGroup();
        double[] s = new double[n];
        double[] choice = new double[n];
        for (int e = 0; e < n; e++) {
            s[e] = 1 / (1 + Math.exp(-logits[e]));
            choice[e] = s[e] + bias[e];
        }
        // group score: sum of the two largest choice scores of the group; keep the topk_group best groups
        List<Integer> groups = new ArrayList<>();
        double[] groupScore = new double[c.nGroup()];
        for (int g = 0; g < c.nGroup(); g++) {
            double[] members = IntStream.range(g * perGroup, (g + 1) * perGroup).mapToDouble(e -> choice[e])
                    .sorted().toArray();
            groupScore[g] = members[members.length - 1] + members[members.length - 2];
            groups.add(g);
        }
        groups.sort(Comparator.comparingDouble((Integer g) -> -groupScore[g]).thenComparingInt(g -> g));
        boolean[] kept = new boolean[c.nGroup()];
        for (int i = 0; i < c.topkGroup(); i++) {
            kept[groups.get(i)] = true;
        }
        List<Integer> order = new ArrayList<>();
        for (int e = 0; e < n; e++) {
            order.add(e);
        }
        double[] masked = new double[n];
        for (int e = 0; e < n; e++) {
            masked[e] = kept[e / perGroup] ? choice[e] : 0.0;
        }
        order.sort(Comparator.comparingDouble((Integer e) -> -masked[e]).thenComparingInt(e -> e));
        int[] chosen = order.subList(0, c.expertsPerToken()).stream().mapToInt(Integer::intValue).sorted().toArray();
        double sum = 0;
        for (int e : chosen) {
            sum += s[e];
        }
        double[] weights = new double[chosen.length];
        for (int i = 0; i < chosen.length; i++) {
            weights[i] = (c.normTopkProb() ? s[chosen[i]] / (sum + 1e-20) : s[chosen[i]]) * c.routedScalingFactor();
        }
        return new Choice(chosen, weights);
    }

    private static void check(DeepseekConfig c, double biasScale, double biasShift, long seed) {
        int tokens = 37;
        Random random = new Random(seed);
        SigmoidRouting routing = new SigmoidRouting(tokens, c);
        int n = c.routedExperts();
        float[] bias = new float[n];
        for (int e = 0; e < n; e++) {
            bias[e] = (float) (biasScale * random.nextGaussian() + biasShift);
        }
        float[] logits = new float[tokens * n];
        for (int i = 0; i < logits.length; i++) {
            logits[i] = (float) (1.5 * random.nextGaussian());
        }
        System.arraycopy(logits, 0, routing.routerLogits, 0, logits.length);
        routing.route(tokens, bias);
        int k = c.expertsPerToken();
        int pairs = 0;
        for (int t = 0; t < tokens; t++) {
            float[] row = new float[n];
            System.arraycopy(logits, t * n, row, 0, n);
            Choice want = reference(row, bias, c);
            int[] got = new int[k];
            double[] gotWeights = new double[k];
            for (int j = 0; j < k; j++) {
                got[j] = routing.chosen[t * k + j];
            }
            Integer[] byExpert = IntStream.range(0, k).boxed().sorted(Comparator.comparingInt(j -> got[j]))
                    .toArray(Integer[]::new);
            int[] sorted = new int[k];
            for (int j = 0; j < k; j++) {
                sorted[j] = got[byExpert[j]];
                gotWeights[j] = routing.chosenWeights[t * k + byExpert[j]];
            }
            assertArrayEquals(want.experts(), sorted, "token " + t + " experts");
            assertArrayEquals(want.weights(), gotWeights, 1e-6, "token " + t + " weights");
            // every pair appears in its expert's group with the same weight
            for (int j = 0; j < k; j++) {
                int e = sorted[j];
                boolean found = false;
                for (int i = routing.groupStart[e]; i < routing.groupStart[e + 1]; i++) {
                    if (routing.rows[i] == t) {
                        assertEquals(gotWeights[j], routing.scales[i], 0.0);
                        found = true;
                    }
                }
                assertEquals(true, found, "token " + t + " missing from expert " + e + "'s group");
            }
            pairs += k;
        }
        assertEquals(pairs, routing.groupStart[n]);
    }

    @Test
    void groupLimitedChoiceAsDeepseekV3() {
        check(config(16, 4, 4, 2, true, 2.5), 0.2, 0, 1);
        check(config(64, 6, 8, 3, true, 2.5), 0.2, 0, 2);
    }

    @Test
    void oneGroupAsKimiK2() {
        check(config(48, 8, 1, 1, true, 2.827), 0.3, 0, 3);
    }

    @Test
    void unnormalizedWeights() {
        check(config(16, 3, 2, 1, false, 1.0), 0.2, 0, 4);
    }

    /** Negative choice scores: HF masks dropped groups with 0.0, so their experts beat the kept ones. */
    @Test
    void maskedExpertsScoreZeroNotMinusInfinity() {
        check(config(16, 4, 4, 2, true, 2.5), 0.05, -2.0, 5);
    }

    /** The bias picks but does not weigh: a large bias on one expert makes it chosen with its unbiased weight. */
    @Test
    void correctionBiasChoosesButDoesNotWeigh() {
        DeepseekConfig c = config(8, 2, 1, 1, false, 1.0);
        SigmoidRouting routing = new SigmoidRouting(1, c);
        float[] bias = new float[8];
        bias[5] = 10f;
        float[] logits = {3, 2, 1, 0, -1, -4, -2, -3};
        System.arraycopy(logits, 0, routing.routerLogits, 0, 8);
        routing.route(1, bias);
        assertEquals(5, routing.chosen[0]);
        assertEquals(SigmoidRouting.sigmoid(-4), routing.chosenWeights[0], 0f);
        assertEquals(0, routing.chosen[1]);
    }
}
