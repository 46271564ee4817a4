package ai.k2j.plan;

import ai.k2j.plan.CostModel.Cycles;
import ai.k2j.plan.LayerModel.Part;
import ai.k2j.plan.Plan.Rect;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.IntToDoubleFunction;

import static ai.k2j.plan.CostModel.ACT_BYTES;

/**
 * Compiles a model onto wafers: chooses the layer block shape (rows and the column split between attention,
 * KV cache and MLP) that minimises the per-token decode latency, lays the blocks out in serpentine shelves, places
 * the embedding and head bands, and costs the result. See docs/wafer-plan.md for the objective and the model.
 *
 * <p>The search is exhaustive over block heights and shelf packings and refines the column split by coordinate
 * descent; it is deterministic (ties keep the first candidate in a fixed order).
 */
public final class Planner {
    static final int MAX_WAFERS = 128;
    private static final int DRAFT_PAIRING_CANDIDATES = 48;

    private final PlanRequest req;
    private final DeviceSpec dev;
    private final CostModel cost;
    private final Side tgt;
    private final Side dft;
    private final int kCap;
    private final int tPass;
    private final long cap;
    private final long[] counter;

    /** {@code kCap}: the most tokens drafted per step (verification buffers hold kCap + 1); 0 without a draft. */
    private Planner(PlanRequest req, int kCap, long[] counter) {
        this.req = req;
        this.dev = req.device();
        this.cost = new CostModel(dev, req.calibration());
        this.kCap = kCap;
        this.tPass = req.draft() == null ? 1 : kCap + 1;
        this.cap = dev.sramPerPeBytes();
        this.counter = counter;
        this.tgt = new Side("target", "", req.model(), req.batch());
        this.dft = req.draft() == null ? null : new Side("draft", "draft.", req.draft(), req.batch());
    }

    /**
     * Plans the request; throws {@link PlanException} with the reason when no legal plan exists. The fewest wafers
     * win first; with a draft model and no fixed k, verification buffers are sized for the largest k (8, 4, 2, 1)
     * that still fits on that many wafers, and the best k up to it is chosen.
     */
    public static Plan plan(PlanRequest req) {
        return search(req).fastest();
    }

    /** The fastest legal plan per request and the legal plan on the fewest wafers (the same plan when they agree). */
    public record Result(Plan fastest, Plan fewest) {
    }

    /**
     * Searches the mappings the request allows ({@code auto}: the layer pipeline and the mesh mapping), wafer counts
     * and draft placements; both plans carry the compared alternatives in {@code search.alternatives}.
     */
    public static Result search(PlanRequest req) {
        List<Plan> plans = new ArrayList<>();
        List<String> why = new ArrayList<>();
        String mapping = req.mapping();
        boolean auto = mapping.equals("auto");
        boolean pipelineAllowed = auto || mapping.equals("layer-pipeline");
        if (pipelineAllowed) {
            try {
                Plan p = planPipeline(req);
                plans.add(p);
                if (req.wafers() == 0 && auto) {
                    // one wafer more gives every layer more PEs: often faster for this mapping
                    try {
                        plans.add(planPipeline(req.withWafers(p.request().wafers() + 1)));
                    } catch (PlanException e) {
                        why.add("layer-pipeline on " + (p.request().wafers() + 1) + " wafers: " + e.getMessage());
                    }
                }
            } catch (PlanException e) {
                if (!auto) {
                    throw e;
                }
                why.add("layer-pipeline: " + e.getMessage());
            }
        }
        for (boolean tiled : new boolean[] {false, true}) {
            if (!auto && !mapping.equals(tiled ? "tiled-mesh" : "mesh")) {
                continue;
            }
            MeshPlanner mp = new MeshPlanner(req, tiled);
            Plan fast = mp.plan(false);
            String name = tiled ? "tiled-mesh" : "mesh";
            if (fast != null) {
                plans.add(fast);
                Plan few = mp.plan(true);
                if (few != null && few.request().wafers() != fast.request().wafers()) {
                    plans.add(few);
                }
            } else {
                why.add(name + ": no legal placement" + (req.wafers() > 0 ? " on " + req.wafers() + " wafers"
                        : " on up to " + MeshPlanner.MAX_WAFERS + " wafers"));
            }
        }
        if (plans.isEmpty() && req.wafers() > 0 && (auto || mapping.equals("layer-pipeline"))
                && req.model().moe() == null && req.model().mla() == null) {
            throw planners0(req).notEnough(req.wafers());
        }
        if (plans.isEmpty()) {
            throw new PlanException(req.model().name() + ": no legal plan: " + String.join("; ", why));
        }
        Plan fastest = plans.get(0);
        Plan fewest = plans.get(0);
        for (Plan p : plans) {
            double v = p.performance().effectiveTokensPerSecond();
            if (v > fastest.performance().effectiveTokensPerSecond()) {
                fastest = p;
            }
            int w = p.request().wafers();
            if (w < fewest.request().wafers() || (w == fewest.request().wafers()
                    && v > fewest.performance().effectiveTokensPerSecond())) {
                fewest = p;
            }
        }
        List<Plan.Alternative> alts = new ArrayList<>();
        for (Plan p : plans) {
            String role = p == fastest && p == fewest ? "fastest, fewest wafers" : p == fastest ? "fastest"
                    : p == fewest ? "fewest wafers" : "compared";
            alts.add(new Plan.Alternative(role, p.shapes().mapping(), p.request().wafers(),
                    p.performance().effectiveTokensPerSecond(), p.shapes().usesMesh()
                    ? "mesh " + p.shapes().mesh().rows() + "x" + p.shapes().mesh().cols()
                    : "block " + p.shapes().target().rows() + " rows x " + p.shapes().target().width() + " cols"));
        }
        for (String w : why) {
            alts.add(new Plan.Alternative("not possible", w.substring(0, w.indexOf(' ') < 0 ? w.length()
                    : w.indexOf(' ')).replace(":", ""), 0, 0, w));
        }
        Plan fast = withAlternatives(fastest, alts);
        return new Result(fast, fewest == fastest ? fast : withAlternatives(fewest, alts));
    }

    private static Planner planners0(PlanRequest req) {
        return new Planner(req, req.draft() == null ? 0 : Math.max(1, req.specK()), new long[1]);
    }

    private static Plan withAlternatives(Plan p, List<Plan.Alternative> alts) {
        Plan.Search s = p.search();
        return new Plan(p.schema(), p.model(), p.draft(), p.request(), p.device(), p.calibration(), p.shapes(),
                p.wafers(), p.nodes(), p.edges(), p.performance(), p.checks(), p.warnings(),
                new Plan.Search(s.objective(), s.candidatesEvaluated(), s.waferCountsTried(), s.note(),
                        List.copyOf(alts)));
    }

    /** The layer-pipelined mapping only (each layer its own block of PEs). */
    public static Plan planPipeline(PlanRequest req) {
        for (ModelShape m : req.draft() == null ? List.of(req.model()) : List.of(req.model(), req.draft())) {
            if (m.moe() != null || m.mla() != null) {
                throw new PlanException(m.name() + " has MoE layers or latent attention: the layer pipeline does not "
                        + "place them; the mesh mapping does (--mapping mesh or auto)");
            }
        }
        int[] caps = req.draft() == null ? new int[] {0}
                : req.specK() > 0 ? new int[] {req.specK()} : new int[] {PlanRequest.MAX_SPEC_K, 4, 2, 1};
        long[] counter = new long[1];
        Planner[] planners = new Planner[caps.length];
        planners[0] = new Planner(req, caps[0], counter);
        List<Integer> tried = new ArrayList<>();
        if (req.wafers() > 0) {
            tried.add(req.wafers());
            for (int i = 0; i < caps.length; i++) {
                Planner p = planner(planners, i, req, caps, counter);
                Choice c = p.search(req.wafers());
                if (c != null) {
                    return p.build(c, tried, null);
                }
            }
            throw planners[0].notEnough(req.wafers());
        }
        int lo = planners[0].lowerBound();
        for (int n = lo; n <= MAX_WAFERS; n++) {
            tried.add(n);
            for (int i = 0; i < caps.length; i++) {
                Planner p = planner(planners, i, req, caps, counter);
                Choice c = p.search(n);
                if (c != null) {
                    String note = n == lo ? "SRAM capacity needs " + lo + "; the layout fits on " + n
                            : "SRAM capacity alone needs " + lo + ", the layout needs " + n;
                    return p.build(c, tried, note);
                }
            }
        }
        throw new PlanException(req.model().name() + ": no legal placement on up to " + MAX_WAFERS + " wafers; "
                + planners[0].whyNoShape());
    }

    private static Planner planner(Planner[] ps, int i, PlanRequest req, int[] caps, long[] counter) {
        if (ps[i] == null) {
            ps[i] = new Planner(req, caps[i], counter);
        }
        return ps[i];
    }

    // ------------------------------------------------------------------------------------------------------
    // One model (target or draft): its layer/head cost models, band sizes and candidate block shapes.

    /** A candidate block shape: {@code perShelf} blocks side by side per shelf, one layer's decode cycles. */
    record Option(LayerShape shape, int perShelf, double layerCycles) {
        int rowsFor(int layers) {
            return (layers + perShelf - 1) / perShelf * shape.rows();
        }
    }

    private final class Side {
        final String role;
        final String prefix;
        final ModelShape shape;
        final LayerModel layer;
        final HeadModel head;
        final int sequences;
        final int embedRows;   // untied: embedding band rows; tied: 0
        final int headRows;    // rows of the head band (tied: the shared table)
        final List<Option> options;

        Side(String role, String prefix, ModelShape shape, int sequences) {
            this.role = role;
            this.prefix = prefix;
            this.shape = shape;
            this.sequences = sequences;
            this.layer = new LayerModel(shape, cost, req.dtype());
            this.head = new HeadModel(shape, cost, req.dtype(), dev.peCols());
            long reserved = dev.reservedBytesPerPe();
            // the embedding serves every prompt token of a prefill chunk, the head only the last one
            int lookupT = Math.max(tPass, req.calibration().prefillChunk());
            this.headRows = shape.tiedEmbeddings() ? head.tiedRows(cap, reserved, tPass, lookupT, dev.peRows())
                    : head.headRows(cap, reserved, tPass, dev.peRows());
            this.embedRows = shape.tiedEmbeddings() ? 0 : head.embedRows(cap, reserved, lookupT, dev.peRows());
            if (headRows < 0 || embedRows < 0) {
                throw new PlanException(String.format(Locale.ROOT,
                        "%s: the %s (%.2f GB) does not fit in one wafer's SRAM; k2j places it as one band on one "
                                + "wafer", shape.name(), headRows < 0 ? "output head" : "embedding table",
                        head.embeddingBytes() / 1e9));
            }
            this.options = enumerate();
        }

        int topBandRows() {
            return shape.tiedEmbeddings() ? headRows : embedRows;
        }

        int bottomBandRows() {
            return shape.tiedEmbeddings() ? 0 : headRows;
        }

        double sramPerPe(LayerShape s, Part p) {
            return dev.reservedBytesPerPe() + layer.weightsPerPe(s, p) + layer.kvPerPe(s, p, req.ctx(), sequences)
                    + layer.activationsPerPe(s, p, tPass, req.ctx());
        }

        /** Fewest columns of partition {@code p} that fit in SRAM at {@code rows} rows, or -1. */
        int minCols(int rows, Part p) {
            int lo = 1;
            int hi = dev.peCols();
            if (sramPerPe(shapeWith(rows, p, hi), p) > cap) {
                return -1;
            }
            while (lo < hi) {
                int mid = (lo + hi) >>> 1;
                if (sramPerPe(shapeWith(rows, p, mid), p) <= cap) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            return lo;
        }

        private LayerShape shapeWith(int rows, Part p, int c) {
            return switch (p) {
                case ATTN -> new LayerShape(rows, c, 1, 1);
                case KV -> new LayerShape(rows, 1, c, 1);
                case MLP -> new LayerShape(rows, 1, 1, c);
                default -> throw new IllegalArgumentException(p.toString());
            };
        }

        double decodeCycles(LayerShape s) {
            counter[0]++;
            return layer.layerCycles(s, 1, req.ctx()).total()
                    + streamCycles(layer.h * ACT_BYTES, s.rows(), 1); // to the next block
        }

        /** Every feasible (rows, blocks per shelf) with its best column split, sorted by layer cycles. */
        private List<Option> enumerate() {
            List<Option> out = new ArrayList<>();
            int cols = dev.peCols();
            int maxRows = (int) Math.min(dev.peRows(), Math.max(layer.h, layer.q));
            for (int r = 1; r <= maxRows; r += r < 64 ? 1 : r < 256 ? 2 : 8) {
                int ca0 = minCols(r, Part.ATTN);
                int ck0 = minCols(r, Part.KV);
                int cm0 = minCols(r, Part.MLP);
                if (ca0 < 0 || ck0 < 0 || cm0 < 0 || sramPerPe(new LayerShape(r, 1, 1, 1), Part.NORM1) > cap) {
                    continue;
                }
                int w0 = 2 + ca0 + ck0 + cm0;
                if (w0 > cols) {
                    continue;
                }
                for (int p = cols / w0; p >= 1; p--) {
                    out.add(bestSplit(r, ca0, ck0, cm0, cols / p - w0, p));
                }
            }
            out.sort(Comparator.comparingDouble(Option::layerCycles));
            return out;
        }

        /** Distributes {@code extra} spare columns over attention, KV and MLP: a coarse grid, then descent. */
        private Option bestSplit(int r, int ca0, int ck0, int cm0, int extra, int p) {
            int bestA = 0;
            int bestK = 0;
            double best = decodeCycles(new LayerShape(r, ca0, ck0, cm0 + extra));
            int grid = 8;
            for (int fa = 0; fa <= grid; fa++) {
                for (int fk = 0; fa + fk <= grid; fk++) {
                    int ea = extra * fa / grid;
                    int ek = extra * fk / grid;
                    double c = decodeCycles(new LayerShape(r, ca0 + ea, ck0 + ek, cm0 + extra - ea - ek));
                    if (c < best - 1e-9) {
                        best = c;
                        bestA = ea;
                        bestK = ek;
                    }
                }
            }
            for (int step = Math.max(1, extra / (2 * grid)); step >= 1; step /= 2) {
                boolean moved = true;
                while (moved) {
                    moved = false;
                    int[][] moves = {{step, 0}, {-step, 0}, {0, step}, {0, -step}, {step, -step}, {-step, step}};
                    for (int[] mv : moves) {
                        int ea = bestA + mv[0];
                        int ek = bestK + mv[1];
                        if (ea < 0 || ek < 0 || ea + ek > extra) {
                            continue;
                        }
                        double c = decodeCycles(new LayerShape(r, ca0 + ea, ck0 + ek, cm0 + extra - ea - ek));
                        if (c < best - 1e-9) {
                            best = c;
                            bestA = ea;
                            bestK = ek;
                            moved = true;
                        }
                    }
                }
                if (step == 1) {
                    break;
                }
            }
            return new Option(new LayerShape(r, ca0 + bestA, ck0 + bestK, cm0 + extra - bestA - bestK), p, best);
        }

        double weightBytes() {
            double layers = shape.layers() * layer.layerWeightBytes();
            return layers + head.embeddingBytes() * (shape.tiedEmbeddings() ? 1 : 2) + shape.hidden() * 2.0;
        }

        double kvBytes() {
            return (double) sequences * req.ctx() * shape.kvBytesPerTokenPerLayer() * shape.layers();
        }
    }

    private double streamCycles(double bytes, int links, int hops) {
        Cycles c = new Cycles();
        cost.stream(c, bytes, links, hops);
        return c.total();
    }

    // ------------------------------------------------------------------------------------------------------
    // Search over wafer counts and shapes.

    /** Which layers go to which wafer, and where the draft sits. */
    record Fit(int[] layersPerWafer, int draftWafer) {
    }

    record Choice(int wafers, Option target, Option draft, Fit fit, int specK, double objective) {
    }

    /** Wafers needed by SRAM capacity alone (weights, KV caches, reserved bytes), before layout losses. */
    int lowerBound() {
        double usable = (double) dev.pesPerWafer() * (cap - dev.reservedBytesPerPe());
        double need = tgt.weightBytes() + tgt.kvBytes() + (dft == null ? 0 : dft.weightBytes() + dft.kvBytes());
        return Math.max(1, (int) Math.ceil(need / usable));
    }

    private String whyNoShape() {
        if (tgt.options.isEmpty()) {
            double kvLayer = (double) req.batch() * req.ctx() * tgt.shape.kvBytesPerTokenPerLayer();
            return String.format(Locale.ROOT, "no block shape fits one shelf of a wafer (one layer's weights %.2f GB, "
                    + "KV cache %.2f GB at ctx=%d x batch=%d): lower --ctx or --batch", tgt.layer.layerWeightBytes()
                    / 1e9, kvLayer / 1e9, req.ctx(), req.batch());
        }
        return "the embedding/head bands and layer blocks do not pack";
    }

    private PlanException notEnough(int n) {
        int need = -1;
        for (int m = n + 1; m <= MAX_WAFERS && need < 0; m++) {
            if (search(m) != null) {
                need = m;
            }
        }
        double usable = (double) n * dev.pesPerWafer() * (cap - dev.reservedBytesPerPe());
        double weights = tgt.weightBytes() + (dft == null ? 0 : dft.weightBytes());
        double kv = tgt.kvBytes() + (dft == null ? 0 : dft.kvBytes());
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT,
                "%s%s does not fit on %d %s wafer%s: weights %.1f GB + KV cache %.1f GB (ctx=%d, batch=%d) against "
                        + "%.1f GB of usable SRAM", tgt.shape.name(), dft == null ? "" : " with draft " + dft.shape.name(),
                n, dev.id(), n == 1 ? "" : "s", weights / 1e9, kv / 1e9, req.ctx(), req.batch(), usable / 1e9));
        if (need > 0) {
            sb.append(String.format(Locale.ROOT, "; weights stay resident from --wafers %d", need));
        } else {
            sb.append("; ").append(whyNoShape());
        }
        double missing = Math.max(0, weights + kv - usable);
        if (missing > 0) {
            double perToken = missing / dev.waferIoBytesPerSecond();
            sb.append(String.format(Locale.ROOT, ". Streaming the %.1f GB of weights that do not fit from external "
                            + "memory (MemoryX) over the %.0f GB/s wafer I/O instead would cost >= %.1f ms per token "
                            + "(<= %.1f tok/s per sequence); k2j does not plan weight streaming for decode",
                    missing / 1e9, dev.waferIoBytesPerSecond() / 1e9, perToken * 1e3, 1 / perToken));
        }
        if (req.dtype() == WeightDType.BF16) {
            sb.append("; --dtype fp8 halves the weights");
        }
        return new PlanException(sb.toString());
    }

    Choice search(int n) {
        List<Choice> alone = new ArrayList<>();
        for (Option o : tgt.options) {
            Fit f = fit(n, o, null, -1);
            if (f != null) {
                alone.add(new Choice(n, o, null, f, 0, targetObjective(o, f)));
            }
        }
        if (alone.isEmpty()) {
            return null;
        }
        alone.sort(Comparator.comparingDouble(Choice::objective));
        if (dft == null) {
            return alone.get(0);
        }
        Choice best = null;
        List<Integer> draftWafers = new ArrayList<>();
        draftWafers.add(0);
        if (n > 1) {
            draftWafers.add(n - 1);
        }
        for (int w = 1; w < n - 1; w++) {
            draftWafers.add(w);
        }
        for (int i = 0; i < Math.min(DRAFT_PAIRING_CANDIDATES, alone.size()); i++) {
            Option t = alone.get(i).target();
            for (int dw : draftWafers) {
                for (Option d : dft.options) {
                    Fit f = fit(n, t, d, dw);
                    if (f == null) {
                        continue;
                    }
                    double[] spec = bestSpec(t, d);
                    Choice c = new Choice(n, t, d, f, (int) spec[1], -spec[0]);
                    if (best == null || c.objective() < best.objective() - 1e-9) {
                        best = c;
                    }
                    break; // options are sorted by latency: the first that fits is this wafer's best draft
                }
            }
        }
        return best;
    }

    /**
     * Contiguous assignment of target layers to wafers under the bands and the draft region: balanced (each wafer
     * takes its share of what is left), or, when balancing runs out of room on the later wafers, greedy.
     */
    Fit fit(int n, Option t, Option d, int draftWafer) {
        int rows = dev.peRows();
        int[] reserved = new int[n];
        reserved[0] += tgt.topBandRows();
        reserved[n - 1] += tgt.bottomBandRows();
        if (d != null) {
            reserved[draftWafer] += dft.topBandRows() + dft.bottomBandRows() + d.rowsFor(dft.shape.layers());
        }
        int[] capacity = new int[n];
        for (int w = 0; w < n; w++) {
            if (reserved[w] > rows) {
                return null;
            }
            capacity[w] = (rows - reserved[w]) / t.shape().rows() * t.perShelf();
        }
        for (boolean balanced : new boolean[] {true, false}) {
            int[] layers = new int[n];
            int remaining = tgt.shape.layers();
            for (int w = 0; w < n; w++) {
                int share = balanced ? (remaining + (n - w) - 1) / (n - w) : remaining;
                layers[w] = Math.min(capacity[w], share);
                remaining -= layers[w];
            }
            if (remaining == 0) {
                return new Fit(layers, draftWafer);
            }
        }
        return null;
    }

    /** The search objective for the target alone: layer cycles plus shelf turns (approximate; exact in build). */
    private double targetObjective(Option o, Fit f) {
        double turns = 0;
        for (int layers : f.layersPerWafer()) {
            int shelves = (layers + o.perShelf() - 1) / o.perShelf();
            turns += Math.max(0, shelves - 1);
        }
        int gap = dev.peCols() - o.perShelf() * o.shape().width();
        return tgt.shape.layers() * o.layerCycles() + turns * (o.shape().rows() + gap) * cost.hop;
    }

    /** {tokens per cycle-budget (to maximise), k} for a target/draft pair, from layer costs only. */
    private double[] bestSpec(Option t, Option d) {
        double draftToken = dft.shape.layers() * d.layerCycles();
        double best = -1;
        int bestK = 1;
        int kMin = req.specK() > 0 ? req.specK() : 1;
        int kMax = kCap;
        for (int k = kMin; k <= kMax; k++) {
            double verify = tgt.shape.layers() * tgt.layer.layerCycles(t.shape(), k + 1, req.ctx()).total();
            counter[0]++;
            double rate = expectedTokens(req.acceptRate(), k) / (k * draftToken + verify);
            if (rate > best) {
                best = rate;
                bestK = k;
            }
        }
        return new double[] {best, bestK};
    }

    /** Expected tokens per speculative step: accepted drafts plus the target's own token. */
    static double expectedTokens(double accept, int k) {
        return (1 - Math.pow(accept, k + 1)) / (1 - accept);
    }

    // ------------------------------------------------------------------------------------------------------
    // Layout and costing of the chosen candidate.

    @FunctionalInterface
    private interface CycleFn {
        Cycles at(int tokens, int ctx);
    }

    private static final class PNode {
        String id;
        NodeKind kind;
        String role;
        Integer layer;
        int wafer;
        Rect rect;
        double weightsPerPe;
        double kvPerPe;
        IntToDoubleFunction activationsPerPe;          // buffers for a decode pass of t tokens
        IntToDoubleFunction prefillActivationsPerPe;   // buffers for a prefill chunk of t tokens (null: same)
        double weightBytes;
        double kvBytes;
        double flops;
        double bytesMoved;
        CycleFn cycles;
        CycleFn prefillCycles; // when a prefill runs less than a decode pass (tied head: lookup only)
        boolean inPrefill;

        Cycles prefill(int t, int ctx) {
            return (prefillCycles != null ? prefillCycles : cycles).at(t, ctx);
        }
    }

    private static final class PEdge {
        String from;
        String to;
        String role;
        double bytesPerToken;
        int links;
        int hops;
        boolean inter;
        List<Plan.Point> route;
    }

    private final class Layout {
        final List<PNode> nodes = new ArrayList<>();
        final Map<String, PNode> byId = new LinkedHashMap<>();
        final List<PEdge> edges = new ArrayList<>();

        PNode add(Side side, String id, NodeKind kind, Integer layer, int wafer, Rect rect) {
            PNode p = new PNode();
            p.id = side.prefix + id;
            p.kind = kind;
            p.role = side.role;
            p.layer = layer;
            p.wafer = wafer;
            p.rect = rect;
            nodes.add(p);
            byId.put(p.id, p);
            return p;
        }

        void edge(String from, String to, String role, double bytes) {
            PNode a = byId.get(from);
            PNode b = byId.get(to);
            PEdge e = new PEdge();
            e.from = from;
            e.to = to;
            e.role = role;
            e.bytesPerToken = bytes;
            e.links = Math.max(1, Math.min(a.rect.rows(), b.rect.rows()));
            e.inter = a.wafer != b.wafer;
            e.route = new ArrayList<>();
            if (!e.inter) {
                int[] pa = new int[2];
                int[] pb = new int[2];
                nearest(a.rect, b.rect, pa, pb);
                e.route.add(new Plan.Point(a.wafer, pa[0], pa[1]));
                if (pa[0] != pb[0] && pa[1] != pb[1]) {
                    e.route.add(new Plan.Point(a.wafer, pa[0], pb[1]));
                }
                if (pa[0] != pb[0] || pa[1] != pb[1]) {
                    e.route.add(new Plan.Point(b.wafer, pb[0], pb[1]));
                }
                e.hops = Math.abs(pa[0] - pb[0]) + Math.abs(pa[1] - pb[1]);
            } else {
                // leave through the sending wafer's east edge, arrive at the receiving wafer's west edge
                int ra = a.rect.row() + a.rect.rows() / 2;
                int ca = a.rect.col() + a.rect.cols() - 1;
                int rb = b.rect.row() + b.rect.rows() / 2;
                int cb = b.rect.col();
                int east = dev.peCols() - 1;
                e.route.add(new Plan.Point(a.wafer, ra, ca));
                if (ca != east) {
                    e.route.add(new Plan.Point(a.wafer, ra, east));
                }
                if (cb != 0) {
                    e.route.add(new Plan.Point(b.wafer, rb, 0));
                }
                e.route.add(new Plan.Point(b.wafer, rb, cb));
                e.hops = (east - ca) + cb;
            }
            edges.add(e);
        }
    }

    /** The closest pair of PEs of two rectangles (the ends of the shortest Manhattan route between them). */
    static void nearest(Rect a, Rect b, int[] pa, int[] pb) {
        span(a.row(), a.rows(), b.row(), b.rows(), pa, pb, 0);
        span(a.col(), a.cols(), b.col(), b.cols(), pa, pb, 1);
    }

    private static void span(int a0, int an, int b0, int bn, int[] pa, int[] pb, int i) {
        int a1 = a0 + an - 1;
        int b1 = b0 + bn - 1;
        int lo = Math.max(a0, b0);
        int hi = Math.min(a1, b1);
        if (lo <= hi) {
            pa[i] = pb[i] = (lo + hi) / 2;
        } else if (a1 < b0) {
            pa[i] = a1;
            pb[i] = b0;
        } else {
            pa[i] = a0;
            pb[i] = b1;
        }
    }

    private Plan build(Choice c, List<Integer> tried, String note) {
        Layout lay = new Layout();
        int n = c.wafers();
        int rows = dev.peRows();
        int[] cursor = new int[n];
        // target: top band on wafer 0, layer shelves, draft region, head band at the bottom of the last wafer
        placeTopBand(lay, tgt, 0, 0);
        cursor[0] = tgt.topBandRows();
        int next = 0;
        for (int w = 0; w < n; w++) {
            int count = c.fit().layersPerWafer()[w];
            placeShelves(lay, tgt, c.target(), w, cursor[w], next, count);
            next += count;
            cursor[w] += c.target().rowsFor(count);
        }
        if (dft != null) {
            int w = c.fit().draftWafer();
            placeTopBand(lay, dft, w, cursor[w]);
            cursor[w] += dft.topBandRows();
            placeShelves(lay, dft, c.draft(), w, cursor[w], 0, dft.shape.layers());
            cursor[w] += c.draft().rowsFor(dft.shape.layers());
            if (!dft.shape.tiedEmbeddings()) {
                placeHeadBand(lay, dft, w, cursor[w]);
                cursor[w] += dft.headRows;
            }
        }
        if (!tgt.shape.tiedEmbeddings()) {
            placeHeadBand(lay, tgt, n - 1, rows - tgt.headRows);
        }
        connect(lay, tgt);
        if (dft != null) {
            connect(lay, dft);
            String draftOut = dft.prefix + (dft.shape.tiedEmbeddings() ? "embed_lm_head" : "lm_head");
            String draftIn = dft.prefix + (dft.shape.tiedEmbeddings() ? "embed_lm_head" : "embed");
            String targetIn = tgt.shape.tiedEmbeddings() ? "embed_lm_head" : "embed";
            String targetOut = tgt.shape.tiedEmbeddings() ? "embed_lm_head" : "lm_head";
            lay.edge(draftOut, targetIn, "exchange", 4);   // drafted token ids
            lay.edge(targetOut, draftIn, "exchange", 4);   // accepted tokens, correction
        }
        return assemble(c, lay, tried, note);
    }

    private void placeTopBand(Layout lay, Side s, int wafer, int row) {
        if (s.shape.tiedEmbeddings()) {
            placeHeadBand(lay, s, wafer, row);
            return;
        }
        HeadModel hm = s.head;
        PNode e = lay.add(s, "embed", NodeKind.EMBEDDING, null, wafer, new Rect(row, 0, s.embedRows, hm.embedCols()));
        e.weightsPerPe = hm.embedWeightsPerPe(s.embedRows);
        int lookupT = Math.max(tPass, req.calibration().prefillChunk());
        e.activationsPerPe = t -> hm.embedActivationsPerPe(lookupT);
        e.prefillActivationsPerPe = hm::embedActivationsPerPe;
        e.weightBytes = hm.embeddingBytes();
        e.flops = 0;
        e.bytesMoved = hm.h * req.dtype().bytesPerWeight() + hm.h * ACT_BYTES;
        e.cycles = (t, ctx) -> hm.embedCycles(t);
        e.inPrefill = true;
    }

    private void placeHeadBand(Layout lay, Side s, int wafer, int row) {
        HeadModel hm = s.head;
        int hr = s.headRows;
        PNode fn = lay.add(s, "final_norm", NodeKind.FINAL_NORM, null, wafer, new Rect(row, 0, hr, 1));
        fn.weightsPerPe = hm.finalNormWeightsPerPe(hr);
        fn.activationsPerPe = t -> hm.finalNormActivationsPerPe(hr, t);
        fn.weightBytes = hm.h * 2.0;
        fn.flops = 4.0 * hm.h;
        fn.bytesMoved = hm.h * 2.0 + 2 * hm.h * ACT_BYTES;
        fn.cycles = (t, ctx) -> hm.finalNormCycles(hr, t);
        boolean tied = s.shape.tiedEmbeddings();
        PNode lm = lay.add(s, tied ? "embed_lm_head" : "lm_head", tied ? NodeKind.EMBEDDING_LM_HEAD : NodeKind.LM_HEAD,
                null, wafer, new Rect(row, 1, hr, hm.headCols()));
        lm.weightsPerPe = hm.headWeightsPerPe(hr);
        lm.activationsPerPe = t -> hm.headActivationsPerPe(hr, t);
        lm.weightBytes = hm.embeddingBytes();
        lm.flops = hm.headFlopsPerToken();
        lm.bytesMoved = hm.embeddingBytes() + hm.vocab * ACT_BYTES;
        lm.cycles = tied ? (t, ctx) -> hm.headCycles(hr, t).add(hm.tiedLookupCycles(hr, t))
                : (t, ctx) -> hm.headCycles(hr, t);
        // in a prefill the lookup runs for every prompt token, the logits only for the last one
        lm.inPrefill = tied;
        lm.prefillCycles = (t, ctx) -> hm.tiedLookupCycles(hr, t);
        if (tied) {
            lm.activationsPerPe = t -> hm.headActivationsPerPe(hr, t) + hm.tiedLookupActivationsPerPe(hr,
                    Math.max(tPass, req.calibration().prefillChunk()));
            lm.prefillActivationsPerPe = t -> hm.headActivationsPerPe(hr, tPass) + hm.tiedLookupActivationsPerPe(hr, t);
        }
    }

    /** Layers {@code first..first+count-1} in serpentine shelves starting at {@code row}. */
    private void placeShelves(Layout lay, Side s, Option o, int wafer, int row, int first, int count) {
        LayerShape sh = o.shape();
        int cols = dev.peCols();
        Part[] order = Part.values();
        for (int i = 0; i < count; i++) {
            int shelf = i / o.perShelf();
            int slot = i % o.perShelf();
            boolean ltr = shelf % 2 == 0;
            int top = row + shelf * sh.rows();
            int col = ltr ? slot * sh.width() : cols - (slot + 1) * sh.width();
            int layer = first + i;
            int x = ltr ? col : col + sh.width();
            for (Part p : order) {
                int w = s.layer.cols(sh, p);
                int c0 = ltr ? x : x - w;
                x = ltr ? x + w : x - w;
                placePart(lay, s, sh, p, layer, wafer, new Rect(top, c0, sh.rows(), w));
            }
        }
    }

    private void placePart(Layout lay, Side s, LayerShape sh, Part p, int layer, int wafer, Rect rect) {
        String suffix = switch (p) {
            case NORM1 -> "norm1";
            case ATTN -> "attn";
            case KV -> "kv";
            case NORM2 -> "norm2";
            case MLP -> "mlp";
        };
        NodeKind kind = switch (p) {
            case NORM1, NORM2 -> NodeKind.NORM;
            case ATTN -> NodeKind.ATTENTION;
            case KV -> NodeKind.KV_CACHE;
            case MLP -> NodeKind.MLP;
        };
        LayerModel lm = s.layer;
        PNode node = lay.add(s, "L" + layer + "." + suffix, kind, layer, wafer, rect);
        node.weightsPerPe = lm.weightsPerPe(sh, p);
        node.kvPerPe = lm.kvPerPe(sh, p, req.ctx(), s.sequences);
        node.activationsPerPe = t -> lm.activationsPerPe(sh, p, t, req.ctx());
        node.weightBytes = switch (p) {
            case NORM1, NORM2 -> lm.h * 2.0;
            case ATTN -> lm.m.attentionParams() * lm.weightBytes;
            case KV -> 0;
            case MLP -> lm.m.denseMlpParams() * lm.weightBytes;
        };
        node.kvBytes = p == Part.KV ? (double) s.sequences * req.ctx() * lm.m.kvBytesPerTokenPerLayer() : 0;
        node.flops = lm.flopsPerToken(p, req.ctx());
        node.bytesMoved = lm.bytesMovedPerToken(p, req.ctx());
        node.cycles = (t, ctx) -> lm.cycles(sh, p, t, ctx);
        node.inPrefill = true;
    }

    /** The token's path through one model, as edges in visiting order. */
    private void connect(Layout lay, Side s) {
        String pre = s.prefix;
        double act = s.shape.hidden() * (double) ACT_BYTES;
        boolean tied = s.shape.tiedEmbeddings();
        String in = pre + (tied ? "embed_lm_head" : "embed");
        String prev = in;
        for (int l = 0; l < s.shape.layers(); l++) {
            String L = pre + "L" + l + ".";
            lay.edge(prev, L + "norm1", s.role, act);
            lay.edge(L + "norm1", L + "attn", s.role, act);
            lay.edge(L + "attn", L + "kv", s.role, (s.layer.q + 2 * s.layer.kv) * (double) ACT_BYTES);
            lay.edge(L + "kv", L + "attn", s.role, s.layer.q * (double) ACT_BYTES);
            lay.edge(L + "attn", L + "norm2", s.role, act);
            lay.edge(L + "norm2", L + "mlp", s.role, act);
            prev = L + "mlp";
        }
        lay.edge(prev, pre + "final_norm", s.role, act);
        lay.edge(pre + "final_norm", pre + (tied ? "embed_lm_head" : "lm_head"), s.role, act);
        if (!tied) {
            lay.edge(pre + "lm_head", in, s.role, 4); // the sampled token id goes back to the embedding
        }
    }

    // ------------------------------------------------------------------------------------------------------
    // Costing and the plan document.

    private Cycles edgeCycles(PEdge e, int t) {
        Cycles c = new Cycles();
        if (e.inter) {
            c.hops += e.hops * cost.hop;
            c.steps += cost.step;
            cost.interWafer(c, e.bytesPerToken * t);
        } else {
            cost.stream(c, e.bytesPerToken * t, e.links, e.hops);
        }
        return c;
    }

    /** Cycles of one pass of {@code t} tokens through a model's nodes and edges (role target or draft). */
    private Cycles pass(Layout lay, String role, int t) {
        Cycles c = new Cycles();
        for (PNode p : lay.nodes) {
            if (p.role.equals(role)) {
                c.add(p.cycles.at(t, req.ctx()));
            }
        }
        for (PEdge e : lay.edges) {
            if (e.role.equals(role)) {
                c.add(edgeCycles(e, t));
            }
        }
        return c;
    }

    /** SRAM of a node's fullest PE while a prefill chunk of {@code t} tokens passes through it. */
    private double prefillSram(PNode p, int t) {
        IntToDoubleFunction act = p.prefillActivationsPerPe != null ? p.prefillActivationsPerPe : p.activationsPerPe;
        return dev.reservedBytesPerPe() + p.weightsPerPe + p.kvPerPe + act.applyAsDouble(t);
    }

    private Plan assemble(Choice c, Layout lay, List<Integer> tried, String note) {
        double f = dev.clockHz();
        int ctx = req.ctx();
        // prefill: the largest chunk whose activations fit every target partition, at most the calibrated chunk
        int chunk = Math.max(1, req.calibration().prefillChunk());
        while (chunk > 1) {
            boolean fits = true;
            for (PNode p : lay.nodes) {
                if (p.role.equals("target") && p.inPrefill && prefillSram(p, chunk) > cap) {
                    fits = false;
                    break;
                }
            }
            if (fits) {
                break;
            }
            chunk /= 2;
        }
        int prefillCtx = Math.max(1, ctx / 2);
        double period = 0;
        String periodNode = "";
        double prefillPeriod = 0;
        String prefillNode = "";
        Map<String, Cycles> decodeByNode = new LinkedHashMap<>();
        Map<String, Double> prefillByNode = new LinkedHashMap<>();
        for (PNode p : lay.nodes) {
            Cycles d = p.cycles.at(1, ctx);
            decodeByNode.put(p.id, d);
            double pre = 0;
            if (p.role.equals("target")) {
                if (d.total() > period) {
                    period = d.total();
                    periodNode = p.id;
                }
                if (p.inPrefill) {
                    pre = p.prefill(chunk, prefillCtx).total() / chunk;
                    if (pre > prefillPeriod) {
                        prefillPeriod = pre;
                        prefillNode = p.id;
                    }
                }
            }
            prefillByNode.put(p.id, pre);
        }
        for (PEdge e : lay.edges) {
            NodeKind fromKind = lay.byId.get(e.from).kind;
            if (!e.role.equals("target") || lay.byId.get(e.to).kind == NodeKind.FINAL_NORM
                    || fromKind == NodeKind.FINAL_NORM || fromKind == NodeKind.LM_HEAD) {
                continue;
            }
            double occ = e.inter
                    ? e.bytesPerToken / dev.interWaferBandwidthBytesPerSecond() * f
                    : Math.ceil(CostModel.wavelets(e.bytesPerToken * chunk / ACT_BYTES, ACT_BYTES) / e.links) / chunk;
            if (occ > prefillPeriod) {
                prefillPeriod = occ;
                prefillNode = "stream " + e.from + " -> " + e.to;
            }
        }
        Cycles token = pass(lay, "target", 1);
        double tokenCycles = token.total();
        double decodeTps = f / tokenCycles;
        int b = req.batch();
        double aggregate = b * f / Math.max(tokenCycles, b * period);
        double prefillTps = f / prefillPeriod;
        double ttft = ctx / prefillTps + tokenCycles / f;

        Plan.Speculative spec = null;
        double effective = decodeTps;
        if (dft != null) {
            double draftToken = pass(lay, "draft", 1).total();
            int bestK = c.specK();
            double bestRate = -1;
            double bestVerify = 0;
            double bestExchange = 0;
            int kMin = req.specK() > 0 ? req.specK() : 1;
            for (int k = kMin; k <= kCap; k++) {
                double verify = pass(lay, "target", k + 1).total();
                double exchange = 0;
                for (PEdge e : lay.edges) {
                    if (e.role.equals("exchange")) {
                        exchange += edgeCycles(e, k).total();
                    }
                }
                double rate = expectedTokens(req.acceptRate(), k) * f / (k * draftToken + verify + exchange);
                if (rate > bestRate) {
                    bestRate = rate;
                    bestK = k;
                    bestVerify = verify;
                    bestExchange = exchange;
                }
            }
            spec = new Plan.Speculative(dft.shape.name(), bestK, req.acceptRate(),
                    round3(expectedTokens(req.acceptRate(), bestK)), Plan.round(draftToken), Plan.round(bestVerify),
                    Plan.round(bestExchange), Plan.round(bestRate), round3(bestRate / decodeTps));
            effective = bestRate;
        }

        List<Plan.Node> nodes = new ArrayList<>();
        for (PNode p : lay.nodes) {
            long weightsPe = Math.round(p.weightsPerPe);
            long kvPe = Math.round(p.kvPerPe);
            long actPe = Math.round(p.activationsPerPe.applyAsDouble(tPass));
            long total = dev.reservedBytesPerPe() + weightsPe + kvPe + actPe;
            nodes.add(new Plan.Node(p.id, p.kind, p.role, p.layer, null, p.wafer, p.rect, p.rect.pes(),
                    new Plan.Sram(weightsPe, kvPe, actPe, dev.reservedBytesPerPe(), total, cap),
                    Math.round(p.weightBytes), Math.round(p.kvBytes), Math.round(p.flops),
                    Math.round(p.bytesMoved), Plan.CycleBreakdown.of(decodeByNode.get(p.id)),
                    Plan.round(prefillByNode.get(p.id))));
        }
        List<Plan.Edge> edges = new ArrayList<>();
        for (PEdge e : lay.edges) {
            edges.add(new Plan.Edge(e.from, e.to, e.bytesPerToken, e.links, e.hops, e.inter,
                    Plan.CycleBreakdown.of(edgeCycles(e, 1)), List.copyOf(e.route)));
        }
        List<Plan.Wafer> wafers = waferSummaries(c.wafers(), nodes);
        Plan.Performance perf = new Plan.Performance(Plan.round(tokenCycles), tokenCycles / f, Plan.round(decodeTps),
                Plan.CycleBreakdown.of(token), decodeBottleneck(token, decodeByNode, lay), Plan.round(period),
                periodNode, b, Plan.round(aggregate), Plan.round(prefillTps), chunk, prefillNode, ttft, spec,
                Plan.round(effective));
        List<String> warnings = new ArrayList<>();
        if (ctx > tgt.shape.maxPositions()) {
            warnings.add("ctx " + ctx + " exceeds " + tgt.shape.name() + "'s max_position_embeddings "
                    + tgt.shape.maxPositions() + " (needs RoPE scaling)");
        }
        if (dft != null && ctx > dft.shape.maxPositions()) {
            warnings.add("ctx " + ctx + " exceeds draft " + dft.shape.name() + "'s max_position_embeddings "
                    + dft.shape.maxPositions());
        }
        Plan.Shapes shapes = new Plan.Shapes("layer-pipeline", blockShape(c.target()),
                c.draft() == null ? null : blockShape(c.draft()), null);
        List<Integer> triedOut = tried.size() <= 8 ? List.copyOf(tried)
                : List.of(tried.get(0), tried.get(tried.size() - 1));
        Plan.Search search = new Plan.Search(dft == null
                ? "fewest wafers, then minimise decode cycles per token (batch-1 latency)"
                : "fewest wafers, then maximise speculative tokens per second (k draft steps + one (k+1)-token "
                + "verification pass, k <= " + kCap + ")", counter[0], triedOut, note, null);
        Plan plan = new Plan(Plan.SCHEMA, modelInfo(tgt), dft == null ? null : modelInfo(dft),
                new Plan.Request(dev.id(), req.wafers() > 0 ? req.wafers() : null, c.wafers(), req.dtype().label(), ctx,
                        b, dft == null ? null : dft.shape.name(), dft == null ? null : req.acceptRate(),
                        dft == null || req.specK() == 0 ? null : req.specK()),
                new Plan.DeviceSpecInfo(dev.id(), dev.name(), dev.params()),
                new Plan.CalibrationInfo(req.calibration().stepCycles(), req.calibration().computeEfficiency(),
                        req.calibration().partialSumBytes(), req.calibration().prefillChunk(),
                        req.calibration().stepCyclesSource()),
                shapes, wafers, nodes, edges, perf, List.of(), warnings, search);
        List<Plan.Check> checks = PlanValidator.check(plan, dev);
        for (Plan.Check ch : checks) {
            if (!ch.ok()) {
                throw new IllegalStateException("internal error: the planner produced an illegal plan: " + ch.name()
                        + ": " + ch.detail());
            }
        }
        return new Plan(plan.schema(), plan.model(), plan.draft(), plan.request(), plan.device(), plan.calibration(),
                plan.shapes(), plan.wafers(), plan.nodes(), plan.edges(), plan.performance(), checks,
                plan.warnings(), plan.search());
    }

    private static double round3(double v) {
        return Math.round(v * 1000.0) / 1000.0;
    }

    private Plan.BlockShape blockShape(Option o) {
        LayerShape s = o.shape();
        return new Plan.BlockShape(s.rows(), s.attnCols(), s.kvCols(), s.mlpCols(), s.width(), o.perShelf());
    }

    private Plan.ModelInfo modelInfo(Side s) {
        ModelShape m = s.shape;
        return new Plan.ModelInfo(m.name(), m.architecture(), m.hidden(), m.intermediate(), m.layers(), m.heads(),
                m.kvHeads(), m.headDim(), m.vocab(), m.tiedEmbeddings(), m.qkvBias(), m.parameterCount(),
                Math.round(s.weightBytes()), m.kvBytesPerTokenPerLayer());
    }

    private List<Plan.Wafer> waferSummaries(int n, List<Plan.Node> nodes) {
        List<Plan.Wafer> out = new ArrayList<>();
        for (int w = 0; w < n; w++) {
            long used = 0;
            long sram = 0;
            int tLo = Integer.MAX_VALUE;
            int tHi = -1;
            int dLo = Integer.MAX_VALUE;
            int dHi = -1;
            for (Plan.Node p : nodes) {
                if (p.wafer() != w) {
                    continue;
                }
                used += p.pes();
                sram += p.pes() * p.sram().totalPerPe();
                if (p.layer() != null) {
                    if (p.model().equals("target")) {
                        tLo = Math.min(tLo, p.layer());
                        tHi = Math.max(tHi, p.layer());
                    } else {
                        dLo = Math.min(dLo, p.layer());
                        dHi = Math.max(dHi, p.layer());
                    }
                }
            }
            long pes = dev.pesPerWafer();
            long sramAll = pes * cap;
            out.add(new Plan.Wafer(w, pes, used, round3((double) used / pes), sramAll, sram,
                    round3((double) sram / sramAll), tHi < 0 ? "" : tLo + "-" + tHi, dHi < 0 ? "" : dLo + "-" + dHi));
        }
        return out;
    }

    private String decodeBottleneck(Cycles token, Map<String, Cycles> byNode, Layout lay) {
        double total = token.total();
        String[] names = {"compute", "fabric bandwidth", "hops", "collective/stream steps", "wafer-to-wafer links"};
        double[] vals = {token.compute, token.bandwidth, token.hops, token.steps, token.interWafer};
        int top = 0;
        for (int i = 1; i < vals.length; i++) {
            if (vals[i] > vals[top]) {
                top = i;
            }
        }
        Map<NodeKind, Double> byKind = new LinkedHashMap<>();
        for (PNode p : lay.nodes) {
            if (p.role.equals("target")) {
                byKind.merge(p.kind, byNode.get(p.id).total(), Double::sum);
            }
        }
        NodeKind topKind = null;
        for (Map.Entry<NodeKind, Double> e : byKind.entrySet()) {
            if (topKind == null || e.getValue() > byKind.get(topKind)) {
                topKind = e.getKey();
            }
        }
        return String.format(Locale.ROOT, "%s: %.0f%% of the token; largest partition kind %s: %.0f%%", names[top],
                100 * vals[top] / total, topKind, 100 * byKind.get(topKind) / total);
    }
}
