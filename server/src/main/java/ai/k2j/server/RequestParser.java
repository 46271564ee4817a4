package ai.k2j.server;

import ai.k2j.engine.BatchEngine;
import ai.k2j.scaffold.ScaffoldOptions;
import ai.k2j.tokenizer.ChatMessage;
import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Turns a request body into a {@link ParsedRequest}, or a 400 {@link ApiException} naming the field. Strict:
 * malformed JSON, duplicate keys, unknown fields and wrong types are errors (a typo'd parameter must not be
 * silently ignored). The fields clients commonly send are accepted, those without an effect here only at their
 * neutral value (documented in docs/server.md):
 * <ul>
 *   <li>both endpoints: model, max_tokens, temperature, top_p, n, stream, stream_options.include_usage, stop,
 *       seed, user, presence_penalty = 0, frequency_penalty = 0, logit_bias = null/{}; k2j extensions top_k,
 *       min_p, ignore_eos, speculative;</li>
 *   <li>chat: messages (system/developer/user/assistant/tool; text content as a string or text parts; tool_calls,
 *       tool_call_id), max_completion_tokens, logprobs, top_logprobs, response_format (text, json_object,
 *       json_schema), tools, tool_choice ({@link AgentOptions}), parallel_tool_calls, store = false,
 *       metadata = null; the scaffold extensions plan, best_of, verifier;</li>
 *   <li>completions: prompt (a string, or token ids; one prompt), echo = false, logprobs 0..5,
 *       best_of = null or n, suffix = null.</li>
 * </ul>
 */
final class RequestParser {

    static final ObjectMapper JSON = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build();

    private static final Set<String> COMMON = Set.of("model", "max_tokens", "temperature", "top_p", "n", "stream",
            "stream_options", "stop", "seed", "user", "presence_penalty", "frequency_penalty", "logit_bias", "top_k",
            "min_p", "ignore_eos", "speculative");
    private static final Set<String> CHAT = Set.of("messages", "max_completion_tokens", "logprobs", "top_logprobs",
            "response_format", "tools", "tool_choice", "parallel_tool_calls", "store", "metadata", "plan", "best_of",
            "verifier");
    private static final Set<String> COMPLETION = Set.of("prompt", "echo", "logprobs", "best_of", "suffix");

    /** Most stop strings per request (OpenAI's limit). */
    static final int MAX_STOP = 4;
    /** Most characters (UTF-16 units) of all stop strings of a request together. */
    static final int MAX_STOP_CHARS = 1024;
    /** Default max_tokens of /v1/completions (OpenAI's). */
    static final int COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

    private final BatchEngine engine;
    private final String modelId;

    private final boolean specialTokensInMessages;

    RequestParser(BatchEngine engine, String modelId, boolean specialTokensInMessages) {
        this.specialTokensInMessages = specialTokensInMessages;
        this.engine = engine;
        this.modelId = modelId;
    }

    static JsonNode parseBody(byte[] body) {
        if (body.length == 0) {
            throw ApiException.invalid(null, "the request body is empty; expected a JSON object");
        }
        JsonNode root;
        try {
            root = JSON.readTree(body);
        } catch (JacksonException e) {
            throw ApiException.invalid(null, "invalid JSON in the request body: " + e.getOriginalMessage());
        } catch (java.io.IOException e) {
            // no I/O on a byte array: the bytes are in an encoding Jackson detects but cannot read (e.g. UCS-4
            // "3412"; found by fuzzing), which was a 500
            throw ApiException.invalid(null, "the request body is not readable JSON text: " + e.getMessage());
        }
        if (root == null || !root.isObject()) {
            throw ApiException.invalid(null, "the request body must be a JSON object");
        }
        return root;
    }

    ParsedRequest parse(JsonNode root, boolean chat) {
        for (Map.Entry<String, JsonNode> e : root.properties()) {
            String k = e.getKey();
            if (!COMMON.contains(k) && !(chat ? CHAT : COMPLETION).contains(k)) {
                throw ApiException.invalid(k, "unknown_field", "unrecognized request argument '" + k + "' for "
                        + (chat ? "/v1/chat/completions" : "/v1/completions"));
            }
        }
        JsonNode model = root.get("model");
        if (present(model)) {
            String m = string(model, "model");
            if (!m.equals(modelId)) {
                throw new ApiException(404, "invalid_request_error", "model", "model_not_found", "the model '" + m
                        + "' does not exist; this server serves '" + modelId + "'");
            }
        }
        requireNeutral(root, "presence_penalty", 0.0);
        requireNeutral(root, "frequency_penalty", 0.0);
        JsonNode bias = root.get("logit_bias");
        if (present(bias) && !(bias.isObject() && bias.isEmpty())) {
            throw ApiException.invalid("logit_bias", "unsupported_value", "logit_bias is not supported");
        }
        if (present(root.get("user"))) {
            string(root.get("user"), "user");
        }

        double temperature = number(root, "temperature", 1.0, 0, 2);
        double topP = number(root, "top_p", 1.0, 0, 1);
        if (topP <= 0) {
            throw ApiException.invalid("top_p", "top_p must be in (0, 1], got " + topP);
        }
        int topK = integer(root, "top_k", 0, -1, Integer.MAX_VALUE);
        double minP = number(root, "min_p", 0, 0, 1);
        int n = integer(root, "n", 1, 1, engine.maxBatch());
        boolean stream = bool(root, "stream", false);
        boolean includeUsage = false;
        JsonNode so = root.get("stream_options");
        if (present(so)) {
            if (!so.isObject()) {
                throw ApiException.invalid("stream_options", "stream_options must be an object");
            }
            if (!stream) {
                throw ApiException.invalid("stream_options", "stream_options is only allowed with stream: true");
            }
            for (Map.Entry<String, JsonNode> e : so.properties()) {
                if (!e.getKey().equals("include_usage")) {
                    throw ApiException.invalid("stream_options." + e.getKey(), "unknown_field",
                            "unrecognized stream option '" + e.getKey() + "'");
                }
            }
            includeUsage = bool(so, "include_usage", false, "stream_options.include_usage");
        }
        long seed = present(root.get("seed")) ? longValue(root.get("seed"), "seed")
                : ThreadLocalRandom.current().nextLong();
        List<String> stop = stops(root.get("stop"));
        boolean ignoreEos = bool(root, "ignore_eos", false);
        boolean speculative = present(root.get("speculative")) ? bool(root, "speculative", false) : engine.hasDraft();
        if (speculative && !engine.hasDraft()) {
            throw ApiException.invalid("speculative", "speculative decoding needs a draft model; start the server"
                    + " with --draft");
        }
        if (!stop.isEmpty() && !engine.hasTokenizer()) {
            throw ApiException.invalid("stop", "stop strings need a tokenizer, and this model has none");
        }

        List<ChatMessage> messages = null;
        int[] prompt;
        ScaffoldOptions scaffold = null;
        Integer maxTokens;
        AgentOptions agent = AgentOptions.NONE;
        int topLogprobs = -1;
        if (chat) {
            boolean logprobs = present(root.get("logprobs")) && bool(root, "logprobs", false);
            JsonNode tl = root.get("top_logprobs");
            if (present(tl)) {
                int k = integer(root, "top_logprobs", 0, 0, ai.k2j.engine.EngineRequest.MAX_TOP_LOGPROBS);
                if (!logprobs && k > 0) {
                    throw ApiException.invalid("top_logprobs", "top_logprobs needs logprobs: true");
                }
                topLogprobs = logprobs ? k : -1;
            } else if (logprobs) {
                topLogprobs = 0;
            }
            agent = AgentOptions.parse(root, ToolCalls.formatOf(engine.hasTokenizer() ? engine.tokenizer() : null));
            if (present(root.get("parallel_tool_calls"))) {
                bool(root, "parallel_tool_calls", false);
            }
            requireNeutral(root, "store", false);
            if (present(root.get("metadata"))) {
                throw ApiException.invalid("metadata", "unsupported_value", "metadata (stored completions) is not"
                        + " supported");
            }
            if (present(root.get("max_tokens")) && present(root.get("max_completion_tokens"))) {
                throw ApiException.invalid("max_completion_tokens", "give max_tokens or max_completion_tokens, not both");
            }
            maxTokens = optionalMaxTokens(root, present(root.get("max_completion_tokens")) ? "max_completion_tokens"
                    : "max_tokens");
            messages = messages(root.get("messages"));
            if (!engine.hasTokenizer()) {
                throw ApiException.invalid("messages", "this model has no tokenizer, so it cannot take chat messages;"
                        + " use /v1/completions with token ids");
            }
            try {
                prompt = engine.tokenizer().encodeChat(messages, agent.toolChoice().equals("none") ? null
                        : agent.tools(), true, specialTokensInMessages, true);
            } catch (ai.k2j.tokenizer.ChatTemplateException e) {
                throw ApiException.invalid("messages", "chat_template_error", "the model's chat template cannot render"
                        + " these messages: " + e.getMessage());
            }
            scaffold = scaffold(root, n, stream);
            if (scaffold != null && (agent.grammar() != null || agent.parsesToolCalls())) {
                throw ApiException.invalid("tools", "the scaffold (plan, best_of) does not take tools or"
                        + " response_format");
            }
        } else {
            JsonNode echo = root.get("echo");
            if (present(echo) && bool(root, "echo", false)) {
                throw ApiException.invalid("echo", "unsupported_value", "echo is not supported");
            }
            if (present(root.get("logprobs"))) { // the legacy form: how many alternatives per token
                topLogprobs = integer(root, "logprobs", 0, 0, 5);
            }
            JsonNode bestOf = root.get("best_of");
            if (present(bestOf) && integer(root, "best_of", n, 1, 64) != n) {
                throw ApiException.invalid("best_of", "unsupported_value", "best_of must equal n (server-side"
                        + " ranking is offered by the chat scaffold instead)");
            }
            if (present(root.get("suffix"))) {
                throw ApiException.invalid("suffix", "unsupported_value", "suffix is not supported");
            }
            prompt = prompt(root.get("prompt"));
            maxTokens = optionalMaxTokens(root, "max_tokens");
            if (maxTokens == null) {
                maxTokens = COMPLETIONS_DEFAULT_MAX_TOKENS;
            }
        }
        int ctx = engine.maxContext();
        if (prompt.length == 0) {
            throw ApiException.invalid(chat ? "messages" : "prompt", "the prompt is empty");
        }
        int room = ctx - prompt.length;
        if (room <= 0) {
            throw ApiException.invalid(chat ? "messages" : "prompt", "context_length_exceeded", "this model's maximum"
                    + " context length is " + ctx + " tokens, but the prompt has " + prompt.length
                    + " tokens; shorten it");
        }
        int resolvedMax;
        if (maxTokens == null) {
            resolvedMax = room;
        } else if (maxTokens > room) {
            throw ApiException.invalid(chat && present(root.get("max_completion_tokens")) ? "max_completion_tokens"
                    : "max_tokens", "context_length_exceeded", "this model's maximum context length is " + ctx
                    + " tokens; you requested " + (prompt.length + (long) maxTokens) + " tokens (" + prompt.length
                    + " in the prompt, " + maxTokens + " for the completion); lower max_tokens or shorten the prompt");
        } else {
            resolvedMax = maxTokens;
        }
        return new ParsedRequest(chat, messages, prompt, resolvedMax, temperature, topP, topK, minP, seed, stop, n,
                stream, includeUsage, ignoreEos, speculative, scaffold, agent, topLogprobs);
    }

    // ---------------------------------------------------------------- pieces

    private List<ChatMessage> messages(JsonNode node) {
        if (!present(node)) {
            throw ApiException.invalid("messages", "missing required field 'messages'");
        }
        if (!node.isArray() || node.isEmpty()) {
            throw ApiException.invalid("messages", "messages must be a non-empty array");
        }
        List<ChatMessage> out = new ArrayList<>();
        for (int i = 0; i < node.size(); i++) {
            JsonNode m = node.get(i);
            String where = "messages[" + i + "]";
            if (!m.isObject()) {
                throw ApiException.invalid(where, where + " must be an object");
            }
            for (Map.Entry<String, JsonNode> e : m.properties()) {
                if (e.getKey().equals("refusal") && (e.getValue().isNull() || e.getValue().isTextual())) {
                    continue; // clients echo an assistant message back as they got it
                }
                if (!Set.of("role", "content", "name", "tool_calls", "tool_call_id").contains(e.getKey())) {
                    throw ApiException.invalid(where + "." + e.getKey(), "unknown_field", "unsupported message field '"
                            + e.getKey() + "' (k2j takes role, content, name, tool_calls and tool_call_id)");
                }
            }
            JsonNode roleNode = m.get("role");
            if (!present(roleNode)) {
                throw ApiException.invalid(where + ".role", "missing required field 'role'");
            }
            String role = string(roleNode, where + ".role");
            if (role.equals("developer")) {
                role = "system";
            }
            if (!Set.of("system", "user", "assistant", "tool").contains(role)) {
                throw ApiException.invalid(where + ".role", "unsupported role '" + role
                        + "' (system, developer, user, assistant or tool)");
            }
            String name = present(m.get("name")) ? string(m.get("name"), where + ".name") : null;
            List<ai.k2j.tokenizer.ToolCall> calls = toolCalls(m.get("tool_calls"), role, where);
            String callId = null;
            if (present(m.get("tool_call_id"))) {
                if (!role.equals("tool")) {
                    throw ApiException.invalid(where + ".tool_call_id", "tool_call_id belongs to role 'tool' messages");
                }
                callId = string(m.get("tool_call_id"), where + ".tool_call_id");
            }
            String content = !calls.isEmpty() && !present(m.get("content")) ? null
                    : content(m.get("content"), where + ".content");
            out.add(new ChatMessage(role, content, calls, callId, name));
        }
        return out;
    }

    private static List<ai.k2j.tokenizer.ToolCall> toolCalls(JsonNode node, String role, String where) {
        if (!present(node)) {
            return List.of();
        }
        if (!role.equals("assistant")) {
            throw ApiException.invalid(where + ".tool_calls", "tool_calls belong to role 'assistant' messages");
        }
        if (!node.isArray()) {
            throw ApiException.invalid(where + ".tool_calls", "tool_calls must be an array");
        }
        List<ai.k2j.tokenizer.ToolCall> calls = new ArrayList<>();
        for (int i = 0; i < node.size(); i++) {
            JsonNode c = node.get(i);
            String w = where + ".tool_calls[" + i + "]";
            JsonNode fn = c.path("function");
            if (!c.isObject() || !fn.path("name").isTextual() || !fn.path("arguments").isTextual()) {
                throw ApiException.invalid(w, w + " must be {\"id\": ..., \"type\": \"function\", \"function\":"
                        + " {\"name\": ..., \"arguments\": \"<JSON text>\"}}");
            }
            calls.add(new ai.k2j.tokenizer.ToolCall(c.path("id").textValue(), fn.get("name").textValue(),
                    fn.get("arguments").textValue()));
        }
        return calls;
    }

    private static String content(JsonNode node, String where) {
        if (!present(node)) {
            throw ApiException.invalid(where, "missing required field 'content'");
        }
        if (node.isTextual()) {
            return node.textValue();
        }
        if (!node.isArray()) {
            throw ApiException.invalid(where, where + " must be a string or an array of text parts");
        }
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < node.size(); i++) {
            JsonNode part = node.get(i);
            String w = where + "[" + i + "]";
            if (!part.isObject() || !"text".equals(part.path("type").textValue()) || !part.path("text").isTextual()
                    || part.size() != 2) {
                throw ApiException.invalid(w, "unsupported content part (only {\"type\": \"text\", \"text\": ...})");
            }
            sb.append(part.get("text").textValue());
        }
        return sb.toString();
    }

    private int[] prompt(JsonNode node) {
        if (!present(node)) {
            throw ApiException.invalid("prompt", "missing required field 'prompt'");
        }
        if (node.isTextual()) {
            return encode(node.textValue());
        }
        if (node.isArray() && node.size() == 1 && (node.get(0).isTextual() || node.get(0).isArray())) {
            return prompt(node.get(0)); // a batch of one
        }
        if (node.isArray() && !node.isEmpty()) {
            int vocab = engine.vocabSize();
            int[] ids = new int[node.size()];
            for (int i = 0; i < ids.length; i++) {
                JsonNode t = node.get(i);
                if (!t.isInt() || t.intValue() < 0 || t.intValue() >= vocab) {
                    throw ApiException.invalid("prompt", "prompt[" + i + "] must be a token id in [0, " + vocab
                            + "), got " + t);
                }
                ids[i] = t.intValue();
            }
            return ids;
        }
        throw ApiException.invalid("prompt", "prompt must be a string, a list of token ids, or a list holding one of"
                + " those (one prompt per request)");
    }

    private int[] encode(String text) {
        if (!engine.hasTokenizer()) {
            throw ApiException.invalid("prompt", "this model has no tokenizer; send the prompt as token ids");
        }
        return engine.tokenizer().encode(text);
    }

    private ScaffoldOptions scaffold(JsonNode root, int n, boolean stream) {
        JsonNode planNode = root.get("plan");
        JsonNode bestOfNode = root.get("best_of");
        JsonNode verifierNode = root.get("verifier");
        if (!present(planNode) && !present(bestOfNode) && !present(verifierNode)) {
            return null;
        }
        ScaffoldOptions o = ScaffoldOptions.defaults().withPlan(false).withBestOf(1);
        if (present(planNode)) {
            if (planNode.isBoolean()) {
                o = o.withPlan(planNode.booleanValue());
            } else if (planNode.isObject()) {
                o = o.withPlan(true);
                for (Map.Entry<String, JsonNode> e : planNode.properties()) {
                    String where = "plan." + e.getKey();
                    switch (e.getKey()) {
                        case "prompt" -> o = o.withPlanPrompt(template(e.getValue(), where, "{question}"));
                        case "reasoning_prompt" -> o = o.withReasoningPrompt(template(e.getValue(), where,
                                "{plan}", "{question}"));
                        case "max_tokens" -> o = o.withPlanMaxTokens(integer(planNode, "max_tokens", 256, 1,
                                engine.maxContext(), where));
                        default -> throw ApiException.invalid(where, "unknown_field", "unrecognized plan option '"
                                + e.getKey() + "' (prompt, reasoning_prompt, max_tokens)");
                    }
                }
            } else {
                throw ApiException.invalid("plan", "plan must be a boolean or an object");
            }
        }
        if (present(bestOfNode)) {
            o = o.withBestOf(integer(root, "best_of", 1, 1, engine.maxBatch()));
        }
        if (present(verifierNode)) {
            String v = string(verifierNode, "verifier");
            if (!Set.of("majority", "judge", "first").contains(v)) {
                throw ApiException.invalid("verifier", "verifier must be majority, judge or first, got '" + v + "'");
            }
            o = o.withVerifier(v);
        }
        if (!o.isActive()) {
            return null;
        }
        if (stream) {
            throw ApiException.invalid("stream", "the scaffold (plan, best_of) answers in one piece: stream must be"
                    + " false");
        }
        if (n != 1) {
            throw ApiException.invalid("n", "with the scaffold (plan, best_of), n must be 1; best_of sets the"
                    + " candidates");
        }
        return o;
    }

    private static String template(JsonNode node, String where, String... placeholders) {
        String t = string(node, where);
        for (String p : placeholders) {
            if (!t.contains(p)) {
                throw ApiException.invalid(where, where + " must contain " + p);
            }
        }
        return t;
    }

    private static List<String> stops(JsonNode node) {
        if (!present(node)) {
            return List.of();
        }
        List<String> out = new ArrayList<>();
        if (node.isTextual()) {
            out.add(node.textValue());
        } else if (node.isArray()) {
            if (node.size() > MAX_STOP) {
                throw ApiException.invalid("stop", "at most " + MAX_STOP + " stop sequences, got " + node.size());
            }
            for (int i = 0; i < node.size(); i++) {
                if (!node.get(i).isTextual()) {
                    throw ApiException.invalid("stop", "stop[" + i + "] must be a string");
                }
                out.add(node.get(i).textValue());
            }
        } else {
            throw ApiException.invalid("stop", "stop must be a string or an array of strings");
        }
        long chars = 0;
        for (String s : out) {
            if (s.isEmpty()) {
                throw ApiException.invalid("stop", "stop sequences must not be empty");
            }
            chars += s.length();
        }
        if (chars > MAX_STOP_CHARS) {
            throw ApiException.invalid("stop", "the stop sequences total " + chars + " characters; at most "
                    + MAX_STOP_CHARS + " are allowed");
        }
        return out;
    }

    private static Integer optionalMaxTokens(JsonNode root, String field) {
        JsonNode node = root.get(field);
        if (!present(node)) {
            return null;
        }
        if (!node.isIntegralNumber()) {
            throw ApiException.invalid(field, field + " must be an integer, got " + describe(node));
        }
        if (!node.canConvertToInt()) {
            throw ApiException.invalid(field, field + " is out of range: " + node.asText());
        }
        int v = node.intValue();
        if (v < 1) {
            throw ApiException.invalid(field, field + " must be at least 1, got " + v);
        }
        return v;
    }

    private static void requireNeutral(JsonNode root, String field, Object neutral) {
        JsonNode node = root.get(field);
        if (!present(node)) {
            return;
        }
        if (neutral instanceof Double d) {
            if (!node.isNumber()) {
                throw ApiException.invalid(field, field + " must be a number, got " + describe(node));
            }
            if (node.doubleValue() != d) {
                throw ApiException.invalid(field, "unsupported_value", field + " is not supported (only " + d + ")");
            }
        } else if (neutral instanceof Boolean b) {
            if (!node.isBoolean()) {
                throw ApiException.invalid(field, field + " must be a boolean, got " + describe(node));
            }
            if (node.booleanValue() != b) {
                throw ApiException.invalid(field, "unsupported_value", field + " is not supported (only " + b + ")");
            }
        }
    }

    static boolean present(JsonNode n) {
        return n != null && !n.isNull() && !n.isMissingNode();
    }

    private static String string(JsonNode node, String field) {
        if (!node.isTextual()) {
            throw ApiException.invalid(field, field + " must be a string, got " + describe(node));
        }
        return node.textValue();
    }

    private static boolean bool(JsonNode root, String field, boolean dflt) {
        return bool(root, field, dflt, field);
    }

    private static boolean bool(JsonNode root, String field, boolean dflt, String name) {
        JsonNode node = root.get(field);
        if (!present(node)) {
            return dflt;
        }
        if (!node.isBoolean()) {
            throw ApiException.invalid(name, name + " must be a boolean, got " + describe(node));
        }
        return node.booleanValue();
    }

    private static double number(JsonNode root, String field, double dflt, double min, double max) {
        JsonNode node = root.get(field);
        if (!present(node)) {
            return dflt;
        }
        if (!node.isNumber()) {
            throw ApiException.invalid(field, field + " must be a number, got " + describe(node));
        }
        double v = node.doubleValue();
        if (!(v >= min && v <= max)) {
            throw ApiException.invalid(field, field + " must be in [" + min + ", " + max + "], got " + node.asText());
        }
        return v;
    }

    private static int integer(JsonNode root, String field, int dflt, int min, int max) {
        return integer(root, field, dflt, min, max, field);
    }

    private static int integer(JsonNode root, String field, int dflt, int min, int max, String name) {
        JsonNode node = root.get(field);
        if (!present(node)) {
            return dflt;
        }
        if (!node.isIntegralNumber()) {
            throw ApiException.invalid(name, name + " must be an integer, got " + describe(node));
        }
        if (!node.canConvertToInt() || node.intValue() < min || node.intValue() > max) {
            throw ApiException.invalid(name, name + " must be in [" + min + ", " + max + "], got " + node.asText());
        }
        return node.intValue();
    }

    private static long longValue(JsonNode node, String field) {
        if (!node.isIntegralNumber() || !node.canConvertToLong()) {
            throw ApiException.invalid(field, field + " must be a 64-bit integer, got " + describe(node));
        }
        return node.longValue();
    }

    private static String describe(JsonNode node) {
        String type = node.getNodeType().toString().toLowerCase();
        String text = node.toString();
        return type + " " + (text.length() > 40 ? text.substring(0, 40) + "…" : text);
    }
}
