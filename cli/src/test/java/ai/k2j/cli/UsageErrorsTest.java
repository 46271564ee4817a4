package ai.k2j.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every verb rejects bad command lines with exit 2 and one line on stderr, before touching any file; failures
 * (exit 1) print the exception's message, not a stack trace.
 */
class UsageErrorsTest {

    static Stream<Arguments> usageErrors() {
        return Stream.of(
                Arguments.of("k2j: unknown verb 'frobnicate'", new String[] {"frobnicate"}),
                // generate
                // (without --model, generate runs the demo model: see SpeculativeCliTest)
                Arguments.of("k2j generate: --draft-tokens and --adaptive need a draft model (--draft DIR) or --lookup",
                        new String[] {"generate", "--model", "m", "--prompt", "hi", "--draft-tokens", "3"}),
                Arguments.of("k2j generate: give exactly one of --prompt TEXT or --prompt-ids 1,2,3",
                        new String[] {"generate", "--model", "m"}),
                Arguments.of("k2j generate: give exactly one of --prompt TEXT or --prompt-ids 1,2,3",
                        new String[] {"generate", "--model", "m", "--prompt", "a", "--prompt-ids", "1"}),
                Arguments.of("k2j generate: --prompt needs a value",
                        new String[] {"generate", "--model", "m", "--prompt", "--chat"}),
                Arguments.of("k2j generate: --prompt-ids must be comma-separated integers, got 'x'",
                        new String[] {"generate", "--model", "m", "--prompt-ids", "1,x"}),
                Arguments.of("k2j generate: --prompt-ids must be non-negative token ids, got -3",
                        new String[] {"generate", "--model", "m", "--prompt-ids", "1,-3"}),
                Arguments.of("k2j generate: --chat needs --prompt TEXT",
                        new String[] {"generate", "--model", "m", "--prompt-ids", "1", "--chat"}),
                Arguments.of("k2j generate: --system needs --chat",
                        new String[] {"generate", "--model", "m", "--prompt", "a", "--system", "be brief"}),
                Arguments.of("k2j generate: --thinking needs --chat",
                        new String[] {"generate", "--model", "m", "--prompt", "a", "--thinking", "hide"}),
                Arguments.of("k2j generate: --thinking must be show, hide or off, got 'maybe'",
                        new String[] {"generate", "--model", "m", "--prompt", "a", "--chat", "--thinking", "maybe"}),
                Arguments.of("k2j generate: --max-tokens must be >= 0, got -1",
                        new String[] {"generate", "--model", "m", "--prompt", "a", "--max-tokens", "-1"}),
                Arguments.of("k2j generate: --temperature must be >= 0, got -0.5",
                        new String[] {"generate", "--model", "m", "--prompt", "a", "--temperature", "-0.5"}),
                Arguments.of("k2j generate: --temperature must be >= 0, got NaN",
                        new String[] {"generate", "--model", "m", "--prompt", "a", "--temperature", "NaN"}),
                Arguments.of("k2j generate: --top-p must be in (0, 1], got 0",
                        new String[] {"generate", "--model", "m", "--prompt", "a", "--top-p", "0"}),
                Arguments.of("k2j generate: --top-p must be in (0, 1], got 1.5",
                        new String[] {"generate", "--model", "m", "--prompt", "a", "--top-p", "1.5"}),
                Arguments.of("k2j generate: --top-k must be >= 0, got -2",
                        new String[] {"generate", "--model", "m", "--prompt", "a", "--top-k", "-2"}),
                Arguments.of("k2j generate: --min-p must be in [0, 1], got 2",
                        new String[] {"generate", "--model", "m", "--prompt", "a", "--min-p", "2"}),
                Arguments.of("k2j generate: --seed must be an integer, got 'abc'",
                        new String[] {"generate", "--model", "m", "--prompt", "a", "--seed", "abc"}),
                Arguments.of("k2j generate: --stop must not be empty",
                        new String[] {"generate", "--model", "m", "--prompt", "a", "--stop", ""}),
                Arguments.of("k2j generate: --threads must be >= 1, got 0",
                        new String[] {"generate", "--model", "m", "--prompt", "a", "--threads", "0"}),
                Arguments.of("k2j generate: --ctx must be >= 1, got 0",
                        new String[] {"generate", "--model", "m", "--prompt", "a", "--ctx", "0"}),
                Arguments.of("k2j generate: --json takes no value, got 'yes'",
                        new String[] {"generate", "--model", "m", "--prompt", "a", "--json=yes"}),
                Arguments.of("k2j generate: unknown flag --temp",
                        new String[] {"generate", "--model", "m", "--prompt", "a", "--temp", "1"}),
                Arguments.of("k2j generate: flag --prompt given twice",
                        new String[] {"generate", "--model", "m", "--prompt", "a", "--prompt", "b"}),
                Arguments.of("k2j generate: unexpected argument 'extra'",
                        new String[] {"generate", "extra", "--model", "m", "--prompt", "a"}),
                // logits
                Arguments.of("k2j logits: missing required flag --model", new String[] {"logits", "--prompt-ids", "1"}),
                Arguments.of("k2j logits: missing required flag --prompt-ids",
                        new String[] {"logits", "--model", "m", "--out", "x.npy"}),
                Arguments.of("k2j logits: missing required flag --out",
                        new String[] {"logits", "--model", "m", "--prompt-ids", "1,2"}),
                Arguments.of("k2j logits: unknown flag --prompt",
                        new String[] {"logits", "--model", "m", "--prompt-ids", "1", "--out", "o.npy", "--prompt", "a"}),
                // tokenize
                Arguments.of("k2j tokenize: missing required flag --tokenizer", new String[] {"tokenize", "--text", "a"}),
                Arguments.of("k2j tokenize: give exactly one of --text TEXT or --jsonl FILE",
                        new String[] {"tokenize", "--tokenizer", "t"}),
                Arguments.of("k2j tokenize: give exactly one of --text TEXT or --jsonl FILE",
                        new String[] {"tokenize", "--tokenizer", "t", "--text", "a", "--jsonl", "f"}),
                Arguments.of("k2j tokenize: unknown flag --model",
                        new String[] {"tokenize", "--tokenizer", "t", "--text", "a", "--model", "m"}),
                // synth
                Arguments.of("k2j synth: missing required flag --preset", new String[] {"synth", "--out", "o"}),
                Arguments.of("k2j synth: unknown preset 'qwen2.5-72b' (known: tiny, qwen2.5-0.5b, qwen2.5-1.5b, "
                        + "qwen2.5-3b, qwen2.5-7b, qwen2.5-14b, qwen2.5-32b, qwen3-0.6b, qwen3-8b, qwen3-32b, "
                        + "qwen3-30b-a3b, llama3.2-1b, llama3.1-8b, kimi-k2, deepseek-v3, deepseek-lite, kimi-mini)",
                        new String[] {"synth", "--preset", "qwen2.5-72b", "--out", "o"}),
                Arguments.of("k2j synth: missing required flag --out", new String[] {"synth", "--preset", "tiny"}),
                Arguments.of("k2j synth: --dtype must be bf16, f16 or f32, got 'q8_0'",
                        new String[] {"synth", "--preset", "tiny", "--out", "o", "--dtype", "q8_0"}),
                Arguments.of("k2j synth: --max-shard-gb must be > 0, got 0",
                        new String[] {"synth", "--preset", "tiny", "--out", "o", "--max-shard-gb", "0"}),
                Arguments.of("k2j synth: --seed must be an integer, got '1.5'",
                        new String[] {"synth", "--preset", "tiny", "--out", "o", "--seed", "1.5"}),
                Arguments.of("k2j synth: unknown flag --layers",
                        new String[] {"synth", "--preset", "tiny", "--out", "o", "--layers", "3"}),
                // info
                Arguments.of("k2j info: missing required flag --model", new String[] {"info"}),
                Arguments.of("k2j info: unknown flag --verbose", new String[] {"info", "--model", "m", "--verbose"}));
    }

    @ParameterizedTest
    @MethodSource("usageErrors")
    void usageErrorExitsTwoWithOneLine(String message, String[] argv) {
        CliRunner r = CliRunner.run(argv);
        assertEquals(2, r.code(), r::toString);
        assertEquals("", r.out(), r::toString);
        assertEquals(message, r.err().lines().findFirst().orElse(""), r::toString);
        if (!argv[0].equals("frobnicate")) {
            assertEquals(1, r.err().lines().count(), r::toString);
        }
    }

    @Test
    void noArgumentsPrintsUsageAndExitsTwo() {
        CliRunner r = CliRunner.run();
        assertEquals(2, r.code());
        assertTrue(r.err().startsWith("usage: k2j VERB"), r::toString);
    }

    @ParameterizedTest
    @ValueSource(strings = {"generate", "logits", "tokenize", "synth", "info"})
    void eachVerbHasHelp(String verb) {
        CliRunner r = CliRunner.run(verb, "--help");
        assertEquals(0, r.code(), r::toString);
        assertTrue(r.out().startsWith("usage: k2j " + verb + " "), r::toString);
        assertEquals("", r.err());
        assertTrue(r.out().lines().count() > 2, r::toString);
    }

    @Test
    void missingModelDirectoryIsAFailureNotAUsageError(@TempDir Path tmp) {
        Path missing = tmp.resolve("no-such-model");
        for (String[] argv : new String[][] {
                {"generate", "--model", missing.toString(), "--prompt", "hi"},
                {"logits", "--model", missing.toString(), "--prompt-ids", "1", "--out", tmp.resolve("l.npy").toString()},
                {"info", "--model", missing.toString()}}) {
            CliRunner r = CliRunner.run(argv);
            assertEquals(1, r.code(), r::toString);
            assertEquals("k2j " + argv[0] + ": error: model directory (or GGUF file) not found: " + missing, r.err().strip(),
                    r::toString);
            assertFalse(r.err().contains("\tat "), "no stack trace: " + r.err());
        }
    }

    @Test
    void missingTokenizerIsAFailure(@TempDir Path tmp) {
        CliRunner r = CliRunner.run("tokenize", "--tokenizer", tmp.resolve("nope").toString(), "--text", "a");
        assertEquals(1, r.code(), r::toString);
        assertEquals("k2j tokenize: error: tokenizer not found: " + tmp.resolve("nope"), r.err().strip());
    }

    @Test
    void synthRefusesToOverwriteAModel(@TempDir Path tmp) throws Exception {
        java.nio.file.Files.writeString(tmp.resolve("config.json"), "{}");
        CliRunner r = CliRunner.run("synth", "--preset", "tiny", "--out", tmp.toString());
        assertEquals(1, r.code(), r::toString);
        assertTrue(r.err().contains("already holds a model (config.json)"), r::toString);
    }
}
