package ai.k2j.engine;

import ai.k2j.testing.TestCheckpoints;
import ai.k2j.loaders.ModelFormatException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Issue 14: a tokenizer id without an embedding row is refused at load, naming the file, the token and the id. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ModelTokenizerTest {

    @TempDir
    Path tmp;

    @Test
    void aTokenIdPastTheEmbeddingRowsIsRefusedAtLoad() throws Exception {
        Path demo = TestCheckpoints.demoDraft();
        Path dir = Files.createDirectories(tmp.resolve("model"));
        for (String f : new String[] {"config.json", "generation_config.json", "model.safetensors",
                "tokenizer_config.json"}) {
            Files.copy(demo.resolve(f), dir.resolve(f));
        }
        ObjectMapper json = new ObjectMapper();
        ObjectNode tok = (ObjectNode) json.readTree(demo.resolve("tokenizer.json").toFile());
        ((ArrayNode) tok.get("added_tokens")).addObject().put("id", 9000).put("content", "<|extra|>")
                .put("special", true).put("normalized", false);
        json.writeValue(dir.resolve("tokenizer.json").toFile(), tok);

        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> LanguageModel.load(dir, ModelOptions.defaults().withBackend("reference")).close());
        String m = e.getMessage();
        assertTrue(m.contains(dir.resolve("tokenizer.json").toString()) && m.contains("<|extra|>")
                && m.contains("9000") && m.contains("8192 embedding rows"), m);
        e = assertThrows(ModelFormatException.class, () -> BatchEngine.load(dir, null,
                EngineOptions.defaults().withBackend("reference")).close());
        assertTrue(e.getMessage().contains("9000"), e.getMessage());
    }
}
