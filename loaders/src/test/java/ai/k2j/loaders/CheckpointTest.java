package ai.k2j.loaders;

import ai.k2j.loaders.SafeTensorsWriter.Entry;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CheckpointTest {

    @TempDir
    Path dir;

    private ModelFormatException fails(String... fragments) {
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Checkpoint.open(dir).close());
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), () -> "expected '" + f + "' in: " + e.getMessage());
        }
        return e;
    }

    /** Three tensors of 100 bytes written as three shards (limit 100) or one file. */
    private List<Entry> writeModel(Arena arena, long maxShardBytes) {
        TestFiles.text(dir.resolve("config.json"), TestFiles.TINY_CONFIG);
        List<Entry> entries = List.of(
                new Entry("model.embed_tokens.weight", DType.F32, new long[] {5, 5}, TestFiles.floats(arena, DType.F32, 25, 0.5f)),
                new Entry("model.layers.0.mlp.up_proj.weight", DType.BF16, new long[] {5, 10}, TestFiles.floats(arena, DType.BF16, 50, 0.25f)),
                new Entry("model.norm.weight", DType.U8, new long[] {100}, TestFiles.pattern(arena, 100, 1)));
        SafeTensorsWriter.writeCheckpoint(dir, entries, maxShardBytes);
        return entries;
    }

    @Test
    void opensSingleFileCheckpoint() {
        try (Arena arena = Arena.ofConfined()) {
            List<Entry> entries = writeModel(arena, 1 << 20);
            try (Checkpoint c = Checkpoint.open(dir)) {
                assertEquals(dir, c.dir());
                assertEquals(64, c.config().hiddenSize());
                assertSame(GenerationConfig.DEFAULT, c.generationConfig(), "no generation_config.json → DEFAULT");
                assertEquals(Set.of("model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight", "model.norm.weight"),
                        c.tensorNames());
                assertEquals("model.embed_tokens.weight", c.tensorNames().first());
                assertEquals(300, c.totalBytes());
                for (Entry e : entries) {
                    Tensor t = c.tensor(e.name());
                    assertEquals(e.dtype(), t.dtype());
                    assertArrayEquals(e.shape(), t.shape());
                    assertEquals(-1, e.data().mismatch(t.data()));
                    assertTrue(t.data().isMapped());
                }
                assertTrue(c.contains("model.norm.weight"));
                assertTrue(c.find("lm_head.weight").isEmpty());
                assertEquals(-0.25f * 25, Halfs.getFloat(c.tensor("model.layers.0.mlp.up_proj.weight").data(), DType.BF16, 0));
            }
        }
    }

    @Test
    void opensShardedCheckpointWithGenerationConfig() {
        try (Arena arena = Arena.ofConfined()) {
            List<Entry> entries = writeModel(arena, 100);
            assertTrue(Files.exists(dir.resolve("model-00003-of-00003.safetensors")));
            TestFiles.text(dir.resolve("generation_config.json"), "{\"eos_token_id\": [2, 3], \"temperature\": 0.7}");
            try (Checkpoint c = Checkpoint.open(dir)) {
                assertArrayEquals(new int[] {2, 3}, c.generationConfig().eosTokenIds());
                assertEquals(0.7, c.generationConfig().temperature());
                for (Entry e : entries) {
                    assertEquals(-1, e.data().mismatch(c.tensor(e.name()).data()), e.name());
                }
                assertEquals(300, c.totalBytes());
            }
        }
    }

    @Test
    void missingTensorNamesDirAndTensor() {
        try (Arena arena = Arena.ofConfined()) {
            writeModel(arena, 1 << 20);
        }
        try (Checkpoint c = Checkpoint.open(dir)) {
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> c.tensor("lm_head.weight"));
            assertTrue(e.getMessage().contains(dir.toString()), e.getMessage());
            assertTrue(e.getMessage().contains("no tensor named 'lm_head.weight'"), e.getMessage());
        }
    }

    @Test
    void missingShard() throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            writeModel(arena, 100);
        }
        Files.delete(dir.resolve("model-00002-of-00003.safetensors"));
        fails("shard 'model-00002-of-00003.safetensors'", "is missing from " + dir);
    }

    @Test
    void tensorListedButAbsentFromItsShard() throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            writeModel(arena, 100);
        }
        Path index = dir.resolve("model.safetensors.index.json");
        String text = Files.readString(index).replace("\"weight_map\" : {",
                "\"weight_map\" : {\n    \"lm_head.weight\" : \"model-00001-of-00003.safetensors\",");
        Files.writeString(index, text);
        fails(index.toString(), "tensor 'lm_head.weight' is listed in shard 'model-00001-of-00003.safetensors' but is absent from it");
    }

    @Test
    void tensorListedInTheWrongShard() throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            writeModel(arena, 100);
        }
        Path index = dir.resolve("model.safetensors.index.json");
        String text = Files.readString(index);
        // swap the shards of the first two tensors: both shards stay listed, each tensor is in the other one
        text = text.replace("\"model.embed_tokens.weight\" : \"model-00001-of-00003.safetensors\"",
                        "\"model.embed_tokens.weight\" : \"model-00002-of-00003.safetensors\"")
                .replace("\"model.layers.0.mlp.up_proj.weight\" : \"model-00002-of-00003.safetensors\"",
                        "\"model.layers.0.mlp.up_proj.weight\" : \"model-00001-of-00003.safetensors\"");
        Files.writeString(index, text);
        fails("tensor 'model.embed_tokens.weight' is listed in shard 'model-00002-of-00003.safetensors' but is in "
                + "'model-00001-of-00003.safetensors' (and 1 more tensors like it)");
    }

    @Test
    void duplicateTensorAcrossShards() {
        TestFiles.text(dir.resolve("config.json"), TestFiles.TINY_CONFIG);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment a = TestFiles.pattern(arena, 4, 1);
            SafeTensorsWriter.write(dir.resolve("s1.safetensors"), List.of(new Entry("x", DType.U8, new long[] {4}, a),
                    new Entry("y", DType.U8, new long[] {4}, a)), Map.of());
            SafeTensorsWriter.write(dir.resolve("s2.safetensors"), List.of(new Entry("x", DType.U8, new long[] {4}, a)), Map.of());
        }
        TestFiles.text(dir.resolve("model.safetensors.index.json"),
                "{\"metadata\": {}, \"weight_map\": {\"y\": \"s1.safetensors\", \"x\": \"s2.safetensors\"}}");
        fails("tensor 'x' appears in two shards, 's1.safetensors' and 's2.safetensors'");
    }

    @Test
    void unlistedTensorsOfListedShardsAreLoaded() {
        TestFiles.text(dir.resolve("config.json"), TestFiles.TINY_CONFIG);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment a = TestFiles.pattern(arena, 4, 1);
            SafeTensorsWriter.write(dir.resolve("s1.safetensors"), List.of(new Entry("x", DType.U8, new long[] {4}, a),
                    new Entry("extra", DType.U8, new long[] {4}, a)), Map.of());
        }
        TestFiles.text(dir.resolve("model.safetensors.index.json"), "{\"weight_map\": {\"x\": \"s1.safetensors\"}}");
        try (Checkpoint c = Checkpoint.open(dir)) {
            assertEquals(Set.of("x", "extra"), c.tensorNames());
        }
    }

    @Test
    void noWeightsAtAll() {
        TestFiles.text(dir.resolve("config.json"), TestFiles.TINY_CONFIG);
        fails(dir.toString(), "no weights: neither model.safetensors nor model.safetensors.index.json is present");
        TestFiles.text(dir.resolve("model.safetensors.index.json"), "{\"metadata\": {}, \"weight_map\": {}}");
        fails("no weights: 'weight_map' is empty");
        TestFiles.text(dir.resolve("model.safetensors.index.json"), "{\"metadata\": {}}");
        fails("'weight_map' is missing");
        TestFiles.text(dir.resolve("model.safetensors.index.json"), "{\"weight_map\": {\"x\": 3}}");
        fails("weight_map entry 'x' must be a string");
        TestFiles.text(dir.resolve("model.safetensors.index.json"), "{\"weight_map\": ");
        fails("model.safetensors.index.json", "invalid JSON");
    }

    @Test
    void emptySafetensorsFileIsNoWeights() {
        TestFiles.text(dir.resolve("config.json"), TestFiles.TINY_CONFIG);
        SafeTensorsWriter.write(dir.resolve("model.safetensors"), List.of(), Map.of());
        fails("no weights: the safetensors files hold no tensors");
    }

    @Test
    void shardNamesMustStayInTheDirectory() {
        TestFiles.text(dir.resolve("config.json"), TestFiles.TINY_CONFIG);
        for (String bad : List.of("../model.safetensors", "/etc/passwd", "sub/x.safetensors", "..", "")) {
            TestFiles.text(dir.resolve("model.safetensors.index.json"),
                    "{\"weight_map\": {\"x\": \"" + bad + "\"}}");
            fails("shard name '" + bad + "'", "is not a plain file name");
        }
    }

    @Test
    void corruptShardNamesTheShardFile() throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            writeModel(arena, 100);
        }
        Path shard = dir.resolve("model-00003-of-00003.safetensors");
        byte[] b = Files.readAllBytes(shard);
        Files.write(shard, java.util.Arrays.copyOf(b, b.length - 1));
        fails(shard.toString(), "outside the data section");
    }

    @Test
    void configProblemsSurfaceFirst() {
        fails(dir.resolve("config.json").toString(), "config.json not found");
        TestFiles.text(dir.resolve("config.json"), "{\"hidden_size\": 64}");
        fails("required field 'intermediate_size' is missing");
        assertThrows(ModelFormatException.class, () -> Checkpoint.open(dir.resolve("nope")));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Checkpoint.open(dir.resolve("nope")));
        assertTrue(e.getMessage().contains("not a directory"), e.getMessage());
    }

    @Test
    void closeIsIdempotentAndInvalidatesTensors() {
        try (Arena arena = Arena.ofConfined()) {
            writeModel(arena, 100);
        }
        Checkpoint c = Checkpoint.open(dir);
        MemorySegment data = c.tensor("model.norm.weight").data();
        data.get(ValueLayout.JAVA_BYTE, 99);
        c.close();
        c.close();
        assertFalse(data.scope().isAlive());
        assertThrows(IllegalStateException.class, () -> data.get(ValueLayout.JAVA_BYTE, 0));
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> c.tensor("model.norm.weight"));
        assertTrue(e.getMessage().contains("closed"));
    }

    @Test
    void concurrentReadersSeeTheSameBytes() throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            writeModel(arena, 100);
        }
        try (Checkpoint c = Checkpoint.open(dir); ExecutorService pool = Executors.newFixedThreadPool(4)) {
            List<Future<Long>> sums = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                sums.add(pool.submit(() -> {
                    long sum = 0;
                    for (int round = 0; round < 50; round++) {
                        for (String name : c.tensorNames()) {
                            MemorySegment d = c.tensor(name).data();
                            for (long j = 0; j < d.byteSize(); j++) {
                                sum = sum * 31 + d.get(ValueLayout.JAVA_BYTE, j);
                            }
                        }
                    }
                    return sum;
                }));
            }
            long first = sums.getFirst().get();
            for (Future<Long> f : sums) {
                assertEquals(first, f.get());
            }
        }
    }
}
