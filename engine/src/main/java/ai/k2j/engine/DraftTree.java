package ai.k2j.engine;

/**
 * A draft tree for one speculative round (SpecInfer, Miao et al. 2024; EAGLE-2, Li et al. 2024): the draft's own
 * continuation (the <em>chain</em>, one draft pass per token) plus, where the draft is unsure, its runner-up tokens
 * at a depth as extra children (<em>siblings</em>, leaves: they cost no draft pass). Which nodes make the tree is
 * EAGLE-2's rule: the {@code nodes} candidates of highest path probability (the chance that the whole path from
 * the root is accepted), each with its parent in the tree. A small draft's raw probabilities are far from its
 * real acceptance, so each is mapped through a calibration learned from the verifications so far: acceptance
 * counts per tenth of the draft's probability, one table for chain tokens and one for siblings (tested only after
 * the chain token and the earlier siblings were rejected).
 *
 * <p>Tree index 0 is the root (the newest token, not yet in the target's cache), indices 1..chain the chain
 * (depth d at index d + 1), then the siblings grouped by parent in rank order: every parent precedes its
 * children, and a path along the chain needs no cache compaction.
 *
 * <p>Verification walks from the root. Greedy: a child is accepted when it is the target's argmax at its parent;
 * the argmax after the last accepted node is the extra token. Sampled (multi-candidate speculative sampling): at a
 * node, the chain child x (drawn from the draft's q) is accepted with probability min(1, p(x)/q(x)); on rejection
 * the target distribution becomes the residual r = norm(max(0, p − q)); each sibling s in turn (deterministic:
 * a point-mass proposal) is accepted with probability r(s), else removed from r (renormalized); when every child is
 * rejected the token is drawn from what is left of r. Each test is a valid speculative sampling step against the
 * current target distribution, so the token emitted at every depth has exactly the target's distribution.
 *
 * <p>Preallocated for at most {@code maxNodes} drafted tokens; allocation-free.
 */
final class DraftTree {

    /** Runner-up tokens kept per drafted depth (a node has at most this many siblings of its chain child). */
    static final int MAX_SIBLINGS = 3;

    private final int vocab;
    private final int maxNodes;
    /** per drafted depth d: candidate tokens, [0] the chain token, [1..] the runners-up by falling probability */
    private final int[] candidates;
    /** the draft's probability of each candidate at its depth */
    private final double[] candidateProbs;
    private final int[] candidateCount;
    private int depths;

    // the tree, rebuilt by build()
    private final int[] tokens;
    private final int[] parents;
    /** tree index of each node's first sibling-child and how many (children besides the chain child) */
    private final int[] firstSibling;
    private final int[] siblingCount;
    /** drafted depth of each sibling (its q row), -1 for chain nodes */
    private int size;
    private int chain;
    private final int[] siblingsAtDepth;

    /** calibration: per tenth of the draft's probability, [0..10) chain tokens, [10..20) siblings */
    private static final int BINS = 10;
    private final double[] tested = new double[2 * BINS];
    private final double[] acceptedCount = new double[2 * BINS];

    // verification result
    private final int[] path;
    private int pathLength;
    private int next;
    private int chainAccepted;
    /** whether the last verification ended by rejecting children (not at a leaf) */
    private boolean rejected;
    private final float[] p;

    DraftTree(int vocab, int maxNodes) {
        this.vocab = vocab;
        this.maxNodes = maxNodes;
        int width = MAX_SIBLINGS + 1;
        this.candidates = new int[Math.max(1, maxNodes) * width];
        this.candidateProbs = new double[Math.max(1, maxNodes) * width];
        this.candidateCount = new int[Math.max(1, maxNodes)];
        this.tokens = new int[maxNodes + 1];
        this.parents = new int[maxNodes + 1];
        this.firstSibling = new int[maxNodes + 1];
        this.siblingCount = new int[maxNodes + 1];
        this.siblingsAtDepth = new int[Math.max(1, maxNodes)];
        this.path = new int[maxNodes + 1];
        this.p = new float[vocab];
        for (int b = 0; b < BINS; b++) { // priors worth 4 tests: chain tokens 0.8, siblings 0.25
            tested[b] = 4;
            acceptedCount[b] = 3.2;
            tested[BINS + b] = 4;
            acceptedCount[BINS + b] = 1;
        }
    }

    private static int bin(double probability, boolean sibling) {
        return Math.min(BINS - 1, Math.max(0, (int) (probability * BINS))) + (sibling ? BINS : 0);
    }

    /** The estimated chance that a candidate of this draft probability is accepted when tested. */
    private double calibrated(double probability, boolean sibling) {
        int b = bin(probability, sibling);
        return acceptedCount[b] / tested[b];
    }

    /** Adds one test of a candidate with this draft probability to the calibration (package-private for tests). */
    void record(double probability, boolean sibling, boolean accepted) {
        int b = bin(probability, sibling);
        tested[b]++;
        if (accepted) {
            acceptedCount[b]++;
        }
    }

    /** The calibrated chance that the chain token at drafted depth d is accepted, given its parent is. */
    private double chainChance(int d) {
        return calibrated(candidateProbs[d * (MAX_SIBLINGS + 1)], false);
    }

    /** The calibrated chance that sibling rank r at depth d is accepted, given its parent is. */
    private double siblingChance(int d, int r) {
        int width = MAX_SIBLINGS + 1;
        double reach = 1 - chainChance(d); // the chain token and siblings 1..r-1 rejected
        for (int i = 1; i < r; i++) {
            reach *= 1 - calibrated(candidateProbs[d * width + i], true);
        }
        return reach * calibrated(candidateProbs[d * width + r], true);
    }

    /** Records the tests of the last verification in the calibration (chain child, then siblings in rank order). */
    private void recordWalk() {
        int width = MAX_SIBLINGS + 1;
        for (int i = 0; i < pathLength; i++) {
            int node = path[i];
            boolean last = i + 1 == pathLength;
            int child = last ? -1 : path[i + 1];
            boolean chainTested = node < chain && node == i && node <= chainAccepted;
            if (chainTested) {
                record(candidateProbs[node * width], false, child == node + 1);
                if (child == node + 1) {
                    continue;
                }
            }
            for (int s = firstSibling[node]; s < firstSibling[node] + siblingCount[node]; s++) {
                int rank = s - firstSibling[node] + 1;
                record(candidateProbs[node * width + rank], true, s == child);
                if (s == child) {
                    break;
                }
            }
        }
    }

    /** Starts a round: no depth drafted yet. */
    void clear() {
        depths = 0;
    }

    /** Depths drafted so far (draft passes of this round). */
    int depths() {
        return depths;
    }

    /** The chain token at drafted depth d. */
    int chainToken(int d) {
        return candidates[d * (MAX_SIBLINGS + 1)];
    }

    /**
     * Records drafted depth {@link #depths()} from a distribution over the vocabulary (probabilities or, with
     * {@code logits}, raw logits whose softmax is taken): {@code chainToken} and the most probable other tokens.
     */
    void addDepth(float[] dist, int offset, boolean logits, int chainToken) {
        addDepth(dist, offset, vocab, logits, chainToken);
    }

    /**
     * As {@link #addDepth(float[], int, boolean, int)} over the first {@code entries} ids of the row (a padded
     * draft's logits cover its own, smaller vocabulary; the ids above it have probability 0).
     */
    void addDepth(float[] dist, int offset, int entries, boolean logits, int chainToken) {
        int width = MAX_SIBLINGS + 1;
        int base = depths * width;
        // top MAX_SIBLINGS tokens other than the chain token, by insertion into a short sorted list
        int found = 0;
        float max = dist[offset + chainToken];
        for (int i = 0; i < entries; i++) {
            float v = dist[offset + i];
            max = Math.max(max, v);
            if (i == chainToken || (found == MAX_SIBLINGS && v <= dist[offset + candidates[base + found]])) {
                continue;
            }
            if (!logits && !(v > 0)) {
                continue;
            }
            int j = Math.min(found, MAX_SIBLINGS - 1) + 1;
            while (j > 1 && dist[offset + candidates[base + j - 1]] < v) {
                candidates[base + j] = candidates[base + j - 1];
                j--;
            }
            candidates[base + j] = i;
            found = Math.min(found + 1, MAX_SIBLINGS);
        }
        candidates[base] = chainToken;
        candidateCount[depths] = found + 1;
        double sum = 1;
        if (logits) {
            sum = 0;
            for (int i = 0; i < entries; i++) {
                sum += Math.exp(dist[offset + i] - max);
            }
        }
        for (int r = 0; r <= found; r++) {
            float v = dist[offset + candidates[base + r]];
            candidateProbs[base + r] = logits ? Math.exp(v - max) / sum : v;
        }
        depths++;
    }

    /** The draft's probability of its chain token at depth d (its confidence). */
    double chainProbability(int d) {
        return candidateProbs[d * (MAX_SIBLINGS + 1)];
    }

    /**
     * Chooses the {@code nodes} candidates of highest path probability among the drafted depths (each chosen
     * node's parent chosen first) and returns how many chain nodes that takes; {@link #build} then lays the tree
     * out. When the result is below {@link #depths()}, drafting deeper cannot change the choice.
     */
    int select(int nodes) {
        int width = MAX_SIBLINGS + 1;
        java.util.Arrays.fill(siblingsAtDepth, 0, depths, 0);
        int chosenChain = 0;
        int chosenSiblings = 0;
        double reach = 1; // path probability of chain node chosenChain's parent
        for (int n = 0; n < nodes; n++) {
            double best = -1;
            int bestDepth = -1;
            if (chosenChain < depths) {
                best = reach * chainChance(chosenChain);
                bestDepth = chosenChain;
            }
            boolean sibling = false;
            double prefix = 1;
            for (int d = 0; d <= Math.min(chosenChain, depths - 1); d++) {
                int r = siblingsAtDepth[d] + 1;
                if (r < candidateCount[d]) {
                    double score = prefix * siblingChance(d, r);
                    if (score > best) {
                        best = score;
                        bestDepth = d;
                        sibling = true;
                    }
                }
                prefix *= chainChance(d);
            }
            if (bestDepth < 0) {
                break;
            }
            if (sibling) {
                siblingsAtDepth[bestDepth]++;
                chosenSiblings++;
            } else {
                reach *= chainChance(chosenChain);
                chosenChain++;
            }
        }
        chain = chosenChain;
        size = 1 + chosenChain + chosenSiblings;
        return chosenChain;
    }

    /** Lays out the tree chosen by the last {@link #select}, rooted at {@code root}. */
    void build(int root) {
        int width = MAX_SIBLINGS + 1;
        tokens[0] = root;
        parents[0] = -1;
        for (int d = 0; d < chain; d++) {
            tokens[d + 1] = candidates[d * width];
            parents[d + 1] = d;
        }
        int at = chain + 1;
        for (int i = 0; i < size; i++) {
            siblingCount[i] = 0;
            firstSibling[i] = size;
        }
        for (int d = 0; d < Math.min(chain + 1, depths); d++) {
            int s = d <= chain ? siblingsAtDepth[d] : 0;
            if (s == 0) {
                continue;
            }
            firstSibling[d] = at;
            siblingCount[d] = s;
            for (int r = 1; r <= s; r++) {
                tokens[at] = candidates[d * width + r];
                parents[at] = d;
                at++;
            }
        }
        if (at != size) {
            throw new IllegalStateException("draft tree laid out " + at + " nodes, selected " + size);
        }
    }

    /** Nodes in the tree, the root included. */
    int size() {
        return size;
    }

    /** Chain nodes in the tree (tree indices 1..chain). */
    int chain() {
        return chain;
    }

    int[] tokens() {
        return tokens;
    }

    int[] parents() {
        return parents;
    }

    /**
     * Greedy verification: {@code argmax[i]} is the target's argmax after tree node i (row i). Returns the number
     * of accepted drafted tokens; {@link #path()} holds the accepted nodes from the root, {@link #next()} the
     * target's token after them.
     */
    int verifyGreedy(int[] argmax) {
        int ok = walkGreedy(argmax);
        recordWalk();
        return ok;
    }

    private int walkGreedy(int[] argmax) {
        int node = 0;
        path[0] = 0;
        pathLength = 1;
        chainAccepted = 0;
        while (true) {
            int want = argmax[node];
            int child = -1;
            if (node == chainAccepted && node < chain && tokens[node + 1] == want) { // on the chain so far
                child = node + 1;
                chainAccepted++;
            } else {
                for (int s = firstSibling[node]; s < firstSibling[node] + siblingCount[node]; s++) {
                    if (tokens[s] == want) {
                        child = s;
                        break;
                    }
                }
            }
            if (child < 0) {
                rejected = node == chainAccepted && node < chain || siblingCount[node] > 0;
                next = want;
                return pathLength - 1;
            }
            path[pathLength++] = child;
            node = child;
            if (child > chain) { // a sibling is a leaf: the target's token after it ends the round
                rejected = false;
                next = argmax[child];
                return pathLength - 1;
            }
        }
    }

    /**
     * Sampled verification (see the class comment): {@code logits} rows follow the tree's nodes; {@code draftProbs}
     * row d is the draft's warped distribution at drafted depth d (from which the chain token was drawn).
     */
    int verifySampled(float[] logits, float[] draftProbs, Sampler sampler) {
        int ok = walkSampled(logits, draftProbs, sampler);
        recordWalk();
        return ok;
    }

    private int walkSampled(float[] logits, float[] draftProbs, Sampler sampler) {
        int node = 0;
        path[0] = 0;
        pathLength = 1;
        chainAccepted = 0;
        while (true) {
            boolean hasChainChild = node < chain && node == chainAccepted;
            if (!hasChainChild && siblingCount[node] == 0) {
                rejected = false;
                next = sampler.sample(logits, node * vocab);
                return pathLength - 1;
            }
            sampler.probabilities(logits, node * vocab, p);
            int child = -1;
            int qRow = node * vocab; // the chain child at depth `node` was drawn from row `node`
            if (hasChainChild) {
                int x = tokens[node + 1];
                double q = draftProbs[qRow + x];
                if (sampler.nextUniform() * q < p[x]) {
                    child = node + 1;
                    chainAccepted++;
                } else {
                    double total = 0;
                    for (int i = 0; i < vocab; i++) {
                        float r = p[i] - draftProbs[qRow + i];
                        p[i] = r > 0 ? r : 0;
                        total += p[i];
                    }
                    if (!(total > 0)) { // p ≤ q everywhere: p = q up to rounding, a rejection has probability ~0
                        sampler.probabilities(logits, node * vocab, p);
                    }
                }
            }
            if (child < 0) {
                double total = 0;
                for (int i = 0; i < vocab; i++) {
                    total += p[i];
                }
                for (int s = firstSibling[node]; s < firstSibling[node] + siblingCount[node] && child < 0; s++) {
                    int x = tokens[s];
                    if (sampler.nextUniform() * total < p[x] || !(total - p[x] > 0)) {
                        child = s; // (the second test: x holds all that is left, up to rounding)
                    } else {
                        total -= p[x];
                        p[x] = 0;
                    }
                }
                if (child < 0) {
                    rejected = true;
                    next = sampler.sampleFrom(p, vocab);
                    return pathLength - 1;
                }
            }
            path[pathLength++] = child;
            node = child;
        }
    }

    /** The accepted path of the last verification: tree indices from the root, {@link #pathLength()} of them. */
    int[] path() {
        return path;
    }

    int pathLength() {
        return pathLength;
    }

    /** The target's token after the accepted path. */
    int next() {
        return next;
    }

    /** Whether the last verification ended by rejecting a node's children (rather than at a leaf). */
    boolean rejected() {
        return rejected;
    }

    /** Accepted chain tokens (the prefix of the path the draft model has seen, at most its depths). */
    int chainAccepted() {
        return chainAccepted;
    }
}
