package ai.k2j.kernels.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * What every part of the CUDA backend shares: the driver and the compiled kernels, the one kernel-argument buffer,
 * {@link #launch} (timed when the profiler is on), the graph capture in progress, and device memory — permanent
 * allocations, the growable scratch pools and the pinned host staging buffer. One thread at a time, like the backend.
 */
final class CudaContext {
    static final long STAGING_BYTES = 64L << 20;

    /** Changed only by {@link CudaBackend#retune} between ops. */
    CudaBackend.Options options;
    final CudaDriver driver;
    final CudaKernels k;
    final CudaDriver.KernelArgs args;
    /** Per-op timing ({@link CudaBackend.Options#profile}; eager launches only); null otherwise. */
    final CudaProfiler profiler;
    /** The recording in progress ({@link GraphRecorder}); null when ops run eagerly. */
    GraphRecorder.Capture capture;
    /** Live graphs: they pin the Batch copies and scratch areas they read. */
    final List<CudaGraph> graphs = new ArrayList<>();

    private final List<Long> allocations = new ArrayList<>();
    /** Outgrown scratch areas, freed once no graph can still reference them. */
    private final List<Long> retired = new ArrayList<>();
    private MemorySegment hostStaging;

    final DeviceScratch attnScratch = new DeviceScratch();
    final DeviceScratch bf16Scratch = new DeviceScratch();
    final DeviceScratch dequantScratch = new DeviceScratch();
    final DeviceScratch tempScratch = new DeviceScratch();
    final DeviceScratch intScratch = new DeviceScratch();
    final DeviceScratch sampleScratch = new DeviceScratch();

    CudaContext(CudaBackend.Options options, CudaDriver driver, CudaKernels kernels, Arena arena) {
        this.options = options;
        this.driver = driver;
        this.k = kernels;
        this.args = new CudaDriver.KernelArgs(arena);
        this.profiler = options.profile() ? new CudaProfiler(driver) : null;
    }

    /** Launches {@code fn} with the arguments in {@link #args}; counted into a capture, timed by the profiler. */
    void launch(long fn, String what, int gridX, int gridY, int block) {
        if (profiler != null && capture == null) {
            profiler.begin(what);
            driver.launch(fn, what, gridX, gridY, 1, block, 0, args);
            profiler.end();
        } else {
            driver.launch(fn, what, gridX, gridY, 1, block, 0, args);
        }
        countOp();
    }

    /** Counts a launch or copy into the graph being recorded. */
    void countOp() {
        if (capture != null) {
            capture.ops++;
        }
    }

    /** Blocks for a grid-stride kernel of 256 threads over total elements. */
    int grid(long total) {
        long blocks = (total + 255) / 256;
        return (int) Math.max(1, Math.min(blocks, 64L * driver.multiprocessors()));
    }

    /** Device memory that lives as long as the backend. */
    long alloc(long bytes) {
        long p = driver.malloc(bytes);
        allocations.add(p);
        return p;
    }

    /** The pinned host buffer of {@link #STAGING_BYTES} for uploads and downloads. */
    MemorySegment staging() {
        if (hostStaging == null) {
            hostStaging = driver.mallocHost(STAGING_BYTES);
        }
        return hostStaging;
    }

    void freeRetiredIfIdle() {
        if (graphs.isEmpty() && capture == null && !retired.isEmpty()) {
            driver.synchronize();
            for (long p : retired) {
                driver.free(p);
            }
            retired.clear();
        }
    }

    /** The steps that free everything this context allocated (run by the backend's close, each guarded). */
    void addCloseSteps(List<Runnable> steps) {
        for (DeviceScratch s : List.of(attnScratch, bf16Scratch, dequantScratch, tempScratch, intScratch,
                sampleScratch)) {
            steps.add(s::free);
        }
        for (long p : retired) {
            steps.add(() -> driver.free(p));
        }
        for (long p : allocations) {
            steps.add(() -> driver.free(p));
        }
        if (hostStaging != null) {
            MemorySegment hs = hostStaging;
            steps.add(() -> driver.freeHost(hs));
        }
    }

    /** A growable device scratch area; outgrown areas are freed when no graph can still reference them. */
    final class DeviceScratch {
        private long ptr;
        private long bytes;

        long ensure(long need) {
            if (need <= bytes) {
                return ptr;
            }
            long size = Math.max(need, Math.min(2 * bytes, need + (64L << 20)));
            size = (size + (1 << 20) - 1) & ~((1L << 20) - 1);
            if (ptr != 0) {
                retired.add(ptr);
            }
            ptr = driver.malloc(size);
            bytes = size;
            freeRetiredIfIdle();
            return ptr;
        }

        void free() {
            if (ptr != 0) {
                driver.free(ptr);
                ptr = 0;
                bytes = 0;
            }
        }
    }

    /**
     * Device-to-device copy bandwidth in GB/s (1 GiB copied 10 times, read + write counted): the practical
     * roofline benchmarks compare decode against. Allocates and frees 2 GiB; synchronizes.
     */
    double copyBandwidthGBs() {
        long bytes = 1L << 30;
        long a = driver.malloc(bytes);
        long b = driver.malloc(bytes);
        long e0 = driver.eventCreate(true);
        long e1 = driver.eventCreate(true);
        try {
            driver.copyDeviceAsync(b, a, bytes);  // warm up
            driver.eventRecord(e0);
            int reps = 10;
            for (int i = 0; i < reps; i++) {
                driver.copyDeviceAsync(b, a, bytes);
            }
            driver.eventRecord(e1);
            driver.eventSynchronize(e1);
            double s = driver.elapsedMillis(e0, e1) / 1e3;
            return 2.0 * bytes * reps / s / 1e9;
        } finally {
            driver.eventDestroy(e0);
            driver.eventDestroy(e1);
            driver.free(a);
            driver.free(b);
        }
    }
}
