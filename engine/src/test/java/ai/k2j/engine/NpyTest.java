package ai.k2j.engine;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class NpyTest {

    @Test
    void roundTripsAndWritesAnAlignedVersion1Header(@TempDir Path dir) throws Exception {
        float[][] m = {{1f, -2.5f, Float.MAX_VALUE}, {0f, 1e-30f, -0f}};
        Path f = dir.resolve("m.npy");
        Npy.writeFloat32(f, m);
        byte[] bytes = Files.readAllBytes(f);
        assertEquals((byte) 0x93, bytes[0]);
        assertEquals(1, bytes[6]);
        int headerLen = ByteBuffer.wrap(bytes, 8, 2).order(ByteOrder.LITTLE_ENDIAN).getShort();
        assertEquals(0, (10 + headerLen) % 64, "numpy aligns the data to 64 bytes");
        String header = new String(bytes, 10, headerLen, StandardCharsets.ISO_8859_1);
        assertTrue(header.contains("'shape': (2, 3)") && header.endsWith("\n"), header);
        assertEquals(10 + headerLen + 24, bytes.length);
        Npy.Array a = Npy.readFloat32(f);
        assertArrayEquals(new long[] {2, 3}, a.shape());
        assertArrayEquals(m[0], a.row(0));
        assertArrayEquals(m[1], a.toMatrix()[1]);
    }

    @Test
    void readsNumpyWrittenOneDimensionalVersion2(@TempDir Path dir) throws Exception {
        String dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
        String header = dict + " ".repeat(64 - (12 + dict.length() + 1) % 64) + "\n";
        ByteBuffer b = ByteBuffer.allocate(12 + header.length() + 12).order(ByteOrder.LITTLE_ENDIAN);
        b.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0}).putInt(header.length());
        b.put(header.getBytes(StandardCharsets.ISO_8859_1)).putFloat(1).putFloat(2).putFloat(3);
        Path f = dir.resolve("v.npy");
        Files.write(f, b.array());
        Npy.Array a = Npy.readFloat32(f);
        assertArrayEquals(new long[] {3}, a.shape());
        assertArrayEquals(new float[] {1, 2, 3}, a.data());
    }

    @Test
    void rejectsOtherDtypesAndTruncatedFilesNamingTheFile(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("d.npy");
        Npy.writeFloat32(f, new float[][] {{1, 2}});
        byte[] bytes = Files.readAllBytes(f);
        String s = new String(bytes, StandardCharsets.ISO_8859_1).replace("<f4", "<f8");
        Files.write(f, s.getBytes(StandardCharsets.ISO_8859_1));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Npy.readFloat32(f));
        assertTrue(e.getMessage().contains("d.npy") && e.getMessage().contains("<f8"), e.getMessage());

        Npy.writeFloat32(f, new float[][] {{1, 2}});
        Files.write(f, java.util.Arrays.copyOf(Files.readAllBytes(f), bytes.length - 3));
        e = assertThrows(IllegalArgumentException.class, () -> Npy.readFloat32(f));
        assertTrue(e.getMessage().contains("data bytes"), e.getMessage());

        Files.write(f, new byte[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
        assertThrows(IllegalArgumentException.class, () -> Npy.readFloat32(f));
    }
}
