package ai.k2j.engine;

import ai.k2j.kernels.cuda.CudaBackend;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.TestFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The DeepSeek-V3 / Kimi K2 golden fixtures on CUDA (FP32 prefill GEMMs): MLA's {@code headMatmul} and
 * {@code latentAttention} kernels, the routed experts and the FP8 twin; logits within 1e-4 of max(1, max|HF|) at
 * every prompt position, greedy ids equal to HF's. Needs a GPU (tag gpu).
 */
@Tag("gpu")
class DeepseekCudaTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @TestFactory
    Stream<DynamicTest> deepseekFixturesOnCuda() throws IOException {
        List<Path> cases;
        try (Stream<Path> s = Files.list(DeepseekGoldenTest.dir())) {
            cases = s.filter(p -> Files.isRegularFile(p.resolve("expected.json"))).sorted().toList();
        }
        assertTrue(cases.size() >= 4, "DeepSeek-V3 fixtures missing under " + DeepseekGoldenTest.dir());
        List<DynamicTest> tests = new ArrayList<>();
        for (Path c : cases) {
            tests.add(DynamicTest.dynamicTest(c.getFileName().toString(), () -> check(c)));
        }
        return tests.stream();
    }

    private static void check(Path dir) throws IOException {
        JsonNode expected = JSON.readTree(dir.resolve("expected.json").toFile());
        int[] prompt = JSON.treeToValue(expected.get("prompt_ids"), int[].class);
        int[] greedy = JSON.treeToValue(expected.get("greedy_ids"), int[].class);
        Npy.Array hf = Npy.readFloat32(dir.resolve("logits.npy"));
        String name = dir.getFileName().toString();
        try (LanguageModel gpu = CudaEngineTest.open(dir, CudaEngineTest.cuda(CudaBackend.PrefillGemm.FP32),
                prompt.length + greedy.length)) {
            float[][] ours = gpu.logits(prompt);
            double worstRatio = 0;
            for (int t = 0; t < prompt.length; t++) {
                float[] ref = hf.row(t);
                double scale = 1;
                double worst = 0;
                for (int v = 0; v < ref.length; v++) {
                    scale = Math.max(scale, Math.abs(ref[v]));
                    worst = Math.max(worst, Math.abs(ours[t][v] - ref[v]));
                }
                worstRatio = Math.max(worstRatio, worst / scale);
                assertTrue(worst <= 1e-4 * scale, name + " [cuda] position " + t + ": |ours − HF| = " + worst);
            }
            System.out.printf("cuda golden %s: max |cuda - HF| / max(1, max|HF|) = %.2e%n", name, worstRatio);
            GenerationResult r = gpu.generate(new GenerationRequest(prompt, greedy.length, SamplingParams.greedy(),
                    List.of(), true), null);
            assertArrayEquals(greedy, r.ids(), name + " [cuda]: greedy ids");
        }
    }
}
