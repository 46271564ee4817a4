package ai.k2j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The README's main command: {@code k2j generate --prompt TEXT} with no model runs the committed demo model with
 * its draft, speculative decoding on, printing the text and the acceptance rate; the speculative flags; and
 * {@code spec-bench}.
 */
class SpeculativeCliTest {

    @Test
    void generateWithOnlyAPromptRunsTheDemoPairSpeculatively() throws Exception {
        CliRunner r = CliRunner.run("generate", "--prompt", "def quicksort(arr):", "--max-tokens", "40",
                "--threads", "2");
        assertEquals(0, r.code(), r::toString);
        assertTrue(r.out().strip().length() > 20, "the generated text goes to stdout: " + r);
        assertTrue(r.err().contains("speculative decoding (draft "), r::toString);
        assertTrue(r.err().contains("models/demo/draft, draft adaptive k0=4): acceptance rate "), r::toString);

        CliRunner plain = CliRunner.run("generate", "--prompt", "def quicksort(arr):", "--max-tokens", "40",
                "--threads", "2", "--no-draft");
        assertEquals(0, plain.code(), plain::toString);
        assertEquals(plain.out(), r.out(), "greedy speculative text equals plain greedy text");
        assertFalse(plain.err().contains("speculative"), plain::toString);
    }

    @Test
    void jsonCarriesTheSpeculativeStatistics() throws Exception {
        CliRunner r = CliRunner.run("generate", "--prompt", "import numpy as np\n", "--max-tokens", "30",
                "--threads", "2", "--draft-tokens", "3", "--json");
        assertEquals(0, r.code(), r::toString);
        JsonNode o = Cli.JSON.readTree(r.out());
        JsonNode s = o.get("speculation");
        assertTrue(s != null && s.isObject(), r::toString);
        assertEquals("draft k=3", s.get("speculation").asText());
        assertTrue(s.get("draft").asText().endsWith("models/demo/draft"), s::toString);
        double alpha = s.get("acceptance_rate").asDouble();
        assertTrue(alpha > 0 && alpha <= 1, s::toString);
        assertEquals(s.get("accepted").asLong() + s.get("target_passes").asLong(), s.get("emitted").asLong(),
                s::toString);
        assertEquals(30, o.get("completion_tokens").asInt());

        CliRunner lookup = CliRunner.run("generate", "--prompt", "x = 1\ny = 2\nx = 1\ny =", "--max-tokens", "12",
                "--threads", "2", "--lookup", "--json");
        assertEquals(0, lookup.code(), lookup::toString);
        JsonNode ls = Cli.JSON.readTree(lookup.out()).get("speculation");
        assertEquals("lookup adaptive k0=6 n=3", ls.get("speculation").asText(), lookup::toString);
        assertTrue(ls.get("draft").isNull());
        long rounds = 0;
        for (JsonNode n : ls.get("rounds_by_draft_length")) {
            rounds += n.asLong();
        }
        assertEquals(ls.get("target_passes").asLong(), rounds, "every target pass is counted by its draft length");
    }

    static Stream<Arguments> usageErrors() {
        return Stream.of(
                Arguments.of("k2j generate: --draft-tokens must be in [1, 15], got 0",
                        new String[] {"generate", "--prompt", "a", "--draft-tokens", "0"}),
                Arguments.of("k2j generate: --lookup drafts without a model: give --lookup or --draft DIR, not both",
                        new String[] {"generate", "--prompt", "a", "--lookup", "--draft", "d"}),
                Arguments.of("k2j generate: --ngram needs --lookup",
                        new String[] {"generate", "--prompt", "a", "--ngram", "2"}),
                Arguments.of("k2j generate: --ngram must be in [1, 8], got 9",
                        new String[] {"generate", "--prompt", "a", "--lookup", "--ngram", "9"}),
                Arguments.of("k2j generate: --no-draft contradicts --draft d",
                        new String[] {"generate", "--prompt", "a", "--no-draft", "--draft", "d"}),
                Arguments.of("k2j generate: --draft-tokens and --adaptive need a draft model (--draft DIR) or --lookup",
                        new String[] {"generate", "--prompt", "a", "--draft", "none", "--adaptive"}),
                Arguments.of("k2j generate: --draft needs a value", new String[] {"generate", "--prompt", "a", "--draft"}),
                Arguments.of("k2j spec-bench: --draft-tokens values must be in [1, 15], got 16",
                        new String[] {"spec-bench", "--draft-tokens", "2,16"}),
                Arguments.of("k2j spec-bench: top_p must be in (0, 1], got 2.0",
                        new String[] {"spec-bench", "--top-p", "2"}),
                // bench --draft is the speculative benchmark (plain bench has no --draft-tokens flag)
                Arguments.of("k2j bench: --draft-tokens values must be in [1, 15], got 16",
                        new String[] {"bench", "--draft", "d", "--draft-tokens", "2,16"}));
    }

    @ParameterizedTest
    @MethodSource("usageErrors")
    void speculativeUsageErrorsExitTwo(String message, String[] argv) {
        CliRunner r = CliRunner.run(argv);
        assertEquals(2, r.code(), r::toString);
        assertEquals(message, r.err().strip(), r::toString);
    }

    @Test
    void aMissingDraftDirectoryIsAFailureNamingIt() {
        CliRunner r = CliRunner.run("generate", "--prompt", "a", "--draft", "/nonexistent/draft");
        assertEquals(1, r.code(), r::toString);
        assertTrue(r.err().contains("draft model directory (or GGUF file) not found: /nonexistent/draft"), r::toString);
    }

    @Test
    void specBenchComparesPlainAndSpeculativeInOneRun() throws Exception {
        CliRunner r = CliRunner.run("spec-bench", "--num-prompts", "2", "--prompt-tokens", "32", "--max-tokens", "12",
                "--warmup", "0", "--draft-tokens", "2,3", "--lookup", "--threads", "2", "--json");
        assertEquals(0, r.code(), r::toString);
        JsonNode o = Cli.JSON.readTree(r.out());
        assertEquals(2, o.get("prompts").asInt());
        assertTrue(o.get("plain_decode_tokens_per_second").asDouble() > 0);
        JsonNode rows = o.get("rows");
        assertEquals(3, rows.size(), r::toString);
        assertEquals("draft k=2", rows.get(0).get("speculation").asText());
        assertEquals("lookup k=6 n=3", rows.get(2).get("speculation").asText());
        for (JsonNode row : rows) {
            assertTrue(row.get("same_tokens_as_plain").asBoolean(), "greedy speculative output differs: " + row);
            double alpha = row.get("alpha").asDouble();
            double k = row.get("k").asDouble();
            double c = row.get("c").asDouble();
            double expected = alpha >= 1 ? (k + 1) / (1 + c * k)
                    : (1 - Math.pow(alpha, k + 1)) / ((1 - alpha) * (1 + c * k));
            assertEquals(expected, row.get("theoretical_speedup").asDouble(), 1e-9, row::toString);
            assertEquals(row.get("speedup").asDouble() / expected, row.get("fraction_of_theory").asDouble(), 1e-9);
        }
    }
}
