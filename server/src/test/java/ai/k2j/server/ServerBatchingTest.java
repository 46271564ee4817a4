package ai.k2j.server;

import ai.k2j.engine.BatchEngine;
import ai.k2j.engine.EngineOptions;
import ai.k2j.testing.TestCheckpoints;
import ai.k2j.engine.GenerationRequest;
import ai.k2j.engine.LanguageModel;
import ai.k2j.engine.ModelOptions;
import ai.k2j.engine.SamplingParams;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The server under load: a KV cache too small for everyone, and speculative decoding with the demo pair. */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class ServerBatchingTest {

    static final ObjectMapper JSON = new ObjectMapper();
    static final HttpClient CLIENT = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

    static String backend() {
        return TestCheckpoints.backends().getLast(); // cpu when present
    }

    static JsonNode post(OpenAiServer server, String body) throws Exception {
        HttpResponse<String> r = CLIENT.send(HttpRequest.newBuilder(URI.create(server.baseUrl() + "/v1/completions"))
                .timeout(Duration.ofSeconds(200)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), r.body());
        return JSON.readTree(r.body());
    }

    /** 8 concurrent requests whose sequences cannot all fit the KV cache at once: all succeed, none fails. */
    @Test
    void aFullKvCacheQueuesRequestsInsteadOfFailingThem() throws Exception {
        Path model = TestCheckpoints.demoDraft();
        int ctx = 128;
        int blocks = ctx / 16 + 1; // one full context plus a block: room for about one and a half sequences
        try (BatchEngine engine = BatchEngine.load(model, null, EngineOptions.defaults().withBackend(backend())
                .withThreads(2).withMaxContext(ctx).withMaxBatch(8).withKvBlocks(blocks));
             OpenAiServer server = OpenAiServer.start(engine, ServerOptions.of("127.0.0.1", 0, "demo"));
             ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<JsonNode>> replies = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                String body = JSON.createObjectNode().put("prompt", "def f" + i + "(x):").put("max_tokens", 90)
                        .put("ignore_eos", true).put("temperature", 0).put("stream", i % 2 == 0).toString();
                replies.add(pool.submit(() -> {
                    if (body.contains("\"stream\":true")) {
                        HttpResponse<String> r = CLIENT.send(HttpRequest.newBuilder(URI.create(server.baseUrl()
                                        + "/v1/completions")).timeout(Duration.ofSeconds(200))
                                .POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                                HttpResponse.BodyHandlers.ofString());
                        assertEquals(200, r.statusCode(), r.body());
                        assertTrue(r.body().contains("\"finish_reason\":\"length\"") && r.body().endsWith(
                                "data: [DONE]\n\n"), r.body());
                        return null;
                    }
                    return post(server, body);
                }));
            }
            for (Future<JsonNode> f : replies) {
                JsonNode r = f.get(250, TimeUnit.SECONDS);
                if (r != null) {
                    assertEquals(90, r.at("/usage/completion_tokens").asInt());
                    assertEquals("length", r.at("/choices/0/finish_reason").asText());
                }
            }
            assertEquals(8, engine.metrics().requestsFinished());
            assertEquals(0, engine.metrics().requestsFailed());
            assertTrue(engine.metrics().preemptions() > 0 || engine.metrics().steps() > 90 * 2,
                    "the cache could not hold everyone: requests waited or were preempted");
        }
    }

    /** Once the engine has stopped, health and completions answer 503 with an OpenAI error body. */
    @Test
    void aStoppedEngineIsReportedAs503() throws Exception {
        BatchEngine engine = BatchEngine.load(TestCheckpoints.demoDraft(), null, EngineOptions.defaults()
                .withBackend("reference").withMaxContext(64).withMaxBatch(2));
        try (OpenAiServer server = OpenAiServer.start(engine, ServerOptions.of("127.0.0.1", 0, "demo"))) {
            engine.close();
            HttpResponse<String> health = CLIENT.send(HttpRequest.newBuilder(URI.create(server.baseUrl()
                    + "/health")).GET().build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(503, health.statusCode());
            HttpResponse<String> r = CLIENT.send(HttpRequest.newBuilder(URI.create(server.baseUrl()
                    + "/v1/completions")).POST(HttpRequest.BodyPublishers.ofString("{\"prompt\": \"x\"}")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(503, r.statusCode(), r.body());
            assertEquals("server_error", JSON.readTree(r.body()).at("/error/type").asText());
        }
    }

    /**
     * The demo target with the demo draft: every request speculates inside the shared batch, greedy outputs equal
     * the target's own greedy decoding, and usage reports the drafts.
     */
    @Test
    void speculativeRequestsInTheBatchMatchPlainGreedyDecoding() throws Exception {
        Path target = TestCheckpoints.repoRoot().resolve("models/demo/target");
        Path draft = TestCheckpoints.demoDraft();
        List<String> prompts = List.of("def fibonacci(n):\n", "import os\nimport sys\n", "class Stack:\n",
                "for i in range(10):\n");
        try (BatchEngine engine = BatchEngine.load(target, draft, EngineOptions.defaults().withBackend(backend())
                .withThreads(2).withMaxContext(256).withMaxBatch(4));
             OpenAiServer server = OpenAiServer.start(engine, ServerOptions.of("127.0.0.1", 0, "target"));
             LanguageModel alone = LanguageModel.load(target, ModelOptions.defaults().withBackend(backend())
                     .withThreads(2).withMaxContext(256));
             ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<JsonNode>> replies = new ArrayList<>();
            for (String p : prompts) {
                replies.add(pool.submit(() -> post(server, JSON.createObjectNode().put("prompt", p)
                        .put("max_tokens", 40).put("temperature", 0).put("ignore_eos", true).toString())));
            }
            int proposed = 0;
            int accepted = 0;
            for (int i = 0; i < prompts.size(); i++) {
                JsonNode r = replies.get(i).get(250, TimeUnit.SECONDS);
                String expected = alone.generate(new GenerationRequest(alone.encode(prompts.get(i)), 40,
                        SamplingParams.greedy(), List.of(), true), null).text();
                assertEquals(expected, r.at("/choices/0/text").asText(), "prompt " + i);
                proposed += r.at("/usage/draft_tokens_proposed").asInt();
                accepted += r.at("/usage/draft_tokens_accepted").asInt();
            }
            assertTrue(proposed > 0 && accepted > 0 && accepted <= proposed, proposed + " / " + accepted);
            assertEquals(engine.metrics().draftTokensAccepted(), accepted);
            JsonNode plain = post(server, JSON.createObjectNode().put("prompt", "x = 1").put("max_tokens", 5)
                    .put("speculative", false).toString());
            assertTrue(plain.at("/usage/draft_tokens_proposed").isMissingNode(), "speculative: false opts out");
        }
    }
}
