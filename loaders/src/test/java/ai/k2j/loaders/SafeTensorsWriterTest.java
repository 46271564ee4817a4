package ai.k2j.loaders;

import ai.k2j.loaders.SafeTensorsWriter.Entry;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SafeTensorsWriterTest {

    @TempDir
    Path tmp;

    private static Entry entry(Arena arena, String name, DType dtype, long... shape) {
        long n = Arrays.stream(shape).reduce(1, Math::multiplyExact);
        MemorySegment data = switch (dtype) {
            case F32, F16, BF16 -> TestFiles.floats(arena, dtype, n, 0.37f);
            default -> TestFiles.pattern(arena, dtype.bytesFor(n), name.hashCode());
        };
        return new Entry(name, dtype, shape, data);
    }

    private static void assertSameTensor(Entry expected, Tensor actual) {
        assertEquals(expected.name(), actual.name());
        assertEquals(expected.dtype(), actual.dtype());
        assertArrayEquals(expected.shape(), actual.shape());
        assertEquals(expected.data().byteSize(), actual.byteSize());
        assertEquals(-1, expected.data().mismatch(actual.data()), () -> "bytes differ for " + expected.name());
    }

    /** Checks the rules HF safetensors' reader enforces on top of ours: the standard layout. */
    private static void assertHfStandardLayout(Path file) throws IOException {
        byte[] bytes = Files.readAllBytes(file);
        long n = ByteBuffer.wrap(bytes, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertEquals(0, n % 8, "header length must be a multiple of 8");
        assertEquals('{', bytes[8], "header must start with '{'");
        String header = new String(bytes, 8, (int) n, StandardCharsets.UTF_8);
        String json = header.stripTrailing();
        assertTrue(header.substring(json.length()).chars().allMatch(c -> c == ' '), "padding must be spaces");
        JsonNode root = new ObjectMapper().readTree(json);
        List<long[]> ranges = new ArrayList<>();
        for (Map.Entry<String, JsonNode> e : root.properties()) {
            if (e.getKey().equals("__metadata__")) {
                continue;
            }
            JsonNode info = e.getValue();
            assertEquals(List.of("dtype", "shape", "data_offsets"), iterable(info.fieldNames()));
            long begin = info.get("data_offsets").get(0).asLong();
            long end = info.get("data_offsets").get(1).asLong();
            DType d = DType.valueOf(info.get("dtype").asText());
            int align = d.isQuantized() ? 2 : d.blockBytes();
            assertEquals(0, begin % align, e.getKey() + " is not aligned to its element size");
            ranges.add(new long[] {begin, end});
        }
        ranges.sort((a, b) -> Long.compare(a[0], b[0]));
        long pos = 0;
        for (long[] r : ranges) {
            assertEquals(pos, r[0], "tensors must be contiguous from offset 0");
            pos = r[1];
        }
        assertEquals(bytes.length - 8 - n, pos, "the last tensor must end at the end of the file");
    }

    private static List<String> iterable(Iterator<String> it) {
        List<String> out = new ArrayList<>();
        it.forEachRemaining(out::add);
        return out;
    }

    @Test
    void roundTripAllPlainAndQuantizedTypes() throws IOException {
        Path file = tmp.resolve("rt.safetensors");
        try (Arena arena = Arena.ofConfined()) {
            List<Entry> entries = List.of(
                    entry(arena, "emb.bf16", DType.BF16, 7, 5),
                    entry(arena, "norm.f32", DType.F32, 5),
                    entry(arena, "odd.u8", DType.U8, 3),
                    entry(arena, "proj.f16", DType.F16, 3, 3),
                    entry(arena, "q.q8_0", DType.Q8_0, 3, 64),
                    entry(arena, "q.q4_0", DType.Q4_0, 2, 32),
                    entry(arena, "ids.i64", DType.I64, 4),
                    entry(arena, "mask.bool", DType.BOOL, 2),
                    entry(arena, "scalar.f32", DType.F32),
                    entry(arena, "empty.f32", DType.F32, 0, 4));
            SafeTensorsWriter.write(file, entries, Map.of("format", "pt", "k2j", "test"));
            assertHfStandardLayout(file);
            try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
                assertEquals(Map.of("format", "pt", "k2j", "test"), f.metadata());
                assertEquals(entries.size(), f.tensors().size());
                for (Entry e : entries) {
                    assertSameTensor(e, f.tensor(e.name()));
                }
                assertEquals(3 * 2 * 34, f.tensor("q.q8_0").byteSize());
                assertEquals(2 * 18, f.tensor("q.q4_0").byteSize());
                // values survive, not just bytes
                Tensor bf = f.tensor("emb.bf16");
                assertEquals(Halfs.getFloat(entries.getFirst().data(), DType.BF16, 9), Halfs.getFloat(bf.data(), DType.BF16, 9));
                assertEquals((9 - 35 / 2f) * 0.37f, Halfs.getFloat(bf.data(), DType.BF16, 9), 0.02f);
            }
        }
        assertEquals(List.of("rt.safetensors"), listDir(tmp), "no temporary files may be left behind");
    }

    @Test
    void singleTensorHeaderIsByteForByteTheStandardSerialization() throws IOException {
        Path file = tmp.resolve("std.safetensors");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment data = arena.allocate(16);
            for (int i = 0; i < 4; i++) {
                data.setAtIndex(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), i, i + 1);
            }
            SafeTensorsWriter.write(file, List.of(new Entry("test", DType.I32, new long[] {2, 2}, data)), Map.of());
        }
        String json = "{\"test\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}"; // 60 bytes → pad to 64
        ByteBuffer expected = ByteBuffer.allocate(8 + 64 + 16).order(ByteOrder.LITTLE_ENDIAN);
        expected.putLong(64).put(json.getBytes(StandardCharsets.US_ASCII)).put("    ".getBytes(StandardCharsets.US_ASCII));
        for (int i = 1; i <= 4; i++) {
            expected.putInt(i);
        }
        assertArrayEquals(expected.array(), Files.readAllBytes(file));
    }

    @Test
    void layoutFollowsHfOrderWidestDtypeFirstThenName() throws IOException {
        Path file = tmp.resolve("order.safetensors");
        try (Arena arena = Arena.ofConfined()) {
            SafeTensorsWriter.write(file, List.of(
                    entry(arena, "mask", DType.BOOL, 3),
                    entry(arena, "z.f32", DType.F32, 3),
                    entry(arena, "q", DType.Q8_0, 1, 32),
                    entry(arena, "h", DType.F16, 1),
                    entry(arena, "B.bf16", DType.BF16, 1),
                    entry(arena, "a.bf16", DType.BF16, 1),
                    entry(arena, "a.f32", DType.F32, 1),
                    entry(arena, "u", DType.U8, 1),
                    entry(arena, "ids", DType.I64, 1)), Map.of());
            assertHfStandardLayout(file);
        }
        try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
            // the header lists tensors in layout order
            assertEquals(List.of("ids", "a.f32", "z.f32", "B.bf16", "a.bf16", "h", "q", "u", "mask"),
                    List.copyOf(f.tensors().keySet()));
        }
    }

    @Test
    void chunkedStreamingWritesTheSameBytes() throws IOException {
        Path whole = tmp.resolve("whole.safetensors");
        Path chunked = tmp.resolve("chunked.safetensors");
        try (Arena arena = Arena.ofConfined()) {
            List<Entry> entries = List.of(entry(arena, "a", DType.F32, 101), entry(arena, "b", DType.U8, 37));
            SafeTensorsWriter.write(whole, entries, Map.of());
            SafeTensorsWriter.write(chunked, entries, Map.of(), 7);
        }
        assertArrayEquals(Files.readAllBytes(whole), Files.readAllBytes(chunked));
    }

    @Test
    void heapSegmentsCanBeWrittenToo() {
        Path file = tmp.resolve("heap.safetensors");
        float[] values = {1f, 2f, 3f};
        short[] halves = {Halfs.floatToBf16(-1f), Halfs.floatToBf16(0.5f)};
        byte[] raw = {9, 8, 7};
        SafeTensorsWriter.write(file, List.of(
                new Entry("h", DType.F32, new long[] {3}, MemorySegment.ofArray(values)),
                new Entry("r", DType.BF16, new long[] {2}, MemorySegment.ofArray(halves).asReadOnly()),
                new Entry("b", DType.U8, new long[] {3}, MemorySegment.ofArray(raw))), Map.of());
        try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
            assertEquals(3f, Halfs.getFloat(f.tensor("h").data(), DType.F32, 2)); // native order == LE on x86/arm
            assertEquals(0.5f, Halfs.getFloat(f.tensor("r").data(), DType.BF16, 1));
            assertEquals(7, f.tensor("b").data().get(ValueLayout.JAVA_BYTE, 2));
        }
    }

    @Test
    void overwritesAnExistingFileAtomically() throws IOException {
        Path file = tmp.resolve("o.safetensors");
        Files.writeString(file, "old garbage");
        try (Arena arena = Arena.ofConfined()) {
            SafeTensorsWriter.write(file, List.of(entry(arena, "x", DType.F16, 4)), Map.of());
        }
        try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
            assertTrue(f.contains("x"));
        }
        assertEquals(List.of("o.safetensors"), listDir(tmp));
    }

    @Test
    void rejectsEntriesWhoseBytesDoNotMatch() {
        Path file = tmp.resolve("bad.safetensors");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment twelve = arena.allocate(12);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> SafeTensorsWriter.write(file,
                    List.of(new Entry("w", DType.F32, new long[] {2, 2}, twelve)), Map.of()));
            assertTrue(e.getMessage().contains("tensor 'w': data has 12 bytes but F32 [2, 2] needs 16"), e.getMessage());

            MemorySegment q = arena.allocate(128);
            e = assertThrows(IllegalArgumentException.class, () -> SafeTensorsWriter.write(file,
                    List.of(new Entry("q", DType.Q8_0, new long[] {2, 64}, q)), Map.of()));
            assertTrue(e.getMessage().contains("data has 128 bytes but Q8_0 [2, 64] needs 136"), e.getMessage());

            MemorySegment q48 = arena.allocate(34 * 3);
            e = assertThrows(IllegalArgumentException.class, () -> SafeTensorsWriter.write(file,
                    List.of(new Entry("q", DType.Q8_0, new long[] {2, 48}, q48)), Map.of()));
            assertTrue(e.getMessage().contains("Q8_0 needs the last dimension to be a multiple of 32"), e.getMessage());

            MemorySegment four = arena.allocate(4);
            e = assertThrows(IllegalArgumentException.class, () -> SafeTensorsWriter.write(file,
                    List.of(new Entry("d", DType.F32, new long[] {1}, four), new Entry("d", DType.F32, new long[] {1}, four)),
                    Map.of()));
            assertTrue(e.getMessage().contains("tensor 'd': duplicate tensor name"), e.getMessage());

            e = assertThrows(IllegalArgumentException.class, () -> SafeTensorsWriter.write(file,
                    List.of(new Entry("__metadata__", DType.F32, new long[] {1}, four)), Map.of()));
            assertTrue(e.getMessage().contains("invalid tensor name"), e.getMessage());

            e = assertThrows(IllegalArgumentException.class, () -> SafeTensorsWriter.write(file,
                    List.of(new Entry("neg", DType.F32, new long[] {-1}, four)), Map.of()));
            assertTrue(e.getMessage().contains("negative dimension"), e.getMessage());
        }
        assertFalse(Files.exists(file), "nothing may be written when validation fails");
    }

    @Test
    void singleFileCheckpointWhenUnderTheShardLimit() throws IOException {
        TestFiles.text(tmp.resolve("config.json"), TestFiles.TINY_CONFIG);
        try (Arena arena = Arena.ofConfined()) {
            List<Entry> entries = List.of(entry(arena, "a", DType.BF16, 10), entry(arena, "b", DType.F32, 10));
            SafeTensorsWriter.writeCheckpoint(tmp, entries, 60);
            assertEquals(List.of("config.json", "model.safetensors"), listDir(tmp));
            try (Checkpoint c = Checkpoint.open(tmp)) {
                for (Entry e : entries) {
                    assertSameTensor(e, c.tensor(e.name()));
                }
                assertEquals(60, c.totalBytes());
            }
            try (SafeTensorsFile f = SafeTensorsFile.open(tmp.resolve("model.safetensors"))) {
                assertEquals(Map.of("format", "pt"), f.metadata(), "transformers needs format=pt");
            }
        }
    }

    @Test
    void shardedCheckpointRoundTrip() throws IOException {
        TestFiles.text(tmp.resolve("config.json"), TestFiles.TINY_CONFIG);
        try (Arena arena = Arena.ofConfined()) {
            List<Entry> entries = new ArrayList<>();
            for (int i = 0; i < 5; i++) {
                entries.add(entry(arena, "layer." + i + ".w", DType.F32, 25)); // 100 bytes each
            }
            entries.add(entry(arena, "big", DType.U8, 400)); // bigger than a shard: gets its own
            entries.add(entry(arena, "tail", DType.BF16, 3));
            SafeTensorsWriter.writeCheckpoint(tmp, entries, 250);

            List<String> expectedFiles = List.of("config.json",
                    "model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors",
                    "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors",
                    "model.safetensors.index.json");
            assertEquals(expectedFiles, listDir(tmp));
            for (String s : expectedFiles.subList(1, 5)) {
                assertHfStandardLayout(tmp.resolve(s));
            }
            JsonNode index = new ObjectMapper().readTree(tmp.resolve("model.safetensors.index.json").toFile());
            assertEquals(500 + 400 + 6, index.get("metadata").get("total_size").asLong());
            JsonNode map = index.get("weight_map");
            assertEquals("model-00001-of-00004.safetensors", map.get("layer.0.w").asText());
            assertEquals("model-00001-of-00004.safetensors", map.get("layer.1.w").asText());
            assertEquals("model-00002-of-00004.safetensors", map.get("layer.2.w").asText());
            assertEquals("model-00002-of-00004.safetensors", map.get("layer.3.w").asText());
            // as HF: the oversized tensor gets a dedicated shard; the open shard (layer.4) stays open for "tail"
            assertEquals("model-00003-of-00004.safetensors", map.get("big").asText());
            assertEquals("model-00004-of-00004.safetensors", map.get("layer.4.w").asText());
            assertEquals("model-00004-of-00004.safetensors", map.get("tail").asText());
            assertEquals(7, map.size());

            try (Checkpoint c = Checkpoint.open(tmp)) {
                assertEquals(entries.stream().map(Entry::name).collect(Collectors.toCollection(TreeSet::new)), c.tensorNames());
                for (Entry e : entries) {
                    assertSameTensor(e, c.tensor(e.name()));
                }
                assertEquals(906, c.totalBytes());
            }
        }
    }

    @Test
    void rewritingSwitchesLayoutAndRemovesStaleWeightFiles() throws IOException {
        TestFiles.text(tmp.resolve("config.json"), TestFiles.TINY_CONFIG);
        Files.writeString(tmp.resolve("tokenizer.json"), "{}");
        try (Arena arena = Arena.ofConfined()) {
            List<Entry> three = List.of(entry(arena, "a", DType.U8, 100), entry(arena, "b", DType.U8, 100),
                    entry(arena, "c", DType.U8, 100));
            SafeTensorsWriter.writeCheckpoint(tmp, three, 1000);
            SafeTensorsWriter.writeCheckpoint(tmp, three, 100);
            assertEquals(List.of("config.json", "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                    "model-00003-of-00003.safetensors", "model.safetensors.index.json", "tokenizer.json"), listDir(tmp));
            SafeTensorsWriter.writeCheckpoint(tmp, three.subList(0, 2), 100);
            assertEquals(List.of("config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                    "model.safetensors.index.json", "tokenizer.json"), listDir(tmp));
            SafeTensorsWriter.writeCheckpoint(tmp, three, 1000);
            assertEquals(List.of("config.json", "model.safetensors", "tokenizer.json"), listDir(tmp));
            try (Checkpoint c = Checkpoint.open(tmp)) {
                assertEquals(Set.of("a", "b", "c"), c.tensorNames());
            }
        }
    }

    private static List<String> listDir(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }
}
