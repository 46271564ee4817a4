package ai.k2j.tokenizer;

import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Locates the real Qwen tokenizer and the golden files for tests; loads the tokenizer once per JVM. */
final class QwenTokenizer {
    private QwenTokenizer() {}

    private static Tokenizer instance;

    static Path repoRoot() {
        String root = System.getProperty("k2j.repoRoot");
        return root != null ? Path.of(root) : Path.of("").toAbsolutePath().getParent();
    }

    /**
     * The directory holding Qwen's tokenizer.json: {@code -Dk2j.qwenTokenizer=DIR} when set, else the copy committed
     * under testdata/qwen-tokenizer; the test fails naming the place looked in.
     */
    static Path dir() {
        String prop = System.getProperty("k2j.qwenTokenizer");
        Path dir = prop != null && !prop.isBlank() ? Path.of(prop)
                : repoRoot().toAbsolutePath().normalize().resolve("testdata/qwen-tokenizer");
        if (!Files.isRegularFile(dir.resolve("tokenizer.json"))) {
            return fail("Qwen tokenizer.json not found in " + dir + (prop != null ? " (from -Dk2j.qwenTokenizer)"
                    : " (committed test data; -Dk2j.qwenTokenizer=DIR points elsewhere)"));
        }
        return dir;
    }

    static synchronized Tokenizer get() {
        if (instance == null) {
            instance = Tokenizer.load(dir());
        }
        return instance;
    }

    /** The texts of tools/golden/tokenizer_texts.jsonl. */
    static List<String> goldenTexts() throws IOException {
        Path p = repoRoot().resolve("tools/golden/tokenizer_texts.jsonl");
        if (!Files.isRegularFile(p)) {
            fail("golden texts not found at " + p);
        }
        ObjectMapper json = new ObjectMapper();
        List<String> out = new ArrayList<>();
        for (String line : Files.readAllLines(p, StandardCharsets.UTF_8)) {
            if (!line.isBlank()) {
                out.add(json.readTree(line).get("text").asText());
            }
        }
        return out;
    }
}
