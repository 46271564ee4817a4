package ai.k2j.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Lossy UTF-8 decoding (Rust from_utf8_lossy: one U+FFFD per maximal ill-formed subpart) and stream cut points. */
class Utf8Test {
    private static final int[] EDGES = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
        0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};

    private static String hex(byte[] b) {
        return HexFormat.ofDelimiter(" ").formatHex(b);
    }

    @Test
    void maximalSubpartsFromTheUnicodeStandard() {
        // Unicode 15, Table 3-8: 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64 -> a FFFD FFFD FFFD b FFFD c FFFD FFFD d
        byte[] b = HexFormat.of().parseHex("61F18080E180C262806380BF64");
        assertEquals("a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd", Utf8.decodeLossy(b, 0, b.length));
        byte[] surrogate = HexFormat.of().parseHex("EDA080"); // encoded surrogate: 3 subparts
        assertEquals("\uFFFD\uFFFD\uFFFD", Utf8.decodeLossy(surrogate, 0, 3));
        byte[] overlong = HexFormat.of().parseHex("E080AF");
        assertEquals("\uFFFD\uFFFD\uFFFD", Utf8.decodeLossy(overlong, 0, 3));
        byte[] truncatedThenBad = HexFormat.of().parseHex("F0EDA0"); // as Python and Rust; the JDK says 2
        assertEquals("\uFFFD\uFFFD\uFFFD", Utf8.decodeLossy(truncatedThenBad, 0, 3));
        byte[] emoji = HexFormat.of().parseHex("F09F9880");
        assertEquals("\uD83D\uDE00", Utf8.decodeLossy(emoji, 0, 4));
        assertEquals("\uFFFD", Utf8.decodeLossy(emoji, 0, 3));
        assertEquals(3, Utf8.incompleteTail(emoji, 3));
        assertEquals(0, Utf8.incompleteTail(emoji, 4));
    }

    /**
     * Definition-driven oracle: at each position take a whole encoded code point if there is one,
     * else replace the longest prefix of some code point's encoding (at least one byte) by U+FFFD.
     * (The JDK decoder is no oracle: it differs at truncated ends, e.g. for F0 ED A0.)
     */
    private static String oracle(byte[] b) {
        StringBuilder sb = new StringBuilder();
        int i = 0;
        while (i < b.length) {
            int whole = 0;
            for (int len = 4; len >= 1 && whole == 0; len--) {
                if (i + len <= b.length) {
                    String s = new String(b, i, len, StandardCharsets.UTF_8);
                    if (s.codePointCount(0, s.length()) == 1 && s.codePointAt(0) != 0xFFFD
                            && java.util.Arrays.equals(s.getBytes(StandardCharsets.UTF_8), java.util.Arrays.copyOfRange(b, i, i + len))) {
                        whole = len;
                        sb.append(s);
                    }
                }
            }
            if (whole > 0) {
                i += whole;
                continue;
            }
            int prefix = 1;
            for (int len = Math.min(3, b.length - i); len >= 1; len--) {
                if (PREFIXES.contains(HexFormat.of().formatHex(b, i, i + len))) {
                    prefix = len;
                    break;
                }
            }
            sb.append('\uFFFD');
            i += prefix;
        }
        return sb.toString();
    }

    /** Hex of every proper prefix (1 to 3 bytes) of every well-formed encoded code point. */
    private static final java.util.Set<String> PREFIXES = new java.util.HashSet<>();

    static {
        for (int cp = 0x80; cp <= 0x10FFFF; cp++) {
            if (cp >= 0xD800 && cp <= 0xDFFF) {
                continue;
            }
            byte[] e = new String(Character.toChars(cp)).getBytes(StandardCharsets.UTF_8);
            for (int len = 1; len < e.length; len++) {
                PREFIXES.add(HexFormat.of().formatHex(e, 0, len));
            }
        }
    }

    @Test
    void randomBytesAgreeWithTheOracleAndSplitAtTheTail() {
        Random r = new Random(42);
        for (int it = 0; it < 100_000; it++) {
            byte[] b = new byte[r.nextInt(9)];
            for (int i = 0; i < b.length; i++) {
                b[i] = (byte) (r.nextBoolean() ? EDGES[r.nextInt(EDGES.length)] : r.nextInt(256));
            }
            String mine = Utf8.decodeLossy(b, 0, b.length);
            assertEquals(oracle(b), mine, () -> hex(b));
            int tail = Utf8.incompleteTail(b, b.length);
            String split = Utf8.decodeLossy(b, 0, b.length - tail) + Utf8.decodeLossy(b, b.length - tail, tail);
            assertEquals(mine, split, () -> "cut at the incomplete tail changes " + hex(b));
            if (tail > 0) {
                assertEquals("\uFFFD", Utf8.decodeLossy(b, b.length - tail, tail), () -> hex(b));
            }
        }
    }
}
