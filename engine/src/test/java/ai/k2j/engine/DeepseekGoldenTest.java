package ai.k2j.engine;

import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * DeepSeek-V3 / Kimi K2 golden fixtures ({@code engine/src/test/resources/golden-mla/}, made by
 * {@code tools/golden/make_fixtures.py --deepseek-only} with HF transformers): MLA with q LoRA on and off,
 * group-limited and n_group = 1 sigmoid routing, 1 and 2 shared experts, YaRN with mscale, a dense first layer,
 * F32, BF16 and an FP8 block-quantized twin. Each runs as {@link GoldenTest}'s cases do on the reference and CPU
 * backends: logits within the case's 1e-4 of max(1, max|HF|) at every prompt position, greedy ids identical.
 * They live beside, not in, {@code golden/}: the planner and the CUDA engine tests walk every case there.
 */
class DeepseekGoldenTest {

    static Path dir() {
        return GoldenTest.goldenDir().resolveSibling("golden-mla");
    }

    @TestFactory
    Stream<DynamicTest> deepseekCases() throws IOException {
        List<Path> cases;
        try (Stream<Path> s = Files.list(dir())) {
            cases = s.filter(p -> Files.isRegularFile(p.resolve("expected.json"))).sorted().toList();
        }
        assertTrue(cases.size() >= 4, "DeepSeek-V3 golden fixtures missing under " + dir());
        List<DynamicTest> tests = new ArrayList<>();
        for (Path c : cases) {
            for (String backend : TestModels.backends()) {
                tests.add(DynamicTest.dynamicTest(c.getFileName() + " on " + backend,
                        () -> GoldenTest.check(c, backend)));
            }
        }
        return tests.stream();
    }
}
