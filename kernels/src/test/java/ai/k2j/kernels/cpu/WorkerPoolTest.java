package ai.k2j.kernels.cpu;

import org.junit.jupiter.api.Test;

import java.util.concurrent.atomic.AtomicIntegerArray;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class WorkerPoolTest {

    @Test
    void everyPartRunsExactlyOncePerTaskAndResultsAreVisible() throws InterruptedException {
        try (WorkerPool pool = new WorkerPool(3, "test-worker-")) {
            int rounds = 5_000;
            AtomicIntegerArray runs = new AtomicIntegerArray(3);
            long[] plain = new long[3]; // written by the parts without synchronization, read by the caller after run
            for (int round = 0; round < rounds; round++) {
                int r = round;
                pool.run((part, parts) -> {
                    assertEquals(3, parts);
                    runs.incrementAndGet(part);
                    plain[part] += r;
                });
                if (round % 1000 == 0) {
                    Thread.sleep(2); // let the workers fall asleep (park) now and then
                }
            }
            long expected = (long) rounds * (rounds - 1) / 2;
            for (int p = 0; p < 3; p++) {
                assertEquals(rounds, runs.get(p));
                assertEquals(expected, plain[p]);
            }
        }
    }

    @Test
    void failuresPropagateAndThePoolStaysUsable() {
        try (WorkerPool pool = new WorkerPool(2, "test-worker-")) {
            IllegalStateException boom = new IllegalStateException("boom");
            IllegalStateException thrown = assertThrows(IllegalStateException.class, () -> pool.run((part, parts) -> {
                if (part == 1) {
                    throw boom;
                }
            }));
            assertSame(boom, thrown, "a worker's exception reaches the caller");
            assertThrows(ArithmeticException.class, () -> pool.run((part, parts) -> {
                if (part == 0) {
                    throw new ArithmeticException("caller part");
                }
            }));
            int[] seen = new int[2];
            pool.run((part, parts) -> seen[part]++);
            assertEquals(1, seen[0]);
            assertEquals(1, seen[1]);
        }
    }

    @Test
    void closeStopsTheWorkerThreads() throws InterruptedException {
        WorkerPool pool = new WorkerPool(4, "closing-worker-");
        pool.run((part, parts) -> { });
        long[] ids = pool.workerThreadIds();
        assertEquals(3, ids.length);
        pool.close();
        Thread.sleep(50);
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            for (long id : ids) {
                if (t.threadId() == id) {
                    assertFalse(t.isAlive(), "worker " + t.getName() + " still alive after close");
                }
            }
        }
        assertThrows(IllegalStateException.class, () -> pool.run((part, parts) -> { }));
        assertTrue(ids[0] != ids[1]);
    }

    @Test
    void singlePartRunsOnTheCaller() {
        try (WorkerPool pool = new WorkerPool(1, "none-")) {
            Thread caller = Thread.currentThread();
            Thread[] ran = new Thread[1];
            pool.run((part, parts) -> ran[0] = Thread.currentThread());
            assertSame(caller, ran[0]);
            assertEquals(0, pool.workerThreadIds().length);
        }
        assertThrows(IllegalArgumentException.class, () -> new WorkerPool(0, "bad-"));
    }
}
