package ai.k2j.engine;

import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.ModelFormatException;
import ai.k2j.loaders.RopeScaling;
import ai.k2j.tokenizer.Tokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DraftCompatibilityTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    static Path demoTokenizer() {
        return SpecTestSupport.repoRoot().resolve("models/demo/target/tokenizer.json");
    }

    static ModelConfig config(int vocab, int bos, int... eos) {
        return new ModelConfig("Qwen2ForCausalLM", "qwen2", 32, 48, 1, 4, 2, 8, vocab, 512, 1e-6, 1e4,
                RopeScaling.NONE, true, "float32", bos, eos);
    }

    @Test
    void samePairPasses() {
        Tokenizer t = Tokenizer.load(demoTokenizer());
        DraftCompatibility.check("t", config(8192, 8189, 8189), t, "d", config(8192, 8189, 8189, 8191),
                Tokenizer.load(demoTokenizer()));
    }

    @Test
    void differentVocabularySizeFails() {
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> DraftCompatibility.check("T",
                config(8192, 1, 2), null, "D", config(8000, 1, 2), null));
        assertTrue(e.getMessage().contains("draft D cannot draft for target T: vocab_size 8000 differs from the "
                + "target's 8192"), e.getMessage());
    }

    @Test
    void differentSpecialTokensFail(@TempDir Path tmp) throws IOException {
        ObjectNode json = (ObjectNode) JSON.readTree(demoTokenizer().toFile());
        for (JsonNode added : json.get("added_tokens")) {
            if (added.get("content").asText().equals("<|im_start|>")) {
                ((ObjectNode) added).put("special", false);
            }
        }
        Path other = tmp.resolve("tokenizer.json");
        JSON.writeValue(other.toFile(), json);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> DraftCompatibility.check("T",
                config(8192, 8189, 8189), Tokenizer.load(demoTokenizer()), "D", config(8192, 8189, 8189),
                Tokenizer.load(other)));
        assertTrue(e.getMessage().contains("special-token ids differ"), e.getMessage());
        assertTrue(e.getMessage().contains("<|im_start|>=8190"), e.getMessage());
    }

    @Test
    void differentTokenIdsFail(@TempDir Path tmp) throws IOException {
        ObjectNode json = (ObjectNode) JSON.readTree(demoTokenizer().toFile());
        ObjectNode vocab = (ObjectNode) json.get("model").get("vocab");
        int a = vocab.get("def").asInt();
        int b = vocab.get("class").asInt();
        vocab.put("def", b);
        vocab.put("class", a);
        Path other = tmp.resolve("tokenizer.json");
        JSON.writeValue(other.toFile(), json);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> DraftCompatibility.check("T",
                config(8192, 8189, 8189), Tokenizer.load(demoTokenizer()), "D", config(8192, 8189, 8189),
                Tokenizer.load(other)));
        assertTrue(e.getMessage().contains("token id " + Math.min(a, b)), e.getMessage());
    }

    @Test
    void withoutTheDraftsTokenizerConfigIdsMustAgree() {
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> DraftCompatibility.check("T",
                config(100, 1, 2), null, "D", config(100, 1, 3), null));
        assertTrue(e.getMessage().contains("eos_token_id [3] differs from the target's [2]"), e.getMessage());
        e = assertThrows(ModelFormatException.class, () -> DraftCompatibility.check("T", config(100, 1, 2), null, "D",
                config(100, 5, 2), null));
        assertTrue(e.getMessage().contains("bos_token_id 5"), e.getMessage());
    }
}
