package ai.k2j.engine;

import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * NumPy {@code .npy} files of float32, as far as k2j needs them: {@link #writeFloat32} writes a C-order 2-D
 * {@code <f4} array (format 1.0), {@link #readFloat32} reads 1-D or 2-D little-endian float32 C-order arrays
 * (formats 1.0–3.0). Anything else is rejected with a message naming the file.
 */
public final class Npy {

    private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
    private static final Pattern DESCR = Pattern.compile("'descr'\\s*:\\s*'([^']*)'");
    private static final Pattern FORTRAN = Pattern.compile("'fortran_order'\\s*:\\s*(True|False)");
    private static final Pattern SHAPE = Pattern.compile("'shape'\\s*:\\s*\\(([^)]*)\\)");

    private Npy() {
    }

    /** A float32 array read from a .npy file: shape and the values in C order. */
    public record Array(long[] shape, float[] data) {
        public int rows() {
            return shape.length == 1 ? 1 : (int) shape[0];
        }

        public int cols() {
            return (int) shape[shape.length - 1];
        }

        /** Row r of a 2-D array (a copy). */
        public float[] row(int r) {
            return java.util.Arrays.copyOfRange(data, r * cols(), (r + 1) * cols());
        }

        public float[][] toMatrix() {
            float[][] m = new float[rows()][];
            for (int r = 0; r < m.length; r++) {
                m[r] = row(r);
            }
            return m;
        }
    }

    /** Reads a 1-D or 2-D float32 array. */
    public static Array readFloat32(Path file) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot read: " + e.getMessage(), e);
        }
        ByteBuffer buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        if (bytes.length < 10 || !java.util.Arrays.equals(java.util.Arrays.copyOf(bytes, 6), MAGIC)) {
            throw new IllegalArgumentException(file + ": not a .npy file (bad magic)");
        }
        int major = bytes[6];
        long headerLength;
        int headerStart;
        if (major == 1) {
            headerLength = buf.getShort(8) & 0xFFFF;
            headerStart = 10;
        } else if (major == 2 || major == 3) {
            if (bytes.length < 12) {
                throw new IllegalArgumentException(file + ": truncated .npy header");
            }
            headerLength = buf.getInt(8) & 0xFFFFFFFFL;
            headerStart = 12;
        } else {
            throw new IllegalArgumentException(file + ": unsupported .npy version " + major);
        }
        if (headerStart + headerLength > bytes.length) {
            throw new IllegalArgumentException(file + ": truncated .npy header");
        }
        String header = new String(bytes, headerStart, (int) headerLength,
                major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1);
        String descr = group(DESCR, header, file, "descr");
        if (!descr.equals("<f4")) {
            throw new IllegalArgumentException(file + ": dtype '" + descr + "' is not little-endian float32 (<f4)");
        }
        if (group(FORTRAN, header, file, "fortran_order").equals("True")) {
            throw new IllegalArgumentException(file + ": Fortran-order arrays are not supported");
        }
        String[] dims = group(SHAPE, header, file, "shape").split(",");
        long[] shape = java.util.Arrays.stream(dims).map(String::trim).filter(s -> !s.isEmpty())
                .mapToLong(s -> parseDim(s, file)).toArray();
        if (shape.length < 1 || shape.length > 2) {
            throw new IllegalArgumentException(file + ": expected a 1-D or 2-D array, got shape "
                    + java.util.Arrays.toString(shape));
        }
        long count = 1;
        for (long d : shape) {
            count = Math.multiplyExact(count, d);
        }
        long dataStart = headerStart + headerLength;
        if (count > Integer.MAX_VALUE - 16 || dataStart + count * 4 != bytes.length) {
            throw new IllegalArgumentException(file + ": shape " + java.util.Arrays.toString(shape) + " needs "
                    + count * 4 + " data bytes, file has " + (bytes.length - dataStart));
        }
        float[] data = new float[(int) count];
        buf.position((int) dataStart);
        buf.asFloatBuffer().get(data);
        return new Array(shape, data);
    }

    /** Writes rows (all of one length) as a C-order float32 [rows, cols] array; atomically replaces the file. */
    public static void writeFloat32(Path file, float[][] rows) {
        int cols = rows.length == 0 ? 0 : rows[0].length;
        for (float[] row : rows) {
            if (row.length != cols) {
                throw new IllegalArgumentException("rows of different lengths (" + cols + " and " + row.length + ")");
            }
        }
        String dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + rows.length + ", " + cols + "), }";
        int unpadded = 10 + dict.length() + 1; // magic+version+length, dict, newline
        int padding = (64 - unpadded % 64) % 64;
        String header = dict + " ".repeat(padding) + "\n";
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try (OutputStream out = Files.newOutputStream(tmp)) {
            ByteBuffer head = ByteBuffer.allocate(10).order(ByteOrder.LITTLE_ENDIAN);
            head.put(MAGIC).put((byte) 1).put((byte) 0).putShort((short) header.length());
            out.write(head.array());
            out.write(header.getBytes(StandardCharsets.ISO_8859_1));
            ByteBuffer row = ByteBuffer.allocate(cols * 4).order(ByteOrder.LITTLE_ENDIAN);
            for (float[] r : rows) {
                row.clear();
                row.asFloatBuffer().put(r);
                out.write(row.array());
            }
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot write: " + e.getMessage(), e);
        }
        try {
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot write: " + e.getMessage(), e);
        }
    }

    private static String group(Pattern p, String header, Path file, String key) {
        Matcher m = p.matcher(header);
        if (!m.find()) {
            throw new IllegalArgumentException(file + ": .npy header lacks '" + key + "': " + header.trim());
        }
        return m.group(1);
    }

    private static long parseDim(String s, Path file) {
        try {
            long d = Long.parseLong(s);
            if (d < 0) {
                throw new NumberFormatException();
            }
            return d;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(file + ": bad dimension '" + s + "' in .npy shape");
        }
    }
}
