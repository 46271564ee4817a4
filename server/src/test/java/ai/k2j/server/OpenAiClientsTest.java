package ai.k2j.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.k2j.engine.BatchEngine;
import ai.k2j.engine.EngineOptions;
import ai.k2j.testing.TestCheckpoints;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.JsonValue;
import com.openai.core.http.StreamResponse;
import com.openai.models.FunctionDefinition;
import com.openai.models.FunctionParameters;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionMessageFunctionToolCall;
import com.openai.models.chat.completions.ChatCompletionNamedToolChoice;
import com.openai.models.chat.completions.ChatCompletionToolChoiceOption;
import com.openai.models.chat.completions.ChatCompletionToolMessageParam;
import com.openai.models.chat.completions.StructuredChatCompletion;
import com.openai.models.chat.completions.StructuredChatCompletionCreateParams;
import dev.langchain4j.agent.tool.ToolExecutionRequest;
import dev.langchain4j.agent.tool.ToolSpecification;
import dev.langchain4j.data.message.AiMessage;
import dev.langchain4j.data.message.ToolExecutionResultMessage;
import dev.langchain4j.data.message.UserMessage;
import dev.langchain4j.model.chat.request.ChatRequest;
import dev.langchain4j.model.chat.request.ResponseFormat;
import dev.langchain4j.model.chat.request.ResponseFormatType;
import dev.langchain4j.model.chat.request.ToolChoice;
import dev.langchain4j.model.chat.request.json.JsonObjectSchema;
import dev.langchain4j.model.chat.request.json.JsonSchema;
import dev.langchain4j.model.chat.response.ChatResponse;
import dev.langchain4j.model.chat.response.StreamingChatResponseHandler;
import dev.langchain4j.model.openai.OpenAiChatModel;
import dev.langchain4j.model.openai.OpenAiStreamingChatModel;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The server driven by clients nobody here wrote: the official OpenAI Java SDK and LangChain4j's OpenAI module, on
 * loopback against the demo model (the server `k2j serve` starts, in-process). Deterministic: greedy decoding, and
 * constrained decoding makes the tool calls and JSON valid whatever the model would have written.
 */
@Timeout(value = 600, unit = TimeUnit.SECONDS)
class OpenAiClientsTest {

    static final ObjectMapper JSON = new ObjectMapper();
    static BatchEngine engine;
    static OpenAiServer server;
    static OpenAIClient openai;

    @BeforeAll
    static void start() {
        engine = BatchEngine.load(TestCheckpoints.demoDraft(), null, EngineOptions.defaults().withBackend("reference")
                .withMaxContext(512).withMaxBatch(4));
        server = OpenAiServer.start(engine, ServerOptions.of("127.0.0.1", 0, "demo"));
        openai = OpenAIOkHttpClient.builder().baseUrl(server.baseUrl() + "/v1").apiKey("unused")
                .timeout(Duration.ofSeconds(300)).maxRetries(0).build();
    }

    @AfterAll
    static void stop() {
        openai.close();
        server.close();
        engine.close();
    }

    // ------------------------------------------------------------------------------------------------ OpenAI SDK

    @Test
    void openAiSdkChatAndStreamingAgree() {
        ChatCompletionCreateParams params = ChatCompletionCreateParams.builder().model("demo")
                .addSystemMessage("You write Python.").addUserMessage("def fib(n):").temperature(0.0)
                .maxCompletionTokens(16).build();
        ChatCompletion c = openai.chat().completions().create(params);
        String text = c.choices().getFirst().message().content().orElseThrow();
        assertFalse(text.isEmpty());
        assertTrue(c.usage().orElseThrow().completionTokens() > 0);
        StringBuilder streamed = new StringBuilder();
        try (StreamResponse<ChatCompletionChunk> s = openai.chat().completions().createStreaming(params)) {
            s.stream().forEach(chunk -> chunk.choices().forEach(ch -> ch.delta().content().ifPresent(streamed::append)));
        }
        assertEquals(text, streamed.toString(), "greedy: the stream carries the same text");
    }

    private static FunctionDefinition addFunction() {
        return FunctionDefinition.builder().name("add").description("Adds two integers.")
                .parameters(FunctionParameters.builder()
                        .putAdditionalProperty("type", JsonValue.from("object"))
                        .putAdditionalProperty("properties", JsonValue.from(Map.of(
                                "a", Map.of("type", "integer"), "b", Map.of("type", "integer"))))
                        .putAdditionalProperty("required", JsonValue.from(List.of("a", "b")))
                        .putAdditionalProperty("additionalProperties", JsonValue.from(false)).build())
                .build();
    }

    @Test
    void openAiSdkToolRoundTrip() throws Exception {
        ChatCompletionCreateParams ask = ChatCompletionCreateParams.builder().model("demo")
                .addUserMessage("What is 2 + 3? Use the tool.").addFunctionTool(addFunction())
                .toolChoice(ChatCompletionNamedToolChoice.builder().function(ChatCompletionNamedToolChoice.Function
                        .builder().name("add").build()).build())
                .temperature(0.0).maxCompletionTokens(64).build();
        ChatCompletion first = openai.chat().completions().create(ask);
        assertEquals(ChatCompletion.Choice.FinishReason.TOOL_CALLS, first.choices().getFirst().finishReason());
        ChatCompletionMessageFunctionToolCall call = first.choices().getFirst().message().toolCalls().orElseThrow()
                .getFirst().asFunction();
        assertEquals("add", call.function().name());
        JsonNode args = JSON.readTree(call.function().arguments());
        long sum = args.get("a").asLong() + args.get("b").asLong();
        // the tool's result goes back through the model's chat template as a role "tool" message
        ChatCompletionCreateParams answer = ask.toBuilder()
                .addMessage(first.choices().getFirst().message())
                .addMessage(ChatCompletionToolMessageParam.builder().toolCallId(call.id()).content(Long.toString(sum))
                        .build())
                .toolChoice(ChatCompletionToolChoiceOption.Auto.NONE).maxCompletionTokens(12).build();
        ChatCompletion second = openai.chat().completions().create(answer);
        assertTrue(second.choices().getFirst().message().content().isPresent());
        assertTrue(second.choices().getFirst().message().toolCalls().orElse(List.of()).isEmpty());
    }

    /** The structured-output type the SDK derives a JSON schema from and parses the answer into. */
    public static class Pet {
        public enum Kind { CAT, DOG, BIRD }

        @JsonProperty(required = true)
        public Kind kind;
        @JsonProperty(required = true)
        public int age;
        @JsonProperty(required = true)
        public boolean indoor;
    }

    @Test
    void openAiSdkParsesJsonSchemaOutputIntoAClass() {
        StructuredChatCompletionCreateParams<Pet> params = ChatCompletionCreateParams.builder().model("demo")
                .addUserMessage("Describe a pet.").temperature(0.0).maxCompletionTokens(64)
                .responseFormat(Pet.class).build();
        StructuredChatCompletion<Pet> c = openai.chat().completions().create(params);
        Pet pet = c.choices().getFirst().message().content().orElseThrow();
        assertNotNull(pet.kind);
    }

    // ------------------------------------------------------------------------------------------------ LangChain4j

    private static OpenAiChatModel langchainModel(int maxTokens) {
        return OpenAiChatModel.builder().baseUrl(server.baseUrl() + "/v1").apiKey("unused").modelName("demo")
                .temperature(0.0).maxTokens(maxTokens).timeout(Duration.ofSeconds(300)).maxRetries(0)
                .strictJsonSchema(true).supportedCapabilities(
                        dev.langchain4j.model.chat.Capability.RESPONSE_FORMAT_JSON_SCHEMA).build();
    }

    @Test
    void langChain4jChatAndStreaming() throws Exception {
        String text = langchainModel(16).chat("import os");
        assertFalse(text.isEmpty());
        OpenAiStreamingChatModel streaming = OpenAiStreamingChatModel.builder().baseUrl(server.baseUrl() + "/v1")
                .apiKey("unused").modelName("demo").temperature(0.0).maxTokens(16).timeout(Duration.ofSeconds(300))
                .build();
        CompletableFuture<ChatResponse> done = new CompletableFuture<>();
        StringBuilder partial = new StringBuilder();
        streaming.chat("import os", new StreamingChatResponseHandler() {
            @Override
            public void onPartialResponse(String s) {
                partial.append(s);
            }

            @Override
            public void onCompleteResponse(ChatResponse response) {
                done.complete(response);
            }

            @Override
            public void onError(Throwable error) {
                done.completeExceptionally(error);
            }
        });
        ChatResponse r = done.get(300, TimeUnit.SECONDS);
        assertEquals(text, r.aiMessage().text());
        assertEquals(text, partial.toString());
    }

    @Test
    void langChain4jToolRoundTrip() throws Exception {
        ToolSpecification add = ToolSpecification.builder().name("add").description("Adds two integers.")
                .parameters(JsonObjectSchema.builder().addIntegerProperty("a").addIntegerProperty("b")
                        .required("a", "b").build()).build();
        OpenAiChatModel model = langchainModel(64);
        UserMessage question = UserMessage.from("What is 2 + 3? Use the tool.");
        ChatResponse first = model.chat(ChatRequest.builder().messages(question).toolSpecifications(add)
                .toolChoice(ToolChoice.REQUIRED).build());
        AiMessage ai = first.aiMessage();
        assertTrue(ai.hasToolExecutionRequests(), ai.toString());
        ToolExecutionRequest call = ai.toolExecutionRequests().getFirst();
        assertEquals("add", call.name());
        JsonNode args = JSON.readTree(call.arguments());
        String result = Long.toString(args.get("a").asLong() + args.get("b").asLong());
        ChatResponse second = model.chat(ChatRequest.builder().messages(question, ai,
                ToolExecutionResultMessage.from(call, result)).toolSpecifications(add).build());
        assertNotNull(second.aiMessage());
    }

    @Test
    void langChain4jJsonSchemaOutput() throws Exception {
        JsonObjectSchema pet = JsonObjectSchema.builder()
                .addEnumProperty("kind", List.of("cat", "dog", "bird"))
                .addIntegerProperty("age")
                .addBooleanProperty("indoor")
                .required("kind", "age", "indoor").build();
        ChatResponse r = langchainModel(64).chat(ChatRequest.builder().messages(UserMessage.from("Describe a pet."))
                .responseFormat(ResponseFormat.builder().type(ResponseFormatType.JSON)
                        .jsonSchema(JsonSchema.builder().name("pet").rootElement(pet).build()).build()).build());
        JsonNode v = JSON.readTree(r.aiMessage().text());
        assertTrue(List.of("cat", "dog", "bird").contains(v.get("kind").asText()), v.toString());
        assertTrue(v.get("age").isIntegralNumber() && v.get("indoor").isBoolean(), v.toString());
    }
}
