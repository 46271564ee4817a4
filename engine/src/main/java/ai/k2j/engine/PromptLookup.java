package ai.k2j.engine;

/**
 * Prompt-lookup drafting (draft-free): find the latest earlier occurrence of the context's last n tokens,
 * trying n = maxNgram down to 1, and propose the tokens that followed it. A scan over the context, no model and
 * no allocation: worth it whenever the output copies its context (code edits, retrieval answers, repetitive
 * code). Proposals are deterministic, so for exact sampling the draft distribution is a point mass on each
 * proposed token.
 */
final class PromptLookup {

    private PromptLookup() {
    }

    /**
     * Writes up to {@code max} proposals into {@code out} and returns how many (0: no n-gram recurs).
     *
     * @param context  tokens [0, length) of the sequence so far; the proposals continue it
     * @param maxNgram longest suffix to match
     */
    static int propose(int[] context, int length, int maxNgram, int max, int[] out) {
        if (max <= 0) {
            return 0;
        }
        for (int n = Math.min(maxNgram, length - 1); n >= 1; n--) {
            int suffix = length - n;
            // candidate starts, latest first; a match must be followed by at least one token inside the context
            for (int start = suffix - 1; start >= 0; start--) {
                if (matches(context, start, suffix, n)) {
                    int from = start + n;
                    int count = Math.min(max, length - from);
                    System.arraycopy(context, from, out, 0, count);
                    return count;
                }
            }
        }
        return 0;
    }

    private static boolean matches(int[] context, int a, int b, int n) {
        for (int i = n - 1; i >= 0; i--) { // the last token differs most often: compare backwards
            if (context[a + i] != context[b + i]) {
                return false;
            }
        }
        return true;
    }
}
