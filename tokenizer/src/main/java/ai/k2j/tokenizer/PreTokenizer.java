package ai.k2j.tokenizer;

import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One pre-tokenization step: splits (or rewrites) the range {@code s[from, to)} and hands each
 * non-empty result to the next stage. Stateless and thread-safe.
 */
interface PreTokenizer {
    /** Receives a non-empty piece. */
    interface Sink {
        void accept(String s, int from, int to);
    }

    void run(String s, int from, int to, Sink next);

    /** Runs {@code steps} in order (HF's Sequence pre-tokenizer). */
    static PreTokenizer sequence(List<PreTokenizer> steps) {
        if (steps.size() == 1) {
            return steps.getFirst();
        }
        PreTokenizer[] a = steps.toArray(PreTokenizer[]::new);
        return (s, from, to, next) -> runFrom(a, 0, s, from, to, next);
    }

    private static void runFrom(PreTokenizer[] a, int k, String s, int from, int to, Sink next) {
        if (k == a.length) {
            next.accept(s, from, to);
        } else {
            a[k].run(s, from, to, (s2, f2, t2) -> runFrom(a, k + 1, s2, f2, t2, next));
        }
    }

    enum Behavior { REMOVED, ISOLATED, MERGED_WITH_PREVIOUS, MERGED_WITH_NEXT, CONTIGUOUS }

    /** HF's Split: the pattern's matches (or, inverted, the gaps) become pieces per {@code behavior}. */
    record Split(Pattern pattern, Behavior behavior, boolean invert) implements PreTokenizer {
        @Override
        public void run(String s, int from, int to, Sink next) {
            if (behavior == Behavior.ISOLATED && !invert) {
                // fast path: every match and every gap is its own piece
                Matcher m = pattern.matcher(s).region(from, to);
                int prev = from;
                while (m.find()) {
                    int a = m.start();
                    int b = m.end();
                    if (prev < a) {
                        next.accept(s, prev, a);
                    }
                    if (a < b) {
                        next.accept(s, a, b);
                    }
                    prev = b;
                }
                if (prev < to) {
                    next.accept(s, prev, to);
                }
                return;
            }
            // general path: (start, end, isMatch) triples, then HF's behavior folding
            java.util.ArrayList<int[]> parts = new java.util.ArrayList<>();
            Matcher m = pattern.matcher(s).region(from, to);
            int prev = from;
            while (m.find()) {
                if (prev != m.start()) {
                    parts.add(new int[] {prev, m.start(), invert ? 1 : 0});
                }
                parts.add(new int[] {m.start(), m.end(), invert ? 0 : 1});
                prev = m.end();
            }
            if (prev != to) {
                parts.add(new int[] {prev, to, invert ? 1 : 0});
            }
            java.util.ArrayList<int[]> out = new java.util.ArrayList<>(); // {start, end, remove}
            switch (behavior) {
                case ISOLATED -> parts.forEach(p -> out.add(new int[] {p[0], p[1], 0}));
                case REMOVED -> parts.forEach(p -> out.add(new int[] {p[0], p[1], p[2]}));
                case CONTIGUOUS -> {
                    boolean previousMatch = false;
                    for (int[] p : parts) {
                        boolean isMatch = p[2] == 1;
                        if (isMatch == previousMatch && !out.isEmpty()) {
                            out.getLast()[1] = p[1];
                        } else {
                            out.add(new int[] {p[0], p[1], 0});
                        }
                        previousMatch = isMatch;
                    }
                }
                case MERGED_WITH_PREVIOUS -> {
                    boolean previousMatch = false;
                    for (int[] p : parts) {
                        boolean isMatch = p[2] == 1;
                        if (isMatch && !previousMatch && !out.isEmpty()) {
                            out.getLast()[1] = p[1];
                        } else {
                            out.add(new int[] {p[0], p[1], 0});
                        }
                        previousMatch = isMatch;
                    }
                }
                case MERGED_WITH_NEXT -> {
                    boolean previousMatch = false;
                    java.util.ArrayList<int[]> rev = new java.util.ArrayList<>();
                    for (int i = parts.size() - 1; i >= 0; i--) {
                        int[] p = parts.get(i);
                        boolean isMatch = p[2] == 1;
                        if (isMatch && !previousMatch && !rev.isEmpty()) {
                            rev.getLast()[0] = p[0];
                        } else {
                            rev.add(new int[] {p[0], p[1], 0});
                        }
                        previousMatch = isMatch;
                    }
                    for (int i = rev.size() - 1; i >= 0; i--) {
                        out.add(rev.get(i));
                    }
                }
            }
            for (int[] p : out) {
                if (p[2] == 0 && p[0] < p[1]) {
                    next.accept(s, p[0], p[1]);
                }
            }
        }
    }

    /** GPT-2's pattern, used by ByteLevel when {@code use_regex} is true. */
    String GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

    /**
     * HF's ByteLevel pre-tokenizer: optional prefix space, optional GPT-2 split, then each piece's
     * UTF-8 bytes rewritten into the byte-level alphabet.
     */
    record ByteLevelStep(boolean addPrefixSpace, Pattern regex) implements PreTokenizer {
        @Override
        public void run(String s, int from, int to, Sink next) {
            if (addPrefixSpace && s.charAt(from) != ' ') {
                s = " " + s.substring(from, to);
                from = 0;
                to = s.length();
            }
            if (regex == null) {
                emit(s, from, to, next);
            } else {
                new Split(regex, Behavior.ISOLATED, false).run(s, from, to, (s2, f2, t2) -> emit(s2, f2, t2, next));
            }
        }

        private static void emit(String s, int from, int to, Sink next) {
            StringBuilder sb = new StringBuilder((to - from) * 2);
            ByteLevel.appendMapped(s, from, to, sb);
            String mapped = sb.toString();
            next.accept(mapped, 0, mapped.length());
        }
    }
}
