package ai.k2j.engine;

/**
 * Picks the next token from a row of logits: greedy argmax (lowest index on ties) or, with a temperature,
 * a draw after HF's warpers in HF's order — temperature → top-k → top-p → min-p — from its own seeded
 * xoshiro256** generator, so the same {@link SamplingParams} (seed included) give the same tokens.
 *
 * <p>The filters follow transformers' {@code TopKLogitsWarper} (keeps every token scoring at least the k-th
 * largest, ties included), {@code TopPLogitsWarper} (drops the lowest tokens while their cumulative
 * probability stays ≤ 1 − top_p, keeping at least one) and {@code MinPLogitsWarper} (drops tokens with
 * probability below min_p · the top probability). All scratch is allocated once for the vocabulary size:
 * sampling allocates nothing. Not thread-safe.
 */
final class Sampler {

    private final int vocab;
    /** candidate token ids, [0, count) */
    private final int[] ids;
    /** candidate weights exp(score − max score), aligned with ids */
    private final double[] weights;
    /** top-k: a min-heap of the k largest scores */
    private final float[] heap;
    /** top-p: (sortable score bits << 32 | id) for an in-place heapsort */
    private final long[] sortKeys;
    private int count;

    private SamplingParams params = SamplingParams.greedy();
    private long s0;
    private long s1;
    private long s2;
    private long s3;

    public Sampler(int vocabSize) {
        if (vocabSize <= 0) {
            throw new IllegalArgumentException("vocabulary size must be positive, got " + vocabSize);
        }
        this.vocab = vocabSize;
        this.ids = new int[vocabSize];
        this.weights = new double[vocabSize];
        this.heap = new float[vocabSize];
        this.sortKeys = new long[vocabSize];
        reset(SamplingParams.greedy());
    }

    /** Sets the parameters and reseeds the generator from {@code params.seed()}. */
    public void reset(SamplingParams params) {
        this.params = params;
        // splitmix64 expands the seed into xoshiro's 256-bit state (never all zero)
        long z = params.seed();
        s0 = splitMix(z += 0x9E3779B97F4A7C15L);
        s1 = splitMix(z += 0x9E3779B97F4A7C15L);
        s2 = splitMix(z += 0x9E3779B97F4A7C15L);
        s3 = splitMix(z + 0x9E3779B97F4A7C15L);
    }

    public SamplingParams params() {
        return params;
    }

    /** The token for logits[offset, offset + vocab). */
    public int sample(float[] logits, int offset) {
        if (params.isGreedy()) {
            return argmax(logits, offset, vocab);
        }
        filter(logits, offset);
        double total = 0;
        for (int i = 0; i < count; i++) {
            total += weights[i];
        }
        double r = nextDouble() * total;
        for (int i = 0; i < count - 1; i++) {
            r -= weights[i];
            if (r < 0) {
                return ids[i];
            }
        }
        return ids[count - 1];
    }

    /**
     * The distribution {@link #sample} draws from, written to probs[0, vocab): filtered tokens get 0, the rest
     * sum to 1; greedy puts 1 on the argmax. For speculative sampling, which compares the draft's and the
     * target's warped distributions.
     */
    public void probabilities(float[] logits, int offset, float[] probs) {
        probabilities(logits, offset, probs, 0);
    }

    /** As {@link #probabilities(float[], int, float[])}, into {@code probs[probsOffset, probsOffset + vocab)}. */
    public void probabilities(float[] logits, int offset, float[] probs, int probsOffset) {
        java.util.Arrays.fill(probs, probsOffset, probsOffset + vocab, 0f);
        if (params.isGreedy()) {
            probs[probsOffset + argmax(logits, offset, vocab)] = 1f;
            return;
        }
        filter(logits, offset);
        double total = 0;
        for (int i = 0; i < count; i++) {
            total += weights[i];
        }
        for (int i = 0; i < count; i++) {
            probs[probsOffset + ids[i]] = (float) (weights[i] / total);
        }
    }

    /** Draws an index from weights[0, n) (non-negative, not necessarily normalized) with this sampler's generator. */
    public int sampleFrom(float[] weights, int n) {
        return sampleFrom(weights, 0, n);
    }

    /** As {@link #sampleFrom(float[], int)} over {@code weights[from, from + n)}; the index is relative to from. */
    public int sampleFrom(float[] weights, int from, int n) {
        double total = 0;
        for (int i = 0; i < n; i++) {
            total += weights[from + i];
        }
        if (!(total > 0)) {
            throw new IllegalArgumentException("weights must have a positive sum, got " + total);
        }
        double r = nextDouble() * total;
        int last = 0;
        for (int i = 0; i < n; i++) {
            if (weights[from + i] > 0) {
                last = i;
                r -= weights[from + i];
                if (r < 0) {
                    return i;
                }
            }
        }
        return last;
    }

    /** A uniform number in [0, 1) from this sampler's generator (e.g. speculative sampling's acceptance test). */
    public double nextUniform() {
        return nextDouble();
    }

    /** Index of the largest of x[offset, offset + n) minus offset; the lowest index wins ties. */
    public static int argmax(float[] x, int offset, int n) {
        int best = 0;
        float bestValue = x[offset];
        for (int i = 0; i < n; i++) {
            float v = x[offset + i];
            if (v > bestValue) {
                best = i;
                bestValue = v;
            } else if (v != v) {
                throw nan(i);
            }
        }
        return best;
    }

    /**
     * Applies temperature, top-k, top-p and min-p: afterwards candidates [0, count) hold the surviving ids
     * and their unnormalized probabilities exp(score − max). Package-private for tests.
     */
    void filter(float[] logits, int offset) {
        float temperature = (float) params.temperature();
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            float v = logits[offset + i];
            if (v != v) {
                throw nan(i);
            }
            max = Math.max(max, v);
        }
        // HF divides float32 scores by the temperature; so do we, then work relative to the maximum.
        float maxScore = max / temperature;

        // top-k: the k-th largest score is the threshold (ties at it survive)
        float threshold = Float.NEGATIVE_INFINITY;
        int k = params.topK();
        if (k > 0 && k < vocab) {
            threshold = kthLargestScore(logits, offset, k, temperature);
        }
        count = 0;
        for (int i = 0; i < vocab; i++) {
            float score = logits[offset + i] / temperature;
            if (score >= threshold) {
                ids[count] = i;
                weights[count] = Math.exp((double) score - maxScore);
                count++;
            }
        }
        if (params.topP() < 1) {
            topP(logits, offset, temperature, maxScore);
        }
        if (params.minP() > 0) {
            // p_i < min_p · p_max  ⇔  exp(s_i − s_max) < min_p: normalization cancels, and the top token
            // (weight exactly 1) always survives.
            int kept = 0;
            for (int i = 0; i < count; i++) {
                if (weights[i] >= params.minP()) {
                    ids[kept] = ids[i];
                    weights[kept] = weights[i];
                    kept++;
                }
            }
            count = kept;
        }
    }

    /** Number of candidates after {@link #filter}. */
    int candidateCount() {
        return count;
    }

    int candidateId(int i) {
        return ids[i];
    }

    double candidateWeight(int i) {
        return weights[i];
    }

    private void topP(float[] logits, int offset, float temperature, float maxScore) {
        double total = 0;
        for (int i = 0; i < count; i++) {
            total += weights[i];
        }
        double dropMass = (1 - params.topP()) * total;
        // Tokens lighter than dropMass / count together weigh less than dropMass and are the lightest of all,
        // so HF's ascending cumulative sum drops every one of them: skip sorting them.
        double light = dropMass / count;
        double cumulative = 0;
        int heavy = 0;
        for (int i = 0; i < count; i++) {
            if (weights[i] < light) {
                cumulative += weights[i];
            } else {
                float score = logits[offset + ids[i]] / temperature;
                sortKeys[heavy++] = ((long) sortableBits(score) << 32) | ids[i];
            }
        }
        heapSort(sortKeys, heavy); // ascending score, ties by ascending id
        count = 0;
        for (int j = 0; j < heavy; j++) {
            int id = (int) sortKeys[j];
            float score = logits[offset + id] / temperature;
            double w = Math.exp((double) score - maxScore);
            cumulative += w;
            boolean last = j == heavy - 1;
            if (cumulative <= dropMass && !last) {
                continue; // dropped, as HF's `cumulative_probs <= 1 - top_p`
            }
            ids[count] = id;
            weights[count] = w;
            count++;
        }
        // the kept tokens are the heaviest: list them heaviest first (a fixed, seed-stable order)
        for (int i = 0, j = count - 1; i < j; i++, j--) {
            int id = ids[i];
            ids[i] = ids[j];
            ids[j] = id;
            double w = weights[i];
            weights[i] = weights[j];
            weights[j] = w;
        }
    }

    /** The k-th largest score via a size-k min-heap: O(vocab · log k), no allocation. */
    private float kthLargestScore(float[] logits, int offset, int k, float temperature) {
        int size = 0;
        for (int i = 0; i < vocab; i++) {
            float score = logits[offset + i] / temperature;
            if (size < k) {
                int c = size++;
                heap[c] = score;
                while (c > 0 && heap[(c - 1) / 2] > heap[c]) { // sift up
                    int parent = (c - 1) / 2;
                    float tmp = heap[parent];
                    heap[parent] = heap[c];
                    heap[c] = tmp;
                    c = parent;
                }
            } else if (score > heap[0]) {
                heap[0] = score;
                int c = 0;
                while (true) { // sift down
                    int left = 2 * c + 1;
                    if (left >= size) {
                        break;
                    }
                    int smallest = left + 1 < size && heap[left + 1] < heap[left] ? left + 1 : left;
                    if (heap[smallest] >= heap[c]) {
                        break;
                    }
                    float tmp = heap[smallest];
                    heap[smallest] = heap[c];
                    heap[c] = tmp;
                    c = smallest;
                }
            }
        }
        return heap[0];
    }

    /** Ascending in-place heapsort of a[0, n). */
    private static void heapSort(long[] a, int n) {
        for (int i = n / 2 - 1; i >= 0; i--) {
            siftDown(a, i, n);
        }
        for (int end = n - 1; end > 0; end--) {
            long tmp = a[0];
            a[0] = a[end];
            a[end] = tmp;
            siftDown(a, 0, end);
        }
    }

    private static void siftDown(long[] a, int i, int n) {
        while (true) {
            int left = 2 * i + 1;
            if (left >= n) {
                return;
            }
            int largest = left + 1 < n && a[left + 1] > a[left] ? left + 1 : left;
            if (a[largest] <= a[i]) {
                return;
            }
            long tmp = a[largest];
            a[largest] = a[i];
            a[i] = tmp;
            i = largest;
        }
    }

    /** Float bits reordered so that signed int order equals float order (no NaNs here). */
    private static int sortableBits(float f) {
        int bits = Float.floatToRawIntBits(f + 0.0f); // + 0.0f folds -0 into +0
        return bits ^ ((bits >> 31) & 0x7FFFFFFF);
    }

    // ---------------------------------------------------------------- xoshiro256**

    private double nextDouble() {
        return (nextLong() >>> 11) * 0x1.0p-53;
    }

    /** The next raw 64-bit draw of this sampler's generator (seeds a device-side draw). */
    long nextSeed() {
        return nextLong();
    }

    private long nextLong() {
        long result = Long.rotateLeft(s1 * 5, 7) * 9;
        long t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = Long.rotateLeft(s3, 45);
        return result;
    }

    private static long splitMix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    private static IllegalStateException nan(int i) {
        return new IllegalStateException("logits contain NaN (token " + i + "): the model's numbers broke down");
    }
}
