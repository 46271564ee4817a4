package ai.k2j.engine.model;

import ai.k2j.kernels.Buffer;

/**
 * What a {@link DecoderModel}'s forward pass writes, sized once for a context's limits: each architecture's own
 * activation buffers, row views and RoPE table, behind the one thing every caller reads, the logits.
 */
public interface Workspace {
    /** Logits [maxLogitRows, vocab]. */
    Buffer logits();
}
