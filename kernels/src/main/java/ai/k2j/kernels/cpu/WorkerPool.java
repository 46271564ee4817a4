package ai.k2j.kernels.cpu;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * A fixed set of daemon threads that run one {@link Task} at a time together with the calling thread.
 * {@link #run} publishes the task by bumping a volatile generation counter; workers spin briefly on it and then
 * park, so back-to-back ops in a forward pass cost a cache-line handoff, not a futex round trip, while an idle
 * pool costs no CPU. Nothing is allocated per {@link #run}.
 *
 * <p>Used by one caller thread at a time (the backend's contract).
 */
final class WorkerPool implements AutoCloseable {

    /** One share of a parallel op: part {@code part} of {@code parts}; part 0 runs on the caller. */
    interface Task {
        void run(int part, int parts);
    }

    /**
     * How long a waiting thread spins before it parks (system property {@code k2j.cpu.spinMicros}, default 2000).
     * Waking a parked thread costs 10–50 µs on a VM, more than a whole small op, and a worker that finishes its
     * share of a matmul early waits for the caller's share: with a count of 4096 PAUSEs (~10 µs on Zen 4) it parked
     * and every following op paid that wake-up (measured: a 4864-column siluMul after a matmul took 14–22 µs
     * instead of 2). Two milliseconds covers every gap inside a forward pass; an idle pool still parks.
     */
    static final long SPIN_NANOS = 1000L * Long.getLong("k2j.cpu.spinMicros", 2000);

    /** Whether a waiter that started at {@code start} spins on: reads the clock only every 64th spin. */
    private static boolean keepSpinning(int spins, long start) {
        return (spins & 63) != 0 || System.nanoTime() - start < SPIN_NANOS;
    }

    private final int parts;
    private final Worker[] workers;
    private final AtomicInteger pending = new AtomicInteger();

    private volatile long generation;
    private volatile Task task;
    private volatile Thread waiter;
    private volatile Throwable failure;
    private volatile boolean closed;

    /** @param parts total number of threads working on a task, the caller included (≥ 1) */
    WorkerPool(int parts, String namePrefix) {
        if (parts < 1) {
            throw new IllegalArgumentException("parts must be >= 1, got " + parts);
        }
        this.parts = parts;
        this.workers = new Worker[parts - 1];
        for (int i = 0; i < workers.length; i++) {
            workers[i] = new Worker(i + 1);
            workers[i].setName(namePrefix + (i + 1));
            workers[i].setDaemon(true);
            workers[i].start();
        }
    }

    int parts() {
        return parts;
    }

    /** Thread ids of the worker threads (not the caller), for allocation accounting in tests. */
    long[] workerThreadIds() {
        long[] ids = new long[workers.length];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = workers[i].threadId();
        }
        return ids;
    }

    /** Runs {@code t} on all parts and returns when every part finished; rethrows the first failure. */
    void run(Task t) {
        if (closed) {
            throw new IllegalStateException("CpuBackend is closed");
        }
        if (parts == 1) {
            t.run(0, 1);
            return;
        }
        failure = null;
        task = t;
        pending.set(workers.length);
        generation = generation + 1; // only the caller writes it; the volatile write publishes task
        for (Worker w : workers) {
            if (w.parked) {
                LockSupport.unpark(w);
            }
        }
        Throwable own = null;
        try {
            t.run(0, parts);
        } catch (Throwable e) {
            own = e;
        }
        awaitWorkers();
        task = null;
        Throwable f = own != null ? own : failure;
        if (f != null) {
            failure = null;
            if (f instanceof RuntimeException re) {
                throw re;
            }
            if (f instanceof Error er) {
                throw er;
            }
            throw new IllegalStateException("CPU worker failed", f);
        }
    }

    private void awaitWorkers() {
        long start = System.nanoTime();
        int spins = 0;
        while (pending.get() != 0) {
            if (keepSpinning(++spins, start)) {
                Thread.onSpinWait();
            } else {
                waiter = Thread.currentThread();
                if (pending.get() != 0) {
                    LockSupport.park(this);
                }
                waiter = null;
            }
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        generation = generation + 1;
        for (Worker w : workers) {
            LockSupport.unpark(w);
        }
        for (Worker w : workers) {
            try {
                w.join(10_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    private final class Worker extends Thread {
        private final int part;
        volatile boolean parked;

        Worker(int part) {
            this.part = part;
        }

        @Override
        public void run() {
            long seen = 0;
            while (true) {
                long g;
                long start = System.nanoTime();
                int spins = 0;
                while ((g = generation) == seen) {
                    if (keepSpinning(++spins, start)) {
                        Thread.onSpinWait();
                    } else {
                        parked = true;
                        if (generation == seen) { // re-check after announcing: the caller reads parked after its bump
                            LockSupport.park(WorkerPool.this);
                        }
                        parked = false;
                    }
                }
                seen = g;
                if (closed) {
                    return;
                }
                try {
                    task.run(part, parts);
                } catch (Throwable e) {
                    failure = e;
                }
                if (pending.decrementAndGet() == 0) {
                    Thread w = waiter;
                    if (w != null) {
                        LockSupport.unpark(w);
                    }
                }
            }
        }
    }
}
