package ai.k2j.loaders;

import ai.k2j.loaders.SafeTensorsWriter.Entry;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Damaged files must only ever produce a {@link ModelFormatException} naming the file (or open fine when the damage
 * hit tensor bytes or kept the header valid): never another exception, never a read outside the file.
 */
class SafeTensorsFuzzTest {

    @TempDir
    Path tmp;

    private byte[] valid;
    private int headerEnd;

    @BeforeEach
    void writeValidFile() throws IOException {
        Path file = tmp.resolve("valid.safetensors");
        try (Arena arena = Arena.ofConfined()) {
            SafeTensorsWriter.write(file, List.of(
                    new Entry("model.embed_tokens.weight", DType.BF16, new long[] {8, 16}, TestFiles.floats(arena, DType.BF16, 128, 0.1f)),
                    new Entry("model.norm.weight", DType.F32, new long[] {16}, TestFiles.floats(arena, DType.F32, 16, 1f)),
                    new Entry("lm_head.q8", DType.Q8_0, new long[] {2, 32}, TestFiles.pattern(arena, 68, 3)),
                    new Entry("f16", DType.F16, new long[] {3}, TestFiles.floats(arena, DType.F16, 3, 2f)),
                    new Entry("ids", DType.I64, new long[] {2}, TestFiles.pattern(arena, 16, 5)),
                    new Entry("flags", DType.U8, new long[] {5}, TestFiles.pattern(arena, 5, 7))),
                    Map.of("format", "pt"));
        }
        valid = Files.readAllBytes(file);
        headerEnd = 8 + (int) ByteBuffer.wrap(valid, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
    }

    /** Opens the bytes; returns true when they opened (and every tensor byte was readable). */
    private boolean openOrFailCleanly(byte[] bytes, String what) {
        Path file = TestFiles.bytes(tmp.resolve("fuzz.safetensors"), bytes);
        // a confined arena: closing a shared one costs a thread handshake per iteration
        try (Arena arena = Arena.ofConfined(); SafeTensorsFile f = SafeTensorsFile.open(file, arena)) {
            long fileBytes = bytes.length;
            for (Tensor t : f.tensors().values()) {
                long sum = 0;
                for (long i = 0; i < t.byteSize(); i++) {
                    sum += t.data().get(ValueLayout.JAVA_BYTE, i);
                }
                assertTrue(t.byteSize() <= fileBytes - f.dataOffset(), what);
                assertTrue(sum > Long.MIN_VALUE);
            }
            return true;
        } catch (ModelFormatException e) {
            assertTrue(e.getMessage().contains(file.toString()), () -> what + ": message must name the file: " + e.getMessage());
            return false;
        } catch (Throwable t) {
            fail(what + ": expected ModelFormatException or success, got " + t, t);
            return false;
        }
    }

    @Test
    void everyTruncationIsAModelFormatException() {
        for (int len = 0; len < valid.length; len++) {
            byte[] cut = Arrays.copyOf(valid, len);
            int n = len;
            assertThrows(ModelFormatException.class, () -> SafeTensorsFile.open(TestFiles.bytes(tmp.resolve("t.safetensors"), cut)),
                    () -> "truncated to " + n + " of " + valid.length + " bytes");
        }
        assertTrue(openOrFailCleanly(valid, "the untouched file"));
    }

    @Test
    void randomCorruptionNeverEscapesAsAnotherException() {
        SplittableRandom rnd = new SplittableRandom(20261122);
        byte[] interesting = "{}[]\",:-0123456789eE.tfn \\u\u0000".getBytes(java.nio.charset.StandardCharsets.ISO_8859_1);
        int opened = 0;
        int rejected = 0;
        for (int iter = 0; iter < 2000; iter++) {
            byte[] b = valid.clone();
            int edits = 1 + rnd.nextInt(4);
            StringBuilder what = new StringBuilder("iteration " + iter + ":");
            for (int k = 0; k < edits; k++) {
                // mostly hit the header, where the structure is
                int pos = rnd.nextInt(10) < 8 ? rnd.nextInt(headerEnd) : rnd.nextInt(b.length);
                byte value = switch (rnd.nextInt(3)) {
                    case 0 -> (byte) rnd.nextInt(256);
                    case 1 -> interesting[rnd.nextInt(interesting.length)];
                    default -> (byte) (b[pos] ^ (1 << rnd.nextInt(8)));
                };
                what.append(" [").append(pos).append("]=").append(value);
                b[pos] = value;
            }
            if (rnd.nextInt(8) == 0) { // and sometimes cut the tail too
                int len = rnd.nextInt(b.length + 1);
                b = Arrays.copyOf(b, len);
                what.append(" cut to ").append(len);
            }
            if (openOrFailCleanly(b, what.toString())) {
                opened++;
            } else {
                rejected++;
            }
        }
        assertTrue(rejected > 1200, "the corruption should mostly be caught, rejected only " + rejected);
        assertTrue(opened > 30, "some corruptions (e.g. in tensor bytes) leave a valid file, opened only " + opened);
    }

    @Test
    void corruptHeaderLengthFieldValues() {
        long[] lengths = {0, 1, 2, 7, headerEnd - 9, headerEnd - 7, headerEnd, valid.length - 8, valid.length - 7,
                valid.length, Integer.MAX_VALUE, 0xFFFF_FFFFL, SafeTensorsFile.MAX_HEADER_BYTES,
                SafeTensorsFile.MAX_HEADER_BYTES + 1, Long.MAX_VALUE, Long.MIN_VALUE, -1};
        for (long len : lengths) {
            byte[] b = valid.clone();
            ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, len);
            // header length valid+/-: either still JSON with spaces, or rejected; never anything else
            openOrFailCleanly(b, "header length " + len);
        }
        // shrinking the header into the padding still parses; cutting into the JSON does not
        byte[] b = valid.clone();
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, headerEnd - 8 - 20);
        assertThrows(ModelFormatException.class, () -> SafeTensorsFile.open(TestFiles.bytes(tmp.resolve("h.safetensors"), b)));
    }

    @Test
    void headerWithOnlyGarbageBytes() {
        SplittableRandom rnd = new SplittableRandom(7);
        for (int iter = 0; iter < 300; iter++) {
            byte[] header = new byte[rnd.nextInt(1, 200)];
            for (int i = 0; i < header.length; i++) {
                header[i] = (byte) rnd.nextInt(256);
            }
            header[0] = '{';
            ByteBuffer bb = ByteBuffer.allocate(8 + header.length + 32).order(ByteOrder.LITTLE_ENDIAN);
            bb.putLong(header.length).put(header);
            assertEquals(false, openOrFailCleanly(bb.array(), "garbage header " + iter));
        }
    }

    @Test
    void deeplyNestedJsonIsRejectedCleanly() {
        String deep = "{\"a\":".repeat(5000) + "1" + "}".repeat(5000);
        byte[] h = deep.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        ByteBuffer bb = ByteBuffer.allocate(8 + h.length).order(ByteOrder.LITTLE_ENDIAN);
        bb.putLong(h.length).put(h);
        assertEquals(false, openOrFailCleanly(bb.array(), "deep nesting"));
    }
}
