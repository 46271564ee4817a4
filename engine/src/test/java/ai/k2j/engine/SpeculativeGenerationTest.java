package ai.k2j.engine;

import ai.k2j.loaders.ModelFormatException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Speculative decoding through the public API ({@link LanguageModel} with {@link ModelOptions#withDraft}) on
 * the demo pair: stop strings, end-of-sequence and cancellation that land in the middle of a speculative round
 * give exactly the plain result; statistics come with every speculative result; misuse is a clear error.
 */
class SpeculativeGenerationTest {

    private static final String[] PROMPTS = {
            "def quicksort(arr):", "import os\nimport sys\n\n\ndef main(", "class Stack:\n    def push(self, item):",
            "    for key, value in sorted("};

    private static LanguageModel lm;

    static Path demo(String which) {
        return SpecTestSupport.repoRoot().resolve("models/demo").resolve(which);
    }

    @BeforeAll
    static void load() {
        lm = LanguageModel.load(demo("target"), ModelOptions.defaults().withThreads(1).withDraft(demo("draft")));
    }

    @AfterAll
    static void close() {
        lm.close();
    }

    @Test
    void aLoadedDraftIsTheDefaultAndReportsStatistics() {
        assertTrue(lm.hasDraft());
        assertEquals(Speculation.adaptiveDraftModel(Speculation.DEFAULT_DRAFT_TOKENS), lm.defaultSpeculation());
        int[] prompt = lm.encode(PROMPTS[0]);
        GenerationResult spec = lm.generate(GenerationRequest.of(prompt, 40, SamplingParams.greedy()), null);
        GenerationResult plain = lm.generate(GenerationRequest.of(prompt, 40, SamplingParams.greedy())
                .withSpeculation(Speculation.none()), null);
        assertArrayEquals(plain.ids(), spec.ids());
        assertEquals(plain.text(), spec.text());
        assertNull(plain.speculation(), "plain decoding has no speculative statistics");
        SpeculativeStats s = spec.speculation();
        assertNotNull(s);
        assertEquals("draft adaptive k0=4", s.speculation());
        assertTrue(s.acceptanceRate() > 0 && s.acceptanceRate() <= 1, s.toString());
        assertTrue(s.tokensPerTargetPass() > 1, "the demo draft should save target passes: " + s);
        assertTrue(s.emitted() >= spec.generatedTokens() - 1, s.toString());
        assertTrue(s.draftNanos() > 0 && s.targetNanos() > 0 && s.draftTimeShare() + s.targetTimeShare() <= 1.0001);
        assertEquals(s.accepted() + s.targetPasses(), s.emitted(), "each pass yields its accepted drafts plus one");
    }

    @Test
    void stopsInsideARoundEqualPlainDecoding() {
        List<List<String>> stops = List.of(List.of(), List.of("\n"), List.of(")", ":"), List.of("return"));
        List<Speculation> settings = List.of(Speculation.draftModel(3), Speculation.draftModel(8),
                Speculation.adaptiveDraftModel(4), Speculation.promptLookup(5));
        int stoppedByString = 0;
        for (String text : PROMPTS) {
            int[] prompt = lm.encode(text);
            for (List<String> stop : stops) {
                for (boolean ignoreEos : new boolean[] {false, true}) {
                    GenerationRequest req = new GenerationRequest(prompt, 48, SamplingParams.greedy(), stop, ignoreEos,
                            Speculation.none());
                    GenerationResult plain = lm.generate(req, null);
                    stoppedByString += !stop.isEmpty() && plain.finishReason() == FinishReason.STOP ? 1 : 0;
                    for (Speculation s : settings) {
                        GenerationResult r = lm.generate(req.withSpeculation(s), null);
                        String what = s.describe() + " " + stop + " ignoreEos=" + ignoreEos + " '" + text + "'";
                        assertArrayEquals(plain.ids(), r.ids(), what);
                        assertEquals(plain.text(), r.text(), what);
                        assertEquals(plain.finishReason(), r.finishReason(), what);
                    }
                }
            }
        }
        assertTrue(stoppedByString >= 6, "stop strings should end several generations mid-way: " + stoppedByString);
    }

    @Test
    void listenerSeesTheSameTokensAndCanCancelMidRound() {
        int[] prompt = lm.encode(PROMPTS[2]);
        for (Speculation s : List.of(Speculation.none(), Speculation.draftModel(6))) {
            List<Integer> seen = new ArrayList<>();
            StringBuilder text = new StringBuilder();
            GenerationResult r = lm.generate(new GenerationRequest(prompt, 50, SamplingParams.greedy(), List.of(),
                    true, s), (id, piece) -> {
                seen.add(id);
                text.append(piece);
                return seen.size() < 7;
            });
            assertEquals(FinishReason.CANCELLED, r.finishReason(), s.describe());
            assertEquals(7, r.generatedTokens(), s.describe());
            assertEquals(seen, java.util.Arrays.stream(r.ids()).boxed().toList(), s.describe());
            assertEquals(text.toString(), r.text(), s.describe());
        }
    }

    @Test
    void sampledSpeculationIsReproducibleForASeed() {
        // with a fixed length: the adaptive length follows measured times, and with it the random draws
        int[] prompt = lm.encode(PROMPTS[1]);
        GenerationRequest req = new GenerationRequest(prompt, 40, SamplingParams.of(0.7, 0.95, 40, 1234), List.of(),
                true, Speculation.draftModel(4));
        GenerationResult a = lm.generate(req, null);
        GenerationResult b = lm.generate(req, null);
        assertArrayEquals(a.ids(), b.ids(), "same seed, same tokens");
        assertEquals(a.speculation().accepted(), b.speculation().accepted(), "same seed, same decisions");
        assertEquals(40, a.generatedTokens());
    }

    @Test
    void misuseIsAClearError() {
        int[] prompt = lm.encode(PROMPTS[0]);
        IllegalArgumentException tooLong = assertThrows(IllegalArgumentException.class, () -> lm.generate(
                GenerationRequest.of(prompt, 10, SamplingParams.greedy()).withSpeculation(new Speculation(
                        Speculation.Mode.DRAFT_MODEL, 16, false, 0)), null));
        assertTrue(tooLong.getMessage().contains("draft tokens must be in [1, 15]"), tooLong.getMessage());
        try (LanguageModel alone = LanguageModel.load(demo("target"), ModelOptions.defaults().withThreads(1))) {
            assertEquals(Speculation.none(), alone.defaultSpeculation());
            IllegalArgumentException noDraft = assertThrows(IllegalArgumentException.class, () -> alone.generate(
                    GenerationRequest.of(prompt, 10, SamplingParams.greedy())
                            .withSpeculation(Speculation.draftModel(4)), null));
            assertTrue(noDraft.getMessage().contains("needs a draft model"), noDraft.getMessage());
            // prompt lookup needs no draft
            GenerationResult r = alone.generate(GenerationRequest.of(prompt, 10, SamplingParams.greedy())
                    .withSpeculation(Speculation.promptLookup(4)), null);
            assertEquals(10, r.generatedTokens());
            assertNotNull(r.speculation());
        }
    }

    @Test
    void aDraftWithAnotherVocabularyIsRefusedAtLoad() {
        Path other = SpecTestSupport.repoRoot().resolve("engine/src/test/resources/golden/tied_mha_f32");
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> LanguageModel.load(demo("target"),
                ModelOptions.defaults().withThreads(1).withDraft(other)));
        assertTrue(e.getMessage().contains("vocab_size 512 differs from the target's 8192"), e.getMessage());
        assertTrue(e.getMessage().contains(other.toString()), e.getMessage());
    }
}
