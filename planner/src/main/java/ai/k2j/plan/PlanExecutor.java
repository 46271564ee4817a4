package ai.k2j.plan;

import ai.k2j.engine.model.RopeFrequencies;
import ai.k2j.loaders.Checkpoint;
import ai.k2j.loaders.Halfs;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.Tensor;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Runs a plan on the CPU exactly as placed: a token walks the plan's streams ({@code edges}) in order, and each
 * partition it reaches computes with the weight slices its PE rectangle holds. A GEMV becomes one tile per PE
 * (K split over one side of the rectangle, N over the other, as the mapping lays it out), the per-PE partial sums
 * are added in the K-tree order the cost model chose for that reduction, RMSNorm sums its squares the same way,
 * and attention runs over the KV cache slices as placed (the mesh mapping's shift-based cache moves entries row by
 * row as tokens arrive), combining the per-slice softmax statistics by the same trees. The output is the model's
 * logits (equal to the plain forward pass up to float reassociation) and the plan's predicted cycles per token, summed
 * over the same walk. Qwen3's per-head q/k RMSNorm sums each head's squares over the PEs its dimensions span, by the
 * K-tree. MoE layers (Qwen3-MoE) run the router as a MeshGEMV and HF's softmax top-k, then each chosen expert on the
 * PEs the plan gives it: a sub-mesh of the layer's mesh ({@code shapes.mesh.expertGridRows x expertGridCols}, experts
 * assigned in order, {@code perSubMesh} each) whose outputs are weighted and added by a pairwise combine tree, or,
 * with stacked experts (a 1 x 1 grid), the whole mesh, the chosen experts' down-projection partials weighted and
 * summed on each PE before the one K-tree reduction. Not walked: MLA (DeepSeek-V3) and the draft model.
 */
public final class PlanExecutor {

    /**
     * @param logits          logits at every input position
     * @param walkCycles      decode cycles per token summed over the partitions and streams the walk visited
     * @param tilesRun        GEMV tiles (PE slices) executed, over all tokens
     * @param treeReductions  reductions executed in K-tree order, over all tokens
     * @param maxTileOverPlan largest ratio of a PE's executed weight slice to the plan's weights-per-PE (<= 1)
     */
    public record Result(float[][] logits, double walkCycles, long tilesRun, long treeReductions,
                         double maxTileOverPlan) {
    }

    private final Plan plan;
    /** The architectures whose forward pass the executor walks (dense Qwen2 layers; Llama is Qwen2 without biases). */
    static final List<String> EXECUTABLE = List.of("Qwen2ForCausalLM", "LlamaForCausalLM", "Qwen3ForCausalLM",
            "Qwen3MoeForCausalLM");

    private final ModelConfig cfg;
    private final Checkpoint ckpt;
    private final boolean mesh;
    private final double hop;
    private final double step;
    private final int ctx;
    private final int h, q, kv, ff, heads, kvHeads, hd, vocab;
    private final float[] invFreq;
    private final float ropeScale;
    private final Map<String, Plan.Node> byId = new HashMap<>();
    private final Map<String, float[]> weights = new HashMap<>();
    private final List<List<float[]>[]> kvParts = new ArrayList<>();   // per layer, per position part: entries
    private final double bytesPerWeight;
    private final Map<String, Double> tileBytesByNode = new HashMap<>();
    private boolean firstToken;
    private long tiles;
    private long reductions;
    private double maxTileRatio;

    private PlanExecutor(Plan plan, Checkpoint ckpt) {
        this.plan = plan;
        this.ckpt = ckpt;
        this.cfg = ckpt.config();
        if (!EXECUTABLE.contains(cfg.architecture())) {
            throw new PlanException("the executor runs " + String.join(" and ", EXECUTABLE) + " checkpoints; "
                    + ckpt.dir() + " is " + cfg.architecture());
        }
        this.mesh = plan.shapes() != null && plan.shapes().usesMesh();
        this.hop = plan.device().parameters().get("hopLatencyCycles").value();
        this.step = plan.calibration().stepCycles();
        this.ctx = plan.request().ctx();
        this.h = cfg.hiddenSize();
        this.q = cfg.qDim();
        this.kv = cfg.kvDim();
        this.ff = cfg.intermediateSize();
        this.heads = cfg.numHeads();
        this.kvHeads = cfg.numKvHeads();
        this.hd = cfg.headDim();
        this.vocab = cfg.vocabSize();
        RopeFrequencies rf = RopeFrequencies.of(cfg, Math.max(ctx, cfg.maxPositionEmbeddings()));
        this.invFreq = rf.invFreq();
        this.ropeScale = rf.attentionScaling();
        this.bytesPerWeight = WeightDType.parse(plan.request().dtype()).bytesPerWeight();
        for (Plan.Node n : plan.nodes()) {
            byId.put(n.id(), n);
        }
        Plan.ModelInfo m = plan.model();
        if (m.hidden() != h || m.layers() != cfg.numLayers() || m.vocab() != vocab || m.heads() != heads
                || m.kvHeads() != kvHeads || m.intermediate() != ff) {
            throw new PlanException("plan is for " + m.name() + " (hidden " + m.hidden() + ", " + m.layers()
                    + " layers), the checkpoint at " + ckpt.dir() + " has hidden " + h + ", " + cfg.numLayers()
                    + " layers");
        }
        for (int l = 0; l < cfg.numLayers(); l++) {
            boolean planned = byId.containsKey("L" + l + ".router");
            if (planned != cfg.isMoeLayer(l)) {
                throw new PlanException("plan layer " + l + (planned ? " routes to experts" : " has a dense MLP")
                        + " but the checkpoint at " + ckpt.dir() + "'s layer " + l + " is "
                        + (cfg.isMoeLayer(l) ? "a mixture of experts" : "dense"));
            }
        }
        if (cfg.moe() != null && (plan.shapes().mesh() == null || plan.shapes().mesh().expertGridRows() == null)) {
            throw new PlanException("the plan places MoE layers but gives no expert grid (shapes.mesh)");
        }
    }

    /** Runs {@code tokens} one at a time through the plan (decode passes), returning the logits at each position. */
    public static Result run(Plan plan, Path modelDir, int[] tokens) {
        if (tokens.length > plan.request().ctx()) {
            throw new PlanException(tokens.length + " tokens exceed the plan's ctx " + plan.request().ctx());
        }
        try (Checkpoint ck = Checkpoint.open(modelDir)) {
            PlanExecutor ex = new PlanExecutor(plan, ck);
            List<String> walk = ex.walk();
            float[][] logits = new float[tokens.length][];
            double cycles = 0;
            for (int pos = 0; pos < tokens.length; pos++) {
                if (tokens[pos] < 0 || tokens[pos] >= ex.vocab) {
                    throw new PlanException("token " + tokens[pos] + " outside the vocabulary of " + ex.vocab);
                }
                ex.firstToken = pos == 0;
                logits[pos] = ex.token(walk, tokens[pos], pos);
            }
            // the cycles of one token: each partition on the walk once, each stream it crossed once
            Set<String> seen = new HashSet<>();
            for (int i = 0; i < walk.size(); i++) {
                if (seen.add(walk.get(i))) {
                    cycles += ex.byId.get(walk.get(i)).decode().total();
                }
            }
            for (Plan.Edge e : plan.edges()) {
                if (!e.from().startsWith("draft.")) {
                    cycles += e.decode().total();
                }
            }
            return new Result(logits, cycles, ex.tiles, ex.reductions, ex.maxTileRatio);
        }
    }

    /** The target's partitions in the order a token visits them (the first stream's source, then each stream's sink). */
    private List<String> walk() {
        List<String> w = new ArrayList<>();
        for (Plan.Edge e : plan.edges()) {
            if (e.from().startsWith("draft.")) {
                continue;
            }
            if (w.isEmpty()) {
                w.add(e.from());
            } else if (!w.get(w.size() - 1).equals(e.from())) {
                throw new PlanException("plan streams are not a walk: " + w.get(w.size() - 1) + " then " + e.from());
            }
            w.add(e.to());
        }
        return w;
    }

    // ---- weights ----

    private float[] w(String name) {
        return weights.computeIfAbsent(name, n -> {
            Tensor t = ckpt.tensor(n);
            float[] out = new float[(int) t.elements()];
            for (int i = 0; i < out.length; i++) {
                out[i] = Halfs.getFloat(t.data(), t.dtype(), i);
            }
            return out;
        });
    }

    private float[] wOpt(String name) {
        return ckpt.contains(name) ? w(name) : null;
    }

    private String headWeight() {
        return cfg.tieWordEmbeddings() || !ckpt.contains("lm_head.weight") ? "model.embed_tokens.weight"
                : "lm_head.weight";
    }

    // ---- one token ----

    private float[] token(List<String> walk, int id, int pos) {
        float[] x = null;
        float[] normed = null;
        float[] qkv = null;
        float[] logits = null;
        Routing routing = null;
        for (int i = 0; i < walk.size(); i++) {
            Plan.Node n = byId.get(walk.get(i));
            boolean last = i == walk.size() - 1;
            String p = n.layer() == null ? "" : "model.layers." + n.layer() + ".";
            switch (n.kind()) {
                case EMBEDDING, EMBEDDING_LM_HEAD -> {
                    if (i == 0) {
                        x = new float[h];
                        System.arraycopy(w("model.embed_tokens.weight"), id * h, x, 0, h);
                    } else if (last && n.kind() == NodeKind.EMBEDDING_LM_HEAD) {
                        logits = head(n, normed);
                    }
                }
                case NORM -> normed = rmsNorm(n, x, w(p + (n.id().endsWith("norm1") ? "input_layernorm.weight"
                        : "post_attention_layernorm.weight")));
                case FINAL_NORM -> normed = rmsNorm(n, x, w("model.norm.weight"));
                case ATTENTION -> {
                    // the layer pipeline visits attention twice (q/k/v, then o after the KV partition)
                    if (byId.get(walk.get(i - 1)).kind() == NodeKind.NORM) {
                        qkv = qkvProjection(n, p, normed, pos);
                    }
                }
                case KV_CACHE -> {
                    float[] attn = attention(n, qkv, pos);
                    Plan.Node attnNode = byId.get(n.id().replace(".kv", ".attn"));
                    // o projection: held by the attention partition (a second visit in the layer pipeline)
                    float[] o = gemv(attnNode, w(p + "self_attn.o_proj.weight"), null, attn, q, h, !mesh);
                    for (int j = 0; j < h; j++) {
                        x[j] += o[j];
                    }
                }
                case MLP -> {
                    float[] gu = gemv(n, stacked(p + "mlp.gate_up", p + "mlp.gate_proj.weight",
                            p + "mlp.up_proj.weight"), null, normed, h, 2 * ff, true);
                    float[] act = swiglu(gu, ff);
                    float[] d = gemv(n, w(p + "mlp.down_proj.weight"), null, act, ff, h, false);
                    for (int j = 0; j < h; j++) {
                        x[j] += d[j];
                    }
                }
                case ROUTER -> routing = route(n, p, normed);
                case EXPERT -> {
                    float[] y = experts(n, p, normed, routing);
                    for (int j = 0; j < h; j++) {
                        x[j] += y[j];
                    }
                }
                case LM_HEAD -> logits = head(n, normed);
                default -> throw new PlanException("unexpected partition " + n.id() + " of kind " + n.kind());
            }
        }
        if (logits == null) {
            throw new PlanException("the walk never reached the output head");
        }
        return logits;
    }

    private float[] head(Plan.Node n, float[] normed) {
        return gemv(n, w(headWeight()), null, normed, h, vocab, true);
    }

    private float[] qkvProjection(Plan.Node n, String p, float[] x, int pos) {
        String a = p + "self_attn.";
        float[] bias = null;
        if (ckpt.contains(a + "q_proj.bias")) {
            bias = stacked(a + "qkv_bias", a + "q_proj.bias", a + "k_proj.bias", a + "v_proj.bias");
        }
        float[] out = gemv(n, stacked(a + "qkv", a + "q_proj.weight", a + "k_proj.weight", a + "v_proj.weight"), bias,
                x, h, q + 2 * kv, true);
        if (cfg.hasQkNorm()) {
            // the q/k/v outputs are split over the rectangle's columns, as the GEMV left them
            int parts = Math.min(q + 2 * kv, n.rect().cols());
            headNorm(out, 0, heads, slice(q + 2 * kv, parts), w(a + "q_norm.weight"));
            headNorm(out, q, kvHeads, slice(q + 2 * kv, parts), w(a + "k_norm.weight"));
        }
        float[] qv = java.util.Arrays.copyOfRange(out, 0, q);
        float[] kvec = java.util.Arrays.copyOfRange(out, q, q + kv);
        rope(qv, heads, pos);
        rope(kvec, kvHeads, pos);
        System.arraycopy(qv, 0, out, 0, q);
        System.arraycopy(kvec, 0, out, q, kv);
        return out;
    }

    /** Matrices (or vectors) stacked along their output dimension, as the partition holds them (q|k|v, gate|up). */
    private float[] stacked(String key, String... names) {
        float[] cached = weights.get(key);
        if (cached != null) {
            return cached;
        }
        int len = 0;
        for (String nm : names) {
            len += w(nm).length;
        }
        float[] out = new float[len];
        int off = 0;
        for (String nm : names) {
            float[] part = w(nm);
            System.arraycopy(part, 0, out, off, part.length);
            off += part.length;
        }
        weights.put(key, out);
        return out;
    }

    /**
     * Per-head RMSNorm of {@code nHeads} heads starting at {@code off} in a vector split into parts of {@code part}
     * values (one per PE): each PE's sum of squares of the head's values it holds, added by the K-tree.
     */
    private void headNorm(float[] v, int off, int nHeads, int part, float[] gamma) {
        for (int hh = 0; hh < nHeads; hh++) {
            int b = off + hh * hd;
            int p0 = b / part;
            int p1 = (b + hd - 1) / part;
            float[][] sq = new float[p1 - p0 + 1][];
            for (int pp = p0; pp <= p1; pp++) {
                float acc = 0;
                for (int i = Math.max(b, pp * part); i < Math.min(b + hd, (pp + 1) * part); i++) {
                    acc += v[i] * v[i];
                }
                sq[pp - p0] = new float[] {acc};
            }
            float total = treeSum(sq, CostModel.bestTree(sq.length, 1, hop, step))[0];
            double inv = 1.0 / Math.sqrt(total / hd + cfg.rmsNormEps());
            for (int i = 0; i < hd; i++) {
                v[b + i] = (float) (v[b + i] * inv) * gamma[i];
            }
        }
    }

    private void rope(float[] v, int nHeads, int pos) {
        int half = hd / 2;
        for (int hh = 0; hh < nHeads; hh++) {
            int base = hh * hd;
            for (int i = 0; i < half; i++) {
                float angle = invFreq[i] * (float) pos;
                float c = (float) Math.cos(angle) * ropeScale;
                float s = (float) Math.sin(angle) * ropeScale;
                float x0 = v[base + i];
                float x1 = v[base + half + i];
                v[base + i] = x0 * c - x1 * s;
                v[base + half + i] = x1 * c + x0 * s;
            }
        }
    }

    // ---- placed operations ----

    /** Parts a dimension of {@code len} splits into over {@code parts} PEs: part i is [i*slice, min(len, (i+1)*slice)). */
    private static int slice(int len, int parts) {
        return (len + parts - 1) / parts;
    }

    /**
     * A MeshGEMV on the node's rectangle: W is [nOut x k] (HF layout). With {@code kOverRows} K splits over the
     * rectangle's rows and N over its columns (else the reverse). Each PE computes its tile's partial sums in fp32;
     * the partials of a column of tiles are added in the K-tree order the cost model picks for that reduction.
     */
    private float[] gemv(Plan.Node n, float[] wt, float[] bias, float[] x, int k, int nOut, boolean kOverRows) {
        return gemvOn(n.id(), n.rect(), n.sram().weightsPerPe(), List.of(new Term(wt, x, 1f)), bias, k, nOut,
                kOverRows);
    }

    /** One matrix-vector product of a summed GEMV: {@code scale * W x}, W [nOut x k] in HF layout. */
    private record Term(float[] wt, float[] x, float scale) {
    }

    /**
     * A MeshGEMV on {@code rect} of a sum of terms sharing one placement (several chosen experts' down projections
     * on the same PEs): each PE adds its tiles' scaled partial sums, then one K-tree reduction per column of tiles.
     * {@code key} names the PEs whose weight slices are counted against {@code planWeightsPerPe}.
     */
    private float[] gemvOn(String key, Plan.Rect rect, double planWeightsPerPe, List<Term> terms, float[] bias, int k,
                           int nOut, boolean kOverRows) {
        int kParts = Math.min(k, kOverRows ? rect.rows() : rect.cols());
        int nParts = Math.min(nOut, kOverRows ? rect.cols() : rect.rows());
        int ks = slice(k, kParts);
        int ns = slice(nOut, nParts);
        // the weight slices one PE holds for these matrices, against the plan's SRAM for weights on that PE
        double tileBytes = (double) ks * ns * bytesPerWeight * terms.size();
        if (firstToken && planWeightsPerPe > 0) {
            double sum = tileBytesByNode.merge(key, tileBytes, Double::sum);
            maxTileRatio = Math.max(maxTileRatio, sum / planWeightsPerPe);
        }
        int[] tree = CostModel.bestTree(kParts, CostModel.wavelets(ns, plan.calibration().partialSumBytes()), hop,
                step);
        float[] y = new float[nOut];
        float[][] partial = new float[kParts][];
        for (int j = 0; j < nParts; j++) {
            int n0 = j * ns;
            int n1 = Math.min(nOut, n0 + ns);
            if (n0 >= n1) {
                continue;
            }
            for (int i = 0; i < kParts; i++) {
                int k0 = i * ks;
                int k1 = Math.min(k, k0 + ks);
                float[] part = new float[n1 - n0];
                for (Term t : terms) {
                    for (int r = n0; r < n1; r++) {
                        float acc = 0;
                        int row = r * k;
                        for (int c = k0; c < k1; c++) {
                            acc += t.wt()[row + c] * t.x()[c];
                        }
                        part[r - n0] += terms.size() == 1 ? acc : t.scale() * acc;
                    }
                    tiles++;
                }
                partial[i] = part;
            }
            float[] sum = treeSum(partial, tree);
            for (int r = n0; r < n1; r++) {
                y[r] = sum[r - n0] + (bias == null ? 0 : bias[r]);
            }
        }
        if (terms.size() == 1 && terms.get(0).scale() != 1f) {
            for (int r = 0; r < nOut; r++) {
                y[r] *= terms.get(0).scale();
            }
        }
        return y;
    }

    // ---- mixture of experts ----

    /** The k experts a token chose and their weights. */
    private record Routing(int[] chosen, float[] weights) {
    }

    /**
     * The router as a MeshGEMV (K over rows, the experts over columns), then HF's routing: softmax over the experts in
     * float32, the top k (ties to the lower id), divided by their sum when norm_topk_prob.
     */
    private Routing route(Plan.Node n, String p, float[] normed) {
        int numExperts = cfg.moe().numExperts();
        int k = cfg.moe().expertsPerToken();
        float[] logits = gemv(n, w(p + "mlp.gate.weight"), null, normed, h, numExperts, true);
        float max = Float.NEGATIVE_INFINITY;
        for (float v : logits) {
            max = Math.max(max, v);
        }
        float sum = 0;
        for (int e = 0; e < numExperts; e++) {
            logits[e] = (float) Math.exp(logits[e] - max);
            sum += logits[e];
        }
        int[] chosen = new int[k];
        float[] weights = new float[k];
        float chosenSum = 0;
        for (int j = 0; j < k; j++) {
            int best = -1;
            for (int e = 0; e < numExperts; e++) {
                if (logits[e] >= 0 && (best < 0 || logits[e] > logits[best])) {
                    best = e;
                }
            }
            chosen[j] = best;
            weights[j] = logits[best] / sum;
            logits[best] = -1;
            chosenSum += weights[j];
        }
        if (cfg.moe().normTopkProb()) {
            for (int j = 0; j < k; j++) {
                weights[j] /= chosenSum;
            }
        }
        return new Routing(chosen, weights);
    }

    /** SiLU(gate) x up of one expert (or MLP) from its stacked gate|up output. */
    private static float[] swiglu(float[] gu, int ff) {
        float[] act = new float[ff];
        for (int j = 0; j < ff; j++) {
            float gj = gu[j];
            act[j] = (float) (gj / (1.0 + Math.exp(-gj))) * gu[ff + j];
        }
        return act;
    }

    /**
     * The chosen experts of an MoE layer, each on the PEs the plan gives it. Experts go to the wafers the layer spans
     * in order ({@code ceil(E / span)} each), on a wafer to the sub-meshes of its expert grid in order
     * ({@code perSubMesh} each, sub-meshes numbered row by row, each {@code rows / gridRows x cols / gridCols} PEs of
     * the layer's mesh). A 1 x 1 grid is the stacked placement: every chosen expert on the whole mesh, their
     * down-projection partials weighted and summed on each PE before the one reduction. Otherwise each expert's
     * output is reduced on its sub-mesh, weighted, and the outputs added by a pairwise combine tree.
     */
    private float[] experts(Plan.Node n, String p, float[] normed, Routing r) {
        Plan.Mesh mesh = plan.shapes().mesh();
        int gr = mesh.expertGridRows();
        int gc = mesh.expertGridCols();
        int span = mesh.expertSpan();
        int fe = cfg.moe().expertIntermediateSize();
        int perWafer = slice(cfg.moe().numExperts(), span);
        int per = slice(perWafer, gr * gc);
        String e0 = p + "mlp.experts.";
        if (gr * gc == 1 && span == 1) {
            List<Term> downs = new ArrayList<>();
            for (int j = 0; j < r.chosen().length; j++) {
                String pe = e0 + r.chosen()[j] + ".";
                float[] gu = gemvOn(n.id(), n.rect(), n.sram().weightsPerPe(), List.of(new Term(stacked(pe
                        + "gate_up", pe + "gate_proj.weight", pe + "up_proj.weight"), normed, 1f)), null, h, 2 * fe,
                        true);
                downs.add(new Term(w(pe + "down_proj.weight"), swiglu(gu, fe), r.weights()[j]));
            }
            return gemvOn(n.id(), n.rect(), n.sram().weightsPerPe(), downs, null, fe, h, false);
        }
        float[][] outs = new float[r.chosen().length][];
        for (int j = 0; j < outs.length; j++) {
            int e = r.chosen()[j];
            Plan.Node holder = n;
            if (span > 1) {
                String id = n.id().substring(0, n.id().lastIndexOf(".w")) + ".w" + (n.wafer() + e / perWafer);
                holder = byId.get(id);
                if (holder == null) {
                    throw new PlanException("expert " + e + " of " + n.id() + " belongs on partition " + id
                            + ", which the plan does not have");
                }
            }
            int idx = (e % perWafer) / per;
            int sr = holder.rect().rows() / gr;
            int sc = holder.rect().cols() / gc;
            Plan.Rect sub = new Plan.Rect(holder.rect().row() + (idx / gc) * sr, holder.rect().col() + (idx % gc) * sc,
                    sr, sc);
            String key = holder.id() + "#" + idx;
            String pe = e0 + e + ".";
            float[] gu = gemvOn(key, sub, holder.sram().weightsPerPe(), List.of(new Term(stacked(pe + "gate_up",
                    pe + "gate_proj.weight", pe + "up_proj.weight"), normed, 1f)), null, h, 2 * fe, true);
            outs[j] = gemvOn(key, sub, holder.sram().weightsPerPe(), List.of(new Term(w(pe + "down_proj.weight"),
                    swiglu(gu, fe), r.weights()[j])), null, fe, h, false);
        }
        int levels = Math.max(1, 32 - Integer.numberOfLeadingZeros(outs.length - 1));
        return treeSum(outs, new int[] {levels, 2});
    }

    /** Adds the parts level by level: groups of g consecutive parts, K levels (the last takes what is left). */
    private float[] treeSum(float[][] parts, int[] tree) {
        reductions++;
        List<float[]> level = new ArrayList<>(List.of(parts));
        for (int lv = 0; lv < tree[0] && level.size() > 1; lv++) {
            int g = lv == tree[0] - 1 ? level.size() : tree[1];
            List<float[]> next = new ArrayList<>();
            for (int i = 0; i < level.size(); i += g) {
                float[] acc = level.get(i).clone();
                for (int j = i + 1; j < Math.min(level.size(), i + g); j++) {
                    float[] b = level.get(j);
                    for (int e = 0; e < acc.length; e++) {
                        acc[e] += b[e];
                    }
                }
                next.add(acc);
            }
            level = next;
        }
        return level.get(0);
    }

    /** RMSNorm with hidden split over the rectangle's rows: per-row sums of squares added by the K-tree. */
    private float[] rmsNorm(Plan.Node n, float[] x, float[] gamma) {
        int parts = Math.min(h, n.rect().rows());
        int s = slice(h, parts);
        float[][] sq = new float[parts][];
        for (int i = 0; i < parts; i++) {
            float acc = 0;
            for (int j = i * s; j < Math.min(h, (i + 1) * s); j++) {
                acc += x[j] * x[j];
            }
            sq[i] = new float[] {acc};
        }
        float total = treeSum(sq, CostModel.bestTree(parts, 1, hop, step))[0];
        double inv = 1.0 / Math.sqrt(total / h + cfg.rmsNormEps());
        float[] out = new float[h];
        for (int j = 0; j < h; j++) {
            out[j] = (float) (x[j] * inv) * gamma[j];
        }
        return out;
    }

    /**
     * Attention over the placed KV cache. The cache of a layer is split into position parts (the layer pipeline:
     * the KV rectangle's columns, contiguous blocks; the mesh: its rows, entries shifting one row down when a row
     * is full) and dimension parts (the other side; K and V dims concatenated). Each (head, position part) gets
     * partial dot products per dimension part, added by the K-tree; each position part keeps its softmax max, sum
     * and weighted values; the parts combine by the K-tree (flash-decoding combine).
     */
    @SuppressWarnings("unchecked")
    private float[] attention(Plan.Node n, float[] qkv, int pos) {
        int layer = n.layer();
        int posParts = mesh ? n.rect().rows() : n.rect().cols();
        int dimParts = Math.min(2 * kv, mesh ? n.rect().cols() : n.rect().rows());
        int perPart = slice(ctx, posParts);
        while (kvParts.size() <= layer) {
            kvParts.add(null);
        }
        if (kvParts.get(layer) == null) {
            List<float[]>[] arr = new List[posParts];
            for (int i = 0; i < posParts; i++) {
                arr[i] = new ArrayList<>();
            }
            kvParts.set(layer, arr);
        }
        List<float[]>[] parts = kvParts.get(layer);
        float[] entry = new float[2 * kv];
        System.arraycopy(qkv, q, entry, 0, 2 * kv);
        if (mesh) {
            // shift-based: the new entry enters row 0; a full row passes its oldest entry to the next row
            float[] carry = entry;
            for (int r = 0; r < posParts && carry != null; r++) {
                parts[r].add(0, carry);
                carry = parts[r].size() > perPart ? parts[r].remove(parts[r].size() - 1) : null;
            }
            if (carry != null) {
                throw new PlanException("KV cache of L" + layer + " is full (ctx " + ctx + ")");
            }
        } else {
            parts[pos / perPart].add(entry);
        }
        int ds = slice(2 * kv, dimParts);
        int group = heads / kvHeads;
        double scale = 1.0 / Math.sqrt(hd);
        float[] out = new float[q];
        for (int hh = 0; hh < heads; hh++) {
            int kOff = (hh / group) * hd;
            int vOff = kv + kOff;
            int qOff = hh * hd;
            // dimension parts holding this head's key dims
            int kp0 = kOff / ds;
            int kp1 = (kOff + hd - 1) / ds;
            int[] scoreTree = CostModel.bestTree(kp1 - kp0 + 1, 1, hop, step);
            List<double[]> combined = new ArrayList<>();   // per position part: {max, sum, o[hd]}
            for (List<float[]> part : parts) {
                if (part.isEmpty()) {
                    continue;
                }
                double max = Double.NEGATIVE_INFINITY;
                double[] sc = new double[part.size()];
                for (int e = 0; e < part.size(); e++) {
                    float[] ent = part.get(e);
                    float[][] dots = new float[kp1 - kp0 + 1][];
                    for (int d = kp0; d <= kp1; d++) {
                        float acc = 0;
                        for (int i = Math.max(kOff, d * ds); i < Math.min(kOff + hd, (d + 1) * ds); i++) {
                            acc += qkv[qOff + i - kOff] * ent[i];
                        }
                        dots[d - kp0] = new float[] {acc};
                    }
                    sc[e] = treeSum(dots, scoreTree)[0] * scale;
                    max = Math.max(max, sc[e]);
                }
                double[] acc = new double[2 + hd];
                acc[0] = max;
                for (int e = 0; e < part.size(); e++) {
                    double p = Math.exp(sc[e] - max);
                    acc[1] += p;
                    float[] ent = part.get(e);
                    for (int i = 0; i < hd; i++) {
                        acc[2 + i] += p * ent[vOff + i];
                    }
                }
                combined.add(acc);
            }
            double[] all = combine(combined, CostModel.bestTree(Math.max(1, combined.size()),
                    CostModel.wavelets(hd + 2.0, plan.calibration().partialSumBytes()), hop, step));
            for (int i = 0; i < hd; i++) {
                out[qOff + i] = (float) (all[2 + i] / all[1]);
            }
        }
        return out;
    }

    private double[] combine(List<double[]> parts, int[] tree) {
        reductions++;
        List<double[]> level = parts;
        for (int lv = 0; lv < tree[0] && level.size() > 1; lv++) {
            int g = lv == tree[0] - 1 ? level.size() : tree[1];
            List<double[]> next = new ArrayList<>();
            for (int i = 0; i < level.size(); i += g) {
                double[] a = level.get(i).clone();
                for (int j = i + 1; j < Math.min(level.size(), i + g); j++) {
                    double[] b = level.get(j);
                    double m = Math.max(a[0], b[0]);
                    double fa = Math.exp(a[0] - m);
                    double fb = Math.exp(b[0] - m);
                    a[0] = m;
                    for (int e = 1; e < a.length; e++) {
                        a[e] = a[e] * fa + b[e] * fb;
                    }
                }
                next.add(a);
            }
            level = next;
        }
        return level.get(0);
    }
}
