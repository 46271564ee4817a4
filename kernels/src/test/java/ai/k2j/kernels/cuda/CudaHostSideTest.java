package ai.k2j.kernels.cuda;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

/** The CUDA backend's host-side parts, testable without a GPU (runs in the default build). */
class CudaHostSideTest {

    @Test
    void bf16RoundsToNearestEven() {
        assertEquals((short) 0x3f80, HostCodec.f32ToBf16(1.0f));
        // 1 + 2^-8 is exactly half way between bf16 1.0 and 1.0078125: ties to even (1.0)
        assertEquals((short) 0x3f80, HostCodec.f32ToBf16(Float.intBitsToFloat(0x3f808000)));
        // 1.0078125 + half ulp ties to even upwards (0x3f82)
        assertEquals((short) 0x3f82, HostCodec.f32ToBf16(Float.intBitsToFloat(0x3f818000)));
        assertEquals((short) 0x3f81, HostCodec.f32ToBf16(Float.intBitsToFloat(0x3f808001)));
        assertTrue(Float.isNaN(HostCodec.bf16ToF32(HostCodec.f32ToBf16(Float.NaN))));
        assertEquals(Float.NEGATIVE_INFINITY, HostCodec.bf16ToF32(HostCodec.f32ToBf16(Float.NEGATIVE_INFINITY)));
    }

    @Test
    void roundHalfAwayMatchesCRoundf() {
        assertEquals(-3f, HostCodec.roundHalfAway(-2.5f));
        assertEquals(3f, HostCodec.roundHalfAway(2.5f));
        assertEquals(0f, HostCodec.roundHalfAway(0.49999997f));
        assertEquals(-1f, HostCodec.roundHalfAway(-0.5f));
    }

    @Test
    void q8_0QuantizesLikeLlamaCpp() {
        float[] x = new float[32];
        for (int i = 0; i < 32; i++) {
            x[i] = (i - 16) * 0.25f;  // max |x| = 4 at i = 0
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment qs = arena.allocate(32);
            short d = HostCodec.quantizeQ8_0(x, 0, qs, 0);
            assertEquals(4f / 127f, Float.float16ToFloat(d), 1e-4);
            assertEquals(-127, qs.get(ValueLayout.JAVA_BYTE, 0));
            // x = 0.25 -> 0.25 * 127 / 4 = 7.9375 -> 8
            assertEquals(8, qs.get(ValueLayout.JAVA_BYTE, 17));
            assertEquals(0, qs.get(ValueLayout.JAVA_BYTE, 16));
        }
    }

    @Test
    void q4_0QuantizesLikeLlamaCpp() {
        float[] x = new float[32];
        for (int i = 0; i < 32; i++) {
            x[i] = i * 0.5f - 4f;  // -4 .. 11.5; largest magnitude is +11.5 -> d = -11.5 / 8
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment qs = arena.allocate(16);
            short dBits = HostCodec.quantizeQ4_0(x, 0, qs, 0);
            float d = -11.5f / 8f;
            assertEquals(d, Float.float16ToFloat(dBits), 1e-3);
            float id = 1 / d;
            for (int j = 0; j < 16; j++) {
                int b = qs.get(ValueLayout.JAVA_BYTE, j) & 0xff;
                assertEquals(Math.min(15, (int) (x[j] * id + 8.5f)), b & 15, "low nibble " + j);
                assertEquals(Math.min(15, (int) (x[j + 16] * id + 8.5f)), b >>> 4, "high nibble " + j);
            }
            // the extreme value maps to nibble 0 (q - 8 = -8, times d = +11.5)
            assertEquals(0, (qs.get(ValueLayout.JAVA_BYTE, 15) & 0xff) >>> 4);
        }
    }

    @Test
    void kernelSourcesAreOnTheClassPathWithTheCommonHeaderPasted() {
        for (String name : CudaKernels.SOURCES) {
            String src = CudaKernels.source(name);
            assertFalse(src.contains("#include \"common.cuh\""), name + " still includes common.cuh");
            assertTrue(src.contains("K2J_COMMON_CUH"), name + " lacks the pasted header");
            assertTrue(src.contains("extern \"C\" __global__"), name + " has no kernels");
        }
        // every kernel name CudaKernels looks up is defined (GEMV names come from a macro)
        String all = String.join("\n", CudaKernels.source("ops"), CudaKernels.source("attention"),
                CudaKernels.source("sample"), CudaKernels.source("gemv"));
        for (String fn : new String[] {"embed", "rmsnorm", "rope", "silu_mul", "add_inplace", "gather_rows", "store_kv",
                "argmax_rows", "argmax_slices", "argmax_merge", "attention_g1", "attention_g16", "attention_combine", "rope_store_kv", "topk_slices", "sample_topk",
                "sample_full", "gemv_generic", "dequant_f32", "f32_to_bf16_kernel", "add_bias"}) {
            assertTrue(all.contains(" " + fn + "("), "kernel " + fn + " not found in the sources");
        }
        for (String prefix : new String[] {"gemv_f32", "gemv_f16", "gemv_bf16", "gemv_q8_0", "gemv_q4_0"}) {
            assertTrue(all.contains("GEMV_DTYPE(" + prefix + ","), prefix + " kernels not instantiated");
        }
        // the decode attention kernels CudaKernels looks up: head dim 32 << i, groups 1 << j, (1 << i)(1 << j) <= 32
        for (int i = 0; i < 4; i++) {
            for (int j = 0; j < 5; j++) {
                String instance = "DEC_KERNEL(" + (1 << j) + ", " + (1 << i) + ")";
                assertEquals((1 << i) * (1 << j) <= 32, all.contains(instance), instance);
            }
        }
    }

    @Test
    void withoutADriverTheBackendReportsUnavailable() {
        boolean driverPresent = false;
        for (String dir : new String[] {"/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/lib/wsl/lib"}) {
            driverPresent |= Files.exists(Path.of(dir, "libcuda.so.1"));
        }
        assumeFalse(driverPresent || System.getProperty("k2j.cuda.libcuda") != null
                || System.getenv("K2J_CUDA_LIBCUDA") != null, "a CUDA driver is installed here");
        CudaException.Unavailable e = assertThrows(CudaException.Unavailable.class,
                () -> new CudaBackend(new CudaBackend.Options(0, CudaBackend.PrefillGemm.AUTO, 9)));
        assertTrue(e.getMessage().contains("libcuda.so.1"), e.getMessage());
    }
}
