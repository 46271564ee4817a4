package ai.k2j.engine;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.SplittableRandom;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SamplerTest {

    private static float[] randomLogits(int n, long seed, double scale) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] l = new float[n];
        for (int i = 0; i < n; i++) {
            l[i] = (float) (TestModels.gaussian(r) * scale);
        }
        return l;
    }

    /** Logits whose softmax is exactly probs (up to float rounding). */
    private static float[] logitsOf(double... probs) {
        float[] l = new float[probs.length];
        for (int i = 0; i < probs.length; i++) {
            l[i] = (float) Math.log(probs[i]);
        }
        return l;
    }

    @Test
    void greedyIsArgmaxWithLowestIndexOnTies() {
        Sampler s = new Sampler(6);
        s.reset(SamplingParams.greedy());
        assertEquals(2, s.sample(new float[] {1, 2, 5, 5, -1, 5}, 0));
        assertEquals(0, s.sample(new float[] {3, 3, 3, 3, 3, 3}, 0));
        float[] padded = {9, 9, 0, 1, 7, 7, 2, 0};
        assertEquals(2, s.sample(padded, 2), "offset selects the row");
        for (long seed = 0; seed < 20; seed++) {
            float[] l = randomLogits(6, seed, 3);
            int best = 0;
            for (int i = 1; i < 6; i++) {
                best = l[i] > l[best] ? i : best;
            }
            assertEquals(best, s.sample(l, 0));
        }
        assertThrows(IllegalStateException.class, () -> s.sample(new float[] {1, Float.NaN, 0, 0, 0, 0}, 0));
    }

    @Test
    void topKOneIsGreedy() {
        Sampler s = new Sampler(1000);
        for (long seed = 0; seed < 50; seed++) {
            float[] l = randomLogits(1000, seed, 2);
            s.reset(new SamplingParams(1.5, 1, 1, 0, seed));
            assertEquals(Sampler.argmax(l, 0, 1000), s.sample(l, 0));
        }
    }

    @Test
    void sameSeedSameTokensDifferentSeedDifferentTokens() {
        float[] l = randomLogits(500, 3, 1);
        SamplingParams p = new SamplingParams(1.0, 0.95, 100, 0.01, 1234);
        int[] first = draw(l, p, 200);
        int[] second = draw(l, p, 200);
        assertArrayEquals(first, second);
        int[] other = draw(l, new SamplingParams(1.0, 0.95, 100, 0.01, 1235), 200);
        assertNotEquals(Arrays.toString(first), Arrays.toString(other));
    }

    private static int[] draw(float[] logits, SamplingParams p, int n) {
        Sampler s = new Sampler(logits.length);
        s.reset(p);
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = s.sample(logits, 0);
        }
        return out;
    }

    @Test
    void frequenciesFollowTheSoftmax() {
        double[] probs = {0.4, 0.3, 0.2, 0.1};
        int[] counts = new int[4];
        for (int token : draw(logitsOf(probs), new SamplingParams(1, 1, 0, 0, 99), 40_000)) {
            counts[token]++;
        }
        for (int i = 0; i < 4; i++) {
            assertEquals(probs[i], counts[i] / 40_000.0, 0.01, "token " + i);
        }
        // temperature 0.5 squares the odds: 16:9:4:1
        counts = new int[4];
        for (int token : draw(logitsOf(probs), new SamplingParams(0.5, 1, 0, 0, 7), 40_000)) {
            counts[token]++;
        }
        assertEquals(16 / 30.0, counts[0] / 40_000.0, 0.01);
        assertEquals(1 / 30.0, counts[3] / 40_000.0, 0.005);
    }

    @Test
    void topPKeepsTheSmallestSetReachingTheMass() {
        // ascending cumulative: 0.05, 0.20, 0.50, 1.0; top_p 0.75 drops the tokens whose cumulative <= 0.25
        float[] l = logitsOf(0.5, 0.3, 0.15, 0.05);
        Sampler s = new Sampler(4);
        s.reset(new SamplingParams(1, 0.75, 0, 0, 1));
        s.filter(l, 0);
        assertEquals(List.of(0, 1), candidates(s));
        int[] counts = new int[4];
        for (int token : draw(l, new SamplingParams(1, 0.75, 0, 0, 5), 20_000)) {
            counts[token]++;
        }
        assertEquals(0, counts[2] + counts[3]);
        assertEquals(0.5 / 0.8, counts[0] / 20_000.0, 0.015, "kept tokens are renormalized");
        // top_p tiny: only the top token survives (HF keeps at least one)
        s.reset(new SamplingParams(1, 0.01, 0, 0, 1));
        s.filter(l, 0);
        assertEquals(List.of(0), candidates(s));
    }

    @Test
    void minPDropsTokensBelowAFractionOfTheTop() {
        float[] l = logitsOf(0.5, 0.3, 0.15, 0.05);
        Sampler s = new Sampler(4);
        s.reset(new SamplingParams(1, 1, 0, 0.2, 1)); // threshold 0.1
        s.filter(l, 0);
        assertEquals(List.of(0, 1, 2), candidates(s));
        s.reset(new SamplingParams(1, 1, 0, 0.7, 1)); // threshold 0.35
        s.filter(l, 0);
        assertEquals(List.of(0), candidates(s));
    }

    @Test
    void topKKeepsTiesAtTheBoundary() {
        Sampler s = new Sampler(6);
        s.reset(new SamplingParams(1, 1, 2, 0, 1));
        s.filter(new float[] {1, 3, 2, 2, 0, -1}, 0);
        assertEquals(List.of(1, 2, 3), candidates(s), "HF keeps every token scoring >= the k-th largest");
    }

    @Test
    void probabilitiesAreTheWarpedDistributionAndSampleFromFollowsWeights() {
        float[] l = logitsOf(0.5, 0.3, 0.15, 0.05);
        Sampler s = new Sampler(4);
        float[] probs = new float[4];
        s.reset(new SamplingParams(1, 0.75, 0, 0, 1));
        s.probabilities(l, 0, probs);
        assertArrayEquals(new float[] {0.625f, 0.375f, 0, 0}, probs, 1e-6f);
        s.reset(SamplingParams.greedy());
        s.probabilities(new float[] {0, 3, 3, 1}, 0, probs);
        assertArrayEquals(new float[] {0, 1, 0, 0}, probs);
        s.reset(new SamplingParams(1, 1, 0, 0, 3));
        int[] counts = new int[4];
        for (int i = 0; i < 20_000; i++) {
            counts[s.sampleFrom(new float[] {1, 0, 3, 0}, 4)]++;
        }
        assertEquals(0, counts[1] + counts[3]);
        assertEquals(0.75, counts[2] / 20_000.0, 0.015);
        double u = s.nextUniform();
        assertTrue(u >= 0 && u < 1);
        assertThrows(IllegalArgumentException.class, () -> s.sampleFrom(new float[] {0, 0}, 2));
    }

    /** The filters against a literal transcription of HF's warpers (full sort, normalized float probabilities). */
    @Test
    void filtersMatchHfWarpersOnRandomLogits() {
        int vocab = 3000;
        Sampler s = new Sampler(vocab);
        double[] temps = {0.3, 0.7, 1.0, 1.6};
        double[] topPs = {1.0, 0.95, 0.8, 0.5, 0.1};
        int[] topKs = {0, 1, 5, 40, 2999};
        double[] minPs = {0, 0.01, 0.1, 0.5};
        int cases = 0;
        SplittableRandom r = new SplittableRandom(17);
        for (int trial = 0; trial < 150; trial++) {
            float[] l = randomLogits(vocab, trial, 1 + 3 * r.nextDouble());
            SamplingParams p = new SamplingParams(temps[r.nextInt(temps.length)], topPs[r.nextInt(topPs.length)],
                    topKs[r.nextInt(topKs.length)], minPs[r.nextInt(minPs.length)], trial);
            s.reset(p);
            s.filter(l, 0);
            List<Integer> ours = candidates(s);
            ours.sort(null);
            assertEquals(hfKept(l, p), ours, "params " + p);
            // weights are exp(score − max): the top token has weight 1
            double maxWeight = 0;
            for (int i = 0; i < s.candidateCount(); i++) {
                maxWeight = Math.max(maxWeight, s.candidateWeight(i));
            }
            assertEquals(1.0, maxWeight, 1e-12);
            cases++;
        }
        assertEquals(150, cases);
    }

    /** Indices HF's TemperatureLogitsWarper → TopK → TopP → MinP leave finite, ascending. */
    private static List<Integer> hfKept(float[] logits, SamplingParams p) {
        int n = logits.length;
        double[] scores = new double[n];
        for (int i = 0; i < n; i++) {
            scores[i] = logits[i] / (float) p.temperature();
        }
        if (p.topK() > 0) {
            double[] sorted = scores.clone();
            Arrays.sort(sorted);
            double kth = sorted[n - Math.min(p.topK(), n)];
            for (int i = 0; i < n; i++) {
                if (scores[i] < kth) {
                    scores[i] = Double.NEGATIVE_INFINITY;
                }
            }
        }
        if (p.topP() < 1) {
            double[] probs = softmax(scores);
            Integer[] order = new Integer[n];
            for (int i = 0; i < n; i++) {
                order[i] = i;
            }
            Arrays.sort(order, Comparator.comparingDouble(i -> scores[i]));
            double cumulative = 0;
            for (int j = 0; j < n - 1; j++) {
                cumulative += probs[order[j]];
                if (cumulative <= 1 - p.topP()) {
                    scores[order[j]] = Double.NEGATIVE_INFINITY;
                }
            }
        }
        if (p.minP() > 0) {
            double[] probs = softmax(scores);
            double top = Arrays.stream(probs).max().orElseThrow();
            for (int i = 0; i < n; i++) {
                if (probs[i] < p.minP() * top) {
                    scores[i] = Double.NEGATIVE_INFINITY;
                }
            }
        }
        List<Integer> kept = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            if (scores[i] != Double.NEGATIVE_INFINITY) {
                kept.add(i);
            }
        }
        return kept;
    }

    private static double[] softmax(double[] s) {
        double max = Arrays.stream(s).max().orElseThrow();
        double[] e = new double[s.length];
        double sum = 0;
        for (int i = 0; i < s.length; i++) {
            e[i] = Math.exp(s[i] - max);
            sum += e[i];
        }
        for (int i = 0; i < s.length; i++) {
            e[i] /= sum;
        }
        return e;
    }

    private static List<Integer> candidates(Sampler s) {
        List<Integer> ids = new ArrayList<>();
        for (int i = 0; i < s.candidateCount(); i++) {
            ids.add(s.candidateId(i));
        }
        TreeMap<Integer, Integer> unique = new TreeMap<>();
        ids.forEach(id -> unique.merge(id, 1, Integer::sum));
        assertTrue(unique.values().stream().allMatch(c -> c == 1), "candidates are unique");
        return ids;
    }
}
