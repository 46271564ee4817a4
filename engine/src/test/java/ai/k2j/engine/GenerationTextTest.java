package ai.k2j.engine;

import ai.k2j.testing.TestCheckpoints;
import ai.k2j.engine.TestModels.Spec;
import ai.k2j.kernels.ReferenceBackend;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.GenerationConfig;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.RopeScaling;
import ai.k2j.loaders.Tensor;
import ai.k2j.tokenizer.Tokenizer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Listener text, result text and stop strings with the real Qwen tokenizer and a random model over its full
 * vocabulary (sampling at a high temperature, so the ids cover multi-byte pieces).
 */
class GenerationTextTest {

    private static Arena arena;
    private static LanguageModel lm;
    private static Tokenizer tokenizer;

    @BeforeAll
    static void load() {
        Path dir = TestCheckpoints.qwenTokenizer();
        try {
            tokenizer = Tokenizer.load(dir);
        } catch (UnsupportedOperationException e) {
            Assumptions.abort("the tokenizer is not implemented in this build yet");
        }
        ModelConfig c = new Spec("qwen-vocab", 16, 32, 1, 2, 1, 8, tokenizer.vocabSize(), true, DType.BF16,
                RopeScaling.NONE, 1e6, 4096).config();
        arena = Arena.ofShared();
        Map<String, Tensor> w = TestModels.weights(c, DType.BF16, 5, arena);
        lm = LanguageModel.create(c, GenerationConfig.DEFAULT, name -> Optional.ofNullable(w.get(name)), "qwen-vocab",
                new ReferenceBackend(), tokenizer, 512, null, null);
    }

    @AfterAll
    static void close() {
        if (lm != null) {
            lm.close();
        }
        if (arena != null) {
            arena.close();
        }
    }

    private static GenerationRequest request(int maxTokens, List<String> stop) {
        return new GenerationRequest(tokenizer.encode("def fibonacci(n):"), maxTokens,
                new SamplingParams(3.0, 1.0, 0, 0, 31337), stop, true);
    }

    @Test
    void listenerTextAndResultTextEqualTheDecodedIds() {
        StringBuilder streamed = new StringBuilder();
        List<Integer> ids = new ArrayList<>();
        GenerationResult r = lm.generate(request(60, List.of()), (id, text) -> {
            ids.add(id);
            streamed.append(text);
            return true;
        });
        assertEquals(60, r.generatedTokens());
        assertEquals(ids, java.util.Arrays.stream(r.ids()).boxed().toList());
        String decoded = tokenizer.decode(r.ids(), true);
        assertEquals(decoded, r.text());
        assertEquals(decoded, streamed.toString());
        assertTrue(decoded.length() > 20, decoded);
    }

    @Test
    void stopStringCutsTheTextAndNeverReachesTheListener() {
        String full = lm.generate(request(60, List.of()), null).text();
        // a stop string from the middle of the text, spanning whatever tokens it spans
        int from = full.length() / 2;
        String stop = full.substring(from, Math.min(full.length(), from + 5));
        int cut = full.indexOf(stop);
        StringBuilder streamed = new StringBuilder();
        GenerationResult r = lm.generate(request(60, List.of("\u0000never", stop)), (id, text) -> {
            streamed.append(text);
            return true;
        });
        assertEquals(FinishReason.STOP, r.finishReason());
        assertEquals(full.substring(0, cut), r.text());
        assertEquals(r.text(), streamed.toString(), "the listener saw exactly the kept text");
        int[] prefix = java.util.Arrays.copyOf(lm.generate(request(r.generatedTokens(), List.of()), null).ids(),
                r.generatedTokens());
        assertArrayEquals(prefix, r.ids(), "same seed, same tokens up to the one completing the stop string");
    }
}
