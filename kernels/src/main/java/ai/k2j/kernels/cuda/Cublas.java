package ai.k2j.kernels.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * cuBLAS through FFM downcalls (LWJGL has no cuBLAS binding): one handle bound to the backend's stream, used for
 * prefill matmuls. Device pointers and the stream are passed as 64-bit integers.
 *
 * <p>Row-major out[n, rows] = x[n, cols] · Wᵀ is, in cuBLAS's column-major terms, C[rows, n] = Aᵀ · B with
 * A = W seen as column-major [cols, rows] (lda = cols, op T), B = x as [cols, n] (ldb = cols, op N), ldc = rows.
 */
final class Cublas implements AutoCloseable {

    static final int CUDA_R_32F = 0;
    static final int CUDA_R_16BF = 14;
    static final int CUBLAS_COMPUTE_32F = 68;
    static final int CUBLAS_GEMM_DEFAULT = -1;
    static final int CUBLAS_OP_N = 0;
    static final int CUBLAS_OP_T = 1;

    private final Arena arena = Arena.ofShared();
    private final MethodHandle gemmEx;
    private final MethodHandle destroy;
    private final MemorySegment handle;
    private final MemorySegment alpha;
    private final MemorySegment beta;
    private final Path library;

    private Cublas(Path library, long stream) {
        this.library = library;
        Linker linker = Linker.nativeLinker();
        // libcublas needs libcublasLt from the same folder; load it first so the dynamic linker finds it by soname.
        String name = library.getFileName().toString();
        Path lt = library.resolveSibling(name.replace("libcublas.", "libcublasLt."));
        if (Files.isRegularFile(lt)) {
            SymbolLookup.libraryLookup(lt, arena);
        }
        SymbolLookup lookup = SymbolLookup.libraryLookup(library, arena);
        MethodHandle create = linker.downcallHandle(find(lookup, "cublasCreate_v2"),
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
        MethodHandle setStream = linker.downcallHandle(find(lookup, "cublasSetStream_v2"),
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG));
        destroy = linker.downcallHandle(find(lookup, "cublasDestroy_v2"), FunctionDescriptor.of(JAVA_INT, JAVA_LONG));
        gemmEx = linker.downcallHandle(find(lookup, "cublasGemmEx"), FunctionDescriptor.of(JAVA_INT,
                JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,  // handle, transa, transb, m, n, k
                ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT,                       // alpha, A, Atype, lda
                JAVA_LONG, JAVA_INT, JAVA_INT,                                // B, Btype, ldb
                ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT,                       // beta, C, Ctype, ldc
                JAVA_INT, JAVA_INT));                                         // computeType, algo
        handle = arena.allocate(ValueLayout.JAVA_LONG);
        alpha = arena.allocate(ValueLayout.JAVA_FLOAT);
        beta = arena.allocate(ValueLayout.JAVA_FLOAT);
        alpha.set(ValueLayout.JAVA_FLOAT, 0, 1.0f);
        beta.set(ValueLayout.JAVA_FLOAT, 0, 0.0f);
        try {
            check((int) create.invokeExact(handle), "cublasCreate_v2");
            check((int) setStream.invokeExact(handle(), stream), "cublasSetStream_v2");
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new CudaException("cuBLAS initialization failed (" + library + "): " + t, t);
        }
    }

    /** Opens cuBLAS from {@code library} on {@code stream}; the CUDA context must be current. */
    static Cublas open(Path library, long stream) {
        try {
            return new Cublas(library, stream);
        } catch (CudaException e) {
            throw e;
        } catch (RuntimeException e) {
            throw new CudaException("cannot load cuBLAS from " + library + ": " + e, e);
        }
    }

    private static MemorySegment find(SymbolLookup lookup, String symbol) {
        return lookup.find(symbol).orElseThrow(() -> new CudaException("cuBLAS symbol " + symbol + " not found", -1));
    }

    private long handle() {
        return handle.get(ValueLayout.JAVA_LONG, 0);
    }

    Path library() {
        return library;
    }

    /**
     * out[n, ·] (f32, row stride ldOut) = x[n, cols] · Wᵀ for W [rows, cols]; W and x of type {@code type}
     * (CUDA_R_16BF or CUDA_R_32F), FP32 accumulation. Writes columns [0, rows) of each out row.
     */
    void gemm(long w, long x, int type, long out, int rows, int n, int cols, int ldOut) {
        int r;
        try {
            r = (int) gemmEx.invokeExact(handle(), CUBLAS_OP_T, CUBLAS_OP_N, rows, n, cols,
                    alpha, w, type, cols,
                    x, type, cols,
                    beta, out, CUDA_R_32F, ldOut,
                    CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        } catch (Throwable t) {
            throw new CudaException("cublasGemmEx call failed: " + t, t);
        }
        if (r != 0) {
            throw new CudaException("cublasGemmEx(m=" + rows + ", n=" + n + ", k=" + cols + ", type="
                    + (type == CUDA_R_16BF ? "BF16" : "F32") + ") failed: " + status(r), r);
        }
    }

    private static void check(int status, String call) {
        if (status != 0) {
            throw new CudaException(call + " failed: " + status(status), status);
        }
    }

    static String status(int s) {
        String name = switch (s) {
            case 1 -> "CUBLAS_STATUS_NOT_INITIALIZED";
            case 3 -> "CUBLAS_STATUS_ALLOC_FAILED";
            case 7 -> "CUBLAS_STATUS_INVALID_VALUE";
            case 8 -> "CUBLAS_STATUS_ARCH_MISMATCH";
            case 11 -> "CUBLAS_STATUS_MAPPING_ERROR";
            case 13 -> "CUBLAS_STATUS_EXECUTION_FAILED";
            case 14 -> "CUBLAS_STATUS_INTERNAL_ERROR";
            case 15 -> "CUBLAS_STATUS_NOT_SUPPORTED";
            case 16 -> "CUBLAS_STATUS_LICENSE_ERROR";
            default -> "cublasStatus_t";
        };
        return name + " (" + s + ")";
    }

    @Override
    public void close() {
        try {
            int r = (int) destroy.invokeExact(handle());
            check(r, "cublasDestroy_v2");
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new CudaException("cublasDestroy_v2 failed: " + t, t);
        } finally {
            arena.close();
        }
    }
}
