package ai.k2j.engine;

import ai.k2j.testing.TestCheckpoints;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(value = 300, unit = TimeUnit.SECONDS)
class BatchEngineTest {

    static final int VOCAB = 256;
    static final int CTX = 400;

    @TempDir
    static Path tmp;
    static Path model;
    static Path otherModel;

    @BeforeAll
    static void writeModels() {
        model = TestCheckpoints.write(tmp.resolve("m"), 32, 2, VOCAB, 11, false);
        otherModel = TestCheckpoints.write(tmp.resolve("d"), 16, 1, VOCAB, 12, false);
    }

    static List<String> backends() {
        return TestCheckpoints.backends();
    }

    static EngineOptions options(String backend) {
        return EngineOptions.defaults().withBackend(backend).withThreads(2).withMaxContext(CTX).withMaxBatch(8)
                .withStepTokens(64);
    }

    /** What one LanguageModel (single sequence, no batching) generates. */
    static int[] alone(String backend, GenerationRequest request) {
        try (LanguageModel lm = LanguageModel.load(model,
                ModelOptions.defaults().withBackend(backend).withThreads(2).withMaxContext(CTX))) {
            GenerationResult r = lm.generate(request, null);
            return r.ids();
        }
    }

    static GenerationRequest request(int i, SamplingParams sampling) {
        int promptLength = 1 + (i * 37) % 150 + (i == 3 ? 200 : 0); // one prompt spans several prefill chunks
        return new GenerationRequest(TestCheckpoints.tokens(promptLength, VOCAB, 100 + i), 10 + i % 7, sampling,
                List.of(), true);
    }

    /**
     * Many concurrent requests — different prompts and lengths, greedy and seeded sampling — each get exactly the
     * tokens they get alone from the single-sequence LanguageModel: batching neither mixes streams nor changes
     * numbers.
     */
    @ParameterizedTest
    @MethodSource("backends")
    void concurrentRequestsGetWhatTheyGetAlone(String backend) throws Exception {
        int count = 12;
        List<GenerationRequest> requests = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            SamplingParams s = i % 2 == 0 ? SamplingParams.greedy() : new SamplingParams(0.9, 0.95, 0, 0, 1000 + i);
            requests.add(request(i, s));
        }
        List<int[]> streamed = new ArrayList<>();
        List<RequestHandle> handles = new ArrayList<>();
        try (BatchEngine engine = BatchEngine.load(model, null, options(backend))) {
            for (GenerationRequest r : requests) {
                List<Integer> seen = new ArrayList<>();
                streamed.add(null);
                int index = streamed.size() - 1;
                handles.add(engine.submit(EngineRequest.of(r), new GenerationObserver() {
                    @Override
                    public void onToken(int choice, int tokenId, String text) {
                        seen.add(tokenId);
                    }

                    @Override
                    public void onFinish(int choice, ChoiceResult result) {
                        streamed.set(index, seen.stream().mapToInt(Integer::intValue).toArray());
                    }
                }));
            }
            for (int i = 0; i < count; i++) {
                ChoiceResult result = handles.get(i).await().get(0);
                int[] expected = alone(backend, requests.get(i));
                assertArrayEquals(expected, result.ids(), "request " + i);
                assertArrayEquals(expected, streamed.get(i), "streamed tokens of request " + i);
                assertEquals(FinishReason.LENGTH, result.finishReason());
                assertEquals(requests.get(i).promptIds().length, result.promptTokens());
            }
            EngineMetrics m = engine.metrics();
            assertEquals(count, m.requestsFinished());
            assertTrue(m.steps() < requests.stream().mapToInt(GenerationRequest::maxTokens).sum(),
                    "requests decoded together: " + m.steps() + " steps");
            awaitIdle(engine);
            assertEquals(m.kvBlocksTotal(), m.kvBlocksFree(), "every KV block returned");
        }
    }

    /** n choices share the prompt's KV (forked) and choice i equals the n = 1 request with seed + i. */
    @Test
    void choicesForkThePromptAndMatchSingleRequestsWithShiftedSeeds() {
        GenerationRequest base = new GenerationRequest(TestCheckpoints.tokens(37, VOCAB, 5), 12,
                new SamplingParams(1.0, 0.9, 0, 0, 42), List.of(), true);
        try (BatchEngine engine = BatchEngine.load(model, null, options("reference"))) {
            List<ChoiceResult> choices = engine.generate(new EngineRequest(base, 4, false));
            assertEquals(4, choices.size());
            for (int c = 0; c < 4; c++) {
                GenerationRequest single = new GenerationRequest(base.promptIds(), 12,
                        new SamplingParams(1.0, 0.9, 0, 0, 42 + c), List.of(), true);
                assertArrayEquals(alone("reference", single), choices.get(c).ids(), "choice " + c);
                assertEquals(c, choices.get(c).index());
            }
            assertEquals(37, engine.metrics().promptTokens(), "the prompt was prefilled once");
        }
    }

    /**
     * A KV cache that holds one full context (plus a block) and many concurrent requests: they queue and
     * preempt instead of failing, and everyone still gets exactly their single-sequence tokens.
     */
    @Test
    void aFullCacheQueuesAndPreemptsWithoutChangingResults() {
        int blocks = (CTX + 15) / 16 + 1;
        List<GenerationRequest> requests = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            // short prompts are admitted together, then outgrow the cache (6 × ~10 blocks > 26)
            requests.add(new GenerationRequest(TestCheckpoints.tokens(20 + 10 * i, VOCAB, 200 + i), 130,
                    i % 2 == 0 ? SamplingParams.greedy() : new SamplingParams(0.8, 1, 20, 0, i), List.of(), true));
        }
        try (BatchEngine engine = BatchEngine.load(model, null, options("reference").withKvBlocks(blocks))) {
            List<RequestHandle> handles = requests.stream()
                    .map(r -> engine.submit(EngineRequest.of(r), null)).toList();
            for (int i = 0; i < requests.size(); i++) {
                assertArrayEquals(alone("reference", requests.get(i)), handles.get(i).await().get(0).ids(),
                        "request " + i);
            }
            assertTrue(engine.metrics().preemptions() > 0, "the small cache forced preemptions");
            awaitIdle(engine);
            assertEquals(blocks, engine.metrics().kvBlocksFree());
        }
    }

    @Test
    void cancellingFreesTheSequenceAndItsBlocks() throws Exception {
        try (BatchEngine engine = BatchEngine.load(model, null, options("reference"))) {
            CountDownLatch tokens = new CountDownLatch(3);
            AtomicInteger afterCancel = new AtomicInteger();
            RequestHandle h = engine.submit(EngineRequest.of(new GenerationRequest(
                    TestCheckpoints.tokens(50, VOCAB, 1), 300, SamplingParams.greedy(), List.of(), true)),
                    new GenerationObserver() {
                        @Override
                        public void onToken(int choice, int tokenId, String text) {
                            tokens.countDown();
                            afterCancel.incrementAndGet();
                        }

                        @Override
                        public void onFinish(int choice, ChoiceResult result) {
                        }
                    });
            assertTrue(tokens.await(60, TimeUnit.SECONDS));
            h.cancel();
            ChoiceResult r = h.await(60, TimeUnit.SECONDS).get(0);
            assertEquals(FinishReason.CANCELLED, r.finishReason());
            assertTrue(r.completionTokens() >= 3 && r.completionTokens() < 300, "stopped early: " + r.completionTokens());
            assertEquals(r.completionTokens(), afterCancel.get(), "no token after the cancellation was delivered");
            awaitIdle(engine);
            assertEquals(engine.metrics().kvBlocksTotal(), engine.metrics().kvBlocksFree());
            assertEquals(1, engine.metrics().choicesCancelled());
        }
    }

    @Test
    void anObserverThatThrowsCancelsOnlyItsRequest() {
        try (BatchEngine engine = BatchEngine.load(model, null, options("reference"))) {
            GenerationRequest g = new GenerationRequest(TestCheckpoints.tokens(20, VOCAB, 3), 20,
                    SamplingParams.greedy(), List.of(), true);
            RequestHandle bad = engine.submit(EngineRequest.of(g), new GenerationObserver() {
                @Override
                public void onToken(int choice, int tokenId, String text) {
                    throw new IllegalStateException("client went away");
                }

                @Override
                public void onFinish(int choice, ChoiceResult result) {
                }
            });
            RequestHandle good = engine.submit(EngineRequest.of(g), null);
            assertEquals(FinishReason.CANCELLED, bad.await().get(0).finishReason());
            assertArrayEquals(alone("reference", g), good.await().get(0).ids());
        }
    }

    @Test
    void invalidRequestsAreRejectedAtSubmission() {
        try (BatchEngine engine = BatchEngine.load(model, null, options("reference"))) {
            SamplingParams g = SamplingParams.greedy();
            var tooLong = assertThrows(IllegalArgumentException.class, () -> engine.submit(EngineRequest.of(
                    GenerationRequest.of(new int[CTX + 1], 1, g)), null));
            assertTrue(tooLong.getMessage().contains(String.valueOf(CTX)), tooLong.getMessage());
            assertThrows(IllegalArgumentException.class, () -> engine.submit(EngineRequest.of(
                    GenerationRequest.of(new int[] {VOCAB}, 1, g)), null));
            assertThrows(IllegalArgumentException.class, () -> engine.submit(new EngineRequest(
                    GenerationRequest.of(new int[] {1}, 1, g), 9, false), null));
            var spec = assertThrows(IllegalArgumentException.class, () -> engine.submit(new EngineRequest(
                    GenerationRequest.of(new int[] {1}, 1, g), 1, true), null));
            assertTrue(spec.getMessage().contains("draft"), spec.getMessage());
            // nothing to generate: finishes at once with "length"
            ChoiceResult full = engine.generate(EngineRequest.of(GenerationRequest.of(new int[CTX], 5, g))).get(0);
            assertEquals(FinishReason.LENGTH, full.finishReason());
            assertEquals(0, full.completionTokens());
        }
        EngineOptions tooSmall = options("reference").withKvBlocks(3);
        var e = assertThrows(IllegalArgumentException.class, () -> BatchEngine.load(model, null, tooSmall));
        assertTrue(e.getMessage().contains("kvBlocks"), e.getMessage());
    }

    @Test
    void submitAfterCloseFailsAndCloseFailsWhatIsRunning() {
        BatchEngine engine = BatchEngine.load(model, null, options("reference"));
        RequestHandle running = engine.submit(EngineRequest.of(new GenerationRequest(
                TestCheckpoints.tokens(10, VOCAB, 1), CTX - 10, SamplingParams.greedy(), List.of(), true)), null);
        engine.close();
        assertTrue(running.isDone());
        if (running.future().isCompletedExceptionally()) {
            assertThrows(IllegalStateException.class, running::await);
        }
        assertThrows(IllegalStateException.class, () -> engine.submit(EngineRequest.of(
                GenerationRequest.of(new int[] {1}, 1, SamplingParams.greedy())), null));
    }

    /** Greedy speculation (any draft) reproduces plain greedy decoding token for token. */
    @ParameterizedTest
    @MethodSource("backends")
    void greedySpeculationEqualsPlainDecoding(String backend) {
        for (Path draftDir : List.of(model, otherModel)) {
            try (BatchEngine engine = BatchEngine.load(model, draftDir, options(backend).withDraftTokens(3))) {
                List<GenerationRequest> requests = new ArrayList<>();
                List<RequestHandle> handles = new ArrayList<>();
                for (int i = 0; i < 5; i++) {
                    GenerationRequest g = new GenerationRequest(TestCheckpoints.tokens(5 + 30 * i, VOCAB, 300 + i),
                            25, SamplingParams.greedy(), List.of(), true);
                    requests.add(g);
                    handles.add(engine.submit(new EngineRequest(g, 1, i != 4), null)); // one without speculation
                }
                for (int i = 0; i < requests.size(); i++) {
                    ChoiceResult r = handles.get(i).await().get(0);
                    assertArrayEquals(alone(backend, requests.get(i)), r.ids(), "request " + i + " draft " + draftDir);
                    if (i == 4) {
                        assertEquals(0, r.draftProposed());
                    } else {
                        assertTrue(r.draftProposed() > 0);
                    }
                }
                EngineMetrics m = engine.metrics();
                assertTrue(m.draftTokensProposed() > 0);
                if (draftDir.equals(model)) {
                    assertEquals(m.draftTokensProposed(), m.draftTokensAccepted(), "a model drafting for itself");
                    assertTrue(m.steps() < 4 * 25, "speculation saved steps: " + m.steps());
                } else {
                    assertTrue(m.draftTokensAccepted() < m.draftTokensProposed(), "an unrelated draft is rejected");
                }
                awaitIdle(engine);
                assertEquals(m.kvBlocksTotal(), m.kvBlocksFree());
            }
        }
    }

    /** A request's own speculation setting wins over the engine request's flag. */
    @Test
    void theRequestsSpeculationSettingIsHonoured() {
        try (BatchEngine engine = BatchEngine.load(model, model, options("reference").withDraftTokens(4))) {
            GenerationRequest g = new GenerationRequest(TestCheckpoints.tokens(12, VOCAB, 4), 12,
                    SamplingParams.greedy(), List.of(), true);
            assertEquals(0, engine.generate(new EngineRequest(g.withSpeculation(Speculation.none()), 1, true)).get(0)
                    .draftProposed(), "NONE decodes plainly");
            ChoiceResult two = engine.generate(new EngineRequest(g.withSpeculation(Speculation.draftModel(2)), 1,
                    false)).get(0);
            assertTrue(two.draftProposed() > 0 && two.draftProposed() <= 2 * 12, "DRAFT_MODEL speculates");
            assertArrayEquals(alone("reference", g), two.ids());
            var lookup = assertThrows(IllegalArgumentException.class, () -> engine.submit(new EngineRequest(
                    g.withSpeculation(Speculation.promptLookup(4)), 1, false), null));
            assertTrue(lookup.getMessage().contains("prompt lookup"), lookup.getMessage());
        }
        Path otherVocab = TestCheckpoints.write(tmp.resolve("v"), 16, 1, VOCAB * 2, 3, false);
        var e = assertThrows(RuntimeException.class, () -> BatchEngine.load(model, otherVocab, options("reference")));
        assertTrue(e.getMessage().contains("vocab_size"), e.getMessage());
    }

    /** Sampled speculation with the model as its own draft accepts every draft (p = q) and stays seeded. */
    @Test
    void sampledSpeculationIsReproducibleAndAcceptsAnIdenticalDraft() {
        GenerationRequest g = new GenerationRequest(TestCheckpoints.tokens(30, VOCAB, 9), 30,
                new SamplingParams(1.0, 0.95, 0, 0, 7), List.of(), true);
        int[] first;
        try (BatchEngine engine = BatchEngine.load(model, model, options("reference").withDraftTokens(4))) {
            ChoiceResult r = engine.generate(new EngineRequest(g, 1, true)).get(0);
            first = r.ids();
            assertEquals(30, first.length);
            assertEquals(r.draftProposed(), r.draftAccepted(), "p == q accepts every draft");
            assertArrayEquals(first, engine.generate(new EngineRequest(g, 1, true)).get(0).ids(), "same seed");
        }
    }

    static void awaitIdle(BatchEngine engine) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (engine.metrics().kvBlocksFree() != engine.metrics().kvBlocksTotal() && System.nanoTime() < deadline) {
            Thread.onSpinWait();
        }
    }
}
