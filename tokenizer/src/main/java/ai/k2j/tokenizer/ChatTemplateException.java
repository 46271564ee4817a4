package ai.k2j.tokenizer;

/**
 * The model's chat template cannot render these messages: a syntax error, an unsupported feature, a sandbox bound
 * exceeded, or the template's own {@code raise_exception(...)} (templates use it to refuse conversations they do
 * not support, such as roles out of order). The message says which.
 */
public final class ChatTemplateException extends RuntimeException {
    public ChatTemplateException(String message) {
        super(message);
    }
}
