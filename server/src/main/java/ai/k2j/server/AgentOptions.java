package ai.k2j.server;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The agentic part of a chat request: {@code tools} (for the chat template and the output parser),
 * {@code tool_choice}, and the output grammar that {@code response_format} or a forced tool call imposes.
 *
 * @param tools      the request's tools as plain values for the template, or null
 * @param toolNames  their function names (calls of other names are not calls)
 * @param toolChoice "none", "auto", "required" or "function" (then {@code forcedName})
 * @param format     how the model writes calls
 * @param grammar    what the output must match (json_object, json_schema, a forced call), or null
 */
record AgentOptions(List<Object> tools, Set<String> toolNames, String toolChoice, String forcedName,
                    ToolCalls.Format format, JsonGrammar.Node grammar) {

    static final AgentOptions NONE = new AgentOptions(null, Set.of(), "none", null, ToolCalls.Format.HERMES, null);

    /** Whether the output is to be read for tool calls. */
    boolean parsesToolCalls() {
        return tools != null && !toolChoice.equals("none");
    }

    static AgentOptions parse(JsonNode root, ToolCalls.Format format) {
        JsonNode toolsNode = root.get("tools");
        JsonNode choiceNode = root.get("tool_choice");
        List<Object> tools = null;
        Set<String> names = new LinkedHashSet<>();
        List<JsonNode> parameters = new ArrayList<>();
        if (RequestParser.present(toolsNode)) {
            if (!toolsNode.isArray()) {
                throw ApiException.invalid("tools", "tools must be an array of {\"type\": \"function\", \"function\":"
                        + " {...}} objects");
            }
            if (toolsNode.size() > 128) {
                throw ApiException.invalid("tools", "at most 128 tools, got " + toolsNode.size());
            }
            for (int i = 0; i < toolsNode.size(); i++) {
                JsonNode t = toolsNode.get(i);
                String where = "tools[" + i + "]";
                if (!t.isObject() || !"function".equals(t.path("type").textValue()) || !t.path("function").isObject()) {
                    throw ApiException.invalid(where, where + " must be {\"type\": \"function\", \"function\": {...}}");
                }
                JsonNode fn = t.get("function");
                for (Map.Entry<String, JsonNode> e : fn.properties()) {
                    if (!Set.of("name", "description", "parameters", "strict").contains(e.getKey())) {
                        throw ApiException.invalid(where + ".function." + e.getKey(), "unknown_field",
                                "unrecognized function field '" + e.getKey() + "'");
                    }
                }
                String name = fn.path("name").textValue();
                if (name == null || !name.matches("[A-Za-z0-9_.-]{1,64}")) {
                    throw ApiException.invalid(where + ".function.name", "a function name must be 1 to 64 letters,"
                            + " digits, '_', '.' or '-', got " + fn.get("name"));
                }
                if (!names.add(name)) {
                    throw ApiException.invalid(where + ".function.name", "two tools are named '" + name + "'");
                }
                JsonNode params = fn.get("parameters");
                if (params != null && !params.isNull() && !params.isObject()) {
                    throw ApiException.invalid(where + ".function.parameters", "parameters must be a JSON schema"
                            + " object");
                }
                parameters.add(params);
            }
            if (!toolsNode.isEmpty()) {
                tools = RequestParser.JSON.convertValue(toolsNode, List.class);
            }
        }
        String choice = tools == null ? "none" : "auto";
        String forced = null;
        if (RequestParser.present(choiceNode)) {
            if (choiceNode.isTextual()) {
                choice = choiceNode.textValue();
                if (!Set.of("none", "auto", "required").contains(choice)) {
                    throw ApiException.invalid("tool_choice", "tool_choice must be \"none\", \"auto\", \"required\""
                            + " or {\"type\": \"function\", \"function\": {\"name\": ...}}, got '" + choice + "'");
                }
            } else if (choiceNode.isObject() && "function".equals(choiceNode.path("type").textValue())
                    && choiceNode.path("function").path("name").isTextual()) {
                choice = "function";
                forced = choiceNode.get("function").get("name").textValue();
                if (!names.contains(forced)) {
                    throw ApiException.invalid("tool_choice", "tool_choice names the function '" + forced
                            + "', which is not among the tools" + (names.isEmpty() ? "" : " (" + String.join(", ",
                            names) + ")"));
                }
            } else {
                throw ApiException.invalid("tool_choice", "tool_choice must be \"none\", \"auto\", \"required\" or"
                        + " {\"type\": \"function\", \"function\": {\"name\": ...}}");
            }
            if (tools == null && !choice.equals("none")) {
                throw ApiException.invalid("tool_choice", "tool_choice '" + choice + "' needs tools");
            }
        }
        JsonGrammar.Node grammar = null;
        if (choice.equals("required") || choice.equals("function")) {
            List<String> callable = new ArrayList<>();
            List<JsonGrammar.Node> schemas = new ArrayList<>();
            int i = 0;
            for (String name : names) {
                JsonNode params = parameters.get(i);
                if (forced == null || forced.equals(name)) {
                    callable.add(name);
                    schemas.add(params == null || params.isNull() ? JsonGrammar.FREE_OBJECT
                            : compileArguments(params, "tools[" + i + "].function.parameters"));
                }
                i++;
            }
            grammar = ToolCalls.forcedCall(format, callable, schemas);
        }
        JsonGrammar.Node output = responseFormat(root.get("response_format"));
        if (output != null) {
            if (grammar != null) {
                throw ApiException.invalid("response_format", "response_format json_object/json_schema and a forced"
                        + " tool call (tool_choice " + choice + ") cannot both shape the output");
            }
            grammar = output;
        }
        return new AgentOptions(tools, Set.copyOf(names), choice, forced, format, grammar);
    }

    private static JsonGrammar.Node compileArguments(JsonNode schema, String where) {
        try {
            JsonGrammar.Node n = JsonGrammar.compile(schema, where);
            if (n.kind != JsonGrammar.Kind.OBJECT && n.kind != JsonGrammar.Kind.ANY) {
                throw ApiException.invalid(where, "a function's parameters must be an object schema");
            }
            return n.kind == JsonGrammar.Kind.ANY ? JsonGrammar.FREE_OBJECT : n;
        } catch (JsonGrammar.UnsupportedSchemaException e) {
            throw ApiException.invalid(where, "unsupported_schema", e.getMessage());
        }
    }

    /** The grammar of response_format, or null for text. */
    private static JsonGrammar.Node responseFormat(JsonNode rf) {
        if (!RequestParser.present(rf)) {
            return null;
        }
        String type = rf.isObject() ? rf.path("type").textValue() : null;
        if (type == null) {
            throw ApiException.invalid("response_format", "response_format must be {\"type\": \"text\"},"
                    + " {\"type\": \"json_object\"} or {\"type\": \"json_schema\", \"json_schema\": {...}}");
        }
        for (Map.Entry<String, JsonNode> e : rf.properties()) {
            if (!e.getKey().equals("type") && !(type.equals("json_schema") && e.getKey().equals("json_schema"))) {
                throw ApiException.invalid("response_format." + e.getKey(), "unknown_field",
                        "unrecognized response_format field '" + e.getKey() + "'");
            }
        }
        switch (type) {
            case "text" -> {
                return null;
            }
            case "json_object" -> {
                return JsonGrammar.root(JsonGrammar.FREE_OBJECT);
            }
            case "json_schema" -> {
                JsonNode js = rf.get("json_schema");
                if (js == null || !js.isObject()) {
                    throw ApiException.invalid("response_format.json_schema", "json_schema must be an object with"
                            + " name and schema");
                }
                for (Map.Entry<String, JsonNode> e : js.properties()) {
                    if (!Set.of("name", "schema", "strict", "description").contains(e.getKey())) {
                        throw ApiException.invalid("response_format.json_schema." + e.getKey(), "unknown_field",
                                "unrecognized json_schema field '" + e.getKey() + "'");
                    }
                }
                if (!js.path("name").isTextual()) {
                    throw ApiException.invalid("response_format.json_schema.name", "json_schema needs a name");
                }
                JsonNode schema = js.get("schema");
                if (schema == null || schema.isNull()) {
                    return JsonGrammar.root(JsonGrammar.FREE_OBJECT);
                }
                try {
                    return JsonGrammar.root(JsonGrammar.compile(schema, "response_format.json_schema.schema"));
                } catch (JsonGrammar.UnsupportedSchemaException e) {
                    throw ApiException.invalid("response_format.json_schema.schema", "unsupported_schema",
                            e.getMessage());
                }
            }
            default -> throw ApiException.invalid("response_format.type", "response_format type must be text,"
                    + " json_object or json_schema, got '" + type + "'");
        }
    }
}
