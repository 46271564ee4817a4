package ai.k2j.kernels.cuda;

import ai.k2j.kernels.Buffer;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** -Dk2j.cuda.profile=true: per-op device times and per-step totals are recorded and reported. Needs a GPU. */
@Tag("gpu")
class CudaProfilerTest {

    @Test
    void profilerCountsEveryLaunchAndStep() {
        String before = System.getProperty("k2j.cuda.profile");
        System.setProperty("k2j.cuda.profile", "true");  // read when the backend is built
        CudaBackend backend;
        try {
            backend = new CudaBackend();
        } catch (CudaException.Unavailable e) {
            if (Boolean.getBoolean("k2j.cuda.required")) {
                throw new AssertionError("CUDA is required but unavailable: " + e.getMessage(), e);
            }
            Assumptions.abort("no CUDA here: " + e.getMessage());
            return;
        } finally {
            if (before == null) {
                System.clearProperty("k2j.cuda.profile");
            } else {
                System.setProperty("k2j.cuda.profile", before);
            }
        }
        try (backend) {
            int dim = 151_936;
            Buffer x = backend.allocate(dim);
            float[] host = new float[dim];
            Random rnd = new Random(3);
            for (int i = 0; i < dim; i++) {
                host[i] = (float) rnd.nextGaussian();
            }
            host[12345] = 1e6f;  // stays the maximum while add doubles element 0
            backend.upload(host, 0, x, 0, dim);
            backend.profileReset();
            int[] out = new int[1];
            for (int step = 0; step < 5; step++) {
                backend.add(x, x, 1, 1);  // one element doubled per step: a second op name
                backend.argmax(x, 1, dim, out);
                assertEquals(12345, out[0]);
            }
            String report = backend.profileReport();
            assertTrue(report.matches("(?s).*argmax_slices\\s+5\\s.*"), report);  // a vocabulary-wide row: sliced
            assertTrue(report.matches("(?s).*argmax_merge\\s+5\\s.*"), report);
            assertTrue(report.matches("(?s).*\\badd\\s+5\\s.*"), report);
            assertTrue(report.contains("read_ids(D2H)"), report);
            assertTrue(report.contains("per step (median over 4)"), report);  // the first read opens step 1
            backend.profileReset();
            assertTrue(backend.profileReport().contains("0 steps"), backend.profileReport());
        }
    }
}
