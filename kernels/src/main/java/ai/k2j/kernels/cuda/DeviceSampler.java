package ai.k2j.kernels.cuda;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Choosing tokens on the device so only ids cross back to the host: row argmax (a vocabulary in 4096-wide slices,
 * then a merge) and temperature / top-k / top-p sampling (per-slice bitonic top-k, or an exact threshold search
 * when top-k is off or above 1024).
 */
final class DeviceSampler {
    private static final int SAMPLE_SLICE = 4096;
    /** native/ops.cu ARGMAX_SLICE */
    private static final int ARGMAX_SLICE = 4096;

    private final CudaContext cx;

    DeviceSampler(CudaContext cx) {
        this.cx = cx;
    }

    /** Row argmax of x [n, dim] into out[0..n) (arguments checked by the caller); synchronizes. */
    void argmax(DevBuffer xb, int n, int dim, int[] out) {
        long dev = cx.intScratch.ensure(4L * n);
        if (dim > 2 * ARGMAX_SLICE) {  // a vocabulary: one block per 4096-wide slice, then a merge per row
            int slices = (dim + ARGMAX_SLICE - 1) / ARGMAX_SLICE;
            long pv = cx.tempScratch.ensure(8L * n * slices);
            long pi = pv + 4L * n * slices;
            cx.args.reset().ptr(xb.ptr).i32(dim).i32(slices).ptr(pv).ptr(pi);
            cx.launch(cx.k.argmaxSlices, "argmax_slices", slices, n, 256);
            cx.args.reset().ptr(pv).ptr(pi).i32(slices).ptr(dev);
            cx.launch(cx.k.argmaxMerge, "argmax_merge", n, 1, 128);
        } else {
            cx.args.reset().ptr(xb.ptr).i32(dim).ptr(dev);
            cx.launch(cx.k.argmax, "argmax_rows", n, 1, 1024);
        }
        readInts(dev, out, n);
    }

    /**
     * Temperature, top-k, top-p sampling of each row of logits [n, dim] into out[0..n) (arguments checked and the
     * greedy cases sent to {@link #argmax} by the caller); synchronizes.
     */
    void sample(DevBuffer xb, int n, int dim, float temperature, int topK, float topP, long seed, int[] out) {
        float invTemp = 1.0f / temperature;
        long outDev = cx.intScratch.ensure(4L * n);
        if (topK >= 1 && topK <= 1024) {
            int kk = Math.min(topK, dim);
            long count = dim;
            long firstOut = ceilDiv(dim, SAMPLE_SLICE) * kk;
            long pingFloats = (long) n * firstOut;
            long base = cx.sampleScratch.ensure(16 * pingFloats);  // two (value, index) ping-pong arrays
            long inVal = xb.ptr;
            long inIdx = 0;
            long inStride = dim;
            int which = 0;
            while (count > SAMPLE_SLICE) {
                int slices = (int) ceilDiv(count, SAMPLE_SLICE);
                long outCount = (long) slices * kk;
                long outVal = base + 8 * which * pingFloats;  // (values, indices) at base or base + 8·ping
                long outIdx = outVal + 4 * pingFloats;
                cx.args.reset().ptr(inVal).ptr(inIdx).i64(inStride).i32((int) count).i32(kk)
                        .ptr(outVal).ptr(outIdx).i64(outCount);
                cx.launch(cx.k.topkSlices, "topk_slices", slices, n, 1024);
                inVal = outVal;
                inIdx = outIdx;
                inStride = outCount;
                count = outCount;
                which ^= 1;
            }
            cx.args.reset().ptr(inVal).ptr(inIdx).i64(inStride).i32((int) count).i32(kk).f32(invTemp).f32(topP)
                    .i64(seed).ptr(outDev);
            cx.launch(cx.k.sampleTopk, "sample_topk", n, 1, 1024);
        } else {
            long probs = cx.sampleScratch.ensure(4L * n * dim);
            cx.args.reset().ptr(xb.ptr).i32(dim).i32(topK).f32(invTemp).f32(topP).i64(seed).ptr(probs).ptr(outDev);
            cx.launch(cx.k.sampleFull, "sample_full", n, 1, 1024);
        }
        readInts(outDev, out, n);
    }

    private void readInts(long dev, int[] out, int n) {
        MemorySegment staging = cx.staging();
        if (cx.profiler != null) {
            cx.profiler.begin("read_ids(D2H)");
            cx.driver.copyToHostAsync(staging.address(), dev, 4L * n);
            cx.profiler.end();
        } else {
            cx.driver.copyToHostAsync(staging.address(), dev, 4L * n);
        }
        cx.driver.synchronize();
        MemorySegment.copy(staging, ValueLayout.JAVA_INT_UNALIGNED, 0, out, 0, n);
        if (cx.profiler != null) {
            cx.profiler.stepEnd();
        }
    }

    private static long ceilDiv(long a, long b) {
        return (a + b - 1) / b;
    }
}
