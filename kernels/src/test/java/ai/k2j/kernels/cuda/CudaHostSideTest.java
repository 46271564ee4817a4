package ai.k2j.kernels.cuda;

import org.junit.jupiter.api.Test;

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
                "argmax_rows", "argmax_slices", "argmax_merge", "attention_combine", "rope_store_kv", "topk_slices", "sample_topk",
                "sample_full", "gemv_generic", "dequant_f32", "f32_to_bf16_kernel", "add_bias", "store_kv_bf16",
                "rope_store_kv_bf16", "store_kv_fp8"}) {
            assertTrue(all.contains(" " + fn + "("), "kernel " + fn + " not found in the sources");
        }
        // the split attention kernels per group size, each for an F32, BF16 and FP8 cache (names from a macro)
        for (int g = 1; g <= 16; g *= 2) {
            assertTrue(all.contains("ATT_KERNEL(" + g + ")"), "attention_g" + g + " not instantiated");
        }
        for (String suffix : new String[] {"attention_g##G(", "attention_g##G##_bf16(", "attention_g##G##_fp8(",
                "attention_dec_g##G##_d##DL(", "attention_dec_g##G##_d##DL##_bf16(",
                "attention_dec_g##G##_d##DL##_fp8("}) {
            assertTrue(all.contains(suffix), "the kernel macros lack " + suffix);
        }
        // the tensor-core prefill kernels (native/prefill.cu): head dims 16 << i, and the BF16 dequantizer
        String prefill = CudaKernels.source("prefill");
        for (int i = 0; i < 4; i++) {
            assertTrue(prefill.contains(" flash_prefill_d" + (16 << i) + "("), "flash_prefill_d" + (16 << i));
        }
        assertTrue(prefill.contains(" dequant_bf16("), "dequant_bf16");
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
    void tensorCoresAreTheDefaultAndFp32StaysSelectable() {
        assumeFalse(System.getProperty("k2j.cuda.prefillGemm") != null
                || System.getProperty("k2j.cuda.prefillAttention") != null, "prefill properties set for this JVM");
        CudaBackend.Options d = CudaBackend.Options.defaults();
        assertEquals(CudaBackend.PrefillGemm.AUTO, d.prefillGemm());
        assertFalse(d.flashPrefill(), "the tensor-core prefill attention stays opt-in until it has run on a GPU");
        assertFalse(new CudaBackend.Options(0, CudaBackend.PrefillGemm.AUTO, 9).flashPrefill());
        CudaBackend.Options fp32 = d.withPrefillGemm(CudaBackend.PrefillGemm.FP32).withFlashPrefill(true);
        assertEquals(CudaBackend.PrefillGemm.FP32, fp32.prefillGemm());
        assertTrue(fp32.flashPrefill());
        assertEquals(d.gemmMinTokens(), fp32.gemmMinTokens());
        try {
            System.setProperty("k2j.cuda.prefillGemm", "fp32");
            System.setProperty("k2j.cuda.prefillAttention", "flash");
            CudaBackend.Options p = CudaBackend.Options.defaults();
            assertEquals(CudaBackend.PrefillGemm.FP32, p.prefillGemm());
            assertTrue(p.flashPrefill());
            System.setProperty("k2j.cuda.prefillAttention", "tiled");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, CudaBackend.Options::defaults);
            assertTrue(e.getMessage().contains("k2j.cuda.prefillAttention=tiled"), e.getMessage());
        } finally {
            System.clearProperty("k2j.cuda.prefillGemm");
            System.clearProperty("k2j.cuda.prefillAttention");
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
