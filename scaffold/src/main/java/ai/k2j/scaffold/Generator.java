package ai.k2j.scaffold;

import ai.k2j.engine.SamplingParams;
import ai.k2j.tokenizer.ChatMessage;

import java.util.List;

/**
 * Samples completions of a chat: the model side of the scaffold. {@link EngineGenerator} runs them on a
 * {@link ai.k2j.engine.BatchEngine} (the {@code n} samples decode as one batch); tests substitute scripted
 * generators. Implementations are thread-safe.
 */
@FunctionalInterface
public interface Generator {

    /** One completion: its text and how many tokens it took. */
    record Sample(String text, int tokens, String finishReason) {
    }

    /**
     * {@code n} completions of {@code messages} (the chat template and assistant prompt applied); sample {@code i}
     * uses seed {@code sampling.seed() + i}.
     */
    List<Sample> generate(List<ChatMessage> messages, int n, SamplingParams sampling, int maxTokens);
}
