package ai.k2j.cli;

import ai.k2j.tokenizer.Tokenizer;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectReader;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;

/**
 * {@code k2j tokenize}: text to token ids with a model's tokenizer. {@code --jsonl} streams: each input line
 * {@code {"text": ...}} becomes one output line {@code {"ids": [...]}}, in order.
 */
final class TokenizeCommand implements Command {

    /** One JSON value per line: trailing tokens after the object are an error, not silently dropped. */
    private static final ObjectReader LINE_READER =
            Cli.JSON.reader().with(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    static final VerbSpec SPEC = new VerbSpec("tokenize", "text to ids", List.of(
            Flag.required("tokenizer", "PATH", "model directory or tokenizer.json"),
            Flag.required("text", "TEXT", "text to encode; prints ids comma-separated (or {\"ids\": [...]} with"
                    + " --json)").inGroup("input", true),
            Flag.required("jsonl", "FILE", "one JSON object {\"text\": \"...\"} per line ('-' = stdin); prints"
                    + " one line {\"ids\": [...]} per input line, in order; a bad line stops with its number")
                    .inGroup("input", true),
            Flag.toggle("json", "JSON output for --text (--jsonl output is always JSON lines)")),
            "Special tokens written in the text (e.g. <|im_start|>) become their ids, as HF tokenizers does.");

    @Override
    public VerbSpec spec() {
        return SPEC;
    }

    @Override
    public int run(Args args, PrintStream out, PrintStream err) {
        Path path = args.path("tokenizer");
        boolean hasText = args.has("text");
        boolean hasJsonl = args.has("jsonl");
        if (hasText == hasJsonl) {
            throw new UsageException("give exactly one of --text TEXT or --jsonl FILE");
        }
        String text = hasText ? args.required("text") : null;
        String jsonl = hasJsonl ? args.required("jsonl") : null;
        boolean json = args.flag("json");
        args.finish();

        if (!Files.exists(path)) {
            throw new IllegalArgumentException("tokenizer not found: " + path);
        }
        if (jsonl != null && !jsonl.equals("-") && !Files.isRegularFile(Path.of(jsonl))) {
            throw new IllegalArgumentException("input file not found: " + jsonl);
        }
        Tokenizer tokenizer = Tokenizer.load(path);
        if (text != null) {
            int[] ids = tokenizer.encode(text);
            StringBuilder b = new StringBuilder();
            if (json) {
                appendIdsObject(b, ids);
            } else {
                for (int i = 0; i < ids.length; i++) {
                    if (i > 0) {
                        b.append(',');
                    }
                    b.append(ids[i]);
                }
            }
            out.println(b);
            return 0;
        }
        encodeJsonl(tokenizer, jsonl, out);
        return 0;
    }

    private static void encodeJsonl(Tokenizer tokenizer, String source, PrintStream out) {
        String name = source.equals("-") ? "<stdin>" : source;
        try (BufferedReader in = source.equals("-")
                ? new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))
                : Files.newBufferedReader(Path.of(source), StandardCharsets.UTF_8)) {
            StringBuilder b = new StringBuilder();
            String line;
            long lineNo = 0;
            while ((line = in.readLine()) != null) {
                lineNo++;
                String text = textOf(line, name, lineNo);
                b.setLength(0);
                appendIdsObject(b, tokenizer.encode(text));
                out.append(b).append('\n');
            }
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException("input file not found: " + name);
        } catch (IOException e) {
            throw new UncheckedIOException(name + ": cannot read: " + e.getMessage(), e);
        } finally {
            out.flush();
        }
    }

    private static String textOf(String line, String name, long lineNo) {
        JsonNode node;
        try {
            node = LINE_READER.readTree(line);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(name + ":" + lineNo + ": invalid JSON: " + e.getOriginalMessage());
        }
        if (node == null || !node.isObject()) {
            throw new IllegalArgumentException(name + ":" + lineNo + ": expected a JSON object {\"text\": ...}");
        }
        JsonNode t = node.get("text");
        if (t == null || !t.isTextual()) {
            throw new IllegalArgumentException(name + ":" + lineNo + ": expected a string field \"text\"");
        }
        return t.textValue();
    }

    private static void appendIdsObject(StringBuilder b, int[] ids) {
        b.append("{\"ids\":[");
        for (int i = 0; i < ids.length; i++) {
            if (i > 0) {
                b.append(',');
            }
            b.append(ids[i]);
        }
        b.append("]}");
    }
}
