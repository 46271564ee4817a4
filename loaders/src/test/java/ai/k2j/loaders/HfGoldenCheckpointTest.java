package ai.k2j.loaders;

import ai.k2j.loaders.SafeTensorsWriter.Entry;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Checkpoints written by HF transformers 5.17 / safetensors (the golden fixtures in engine's test resources):
 * they must open, agree with their own config.json, and our writer must reproduce HF's files byte for byte
 * when given the same tensors.
 */
class HfGoldenCheckpointTest {

    @TempDir
    Path tmp;

    private static Path goldenDir() {
        String explicit = System.getProperty("k2j.goldenDir");
        Path dir = explicit != null ? Path.of(explicit)
                : Path.of(System.getProperty("k2j.repoRoot", "."), "engine", "src", "test", "resources", "golden");
        if (!Files.isDirectory(dir)) {
            fail("HF golden fixtures not found at " + dir.toAbsolutePath()
                    + " (set -Dk2j.goldenDir or run from the repository via Maven)");
        }
        return dir;
    }

    @ParameterizedTest
    @ValueSource(strings = {"tied_mha_f32", "untied_gqa_bf16_classic", "tied_mqa_f16", "sharded_gqa_f32",
            "yarn_classic_bf16", "yarn_native_f32", "yarn_classic_rope_type_f16"})
    void opensAndAgreesWithRawJson(String name) throws IOException {
        Path dir = goldenDir().resolve(name);
        JsonNode raw = new ObjectMapper().readTree(dir.resolve("config.json").toFile());
        DType expectedDtype = name.endsWith("bf16") || name.contains("_bf16_") ? DType.BF16
                : name.endsWith("f16") ? DType.F16 : DType.F32;
        try (Checkpoint c = Checkpoint.open(dir)) {
            ModelConfig cfg = c.config();
            assertEquals(raw.get("hidden_size").asInt(), cfg.hiddenSize());
            assertEquals(raw.get("intermediate_size").asInt(), cfg.intermediateSize());
            assertEquals(raw.get("num_hidden_layers").asInt(), cfg.numLayers());
            assertEquals(raw.get("num_attention_heads").asInt(), cfg.numHeads());
            assertEquals(raw.get("num_key_value_heads").asInt(), cfg.numKvHeads());
            assertEquals(raw.get("vocab_size").asInt(), cfg.vocabSize());
            assertEquals(raw.get("tie_word_embeddings").asBoolean(), cfg.tieWordEmbeddings());
            JsonNode rope = raw.has("rope_parameters") ? raw.get("rope_parameters") : raw.get("rope_scaling");
            JsonNode theta = raw.has("rope_parameters") ? rope.get("rope_theta") : raw.get("rope_theta");
            assertEquals(theta.asDouble(), cfg.ropeTheta());
            boolean yarn = rope != null && !rope.isNull()
                    && "yarn".equals(rope.has("rope_type") ? rope.get("rope_type").asText() : rope.path("type").asText());
            assertEquals(yarn, cfg.ropeScaling().isYarn());
            assertEquals(name.startsWith("yarn"), yarn);
            if (yarn) {
                assertEquals(rope.get("factor").asDouble(), cfg.ropeScaling().factor());
                assertEquals(rope.get("original_max_position_embeddings").asInt(),
                        cfg.ropeScaling().originalMaxPositionEmbeddings());
            }
            assertArrayEquals(new int[] {raw.get("eos_token_id").asInt()}, c.generationConfig().eosTokenIds());

            // every tensor the model needs, in the dtype of the case, with the shapes the config implies
            long h = cfg.hiddenSize();
            c.tensor("model.embed_tokens.weight").expectShape(cfg.vocabSize(), h);
            c.tensor("model.norm.weight").expectShape(h);
            assertEquals(!cfg.tieWordEmbeddings(), c.contains("lm_head.weight"));
            for (int l = 0; l < cfg.numLayers(); l++) {
                String p = "model.layers." + l + ".";
                c.tensor(p + "self_attn.q_proj.weight").expectShape(cfg.qDim(), h);
                c.tensor(p + "self_attn.q_proj.bias").expectShape(cfg.qDim());
                c.tensor(p + "self_attn.k_proj.weight").expectShape(cfg.kvDim(), h);
                c.tensor(p + "self_attn.v_proj.bias").expectShape(cfg.kvDim());
                c.tensor(p + "self_attn.o_proj.weight").expectShape(h, cfg.qDim());
                c.tensor(p + "mlp.down_proj.weight").expectShape(h, cfg.intermediateSize());
            }
            long params = 0;
            for (String t : c.tensorNames()) {
                assertEquals(expectedDtype, c.tensor(t).dtype(), t);
                params += c.tensor(t).elements();
            }
            assertEquals(cfg.parameterCount(), params, "parameterCount() must match the checkpoint");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"tied_mha_f32", "untied_gqa_bf16_classic", "tied_mqa_f16", "yarn_native_f32"})
    void writerReproducesHfSingleFileByteForByte(String name) throws IOException {
        Path hfFile = goldenDir().resolve(name).resolve("model.safetensors");
        assertRewriteIdentical(hfFile);
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3, 4, 5, 6})
    void writerReproducesHfShardsByteForByte(int shard) throws IOException {
        Path hfFile = goldenDir().resolve("sharded_gqa_f32").resolve(String.format("model-%05d-of-00006.safetensors", shard));
        assertRewriteIdentical(hfFile);
    }

    @org.junit.jupiter.api.Test
    void shardedIndexListsExactlyTheTensorsOfTheShards() throws IOException {
        Path dir = goldenDir().resolve("sharded_gqa_f32");
        JsonNode index = new ObjectMapper().readTree(dir.resolve("model.safetensors.index.json").toFile());
        Set<String> listed = new TreeSet<>();
        index.get("weight_map").properties().forEach(e -> listed.add(e.getKey()));
        try (Checkpoint c = Checkpoint.open(dir)) {
            assertEquals(listed, c.tensorNames());
            assertEquals(index.get("metadata").get("total_size").asLong(), c.totalBytes());
        }
    }

    /** HF orders tensors by dtype, then name; with one dtype, name order; metadata {"format": "pt"}. */
    private void assertRewriteIdentical(Path hfFile) throws IOException {
        try (SafeTensorsFile f = SafeTensorsFile.open(hfFile)) {
            assertEquals(Map.of("format", "pt"), f.metadata());
            List<Entry> entries = new ArrayList<>();
            new TreeMap<>(f.tensors()).values().forEach(t -> entries.add(Entry.of(t)));
            Path ours = tmp.resolve("ours.safetensors");
            SafeTensorsWriter.write(ours, entries, f.metadata());
            byte[] expected = Files.readAllBytes(hfFile);
            byte[] actual = Files.readAllBytes(ours);
            assertTrue(java.util.Arrays.equals(expected, actual), () -> "differs from " + hfFile + " at byte "
                    + java.util.Arrays.mismatch(expected, actual) + " (sizes " + expected.length + " vs " + actual.length + ")");
        }
    }
}
