package ai.k2j.scaffold;

import ai.k2j.engine.BatchEngine;
import ai.k2j.engine.ChoiceResult;
import ai.k2j.engine.EngineRequest;
import ai.k2j.engine.GenerationObserver;
import ai.k2j.engine.GenerationRequest;
import ai.k2j.engine.SamplingParams;
import ai.k2j.tokenizer.ChatMessage;

import java.util.ArrayList;
import java.util.List;

/**
 * A {@link Generator} on a {@link BatchEngine}: the {@code n} samples are one request with {@code n} choices, so the
 * prompt is prefilled once and the samples decode together; concurrent callers share the batch too. The prompt
 * plus {@code maxTokens} is clamped to the context.
 */
public final class EngineGenerator implements Generator {
    private final BatchEngine engine;
    private final boolean speculative;

    /** @param speculative use the engine's draft model (ignored when it has none) */
    public EngineGenerator(BatchEngine engine, boolean speculative) {
        this.engine = engine;
        this.speculative = speculative && engine.hasDraft();
    }

    public BatchEngine engine() {
        return engine;
    }

    @Override
    public List<Sample> generate(List<ChatMessage> messages, int n, SamplingParams sampling, int maxTokens) {
        int[] prompt = engine.encodeChat(messages);
        if (prompt.length >= engine.maxContext()) {
            throw new IllegalArgumentException("the prompt has " + prompt.length + " tokens, which leaves no room"
                    + " in the context of " + engine.maxContext());
        }
        int budget = Math.min(maxTokens, engine.maxContext() - prompt.length);
        GenerationRequest g = new GenerationRequest(prompt, budget, sampling, List.of(), false);
        List<ChoiceResult> results = engine.submit(new EngineRequest(g, n, speculative), GenerationObserver.NONE)
                .await();
        List<Sample> out = new ArrayList<>(results.size());
        for (ChoiceResult r : results) {
            out.add(new Sample(r.text(), r.completionTokens(), r.finishReason().openAiName()));
        }
        return out;
    }
}
