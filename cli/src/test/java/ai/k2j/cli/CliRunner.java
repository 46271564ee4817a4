package ai.k2j.cli;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** Runs {@link Main#run} in-process and captures exit code, stdout and stderr. */
record CliRunner(int code, String out, String err) {

    static CliRunner run(String... argv) {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        ByteArrayOutputStream e = new ByteArrayOutputStream();
        int code;
        try (PrintStream out = new PrintStream(o, true, StandardCharsets.UTF_8);
             PrintStream err = new PrintStream(e, true, StandardCharsets.UTF_8)) {
            code = Main.run(argv, out, err);
        }
        return new CliRunner(code, o.toString(StandardCharsets.UTF_8), e.toString(StandardCharsets.UTF_8));
    }

    /** The real Qwen2.5 tokenizer directory (BRIEF rule: -Dk2j.qwenTokenizer, else repoRoot/../shared/...). */
    static Path qwenTokenizer() {
        String prop = System.getProperty("k2j.qwenTokenizer");
        Path p;
        if (prop != null) {
            p = Path.of(prop);
        } else {
            String root = System.getProperty("k2j.repoRoot", System.getProperty("user.dir"));
            p = Path.of(root).resolve("../shared/testdata/qwen-tokenizer").normalize();
        }
        if (!Files.isRegularFile(p.resolve("tokenizer.json"))) {
            throw new AssertionError("Qwen tokenizer not found: looked for " + p.resolve("tokenizer.json")
                    + " (set -Dk2j.qwenTokenizer=DIR)");
        }
        return p;
    }

    @Override
    public String toString() {
        return "exit " + code + "\n--- stdout\n" + out + "--- stderr\n" + err;
    }
}
