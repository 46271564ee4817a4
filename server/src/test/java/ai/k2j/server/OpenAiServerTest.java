package ai.k2j.server;

import ai.k2j.engine.BatchEngine;
import ai.k2j.engine.EngineOptions;
import ai.k2j.testing.TestCheckpoints;
import ai.k2j.engine.GenerationRequest;
import ai.k2j.engine.GenerationResult;
import ai.k2j.engine.LanguageModel;
import ai.k2j.engine.ModelOptions;
import ai.k2j.engine.SamplingParams;
import ai.k2j.tokenizer.ChatMessage;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The server over loopback (127.0.0.1, an ephemeral port) with concurrent clients; every test is time-bounded. */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class OpenAiServerTest {

    static final ObjectMapper JSON = new ObjectMapper();
    static final int CTX = 256;

    static Path modelDir;
    static BatchEngine engine;
    static OpenAiServer server;
    static LanguageModel single;
    static HttpClient client;

    @BeforeAll
    static void start() {
        modelDir = TestCheckpoints.demoDraft(); // trained: distinct prompts give distinct continuations
        engine = BatchEngine.load(modelDir, null, EngineOptions.defaults().withBackend("reference")
                .withMaxContext(CTX).withMaxBatch(8));
        server = OpenAiServer.start(engine, ServerOptions.of("127.0.0.1", 0, "tiny").withHeartbeatMillis(100));
        single = LanguageModel.load(modelDir, ModelOptions.defaults().withBackend("reference").withMaxContext(CTX));
        client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
    }

    @AfterAll
    static void stop() {
        server.close();
        engine.close();
        single.close();
    }

    // ------------------------------------------------------------------------------------------------ helpers

    record Reply(int status, JsonNode body, String raw) {
    }

    static Reply post(String path, String body) throws Exception {
        HttpRequest req = HttpRequest.newBuilder(URI.create(server.baseUrl() + path))
                .timeout(Duration.ofSeconds(120))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build();
        HttpResponse<String> r = client.send(req, HttpResponse.BodyHandlers.ofString());
        JsonNode json = null;
        try {
            json = JSON.readTree(r.body());
        } catch (Exception e) {
            // not JSON (an SSE stream)
        }
        return new Reply(r.statusCode(), json, r.body());
    }

    static Reply get(String path) throws Exception {
        HttpRequest req = HttpRequest.newBuilder(URI.create(server.baseUrl() + path))
                .timeout(Duration.ofSeconds(30)).GET().build();
        HttpResponse<String> r = client.send(req, HttpResponse.BodyHandlers.ofString());
        JsonNode json = null;
        try {
            json = JSON.readTree(r.body());
        } catch (Exception e) {
            // text
        }
        return new Reply(r.statusCode(), json, r.body());
    }

    /** The "data:" payloads of an SSE body, [DONE] included. */
    static List<String> events(String raw) {
        List<String> out = new ArrayList<>();
        for (String line : raw.split("\n")) {
            if (line.startsWith("data: ")) {
                out.add(line.substring(6));
            }
        }
        return out;
    }

    /** Text of choice 0 of a stream (deltas concatenated) and its finish reason. */
    static String[] streamedText(String raw, boolean chat) throws Exception {
        StringBuilder text = new StringBuilder();
        String finish = null;
        List<String> ev = events(raw);
        assertEquals("[DONE]", ev.getLast(), "a stream ends with [DONE]");
        for (String e : ev.subList(0, ev.size() - 1)) {
            JsonNode chunk = JSON.readTree(e);
            assertEquals(chat ? "chat.completion.chunk" : "text_completion", chunk.get("object").asText());
            for (JsonNode c : chunk.get("choices")) {
                text.append(chat ? c.path("delta").path("content").asText("") : c.get("text").asText());
                if (!c.get("finish_reason").isNull()) {
                    finish = c.get("finish_reason").asText();
                }
            }
        }
        return new String[] {text.toString(), finish};
    }

    static String chatBody(String user, int maxTokens, double temperature, long seed, boolean stream) {
        ObjectNode b = JSON.createObjectNode();
        b.put("model", "tiny");
        b.putArray("messages").addObject().put("role", "user").put("content", user);
        b.put("max_tokens", maxTokens);
        b.put("temperature", temperature);
        b.put("seed", seed);
        b.put("stream", stream);
        return b.toString();
    }

    static GenerationResult alone(int[] prompt, int maxTokens, SamplingParams s, List<String> stop) {
        synchronized (single) {
            return single.generate(new GenerationRequest(prompt, maxTokens, s, stop, false), null);
        }
    }

    // ------------------------------------------------------------------------------------------------ tests

    /**
     * 12 concurrent clients — chat and text completions, streaming and not, greedy and seeded — each get exactly
     * the text the single-sequence model produces for their own prompt and seed: no stream ever carries another
     * client's tokens.
     */
    @Test
    void concurrentClientsEachGetTheirOwnOutput() throws Exception {
        int clients = 12;
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<String>> failures = new ArrayList<>();
            java.util.Set<String> distinct = java.util.concurrent.ConcurrentHashMap.newKeySet();
            for (int i = 0; i < clients; i++) {
                int id = i;
                failures.add(pool.submit(() -> {
                    boolean chat = id % 2 == 0;
                    boolean stream = id % 3 != 0;
                    double temperature = id % 4 == 1 ? 0.9 : 0;
                    long seed = 500 + id;
                    int maxTokens = 8 + id;
                    String user = List.of("import numpy as np\n", "def fibonacci(n):", "class Stack:\n    def",
                            "for i in range(10):", "with open(path) as f:", "# parse the arguments\n",
                            "if __name__ == '__main__':", "try:\n    import json", "def __init__(self, name):",
                            "return sorted(items, key=", "x = {'a': 1, 'b':", "async def fetch(url):")
                            .get(id);
                    int[] prompt = chat ? single.encodeChat(List.of(ChatMessage.user(user))) : single.encode(user);
                    String expected = alone(prompt, maxTokens, new SamplingParams(temperature, 1, 0, 0, seed),
                            List.of()).text();
                    String body;
                    if (chat) {
                        body = chatBody(user, maxTokens, temperature, seed, stream);
                    } else {
                        body = JSON.createObjectNode().put("prompt", user).put("max_tokens", maxTokens)
                                .put("temperature", temperature).put("seed", seed).put("stream", stream).toString();
                    }
                    Reply r = post(chat ? "/v1/chat/completions" : "/v1/completions", body);
                    if (r.status() != 200) {
                        return "client " + id + ": status " + r.status() + " " + r.raw();
                    }
                    String got = stream ? streamedText(r.raw(), chat)[0] : chat
                            ? r.body().at("/choices/0/message/content").asText()
                            : r.body().at("/choices/0/text").asText();
                    distinct.add(got);
                    return got.equals(expected) ? null : "client " + id + ": expected '" + expected + "' got '" + got
                            + "'";
                }));
            }
            for (Future<String> f : failures) {
                String failure = f.get(200, TimeUnit.SECONDS);
                assertEquals(null, failure);
            }
            assertTrue(distinct.size() >= clients - 1, "the clients' outputs differ, so a mix-up would show: "
                    + distinct.size() + " distinct");
        }
    }

    @Test
    void nonStreamingResponseHasTheOpenAiShape() throws Exception {
        Reply r = post("/v1/chat/completions", chatBody("hello", 5, 0, 1, false));
        assertEquals(200, r.status(), r.raw());
        JsonNode b = r.body();
        assertTrue(b.get("id").asText().startsWith("chatcmpl-"));
        assertEquals("chat.completion", b.get("object").asText());
        assertEquals("tiny", b.get("model").asText());
        assertTrue(b.get("created").asLong() > 1_600_000_000L);
        JsonNode c = b.at("/choices/0");
        assertEquals(0, c.get("index").asInt());
        assertEquals("assistant", c.at("/message/role").asText());
        String finish = c.get("finish_reason").asText();
        assertTrue(finish.equals("length") || finish.equals("stop"), finish);
        int prompt = single.encodeChat(List.of(ChatMessage.user("hello"))).length;
        assertEquals(prompt, b.at("/usage/prompt_tokens").asInt());
        int completion = b.at("/usage/completion_tokens").asInt();
        assertTrue(completion >= 1 && completion <= 5);
        assertEquals(prompt + completion, b.at("/usage/total_tokens").asInt());
    }

    @Test
    void severalChoicesAndUsageInAStream() throws Exception {
        ObjectNode body = (ObjectNode) JSON.readTree(chatBody("import os", 6, 1.0, 9, true));
        body.put("n", 3);
        body.putObject("stream_options").put("include_usage", true);
        body.put("ignore_eos", true);
        Reply r = post("/v1/chat/completions", body.toString());
        assertEquals(200, r.status(), r.raw());
        List<String> ev = events(r.raw());
        assertEquals("[DONE]", ev.getLast());
        StringBuilder[] texts = {new StringBuilder(), new StringBuilder(), new StringBuilder()};
        int roles = 0;
        int finishes = 0;
        JsonNode usage = null;
        for (String e : ev.subList(0, ev.size() - 1)) {
            JsonNode chunk = JSON.readTree(e);
            if (chunk.get("choices").isEmpty()) {
                usage = chunk.get("usage");
                continue;
            }
            assertTrue(chunk.get("usage").isNull(), "usage is null on content chunks");
            JsonNode c = chunk.at("/choices/0");
            int i = c.get("index").asInt();
            if (c.at("/delta/role").isTextual()) {
                roles++;
            }
            texts[i].append(c.at("/delta/content").asText(""));
            if (!c.get("finish_reason").isNull()) {
                assertEquals("length", c.get("finish_reason").asText());
                finishes++;
            }
        }
        assertEquals(3, roles);
        assertEquals(3, finishes);
        assertNotNull(usage, "include_usage adds a final usage chunk");
        assertEquals(18, usage.get("completion_tokens").asInt());
        // choice i is the n = 1 result with seed + i
        int[] prompt = single.encodeChat(List.of(ChatMessage.user("import os")));
        for (int i = 0; i < 3; i++) {
            GenerationResult expected;
            synchronized (single) {
                expected = single.generate(new GenerationRequest(prompt, 6, new SamplingParams(1.0, 1, 0, 0, 9 + i),
                        List.of(), true), null);
            }
            assertEquals(expected.text(), texts[i].toString(), "choice " + i);
        }
    }

    @Test
    void stopStringsEndTheCompletion() throws Exception {
        String prompt = "def f(x):\n";
        int[] ids = single.encode(prompt);
        GenerationResult free = alone(ids, 30, SamplingParams.greedy(), List.of());
        String text = free.text();
        if (text.length() < 4) {
            return; // the random model ended at once: nothing to cut
        }
        String stop = text.substring(2, 4);
        Reply r = post("/v1/completions", JSON.createObjectNode().put("prompt", prompt).put("max_tokens", 30)
                .put("temperature", 0).put("stop", stop).toString());
        assertEquals(200, r.status(), r.raw());
        assertEquals("stop", r.body().at("/choices/0/finish_reason").asText());
        String got = r.body().at("/choices/0/text").asText();
        assertEquals(text.substring(0, text.indexOf(stop)), got);
    }

    @Test
    void malformedAndInvalidRequestsGet4xxWithAnOpenAiErrorBody() throws Exception {
        String chat = "/v1/chat/completions";
        String msgs = "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]";
        expectError(post(chat, "{not json"), 400, null);
        expectError(post(chat, ""), 400, null);
        expectError(post(chat, "[1, 2]"), 400, null);
        expectError(post(chat, "{" + msgs + ", \"max_tokens\": 2} trailing"), 400, null);
        expectError(post(chat, "{" + msgs + ", \"max_tokens\": 2, \"max_tokens\": 3}"), 400, null);
        expectError(post(chat, "{" + msgs + ", \"temprature\": 0.5}"), 400, "temprature");
        expectError(post(chat, "{" + msgs + ", \"temperature\": \"hot\"}"), 400, "temperature");
        expectError(post(chat, "{" + msgs + ", \"temperature\": 2.5}"), 400, "temperature");
        expectError(post(chat, "{" + msgs + ", \"max_tokens\": -1}"), 400, "max_tokens");
        expectError(post(chat, "{" + msgs + ", \"max_tokens\": 0}"), 400, "max_tokens");
        expectError(post(chat, "{" + msgs + ", \"max_tokens\": 1.5}"), 400, "max_tokens");
        expectError(post(chat, "{" + msgs + ", \"max_tokens\": 99999999999}"), 400, "max_tokens");
        Reply huge = post(chat, "{" + msgs + ", \"max_tokens\": 100000}");
        expectError(huge, 400, "max_tokens");
        assertEquals("context_length_exceeded", huge.body().at("/error/code").asText());
        expectError(post(chat, "{" + msgs + ", \"n\": 100}"), 400, "n");
        expectError(post(chat, "{" + msgs + ", \"stream_options\": {\"include_usage\": true}}"), 400,
                "stream_options");
        expectError(post(chat, "{" + msgs + ", \"top_logprobs\": 3}"), 400, "top_logprobs");
        expectError(post(chat, "{" + msgs + ", \"logprobs\": true, \"top_logprobs\": 21}"), 400, "top_logprobs");
        String tool = "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"add\", \"parameters\":"
                + " {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}}}}}]";
        Reply unknownTool = post(chat, "{" + msgs + ", " + tool + ", \"tool_choice\": {\"type\": \"function\","
                + " \"function\": {\"name\": \"delete_everything\"}}}");
        expectError(unknownTool, 400, "tool_choice");
        assertTrue(unknownTool.body().at("/error/message").asText().contains("delete_everything"));
        expectError(post(chat, "{" + msgs + ", \"tool_choice\": \"required\"}"), 400, "tool_choice");
        expectError(post(chat, "{" + msgs + ", " + tool + ", \"tool_choice\": \"sometimes\"}"), 400, "tool_choice");
        expectError(post(chat, "{" + msgs + ", \"tools\": [{\"type\": \"function\", \"function\": {\"name\":"
                + " \"a b\"}}]}"), 400, "tools[0].function.name");
        Reply pattern = post(chat, "{" + msgs + ", \"response_format\": {\"type\": \"json_schema\", \"json_schema\":"
                + " {\"name\": \"x\", \"schema\": {\"type\": \"object\", \"properties\": {\"s\": {\"type\":"
                + " \"string\", \"pattern\": \"^a+$\"}}}}}}");
        expectError(pattern, 400, "response_format.json_schema.schema");
        assertEquals("unsupported_schema", pattern.body().at("/error/code").asText());
        assertTrue(pattern.body().at("/error/message").asText().contains("'pattern'"));
        expectError(post(chat, "{" + msgs + ", \"response_format\": {\"type\": \"yaml\"}}"), 400,
                "response_format.type");
        expectError(post(chat, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\", \"tool_call_id\":"
                + " \"c1\"}]}"), 400, "messages[0].tool_call_id");
        expectError(post("/v1/completions", "{\"prompt\": \"x\", \"logprobs\": 6}"), 400, "logprobs");
        expectError(post(chat, "{" + msgs + ", \"presence_penalty\": 0.5}"), 400, "presence_penalty");
        expectError(post(chat, "{" + msgs + ", \"stop\": [1]}"), 400, "stop");
        expectError(post(chat, "{" + msgs + ", \"speculative\": true}"), 400, "speculative");
        expectError(post(chat, "{\"messages\": []}"), 400, "messages");
        expectError(post(chat, "{\"messages\": [{\"role\": \"wizard\", \"content\": \"x\"}]}"), 400,
                "messages[0].role");
        expectError(post(chat, "{\"messages\": [{\"role\": \"user\", \"content\": 5}]}"), 400,
                "messages[0].content");
        expectError(post(chat, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\", \"tool_calls\": []}]}"), 400,
                "messages[0].tool_calls");
        Reply wrongModel = post(chat, "{\"model\": \"gpt-4\", " + msgs + "}");
        expectError(wrongModel, 404, "model");
        String longPrompt = "x ".repeat(CTX * 2);
        Reply tooLong = post("/v1/completions", JSON.createObjectNode().put("prompt", longPrompt).toString());
        expectError(tooLong, 400, "prompt");
        assertEquals("context_length_exceeded", tooLong.body().at("/error/code").asText());
        expectError(post("/v1/completions", "{\"prompt\": [1, 99999]}"), 400, "prompt");
        expectError(post("/v1/completions", "{\"prompt\": \"x\", \"echo\": true}"), 400, "echo");
        expectError(post("/v1/completions", "{\"prompt\": \"x\", \"messages\": []}"), 400, "messages");
        expectError(post("/v1/completions", "{\"prompt\": \"x\", \"best_of\": 3}"), 400, "best_of");
        expectError(post("/v1/completions", "{\"prompt\": \"" + "y".repeat(9 << 20) + "\"}"), 413, null);
        expectError(get("/v1/chat/completions"), 405, null);
        expectError(get("/nope"), 404, null);
        expectError(get("/v1/models/gpt-4"), 404, "model");
        // the common OpenAI client fields at their neutral values are fine
        Reply ok = post(chat, "{\"model\": \"tiny\", " + msgs + ", \"max_tokens\": 2, \"user\": \"u1\","
                + " \"presence_penalty\": 0, \"frequency_penalty\": 0, \"logprobs\": false, \"n\": 1,"
                + " \"stream\": false, \"seed\": 3, \"stop\": null, \"logit_bias\": {}, \"top_logprobs\": 0,"
                + " \"response_format\": {\"type\": \"text\"}, \"tools\": [], \"tool_choice\": \"none\","
                + " \"parallel_tool_calls\": true, \"store\": false, \"top_k\": 5, \"min_p\": 0.05}");
        assertEquals(200, ok.status(), ok.raw());
        Reply ids = post("/v1/completions", "{\"prompt\": [1, 2, 3], \"max_tokens\": 2, \"temperature\": 0}");
        assertEquals(200, ids.status(), ids.raw());
        assertEquals(3, ids.body().at("/usage/prompt_tokens").asInt());
    }

    static void expectError(Reply r, int status, String param) {
        assertEquals(status, r.status(), r.raw());
        JsonNode e = r.body().get("error");
        assertNotNull(e, "OpenAI error body: " + r.raw());
        assertFalse(e.get("message").asText().isBlank());
        assertTrue(e.get("type").isTextual());
        assertTrue(e.has("code"));
        if (param != null) {
            assertEquals(param, e.get("param").asText(), r.raw());
        } else {
            assertTrue(e.has("param"));
        }
    }

    @Test
    void modelsHealthAndMetrics() throws Exception {
        Reply models = get("/v1/models");
        assertEquals(200, models.status());
        assertEquals("list", models.body().get("object").asText());
        assertEquals("tiny", models.body().at("/data/0/id").asText());
        assertEquals(CTX, models.body().at("/data/0/max_model_len").asInt());
        assertEquals(200, get("/v1/models/tiny").status());
        Reply health = get("/health");
        assertEquals(200, health.status());
        assertEquals("ok", health.body().get("status").asText());
        assertEquals(200, post("/v1/chat/completions", chatBody("x", 3, 0, 1, true)).status());
        Reply metrics = get("/metrics");
        assertEquals(200, metrics.status());
        String m = metrics.raw();
        for (String name : List.of("k2j_queue_depth{model=\"tiny\"} ", "k2j_generation_tokens_per_second",
                "k2j_time_to_first_token_seconds_bucket{model=\"tiny\",le=\"+Inf\"}",
                "k2j_inter_token_latency_seconds_count", "k2j_spec_acceptance_rate", "k2j_kv_cache_usage_ratio",
                "k2j_http_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"}")) {
            assertTrue(m.contains(name), name + " in\n" + m);
        }
        long generated = Long.parseLong(m.lines().filter(l -> l.startsWith("k2j_generation_tokens_total"))
                .findFirst().orElseThrow().replaceAll(".* ", ""));
        assertTrue(generated > 0);
    }

    /** A streaming client that disconnects has its sequence cancelled and its KV blocks freed. */
    @Test
    void aClientDisconnectCancelsItsSequence() throws Exception {
        long cancelledBefore = engine.metrics().choicesCancelled();
        String body = JSON.createObjectNode().put("prompt", "class A:").put("max_tokens", CTX - 10)
                .put("ignore_eos", true).put("stream", true).put("temperature", 0).toString();
        try (Socket socket = new Socket("127.0.0.1", server.port())) {
            socket.setSoTimeout(60_000);
            OutputStream out = socket.getOutputStream();
            out.write(("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    + "Content-Length: " + body.getBytes(StandardCharsets.UTF_8).length + "\r\n\r\n" + body)
                    .getBytes(StandardCharsets.UTF_8));
            out.flush();
            BufferedReader in = new BufferedReader(new InputStreamReader(socket.getInputStream(),
                    StandardCharsets.UTF_8));
            assertTrue(in.readLine().contains("200"));
            int events = 0;
            String line;
            while (events < 2 && (line = in.readLine()) != null) {
                if (line.startsWith("data: ")) {
                    events++;
                }
            }
            assertEquals(2, events, "the stream started");
        } // closed mid-stream
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (engine.metrics().choicesCancelled() == cancelledBefore && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        assertEquals(cancelledBefore + 1, engine.metrics().choicesCancelled(), "the sequence was cancelled");
        while (engine.metrics().kvBlocksFree() != engine.metrics().kvBlocksTotal() && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        assertEquals(engine.metrics().kvBlocksTotal(), engine.metrics().kvBlocksFree(), "its KV blocks were freed");
        assertTrue(get("/metrics").raw().contains("k2j_http_client_disconnects_total"));
    }

    @Test
    void scaffoldFieldsRunPlanAndBestOfN() throws Exception {
        ObjectNode body = (ObjectNode) JSON.readTree(chatBody("What is 2 + 3?", 12, 1.0, 4, false));
        body.putObject("plan").put("max_tokens", 6);
        body.put("best_of", 3);
        body.put("verifier", "majority");
        Reply r = post("/v1/chat/completions", body.toString());
        assertEquals(200, r.status(), r.raw());
        JsonNode s = r.body().get("k2j_scaffold");
        assertNotNull(s, r.raw());
        assertTrue(s.get("plan").isTextual());
        int planTokens = s.get("plan_tokens").asInt();
        assertTrue(planTokens >= 1 && planTokens <= 6);
        ArrayNode candidates = (ArrayNode) s.get("candidates");
        assertEquals(3, candidates.size());
        int total = planTokens;
        for (JsonNode c : candidates) {
            total += c.get("completion_tokens").asInt();
        }
        assertEquals(total, r.body().at("/usage/completion_tokens").asInt(), "usage counts every generated token");
        int chosen = s.get("chosen").asInt();
        assertEquals(candidates.get(chosen).get("text").asText(), r.body().at("/choices/0/message/content").asText());
        expectError(post("/v1/chat/completions", body.put("stream", true).toString()), 400, "stream");
    }
}
