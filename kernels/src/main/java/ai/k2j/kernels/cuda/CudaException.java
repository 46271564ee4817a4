package ai.k2j.kernels.cuda;

/**
 * A CUDA driver, NVRTC or cuBLAS call failed, or the CUDA libraries could not be found. The message names the
 * call, the result code and its meaning.
 */
public class CudaException extends RuntimeException {

    private final int code;

    public CudaException(String message, int code) {
        super(message);
        this.code = code;
    }

    public CudaException(String message, Throwable cause) {
        super(message, cause);
        this.code = -1;
    }

    /** The CUresult / nvrtcResult / cublasStatus_t of the failed call, or -1 when not from a call. */
    public int code() {
        return code;
    }

    /**
     * CUDA cannot be used on this machine at all (no driver library or no device), as opposed to a failure of a
     * working installation. Tests skip on this, and fail on any other {@link CudaException}.
     */
    public static final class Unavailable extends CudaException {
        public Unavailable(String message) {
            super(message, -1);
        }

        public Unavailable(String message, Throwable cause) {
            super(message, cause);
        }
    }
}
