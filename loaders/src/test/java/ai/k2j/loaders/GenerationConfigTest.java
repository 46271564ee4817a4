package ai.k2j.loaders;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GenerationConfigTest {

    /** Qwen/Qwen2.5-0.5B-Instruct generation_config.json as published. */
    static final String QWEN25_INSTRUCT = """
            {
              "bos_token_id": 151643,
              "pad_token_id": 151643,
              "do_sample": true,
              "eos_token_id": [151645, 151643],
              "repetition_penalty": 1.1,
              "temperature": 0.7,
              "top_p": 0.8,
              "top_k": 20,
              "transformers_version": "4.37.0"
            }
            """;

    @TempDir
    Path tmp;

    private void fails(String json, String... fragments) {
        Path file = TestFiles.text(tmp.resolve("generation_config.json"), json);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> GenerationConfig.read(file));
        assertTrue(e.getMessage().startsWith(file + ": "), () -> "message must name the file: " + e.getMessage());
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), () -> "expected '" + f + "' in: " + e.getMessage());
        }
    }

    @Test
    void qwenInstructGenerationConfig() {
        GenerationConfig g = GenerationConfig.read(TestFiles.text(tmp.resolve("generation_config.json"), QWEN25_INSTRUCT));
        assertArrayEquals(new int[] {151645, 151643}, g.eosTokenIds());
        assertTrue(g.isEos(151643) && g.isEos(151645));
        assertFalse(g.isEos(0));
        assertEquals(151643, g.bosTokenId());
        assertEquals(151643, g.padTokenId());
        assertTrue(g.doSample());
        assertEquals(0.7, g.temperature());
        assertEquals(0.8, g.topP());
        assertEquals(20, g.topK());
        assertEquals(1.1, g.repetitionPenalty());
    }

    @Test
    void eosAsSingleIntAndDefaultsForAbsentFields() {
        GenerationConfig g = GenerationConfig.parse("{\"bos_token_id\": 151643, \"eos_token_id\": 151643}", "base");
        assertArrayEquals(new int[] {151643}, g.eosTokenIds());
        assertEquals(-1, g.padTokenId());
        assertFalse(g.doSample());
        assertEquals(1.0, g.temperature());
        assertEquals(1.0, g.topP());
        assertEquals(0, g.topK());
        assertEquals(1.0, g.repetitionPenalty());
        assertEquals(GenerationConfig.DEFAULT, GenerationConfig.parse("{}", "empty"));
        assertEquals(GenerationConfig.DEFAULT, GenerationConfig.parse("{\"eos_token_id\": null, \"top_k\": null}", "nulls"));
    }

    @Test
    void missingFileIsDefault() {
        assertSame(GenerationConfig.DEFAULT, GenerationConfig.read(tmp.resolve("generation_config.json")));
    }

    @Test
    void malformedJson() {
        fails("{\"eos_token_id\": [1, 2", "invalid JSON");
        fails("\"just a string\"", "expected a JSON object");
        fails("{} trailing", "invalid JSON");
    }

    @Test
    void wrongTypesAndRanges() {
        fails("{\"eos_token_id\": \"</s>\"}", "field 'eos_token_id' must be an integer or a list of integers");
        fails("{\"eos_token_id\": [1, 2.5]}", "field 'eos_token_id[1]' must be an integer");
        fails("{\"do_sample\": \"yes\"}", "field 'do_sample' must be true or false");
        fails("{\"temperature\": \"0.7\"}", "field 'temperature' must be a number");
        fails("{\"top_k\": 2.5}", "field 'top_k' must be an integer");
        fails("{\"temperature\": -1}", "temperature must be a finite number >= 0");
        fails("{\"top_p\": 1.5}", "top_p must be in [0, 1]");
        fails("{\"top_k\": -3}", "top_k must be >= 0");
        fails("{\"repetition_penalty\": 0}", "repetition_penalty must be a finite number > 0");
    }

    @Test
    void recordCopiesAndComparesIdsByContent() {
        int[] ids = {1, 2};
        GenerationConfig g = new GenerationConfig(ids, -1, -1, false, 1, 1, 0, 1);
        ids[0] = 9;
        assertArrayEquals(new int[] {1, 2}, g.eosTokenIds());
        g.eosTokenIds()[1] = 9;
        assertArrayEquals(new int[] {1, 2}, g.eosTokenIds());
        assertEquals(g, new GenerationConfig(new int[] {1, 2}, -1, -1, false, 1, 1, 0, 1));
        assertEquals(g.hashCode(), new GenerationConfig(new int[] {1, 2}, -1, -1, false, 1, 1, 0, 1).hashCode());
    }
}
