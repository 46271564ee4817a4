package ai.k2j.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Every line of the HF golden file (tools/golden/tokenizer_ids.py output) must match exactly. */
class GoldenIdsTest {
    static final String GOLDEN = "tokenizer/src/test/resources/golden/qwen-tokenizer-ids.jsonl";

    @Test
    void idsAndDecodedTextMatchHfTokenizers() throws Exception {
        Path golden = QwenTokenizer.repoRoot().resolve(GOLDEN);
        if (!Files.isRegularFile(golden)) {
            fail("golden file missing: " + golden + " (produce it with tools/golden/tokenizer_ids.py on a machine with HF tokenizers)");
        }
        Tokenizer tok = QwenTokenizer.get();
        ObjectMapper json = new ObjectMapper();
        List<String> lines = Files.readAllLines(golden, StandardCharsets.UTF_8);
        int checked = 0;
        int idMismatches = 0;
        int decodeMismatches = 0;
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
            checked++;
            if (!Arrays.equals(expected, actual)) {
                if (idMismatches++ < 5) {
                    report.append("\nline ").append(i + 1).append(" text=").append(json.writeValueAsString(text))
                            .append("\n  expected ").append(Arrays.toString(expected))
                            .append("\n  actual   ").append(Arrays.toString(actual));
                }
            }
            String decoded = tok.decode(expected);
            if (!decoded.equals(row.get("decoded").asText())) {
                if (decodeMismatches++ < 5) {
                    report.append("\nline ").append(i + 1).append(" decode(expected ids) = ").append(json.writeValueAsString(decoded))
                            .append(", HF: ").append(json.writeValueAsString(row.get("decoded").asText()));
                }
            }
        }
        assertTrue(checked >= 250, "golden file has only " + checked + " lines");
        assertEquals(0, idMismatches + decodeMismatches,
                idMismatches + " id and " + decodeMismatches + " decode mismatches of " + checked + " lines:" + report);
    }
}
