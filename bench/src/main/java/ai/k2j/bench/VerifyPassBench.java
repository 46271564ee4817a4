package ai.k2j.bench;

import ai.k2j.engine.LanguageModel;
import ai.k2j.engine.LoadedModel;
import ai.k2j.engine.ModelContext;
import ai.k2j.engine.Sequence;
import ai.k2j.kernels.Backend;
import ai.k2j.kernels.Batch;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;

/**
 * Cost of a target pass over n = 1..8 tokens (a speculative verification) after a prompt, on the CPU backend: the
 * minimum over {@code passes} forward passes per n, repeated {@code rounds} times with the token counts interleaved
 * so a drifting shared machine affects all alike; prints ms per pass and the ratio to one token (v). Usage:
 * {@code java -cp ... ai.k2j.bench.VerifyPassBench MODEL_DIR [threads=1] [passes=200] [rounds=3]}.
 */
public final class VerifyPassBench {
    private VerifyPassBench() {
    }

    public static void main(String[] args) {
        Path dir = Path.of(args[0]);
        int threads = args.length > 1 ? Integer.parseInt(args[1]) : 1;
        int passes = args.length > 2 ? Integer.parseInt(args[2]) : 200;
        int rounds = args.length > 3 ? Integer.parseInt(args[3]) : 3;
        int maxTokens = 8;
        try (Backend backend = LanguageModel.createBackend("cpu", threads);
             LoadedModel model = LoadedModel.load(dir, backend, null)) {
            ModelContext ctx = model.newContext(ModelContext.Limits.singleSequence(512));
            Batch batch = ctx.newBatch();
            int vocab = ctx.vocabSize();
            int[] prompt = new int[96];
            for (int i = 0; i < prompt.length; i++) {
                prompt[i] = (i * 7919 + 13) % vocab;
            }
            int[] argmax = new int[16];
            double[][] minMs = new double[rounds][maxTokens + 1];
            try (Sequence seq = ctx.newSequence()) {
                batch.clear();
                seq.addTo(batch, prompt, 0, prompt.length, 1);
                ctx.forwardArgmax(batch, argmax);
                int[] tokens = Arrays.copyOf(prompt, maxTokens);
                for (int warm = 0; warm < 3 * passes; warm++) {
                    pass(ctx, batch, seq, tokens, 1 + warm % maxTokens, argmax);
                }
                for (int r = 0; r < rounds; r++) {
                    Arrays.fill(minMs[r], Double.MAX_VALUE);
                    for (int p = 0; p < passes; p++) {
                        for (int n = 1; n <= maxTokens; n++) {
                            long t0 = System.nanoTime();
                            pass(ctx, batch, seq, tokens, n, argmax);
                            minMs[r][n] = Math.min(minMs[r][n], (System.nanoTime() - t0) / 1e6);
                        }
                    }
                }
            }
            for (int n = 1; n <= maxTokens; n++) {
                double[] m = new double[rounds];
                for (int r = 0; r < rounds; r++) {
                    m[r] = minMs[r][n];
                }
                Arrays.sort(m);
                double one = median(minMs, 1);
                System.out.printf(Locale.ROOT, "tokens %d: %.3f ms (median of %d minima), v = %.2f%n", n, m[rounds / 2],
                        rounds, m[rounds / 2] / one);
            }
        }
    }

    private static double median(double[][] minMs, int n) {
        double[] m = new double[minMs.length];
        for (int r = 0; r < m.length; r++) {
            m[r] = minMs[r][n];
        }
        Arrays.sort(m);
        return m[m.length / 2];
    }

    /** One forward pass over n tokens with every logit row's argmax (a greedy verification), then rolled back. */
    private static void pass(ModelContext ctx, Batch batch, Sequence seq, int[] tokens, int n, int[] argmax) {
        int length = seq.length();
        batch.clear();
        seq.addTo(batch, tokens, 0, n, n);
        ctx.forwardArgmax(batch, argmax);
        seq.rollback(length);
    }
}
