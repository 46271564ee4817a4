package ai.k2j.server;

import com.code_intelligence.jazzer.junit.FuzzTest;

/**
 * Jazzer fuzz targets for the parsers that read untrusted bytes: safetensors files, config.json, tokenizer.json
 * and request bodies ({@link ParserTargets}). Under {@code ./mvnw verify} each replays its committed corpus
 * ({@code src/test/resources/ai/k2j/server/ParserFuzzTestInputs/<target>/}), in a JVM of its own (engine/pom.xml);
 * with {@code JAZZER_FUZZ=1} one target fuzzes (docs/server.md, "Fuzzing", has the command). On JDK 25 Jazzer
 * 0.24.0 cannot instrument class files of version 69, so its fuzzing is not coverage-guided here;
 * {@link ParserMutationFuzzTest} mutates the same corpus.
 */
class ParserFuzzTest {

    @FuzzTest(maxDuration = "5m")
    void safetensors(byte[] input) {
        ParserTargets.safetensors(input);
    }

    @FuzzTest(maxDuration = "5m")
    void configJson(byte[] input) {
        ParserTargets.configJson(input);
    }

    @FuzzTest(maxDuration = "5m")
    void tokenizerJson(byte[] input) {
        ParserTargets.tokenizerJson(input);
    }

    @FuzzTest(maxDuration = "5m")
    void requestJson(byte[] input) {
        ParserTargets.requestJson(input);
    }
}
