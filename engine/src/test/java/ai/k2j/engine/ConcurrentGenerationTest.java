package ai.k2j.engine;

import ai.k2j.engine.TestModels.Spec;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelConfig;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Callers on many threads share one LanguageModel: while one generation runs on the caller's thread, the others join
 * the batching engine over the same weights and backend, and every caller gets exactly what it gets alone.
 */
class ConcurrentGenerationTest {

    private static final ModelConfig CONFIG = Spec.gqa().config();

    private static GenerationRequest greedy(int seed) {
        return new GenerationRequest(TestModels.randomTokens(5 + seed, CONFIG.vocabSize(), seed), 24,
                SamplingParams.greedy(), List.of(), true);
    }

    @Test
    void concurrentCallersAreBatchedAndGetTheirOwnTokens() throws Exception {
        Arena arena = Arena.ofShared();
        try (LanguageModel lm = TestModels.languageModel(CONFIG, TestModels.weights(CONFIG, DType.F32, 77, arena), 300,
                arena)) {
            int callers = 4;
            List<int[]> alone = new ArrayList<>();
            for (int i = 0; i < callers; i++) {
                alone.add(lm.generate(greedy(i), null).ids());
            }
            assertEquals(0, lm.batchedRequestsFinished(), "one caller at a time never needs the engine");

            List<CompletableFuture<GenerationResult>> others = new ArrayList<>();
            boolean[] started = new boolean[1];
            GenerationResult first = lm.generate(greedy(0), (id, text) -> {
                if (!started[0]) {
                    started[0] = true;
                    for (int i = 1; i < callers; i++) {
                        int seed = i;
                        CompletableFuture<GenerationResult> f = new CompletableFuture<>();
                        Thread.ofPlatform().start(() -> complete(f, () -> lm.generate(greedy(seed), null)));
                        others.add(f);
                    }
                    // hold this generation until every other caller is waiting for the engine
                    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
                    while (lm.batchedCallers() < callers - 1 && System.nanoTime() < deadline) {
                        Thread.onSpinWait();
                    }
                }
                return true;
            });
            assertArrayEquals(alone.get(0), first.ids());
            for (int i = 1; i < callers; i++) {
                assertArrayEquals(alone.get(i), others.get(i - 1).get(60, TimeUnit.SECONDS).ids(), "caller " + i);
            }
            assertEquals(callers - 1, lm.batchedRequestsFinished(), "the callers that arrived during a generation"
                    + " went through the batching engine");

            // a listener that stops early cancels its batched request
            CompletableFuture<GenerationResult> stopped = new CompletableFuture<>();
            lm.generate(greedy(1), (id, text) -> {
                if (!stopped.isDone()) {
                    stopped.complete(null);
                    CompletableFuture<GenerationResult> r = new CompletableFuture<>();
                    Thread.ofPlatform().start(() -> complete(r, () -> lm.generate(greedy(2), (i, t) -> false)));
                    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
                    while (lm.batchedCallers() == 0 && System.nanoTime() < deadline) {
                        Thread.onSpinWait();
                    }
                    stoppedResult[0] = r;
                }
                return true;
            });
            GenerationResult cancelled = stoppedResult[0].get(60, TimeUnit.SECONDS);
            assertEquals(FinishReason.CANCELLED, cancelled.finishReason());
            assertEquals(1, cancelled.generatedTokens());
            assertTrue(lm.batchedRequestsFinished() >= callers);
        }
    }

    private static void complete(CompletableFuture<GenerationResult> f, Supplier<GenerationResult> call) {
        try {
            f.complete(call.get());
        } catch (RuntimeException | Error e) {
            f.completeExceptionally(e);
        }
    }

    @SuppressWarnings("unchecked")
    private final CompletableFuture<GenerationResult>[] stoppedResult = new CompletableFuture[1];
}
