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
    private final int longestStop;
    private final StringBuilder text = new StringBuilder();
    private int emitted;
    private boolean stopped;

    public StopStrings(List<String> stops) {
        this.stops = stops.stream().filter(s -> !s.isEmpty()).distinct().toArray(String[]::new);
        int longest = 0;
        for (String s : this.stops) {
            longest = Math.max(longest, s.length());
        }
        this.longestStop = longest;
    }

    /** Appends decoded text; true once a stop string occurs (the text then ends right before it). */
    public boolean append(String piece) {
        if (stopped || piece.isEmpty()) {
            return stopped;
        }
        // a new occurrence must end inside the new piece
        int searchFrom = Math.max(0, text.length() - longestStop + 1);
        text.append(piece);
        int first = -1;
        for (String stop : stops) {
            int at = text.indexOf(stop, searchFrom);
            if (at >= 0 && (first < 0 || at < first)) {
                first = at;
            }
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
        int len = text.length();
        for (String stop : stops) {
            for (int k = Math.min(stop.length() - 1, len); k > best; k--) {
                if (endsWithPrefix(stop, k)) {
                    best = k;
                    break;
                }
            }
        }
        return best;
    }

    private boolean endsWithPrefix(String stop, int k) {
        int start = text.length() - k;
        for (int i = 0; i < k; i++) {
            if (text.charAt(start + i) != stop.charAt(i)) {
                return false;
            }
        }
        return true;
    }
}
