package ai.k2j.tokenizer;

import java.util.Objects;

/**
 * A function call an assistant message made (OpenAI's {@code tool_calls[i]}): the call's id, the function's name and
 * its arguments as the JSON text the model wrote. Templates see it as
 * {@code {"id": ..., "type": "function", "function": {"name": ..., "arguments": ...}}}.
 */
public record ToolCall(String id, String name, String arguments) {
    public ToolCall {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(arguments, "arguments");
    }
}
