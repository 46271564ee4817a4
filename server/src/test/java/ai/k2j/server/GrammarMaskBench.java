package ai.k2j.server;

import ai.k2j.tokenizer.Tokenizer;

import java.nio.file.Path;

/**
 * Per-token cost of constrained decoding, outside any model: a full vocabulary mask and a single-token check at
 * typical grammar states, for a tokenizer directory (args[0]). Run by hand (docs/agents.md gives the command).
 */
public final class GrammarMaskBench {
    public static void main(String[] args) throws Exception {
        Tokenizer tok = Tokenizer.load(Path.of(args[0]));
        int vocab = tok.vocabSize();
        GrammarConstraint.Vocabulary v = new GrammarConstraint.Vocabulary(tok, vocab, java.util.Set.of());
        JsonGrammar.Node root = JsonGrammar.root(JsonGrammar.compile(RequestParser.JSON.readTree(
                "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":\"integer\"}},"
                        + "\"required\":[\"name\",\"age\"]}"), "s"));
        String[] prefixes = {"", "{\"name\": \"Bo", "{\"name\": \"Bob\", ", "{\"name\": \"Bob\", \"age\": 4"};
        float[] logits = new float[vocab];
        for (String p : prefixes) {
            GrammarConstraint c = new GrammarConstraint(root, v, new int[] {0});
            for (int id : tok.encode(p)) {
                c.accept(id);
            }
            for (int warm = 0; warm < 50; warm++) {
                c.mask(logits, 0);
            }
            int reps = 200;
            long t0 = System.nanoTime();
            for (int r = 0; r < reps; r++) {
                c.mask(logits, 0);
            }
            long t1 = System.nanoTime();
            java.util.Arrays.fill(logits, 0);
            c.mask(logits, 0);
            int allowed = 0;
            for (float f : logits) {
                allowed += f == Float.NEGATIVE_INFINITY ? 0 : 1;
            }
            long t2 = System.nanoTime();
            for (int r = 0; r < reps * 100; r++) {
                c.allows(r % vocab);
            }
            long t3 = System.nanoTime();
            System.out.printf("vocab %d, after %-26s mask %.3f ms (%d allowed), allows() %.2f us%n", vocab,
                    "'" + p + "'", (t1 - t0) / 1e6 / reps, allowed, (t3 - t2) / 1e3 / (reps * 100));
        }
    }
}
