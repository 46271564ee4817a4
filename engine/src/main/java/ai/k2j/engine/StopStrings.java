package ai.k2j.engine;

import java.util.List;

/**
 * The generated text, assembled piece by piece, cut at the first stop string. Text that could still turn
 * into a stop string (a tail equal to a stop string's prefix) is held back from {@link #takeSafe()} until
 * the next piece settles it, so a listener never sees part of a stop string. One per sequence, inside its
 * {@link TokenEmitter}. Not thread-safe.
 */
final class StopStrings {
    private final String[] stops;
    // Knuth-Morris-Pratt, per stop string: failure[s][i] = the longest proper prefix of stops[s][0..i] that is
    // also its suffix; matched[s] = the longest tail of the text that is a prefix of stops[s]. Each appended
    // character advances every matcher in amortized constant time, so matching stays linear in the text
    // whatever the stop strings are (a rescan per piece costs the longest stop's length each time).
    private final int[][] failure;
    private final int[] matched;
    private final StringBuilder text = new StringBuilder();
    private int emitted;
    private boolean stopped;

    public StopStrings(List<String> stops) {
        this.stops = stops.stream().filter(s -> !s.isEmpty()).distinct().toArray(String[]::new);
        this.failure = new int[this.stops.length][];
        for (int s = 0; s < this.stops.length; s++) {
            failure[s] = failureFunction(this.stops[s]);
        }
        this.matched = new int[this.stops.length];
    }

    private static int[] failureFunction(String p) {
        int[] f = new int[p.length()];
        for (int i = 1, k = 0; i < p.length(); i++) {
            while (k > 0 && p.charAt(i) != p.charAt(k)) {
                k = f[k - 1];
            }
            if (p.charAt(i) == p.charAt(k)) {
                k++;
            }
            f[i] = k;
        }
        return f;
    }

    /** Appends decoded text; true once a stop string occurs (the text then ends right before it). */
    public boolean append(String piece) {
        if (stopped || piece.isEmpty()) {
            return stopped;
        }
        int from = text.length();
        text.append(piece);
        int first = -1;
        for (int s = 0; s < stops.length; s++) {
            String stop = stops[s];
            int[] f = failure[s];
            int m = matched[s];
            for (int i = from; i < text.length(); i++) {
                char c = text.charAt(i);
                while (m > 0 && stop.charAt(m) != c) {
                    m = f[m - 1];
                }
                if (stop.charAt(m) == c) {
                    m++;
                }
                if (m == stop.length()) { // this stop's first occurrence; a later one would start later
                    int at = i + 1 - m;
                    if (first < 0 || at < first) {
                        first = at;
                    }
                    m = f[m - 1];
                    break;
                }
            }
            matched[s] = m;
        }
        if (first >= 0) {
            stopped = true;
            text.setLength(Math.max(first, emitted));
        }
        return stopped;
    }

    public boolean stopped() {
        return stopped;
    }

    /** The text not yet taken that can no longer become part of a stop string. */
    public String takeSafe() {
        int end = stopped ? text.length() : text.length() - pendingStopPrefix();
        return take(Math.max(end, emitted));
    }

    /** Everything not yet taken (at the end of generation: a held-back prefix is plain text after all). */
    public String takeAll() {
        return take(text.length());
    }

    /** The whole text so far, cut at a stop string. */
    public String text() {
        return text.toString();
    }

    private String take(int end) {
        String s = text.substring(emitted, end);
        emitted = end;
        return s;
    }

    /** Length of the longest tail of the text that is a proper prefix of some stop string. */
    private int pendingStopPrefix() {
        int best = 0;
        for (int m : matched) {
            best = Math.max(best, m);
        }
        return best;
    }
}
