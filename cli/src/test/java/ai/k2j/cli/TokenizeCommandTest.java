package ai.k2j.cli;

import ai.k2j.tokenizer.Tokenizer;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code k2j tokenize} on the real Qwen2.5 tokenizer. */
class TokenizeCommandTest {

    static Path qwen;

    @BeforeAll
    static void findTokenizer() {
        qwen = CliRunner.qwenTokenizer();
    }

    private static String json(int[] ids) {
        return "{\"ids\":[" + Arrays.stream(ids).mapToObj(Integer::toString).collect(Collectors.joining(",")) + "]}";
    }

    @Test
    void textPrintsCommaSeparatedIdsOrJson() {
        CliRunner r = CliRunner.run("tokenize", "--tokenizer", qwen.toString(), "--text", "Hello world");
        assertEquals(0, r.code(), r::toString);
        assertEquals("9707,1879\n", r.out()); // HF tokenizers: Qwen2.5 "Hello world" -> [9707, 1879]

        CliRunner j = CliRunner.run("tokenize", "--tokenizer", qwen.resolve("tokenizer.json").toString(),
                "--text", "Hello world", "--json");
        assertEquals(0, j.code(), j::toString);
        assertEquals("{\"ids\":[9707,1879]}\n", j.out());
    }

    @Test
    void jsonlGivesOneLineOfIdsPerInputLineInOrder(@TempDir Path tmp) throws Exception {
        List<String> texts = List.of("Hello world", "<|im_start|>user\nhi<|im_end|>", "", "héllo 世界 \"quoted\"\t!",
                "def quicksort(arr):\n    return arr");
        StringBuilder in = new StringBuilder();
        for (String t : texts) {
            in.append(Cli.JSON.createObjectNode().put("text", t).put("extra", 1)).append('\n');
        }
        Path file = tmp.resolve("in.jsonl");
        Files.writeString(file, in);

        CliRunner r = CliRunner.run("tokenize", "--tokenizer", qwen.toString(), "--jsonl", file.toString());
        assertEquals(0, r.code(), r::toString);
        List<String> lines = r.out().lines().toList();
        assertEquals(texts.size(), lines.size(), r::toString);
        Tokenizer tok = Tokenizer.load(qwen);
        for (int i = 0; i < texts.size(); i++) {
            assertEquals(json(tok.encode(texts.get(i))), lines.get(i), "line " + (i + 1));
        }
        assertEquals("{\"ids\":[9707,1879]}", lines.get(0));
        assertTrue(lines.get(1).startsWith("{\"ids\":[151644,") && lines.get(1).endsWith(",151645]}"), lines.get(1));
        assertEquals("{\"ids\":[]}", lines.get(2));
    }

    @Test
    void badLineStopsWithItsNumber(@TempDir Path tmp) throws Exception {
        Path file = tmp.resolve("bad.jsonl");
        Files.writeString(file, "{\"text\": \"ok\"}\n{\"text\": \"unterminated}\n{\"text\": \"never\"}\n");
        CliRunner r = CliRunner.run("tokenize", "--tokenizer", qwen.toString(), "--jsonl", file.toString());
        assertEquals(1, r.code(), r::toString);
        assertTrue(r.err().startsWith("k2j tokenize: error: " + file + ":2: invalid JSON"), r::toString);
        assertEquals(1, r.out().lines().count(), "lines before the bad one were streamed: " + r);

        Files.writeString(file, "{\"txt\": \"a\"}\n");
        CliRunner r2 = CliRunner.run("tokenize", "--tokenizer", qwen.toString(), "--jsonl", file.toString());
        assertEquals(1, r2.code(), r2::toString);
        assertEquals("k2j tokenize: error: " + file + ":1: expected a string field \"text\"", r2.err().strip());

        Files.writeString(file, "{\"text\": \"a\"}\n\n");
        CliRunner r3 = CliRunner.run("tokenize", "--tokenizer", qwen.toString(), "--jsonl", file.toString());
        assertEquals(1, r3.code(), r3::toString);
        assertTrue(r3.err().contains(file + ":2: "), r3::toString);

        Files.writeString(file, "{\"text\": \"a\"} {\"text\": \"b\"}\n");
        CliRunner r4 = CliRunner.run("tokenize", "--tokenizer", qwen.toString(), "--jsonl", file.toString());
        assertEquals(1, r4.code(), r4::toString);
        assertTrue(r4.err().contains(file + ":1: invalid JSON"), r4::toString);
    }
}
