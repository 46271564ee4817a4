package ai.k2j.engine;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class StopStringsTest {

    @Test
    void holdsBackPossibleStopPrefixesAndCutsAtTheStop() {
        StopStrings s = new StopStrings(List.of("</end>"));
        assertFalse(s.append("Hello <"));
        assertEquals("Hello ", s.takeSafe(), "'<' could begin the stop string");
        assertFalse(s.append("/en"));
        assertEquals("", s.takeSafe());
        assertTrue(s.append("d> trailing"));
        assertEquals("", s.takeSafe(), "nothing of the stop string reaches the listener");
        assertEquals("Hello ", s.text());
    }

    @Test
    void releasesAHeldPrefixThatTurnsOutToBeText() {
        StopStrings s = new StopStrings(List.of("STOP"));
        assertFalse(s.append("ST"));
        assertEquals("", s.takeSafe());
        assertFalse(s.append("ay"));
        assertEquals("STay", s.takeSafe());
        assertFalse(s.append("ST"));
        assertEquals("ST", s.takeAll(), "at the end of generation a held prefix is plain text");
        assertEquals("STayST", s.text());
    }

    @Test
    void earliestOfSeveralStopsWinsEvenInsideOnePiece() {
        StopStrings s = new StopStrings(List.of("world", "lo w", ""));
        assertTrue(s.append("hello world"));
        assertEquals("hel", s.text());
        assertEquals("hel", s.takeAll());
    }

    @Test
    void noStopsMeansEverythingIsSafe() {
        StopStrings s = new StopStrings(List.of());
        assertFalse(s.append("abc"));
        assertEquals("abc", s.takeSafe());
        assertFalse(s.append(""));
        assertEquals("", s.takeSafe());
    }

    @Test
    void aStopSpanningManyPiecesIsFound() {
        StopStrings s = new StopStrings(List.of("\n\nUser:"));
        StringBuilder shown = new StringBuilder();
        for (String piece : new String[] {"Answer.", "\n", "\n", "Us", "er", ":", " more"}) {
            boolean stopped = s.append(piece);
            shown.append(s.takeSafe());
            if (stopped) {
                break;
            }
        }
        assertEquals("Answer.", shown.toString());
        assertEquals("Answer.", s.text());
    }

    /** Random stops and pieces over a small alphabet (many partial matches) against a plain indexOf reference. */
    @Test
    void agreesWithAPlainSearchOnRandomText() {
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(14);
        for (int round = 0; round < 2000; round++) {
            List<String> stops = new java.util.ArrayList<>();
            for (int k = 1 + rnd.nextInt(4); k > 0; k--) {
                stops.add(randomText(rnd, 1 + rnd.nextInt(5)));
            }
            StopStrings s = new StopStrings(stops);
            StringBuilder all = new StringBuilder();
            StringBuilder shown = new StringBuilder();
            boolean stopped = false;
            for (int p = 0; p < 30 && !stopped; p++) {
                String piece = randomText(rnd, rnd.nextInt(4));
                all.append(piece);
                stopped = s.append(piece);
                shown.append(s.takeSafe());
            }
            int cut = all.length();
            for (String stop : stops) {
                int at = all.indexOf(stop);
                if (at >= 0) {
                    cut = Math.min(cut, at);
                }
            }
            String expected = all.substring(0, cut);
            assertEquals(cut < all.length() || stopped, stopped, stops + " " + all);
            assertEquals(expected, s.text(), stops + " " + all);
            shown.append(s.takeAll());
            assertEquals(expected, shown.toString(), stops + " " + all);
        }
    }

    private static String randomText(java.util.SplittableRandom rnd, int n) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < n; i++) {
            b.append((char) ('a' + rnd.nextInt(2)));
        }
        return b.toString();
    }

    /**
     * Matching is linear in the text: long self-overlapping stops (the worst case of a rescan or a prefix search
     * per piece) over 200,000 one-character pieces. A quadratic matcher needs minutes here.
     */
    @Test
    void longStopsOverLongTextStayLinear() {
        String a = "a".repeat(255);
        StopStrings s = new StopStrings(List.of(a + "b", a + "c", a + "d", a + "e"));
        long start = System.nanoTime();
        for (int i = 0; i < 200_000; i++) {
            assertFalse(s.append("a"));
            s.takeSafe();
        }
        assertTrue(s.append("e"));
        assertEquals(200_000 - 255, s.text().length());
        long ms = (System.nanoTime() - start) / 1_000_000;
        assertTrue(ms < 5_000, "took " + ms + " ms");
    }
}
