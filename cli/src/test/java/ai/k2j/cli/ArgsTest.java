package ai.k2j.cli;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ArgsTest {

    @Test
    void valuesSwitchesAndEqualsForm() {
        Args a = Args.parse(new String[] {"--model", "m", "--json", "--seed=-7", "--prompt", "-x", "--stop", ""});
        assertEquals("m", a.required("model"));
        assertTrue(a.flag("json"));
        assertEquals(-7L, a.longValue("seed", 0));
        assertEquals("-x", a.string("prompt", null));
        assertEquals("", a.string("stop", null));
        assertFalse(a.flag("chat"));
        assertNull(a.string("system", null));
        a.finish();
    }

    @Test
    void duplicateFlagIsRejected() {
        var e = assertThrows(IllegalArgumentException.class, () -> Args.parse(new String[] {"--a", "1", "--a", "2"}));
        assertEquals("flag --a given twice", e.getMessage());
    }

    @Test
    void emptyFlagNameIsRejected() {
        assertThrows(IllegalArgumentException.class, () -> Args.parse(new String[] {"--=3"}));
    }

    @Test
    void unknownFlagAndStrayArgumentFailFinish() {
        Args a = Args.parse(new String[] {"--model", "m", "--modle", "x"});
        a.required("model");
        assertEquals("unknown flag --modle", assertThrows(UsageException.class, a::finish).getMessage());

        Args b = Args.parse(new String[] {"stray"});
        assertEquals("unexpected argument 'stray'", assertThrows(UsageException.class, b::finish).getMessage());
    }

    @Test
    void switchWhereAValueIsNeeded() {
        Args a = Args.parse(new String[] {"--prompt", "--chat"});
        assertEquals("--prompt needs a value", assertThrows(UsageException.class, () -> a.required("prompt")).getMessage());
        assertTrue(a.flag("chat"));
    }

    @Test
    void valueWhereASwitchIsNeeded() {
        Args a = Args.parse(new String[] {"--json", "yes"});
        assertEquals("--json takes no value, got 'yes'", assertThrows(UsageException.class, () -> a.flag("json"))
                .getMessage());
    }

    @Test
    void numbersAreChecked() {
        Args a = Args.parse(new String[] {"--n", "12x", "--t", "hot", "--s", "1e3"});
        assertEquals("--n must be an integer, got '12x'",
                assertThrows(UsageException.class, () -> a.integer("n", 0)).getMessage());
        assertEquals("--t must be a number, got 'hot'",
                assertThrows(UsageException.class, () -> a.decimal("t", 0)).getMessage());
        assertThrows(UsageException.class, () -> a.longValue("s", 0));
        assertEquals(5, a.integer("absent", 5));
    }

    @Test
    void idLists() {
        assertArrayEquals(new int[] {1, 22, 333}, Args.parse(new String[] {"--ids", "1, 22,333"}).ints("ids"));
        Args bad = Args.parse(new String[] {"--ids", "1,,2"});
        assertThrows(UsageException.class, () -> bad.ints("ids"));
        Args missing = Args.parse(new String[0]);
        assertEquals("missing required flag --ids",
                assertThrows(UsageException.class, () -> missing.ints("ids")).getMessage());
    }
}
