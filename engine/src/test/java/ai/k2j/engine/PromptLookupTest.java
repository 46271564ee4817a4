package ai.k2j.engine;

import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

class PromptLookupTest {

    private static int[] propose(int[] context, int maxNgram, int max) {
        int[] out = new int[16];
        int n = PromptLookup.propose(context, context.length, maxNgram, max, out);
        return Arrays.copyOf(out, n);
    }

    @Test
    void proposesWhatFollowedTheLatestOccurrenceOfTheLongestMatchingSuffix() {
        //                 0  1  2  3  4  5  6  7  8  9 10
        int[] context = {7, 1, 2, 3, 9, 1, 2, 5, 6, 1, 2};
        // suffix [1, 2] last occurred at 5..6 (followed by 5, 6, 1, 2); the earlier one at 1..2 loses
        assertArrayEquals(new int[] {5, 6, 1}, propose(context, 2, 3));
        // a 3-gram [6, 1, 2] never recurs: falls back to the 2-gram
        assertArrayEquals(new int[] {5, 6, 1, 2}, propose(context, 3, 8));
        // max bounds the proposal; the continuation may not run past the context
        assertArrayEquals(new int[] {5}, propose(context, 3, 1));
    }

    @Test
    void longerMatchesWinOverRecentShorterOnes() {
        int[] context = {4, 8, 1, 2, 3, 9, 9, 2, 3, 7, 8, 1, 2, 3};
        // [1, 2, 3] recurs at 2..4 (followed by 9, 9); [2, 3] alone recurs later at 7..8 (followed by 7)
        assertArrayEquals(new int[] {9, 9, 2}, propose(context, 3, 3));
        assertArrayEquals(new int[] {7, 8, 1}, propose(context, 2, 3));
    }

    @Test
    void nothingWhenNoSuffixRecursOrNothingIsAsked() {
        assertEquals(0, propose(new int[] {1, 2, 3, 4}, 3, 5).length);
        assertEquals(0, propose(new int[] {5}, 3, 5).length);
        assertEquals(0, propose(new int[] {1, 1, 1}, 3, 0).length);
        // a run of one token: [1, 1] recurs at 0..1 and is followed by the last token
        assertArrayEquals(new int[] {1}, propose(new int[] {1, 1, 1}, 2, 5));
    }

    @Test
    void onlyTheGivenLengthOfTheContextIsSearched() {
        int[] context = {1, 2, 3, 1, 2, 99, 99};
        int[] out = new int[4];
        assertEquals(3, PromptLookup.propose(context, 5, 2, 4, out)); // context [1, 2, 3, 1, 2]
        assertArrayEquals(new int[] {3, 1, 2}, Arrays.copyOf(out, 3), "never reads past the given length");
    }
}
