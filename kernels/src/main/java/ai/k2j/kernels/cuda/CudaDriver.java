package ai.k2j.kernels.cuda;

import org.lwjgl.PointerBuffer;
import org.lwjgl.cuda.CU;
import org.lwjgl.cuda.NVRTC;
import org.lwjgl.system.Configuration;
import org.lwjgl.system.MemoryStack;
import org.lwjgl.system.MemoryUtil;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.util.List;

/**
 * The CUDA driver API and NVRTC, through LWJGL: the only class of k2j that touches LWJGL. One instance owns the
 * primary context of one device and one non-blocking stream; every call checks its result and throws a
 * {@link CudaException} naming the call, the CUresult and its meaning.
 *
 * <p>Uses the device's primary context (the one the CUDA runtime, and so cuBLAS, also uses), made current on the
 * calling thread by {@link #makeCurrent()}. Not thread-safe: one thread at a time, like the backend.
 */
final class CudaDriver implements AutoCloseable {

    private static final int CUDA_ERROR_INSUFFICIENT_DRIVER = 35;  // driver older than the runtime wants
    private static final int CUDA_ERROR_STUB_LIBRARY = 34;         // a toolkit stub libcuda, not a real driver

    private static boolean configured;

    private final int ordinal;
    private final int device;
    private final long context;
    private final long stream;
    private final String deviceName;
    private final int ccMajor;
    private final int ccMinor;
    private final int smCount;
    private final long totalMemory;
    private final int driverVersion;
    private final int nvrtcMajor;
    private final int nvrtcMinor;
    private final CudaLibraries libraries;
    private Thread currentOn;
    private boolean closed;

    private CudaDriver(int ordinal, CudaLibraries libraries) {
        this.ordinal = ordinal;
        this.libraries = libraries;
        try (MemoryStack stack = MemoryStack.stackPush()) {
            int r = CU.cuInit(0);
            if (r == CU.CUDA_ERROR_NO_DEVICE || r == CUDA_ERROR_INSUFFICIENT_DRIVER || r == CUDA_ERROR_STUB_LIBRARY) {
                throw new CudaException.Unavailable("cuInit(0) failed: " + describe(r) + " (driver " + libraries.libcuda()
                        + ")");
            }
            check(r, "cuInit(0)");
            IntBuffer ib = stack.mallocInt(1);
            check(CU.cuDriverGetVersion(ib), "cuDriverGetVersion");
            driverVersion = ib.get(0);
            check(CU.cuDeviceGetCount(ib), "cuDeviceGetCount");
            int count = ib.get(0);
            if (count == 0) {
                throw new CudaException.Unavailable("no CUDA device (cuDeviceGetCount = 0)");
            }
            if (ordinal < 0 || ordinal >= count) {
                throw new CudaException("CUDA device " + ordinal + " does not exist (" + count + " device(s))", -1);
            }
            check(CU.cuDeviceGet(ib, ordinal), "cuDeviceGet(" + ordinal + ")");
            device = ib.get(0);
            ByteBuffer name = stack.calloc(256);
            check(CU.cuDeviceGetName(name, device), "cuDeviceGetName");
            deviceName = MemoryUtil.memASCII(name, strlen(name));
            ccMajor = attribute(CU.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, "COMPUTE_CAPABILITY_MAJOR");
            ccMinor = attribute(CU.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, "COMPUTE_CAPABILITY_MINOR");
            smCount = attribute(CU.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, "MULTIPROCESSOR_COUNT");
            PointerBuffer pb = stack.mallocPointer(1);
            check(CU.cuDevicePrimaryCtxRetain(pb, device), "cuDevicePrimaryCtxRetain(device " + ordinal + ")");
            context = pb.get(0);
            check(CU.cuCtxSetCurrent(context), "cuCtxSetCurrent");
            currentOn = Thread.currentThread();
            PointerBuffer free = stack.mallocPointer(1);
            PointerBuffer total = stack.mallocPointer(1);
            check(CU.cuMemGetInfo(free, total), "cuMemGetInfo");
            totalMemory = total.get(0);
            check(CU.cuStreamCreate(pb, CU.CU_STREAM_NON_BLOCKING), "cuStreamCreate(NON_BLOCKING)");
            stream = pb.get(0);
            IntBuffer maj = stack.mallocInt(1);
            IntBuffer min = stack.mallocInt(1);
            checkNvrtc(NVRTC.nvrtcVersion(maj, min), "nvrtcVersion");
            nvrtcMajor = maj.get(0);
            nvrtcMinor = min.get(0);
        }
    }

    /**
     * Loads the libraries (see {@link CudaLibraries}), initializes CUDA and opens device {@code ordinal}.
     *
     * @throws CudaException.Unavailable when there is no driver or no device
     */
    static synchronized CudaDriver open(int ordinal) {
        CudaLibraries libs = CudaLibraries.locate();
        if (!configured) {
            Configuration.CUDA_LIBRARY_NAME.set(libs.libcuda().toString());
            Configuration.CUDA_NVRTC_LIBRARY_NAME.set(libs.nvrtc().toString());
            Configuration.CUDA_NVRTC_BUILTINS_LIBRARY_NAME.set(libs.nvrtcBuiltins().toString());
            configured = true;
        }
        try {
            CU.getLibrary();
        } catch (Throwable t) {
            throw new CudaException.Unavailable("LWJGL could not load the CUDA driver library " + libs.libcuda() + ": "
                    + t, t);
        }
        try {
            NVRTC.getLibrary();
        } catch (Throwable t) {
            throw new CudaException("LWJGL could not load NVRTC (" + libs.nvrtc() + ", builtins " + libs.nvrtcBuiltins()
                    + "): " + t, t);
        }
        try {
            return new CudaDriver(ordinal, libs);
        } catch (LinkageError e) {  // e.g. a symbol LWJGL binds is missing from this driver
            throw new CudaException("LWJGL's CUDA bindings failed against " + libs + ": " + e, e);
        }
    }

    // ------------------------------------------------------------------------------------------------ device

    String deviceName() {
        return deviceName;
    }

    int ordinal() {
        return ordinal;
    }

    int computeMajor() {
        return ccMajor;
    }

    int computeMinor() {
        return ccMinor;
    }

    int multiprocessors() {
        return smCount;
    }

    long totalMemory() {
        return totalMemory;
    }

    /** e.g. 13000 for CUDA 13.0. */
    int driverVersion() {
        return driverVersion;
    }

    String nvrtcVersion() {
        return nvrtcMajor + "." + nvrtcMinor;
    }

    CudaLibraries libraries() {
        return libraries;
    }

    long stream() {
        return stream;
    }

    /** Free device memory in bytes. */
    long freeMemory() {
        try (MemoryStack stack = MemoryStack.stackPush()) {
            PointerBuffer free = stack.mallocPointer(1);
            PointerBuffer total = stack.mallocPointer(1);
            check(CU.cuMemGetInfo(free, total), "cuMemGetInfo");
            return free.get(0);
        }
    }

    private int attribute(int attribute, String name) {
        try (MemoryStack stack = MemoryStack.stackPush()) {
            IntBuffer ib = stack.mallocInt(1);
            check(CU.cuDeviceGetAttribute(ib, attribute, device), "cuDeviceGetAttribute(" + name + ")");
            return ib.get(0);
        }
    }

    /** Makes the context current when called from a thread other than the last one (cheap otherwise). */
    void makeCurrent() {
        Thread t = Thread.currentThread();
        if (t != currentOn) {
            ensureOpen();
            check(CU.cuCtxSetCurrent(context), "cuCtxSetCurrent");
            currentOn = t;
        }
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("CUDA driver for device " + ordinal + " is closed");
        }
    }

    // ------------------------------------------------------------------------------------------------ memory

    long malloc(long bytes) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("cuMemAlloc of " + bytes + " bytes");
        }
        try (MemoryStack stack = MemoryStack.stackPush()) {
            PointerBuffer pb = stack.mallocPointer(1);
            int r = CU.cuMemAlloc(pb, bytes);
            if (r != CU.CUDA_SUCCESS) {
                throw new CudaException("cuMemAlloc(" + bytes + " bytes = " + (bytes >> 20) + " MiB) failed: " + describe(r)
                        + (r == CU.CUDA_ERROR_OUT_OF_MEMORY ? "; free device memory: " + (freeMemory() >> 20) + " MiB" : ""),
                        r);
            }
            return pb.get(0);
        }
    }

    void free(long devicePtr) {
        if (devicePtr != 0) {
            check(CU.cuMemFree(devicePtr), "cuMemFree");
        }
    }

    /** Page-locked host memory (fast, truly asynchronous copies), as a segment of {@code bytes}. */
    MemorySegment mallocHost(long bytes) {
        try (MemoryStack stack = MemoryStack.stackPush()) {
            PointerBuffer pb = stack.mallocPointer(1);
            check(CU.cuMemAllocHost(pb, bytes), "cuMemAllocHost(" + bytes + " bytes)");
            return MemorySegment.ofAddress(pb.get(0)).reinterpret(bytes);
        }
    }

    void freeHost(MemorySegment pinned) {
        if (pinned != null && pinned.address() != 0) {
            check(CU.ncuMemFreeHost(pinned.address()), "cuMemFreeHost");
        }
    }

    void memsetAsync(long devicePtr, long bytes) {
        check(CU.cuMemsetD8Async(devicePtr, (byte) 0, bytes, stream), "cuMemsetD8Async(" + bytes + " bytes)");
    }

    /** Synchronous host-to-device copy from any native host address. */
    void copyToDevice(long dst, long hostAddress, long bytes) {
        check(CU.ncuMemcpyHtoD(dst, hostAddress, bytes), "cuMemcpyHtoD(" + bytes + " bytes)");
    }

    void copyToDeviceAsync(long dst, long pinnedHostAddress, long bytes) {
        check(CU.ncuMemcpyHtoDAsync(dst, pinnedHostAddress, bytes, stream), "cuMemcpyHtoDAsync(" + bytes + " bytes)");
    }

    void copyToHostAsync(long pinnedHostAddress, long src, long bytes) {
        check(CU.ncuMemcpyDtoHAsync(pinnedHostAddress, src, bytes, stream), "cuMemcpyDtoHAsync(" + bytes + " bytes)");
    }

    void copyDeviceAsync(long dst, long src, long bytes) {
        check(CU.cuMemcpyDtoDAsync(dst, src, bytes, stream), "cuMemcpyDtoDAsync(" + bytes + " bytes)");
    }

    void synchronize() {
        check(CU.cuStreamSynchronize(stream), "cuStreamSynchronize");
    }

    // ------------------------------------------------------------------------------------------------ NVRTC

    /** "sm_90" for compute capability 9.0. */
    String architecture() {
        return "sm_" + ccMajor + ccMinor;
    }

    /**
     * Compiles CUDA C++ to a CUBIN for this device (PTX when NVRTC cannot emit a CUBIN).
     *
     * @throws CudaException with NVRTC's log when compilation fails
     */
    byte[] compile(String source, String name, List<String> options) {
        ByteBuffer src = MemoryUtil.memUTF8(source, true);
        ByteBuffer nm = MemoryUtil.memUTF8(name, true);
        long program;
        try (MemoryStack stack = MemoryStack.stackPush()) {
            PointerBuffer pb = stack.mallocPointer(1);
            checkNvrtc(NVRTC.nvrtcCreateProgram(pb, src, nm, null, null), "nvrtcCreateProgram(" + name + ")");
            program = pb.get(0);
        } finally {
            MemoryUtil.memFree(src);
            MemoryUtil.memFree(nm);
        }
        try (MemoryStack stack = MemoryStack.stackPush()) {
            PointerBuffer opts = stack.mallocPointer(options.size());
            for (String o : options) {
                opts.put(stack.UTF8(o));
            }
            opts.flip();
            int r = NVRTC.nvrtcCompileProgram(program, opts);
            String log = programLog(program);
            if (r != NVRTC.NVRTC_SUCCESS) {
                throw new CudaException("nvrtcCompileProgram(" + name + ", " + options + ") failed: "
                        + NVRTC.nvrtcGetErrorString(r) + " (" + r + ")\n" + log, r);
            }
            PointerBuffer size = stack.mallocPointer(1);
            int cr = NVRTC.nvrtcGetCUBINSize(program, size);
            if (cr == NVRTC.NVRTC_SUCCESS && size.get(0) > 0) {
                ByteBuffer out = MemoryUtil.memAlloc(Math.toIntExact(size.get(0)));
                try {
                    checkNvrtc(NVRTC.nvrtcGetCUBIN(program, out), "nvrtcGetCUBIN(" + name + ")");
                    byte[] bytes = new byte[out.remaining()];
                    out.get(bytes);
                    return bytes;
                } finally {
                    MemoryUtil.memFree(out);
                }
            }
            checkNvrtc(NVRTC.nvrtcGetPTXSize(program, size), "nvrtcGetPTXSize(" + name + ")");
            ByteBuffer out = MemoryUtil.memAlloc(Math.toIntExact(size.get(0)));
            try {
                checkNvrtc(NVRTC.nvrtcGetPTX(program, out), "nvrtcGetPTX(" + name + ")");
                byte[] bytes = new byte[out.remaining()];
                out.get(bytes);
                return bytes;  // NUL-terminated text, as cuModuleLoadData wants
            } finally {
                MemoryUtil.memFree(out);
            }
        } finally {
            try (MemoryStack stack = MemoryStack.stackPush()) {
                PointerBuffer pb = stack.mallocPointer(1);
                pb.put(0, program);
                NVRTC.nvrtcDestroyProgram(pb);
            }
        }
    }

    private static String programLog(long program) {
        try (MemoryStack stack = MemoryStack.stackPush()) {
            PointerBuffer size = stack.mallocPointer(1);
            if (NVRTC.nvrtcGetProgramLogSize(program, size) != NVRTC.NVRTC_SUCCESS || size.get(0) <= 1) {
                return "";
            }
            ByteBuffer log = MemoryUtil.memAlloc(Math.toIntExact(size.get(0)));
            try {
                if (NVRTC.nvrtcGetProgramLog(program, log) != NVRTC.NVRTC_SUCCESS) {
                    return "";
                }
                return MemoryUtil.memUTF8(log, strlen(log));
            } finally {
                MemoryUtil.memFree(log);
            }
        }
    }

    // ------------------------------------------------------------------------------------------------ modules

    /** Loads a CUBIN or NUL-terminated PTX image. */
    long loadModule(byte[] image, String name) {
        ByteBuffer buf = MemoryUtil.memAlloc(image.length);
        try (MemoryStack stack = MemoryStack.stackPush()) {
            buf.put(image).flip();
            PointerBuffer pb = stack.mallocPointer(1);
            check(CU.cuModuleLoadData(pb, buf), "cuModuleLoadData(" + name + ", " + image.length + " bytes)");
            return pb.get(0);
        } finally {
            MemoryUtil.memFree(buf);
        }
    }

    void unloadModule(long module) {
        if (module != 0) {
            check(CU.cuModuleUnload(module), "cuModuleUnload");
        }
    }

    long function(long module, String name) {
        try (MemoryStack stack = MemoryStack.stackPush()) {
            PointerBuffer pb = stack.mallocPointer(1);
            check(CU.cuModuleGetFunction(pb, module, name), "cuModuleGetFunction(" + name + ")");
            return pb.get(0);
        }
    }

    /**
     * Launches {@code function} on the stream with the arguments written into {@code args} (no allocation).
     * {@code what} names the kernel in errors.
     */
    void launch(long function, String what, int gridX, int gridY, int gridZ, int blockX, int sharedBytes,
                KernelArgs args) {
        if (gridX <= 0 || gridY <= 0 || gridZ <= 0) {
            throw new IllegalArgumentException(what + ": empty grid " + gridX + "x" + gridY + "x" + gridZ);
        }
        int r = CU.ncuLaunchKernel(function, gridX, gridY, gridZ, blockX, 1, 1, sharedBytes, stream,
                args.pointers(), 0L);
        if (r != CU.CUDA_SUCCESS) {
            throw new CudaException("cuLaunchKernel(" + what + ", grid " + gridX + "x" + gridY + "x" + gridZ + ", block "
                    + blockX + ", " + args.count() + " args) failed: " + describe(r), r);
        }
    }

    // ------------------------------------------------------------------------------------------------ events

    long eventCreate(boolean timing) {
        try (MemoryStack stack = MemoryStack.stackPush()) {
            PointerBuffer pb = stack.mallocPointer(1);
            check(CU.cuEventCreate(pb, timing ? CU.CU_EVENT_DEFAULT : CU.CU_EVENT_DISABLE_TIMING), "cuEventCreate");
            return pb.get(0);
        }
    }

    void eventRecord(long event) {
        check(CU.cuEventRecord(event, stream), "cuEventRecord");
    }

    void eventSynchronize(long event) {
        check(CU.cuEventSynchronize(event), "cuEventSynchronize");
    }

    /** Milliseconds between two recorded (and completed) timing events. */
    float elapsedMillis(long start, long end) {
        try (MemoryStack stack = MemoryStack.stackPush()) {
            FloatBuffer fb = stack.mallocFloat(1);
            check(CU.cuEventElapsedTime(fb, start, end), "cuEventElapsedTime");
            return fb.get(0);
        }
    }

    void eventDestroy(long event) {
        if (event != 0) {
            check(CU.cuEventDestroy(event), "cuEventDestroy");
        }
    }

    // ------------------------------------------------------------------------------------------------ graphs

    /** Starts recording the stream's work into a graph (relaxed mode: allocation is allowed meanwhile). */
    void beginCapture() {
        int r;
        try {
            r = CU.cuStreamBeginCapture_v2(stream, CU.CU_STREAM_CAPTURE_MODE_RELAXED);
        } catch (NullPointerException missing) {  // LWJGL: symbol absent from this driver; the v1 call (global mode)
            r = CU.cuStreamBeginCapture(stream);
        }
        check(r, "cuStreamBeginCapture(RELAXED)");
    }

    /** Ends recording; returns the CUgraph (caller destroys it). */
    long endCapture() {
        try (MemoryStack stack = MemoryStack.stackPush()) {
            PointerBuffer pb = stack.mallocPointer(1);
            check(CU.cuStreamEndCapture(stream, pb), "cuStreamEndCapture");
            return pb.get(0);
        }
    }

    boolean isCapturing() {
        try (MemoryStack stack = MemoryStack.stackPush()) {
            IntBuffer ib = stack.mallocInt(1);
            check(CU.cuStreamIsCapturing(stream, ib), "cuStreamIsCapturing");
            return ib.get(0) != CU.CU_STREAM_CAPTURE_STATUS_NONE;
        }
    }

    long instantiate(long graph) {
        try (MemoryStack stack = MemoryStack.stackPush()) {
            PointerBuffer pb = stack.mallocPointer(1);
            check(CU.cuGraphInstantiateWithFlags(pb, graph, 0L), "cuGraphInstantiateWithFlags");
            return pb.get(0);
        }
    }

    void graphLaunch(long graphExec) {
        check(CU.cuGraphLaunch(graphExec, stream), "cuGraphLaunch");
    }

    void graphDestroy(long graph, long graphExec) {
        if (graphExec != 0) {
            check(CU.cuGraphExecDestroy(graphExec), "cuGraphExecDestroy");
        }
        if (graph != 0) {
            check(CU.cuGraphDestroy(graph), "cuGraphDestroy");
        }
    }

    // ------------------------------------------------------------------------------------------------ close

    @Override
    public void close() {
        if (closed) {
            return;
        }
        makeCurrent();
        closed = true;
        int r1 = CU.cuStreamSynchronize(stream);
        int r2 = CU.cuStreamDestroy(stream);
        int r3 = CU.cuDevicePrimaryCtxRelease(device);
        check(r1, "cuStreamSynchronize (close)");
        check(r2, "cuStreamDestroy");
        check(r3, "cuDevicePrimaryCtxRelease");
    }

    // ------------------------------------------------------------------------------------------------ errors

    static void check(int result, String call) {
        if (result != CU.CUDA_SUCCESS) {
            throw new CudaException(call + " failed: " + describe(result), result);
        }
    }

    private static void checkNvrtc(int result, String call) {
        if (result != NVRTC.NVRTC_SUCCESS) {
            throw new CudaException(call + " failed: " + NVRTC.nvrtcGetErrorString(result) + " (nvrtcResult " + result
                    + ")", result);
        }
    }

    /** "CUDA_ERROR_OUT_OF_MEMORY (2): out of memory" */
    static String describe(int result) {
        try (MemoryStack stack = MemoryStack.stackPush()) {
            PointerBuffer pb = stack.mallocPointer(1);
            String name = CU.cuGetErrorName(result, pb) == CU.CUDA_SUCCESS && pb.get(0) != 0
                    ? MemoryUtil.memASCII(pb.get(0)) : "CUresult";
            String text = CU.cuGetErrorString(result, pb) == CU.CUDA_SUCCESS && pb.get(0) != 0
                    ? MemoryUtil.memASCII(pb.get(0)) : "unknown error";
            return name + " (" + result + "): " + text;
        } catch (Throwable t) {
            return "CUresult " + result;
        }
    }

    private static int strlen(ByteBuffer b) {
        int n = 0;
        while (n < b.capacity() && b.get(n) != 0) {
            n++;
        }
        return n;
    }

    // ------------------------------------------------------------------------------------------------ args

    /**
     * Reusable kernel-argument block: up to 32 arguments, each in its own 8-byte slot, and the void*[] array
     * cuLaunchKernel reads. Filled with {@link #reset()} then {@code ptr/i32/f32/i64} in parameter order.
     * The driver copies arguments at launch (and at capture), so reuse right after launching is safe.
     */
    static final class KernelArgs {
        private static final int MAX = 32;
        private final MemorySegment values;
        private final MemorySegment pointers;
        private int count;

        KernelArgs(Arena arena) {
            values = arena.allocate(8L * MAX, 16);
            pointers = arena.allocate(8L * MAX, 16);
            for (int i = 0; i < MAX; i++) {
                pointers.setAtIndex(ValueLayout.JAVA_LONG, i, values.address() + 8L * i);
            }
        }

        KernelArgs reset() {
            count = 0;
            return this;
        }

        private long slot() {
            if (count == MAX) {
                throw new IllegalStateException("more than " + MAX + " kernel arguments");
            }
            return 8L * count++;
        }

        /** A device pointer (or 0 for a null pointer). */
        KernelArgs ptr(long devicePtr) {
            values.set(ValueLayout.JAVA_LONG, slot(), devicePtr);
            return this;
        }

        KernelArgs i32(int v) {
            values.set(ValueLayout.JAVA_INT, slot(), v);
            return this;
        }

        KernelArgs i64(long v) {
            values.set(ValueLayout.JAVA_LONG, slot(), v);
            return this;
        }

        KernelArgs f32(float v) {
            values.set(ValueLayout.JAVA_FLOAT, slot(), v);
            return this;
        }

        long pointers() {
            return pointers.address();
        }

        int count() {
            return count;
        }
    }
}
