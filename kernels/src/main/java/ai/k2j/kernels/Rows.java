package ai.k2j.kernels;

/**
 * A view of columns {@code [offset, offset + width)} of every row of a row-major float32 {@link Buffer} whose rows
 * are {@code stride} floats apart: e.g. the key columns of a fused q|k|v activation. Models make their views once
 * (at load), so passing them to ops allocates nothing per step.
 */
public record Rows(Buffer buffer, int offset, int stride, int width) {
    public Rows {
        if (buffer == null) {
            throw new IllegalArgumentException("rows view without a buffer");
        }
        if (offset < 0 || width <= 0 || stride <= 0 || offset + width > stride) {
            throw new IllegalArgumentException("rows view [" + offset + ", " + (offset + width)
                    + ") does not fit rows of stride " + stride);
        }
    }

    /** All {@code width} columns of a dense {@code [n, width]} buffer. */
    public static Rows of(Buffer buffer, int width) {
        return new Rows(buffer, 0, width, width);
    }

    /** Columns {@code [offset, offset + width)} of rows of {@code stride} floats. */
    public static Rows of(Buffer buffer, int offset, int stride, int width) {
        return new Rows(buffer, offset, stride, width);
    }
}
