package ai.k2j.tokenizer;

import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/** Locates the real Qwen tokenizer and the golden files for tests; loads the tokenizer once per JVM. */
final class QwenTokenizer {
    private QwenTokenizer() {}

    private static Tokenizer instance;

    static Path repoRoot() {
        String root = System.getProperty("k2j.repoRoot");
        return root != null ? Path.of(root) : Path.of("").toAbsolutePath().getParent();
    }

    /** The directory holding Qwen's tokenizer.json; the test fails naming every place looked in. */
    static Path dir() {
        Set<Path> candidates = new LinkedHashSet<>();
        String prop = System.getProperty("k2j.qwenTokenizer");
        if (prop != null) {
            candidates.add(Path.of(prop));
        }
        Path root = repoRoot().toAbsolutePath().normalize();
        candidates.add(root.resolve("../shared/testdata/qwen-tokenizer").normalize());
        // helpers' worktrees live one level deeper (<work>/wt/<name>)
        candidates.add(root.resolve("../../shared/testdata/qwen-tokenizer").normalize());
        for (Path p : candidates) {
            if (Files.isRegularFile(p.resolve("tokenizer.json"))) {
                return p;
            }
        }
        return fail("Qwen tokenizer.json not found; looked in " + candidates + " (set -Dk2j.qwenTokenizer=DIR)");
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
