package ai.k2j.plan;

import ai.k2j.plan.CostModel.Cycles;

import static ai.k2j.plan.CostModel.ACT_BYTES;
import static ai.k2j.plan.CostModel.ceilDiv;

/**
 * The embedding table and the output head, each a full-width band of a wafer. The head band is
 * {@code [final norm 1 col | logits GEMV]}: hidden split over the band's rows, vocabulary over its columns,
 * then a greedy argmax along the band. The embedding band splits hidden over its columns and the vocabulary
 * over its rows, so a lookup reads one PE row. A tied model keeps one table, in the head layout, for both.
 */
final class HeadModel {
    final ModelShape m;
    final CostModel cost;
    final double weightBytes;
    final int gridCols;
    final long h, vocab;

    HeadModel(ModelShape m, CostModel cost, WeightDType dtype, int gridCols) {
        this.m = m;
        this.cost = cost;
        this.weightBytes = dtype.bytesPerWeight();
        this.gridCols = gridCols;
        this.h = m.hidden();
        this.vocab = m.vocab();
    }

    // ---- embedding band (untied) ----

    int embedCols() {
        return (int) Math.min(gridCols, h);
    }

    double embedWeightsPerPe(int rows) {
        return ceilDiv(vocab, rows) * ceilDiv(h, embedCols()) * weightBytes;
    }

    double embedActivationsPerPe(int t) {
        return 2.0 * ceilDiv(h, embedCols()) * t * ACT_BYTES;
    }

    /** Fewest rows for which the embedding fits, or -1. */
    int embedRows(long capacity, long reserved, int t, int maxRows) {
        for (int r = 1; r <= maxRows; r++) {
            if (reserved + embedWeightsPerPe(r) + embedActivationsPerPe(t) <= capacity) {
                return r;
            }
        }
        return -1;
    }

    Cycles embedCycles(int t) {
        Cycles c = new Cycles();
        cost.elementwise(c, (double) ceilDiv(h, embedCols()) * t);  // read the row slice
        c.steps += cost.step;                                      // token id arrives, lookup task runs
        return c;
    }

    // ---- head band: final norm strip + logits ----

    int headCols() {
        return (int) Math.min(gridCols - 1, vocab);
    }

    double headWeightsPerPe(int rows) {
        return ceilDiv(h, rows) * ceilDiv(vocab, headCols()) * weightBytes;
    }

    double headActivationsPerPe(int rows, int t) {
        int psum = cost.cal.partialSumBytes();
        return t * (ceilDiv(h, rows) * (double) ACT_BYTES + ceilDiv(vocab, headCols()) * (ACT_BYTES + 2.0 * psum));
    }

    int headRows(long capacity, long reserved, int t, int maxRows) {
        for (int r = 1; r <= maxRows; r++) {
            if (reserved + headWeightsPerPe(r) + headActivationsPerPe(r, t) <= capacity) {
                return r;
            }
        }
        return -1;
    }

    double finalNormWeightsPerPe(int rows) {
        return ceilDiv(h, rows) * 2.0;
    }

    double finalNormActivationsPerPe(int rows, int t) {
        return 3.0 * ceilDiv(h, rows) * t * ACT_BYTES;
    }

    Cycles finalNormCycles(int rows, int t) {
        Cycles c = new Cycles();
        cost.elementwise(c, 2.0 * ceilDiv(h, rows) * t);
        cost.allreduce(c, rows, Math.ceil(t * 4.0 / CostModel.WAVELET_BYTES));
        return c;
    }

    Cycles headCycles(int rows, int t) {
        Cycles c = new Cycles();
        int cols = headCols();
        cost.gemv(c, h, vocab, rows, cols, t, true, false);                 // logits, reduced to one row
        cost.elementwise(c, (double) ceilDiv(vocab, cols) * t);             // local argmax
        cost.reduce(c, cols, CostModel.wavelets(2.0 * t, 4));               // (value, index) along the row
        return c;
    }

    /** Buffers for looked-up vectors of {@code t} tokens in a tied table (the vector is split over the band's rows). */
    double tiedLookupActivationsPerPe(int rows, int t) {
        return 2.0 * ceilDiv(h, rows) * t * ACT_BYTES;
    }

    /** Fewest rows of a tied table: logits buffers for {@code t} tokens, lookup buffers for {@code lookupT}. */
    int tiedRows(long capacity, long reserved, int t, int lookupT, int maxRows) {
        for (int r = 1; r <= maxRows; r++) {
            if (reserved + headWeightsPerPe(r) + headActivationsPerPe(r, t) + tiedLookupActivationsPerPe(r, lookupT)
                    <= capacity) {
                return r;
            }
        }
        return -1;
    }

    /** Lookup in a tied table (head layout): the token's column holds the vector, split over the band's rows. */
    Cycles tiedLookupCycles(int rows, int t) {
        Cycles c = new Cycles();
        cost.elementwise(c, (double) ceilDiv(h, rows) * t);
        c.steps += cost.step;
        return c;
    }

    double headFlopsPerToken() {
        return 2.0 * h * vocab + vocab;
    }

    double embeddingBytes() {
        return (double) vocab * h * weightBytes;
    }
}
