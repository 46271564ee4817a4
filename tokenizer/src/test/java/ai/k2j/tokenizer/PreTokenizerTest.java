package ai.k2j.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.text.Normalizer;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

class PreTokenizerTest {

    private static List<String> split(PreTokenizer.Behavior behavior, boolean invert, String pattern, String text) {
        List<String> out = new ArrayList<>();
        new PreTokenizer.Split(Pattern.compile(pattern), behavior, invert).run(text, 0, text.length(),
                (s, from, to) -> out.add(s.substring(from, to)));
        return out;
    }

    @Test
    void splitBehaviorsAsDocumentedByHf() {
        // the example of HF's SplitDelimiterBehavior documentation
        String text = "the-final--countdown";
        assertEquals(List.of("the", "final", "countdown"), split(PreTokenizer.Behavior.REMOVED, false, "-", text));
        assertEquals(List.of("the", "-", "final", "-", "-", "countdown"), split(PreTokenizer.Behavior.ISOLATED, false, "-", text));
        assertEquals(List.of("the-", "final-", "-", "countdown"), split(PreTokenizer.Behavior.MERGED_WITH_PREVIOUS, false, "-", text));
        assertEquals(List.of("the", "-final", "-", "-countdown"), split(PreTokenizer.Behavior.MERGED_WITH_NEXT, false, "-", text));
        assertEquals(List.of("the", "-", "final", "--", "countdown"), split(PreTokenizer.Behavior.CONTIGUOUS, false, "-", text));
        // inverted: the text between matches is the delimiter
        assertEquals(List.of("-", "-", "-"), split(PreTokenizer.Behavior.REMOVED, true, "-", text)); // each "-" is its own match
    }

    @Test
    void isolatedSplitCoversTheWholeRange() {
        // a pattern that matches only some characters: gaps become pieces too
        assertEquals(List.of("ab", "12", "cd"), split(PreTokenizer.Behavior.ISOLATED, false, "\\d+", "ab12cd"));
        assertEquals(List.of(), split(PreTokenizer.Behavior.ISOLATED, false, "x", ""));
    }

    @Test
    void nfcFastPathIsSound() {
        // the NFC normalizer skips text without chars >= U+0300; every char below is its own NFC
        for (char c = 0; c < 0x300; c++) {
            String s = String.valueOf(c);
            assertEquals(s, Normalizer.normalize(s, Normalizer.Form.NFC), () -> "U+" + Integer.toHexString(s.charAt(0)));
        }
    }

    @Test
    void byteLevelMapsUtf8BytesToTheAlphabet() {
        StringBuilder sb = new StringBuilder();
        ByteLevel.appendMapped(" \u00e9\uD83D\uDE00", 0, 4, sb);
        assertEquals("\u0120\u00c3\u00a9\u00f0\u0141\u013a\u0122", sb.toString());
        assertEquals(" \u00e9\uD83D\uDE00", new String(ByteLevel.unmap(sb.toString()), java.nio.charset.StandardCharsets.UTF_8));
        assertEquals(null, ByteLevel.unmap("\u4e2d"));
    }
}
