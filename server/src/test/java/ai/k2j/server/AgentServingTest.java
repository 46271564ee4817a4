package ai.k2j.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.k2j.engine.BatchEngine;
import ai.k2j.engine.EngineOptions;
import ai.k2j.testing.TestCheckpoints;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Iterator;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Tools, tool_choice, structured output and logprobs over HTTP, on the demo models (random as far as JSON and tool
 * calls go: only the grammar makes their output valid), with and without speculative decoding.
 */
@Timeout(value = 600, unit = TimeUnit.SECONDS)
class AgentServingTest {

    static final ObjectMapper JSON = new ObjectMapper();
    static BatchEngine engine;
    static BatchEngine speculative;
    static OpenAiServer server;
    static OpenAiServer specServer;
    static HttpClient client;

    static final String TOOLS = """
            [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
               "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
                 "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"]}}},
             {"type": "function", "function": {"name": "add", "description": "a + b",
               "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                 "required": ["a", "b"]}}}]""";

    static final String SCHEMA = """
            {"type": "object", "properties": {
               "name": {"type": "string", "maxLength": 16},
               "kind": {"enum": ["cat", "dog", "bird"]},
               "age": {"type": "integer"},
               "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 3},
               "indoor": {"type": "boolean"},
               "owner": {"type": ["object", "null"], "properties": {"id": {"type": "integer"}}, "required": ["id"]}},
             "required": ["name", "kind", "age", "indoor"], "additionalProperties": false}""";

    @BeforeAll
    static void start() {
        EngineOptions o = EngineOptions.defaults().withBackend("reference").withMaxContext(512).withMaxBatch(4);
        engine = BatchEngine.load(TestCheckpoints.demoDraft(), null, o);
        server = OpenAiServer.start(engine, ServerOptions.of("127.0.0.1", 0, "demo"));
        speculative = BatchEngine.load(TestCheckpoints.repoRoot().resolve("models/demo/target"),
                TestCheckpoints.demoDraft(), o);
        specServer = OpenAiServer.start(speculative, ServerOptions.of("127.0.0.1", 0, "demo"));
        client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
    }

    @AfterAll
    static void stop() {
        server.close();
        engine.close();
        specServer.close();
        speculative.close();
    }

    static JsonNode post(OpenAiServer s, String body, int status) throws Exception {
        HttpResponse<String> r = client.send(HttpRequest.newBuilder(URI.create(s.baseUrl() + "/v1/chat/completions"))
                .timeout(Duration.ofSeconds(300)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(status, r.statusCode(), r.body());
        return body.contains("\"stream\": true") ? JSON.getNodeFactory().textNode(r.body()) : JSON.readTree(r.body());
    }

    static String user(String text) {
        return "\"messages\": [{\"role\": \"user\", \"content\": \"" + text + "\"}]";
    }

    /** Checks a value against the test schema (the properties it uses). */
    static void assertMatchesSchema(JsonNode v) {
        assertTrue(v.isObject(), v.toString());
        Set<String> allowed = Set.of("name", "kind", "age", "tags", "indoor", "owner");
        for (Iterator<String> it = v.fieldNames(); it.hasNext(); ) {
            assertTrue(allowed.contains(it.next()), v.toString());
        }
        String name = v.get("name").asText();
        assertTrue(v.get("name").isTextual() && name.codePointCount(0, name.length()) <= 16, v.toString());
        assertFalse(name.contains("\uFFFD"), "valid UTF-8: " + v);
        assertTrue(Set.of("cat", "dog", "bird").contains(v.get("kind").asText()), v.toString());
        assertTrue(v.get("age").isIntegralNumber(), v.toString());
        assertTrue(v.get("indoor").isBoolean(), v.toString());
        if (v.has("tags")) {
            assertTrue(v.get("tags").isArray() && v.get("tags").size() <= 3, v.toString());
        }
        if (v.has("owner") && !v.get("owner").isNull()) {
            assertTrue(v.get("owner").get("id").isIntegralNumber(), v.toString());
        }
    }

    @Test
    void jsonSchemaOutputParsesAndValidatesGreedyAndSampled() throws Exception {
        for (String sampling : new String[] {"\"temperature\": 0", "\"temperature\": 1, \"seed\": 7",
                "\"temperature\": 1.3, \"seed\": 11"}) {
            JsonNode r = post(server, "{" + user("Describe a pet as JSON.") + ", " + sampling + ", \"max_tokens\": 300,"
                    + " \"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"pet\", \"schema\": "
                    + SCHEMA + "}}}", 200);
            assertEquals("stop", r.at("/choices/0/finish_reason").asText(), r.toString());
            assertMatchesSchema(JSON.readTree(r.at("/choices/0/message/content").asText()));
        }
        JsonNode obj = post(server, "{" + user("Any JSON object.") + ", \"temperature\": 0, \"max_tokens\": 200,"
                + " \"response_format\": {\"type\": \"json_object\"}}", 200);
        if (obj.at("/choices/0/finish_reason").asText().equals("stop")) {
            assertTrue(JSON.readTree(obj.at("/choices/0/message/content").asText()).isObject(), obj.toString());
        } else { // a free string may run to max_tokens; what was written is still a JSON prefix
            assertTrue(obj.at("/choices/0/message/content").asText().startsWith("{"), obj.toString());
        }
    }

    @Test
    void requiredAndNamedToolChoiceGiveValidCalls() throws Exception {
        JsonNode r = post(server, "{" + user("What is the weather in Paris?") + ", \"tools\": " + TOOLS
                + ", \"tool_choice\": \"required\", \"temperature\": 0, \"max_tokens\": 200}", 200);
        assertEquals("tool_calls", r.at("/choices/0/finish_reason").asText(), r.toString());
        JsonNode call = r.at("/choices/0/message/tool_calls/0");
        assertTrue(call.get("id").asText().startsWith("call_"));
        assertEquals("function", call.get("type").asText());
        String name = call.at("/function/name").asText();
        JsonNode args = JSON.readTree(call.at("/function/arguments").asText());
        if (name.equals("add")) {
            assertTrue(args.get("a").isIntegralNumber() && args.get("b").isIntegralNumber(), args.toString());
        } else {
            assertEquals("get_weather", name);
            assertTrue(Set.of("celsius", "fahrenheit").contains(args.get("unit").asText()), args.toString());
        }
        JsonNode named = post(server, "{" + user("Add 2 and 3.") + ", \"tools\": " + TOOLS + ", \"tool_choice\":"
                + " {\"type\": \"function\", \"function\": {\"name\": \"add\"}}, \"temperature\": 0.8, \"seed\": 5,"
                + " \"max_tokens\": 200}", 200);
        assertEquals("add", named.at("/choices/0/message/tool_calls/0/function/name").asText(), named.toString());
        JsonNode addArgs = JSON.readTree(named.at("/choices/0/message/tool_calls/0/function/arguments").asText());
        assertTrue(addArgs.get("a").isIntegralNumber() && addArgs.get("b").isIntegralNumber());
    }

    @Test
    void streamedToolCallArrivesAsToolCallDeltas() throws Exception {
        String raw = post(server, "{" + user("Add 2 and 3.") + ", \"tools\": " + TOOLS + ", \"tool_choice\": {\"type\":"
                + " \"function\", \"function\": {\"name\": \"add\"}}, \"temperature\": 0, \"max_tokens\": 200,"
                + " \"stream\": true}", 200).asText();
        StringBuilder content = new StringBuilder();
        String finish = null;
        JsonNode call = null;
        for (String line : raw.split("\n")) {
            if (!line.startsWith("data: ") || line.equals("data: [DONE]")) {
                continue;
            }
            JsonNode c = JSON.readTree(line.substring(6)).at("/choices/0");
            content.append(c.path("delta").path("content").asText(""));
            if (c.path("delta").has("tool_calls")) {
                call = c.path("delta").path("tool_calls").get(0);
            }
            if (!c.path("finish_reason").isNull() && !c.path("finish_reason").isMissingNode()) {
                finish = c.get("finish_reason").asText();
            }
        }
        assertEquals("tool_calls", finish, raw);
        assertEquals("", content.toString(), "the call's text is not streamed as content");
        assertEquals(0, call.get("index").asInt());
        assertEquals("add", call.at("/function/name").asText());
        assertTrue(JSON.readTree(call.at("/function/arguments").asText()).has("a"));
    }

    @Test
    void toolResultsFeedBackAndFreeOutputIsContentNeverAnError() throws Exception {
        String history = "\"messages\": [{\"role\": \"user\", \"content\": \"Add 2 and 3.\"},"
                + " {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"call_1\", \"type\": \"function\","
                + " \"function\": {\"name\": \"add\", \"arguments\": \"{\\\"a\\\": 2, \\\"b\\\": 3}\"}}]},"
                + " {\"role\": \"tool\", \"tool_call_id\": \"call_1\", \"content\": \"5\"}]";
        JsonNode r = post(server, "{" + history + ", \"tools\": " + TOOLS + ", \"temperature\": 0, \"max_tokens\": 40}",
                200);
        // tool_choice auto: the random model writes no well-formed call, so its text comes back as content
        assertNotEquals("tool_calls", r.at("/choices/0/finish_reason").asText());
        assertTrue(r.at("/choices/0/message/content").isTextual(), r.toString());
        assertFalse(r.at("/choices/0/message").has("tool_calls"));
    }

    @Test
    void constrainedOutputIsTheSameWithSpeculativeDecoding() throws Exception {
        String body = user("Describe a pet as JSON.") + ", \"temperature\": 0, \"max_tokens\": 200,"
                + " \"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"pet\", \"schema\": "
                + SCHEMA + "}}";
        JsonNode plain = post(specServer, "{" + body + ", \"speculative\": false}", 200);
        JsonNode spec = post(specServer, "{" + body + ", \"speculative\": true}", 200);
        assertEquals(plain.at("/choices/0/message/content").asText(), spec.at("/choices/0/message/content").asText());
        assertTrue(spec.at("/usage/draft_tokens_proposed").asInt() > 0, spec.toString());
        // the draft proposes within the grammar, so forced structure (keys, punctuation) is accepted
        assertTrue(spec.at("/usage/draft_tokens_accepted").asInt() > 0, spec.toString());
        System.out.println("constrained speculation: " + spec.get("usage"));
        assertMatchesSchema(JSON.readTree(spec.at("/choices/0/message/content").asText()));
        // sampled with speculation, two choices (each with its own constraint state): every output valid
        JsonNode sampled = post(specServer, "{" + body.replace("\"temperature\": 0", "\"temperature\": 1, \"seed\": 3")
                + ", \"speculative\": true, \"n\": 2}", 200);
        assertEquals(2, sampled.get("choices").size());
        for (JsonNode c : sampled.get("choices")) {
            if (c.get("finish_reason").asText().equals("stop")) {
                assertMatchesSchema(JSON.readTree(c.at("/message/content").asText()));
            } else { // cut by max_tokens: still a prefix of a valid value
                assertTrue(c.at("/message/content").asText().startsWith("{"), sampled.toString());
            }
        }
        String tools = user("Add 2 and 3.") + ", \"tools\": " + TOOLS + ", \"tool_choice\": \"required\","
                + " \"temperature\": 0, \"max_tokens\": 200";
        JsonNode plainCall = post(specServer, "{" + tools + ", \"speculative\": false}", 200);
        JsonNode specCall = post(specServer, "{" + tools + ", \"speculative\": true}", 200);
        assertEquals("tool_calls", specCall.at("/choices/0/finish_reason").asText(), specCall.toString());
        assertEquals(plainCall.at("/choices/0/message/tool_calls/0/function"),
                specCall.at("/choices/0/message/tool_calls/0/function"));
    }

    @Test
    void aTemplateThatRaisesIsA400NamingItsMessage(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir)
            throws Exception {
        java.nio.file.Path model = TestCheckpoints.write(dir.resolve("m"), 32, 1, 8192, 1, true, 8191);
        java.nio.file.Files.writeString(model.resolve("tokenizer_config.json"), """
                {"eos_token": "<|im_end|>", "chat_template": "{% for m in messages %}{% if m.role == 'system' %}\
                {{ raise_exception('System messages are not supported by this model.') }}{% endif %}\
                {{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}"}
                """);
        try (BatchEngine e = BatchEngine.load(model, null, EngineOptions.defaults().withBackend("reference")
                .withMaxContext(128).withMaxBatch(2))) {
            OpenAiServer s = OpenAiServer.start(e, ServerOptions.of("127.0.0.1", 0, "m"));
            try {
                JsonNode err = post(s, "{\"messages\": [{\"role\": \"system\", \"content\": \"x\"}, {\"role\":"
                        + " \"user\", \"content\": \"hi\"}], \"max_tokens\": 2}", 400);
                assertEquals("chat_template_error", err.at("/error/code").asText(), err.toString());
                assertTrue(err.at("/error/message").asText().contains("System messages are not supported"));
                JsonNode ok = post(s, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}],"
                        + " \"max_tokens\": 2}", 200);
                assertEquals("assistant", ok.at("/choices/0/message/role").asText(), "without a system turn it renders");
            } finally {
                s.close();
            }
        }
    }

    @Test
    void logprobsHaveTheOpenAiShape() throws Exception {
        JsonNode r = post(server, "{" + user("def f(x):") + ", \"temperature\": 0, \"max_tokens\": 8, \"logprobs\": true,"
                + " \"top_logprobs\": 3}", 200);
        JsonNode content = r.at("/choices/0/logprobs/content");
        assertEquals(r.at("/usage/completion_tokens").asInt(), content.size(), r.toString());
        for (JsonNode t : content) {
            JsonNode top = t.get("top_logprobs");
            assertEquals(3, top.size());
            assertTrue(top.get(0).get("logprob").asDouble() >= top.get(1).get("logprob").asDouble());
            // greedy: the chosen token is the most likely one
            assertEquals(top.get(0).get("token").asText(), t.get("token").asText());
            assertEquals(top.get(0).get("logprob").asDouble(), t.get("logprob").asDouble(), 1e-6);
            assertTrue(t.get("logprob").asDouble() <= 0);
            assertTrue(t.get("bytes").isArray());
        }
        HttpResponse<String> c = client.send(HttpRequest.newBuilder(URI.create(server.baseUrl() + "/v1/completions"))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(
                        "{\"prompt\": \"import os\", \"max_tokens\": 5, \"temperature\": 0, \"logprobs\": 2}")).build(),
                HttpResponse.BodyHandlers.ofString());
        JsonNode lp = JSON.readTree(c.body()).at("/choices/0/logprobs");
        assertEquals(lp.get("tokens").size(), lp.get("token_logprobs").size(), c.body());
        assertEquals(2, lp.get("top_logprobs").get(0).size(), c.body());
        assertEquals(lp.get("tokens").size(), lp.get("text_offset").size());
    }
}
