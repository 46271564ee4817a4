package ai.k2j.engine;

import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A submitted request: wait for its choices, or cancel it. Cancelling frees the request's KV cache at the next
 * step boundary; its choices then finish with {@link ai.k2j.engine.FinishReason#CANCELLED} and whatever they
 * had generated. Thread-safe.
 */
public final class RequestHandle {
    private final CompletableFuture<List<ChoiceResult>> future = new CompletableFuture<>();
    private final Runnable canceller;

    RequestHandle(Runnable canceller) {
        this.canceller = canceller;
    }

    /** Asks the engine to stop this request; idempotent, and harmless after it finished. */
    public void cancel() {
        if (!future.isDone()) {
            canceller.run();
        }
    }

    public boolean isDone() {
        return future.isDone();
    }

    /** The choices in index order, once all have finished; the request's error if it failed. */
    public List<ChoiceResult> await() {
        try {
            return future.join();
        } catch (CompletionException e) {
            throw unwrap(e.getCause());
        }
    }

    /** As {@link #await()}, waiting at most {@code timeout}. */
    public List<ChoiceResult> await(long timeout, TimeUnit unit) throws TimeoutException, InterruptedException {
        try {
            return future.get(timeout, unit);
        } catch (ExecutionException e) {
            throw unwrap(e.getCause());
        }
    }

    /** Completes with the choices, or exceptionally with the request's error. */
    public CompletableFuture<List<ChoiceResult>> future() {
        return future.copy();
    }

    void complete(List<ChoiceResult> choices) {
        future.complete(choices);
    }

    void fail(RuntimeException e) {
        future.completeExceptionally(e);
    }

    private static RuntimeException unwrap(Throwable t) {
        if (t instanceof RuntimeException re) {
            return re;
        }
        if (t instanceof Error err) {
            throw err;
        }
        return new CancellationException(String.valueOf(t));
    }
}
