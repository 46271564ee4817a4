package ai.k2j.cli;

import ai.k2j.testing.TestCheckpoints;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
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

    /** The real Qwen tokenizer directory (testdata/qwen-tokenizer, or -Dk2j.qwenTokenizer). */
    static Path qwenTokenizer() {
        return TestCheckpoints.qwenTokenizer();
    }

    @Override
    public String toString() {
        return "exit " + code + "\n--- stdout\n" + out + "--- stderr\n" + err;
    }
}
