package ai.k2j.loaders;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SafeTensorsFileTest {

    @TempDir
    Path tmp;

    /** Opens the file expecting a ModelFormatException whose message names the file and contains every fragment. */
    private ModelFormatException fails(Path file, String... fragments) {
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> SafeTensorsFile.open(file).close());
        assertTrue(e.getMessage().contains(file.toString()), () -> "message does not name the file: " + e.getMessage());
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), () -> "expected '" + f + "' in: " + e.getMessage());
        }
        return e;
    }

    private static byte[] f32Bytes(float... values) {
        ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            b.putFloat(v);
        }
        return b.array();
    }

    @Test
    void readsTensorsAsReadOnlyMappedSlicesWithMetadata() {
        byte[] f32 = f32Bytes(1f, -2f, 3.5f, 4f);
        byte[] data = new byte[f32.length + 6];
        System.arraycopy(f32, 0, data, 0, f32.length);
        // BF16 [3]: 1.0, -0.5, 2.0
        short[] bf = {Halfs.floatToBf16(1f), Halfs.floatToBf16(-0.5f), Halfs.floatToBf16(2f)};
        for (int i = 0; i < 3; i++) {
            data[16 + 2 * i] = (byte) bf[i];
            data[17 + 2 * i] = (byte) (bf[i] >> 8);
        }
        String header = """
                {"__metadata__":{"format":"pt","who":"test"},
                 "w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},
                 "b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]}}""";
        Path file = TestFiles.raw(tmp.resolve("ok.safetensors"), header, data);
        try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
            assertEquals(Map.of("format", "pt", "who", "test"), f.metadata());
            assertEquals(List.of("w", "b"), List.copyOf(f.tensors().keySet()));
            Tensor w = f.tensor("w");
            assertEquals(DType.F32, w.dtype());
            assertArrayEquals(new long[] {2, 2}, w.shape());
            assertEquals(16, w.byteSize());
            assertTrue(w.data().isMapped(), "tensor data must be a slice of the file mapping");
            assertTrue(w.data().isReadOnly());
            assertEquals(-2f, Halfs.getFloat(w.data(), DType.F32, 1));
            assertEquals(3.5f, Halfs.getFloat(w.data(), DType.F32, 2));
            Tensor b = f.tensor("b");
            assertEquals(-0.5f, Halfs.getFloat(b.data(), DType.BF16, 1));
            assertEquals(2f, Halfs.getFloat(b.data(), DType.BF16, 2));
            assertEquals(8 + header.getBytes(StandardCharsets.UTF_8).length, f.dataOffset());
            assertEquals(22, f.dataBytes());
            assertTrue(f.contains("b"));
            assertTrue(f.find("nope").isEmpty());
        }
    }

    @Test
    void emptyAndScalarTensorsAreAllowed() {
        Path file = TestFiles.raw(tmp.resolve("e.safetensors"), """
                {"empty":{"dtype":"F32","shape":[0,5],"data_offsets":[4,4]},
                 "empty2":{"dtype":"F16","shape":[0],"data_offsets":[4,4]},
                 "scalar":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}""", f32Bytes(7f));
        try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
            assertEquals(0, f.tensor("empty").byteSize());
            assertEquals(0, f.tensor("empty").elements());
            assertEquals(1, f.tensor("scalar").elements());
            assertEquals(7f, Halfs.getFloat(f.tensor("scalar").data(), DType.F32, 0));
        }
    }

    @Test
    void missingTensorNamesFileAndTensor() {
        Path file = TestFiles.raw(tmp.resolve("m.safetensors"), "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
                new byte[1]);
        try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> f.tensor("model.norm.weight"));
            assertTrue(e.getMessage().contains(file.toString()));
            assertTrue(e.getMessage().contains("no tensor named 'model.norm.weight'"), e.getMessage());
        }
    }

    @Test
    void missingFile() {
        fails(tmp.resolve("absent.safetensors"), "file not found");
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 7})
    void fileShorterThanHeaderLength(int size) {
        Path file = TestFiles.bytes(tmp.resolve("short.safetensors"), new byte[size]);
        fails(file, "file is " + size + " bytes, too short");
    }

    @Test
    void headerLengthBeyondFile() {
        Path file = TestFiles.raw(tmp.resolve("h.safetensors"), 1000, "{}".getBytes(StandardCharsets.UTF_8), new byte[10]);
        fails(file, "header length 1000 extends beyond the end of the file (20 bytes");
    }

    @Test
    void absurdHeaderLengths() {
        fails(TestFiles.raw(tmp.resolve("a.safetensors"), 200_000_000L, new byte[4], new byte[0]),
                "header length 200000000 is beyond the 100000000-byte limit");
        fails(TestFiles.raw(tmp.resolve("b.safetensors"), -1L, new byte[4], new byte[0]),
                "header length 18446744073709551615 is beyond");
    }

    @Test
    void headerNotJson() {
        fails(TestFiles.raw(tmp.resolve("j.safetensors"), "this is not json", new byte[0]), "invalid JSON");
        fails(TestFiles.raw(tmp.resolve("k.safetensors"), "{\"a\":{\"dtype\":\"F32\"", new byte[0]), "invalid JSON");
        fails(TestFiles.raw(tmp.resolve("l.safetensors"), "{} {}", new byte[0]), "invalid JSON");
        fails(TestFiles.raw(tmp.resolve("z.safetensors"), "", new byte[0]), "expected a JSON object");
    }

    @Test
    void headerNotAnObject() {
        fails(TestFiles.raw(tmp.resolve("arr.safetensors"), "[1, 2, 3]", new byte[0]),
                "expected a JSON object at the top level, got array");
    }

    @Test
    void headerNotUtf8() {
        byte[] header = {'{', '"', (byte) 0xC3, (byte) 0x28, '"', ':', '1', '}'};
        fails(TestFiles.raw(tmp.resolve("u.safetensors"), header.length, header, new byte[0]), "header is not valid UTF-8");
    }

    @Test
    void duplicateTensorNames() {
        fails(TestFiles.raw(tmp.resolve("d.safetensors"), """
                {"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},
                 "a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}""", new byte[2]), "invalid JSON", "Duplicate");
    }

    @Test
    void entryNotAnObject() {
        fails(TestFiles.raw(tmp.resolve("n.safetensors"), "{\"w\": [0, 4]}", new byte[4]),
                "tensor 'w'", "entry must be a JSON object");
    }

    @Test
    void unknownDtype() {
        fails(TestFiles.raw(tmp.resolve("dt.safetensors"),
                "{\"w\":{\"dtype\":\"F8_E5M2\",\"shape\":[4],\"data_offsets\":[0,4]}}", new byte[4]),
                "tensor 'w'", "unknown dtype 'F8_E5M2'");
        fails(TestFiles.raw(tmp.resolve("dt2.safetensors"),
                "{\"w\":{\"dtype\":4,\"shape\":[4],\"data_offsets\":[0,4]}}", new byte[4]),
                "tensor 'w'", "'dtype' must be a string");
    }

    @Test
    void badShapes() {
        fails(TestFiles.raw(tmp.resolve("s1.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[-4],\"data_offsets\":[0,4]}}", new byte[4]),
                "tensor 'w'", "shape[0] must be a non-negative integer, got -4");
        fails(TestFiles.raw(tmp.resolve("s2.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"shape\":4,\"data_offsets\":[0,4]}}", new byte[4]),
                "tensor 'w'", "'shape' must be a list");
        fails(TestFiles.raw(tmp.resolve("s3.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[2.0, 2],\"data_offsets\":[0,4]}}", new byte[4]),
                "shape[0] must be a non-negative integer");
        fails(TestFiles.raw(tmp.resolve("s4.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[\"4\"],\"data_offsets\":[0,4]}}", new byte[4]),
                "shape[0] must be a non-negative integer");
        fails(TestFiles.raw(tmp.resolve("s5.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}", new byte[4]),
                "shape[0] must be a non-negative integer");
        fails(TestFiles.raw(tmp.resolve("s6.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,4]}}", new byte[4]),
                "'shape' must be a list");
    }

    @Test
    void elementCountOverflow() {
        fails(TestFiles.raw(tmp.resolve("o.safetensors"),
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}", new byte[4]),
                "tensor 'w'", "overflows");
        // elements fit a long but bytes do not
        fails(TestFiles.raw(tmp.resolve("o2.safetensors"),
                "{\"w\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}", new byte[4]),
                "tensor 'w'", "overflows");
    }

    @Test
    void malformedOffsets() {
        fails(TestFiles.raw(tmp.resolve("f1.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0]}}", new byte[4]),
                "tensor 'w'", "'data_offsets' must be [begin, end]");
        fails(TestFiles.raw(tmp.resolve("f2.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[-1,3]}}", new byte[4]),
                "tensor 'w'", "data_offsets begin must be a non-negative integer");
        fails(TestFiles.raw(tmp.resolve("f3.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":\"0-4\"}}", new byte[4]),
                "'data_offsets' must be [begin, end]");
    }

    @Test
    void outOfRangeOffsets() {
        fails(TestFiles.raw(tmp.resolve("r1.safetensors"),
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", new byte[16]),
                "tensor 'w'", "data_offsets [8, 24] are outside the data section of 16 bytes");
        fails(TestFiles.raw(tmp.resolve("r2.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[9,5]}}", new byte[16]),
                "tensor 'w'", "data_offsets [9, 5] are outside the data section");
        fails(TestFiles.raw(tmp.resolve("r3.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[9223372036854775800,9223372036854775804]}}",
                new byte[16]), "outside the data section of 16 bytes");
    }

    @Test
    void byteCountMustMatchShapeAndDtype() {
        fails(TestFiles.raw(tmp.resolve("bc.safetensors"),
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", new byte[16]),
                "tensor 'w'", "hold 12 bytes but F32 [2, 2] needs 16");
        fails(TestFiles.raw(tmp.resolve("bc2.safetensors"),
                "{\"w\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,8]}}", new byte[16]),
                "hold 8 bytes but BF16 [3] needs 6");
    }

    @Test
    void overlappingTensors() {
        fails(TestFiles.raw(tmp.resolve("ov.safetensors"), """
                {"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},
                 "b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}""", new byte[24]),
                "tensors 'a' [0, 16) and 'b' [8, 24) overlap");
        // one inside another, listed in reverse order
        fails(TestFiles.raw(tmp.resolve("ov2.safetensors"), """
                {"inner":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},
                 "outer":{"dtype":"U8","shape":[16],"data_offsets":[0,16]}}""", new byte[16]),
                "'outer' [0, 16) and 'inner' [4, 6) overlap");
        // identical ranges
        fails(TestFiles.raw(tmp.resolve("ov3.safetensors"), """
                {"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},
                 "b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}""", new byte[4]), "overlap");
    }

    @Test
    void gapsBetweenTensorsAreAllowed() {
        Path file = TestFiles.raw(tmp.resolve("gap.safetensors"), """
                {"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},
                 "b":{"dtype":"U8","shape":[2],"data_offsets":[6,8]}}""", new byte[] {1, 2, 0, 0, 0, 0, 3, 4, 9});
        try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
            assertEquals(3, f.tensor("b").data().get(ValueLayout.JAVA_BYTE, 0));
        }
    }

    @Test
    void quantizedByteSizeRules() {
        // Q8_0 [2, 64]: 2 rows x 2 blocks x 34 bytes = 136
        Path ok = TestFiles.raw(tmp.resolve("q8.safetensors"),
                "{\"q\":{\"dtype\":\"Q8_0\",\"shape\":[2,64],\"data_offsets\":[0,136]},"
                        + "\"q4\":{\"dtype\":\"Q4_0\",\"shape\":[3,32],\"data_offsets\":[136,190]}}", new byte[190]);
        try (SafeTensorsFile f = SafeTensorsFile.open(ok)) {
            assertEquals(DType.Q8_0, f.tensor("q").dtype());
            assertArrayEquals(new long[] {2, 64}, f.tensor("q").shape());
            assertEquals(136, f.tensor("q").byteSize());
            assertEquals(54, f.tensor("q4").byteSize());
        }
        fails(TestFiles.raw(tmp.resolve("q8b.safetensors"),
                "{\"q\":{\"dtype\":\"Q8_0\",\"shape\":[2,64],\"data_offsets\":[0,128]}}", new byte[136]),
                "tensor 'q'", "hold 128 bytes but Q8_0 [2, 64] needs 136");
        fails(TestFiles.raw(tmp.resolve("q8c.safetensors"),
                "{\"q\":{\"dtype\":\"Q8_0\",\"shape\":[4,48],\"data_offsets\":[0,204]}}", new byte[204]),
                "tensor 'q'", "Q8_0 needs the last dimension to be a multiple of 32, shape is [4, 48]");
        fails(TestFiles.raw(tmp.resolve("q8d.safetensors"),
                "{\"q\":{\"dtype\":\"Q4_0\",\"shape\":[],\"data_offsets\":[0,18]}}", new byte[18]),
                "Q4_0 needs the last dimension to be a multiple of 32");
    }

    @Test
    void badMetadata() {
        fails(TestFiles.raw(tmp.resolve("md.safetensors"), "{\"__metadata__\":{\"format\":1}}", new byte[0]),
                "__metadata__ entry 'format' must be a string");
        fails(TestFiles.raw(tmp.resolve("md2.safetensors"), "{\"__metadata__\":[\"pt\"]}", new byte[0]),
                "__metadata__ must be a JSON object of strings");
    }

    @Test
    void ownedArenaIsClosedIdempotently() {
        Path file = TestFiles.raw(tmp.resolve("c.safetensors"), "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}",
                new byte[] {5, 6, 7, 8});
        SafeTensorsFile f = SafeTensorsFile.open(file);
        MemorySegment data = f.tensor("a").data();
        assertEquals(6, data.get(ValueLayout.JAVA_BYTE, 1));
        f.close();
        f.close();
        assertFalse(data.scope().isAlive());
        assertThrows(IllegalStateException.class, () -> data.get(ValueLayout.JAVA_BYTE, 1));
    }

    @Test
    void borrowedArenaOutlivesTheFile() {
        Path file = TestFiles.raw(tmp.resolve("c.safetensors"), "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}",
                new byte[] {5, 6, 7, 8});
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment data;
            try (SafeTensorsFile f = SafeTensorsFile.open(file, arena)) {
                data = f.tensor("a").data();
            }
            assertEquals(8, data.get(ValueLayout.JAVA_BYTE, 3), "closing the file must not close a borrowed arena");
        }
    }

    @Test
    void failedOpenDoesNotCloseBorrowedArena() {
        Path bad = TestFiles.bytes(tmp.resolve("bad.safetensors"), new byte[3]);
        try (Arena arena = Arena.ofShared()) {
            assertThrows(ModelFormatException.class, () -> SafeTensorsFile.open(bad, arena));
            assertTrue(arena.scope().isAlive());
        }
    }
}
