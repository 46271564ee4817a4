package ai.k2j.plan;

import ai.k2j.plan.CostModel.Cycles;

import static ai.k2j.plan.CostModel.ACT_BYTES;
import static ai.k2j.plan.CostModel.ceilDiv;

/**
 * SRAM, FLOPs and cycles of each partition of a dense transformer layer for a given {@link LayerShape}. The
 * activation vector enters the layer distributed over the block's rows (hidden/rows values per row) and leaves
 * it the same way, so blocks chain without a transpose. GEMVs alternate orientation (WaferLLM's MeshGEMV):
 * q/k/v, o and gate/up reduce along columns, down reduces along rows.
 */
final class LayerModel {
    /** The partitions of a layer, in the order a token visits them. */
    enum Part { NORM1, ATTN, KV, NORM2, MLP }

    final ModelShape m;
    final CostModel cost;
    final double weightBytes;  // bytes per weight
    final long h, q, kv, ff;

    LayerModel(ModelShape m, CostModel cost, WeightDType dtype) {
        this.m = m;
        this.cost = cost;
        this.weightBytes = dtype.bytesPerWeight();
        this.h = m.hidden();
        this.q = m.qDim();
        this.kv = m.kvDim();
        this.ff = m.intermediate();
    }

    int cols(LayerShape s, Part p) {
        return switch (p) {
            case NORM1, NORM2 -> LayerShape.NORM_COLS;
            case ATTN -> s.attnCols();
            case KV -> s.kvCols();
            case MLP -> s.mlpCols();
        };
    }

    // ---- SRAM per PE (the most loaded PE of the partition), bytes ----

    /** Weights of the most loaded PE of the partition. */
    double weightsPerPe(LayerShape s, Part p) {
        int r = s.rows();
        return switch (p) {
            case NORM1, NORM2 -> ceilDiv(h, r) * 2.0;
            case ATTN -> ceilDiv(h, r) * ceilDiv(q + 2 * kv, s.attnCols()) * weightBytes
                    + (m.qkvBias() ? ceilDiv(q + 2 * kv, s.attnCols()) * 2.0 : 0)
                    + ceilDiv(q, r) * ceilDiv(h, s.attnCols()) * weightBytes;
            case KV -> 0;
            case MLP -> ceilDiv(h, r) * ceilDiv(2 * ff, s.mlpCols()) * weightBytes
                    + ceilDiv(ff, s.mlpCols()) * ceilDiv(h, r) * weightBytes;
        };
    }

    /** KV cache bytes of the most loaded PE for {@code sequences} sequences of {@code ctx} tokens. */
    double kvPerPe(LayerShape s, Part p, int ctx, int sequences) {
        if (p != Part.KV) {
            return 0;
        }
        return (double) sequences * ceilDiv(ctx, s.kvCols()) * ceilDiv(2 * kv, s.rows()) * ACT_BYTES;
    }

    /** Activation buffers for a pass of {@code t} tokens (inputs, outputs, double-buffered partial sums). */
    double activationsPerPe(LayerShape s, Part p, int t, int ctx) {
        int r = s.rows();
        int psum = cost.cal.partialSumBytes();
        return switch (p) {
            case NORM1, NORM2 -> 3.0 * ceilDiv(h, r) * t * ACT_BYTES;
            case ATTN -> t * (ceilDiv(h, r) * ACT_BYTES + ceilDiv(q + 2 * kv, s.attnCols()) * (ACT_BYTES + 2.0 * psum)
                    + ceilDiv(q, r) * ACT_BYTES + ceilDiv(h, s.attnCols()) * (ACT_BYTES + 2.0 * psum));
            case KV -> t * (ceilDiv(q, r) * (ACT_BYTES + 2.0 * psum)
                    + ceilDiv(ctx, s.kvCols()) * (double) qHeadsPerRow(r) * 4);
            case MLP -> t * (2.0 * ceilDiv(h, r) * ACT_BYTES + ceilDiv(2 * ff, s.mlpCols()) * (ACT_BYTES + 2.0 * psum)
                    + ceilDiv(h, r) * 2.0 * psum);
        };
    }

    /** Query heads whose scores a row of the KV partition computes (rows split the kv dimension). */
    long qHeadsPerRow(int rows) {
        int group = m.heads() / m.kvHeads();
        return rows <= m.kvHeads() ? ceilDiv(m.kvHeads(), rows) * group : group;
    }

    /** Rows a kv head's dimensions are spread over (partial scores are all-reduced across them). */
    int rowsPerKvHead(int rows) {
        long dimsPerRow = ceilDiv(kv, rows);
        return (int) Math.max(1, ceilDiv(m.headDim(), dimsPerRow));
    }

    // ---- work per token ----

    /** FLOPs per token (2 per multiply-add) of a partition, attending {@code ctx} positions. */
    double flopsPerToken(Part p, int ctx) {
        return switch (p) {
            case NORM1, NORM2 -> 4.0 * h;
            case ATTN -> 2.0 * (h * (q + 2 * kv) + q * h) + 6.0 * (q + kv);
            case KV -> 4.0 * ctx * q + 5.0 * ctx * m.heads();
            case MLP -> 6.0 * h * ff + 4.0 * ff;
        };
    }

    /** Bytes a partition reads from SRAM (weights, cache) and sends on the fabric per token. */
    double bytesMovedPerToken(Part p, int ctx) {
        double act = ACT_BYTES;
        return switch (p) {
            case NORM1, NORM2 -> 2.0 * h + 2 * h * act;
            case ATTN -> m.attentionParams() * weightBytes + (q + 2 * kv + h) * act;
            case KV -> (double) ctx * 2 * kv * act + q * act;
            case MLP -> m.denseMlpParams() * weightBytes + h * act;
        };
    }

    /** Cycles of a partition for one pass of {@code t} tokens each attending {@code ctx} positions. */
    Cycles cycles(LayerShape s, Part p, int t, int ctx) {
        Cycles c = new Cycles();
        int r = s.rows();
        switch (p) {
            case NORM1, NORM2 -> {
                cost.elementwise(c, 2.0 * ceilDiv(h, r) * t);
                cost.allreduce(c, r, Math.ceil(t * 4.0 / CostModel.WAVELET_BYTES));
            }
            case ATTN -> {
                int ca = s.attnCols();
                cost.gemv(c, h, q + 2 * kv, r, ca, t, true, true);
                if (m.qkNorm()) {
                    cost.qkNorm(c, q, kv, m.headDim(), ca, t);
                }
                cost.elementwise(c, (m.qkvBias() ? 1.0 : 0.0) * ceilDiv(q + 2 * kv, ca) * t
                        + 3.0 * ceilDiv(q + kv, ca) * t);          // bias, RoPE on q and k
                cost.gemv(c, q, h, r, ca, t, true, true);         // o projection
                cost.elementwise(c, (double) ceilDiv(h, ca) * t);  // residual add
            }
            case KV -> {
                int ck = s.kvCols();
                long pos = ceilDiv(ctx, ck);
                long qSlice = ceilDiv(q, r);
                long heads = qHeadsPerRow(r);
                cost.broadcast(c, ck, CostModel.wavelets((double) (qSlice + 2 * ceilDiv(kv, r)) * t, ACT_BYTES));
                c.compute += (double) pos * qSlice * t / cost.fmac;                // q . k
                int g = rowsPerKvHead(r);
                if (g > 1) {
                    cost.allreduce(c, g, CostModel.wavelets((double) pos * heads * t, 4));
                }
                double stats = CostModel.wavelets((double) heads * t, 4);
                cost.allreduce(c, ck, stats);                                      // softmax max
                cost.elementwise(c, 2.0 * pos * heads * t);                        // exp, scale
                cost.allreduce(c, ck, stats);                                      // softmax sum
                c.compute += (double) pos * qSlice * t / cost.fmac;                // p . v
                cost.reduce(c, ck, CostModel.wavelets((double) qSlice * t, cost.cal.partialSumBytes()));
            }
            case MLP -> {
                int cm = s.mlpCols();
                cost.gemv(c, h, 2 * ff, r, cm, t, true, true);     // gate and up
                cost.elementwise(c, 3.0 * ceilDiv(ff, cm) * t);     // silu(gate) * up
                cost.gemv(c, ff, h, cm, r, t, false, false);       // down, reduced along rows to the exit edge
                cost.elementwise(c, (double) ceilDiv(h, r) * t);   // residual add
            }
        }
        return c;
    }

    /** One layer's cycles for a pass of t tokens: its partitions plus the streams inside the block. */
    Cycles layerCycles(LayerShape s, int t, int ctx) {
        Cycles c = new Cycles();
        for (Part p : Part.values()) {
            c.add(cycles(s, p, t, ctx));
        }
        int r = s.rows();
        cost.stream(c, h * ACT_BYTES * t, r, 1);                    // norm1 -> attention
        cost.stream(c, (q + 2 * kv) * ACT_BYTES * t, r, 1);         // attention -> kv (q, k, v)
        cost.stream(c, q * ACT_BYTES * t, r, 1);                    // kv -> attention (weighted values)
        cost.stream(c, h * ACT_BYTES * t, r, s.kvCols() + 1);       // attention -> norm2, over the kv partition
        cost.stream(c, h * ACT_BYTES * t, r, 1);                    // norm2 -> mlp
        return c;
    }

    /** Total resident weight bytes of one layer. */
    double layerWeightBytes() {
        return (m.attentionParams() + m.denseMlpParams()) * weightBytes + 2.0 * h * 2;
    }

    /** Largest SRAM use of any PE of the block, and whether it fits. */
    double maxPerPe(LayerShape s, int t, int ctx, int sequences, long reserved) {
        double max = 0;
        for (Part p : Part.values()) {
            double b = reserved + weightsPerPe(s, p) + kvPerPe(s, p, ctx, sequences) + activationsPerPe(s, p, t, ctx);
            max = Math.max(max, b);
        }
        return max;
    }
}
