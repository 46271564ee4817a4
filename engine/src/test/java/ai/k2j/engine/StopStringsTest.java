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
}
