package ai.k2j.server;

import ai.k2j.tokenizer.Tokenizer;
import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/**
 * How a model writes tool calls, and reading them back out of its output. Two formats:
 * <ul>
 *   <li>{@link Format#HERMES} (Qwen2.5, Qwen3, Hermes and most ChatML models): one
 *       {@code <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>} block per call;</li>
 *   <li>{@link Format#KIMI} (Kimi K2): {@code <|tool_calls_section_begin|>}, then per call
 *       {@code <|tool_call_begin|>functions.NAME:IDX<|tool_call_argument_begin|>{json}<|tool_call_end|>}, then
 *       {@code <|tool_calls_section_end|>}; the call id is {@code functions.NAME:IDX}.</li>
 * </ul>
 * Output that does not parse as calls of the request's tools is not a tool call: it is returned as content.
 */
final class ToolCalls {
    private ToolCalls() {
    }

    enum Format { HERMES, KIMI }

    static final String HERMES_OPEN = "<tool_call>";
    static final String HERMES_CLOSE = "</tool_call>";
    static final String KIMI_SECTION_BEGIN = "<|tool_calls_section_begin|>";
    static final String KIMI_SECTION_END = "<|tool_calls_section_end|>";
    static final String KIMI_CALL_BEGIN = "<|tool_call_begin|>";
    static final String KIMI_ARGUMENT_BEGIN = "<|tool_call_argument_begin|>";
    static final String KIMI_CALL_END = "<|tool_call_end|>";

    /** Kimi K2's format when the vocabulary has its section token, else Hermes'. */
    static Format formatOf(Tokenizer tokenizer) {
        return tokenizer != null && tokenizer.id(KIMI_SECTION_BEGIN).isPresent() ? Format.KIMI : Format.HERMES;
    }

    /** The text that opens a tool call in this format (streaming holds content back once it appears). */
    static String opener(Format f) {
        return f == Format.KIMI ? KIMI_SECTION_BEGIN : HERMES_OPEN;
    }

    /** Special-token texts the grammar of a forced call spells (they must stay producible). */
    static Set<String> spelledSpecials(Format f) {
        return f == Format.KIMI ? Set.of(KIMI_SECTION_BEGIN, KIMI_SECTION_END, KIMI_CALL_BEGIN, KIMI_ARGUMENT_BEGIN,
                KIMI_CALL_END) : Set.of();
    }

    record Call(String id, String name, String arguments) {
    }

    /** The output read as calls: {@code content} the text before them (null when blank), {@code calls} empty when
     * the output holds no well-formed call. */
    record Parsed(String content, List<Call> calls) {
    }

    static Parsed parse(String text, Format format, Set<String> toolNames) {
        List<Call> calls = format == Format.KIMI ? parseKimi(text, toolNames) : parseHermes(text, toolNames);
        if (calls == null || calls.isEmpty()) {
            return new Parsed(text, List.of());
        }
        int start = text.indexOf(opener(format));
        String before = text.substring(0, start).strip();
        return new Parsed(before.isEmpty() ? null : before, calls);
    }

    private static List<Call> parseHermes(String text, Set<String> toolNames) {
        List<Call> calls = new ArrayList<>();
        int from = text.indexOf(HERMES_OPEN);
        if (from < 0) {
            return null;
        }
        while (from >= 0) {
            int end = text.indexOf(HERMES_CLOSE, from);
            if (end < 0) {
                return null; // an unfinished call: not a call
            }
            String body = text.substring(from + HERMES_OPEN.length(), end).strip();
            JsonNode call = json(body);
            if (call == null || !call.isObject() || !call.path("name").isTextual()) {
                return null;
            }
            String name = call.get("name").textValue();
            JsonNode args = call.has("arguments") ? call.get("arguments") : call.get("parameters");
            if (!toolNames.contains(name) || args == null) {
                return null;
            }
            if (args.isTextual()) { // some models write the arguments as a JSON string
                args = json(args.textValue());
            }
            if (args == null || !args.isObject()) {
                return null;
            }
            calls.add(new Call(newId(), name, args.toString()));
            int next = text.indexOf(HERMES_OPEN, end);
            if (next < 0 && !text.substring(end + HERMES_CLOSE.length()).isBlank()) {
                return null; // text after the calls: not a clean call
            }
            from = next;
        }
        return calls;
    }

    private static List<Call> parseKimi(String text, Set<String> toolNames) {
        int section = text.indexOf(KIMI_SECTION_BEGIN);
        if (section < 0) {
            return null;
        }
        int sectionEnd = text.indexOf(KIMI_SECTION_END, section);
        String body = text.substring(section + KIMI_SECTION_BEGIN.length(), sectionEnd < 0 ? text.length() : sectionEnd);
        List<Call> calls = new ArrayList<>();
        int from = body.indexOf(KIMI_CALL_BEGIN);
        while (from >= 0) {
            int arg = body.indexOf(KIMI_ARGUMENT_BEGIN, from);
            int end = body.indexOf(KIMI_CALL_END, from);
            if (arg < 0 || end < 0 || arg > end) {
                return null;
            }
            String id = body.substring(from + KIMI_CALL_BEGIN.length(), arg).strip();
            int dot = id.indexOf('.');
            int colon = id.lastIndexOf(':');
            String name = id.substring(dot + 1, colon > dot ? colon : id.length());
            JsonNode args = json(body.substring(arg + KIMI_ARGUMENT_BEGIN.length(), end).strip());
            if (!toolNames.contains(name) || args == null || !args.isObject()) {
                return null;
            }
            calls.add(new Call(id, name, args.toString()));
            from = body.indexOf(KIMI_CALL_BEGIN, end);
        }
        return calls;
    }

    private static JsonNode json(String s) {
        try {
            return RequestParser.JSON.readTree(s);
        } catch (com.fasterxml.jackson.core.JacksonException e) {
            return null;
        }
    }

    static String newId() {
        byte[] b = new byte[12];
        ThreadLocalRandom.current().nextBytes(b);
        return "call_" + HexFormat.of().formatHex(b);
    }

    /**
     * The grammar of one call of one of {@code names} (arguments by {@code schemas}, in the same order), in this
     * format: what {@code tool_choice} required or a named function forces the model to write.
     */
    static JsonGrammar.Node forcedCall(Format format, List<String> names, List<JsonGrammar.Node> schemas) {
        List<String> nameTexts = new ArrayList<>();
        for (String n : names) {
            nameTexts.add(format == Format.KIMI ? n : com.fasterxml.jackson.databind.node.TextNode.valueOf(n).toString());
        }
        JsonGrammar.Node[] dispatch = schemas.toArray(new JsonGrammar.Node[0]);
        JsonGrammar.Node[] parts = format == Format.KIMI
                ? new JsonGrammar.Node[] {lit(KIMI_SECTION_BEGIN + KIMI_CALL_BEGIN + "functions."),
                        JsonGrammar.literals(nameTexts), lit(":0" + KIMI_ARGUMENT_BEGIN), null,
                        lit(KIMI_CALL_END + KIMI_SECTION_END)}
                : new JsonGrammar.Node[] {lit(HERMES_OPEN + "\n{\"name\": "), JsonGrammar.literals(nameTexts),
                        lit(", \"arguments\": "), null, lit("}\n" + HERMES_CLOSE)};
        return JsonGrammar.root(JsonGrammar.seq(parts, dispatch));
    }

    private static JsonGrammar.Node lit(String s) {
        return JsonGrammar.literals(List.of(s));
    }
}
