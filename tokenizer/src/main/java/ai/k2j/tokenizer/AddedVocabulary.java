package ai.k2j.tokenizer;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.UnaryOperator;

/**
 * Splits added tokens out of text before the model sees it, as HF's AddedVocabulary does: one
 * leftmost-longest matcher over the non-normalized tokens runs on the raw text, then each remaining
 * piece is normalized and a second matcher runs over the normalized tokens. Matches failing the
 * single_word test, and special tokens when they are to be encoded as text, are dropped after
 * matching (so they still consume their span, as in HF).
 */
final class AddedVocabulary {

    record AddedToken(int id, String content, boolean special, boolean singleWord, boolean lstrip,
                      boolean rstrip, boolean normalized) {}

    /** A piece of input: either an added token (tokenId >= 0) or text still to be tokenized. */
    record Piece(String text, int tokenId) {}

    private final Matcher raw;
    private final Matcher normalizedMatcher;

    AddedVocabulary(List<AddedToken> tokens, UnaryOperator<String> normalizer) {
        List<AddedToken> rawTokens = new ArrayList<>();
        List<String> rawPatterns = new ArrayList<>();
        List<AddedToken> normTokens = new ArrayList<>();
        List<String> normPatterns = new ArrayList<>();
        // HF orders special tokens before the others; only relevant for duplicate patterns
        for (boolean special : new boolean[] {true, false}) {
            for (AddedToken t : tokens) {
                if (t.special() != special || t.content().isEmpty()) {
                    continue;
                }
                if (t.normalized()) {
                    normTokens.add(t);
                    normPatterns.add(normalizer.apply(t.content()));
                } else {
                    rawTokens.add(t);
                    rawPatterns.add(t.content());
                }
            }
        }
        this.raw = new Matcher(rawTokens, rawPatterns);
        this.normalizedMatcher = new Matcher(normTokens, normPatterns);
    }

    /** Where special tokens may match: {@code [start, end)} in the text given to {@link #split}. */
    interface SpecialFilter {
        boolean allows(int start, int end);

        SpecialFilter ALL = (start, end) -> true;
        SpecialFilter NONE = (start, end) -> false;
    }

    /**
     * Splits {@code text} into added-token pieces and normalized text pieces, in order. Empty text
     * pieces are dropped. With {@code splitSpecial=false}, special tokens are left in the text.
     */
    void split(String text, boolean splitSpecial, UnaryOperator<String> normalizer, Consumer<Piece> out) {
        split(text, splitSpecial ? SpecialFilter.ALL : SpecialFilter.NONE, normalizer, out);
    }

    /**
     * As {@link #split(String, boolean, UnaryOperator, Consumer)}, with special tokens split out only where
     * {@code filter} allows. A normalized piece has no exact offsets left, so specials of the normalized
     * matcher are allowed in it only when the filter allows its whole raw span.
     */
    void split(String text, SpecialFilter filter, UnaryOperator<String> normalizer, Consumer<Piece> out) {
        raw.split(text, filter, (piece, start) -> {
            if (piece.tokenId() >= 0) {
                out.accept(piece);
            } else {
                String normalized = normalizer.apply(piece.text());
                boolean allowed = filter.allows(start, start + piece.text().length());
                normalizedMatcher.split(normalized, allowed ? SpecialFilter.ALL : SpecialFilter.NONE, (p, at) -> {
                    if (p.tokenId() >= 0 || !p.text().isEmpty()) {
                        out.accept(p);
                    }
                });
            }
        });
    }

    /** Leftmost-longest multi-pattern matcher over UTF-16 text (a char trie; the sets are small). */
    private static final class Matcher {
        private static final class Node {
            final Map<Character, Node> next = new HashMap<>();
            AddedToken token;
        }

        private final Node root = new Node();
        private final boolean[] firstAscii = new boolean[128];
        private final boolean anyNonAsciiFirst;
        private final boolean empty;

        Matcher(List<AddedToken> tokens, List<String> patterns) {
            boolean nonAscii = false;
            for (int k = 0; k < tokens.size(); k++) {
                String p = patterns.get(k);
                if (p.isEmpty()) {
                    continue;
                }
                Node n = root;
                for (int i = 0; i < p.length(); i++) {
                    n = n.next.computeIfAbsent(p.charAt(i), ch -> new Node());
                }
                if (n.token == null) {
                    n.token = tokens.get(k);
                }
                char f = p.charAt(0);
                if (f < 128) {
                    firstAscii[f] = true;
                } else {
                    nonAscii = true;
                }
            }
            this.anyNonAsciiFirst = nonAscii;
            this.empty = root.next.isEmpty();
        }

        /** {@code out} gets each piece with its start offset in {@code s}. */
        void split(String s, SpecialFilter filter, java.util.function.ObjIntConsumer<Piece> out) {
            if (empty || s.isEmpty()) {
                out.accept(new Piece(s, -1), 0);
                return;
            }
            int n = s.length();
            int startOffset = 0; // end of the last emitted piece
            int pos = 0;         // where the match search resumes
            while (pos < n) {
                int mStart = -1;
                int mEnd = -1;
                AddedToken tok = null;
                for (int i = pos; i < n && tok == null; i++) {
                    char c = s.charAt(i);
                    if (c < 128 ? !firstAscii[c] : !anyNonAsciiFirst) {
                        continue;
                    }
                    Node node = root;
                    for (int j = i; j < n; j++) {
                        node = node.next.get(s.charAt(j));
                        if (node == null) {
                            break;
                        }
                        if (node.token != null) {
                            tok = node.token;
                            mStart = i;
                            mEnd = j + 1;
                        }
                    }
                }
                if (tok == null) {
                    break;
                }
                pos = mEnd;
                if (tok.special() && !filter.allows(mStart, mEnd)) {
                    continue;
                }
                if (tok.singleWord()) {
                    boolean startSpace = mStart == 0 || !isWordChar(s.codePointBefore(mStart));
                    boolean stopSpace = mEnd == n || !isWordChar(s.codePointAt(mEnd));
                    if (!startSpace || !stopSpace) {
                        continue;
                    }
                }
                int start = mStart;
                int stop = mEnd;
                if (tok.lstrip()) {
                    int ns = start;
                    while (ns > 0 && isWhiteSpace(s.codePointBefore(ns))) {
                        ns -= Character.charCount(s.codePointBefore(ns));
                    }
                    start = Math.max(ns, startOffset);
                }
                if (tok.rstrip()) {
                    while (stop < n && isWhiteSpace(s.codePointAt(stop))) {
                        stop += Character.charCount(s.codePointAt(stop));
                    }
                }
                if (startOffset < start) {
                    out.accept(new Piece(s.substring(startOffset, start), -1), startOffset);
                }
                out.accept(new Piece(s.substring(start, stop), tok.id()), start);
                startOffset = stop;
            }
            if (startOffset < n) {
                out.accept(new Piece(s.substring(startOffset), -1), startOffset);
            }
        }
    }

    /** Rust regex {@code \w}: Alphabetic, M, Nd, Pc, Join_Control. */
    static boolean isWordChar(int cp) {
        if (Character.isAlphabetic(cp)) {
            return true;
        }
        int t = Character.getType(cp);
        return t == Character.NON_SPACING_MARK || t == Character.ENCLOSING_MARK || t == Character.COMBINING_SPACING_MARK
                || t == Character.DECIMAL_DIGIT_NUMBER || t == Character.CONNECTOR_PUNCTUATION
                || cp == 0x200C || cp == 0x200D;
    }

    /** Unicode White_Space (Rust regex {@code \s}). */
    static boolean isWhiteSpace(int cp) {
        if (cp <= 0x20) {
            return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
        }
        if (cp == 0x85 || cp == 0xA0 || cp == 0x1680 || cp == 0x2028 || cp == 0x2029 || cp == 0x202F
                || cp == 0x205F || cp == 0x3000) {
            return true;
        }
        return cp >= 0x2000 && cp <= 0x200A;
    }
}
