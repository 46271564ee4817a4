package ai.k2j.tokenizer;

import java.util.List;
import java.util.Objects;

/**
 * One chat turn: role is "system", "user", "assistant" or "tool". {@code content} may be null only for an
 * assistant turn that calls tools (OpenAI sends {@code "content": null} there); {@code toolCalls} are the
 * assistant's function calls; {@code toolCallId} says which call a {@code tool} turn answers; {@code name} is the
 * optional participant or tool name.
 */
public record ChatMessage(String role, String content, List<ToolCall> toolCalls, String toolCallId, String name) {
    public ChatMessage {
        Objects.requireNonNull(role, "role");
        toolCalls = toolCalls == null ? List.of() : List.copyOf(toolCalls);
        if (content == null && toolCalls.isEmpty()) {
            throw new NullPointerException("content (null only for an assistant turn with tool calls)");
        }
    }

    public ChatMessage(String role, String content) {
        this(role, content, List.of(), null, null);
    }

    public static ChatMessage system(String content) {
        return new ChatMessage("system", content);
    }

    public static ChatMessage user(String content) {
        return new ChatMessage("user", content);
    }

    public static ChatMessage assistant(String content) {
        return new ChatMessage("assistant", content);
    }

    /** An assistant turn that calls tools ({@code content} may be null). */
    public static ChatMessage assistant(String content, List<ToolCall> toolCalls) {
        return new ChatMessage("assistant", content, toolCalls, null, null);
    }

    /** A tool's result, answering the call {@code toolCallId}. */
    public static ChatMessage tool(String toolCallId, String content) {
        return new ChatMessage("tool", content, List.of(), toolCallId, null);
    }

    /** The content, or "" where it is null. */
    public String text() {
        return content == null ? "" : content;
    }
}
