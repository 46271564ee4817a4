package ai.k2j.plan;

import ai.k2j.plan.CostModel.Cycles;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static ai.k2j.plan.CostModel.ACT_BYTES;
import static ai.k2j.plan.CostModel.ceilDiv;
import static ai.k2j.plan.CostModel.wavelets;

/**
 * WaferLLM's mapping (He et al., OSDI'25, "wafer-scale LLM parallelism"): every layer of a wafer is spread over
 * the same {@code R x C} mesh of PEs (the layers are stacked in each PE's SRAM and run one after the other), each
 * projection is a MeshGEMV (K split over one mesh dimension, N over the other, partial sums all-reduced by a K-tree
 * along the K dimension, orientations alternating so no transpose is needed), the KV cache is spread over the whole
 * mesh (positions over rows, kv dimensions over columns) and kept balanced by shifting one row per token
 * (WaferLLM's shift-based KV cache), and a prompt runs as MeshGEMMs (Cannon-style shifts over a square mesh).
 * Layers are split contiguously over wafers; MoE layers place their experts on sub-meshes of the layer's mesh
 * (the k chosen experts run in parallel) and, when a layer's experts exceed a wafer, over several wafers with an
 * all-to-all (dispatch and combine) between them. Formulas and sources: docs/wafer-plan.md, "mesh mapping".
 */
final class MeshPlanner {
    static final String MAPPING = "mesh";
    static final String TILED = "tiled-mesh";
    static final int MAX_WAFERS = 128;

    private final PlanRequest req;
    private final DeviceSpec dev;
    private final CostModel cost;
    private final double wb;
    private final long cap;
    private final long reserved;
    private final boolean tiled;
    private double sharedActivations;
    private Plan.Rect currentRect;

    /** null: both expert placements are compared; true / false: only stacked experts / only sub-meshes. */
    private final Boolean expertsStacked;

    /** With {@code tiled}, wafers are cut into several layer meshes; without, one mesh per wafer (WaferLLM's). */
    MeshPlanner(PlanRequest req, boolean tiled) {
        this(req, tiled, null);
    }

    /** As above, with the MoE expert placement fixed ({@code expertsStacked}) or compared (null). */
    MeshPlanner(PlanRequest req, boolean tiled, Boolean expertsStacked) {
        this.req = req;
        this.tiled = tiled;
        this.expertsStacked = expertsStacked;
        this.dev = req.device();
        this.cost = new CostModel(dev, req.calibration());
        this.wb = req.dtype().bytesPerWeight();
        this.cap = dev.sramPerPeBytes();
        this.reserved = dev.reservedBytesPerPe();
    }

    /**
     * A layer's mesh: a tile of {@code rows x cols} PEs; each wafer is cut into {@code tilesDown x tilesAcross} such
     * tiles and a wafer's layers are spread over them in order (1 x 1: WaferLLM's one mesh per wafer).
     */
    record Mesh(int rows, int cols, int tilesDown, int tilesAcross) {
        Mesh(int rows, int cols) {
            this(rows, cols, 1, 1);
        }

        long pes() {
            return (long) rows * cols;
        }

        int tiles() {
            return tilesDown * tilesAcross;
        }

        /** Tile i in serpentine order (left to right, then right to left on the next tile row). */
        Plan.Rect tile(int i) {
            int tr = i / tilesAcross;
            int tc = tr % 2 == 0 ? i % tilesAcross : tilesAcross - 1 - i % tilesAcross;
            return new Plan.Rect(tr * rows, tc * cols, rows, cols);
        }
    }

    // ------------------------------------------------------------------------------------------------------
    // One model on a mesh: per-layer SRAM and cycles.

    final class Side {
        final ModelShape m;
        final String role;
        final String prefix;
        final Mesh mesh;
        final int span;       // wafers an MoE layer's experts are spread over
        final boolean stacked; // MoE: every expert spread over the whole layer mesh (else one sub-mesh per expert)
        final long h, q, kv, ff;

        Side(ModelShape m, String role, String prefix, Mesh mesh, int span) {
            this(m, role, prefix, mesh, span, false);
        }

        Side(ModelShape m, String role, String prefix, Mesh mesh, int span, boolean stacked) {
            this.m = m;
            this.stacked = stacked && span == 1;
            this.role = role;
            this.prefix = prefix;
            this.mesh = mesh;
            this.span = span;
            this.h = m.hidden();
            this.q = m.qDim();
            this.kv = m.kvDim();
            this.ff = m.intermediate();
        }

        int r() {
            return mesh.rows;
        }

        int c() {
            return mesh.cols;
        }

        /**
         * Sub-mesh grid for the experts of an MoE layer on one of its wafers: {gridRows, gridCols, perSubMesh}.
         * Experts are assigned to sub-meshes in order (routed experts, then shared ones), {@code perSubMesh} each, the
         * sub-meshes numbered row by row; stacked experts are one 1 x 1 grid (every expert over the whole mesh).
         */
        int[] expertGrid() {
            int n = (int) ceilDiv(m.moe().experts(), span) + m.moe().sharedExperts();
            if (stacked) {
                return new int[] {1, 1, n};
            }
            int gr = (int) Math.max(1, Math.min(r(), Math.round(Math.sqrt((double) n * r() / c()))));
            int gc = (int) Math.max(1, Math.min(c(), ceilDiv(n, gr)));
            int per = (int) ceilDiv(n, (long) gr * gc);
            return new int[] {gr, gc, per};
        }

        // ---- SRAM per PE ----

        double attnWeightsPerPe() {
            if (m.mla() != null) {
                ModelShape.Mla a = m.mla();
                long qk = a.nopeDim() + a.ropeDim();
                return wb * (ceilDiv(h, r()) * ceilDiv(a.qLoraRank(), c())
                        + ceilDiv(a.qLoraRank(), c()) * ceilDiv((long) m.heads() * qk, r())
                        + ceilDiv(h, r()) * ceilDiv(a.kvLoraRank() + a.ropeDim(), c())
                        + ceilDiv((long) m.heads() * a.nopeDim(), r()) * ceilDiv(a.kvLoraRank(), c())
                        + ceilDiv((long) m.heads() * a.vHeadDim(), r()) * ceilDiv(a.kvLoraRank(), c())
                        + ceilDiv((long) m.heads() * a.vHeadDim(), c()) * ceilDiv(h, r()));
            }
            return ceilDiv(h, r()) * ceilDiv(q + 2 * kv, c()) * wb + (m.qkvBias() ? ceilDiv(q + 2 * kv, c()) * 2.0 : 0)
                    + ceilDiv(q, c()) * ceilDiv(h, r()) * wb;
        }

        double normWeightsPerPe() {
            return ceilDiv(h, r()) * 2.0;
        }

        double mlpWeightsPerPe(int layer) {
            if (!m.isMoe(layer)) {
                return (ceilDiv(h, r()) * ceilDiv(2 * ff, c()) + ceilDiv(ff, c()) * ceilDiv(h, r())) * wb;
            }
            return routerWeightsPerPe() + expertWeightsPerPe();
        }

        double routerWeightsPerPe() {
            return ceilDiv(h, r()) * ceilDiv(m.moe().experts(), c()) * wb;
        }

        double expertWeightsPerPe() {
            int[] g = expertGrid();
            int sr = r() / g[0];
            int sc = c() / g[1];
            long fe = m.moe().expertIntermediate();
            return g[2] * (ceilDiv(h, sr) * ceilDiv(2 * fe, sc) + ceilDiv(fe, sc) * ceilDiv(h, sr)) * wb;
        }

        double kvPerPe() {
            long dims = m.kvBytesPerTokenPerLayer() / ACT_BYTES;
            return (double) req.batch() * ceilDiv(req.ctx(), r()) * ceilDiv(dims, c()) * ACT_BYTES;
        }

        /** Buffers of one pass of t tokens; layers run one at a time, so a wafer needs one set. */
        double activationsPerPe(int t) {
            int psum = cost.cal.partialSumBytes();
            long widest = Math.max(q + 2 * kv, 2 * ff);
            if (m.moe() != null) {
                widest = Math.max(widest, m.moe().experts());
                int[] g = expertGrid();
                widest = Math.max(widest, ceilDiv(2L * m.moe().expertIntermediate(), c() / g[1]) * c());
            }
            if (m.mla() != null) {
                widest = Math.max(widest, (long) m.heads() * Math.max(m.mla().kvLoraRank(),
                        m.mla().nopeDim() + m.mla().ropeDim()));
            }
            double heads = headsPerColumn();
            return t * (4.0 * ceilDiv(h, r()) * ACT_BYTES + ceilDiv(widest, c()) * (ACT_BYTES + 2.0 * psum)
                    + ceilDiv(req.ctx(), r()) * heads * 4.0);
        }

        double headsPerColumn() {
            return m.mla() != null ? m.heads() : Math.max(1.0, Math.ceil((double) m.heads() / c()));
        }

        double embedWeightsPerPe() {
            return ceilDiv(m.vocab(), m.tiedEmbeddings() ? c() : r()) * ceilDiv(h, m.tiedEmbeddings() ? r() : c()) * wb;
        }

        double headWeightsPerPe() {
            return ceilDiv(h, r()) * ceilDiv(m.vocab(), c()) * wb;
        }

        /** Per-PE bytes a layer adds to its wafer (weights and KV cache), spread over the span for MoE layers. */
        double layerPerPe(int layer) {
            double b = 2 * normWeightsPerPe() + attnWeightsPerPe() + kvPerPe();
            if (m.isMoe(layer)) {
                return b + routerWeightsPerPe() + expertWeightsPerPe();
            }
            return b + mlpWeightsPerPe(layer);
        }

        // ---- weights, totals ----

        double layerWeightBytes(int layer) {
            return (m.attentionParams() + m.mlpParams(layer)) * wb + 2.0 * h * 2;
        }

        double weightBytes() {
            double w = 0;
            for (int l = 0; l < m.layers(); l++) {
                w += layerWeightBytes(l);
            }
            return w + (double) m.embeddingParams() * wb * (m.tiedEmbeddings() ? 1 : 2) + h * 2.0;
        }

        // ---- cycles of one pass of t tokens attending ctx positions ----

        Cycles norm(int t) {
            Cycles c = new Cycles();
            cost.elementwise(c, 2.0 * ceilDiv(h, r()) * t);
            cost.allreduce(c, r(), Math.ceil(t * 4.0 / CostModel.WAVELET_BYTES));
            return c;
        }

        Cycles attention(int t) {
            Cycles c = new Cycles();
            if (m.mla() != null) {
                ModelShape.Mla a = m.mla();
                long heads = m.heads();
                long qk = a.nopeDim() + a.ropeDim();
                cost.gemv(c, h, a.qLoraRank() + a.kvLoraRank() + a.ropeDim(), r(), c(), t, false, true); // q_a, kv_a
                cost.elementwise(c, 2.0 * ceilDiv(a.qLoraRank() + a.kvLoraRank(), c()) * t);          // latent norms
                cost.allreduce(c, c(), Math.ceil(t * 8.0 / CostModel.WAVELET_BYTES));
                cost.gemv(c, a.qLoraRank(), heads * qk, c(), r(), t, false, true);                     // q_b
                // absorb W_UK into q: per head nope x kvLora (block diagonal, heads spread over the mesh)
                c.compute += (double) heads * a.nopeDim() * a.kvLoraRank() * t / mesh.pes() / cost.fmac;
                cost.allreduce(c, r(), wavelets((double) ceilDiv(heads * a.kvLoraRank(), c()) * t, 4));
                cost.elementwise(c, 3.0 * ceilDiv(heads * a.ropeDim() + a.ropeDim(), c()) * t);       // RoPE
                // absorb W_UV after attention, then o
                c.compute += (double) heads * a.kvLoraRank() * a.vHeadDim() * t / mesh.pes() / cost.fmac;
                cost.allreduce(c, c(), wavelets((double) ceilDiv(heads * a.vHeadDim(), r()) * t, 4));
                cost.gemv(c, heads * a.vHeadDim(), h, c(), r(), t, false, true);                      // o
            } else {
                cost.gemv(c, h, q + 2 * kv, r(), c(), t, false, true);                  // q, k, v
                if (m.qkNorm()) {
                    cost.qkNorm(c, q, kv, m.headDim(), c(), t);
                }
                cost.elementwise(c, (m.qkvBias() ? 1.0 : 0.0) * ceilDiv(q + 2 * kv, c()) * t
                        + 3.0 * ceilDiv(q + kv, c()) * t);                               // bias, RoPE
                cost.gemv(c, q, h, c(), r(), t, false, true);                           // o
            }
            cost.elementwise(c, (double) ceilDiv(h, r()) * t);                           // residual
            return c;
        }

        /** Scores, softmax and weighted values over the mesh-wide KV cache, plus the per-token row shift. */
        Cycles kvCache(int t, int ctx) {
            Cycles c = new Cycles();
            long pos = ceilDiv(ctx, r());
            long cacheDims = m.kvBytesPerTokenPerLayer() / ACT_BYTES;
            double heads = headsPerColumn();
            long qSlice;
            long vSlice;
            int headGroup;  // columns a head's dot products are spread over
            if (m.mla() != null) {
                qSlice = ceilDiv(m.mla().kvLoraRank() + m.mla().ropeDim(), c()) * m.heads();
                vSlice = ceilDiv(m.mla().kvLoraRank(), c()) * m.heads();
                headGroup = (int) Math.min(c(), m.mla().kvLoraRank() + m.mla().ropeDim());
            } else {
                qSlice = ceilDiv(q, c());
                vSlice = qSlice;
                headGroup = (int) Math.max(1, Math.min(c(), ceilDiv(m.headDim(), ceilDiv(kv, c()))));
            }
            // the new token's k/v enter row 0; every row passes its oldest entry one row down (shift-based cache)
            c.bandwidth += wavelets((double) ceilDiv(cacheDims, c()) * t, ACT_BYTES);
            c.hops += cost.hop;
            c.steps += cost.step;
            c.compute += (double) pos * qSlice * t / cost.fmac;                                    // q . k
            if (headGroup > 1) {
                cost.allreduce(c, headGroup, wavelets((double) pos * heads * t, 4));
            }
            // softmax and weighted values combined in one reduction along the positions (flash-decoding style: each
            // PE sends its local max, its local sum of exponentials and its rescaled partial output)
            cost.elementwise(c, 2.0 * pos * heads * t);                                             // exp
            c.compute += (double) pos * vSlice * t / cost.fmac;                                    // p . v
            cost.allreduce(c, r(), wavelets((double) (vSlice + 2 * heads) * t, cost.cal.partialSumBytes()));
            return c;
        }

        Cycles mlp(int layer, int t) {
            Cycles c = new Cycles();
            if (!m.isMoe(layer)) {
                cost.gemv(c, h, 2 * ff, r(), c(), t, false, true);
                cost.elementwise(c, 3.0 * ceilDiv(ff, c()) * t);
                cost.gemv(c, ff, h, c(), r(), t, false, true);
                cost.elementwise(c, (double) ceilDiv(h, r()) * t);
                return c;
            }
            c.add(router(t));
            c.add(experts(t));
            return c;
        }

        Cycles router(int t) {
            Cycles c = new Cycles();
            int k = m.moe().topK();
            cost.gemv(c, h, m.moe().experts(), r(), c(), t, false, true);
            cost.elementwise(c, (double) ceilDiv(m.moe().experts(), c()) * k * t);   // local top-k
            // the scores sit in the first min(E, C) columns: the (value, index) pairs of the top k are reduced over
            // those, then every column gets the choice (the experts' tiles are on every PE)
            cost.reduce(c, (int) Math.min(m.moe().experts(), c()), wavelets(2.0 * k * t, 4));
            cost.broadcast(c, c(), wavelets(2.0 * k * t, 4));
            return c;
        }

        /** Dispatch to the k chosen experts' sub-meshes (and wafers), the experts in parallel, the combine. */
        Cycles experts(int t) {
            if (stacked) {
                return stackedExperts(t);
            }
            Cycles c = new Cycles();
            int[] g = expertGrid();
            int sr = r() / g[0];
            int sc = c() / g[1];
            int k = m.moe().topK() + m.moe().sharedExperts();
            long fe = m.moe().expertIntermediate();
            double vec = wavelets((double) ceilDiv(h, sr) * t, ACT_BYTES);
            c.bandwidth += vec;                                   // multicast of x to the chosen sub-meshes
            c.hops += (r() + c()) * cost.hop;
            c.steps += cost.step;
            cost.gemv(c, h, 2 * fe, sr, sc, t, false, true);      // one expert (the k run in parallel)
            cost.elementwise(c, 3.0 * ceilDiv(fe, sc) * t);
            cost.gemv(c, fe, h, sc, sr, t, false, true);
            int levels = 32 - Integer.numberOfLeadingZeros(k);    // combine tree over the k outputs
            c.bandwidth += levels * wavelets((double) ceilDiv(h, sr) * t, 4);
            c.hops += (r() + c()) * cost.hop;
            c.steps += levels * cost.step;
            cost.broadcast(c, c(), wavelets((double) ceilDiv(h, r()) * t, ACT_BYTES));
            cost.elementwise(c, (double) ceilDiv(h, r()) * t);    // residual
            if (span > 1) {
                // all-to-all: x to the wafers holding chosen experts and their outputs back
                double remote = (double) m.moe().topK() * (span - 1) / span;
                cost.interWafer(c, remote * h * ACT_BYTES * t);
                cost.interWafer(c, remote * h * ACT_BYTES * t);
                c.hops += 2.0 * c() * cost.hop;
            }
            return c;
        }

        /**
         * Experts stacked like layers: each PE holds a tile of every expert, so the k chosen (and the shared) experts
         * run one after another on the whole mesh as MeshGEMVs, with no dispatch or combine: the input is already
         * where a dense MLP would read it, the router weights scale each expert's down-projection partials locally,
         * and the experts' outputs are summed inside the down-projection's all-reduce.
         */
        Cycles stackedExperts(int t) {
            Cycles c = new Cycles();
            int k = m.moe().topK() + m.moe().sharedExperts();
            long fe = m.moe().expertIntermediate();
            double upTile = (double) ceilDiv(h, r()) * ceilDiv(2 * fe, c());
            c.compute += k * upTile * t / cost.fmac;
            cost.allreduce(c, r(), wavelets((double) k * ceilDiv(2 * fe, c()) * t, cost.cal.partialSumBytes()));
            cost.elementwise(c, 3.0 * k * ceilDiv(fe, c()) * t);                      // SiLU x up
            c.compute += k * (double) ceilDiv(fe, c()) * ceilDiv(h, r()) * t / cost.fmac;
            cost.elementwise(c, (double) k * ceilDiv(h, r()) * t);                    // router weight per expert
            cost.allreduce(c, c(), wavelets((double) ceilDiv(h, r()) * t, cost.cal.partialSumBytes()));
            cost.elementwise(c, (double) ceilDiv(h, r()) * t);                        // residual
            return c;
        }

        Cycles embed(int t) {
            Cycles c = new Cycles();
            if (m.tiedEmbeddings()) {
                cost.elementwise(c, (double) ceilDiv(h, r()) * t);
                c.steps += cost.step;
                cost.broadcast(c, c(), wavelets((double) ceilDiv(h, r()) * t, ACT_BYTES));
            } else {
                cost.elementwise(c, (double) ceilDiv(h, c()) * t);
                c.steps += cost.step;
                cost.stream(c, (double) h * ACT_BYTES * t, c(), r());   // the row slice to the layer layout
                cost.broadcast(c, c(), wavelets((double) ceilDiv(h, r()) * t, ACT_BYTES));
            }
            return c;
        }

        Cycles head(int t) {
            Cycles c = new Cycles();
            cost.gemv(c, h, m.vocab(), r(), c(), t, false, false);
            cost.elementwise(c, (double) ceilDiv(m.vocab(), c()) * t);
            cost.reduce(c, c(), wavelets(2.0 * t, 4));
            return c;
        }

        /** One pass of t tokens through every layer and both ends, without wafer-to-wafer links. */
        Cycles pass(int t, int ctx) {
            Cycles c = embed(t);
            for (int l = 0; l < m.layers(); l++) {
                c.add(norm(t)).add(attention(t)).add(kvCache(t, ctx)).add(norm(t)).add(mlp(l, t));
            }
            return c.add(norm(t)).add(head(t));
        }

        /** MeshGEMM prefill of n prompt tokens per layer: Cannon-style shifts over the largest square. */
        double prefillCycles(int n) {
            int p = Math.min(r(), c());
            double total = 0;
            for (int l = 0; l < m.layers(); l++) {
                long mlpN = m.isMoe(l) ? (long) (m.moe().topK() + m.moe().sharedExperts()) * m.moe()
                        .expertIntermediate() : ff;
                long[][] gemms = {{h, q + 2 * kv}, {q, h}, {h, 2 * mlpN}, {mlpN, h}};
                for (long[] g : gemms) {
                    total += gemm(n, g[0], g[1], p);
                }
                // causal attention: scores and values over n/2 positions on average, as two GEMMs
                total += 2 * gemm(n, Math.max(1, q), Math.max(1, n / 2), p);
            }
            return total;
        }

        private double gemm(long n, long k, long nOut, int p) {
            double tile = (double) ceilDiv(n, p) * ceilDiv(k, p) * ceilDiv(nOut, p) / cost.fmac;
            double shift = Math.max(wavelets((double) ceilDiv(n, p) * ceilDiv(k, p), ACT_BYTES),
                    wavelets((double) ceilDiv(k, p) * ceilDiv(nOut, p), wb >= 2 ? 2 : 1));
            // p steps of compute overlapped with the shift of both operand tiles (two hops: interleaved ring)
            return p * (Math.max(tile, shift) + 2 * cost.hop + cost.step);
        }
    }

    // ------------------------------------------------------------------------------------------------------
    // Search

    /**
     * A costed candidate: mesh (tile), span, experts stacked or on sub-meshes, layers per slot (wafer group x tile),
     * token cycles, speculative rate.
     */
    record Candidate(int wafers, Mesh mesh, Mesh draftMesh, int span, boolean stacked, int[] layersPerSlot,
                     double tokenCycles, double tokensPerSecond, int specK, double specRate) {
    }

    private Side side(ModelShape m, Mesh mesh, int span, boolean stacked) {
        return new Side(m, "target", "", mesh, span, stacked);
    }

    private Side side(ModelShape m, Mesh mesh, int span) {
        return side(m, mesh, span, false);
    }

    /**
     * Meshes tried: the whole grid and the largest square as one mesh per wafer (WaferLLM), smaller squares, and the
     * grid cut into 1..4 x 1..6 tiles (several layer meshes per wafer: shorter lines, fewer hops per collective).
     */
    List<Mesh> meshes() {
        List<Mesh> out = new ArrayList<>();
        int s = Math.min(dev.peRows(), dev.peCols());
        if (!tiled) {
            out.add(new Mesh(dev.peRows(), dev.peCols()));
            for (int d : new int[] {4, 3, 2, 1}) {
                int p = s * d / 4;
                if (p >= 1 && !out.contains(new Mesh(p, p))) {
                    out.add(new Mesh(p, p));
                }
            }
            return out;
        }
        for (int td = 1; td <= 4; td++) {
            for (int ta = 1; ta <= 6; ta++) {
                Mesh m = new Mesh(dev.peRows() / td, dev.peCols() / ta, td, ta);
                if (td * ta > 1 && m.rows() >= 1 && m.cols() >= 1) {
                    out.add(m);
                }
            }
        }
        return out;
    }

    int tPass() {
        return req.draft() == null ? req.batch() : (req.specK() > 0 ? req.specK() : PlanRequest.MAX_SPEC_K) + 1;
    }

    /** Minimal span (wafers per MoE layer) so that one layer's experts fit a mesh; -1 if none. */
    int minSpan(ModelShape m, Mesh mesh, boolean stacked) {
        if (m.moe() == null) {
            return 1;
        }
        for (int s = 1; s <= (mesh.tiles() > 1 || stacked ? 1 : MAX_WAFERS); s++) {
            Side sd = new Side(m, "target", "", mesh, s, stacked);
            double fixed = reserved + sd.activationsPerPe(tPass());
            if (fixed + sd.layerPerPe(m.layers() - 1) <= cap) {
                return s;
            }
        }
        return -1;
    }

    /** Slot i (a tile of a wafer group) and its wafer. */
    int slotWafer(Side t, int slot) {
        return slot / t.mesh.tiles() * t.span;
    }

    Plan.Rect slotRect(Side t, int slot) {
        return t.mesh.tile(slot % t.mesh.tiles());
    }

    /**
     * Packs layers contiguously onto the slots of {@code wafers} wafers (tiles in order; MoE layers onto groups of
     * {@code span} wafers), balancing per-PE use; null when they do not fit. The embedding (and a draft) share the
     * first slot, the head the last used one.
     */
    int[] pack(Side t, Side d, int wafers) {
        int groups = wafers / t.span;
        int slots = groups * t.mesh.tiles();
        int n = t.m.layers();
        if (groups < 1) {
            return null;
        }
        slots = Math.min(slots, n);
        int tp = tPass();
        double act = Math.max(t.activationsPerPe(tp), d == null ? 0 : d.activationsPerPe(tp));
        double[] fixed = new double[slots];
        java.util.Arrays.fill(fixed, reserved + act);
        fixed[0] += t.m.tiedEmbeddings() ? t.headWeightsPerPe() : t.embedWeightsPerPe();
        fixed[slots - 1] += (t.m.tiedEmbeddings() ? 0 : t.headWeightsPerPe()) + t.normWeightsPerPe();
        if (d != null) {
            double dw = (d.m.tiedEmbeddings() ? d.headWeightsPerPe() : d.embedWeightsPerPe() + d.headWeightsPerPe())
                    + d.normWeightsPerPe();
            for (int l = 0; l < d.m.layers(); l++) {
                dw += d.layerPerPe(l);
            }
            fixed[0] += dw;
        }
        int[] out = new int[slots];
        int l = 0;
        for (int g = 0; g < slots; g++) {
            double room = cap - fixed[g];
            int want = (int) Math.ceil((double) (n - l) / (slots - g));
            double used = 0;
            while (l < n && (out[g] < want || g == slots - 1) && used + t.layerPerPe(l) <= room) {
                used += t.layerPerPe(l);
                l++;
                out[g]++;
            }
        }
        if (l < n) {
            l = 0;
            java.util.Arrays.fill(out, 0);
            for (int g = 0; g < slots; g++) {
                double used = 0;
                while (l < n && used + t.layerPerPe(l) <= cap - fixed[g]) {
                    used += t.layerPerPe(l);
                    l++;
                    out[g]++;
                }
            }
            if (l < n) {
                return null;
            }
        }
        for (int g = 0; g < slots; g++) {
            if (out[g] == 0 || fixed[g] > cap) {
                return null;
            }
        }
        return out;
    }

    /** Cycles of one pass of {@code tokens} target tokens through the packed layers, with every hand-off. */
    double tokenCycles(Side t, int[] slots, int tokens, int ctx) {
        return t.pass(tokens, ctx).total() + links(t, slots, tokens).total();
    }

    /** A hand-off of {@code bytes} from one slot to another: a stream on the wafer, or a wafer-to-wafer link. */
    Cycles handOff(Side t, int from, int to, double bytes) {
        if (from == to) {
            return new Cycles();
        }
        Plan.Rect a = slotRect(t, from);
        Plan.Rect z = slotRect(t, to);
        boolean inter = slotWafer(t, from) != slotWafer(t, to);
        return routeCycles(route(t, from, to, a, z), inter, bytes, inter ? 1 : Math.min(a.rows(), z.rows()));
    }

    /** The hand-offs of a pass: the activation between consecutive slots, the sampled ids back to the first. */
    Cycles links(Side t, int[] slots, int tokens) {
        Cycles c = new Cycles();
        for (int i = 0; i + 1 < slots.length; i++) {
            c.add(handOff(t, i, i + 1, (double) t.h * ACT_BYTES * tokens));
        }
        c.add(handOff(t, slots.length - 1, 0, 4.0 * tokens));
        return c;
    }

    /**
     * The better of the two expert placements for an MoE model whose layer fits one mesh (sub-meshes with dispatch
     * and combine, or stacked over the whole mesh); the sub-mesh placement otherwise.
     */
    Candidate evaluate(int wafers, Mesh mesh, Mesh draftMesh) {
        if (req.model().moe() != null && expertsStacked != null) {
            Candidate only = evaluate(wafers, mesh, draftMesh, expertsStacked);
            return only == null || only.stacked() == expertsStacked ? only : null;
        }
        Candidate sub = evaluate(wafers, mesh, draftMesh, false);
        if (req.model().moe() == null) {
            return sub;
        }
        Candidate st = evaluate(wafers, mesh, draftMesh, true);
        if (st == null || !st.stacked()) {
            return sub;
        }
        return sub == null || st.specRate() > sub.specRate() + 1e-9 ? st : sub;
    }

    Candidate evaluate(int wafers, Mesh mesh, Mesh draftMesh, boolean stacked) {
        int span = minSpan(req.model(), mesh, stacked);
        if (span < 0) {
            return null;
        }
        Side t = side(req.model(), mesh, span, stacked);
        Side d = req.draft() == null ? null : new Side(req.draft(), "draft", "draft.", draftMesh, 1);
        int[] slots = pack(t, d, wafers);
        if (slots == null) {
            return null;
        }
        int ctx = req.ctx();
        double token = tokenCycles(t, slots, 1, ctx);
        double f = dev.clockHz();
        double tps = f / token;
        int bestK = 0;
        double bestRate = tps;
        if (d != null) {
            double draftToken = d.pass(1, ctx).total();
            int kMax = req.specK() > 0 ? req.specK() : PlanRequest.MAX_SPEC_K;
            int kMin = req.specK() > 0 ? req.specK() : 1;
            bestRate = -1;
            for (int k = kMin; k <= kMax; k++) {
                double verify = tokenCycles(t, slots, k + 1, ctx);
                double rate = Planner.expectedTokens(req.acceptRate(), k) * f
                        / (k * draftToken + verify + exchangeCycles(t, k));
                if (rate > bestRate) {
                    bestRate = rate;
                    bestK = k;
                }
            }
        }
        return new Candidate(wafers, mesh, draftMesh, span, t.stacked, slots, token, tps, bestK, bestRate);
    }

    private double exchangeCycles(Side t, int k) {
        Cycles c = new Cycles();
        cost.stream(c, 4.0 * k, 1, t.r() + t.c());
        return c.total();
    }

    int lowerBound() {
        Side t = side(req.model(), new Mesh(dev.peRows(), dev.peCols()), 1);
        double usable = (double) dev.pesPerWafer() * (cap - reserved);
        double need = t.weightBytes() + (double) req.batch() * req.ctx() * req.model().kvBytesPerTokenPerLayer()
                * req.model().layers();
        if (req.draft() != null) {
            need += side(req.draft(), new Mesh(dev.peRows(), dev.peCols()), 1).weightBytes();
        }
        return Math.max(1, (int) Math.ceil(need / usable));
    }

    /** Best candidate on exactly {@code wafers} wafers, or null. */
    Candidate best(int wafers) {
        Candidate best = null;
        for (Mesh mesh : meshes()) {
            List<Mesh> drafts = req.draft() == null ? List.of(mesh) : meshes().stream()
                    .map(x -> new Mesh(x.rows(), x.cols())).distinct()
                    .filter(x -> x.rows() <= mesh.rows() && x.cols() <= mesh.cols()).toList();
            for (Mesh dm : drafts) {
                Candidate c = evaluate(wafers, mesh, dm);
                if (c != null && (best == null || c.specRate() > best.specRate() + 1e-9)) {
                    best = c;
                }
            }
        }
        return best;
    }

    /**
     * The mesh plan: on the requested wafer count, or the fastest over wafer counts from the SRAM lower bound
     * ({@code fewest}: the first count that fits). Null when nothing fits up to {@link #MAX_WAFERS}.
     */
    Plan plan(boolean fewest) {
        if (req.wafers() > 0) {
            Candidate c = best(req.wafers());
            return c == null ? null : build(c, List.of(req.wafers()));
        }
        int lo = lowerBound();
        Candidate best = null;
        List<Integer> tried = new ArrayList<>();
        int first = -1;
        for (int n = lo; n <= MAX_WAFERS; n++) {
            if (first > 0 && n > 2 * first + 4) {
                break;
            }
            Candidate c = best(n);
            tried.add(n);
            if (c == null) {
                continue;
            }
            if (first < 0) {
                first = n;
            }
            if (best == null || c.specRate() > best.specRate() * 1.0005) {
                best = c;   // more wafers add hand-offs: only a clearly faster plan displaces a smaller one
            }
            if (fewest) {
                break;
            }
        }
        return best == null ? null : build(best, tried);
    }

    // ------------------------------------------------------------------------------------------------------
    // The plan document

    private record NodeCost(Plan.Node node, Cycles cycles) {
    }

    private Plan build(Candidate cand, List<Integer> tried) {
        int ctx = req.ctx();
        double f = dev.clockHz();
        Side t = side(req.model(), cand.mesh(), cand.span(), cand.stacked());
        Side d = req.draft() == null ? null : new Side(req.draft(), "draft", "draft.", cand.draftMesh(), 1);
        int tp = tPass();
        int span = cand.span();
        List<Plan.Node> nodes = new ArrayList<>();
        Map<String, Cycles> cyc = new LinkedHashMap<>();
        List<Plan.Edge> edges = new ArrayList<>();
        int[] slots = cand.layersPerSlot();
        int[] slotOfLayer = new int[t.m.layers()];
        int l0 = 0;
        for (int g = 0; g < slots.length; g++) {
            for (int i = 0; i < slots[g]; i++) {
                slotOfLayer[l0++] = g;
            }
        }
        double act = Math.max(t.activationsPerPe(tp), d == null ? 0 : d.activationsPerPe(tp));
        addModel(nodes, cyc, edges, t, t, slotOfLayer, slots.length - 1, act);
        if (d != null) {
            addModel(nodes, cyc, edges, d, t, new int[d.m.layers()], 0, act);
        }
        Cycles token = new Cycles();
        for (Plan.Node n : nodes) {
            if (n.model().equals("target")) {
                token.add(cyc.get(n.id()));
            }
        }
        for (Plan.Edge e : edges) {
            if (!e.from().startsWith("draft.")) {
                token.add(edgeCost.get(e));
            }
        }
        double tokenCycles = token.total();
        double tps = f / tokenCycles;
        Plan.Speculative spec = null;
        double effective = tps;
        if (d != null) {
            double draftToken = d.pass(1, ctx).total();
            int k = cand.specK();
            double verify = tokenCycles(t, slots, k + 1, ctx);
            double exchange = exchangeCycles(t, k);
            double rate = Planner.expectedTokens(req.acceptRate(), k) * f / (k * draftToken + verify + exchange);
            spec = new Plan.Speculative(d.m.name(), k, req.acceptRate(),
                    Math.round(Planner.expectedTokens(req.acceptRate(), k) * 1000) / 1000.0, Plan.round(draftToken),
                    Plan.round(verify), Plan.round(exchange), Plan.round(rate),
                    Math.round(rate / tps * 1000) / 1000.0);
            effective = rate;
        }
        int b = req.batch();
        double batchCycles = b == 1 ? tokenCycles : tokenCycles(t, slots, b, ctx);
        double aggregate = b * f / batchCycles;
        int prefillN = Math.max(1, Math.min(ctx, 4096));
        double prefillCycles = t.prefillCycles(prefillN) + links(t, slots, prefillN).total();
        double prefillTps = prefillN * f / prefillCycles;
        double ttft = ctx / prefillTps + tokenCycles / f;
        Plan.Performance perf = new Plan.Performance(Plan.round(tokenCycles), tokenCycles / f, Plan.round(tps),
                Plan.CycleBreakdown.of(token), bottleneck(token, nodes, cyc), Plan.round(batchCycles),
                "every layer shares the mesh: a batch of " + b + " runs as one " + b + "-token pass", b,
                Plan.round(aggregate), Plan.round(prefillTps), prefillN, "MeshGEMM over the "
                + Math.min(t.r(), t.c()) + "x" + Math.min(t.r(), t.c()) + " square", ttft, spec,
                Plan.round(effective));
        List<Plan.Wafer> wafers = new ArrayList<>();
        for (int w = 0; w < cand.wafers(); w++) {
            long used = 0;
            java.util.Set<Plan.Rect> rects = new java.util.HashSet<>();
            double sramBytes = 0;
            int lo = Integer.MAX_VALUE;
            int hi = -1;
            int dlo = Integer.MAX_VALUE;
            int dhi = -1;
            for (Plan.Node n : nodes) {
                if (n.wafer() != w) {
                    continue;
                }
                rects.add(n.rect());
                sramBytes += (double) n.pes() * (n.sram().weightsPerPe() + n.sram().kvPerPe());
                if (n.layer() != null && n.model().equals("target")) {
                    lo = Math.min(lo, n.layer());
                    hi = Math.max(hi, n.layer());
                } else if (n.layer() != null) {
                    dlo = Math.min(dlo, n.layer());
                    dhi = Math.max(dhi, n.layer());
                }
            }
            // the draft's mesh lies inside the first tile: count each PE once
            for (Plan.Rect r : rects) {
                boolean inside = false;
                for (Plan.Rect o : rects) {
                    inside |= !o.equals(r) && o.row() <= r.row() && o.col() <= r.col()
                            && o.row() + o.rows() >= r.row() + r.rows() && o.col() + o.cols() >= r.col() + r.cols();
                }
                if (!inside) {
                    used += r.pes();
                    sramBytes += (double) r.pes() * (reserved + act);
                }
            }
            long pes = dev.pesPerWafer();
            long usedSram = Math.round(sramBytes);
            wafers.add(new Plan.Wafer(w, pes, used, Math.round(1000.0 * used / pes) / 1000.0, pes * cap, usedSram,
                    Math.round(1000.0 * usedSram / (pes * cap)) / 1000.0, hi < 0 ? "" : lo + "-" + hi,
                    dhi < 0 ? "" : dlo + "-" + dhi));
        }
        List<String> warnings = new ArrayList<>();
        if (ctx > t.m.maxPositions()) {
            warnings.add("ctx " + ctx + " exceeds " + t.m.name() + "'s max_position_embeddings " + t.m.maxPositions());
        }
        Plan.Mesh meshInfo = new Plan.Mesh(t.r(), t.c(), t.mesh.tilesDown(), t.mesh.tilesAcross(), d == null ? null : d.r(), d == null ? null : d.c(), span,
                t.m.moe() == null ? null : t.expertGrid()[0], t.m.moe() == null ? null : t.expertGrid()[1]);
        Plan.Shapes shapes = new Plan.Shapes(tiled ? TILED : MAPPING, new Plan.BlockShape(t.r(), t.c(), t.c(), t.c(), t.c(), 1),
                d == null ? null : new Plan.BlockShape(d.r(), d.c(), d.c(), d.c(), d.c(), 1), meshInfo);
        Plan.Search search = new Plan.Search((tiled ? "tiled " : "") + "mesh mapping: " + (req.wafers() > 0 ? "requested wafers" : "fastest "
                + "over wafer counts") + ", meshes " + meshes().size() + ", MoE span " + span, tried.size()
                * (long) meshes().size(), tried, req.wafers() > 0 ? null : "fastest of " + tried.size()
                + " wafer count(s) from the SRAM bound " + tried.get(0), null);
        Plan plan = new Plan(Plan.SCHEMA, modelInfo(t), d == null ? null : modelInfo(d),
                new Plan.Request(dev.id(), req.wafers() > 0 ? req.wafers() : null, cand.wafers(), req.dtype().label(),
                        ctx, b, d == null ? null : d.m.name(), d == null ? null : req.acceptRate(),
                        d == null || req.specK() == 0 ? null : req.specK()),
                new Plan.DeviceSpecInfo(dev.id(), dev.name(), dev.params()),
                new Plan.CalibrationInfo(req.calibration().stepCycles(), req.calibration().computeEfficiency(),
                        req.calibration().partialSumBytes(), req.calibration().prefillChunk(),
                        req.calibration().stepCyclesSource()),
                shapes, wafers, nodes, edges, perf, List.of(), warnings, search);
        List<Plan.Check> checks = PlanValidator.check(plan, dev);
        for (Plan.Check ch : checks) {
            if (!ch.ok()) {
                throw new IllegalStateException("internal error: the mesh planner produced an illegal plan: "
                        + ch.name() + ": " + ch.detail());
            }
        }
        return new Plan(plan.schema(), plan.model(), plan.draft(), plan.request(), plan.device(), plan.calibration(),
                plan.shapes(), plan.wafers(), plan.nodes(), plan.edges(), plan.performance(), checks,
                plan.warnings(), plan.search());
    }

    private Plan.ModelInfo modelInfo(Side s) {
        ModelShape m = s.m;
        return new Plan.ModelInfo(m.name(), m.architecture(), m.hidden(), m.intermediate(), m.layers(), m.heads(),
                m.kvHeads(), m.headDim(), m.vocab(), m.tiedEmbeddings(), m.qkvBias(), m.parameterCount(),
                Math.round(s.weightBytes()), m.kvBytesPerTokenPerLayer());
    }

    /** Route of a hand-off between slots of the target's layout: {points, hops}. */
    private record Route(List<Plan.Point> points, int hops) {
    }

    private Route route(Side geo, int from, int to, Plan.Rect fromRect, Plan.Rect toRect) {
        int wa = slotWafer(geo, from);
        int wz = slotWafer(geo, to);
        List<Plan.Point> pts = new ArrayList<>();
        pts.add(new Plan.Point(wa, fromRect.row(), fromRect.col()));
        int hops;
        if (wa != wz) {
            // leave through the east edge, enter through the west edge (the validator's rule)
            pts.add(new Plan.Point(wa, fromRect.row(), dev.peCols() - 1));
            pts.add(new Plan.Point(wz, toRect.row(), 0));
            if (toRect.col() > 0) {
                pts.add(new Plan.Point(wz, toRect.row(), toRect.col()));
            }
            hops = dev.peCols() - 1 - fromRect.col() + toRect.col();
        } else {
            if (fromRect.col() != toRect.col()) {
                pts.add(new Plan.Point(wa, fromRect.row(), toRect.col()));
            }
            if (fromRect.row() != toRect.row()) {
                pts.add(new Plan.Point(wa, toRect.row(), toRect.col()));
            }
            hops = Math.abs(fromRect.row() - toRect.row()) + Math.abs(fromRect.col() - toRect.col());
        }
        return new Route(pts, hops);
    }

    private Cycles routeCycles(Route r, boolean inter, double bytes, int links) {
        Cycles c = new Cycles();
        if (inter) {
            cost.interWafer(c, bytes);
            c.hops += r.hops() * cost.hop;
        } else if (r.hops() > 0) {
            cost.stream(c, bytes, links, r.hops());
        }
        return c;
    }

    private final Map<Plan.Edge, Cycles> edgeCost = new java.util.IdentityHashMap<>();

    /**
     * Adds a model's nodes and streams. {@code geo} is the target's layout (slots, tiles); a draft ({@code s != geo})
     * is stacked in slot 0 at its own mesh size.
     */
    private void addModel(List<Plan.Node> nodes, Map<String, Cycles> cyc, List<Plan.Edge> edges, Side s, Side geo,
                          int[] slotOfLayer, int lastSlot, double act) {
        boolean draft = s != geo;
        java.util.function.IntFunction<Plan.Rect> rectOf = slot -> {
            Plan.Rect r = slotRect(geo, slot);
            return draft ? new Plan.Rect(r.row(), r.col(), s.r(), s.c()) : r;
        };
        java.util.function.IntUnaryOperator waferOf = slot -> slotWafer(geo, slot);
        int ctx = req.ctx();
        sharedActivations = act;
        String p = s.prefix;
        List<String> order = new ArrayList<>();
        List<Integer> orderWafer = new ArrayList<>();
        String embedId = p + (s.m.tiedEmbeddings() ? "embed_lm_head" : "embed");
        NodeKind embedKind = s.m.tiedEmbeddings() ? NodeKind.EMBEDDING_LM_HEAD : NodeKind.EMBEDDING;
        double embW = s.m.tiedEmbeddings() ? s.headWeightsPerPe() : s.embedWeightsPerPe();
        Cycles embC = s.embed(1);
        if (s.m.tiedEmbeddings()) {
            embC.add(s.head(1));
        }
        currentRect = rectOf.apply(0);
        add(nodes, cyc, s, embedId, embedKind, null, 0, embW, 0, act, (double) s.m.embeddingParams() * wb, 0,
                s.m.tiedEmbeddings() ? 2.0 * s.h * s.m.vocab() : 0, embC);
        order.add(embedId);
        orderWafer.add(0);
        long kvTok = s.m.kvBytesPerTokenPerLayer();
        for (int l = 0; l < s.m.layers(); l++) {
            int slot = slotOfLayer[l];
            int w = waferOf.applyAsInt(slot);
            currentRect = rectOf.apply(slot);
            String id = p + "L" + l + ".";
            double normBytes = s.h * 2.0;
            add(nodes, cyc, s, id + "norm1", NodeKind.NORM, l, w, s.normWeightsPerPe(), 0, 0, normBytes, 0,
                    4.0 * s.h, s.norm(1));
            add(nodes, cyc, s, id + "attn", NodeKind.ATTENTION, l, w, s.attnWeightsPerPe(), 0, 0,
                    s.m.attentionParams() * wb, 0, 2.0 * s.m.attentionParams(), s.attention(1));
            add(nodes, cyc, s, id + "kv", NodeKind.KV_CACHE, l, w, 0, s.kvPerPe(), 0, 0,
                    (double) req.batch() * ctx * kvTok, 4.0 * ctx * s.q, s.kvCache(1, ctx));
            add(nodes, cyc, s, id + "norm2", NodeKind.NORM, l, w, s.normWeightsPerPe(), 0, 0, normBytes, 0,
                    4.0 * s.h, s.norm(1));
            order.add(id + "norm1");
            order.add(id + "attn");
            order.add(id + "kv");
            order.add(id + "norm2");
            for (int i = 0; i < 4; i++) {
                orderWafer.add(slot);
            }
            if (s.m.isMoe(l)) {
                add(nodes, cyc, s, id + "router", NodeKind.ROUTER, l, w, s.routerWeightsPerPe(), 0, 0,
                        s.m.routerParams() * wb, 0, 2.0 * s.m.routerParams(), s.router(1));
                order.add(id + "router");
                orderWafer.add(slot);
                long expertsTotal = (long) (s.m.moe().experts() + s.m.moe().sharedExperts()) * s.m.expertParams();
                for (int j = 0; j < s.span; j++) {
                    long share = expertsTotal / s.span + (j == 0 ? expertsTotal % s.span : 0);
                    Cycles ec = j == 0 ? s.experts(1) : new Cycles();   // the group's experts run in parallel
                    String eid = id + "experts" + (s.span > 1 ? ".w" + (w + j) : "");
                    add(nodes, cyc, s, eid, NodeKind.EXPERT, l, w + j, s.expertWeightsPerPe(), 0, 0,
                            (double) share * wb, 0, j == 0 ? 6.0 * s.h * s.m.moe().expertIntermediate()
                                    * (s.m.moe().topK() + s.m.moe().sharedExperts()) : 0, ec);
                    if (j == 0) {
                        order.add(eid);
                        orderWafer.add(slot);
                    }
                }
            } else {
                add(nodes, cyc, s, id + "mlp", NodeKind.MLP, l, w, s.mlpWeightsPerPe(l), 0, 0,
                        s.m.denseMlpParams() * wb, 0, 6.0 * s.h * s.ff, s.mlp(l, 1));
                order.add(id + "mlp");
                orderWafer.add(slot);
            }
        }
        int last = waferOf.applyAsInt(lastSlot);
        currentRect = rectOf.apply(lastSlot);
        add(nodes, cyc, s, p + "final_norm", NodeKind.FINAL_NORM, null, last, s.normWeightsPerPe(), 0, 0,
                s.h * 2.0, 0, 4.0 * s.h, s.norm(1));
        order.add(p + "final_norm");
        orderWafer.add(lastSlot);
        if (!s.m.tiedEmbeddings()) {
            add(nodes, cyc, s, p + "lm_head", NodeKind.LM_HEAD, null, last, s.headWeightsPerPe(), 0, 0,
                    (double) s.m.embeddingParams() * wb, 0, 2.0 * s.h * s.m.vocab(), s.head(1));
            order.add(p + "lm_head");
            orderWafer.add(lastSlot);
        }
        order.add(embedId);
        orderWafer.add(0);
        for (int i = 1; i < order.size(); i++) {
            int sa = orderWafer.get(i - 1);
            int sz = orderWafer.get(i);
            String from = order.get(i - 1);
            String to = order.get(i);
            double bytes = to.equals(embedId) ? 4 : s.h * (double) ACT_BYTES;
            Plan.Rect ra = rectOf.apply(sa);
            Plan.Rect rz = rectOf.apply(sz);
            Route r = sa == sz ? new Route(List.of(new Plan.Point(waferOf.applyAsInt(sa), ra.row(), ra.col())), 0)
                    : route(geo, sa, sz, ra, rz);
            boolean inter = waferOf.applyAsInt(sa) != waferOf.applyAsInt(sz);
            int links = inter ? 1 : Math.min(ra.rows(), rz.rows());
            Cycles ec = routeCycles(r, inter, bytes, links);
            Plan.Edge e = new Plan.Edge(from, to, bytes, links, r.hops(), inter, Plan.CycleBreakdown.of(ec),
                    List.copyOf(r.points()));
            edges.add(e);
            edgeCost.put(e, ec);
        }
    }

    private void add(List<Plan.Node> nodes, Map<String, Cycles> cyc, Side s, String id, NodeKind kind, Integer layer,
                     int wafer, double weightsPe, double kvPe, double actPe, double weightBytes, double kvBytes,
                     double flops, Cycles c) {
        Plan.Rect rect = currentRect;
        long w = Math.round(Math.ceil(weightsPe));
        long k = Math.round(Math.ceil(kvPe));
        long a = Math.round(Math.ceil(sharedActivations));   // one buffer set per wafer, shared by its partitions
        nodes.add(new Plan.Node(id, kind, s.role, layer, null, wafer, rect, rect.pes(),
                new Plan.Sram(w, k, a, reserved, reserved + w + k + a, cap), Math.round(weightBytes),
                Math.round(kvBytes), Math.round(flops), Math.round(weightBytes + kvBytes), Plan.CycleBreakdown.of(c),
                0));
        cyc.put(id, c);
    }

    private String bottleneck(Cycles token, List<Plan.Node> nodes, Map<String, Cycles> cyc) {
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
        for (Plan.Node n : nodes) {
            if (n.model().equals("target")) {
                byKind.merge(n.kind(), cyc.get(n.id()).total(), Double::sum);
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
