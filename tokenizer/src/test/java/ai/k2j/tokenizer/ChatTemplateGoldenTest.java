package ai.k2j.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The Jinja renderer against Hugging Face transformers: every conversation of testdata/chat-templates/cases.json
 * rendered with the Qwen2.5, Qwen3, Llama 3.1 and DeepSeek-V3 templates must be byte-identical to
 * {@code golden/chat-templates.jsonl}, written by tools/golden/make_chat_goldens.py with transformers; and for Qwen3
 * the token ids of {@code encodeChat} (special tokens read as HF reads them) must be HF's.
 */
class ChatTemplateGoldenTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    static Path dataDir() {
        return QwenTokenizer.repoRoot().toAbsolutePath().normalize().resolve("testdata/chat-templates");
    }

    static List<ChatMessage> messages(JsonNode node) {
        List<ChatMessage> out = new ArrayList<>();
        for (JsonNode m : node) {
            List<ToolCall> calls = new ArrayList<>();
            for (JsonNode c : m.path("tool_calls")) {
                calls.add(new ToolCall(c.path("id").asText(null), c.path("function").path("name").asText(),
                        c.path("function").path("arguments").asText()));
            }
            JsonNode content = m.get("content");
            out.add(new ChatMessage(m.get("role").asText(), content == null || content.isNull() ? null
                    : content.asText(), calls, m.path("tool_call_id").asText(null), m.path("name").asText(null)));
        }
        return out;
    }

    @SuppressWarnings("unchecked")
    static List<Object> tools(JsonNode node) {
        return node == null || node.isNull() ? null : JSON.convertValue(node, List.class);
    }

    @Test
    void everyTemplateRendersEveryConversationAsTransformersDoes() throws IOException {
        JsonNode cases = JSON.readTree(dataDir().resolve("cases.json").toFile()).get("cases");
        Map<String, JsonNode> byName = new HashMap<>();
        cases.forEach(c -> byName.put(c.get("name").asText(), c));
        List<String> lines = Files.readAllLines(Path.of("src/test/resources/golden/chat-templates.jsonl"));
        Map<String, JinjaChatTemplate> templates = new HashMap<>();
        int compared = 0;
        for (String line : lines.subList(1, lines.size())) {
            JsonNode g = JSON.readTree(line);
            String name = g.get("template").asText();
            JinjaChatTemplate t = templates.computeIfAbsent(name, n -> load(dataDir().resolve(n)));
            JsonNode c = byName.get(g.get("case").asText());
            String rendered = t.render(messages(c.get("messages")), tools(c.get("tools")),
                    c.get("add_generation_prompt").asBoolean(),
                    Map.of("enable_thinking", c.get("enable_thinking").asBoolean()), false).text();
            assertEquals(g.get("rendered").asText(), rendered, name + " / " + g.get("case").asText());
            compared++;
        }
        assertEquals(4 * cases.size(), compared, "every template and case has a golden");
    }

    @Test
    void qwen3EncodeChatGivesTransformersIds() throws IOException {
        JsonNode cases = JSON.readTree(dataDir().resolve("cases.json").toFile()).get("cases");
        Map<String, JsonNode> byName = new HashMap<>();
        cases.forEach(c -> byName.put(c.get("name").asText(), c));
        Tokenizer tok = QwenTokenizer.get();
        assertTrue(tok.hasChatTemplate());
        int compared = 0;
        for (String line : Files.readAllLines(Path.of("src/test/resources/golden/chat-templates.jsonl"))) {
            JsonNode g = JSON.readTree(line);
            if (!"qwen3".equals(g.path("template").asText())) {
                continue;
            }
            JsonNode c = byName.get(g.get("case").asText());
            int[] ids = tok.encodeChat(messages(c.get("messages")), tools(c.get("tools")),
                    c.get("add_generation_prompt").asBoolean(), true, c.get("enable_thinking").asBoolean());
            assertArrayEquals(JSON.convertValue(g.get("ids"), int[].class), ids, g.get("case").asText());
            compared++;
        }
        assertEquals(cases.size(), compared);
    }

    static JinjaChatTemplate load(Path dir) {
        try {
            JsonNode cfg = JSON.readTree(dir.resolve("tokenizer_config.json").toFile());
            Map<String, String> specials = new HashMap<>();
            for (String k : new String[] {"bos_token", "eos_token", "unk_token", "pad_token"}) {
                JsonNode v = cfg.get(k);
                if (v != null && v.isTextual()) {
                    specials.put(k, v.asText());
                } else if (v != null && v.isObject()) {
                    specials.put(k, v.get("content").asText());
                }
            }
            return new JinjaChatTemplate(cfg.get("chat_template").asText(), null, specials, List.of(),
                    Clock.systemUTC());
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
