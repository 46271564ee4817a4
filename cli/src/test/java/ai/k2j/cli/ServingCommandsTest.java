package ai.k2j.cli;

import ai.k2j.testing.TestCheckpoints;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** serve, think and eval on the demo draft model (reference backend, small budgets). */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class ServingCommandsTest {

    static final ObjectMapper JSON = new ObjectMapper();

    static String model() {
        return TestCheckpoints.demoDraft().toString();
    }

    static String dataset() {
        return TestCheckpoints.repoRoot().resolve("scaffold/src/test/resources/eval/arithmetic.jsonl").toString();
    }

    /** Runs a command; returns stdout. */
    static String run(Command cmd, String... argv) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = cmd.run(Args.parse(argv), new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        assertEquals(0, code, err.toString(StandardCharsets.UTF_8));
        return out.toString(StandardCharsets.UTF_8);
    }

    static String[] withEngine(String... argv) {
        List<String> all = new ArrayList<>(List.of(argv));
        all.addAll(List.of("--model", model(), "--backend", "reference", "--ctx", "256", "--max-batch", "8"));
        return all.toArray(String[]::new);
    }

    @Test
    void thinkReportsThePlanEveryCandidateAndTheChoice() throws Exception {
        JsonNode r = JSON.readTree(run(new ThinkCommand(), withEngine("--question", "What is 2 + 3?", "--max-tokens",
                "8", "--plan-max-tokens", "6", "--best-of", "3", "--seed", "1", "--json")));
        assertEquals(3, r.get("candidates").size());
        assertTrue(r.get("plan").isTextual());
        int total = r.get("plan_tokens").asInt() + r.get("verifier_tokens").asInt();
        for (JsonNode c : r.get("candidates")) {
            assertTrue(c.get("tokens").asInt() >= 1 && c.get("tokens").asInt() <= 8);
            total += c.get("tokens").asInt();
        }
        assertEquals(total, r.get("total_tokens").asInt());
        int chosen = r.get("chosen").asInt();
        assertEquals(r.at("/candidates/" + chosen + "/tokens").asInt(), r.get("response_tokens").asInt());
        assertEquals("majority", r.get("verifier").asText());
        String text = run(new ThinkCommand(), withEngine("--question", "What is 2 + 3?", "--max-tokens", "6",
                "--no-plan", "--best-of", "2", "--verifier", "judge", "--seed", "2"));
        assertTrue(text.contains("== candidate 1") && text.contains("== choice (judge)"), text);
        assertTrue(!text.contains("== plan"), "--no-plan");
    }

    @Test
    void evalReportsPassAt1WithAndWithoutTheScaffold() throws Exception {
        JsonNode r = JSON.readTree(run(new EvalCommand(), withEngine("--data", dataset(), "--limit", "2", "--runs",
                "2", "--max-tokens", "8", "--plan-max-tokens", "4", "--json")));
        assertEquals(2, r.get("reports").size());
        assertEquals("plain", r.at("/reports/0/config").asText());
        assertEquals("plan + best-of-3 (majority)", r.at("/reports/1/config").asText());
        assertEquals(1.0, r.get("temperature").asDouble());
        assertEquals(0.95, r.get("top_p").asDouble());
        for (JsonNode rep : r.get("reports")) {
            assertEquals(2, rep.get("items").size());
            double p = rep.get("pass_at_1").asDouble();
            assertTrue(p >= 0 && p <= 1);
            assertEquals(2, rep.at("/items/0/given").size());
        }
        assertTrue(r.at("/reports/1/mean_total_tokens").asDouble() > r.at("/reports/0/mean_total_tokens").asDouble());
        String table = run(new EvalCommand(), withEngine("--data", dataset(), "--limit", "1", "--runs", "1",
                "--max-tokens", "4", "--scaffold", "off"));
        assertTrue(table.contains("pass@1") && table.contains("plain"), table);
    }

    @Test
    void serveStartsAnOpenAiServer() throws Exception {
        ServeCommand serve = new ServeCommand();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        try (ServeCommand.Running running = serve.start(Args.parse(withEngine("--port", "0", "--served-model-name",
                "demo")), new PrintStream(err, true, StandardCharsets.UTF_8))) {
            String url = running.server().baseUrl();
            assertTrue(err.toString(StandardCharsets.UTF_8).contains(url));
            HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(url
                    + "/v1/models")).GET().build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, r.statusCode());
            assertEquals("demo", JSON.readTree(r.body()).at("/data/0/id").asText());
        }
    }

    /** Without --model, serve runs the demo target with its draft under the documented id, like generate. */
    @Test
    void serveWithoutModelServesTheDemoPairAsK2jDemo() throws Exception {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        try (ServeCommand.Running running = new ServeCommand().start(Args.parse(new String[] {"--port", "0",
                "--backend", "reference", "--ctx", "256", "--max-batch", "4"}),
                new PrintStream(err, true, StandardCharsets.UTF_8))) {
            assertTrue(running.engine().hasDraft(), "the demo draft is loaded");
            String log = err.toString(StandardCharsets.UTF_8);
            assertTrue(log.contains("k2j-demo") && log.contains("models/demo/target")
                    && log.contains("draft models/demo/draft"), log);
            String url = running.server().baseUrl();
            HttpClient http = HttpClient.newHttpClient();
            HttpResponse<String> models = http.send(HttpRequest.newBuilder(URI.create(url + "/v1/models")).GET()
                    .build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, models.statusCode());
            JsonNode data = JSON.readTree(models.body()).get("data");
            assertEquals(1, data.size(), models.body());
            assertEquals(ServingFlags.DEMO_MODEL_ID, data.at("/0/id").asText());
            for (String model : new String[] {null, "k2j-demo", "gpt-4o"}) {
                String body = "{" + (model == null ? "" : "\"model\":\"" + model + "\",")
                        + "\"prompt\":\"def quicksort(arr):\",\"max_tokens\":3,\"temperature\":0}";
                HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(url + "/v1/completions"))
                        .header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
                JsonNode json = JSON.readTree(r.body());
                if ("gpt-4o".equals(model)) {
                    assertEquals(404, r.statusCode(), r.body());
                    assertEquals("model_not_found", json.at("/error/code").asText(), r.body());
                    assertEquals("model", json.at("/error/param").asText(), r.body());
                } else {
                    assertEquals(200, r.statusCode(), model + ": " + r.body());
                    assertEquals("k2j-demo", json.get("model").asText(), r.body());
                    assertEquals(3, json.at("/usage/completion_tokens").asInt(), r.body());
                }
            }
        }
        assertThrows(UsageException.class, () -> new ServeCommand().start(Args.parse(new String[] {"--draft", "none",
                "--draft-tokens", "3"}), System.err), "--draft-tokens with the draft turned off");
    }

    @Test
    void theVerbsAreWiredIntoMain() {
        for (String verb : List.of("serve", "think", "eval")) {
            CliRunner help = CliRunner.run(verb, "--help");
            assertEquals(0, help.code(), help.toString());
            assertTrue(help.out().contains("usage: k2j " + verb), help.toString());
            assertTrue(CliRunner.run("--help").out().contains(verb + " "), "listed in k2j --help");
        }
        CliRunner missing = CliRunner.run("eval", "--model", model());
        assertEquals(2, missing.code(), missing.toString());
        assertTrue(missing.err().contains("--data"), missing.toString());
        CliRunner badPort = CliRunner.run("serve", "--model", model(), "--port", "http");
        assertEquals(2, badPort.code(), badPort.toString());
        CliRunner think = CliRunner.run(withEngine("think", "--question", "1 + 1?", "--max-tokens", "4",
                "--plan-max-tokens", "3", "--seed", "5", "--json"));
        assertEquals(0, think.code(), think.toString());
        assertTrue(think.out().contains("\"candidates\""), think.toString());
    }

    @Test
    void badFlagsAreUsageErrors() {
        assertThrows(UsageException.class, () -> new ThinkCommand().run(Args.parse(withEngine()), System.out,
                System.err), "--question is required");
        assertThrows(UsageException.class, () -> new ThinkCommand().run(Args.parse(withEngine("--question", "q",
                "--verifier", "oracle")), System.out, System.err));
        assertThrows(UsageException.class, () -> new ThinkCommand().run(Args.parse(withEngine("--question", "q",
                "--reasoning-prompt", "no placeholders")), System.out, System.err));
        assertThrows(UsageException.class, () -> new EvalCommand().run(Args.parse(withEngine("--data", dataset(),
                "--scaffold", "maybe")), System.out, System.err));
        assertThrows(UsageException.class, () -> new EvalCommand().run(Args.parse(withEngine("--data", dataset(),
                "--runs", "0")), System.out, System.err));
        assertThrows(UsageException.class, () -> new ServeCommand().start(Args.parse(withEngine("--port", "70000")),
                System.err));
        assertThrows(UsageException.class, () -> new ServeCommand().start(Args.parse(withEngine("--prot", "1")),
                System.err));
        assertThrows(UsageException.class, () -> new ServeCommand().start(Args.parse(withEngine("--draft-tokens",
                "3")), System.err), "--draft-tokens without --draft");
        IllegalArgumentException missing = assertThrows(IllegalArgumentException.class, () -> new ServeCommand()
                .start(Args.parse(new String[] {"--model", "/nonexistent/model"}), System.err));
        assertTrue(missing.getMessage().contains("/nonexistent/model"));
    }
}
