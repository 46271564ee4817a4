package ai.k2j.kernels.cuda;

import ai.k2j.kernels.Rows;

/** Argument checks the CUDA ops share; messages name the op and the argument. */
final class Checks {
    private Checks() {
    }

    static void positive(int v, String what) {
        if (v < 1) {
            throw new IllegalArgumentException(what + " must be >= 1, got " + v);
        }
    }

    static boolean overlaps(long a, long aFloats, long b, long bFloats) {
        return a < b + 4 * bFloats && b < a + 4 * aFloats;
    }

    static void need(DevBuffer b, long floats, String what) {
        if (b.floats < floats) {
            throw new IllegalArgumentException(what + " holds " + b.floats + " floats, the op needs " + floats);
        }
    }

    /** Keys and values for the cache: views of one buffer with one stride, each kvDim wide. */
    static void checkKvViews(String op, Rows keys, Rows values, int kvDim) {
        if (keys.buffer() != values.buffer() || keys.stride() != values.stride()) {
            throw new IllegalArgumentException(op + ": keys and values must be views of one buffer with one stride");
        }
        if (keys.width() != kvDim || values.width() != kvDim) {
            throw new IllegalArgumentException(op + ": key/value views are " + keys.width() + "/" + values.width()
                    + " wide, the cache's kvDim is " + kvDim);
        }
    }
}
