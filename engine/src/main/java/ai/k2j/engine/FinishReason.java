package ai.k2j.engine;

/** Why generation ended; names follow the OpenAI API's finish_reason. */
public enum FinishReason {
    /** an end-of-sequence token or a stop string */
    STOP,
    /** max tokens or the context length reached */
    LENGTH,
    /** the listener asked to stop */
    CANCELLED;

    public String openAiName() {
        return this == CANCELLED ? "cancelled" : name().toLowerCase(java.util.Locale.ROOT);
    }
}
