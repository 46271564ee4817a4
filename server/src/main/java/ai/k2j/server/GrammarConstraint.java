package ai.k2j.server;

import ai.k2j.engine.TokenConstraint;
import ai.k2j.server.JsonGrammar.Frame;
import ai.k2j.tokenizer.Tokenizer;

import java.util.Arrays;
import java.util.Comparator;
import java.util.Set;

/**
 * A {@link JsonGrammar} over a tokenizer's vocabulary: a token is allowed when the grammar accepts all its bytes
 * from the current state; end-of-sequence ids exactly when the text so far is complete. Masking walks the
 * vocabulary sorted by bytes depth-first, so a refused first byte prunes every token that begins with it.
 * Special tokens are never produced inside the grammar (their text is not the model's to write), except those
 * whose text the grammar itself spells (Kimi K2's tool-call markers).
 */
final class GrammarConstraint implements TokenConstraint {

    /** A tokenizer's tokens sorted by their bytes (special tokens left out unless named), built once per kind. */
    static final class Vocabulary {
        final int size;
        final byte[][] bytesById;
        final int[] sortedIds;
        final byte[][] sortedBytes;

        /**
         * Tokens that are plain string content — no quote, backslash or control byte, and UTF-8 that is valid from a
         * character boundary (possibly stopping inside a character) — and how many characters the longest holds:
         * inside a free string all of them are allowed at once, and only the others need a grammar walk.
         */
        final int[] plainStringIds;
        final int[] otherIds;
        final int maxPlainChars;

        Vocabulary(Tokenizer tokenizer, int modelVocab, Set<String> specialsSpelled) {
            this.size = modelVocab;
            this.bytesById = new byte[modelVocab][];
            int n = 0;
            for (int id = 0; id < Math.min(modelVocab, tokenizer.vocabSize()); id++) {
                byte[] b = tokenizer.tokenBytes(id);
                if (b.length == 0) {
                    continue;
                }
                if (tokenizer.isSpecial(id) && !specialsSpelled.contains(tokenizer.token(id))) {
                    continue;
                }
                bytesById[id] = b;
                n++;
            }
            Integer[] order = new Integer[n];
            for (int id = 0, k = 0; id < modelVocab; id++) {
                if (bytesById[id] != null) {
                    order[k++] = id;
                }
            }
            Arrays.sort(order, Comparator.comparing((Integer id) -> bytesById[id], Arrays::compareUnsigned));
            this.sortedIds = new int[n];
            this.sortedBytes = new byte[n][];
            for (int i = 0; i < n; i++) {
                sortedIds[i] = order[i];
                sortedBytes[i] = bytesById[order[i]];
            }
            int[] plain = new int[n];
            int[] other = new int[n];
            int np = 0;
            int no = 0;
            int maxChars = 0;
            for (int id : sortedIds) {
                int chars = plainChars(bytesById[id]);
                if (chars >= 0) {
                    plain[np++] = id;
                    maxChars = Math.max(maxChars, chars);
                } else if ((bytesById[id][0] & 0xC0) != 0x80) { // one starting mid-character never follows a boundary
                    other[no++] = id;
                }
            }
            this.plainStringIds = Arrays.copyOf(plain, np);
            this.otherIds = Arrays.copyOf(other, no);
            this.maxPlainChars = maxChars;
        }

        /** The characters a plain-content token holds, or -1 when it is not plain string content. */
        private static int plainChars(byte[] b) {
            int chars = 0;
            int due = 0;
            for (byte x : b) {
                int c = x & 0xFF;
                if (due > 0) {
                    if ((c & 0xC0) != 0x80) {
                        return -1;
                    }
                    due--;
                    continue;
                }
                if (c == '"' || c == '\\' || c < 0x20) {
                    return -1;
                }
                if (c >= 0x80) {
                    // lead bytes with restricted second bytes (E0, ED, F0, F4) are left to the exact walk
                    if (c >= 0xC2 && c <= 0xDF) {
                        due = 1;
                    } else if (c >= 0xE1 && c <= 0xEF && c != 0xED) {
                        due = 2;
                    } else if (c >= 0xF1 && c <= 0xF3) {
                        due = 3;
                    } else {
                        return -1;
                    }
                }
                chars++;
            }
            return chars;
        }
    }

    private final Vocabulary vocab;
    private final boolean[] eos;
    private final int firstEos;
    private Frame state;
    private boolean[] allowed;

    GrammarConstraint(JsonGrammar.Node root, Vocabulary vocab, int[] eosIds) {
        this(vocab, eosMask(vocab.size, eosIds), eosIds.length == 0 ? -1 : eosIds[0], JsonGrammar.initial(root));
    }

    private GrammarConstraint(Vocabulary vocab, boolean[] eos, int firstEos, Frame state) {
        this.vocab = vocab;
        this.eos = eos;
        this.firstEos = firstEos;
        this.state = state;
    }

    private static boolean[] eosMask(int size, int[] eosIds) {
        boolean[] m = new boolean[size];
        for (int id : eosIds) {
            if (id >= 0 && id < size) {
                m[id] = true;
            }
        }
        return m;
    }

    boolean complete() {
        return JsonGrammar.canEnd(state);
    }

    @Override
    public boolean allows(int tokenId) {
        if (tokenId < 0 || tokenId >= vocab.size) {
            return false;
        }
        if (eos[tokenId]) {
            return JsonGrammar.canEnd(state);
        }
        byte[] b = vocab.bytesById[tokenId];
        return b != null && JsonGrammar.walk(state, b) != null;
    }

    @Override
    public void mask(float[] logits, int offset) {
        if (allowed == null) {
            allowed = new boolean[vocab.size];
        } else {
            Arrays.fill(allowed, false);
        }
        boolean any;
        if (state.node.kind == JsonGrammar.Kind.STRING && state.mode == 1 && state.b == 0
                && (long) state.node.maxLength - state.a >= vocab.maxPlainChars) {
            // inside a free string, at a character boundary, with room for any token: plain content always fits
            for (int id : vocab.plainStringIds) {
                allowed[id] = true;
            }
            any = vocab.plainStringIds.length > 0;
            for (int id : vocab.otherIds) {
                if (JsonGrammar.walk(state, vocab.bytesById[id]) != null) {
                    allowed[id] = true;
                    any = true;
                }
            }
        } else {
            any = visit(state, 0, vocab.sortedIds.length, 0);
        }
        if (JsonGrammar.canEnd(state)) {
            for (int id = 0; id < vocab.size; id++) {
                if (eos[id]) {
                    allowed[id] = true;
                    any = true;
                }
            }
        }
        if (!any && firstEos >= 0) {
            allowed[firstEos] = true; // a dead end (no token spells the next byte): end rather than emit garbage
        }
        for (int id = 0; id < vocab.size; id++) {
            if (!allowed[id]) {
                logits[offset + id] = Float.NEGATIVE_INFINITY;
            }
        }
    }

    /** Tokens [lo, hi) of the sorted list share their first {@code depth} bytes, read into {@code s}. */
    private boolean visit(Frame s, int lo, int hi, int depth) {
        boolean any = false;
        int i = lo;
        while (i < hi && vocab.sortedBytes[i].length == depth) { // exactly the prefix: allowed
            allowed[vocab.sortedIds[i]] = true;
            any = true;
            i++;
        }
        while (i < hi) {
            int c = vocab.sortedBytes[i][depth] & 0xFF;
            int j = i + 1;
            while (j < hi && (vocab.sortedBytes[j][depth] & 0xFF) == c) {
                j++;
            }
            Frame next = JsonGrammar.step(s, c);
            if (next != null) {
                any |= visit(next, i, j, depth + 1);
            }
            i = j;
        }
        return any;
    }

    @Override
    public void accept(int tokenId) {
        if (tokenId >= 0 && tokenId < vocab.size && eos[tokenId]) {
            return;
        }
        byte[] b = tokenId >= 0 && tokenId < vocab.size ? vocab.bytesById[tokenId] : null;
        Frame next = b == null ? null : JsonGrammar.walk(state, b);
        if (next == null) {
            throw new IllegalStateException("token " + tokenId + " was produced against the output grammar");
        }
        state = next;
    }

    @Override
    public TokenConstraint copy() {
        return new GrammarConstraint(vocab, eos, firstEos, state);
    }
}
