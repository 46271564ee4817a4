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
 * The Llama 3.1 tokenizer (../shared/testdata/llama3.1-tokenizer; its pre-tokenizer splits digits in groups of up to
 * three and its BPE ignores merges for whole-vocabulary words) against HF {@code tokenizers}: every line of
 * llama3.1-tokenizer-ids.jsonl (tools/golden/tokenizer_ids.py over tools/golden/tokenizer_texts.jsonl) id-exact, and
 * its chat format. Tagged {@code shared-data}: the tokenizer is not in the repository, so plain {@code ./mvnw verify}
 * skips this and {@code .ci/run} (which has ../shared) runs it.
 */
@Tag("shared-data")
class Llama3TokenizerTest {
    static final String GOLDEN = "tokenizer/src/test/resources/golden/llama3.1-tokenizer-ids.jsonl";

    private static Tokenizer tok;

    static Path dir() {
        Set<Path> candidates = new LinkedHashSet<>();
        String prop = System.getProperty("k2j.llamaTokenizer");
        if (prop != null) {
            candidates.add(Path.of(prop));
        }
        Path root = QwenTokenizer.repoRoot().toAbsolutePath().normalize();
        candidates.add(root.resolve("../shared/testdata/llama3.1-tokenizer").normalize());
        candidates.add(root.resolve("../../shared/testdata/llama3.1-tokenizer").normalize());
        for (Path p : candidates) {
            if (Files.isRegularFile(p.resolve("tokenizer.json"))) {
                return p;
            }
        }
        return fail("Llama 3.1 tokenizer.json not found; looked in " + candidates + " (set -Dk2j.llamaTokenizer=DIR)");
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
        assertTrue(checked >= 250, "golden file has only " + checked + " lines");
        assertEquals(0, mismatches, mismatches + " mismatches of " + checked + " lines:" + report);
    }

    @Test
    void digitsSplitInThreesAndSpecialTokensAreSingleIds() {
        // "1234567" pre-tokenizes as 123|456|7 (\p{N}{1,3}); Qwen's pattern would split every digit
        int[] ids = tok.encode("1234567");
        assertEquals(3, ids.length, Arrays.toString(ids));
        assertEquals("1234567", tok.decode(ids));
        assertArrayEquals(new int[] {128000}, tok.encode("<|begin_of_text|>"));
        assertArrayEquals(new int[] {128009}, tok.encode("<|eot_id|>"));
    }

    @Test
    void chatFormatIsLlama3Headers() {
        String p = tok.applyChatTemplate(List.of(ChatMessage.system("Be brief."), ChatMessage.user("  Hi!\n")), true);
        assertEquals("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                + "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
                + "<|start_header_id|>assistant<|end_header_id|>\n\n", p);
        int[] ids = tok.encode(p);
        assertEquals(128000, ids[0]);
        assertEquals(128006, ids[1]); // <|start_header_id|>
        assertEquals(false, tok.chatTemplateThinks());
    }
}
