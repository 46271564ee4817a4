package ai.k2j.engine;

import ai.k2j.kernels.Batch;

/**
 * The hot half of generation: prefill a prompt in chunks, then one token in, one token out. Everything it
 * touches is preallocated, so {@link #step} allocates nothing (measured by NoAllocationTest); text, stop
 * strings and listeners live outside it in {@link LanguageModel}. Greedy steps bring back only the argmax; on a
 * backend that samples on the device (CUDA), so do sampled steps without min-p (the device draws differ from
 * {@link Sampler}'s stream, the distribution is the same).
 */
final class DecodeLoop {
    private final ModelContext model;
    private final Sampler sampler;
    private final Batch batch;
    private final int[] argmax = new int[1];
    private Sequence seq;

    DecodeLoop(ModelContext model, Sampler sampler) {
        this.model = model;
        this.sampler = sampler;
        this.batch = model.newBatch();
    }

    /** Appends the prompt to {@code seq} in chunks and returns the first generated token. */
    int prefill(Sequence seq, int[] prompt) {
        this.seq = seq;
        model.prefill(seq, batch, prompt, 0, prompt.length, true);
        return next();
    }

    /** Feeds {@code token} at the end of the sequence and returns the next one. Allocation-free. */
    int step(int token) {
        batch.clear();
        seq.addTo(batch, token, true);
        return next();
    }

    private int next() {
        SamplingParams p = sampler.params();
        if (p.isGreedy()) {
            model.forwardArgmax(batch, argmax);
            return argmax[0];
        }
        if (p.minP() <= 0 && model.samplesOnDevice()) {  // the device sampler has no min-p
            model.forwardSample(batch, (float) p.temperature(), Math.max(0, p.topK()), (float) p.topP(),
                    sampler.nextSeed(), argmax);
            return argmax[0];
        }
        float[] logits = model.forward(batch);
        return sampler.sample(logits, 0);
    }
}
