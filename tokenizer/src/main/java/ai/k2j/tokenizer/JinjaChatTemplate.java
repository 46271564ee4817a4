package ai.k2j.tokenizer;

import java.time.Clock;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The model's own {@code chat_template} rendered as HF {@code apply_chat_template} renders it: the variables are
 * {@code messages} (OpenAI-shaped dicts), {@code tools} (None when absent), {@code add_generation_prompt}, the
 * special-token strings of tokenizer_config.json, and extra keyword arguments such as {@code enable_thinking}.
 *
 * <p>Where messages must not inject control tokens, every special token written inside a message or tool string
 * is preceded by a marker character before rendering; after rendering the markers are removed and their positions
 * become the spans where the encoder reads special tokens as text. Template string operations (strip, split,
 * concatenation) carry the markers along with the text they precede.
 */
final class JinjaChatTemplate {

    /** Private-use character marking "a special token written by a message starts here". */
    static final char MARK = '\uE000';

    private final Jinja template;
    private final Jinja toolUseTemplate;
    private final Map<String, String> specialTokens;
    private final List<String> specialTexts;
    private final Clock clock;

    JinjaChatTemplate(String template, String toolUseTemplate, Map<String, String> specialTokens,
                      List<String> specialTexts, Clock clock) {
        this.template = template == null ? null : Jinja.parse(template);
        this.toolUseTemplate = toolUseTemplate == null ? null : Jinja.parse(toolUseTemplate);
        this.specialTokens = Map.copyOf(specialTokens);
        this.specialTexts = specialTexts.stream().filter(s -> !s.isEmpty()).toList();
        this.clock = clock;
    }

    /**
     * @param tools        OpenAI tool definitions as plain Java values (Map/List/String/Number/Boolean), or null
     * @param kwargs       extra template variables (e.g. {@code enable_thinking})
     * @param markSpecials whether special tokens inside messages and tools must stay text (see the class comment)
     */
    ChatTemplate.Rendered render(List<ChatMessage> messages, List<?> tools, boolean addGenerationPrompt,
                                 Map<String, Object> kwargs, boolean markSpecials) {
        Jinja t = tools != null && toolUseTemplate != null ? toolUseTemplate : template;
        if (t == null) {
            throw new ChatTemplateException("the tokenizer_config.json has no default chat template");
        }
        // Templates disagree on how a tool-calling assistant turn looks: transformers documents the arguments as a
        // dict (what tojson-ing templates expect) while DeepSeek-V3's concatenates them as text; OpenAI clients send
        // its content as null, on which Qwen3's fails ('in' on None), while vLLM passes "". Each form is tried in
        // that order until one renders; the first failure is reported when none does.
        boolean calls = messages.stream().anyMatch(m -> !m.toolCalls().isEmpty());
        String raw = null;
        ChatTemplateException first = null;
        for (int attempt = 0; attempt < (calls ? 4 : 1) && raw == null; attempt++) {
            try {
                raw = renderOnce(t, messages, tools, addGenerationPrompt, kwargs, markSpecials, attempt % 2 == 0,
                        attempt >= 2);
            } catch (ChatTemplateException e) {
                if (e.getMessage().startsWith(RAISED)) {
                    throw e;
                }
                first = first == null ? e : first;
            }
        }
        if (raw == null) {
            throw first;
        }
        if (!markSpecials) {
            return new ChatTemplate.Rendered(raw, new int[0]);
        }
        StringBuilder text = new StringBuilder(raw.length());
        int[] spans = new int[16];
        int n = 0;
        for (int i = 0; i < raw.length(); i++) {
            char c = raw.charAt(i);
            if (c != MARK) {
                text.append(c);
                continue;
            }
            if (n + 2 > spans.length) {
                spans = java.util.Arrays.copyOf(spans, spans.length * 2);
            }
            spans[n++] = text.length();
            spans[n++] = text.length() + 1;
            if (i + 1 < raw.length()) { // the marked character, whatever it is (a literal MARK included)
                text.append(raw.charAt(++i));
            }
        }
        return new ChatTemplate.Rendered(text.toString(), java.util.Arrays.copyOf(spans, n));
    }

    static final String RAISED = "the chat template raised: ";

    private String renderOnce(Jinja t, List<ChatMessage> messages, List<?> tools, boolean addGenerationPrompt,
                              Map<String, Object> kwargs, boolean markSpecials, boolean argumentsAsDict,
                              boolean nullContentAsEmpty) {
        Map<String, Object> ctx = new LinkedHashMap<>(specialTokens);
        List<Object> msgs = new ArrayList<>(messages.size());
        for (ChatMessage m : messages) {
            msgs.add(messageDict(m, markSpecials, argumentsAsDict, nullContentAsEmpty));
        }
        ctx.put("messages", msgs);
        ctx.put("tools", tools == null ? null : markSpecials ? mark(tools) : tools);
        ctx.put("documents", null);
        ctx.put("add_generation_prompt", addGenerationPrompt);
        ctx.putAll(kwargs);
        return t.render(ctx, JinjaFilters.globals(clock));
    }

    private static final com.fasterxml.jackson.databind.ObjectMapper JSON = new com.fasterxml.jackson.databind.ObjectMapper();

    /** The arguments' JSON object as an ordered map, or null when the text is not one. */
    private static Object parseArguments(String json) {
        try {
            com.fasterxml.jackson.databind.JsonNode n = JSON.readTree(json);
            if (n == null || !n.isObject()) {
                return null;
            }
            return JSON.convertValue(n, LinkedHashMap.class);
        } catch (com.fasterxml.jackson.core.JacksonException e) {
            return null;
        }
    }

    private Map<String, Object> messageDict(ChatMessage m, boolean mark, boolean argumentsAsDict,
                                            boolean nullContentAsEmpty) {
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("role", m.role());
        String content = m.content() == null && nullContentAsEmpty ? "" : m.content();
        d.put("content", mark ? mark(content) : content);
        if (!m.toolCalls().isEmpty()) {
            List<Object> calls = new ArrayList<>();
            for (ToolCall c : m.toolCalls()) {
                Map<String, Object> call = new LinkedHashMap<>();
                if (c.id() != null) {
                    call.put("id", c.id());
                }
                call.put("type", "function");
                Map<String, Object> fn = new LinkedHashMap<>();
                fn.put("name", mark ? mark(c.name()) : c.name());
                Object args = argumentsAsDict ? parseArguments(c.arguments()) : null;
                if (args == null) {
                    args = c.arguments();
                }
                fn.put("arguments", mark ? mark(args) : args);
                call.put("function", fn);
                calls.add(call);
            }
            d.put("tool_calls", calls);
        }
        if (m.toolCallId() != null) {
            d.put("tool_call_id", m.toolCallId());
        }
        if (m.name() != null) {
            d.put("name", mark ? mark(m.name()) : m.name());
        }
        return d;
    }

    /** Strings get a MARK before each special token (and before each literal MARK); containers are walked. */
    private Object mark(Object v) {
        return switch (v) {
            case String s -> mark(s);
            case Map<?, ?> m -> {
                Map<Object, Object> out = new LinkedHashMap<>();
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    out.put(e.getKey(), mark(e.getValue()));
                }
                yield out;
            }
            case List<?> l -> {
                List<Object> out = new ArrayList<>(l.size());
                for (Object o : l) {
                    out.add(mark(o));
                }
                yield out;
            }
            case null -> null;
            default -> v;
        };
    }

    private String mark(String s) {
        if (s == null) {
            return null;
        }
        StringBuilder sb = null;
        int copied = 0;
        for (int i = 0; i < s.length(); i++) {
            boolean hit = s.charAt(i) == MARK;
            if (!hit) {
                for (String sp : specialTexts) {
                    if (s.startsWith(sp, i)) {
                        hit = true;
                        break;
                    }
                }
            }
            if (hit) {
                if (sb == null) {
                    sb = new StringBuilder(s.length() + 8);
                }
                sb.append(s, copied, i).append(MARK);
                copied = i;
            }
        }
        return sb == null ? s : sb.append(s, copied, s.length()).toString();
    }
}
