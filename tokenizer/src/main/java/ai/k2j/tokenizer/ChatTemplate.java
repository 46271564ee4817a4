package ai.k2j.tokenizer;

import java.util.List;

/**
 * ChatML rendering equal to what the Qwen chat templates (tokenizer_config.json {@code chat_template})
 * produce for plain messages without tools. The style is chosen from the template text:
 * <ul>
 *   <li>{@link Style#QWEN25}: the template carries Qwen2.5's default system prompt, which is inserted
 *       when the first message is not a system message;</li>
 *   <li>{@link Style#QWEN3}: the template handles {@code reasoning_content}; no default system prompt;
 *       an assistant turn after the last user query is rendered with its {@code <think>} block
 *       (an empty one, {@code <think>\n\n</think>\n\n}, when it is the final message), and earlier
 *       assistant turns have their {@code <think>...</think>} part removed;</li>
 *   <li>{@link Style#LLAMA3}: the template writes {@code <|start_header_id|>} headers (Llama 3.x): the text starts
 *       with {@code <|begin_of_text|>}, each message is
 *       {@code <|start_header_id|>{role}<|end_header_id|>\n\n{content, whitespace-trimmed}<|eot_id|>}, and the
 *       generation prompt is the assistant header; no default system prompt (the template that
 *       ../shared/testdata/llama3.1-tokenizer ships);</li>
 *   <li>{@link Style#PLAIN}: no template, or one of neither kind.</li>
 * </ul>
 * Every style but LLAMA3 writes {@code <|im_start|>{role}\n{content}<|im_end|>\n} per message, groups consecutive
 * {@code tool} messages into one user turn of {@code <tool_response>} blocks (Qwen styles), and ends
 * with {@code <|im_start|>assistant\n} when a generation prompt is asked for.
 */
final class ChatTemplate {
    static final String QWEN25_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

    enum Style { PLAIN, QWEN25, QWEN3, LLAMA3 }

    private final Style style;

    ChatTemplate(Style style) {
        this.style = style;
    }

    static ChatTemplate fromTemplate(String template) {
        if (template == null) {
            return new ChatTemplate(Style.PLAIN);
        }
        if (template.contains(QWEN25_DEFAULT_SYSTEM)) {
            return new ChatTemplate(Style.QWEN25);
        }
        if (template.contains("reasoning_content") && template.contains("</think>")) {
            return new ChatTemplate(Style.QWEN3);
        }
        if (template.contains("<|start_header_id|>") && template.contains("<|eot_id|>")) {
            return new ChatTemplate(Style.LLAMA3);
        }
        return new ChatTemplate(Style.PLAIN);
    }

    Style style() {
        return style;
    }

    /**
     * @param enableThinking false renders Qwen3's {@code enable_thinking=False}: an empty think block after the
     *                       generation prompt, so the model answers without reasoning; ignored by other styles
     */
    String apply(List<ChatMessage> messages, boolean addGenerationPrompt, boolean enableThinking) {
        return render(messages, addGenerationPrompt, enableThinking).text();
    }

    /**
     * The rendered prompt and where the messages' own text lies in it ({@code [start, end)} pairs, ascending):
     * the spans a caller may tokenize with special tokens read as plain text, while the template's own
     * {@code <|im_start|>}/{@code <|im_end|>} stay control tokens.
     */
    record Rendered(String text, int[] contentSpans) {}

    /** Appends template text and message text, remembering where message text went. */
    private static final class Out {
        final StringBuilder text = new StringBuilder();
        int[] spans = new int[16];
        int spanCount;

        Out append(String s) {
            text.append(s);
            return this;
        }

        Out append(char c) {
            text.append(c);
            return this;
        }

        Out content(String s) {
            if (!s.isEmpty()) {
                if (spanCount + 2 > spans.length) {
                    spans = java.util.Arrays.copyOf(spans, spans.length * 2);
                }
                spans[spanCount++] = text.length();
                text.append(s);
                spans[spanCount++] = text.length();
            }
            return this;
        }
    }

    Rendered render(List<ChatMessage> messages, boolean addGenerationPrompt, boolean enableThinking) {
        Out sb = new Out();
        if (style == Style.LLAMA3) {
            llama3(sb, messages, addGenerationPrompt);
            return new Rendered(sb.text.toString(), java.util.Arrays.copyOf(sb.spans, sb.spanCount));
        }
        int n = messages.size();
        boolean firstIsSystem = n > 0 && messages.getFirst().role().equals("system");
        if (style == Style.QWEN25 && !firstIsSystem) {
            turn(sb, "system", QWEN25_DEFAULT_SYSTEM);
        }
        int lastQuery = n - 1;
        if (style == Style.QWEN3) {
            for (int i = n - 1; i >= 0; i--) {
                ChatMessage m = messages.get(i);
                String c = m.text();
                if (m.role().equals("user") && !(c.startsWith("<tool_response>") && c.endsWith("</tool_response>"))) {
                    lastQuery = i;
                    break;
                }
            }
        }
        for (int i = 0; i < n; i++) {
            ChatMessage m = messages.get(i);
            String role = m.role();
            if (style != Style.PLAIN && role.equals("tool")) {
                if (i == 0 || !messages.get(i - 1).role().equals("tool")) {
                    sb.append("<|im_start|>user");
                }
                sb.append("\n<tool_response>\n").content(m.text()).append("\n</tool_response>");
                if (i == n - 1 || !messages.get(i + 1).role().equals("tool")) {
                    sb.append("<|im_end|>\n");
                }
            } else if (style == Style.QWEN3 && role.equals("assistant")) {
                assistantQwen3(sb, m.text(), i > lastQuery, i == n - 1);
            } else if (style == Style.QWEN3 && !role.equals("user") && !role.equals("system")) {
                // the Qwen3 template renders no other roles
            } else {
                turn(sb, role, m.text());
            }
        }
        if (addGenerationPrompt) {
            sb.append("<|im_start|>assistant\n");
            if (style == Style.QWEN3 && !enableThinking) {
                sb.append("<think>\n\n</think>\n\n");
            }
        }
        return new Rendered(sb.text.toString(), java.util.Arrays.copyOf(sb.spans, sb.spanCount));
    }

    private static void llama3(Out sb, List<ChatMessage> messages, boolean addGenerationPrompt) {
        sb.append("<|begin_of_text|>");
        for (ChatMessage m : messages) {
            sb.append("<|start_header_id|>").append(m.role()).append("<|end_header_id|>\n\n")
                    .content(m.text().strip()).append("<|eot_id|>");
        }
        if (addGenerationPrompt) {
            sb.append("<|start_header_id|>assistant<|end_header_id|>\n\n");
        }
    }

    private static void turn(Out sb, String role, String content) {
        sb.append("<|im_start|>").append(role).append('\n').content(content).append("<|im_end|>\n");
    }

    private static void assistantQwen3(Out sb, String content, boolean afterLastQuery, boolean last) {
        String reasoning = "";
        int end = content.indexOf("</think>");
        if (end >= 0) {
            String before = stripTrailingNewlines(content.substring(0, end));
            int open = before.lastIndexOf("<think>");
            reasoning = stripLeadingNewlines(open >= 0 ? before.substring(open + "<think>".length()) : before);
            content = stripLeadingNewlines(content.substring(content.lastIndexOf("</think>") + "</think>".length()));
        }
        sb.append("<|im_start|>assistant\n");
        if (afterLastQuery && (last || !reasoning.isEmpty())) {
            sb.append("<think>\n").content(stripTrailingNewlines(stripLeadingNewlines(reasoning)))
                    .append("\n</think>\n\n").content(stripLeadingNewlines(content));
        } else {
            sb.content(content);
        }
        sb.append("<|im_end|>\n");
    }

    private static String stripLeadingNewlines(String s) {
        int i = 0;
        while (i < s.length() && s.charAt(i) == '\n') {
            i++;
        }
        return s.substring(i);
    }

    private static String stripTrailingNewlines(String s) {
        int j = s.length();
        while (j > 0 && s.charAt(j - 1) == '\n') {
            j--;
        }
        return s.substring(0, j);
    }
}
