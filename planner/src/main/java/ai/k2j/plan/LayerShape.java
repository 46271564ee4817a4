package ai.k2j.plan;

/**
 * The partition shapes of one transformer layer, the unit the search chooses. A layer is a block of
 * {@code rows} PE rows laid out, in the direction the activations flow, as
 * {@code [norm 1 col | attention | KV cache | norm 1 col | MLP]}. The attention partition holds q/k/v/o; the
 * KV partition holds this layer's cache and computes scores, softmax and the weighted sum; the MLP partition
 * holds gate/up/down. For an MoE layer the MLP columns are a grid of {@code expertRows x expertCols} expert
 * tiles (each an MLP partition) next to a 1-column router strip.
 */
public record LayerShape(int rows, int attnCols, int kvCols, int mlpCols) {
    public static final int NORM_COLS = 1;

    public LayerShape {
        if (rows < 1 || attnCols < 1 || kvCols < 1 || mlpCols < 1) {
            throw new IllegalArgumentException("layer shape sizes must be positive: " + rows + "x(" + attnCols + ","
                    + kvCols + "," + mlpCols + ")");
        }
    }

    public int width() {
        return 2 * NORM_COLS + attnCols + kvCols + mlpCols;
    }

    public long pes() {
        return (long) rows * width();
    }
}
