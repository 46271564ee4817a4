package ai.k2j.engine;

import ai.k2j.kernels.cuda.CudaBackend;
import ai.k2j.kernels.cuda.CudaException;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Without a GPU (this test's home: the Maven build), asking for the cuda backend fails at load with a
 * {@link CudaException.Unavailable} that says why (no driver library / no device), and leaks nothing. On a GPU
 * machine it is skipped (CudaEngineTest covers that side).
 */
class CudaUnavailableTest {

    @Test
    void cudaBackendWithoutAGpuFailsClearlyAtLoad() {
        boolean available;
        try (CudaBackend probe = new CudaBackend()) {
            available = probe.deviceName() != null;
        } catch (CudaException.Unavailable e) {
            available = false;
        }
        Assumptions.assumeFalse(available, "a CUDA device is present");
        Path dir = GoldenTest.goldenDir().resolve("tied_mha_f32");
        CudaException.Unavailable e = assertThrows(CudaException.Unavailable.class,
                () -> LanguageModel.load(dir, ModelOptions.defaults().withBackend("cuda")));
        String m = e.getMessage();
        assertTrue(m.contains("libcuda") || m.contains("CUDA") || m.contains("cuInit"), m);
    }
}
