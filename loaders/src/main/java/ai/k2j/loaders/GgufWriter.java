package ai.k2j.loaders;

import java.io.IOException;
import java.io.OutputStream;
import java.io.BufferedOutputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Writes GGUF v3 files (the layout {@link GgufFile} reads): typed metadata in insertion order, then tensors, each
 * padded to the alignment. Tensor data is written as given (already in the ggml type's bytes). Used by tests and
 * tools that make GGUF files from k2j checkpoints.
 */
public final class GgufWriter {

    private record Entry(String key, int type, Object value, int elementType) {}

    private record TensorEntry(String name, GgmlType type, long[] shape, MemorySegment data) {}

    private final List<Entry> entries = new ArrayList<>();
    private final List<TensorEntry> tensors = new ArrayList<>();
    private int alignment = GgufFile.DEFAULT_ALIGNMENT;

    public GgufWriter putString(String key, String value) {
        entries.add(new Entry(key, GgufFile.T_STRING, value, -1));
        return this;
    }

    public GgufWriter putU32(String key, long value) {
        entries.add(new Entry(key, GgufFile.T_U32, value, -1));
        return this;
    }

    public GgufWriter putF32(String key, float value) {
        entries.add(new Entry(key, GgufFile.T_F32, value, -1));
        return this;
    }

    public GgufWriter putBool(String key, boolean value) {
        entries.add(new Entry(key, GgufFile.T_BOOL, value, -1));
        return this;
    }

    public GgufWriter putStrings(String key, List<String> values) {
        entries.add(new Entry(key, GgufFile.T_ARRAY, List.copyOf(values), GgufFile.T_STRING));
        return this;
    }

    public GgufWriter putI32s(String key, int[] values) {
        entries.add(new Entry(key, GgufFile.T_ARRAY, values.clone(), GgufFile.T_I32));
        return this;
    }

    /** Sets general.alignment (written as metadata when not the default 32). */
    public GgufWriter alignment(int bytes) {
        if (bytes <= 0 || Integer.bitCount(bytes) != 1) {
            throw new IllegalArgumentException("alignment must be a power of two, got " + bytes);
        }
        this.alignment = bytes;
        return this;
    }

    /** A tensor of k2j shape (outermost first) whose data is already encoded as {@code type}. */
    public GgufWriter addTensor(String name, GgmlType type, long[] shape, MemorySegment data) {
        long elements = 1;
        for (long d : shape) {
            elements = Math.multiplyExact(elements, d);
        }
        long expected = elements / type.blockSize() * type.blockBytes();
        if (shape[shape.length - 1] % type.blockSize() != 0 || data.byteSize() != expected) {
            throw new IllegalArgumentException("tensor '" + name + "': " + data.byteSize() + " bytes for " + type
                    + " of shape " + java.util.Arrays.toString(shape) + ", expected " + expected);
        }
        tensors.add(new TensorEntry(name, type, shape.clone(), data));
        return this;
    }

    /** Adds a k2j tensor under a (possibly different) name, in its own dtype. */
    public GgufWriter addTensor(String name, Tensor t) {
        return addTensor(name, GgmlType.of(t.dtype()), t.shape(), t.data());
    }

    public void write(Path file) {
        try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(file), 1 << 20)) {
            write(out);
        } catch (IOException e) {
            throw new ModelFormatException(file + ": cannot write: " + e.getMessage(), e);
        }
    }

    public void write(OutputStream raw) throws IOException {
        Counting out = new Counting(raw);
        List<Entry> all = new ArrayList<>(entries);
        if (alignment != GgufFile.DEFAULT_ALIGNMENT && entries.stream().noneMatch(e -> e.key.equals("general.alignment"))) {
            all.add(new Entry("general.alignment", GgufFile.T_U32, (long) alignment, -1));
        }
        out.i32(GgufFile.MAGIC);
        out.i32(3);
        out.i64(tensors.size());
        out.i64(all.size());
        for (Entry e : all) {
            out.string(e.key);
            out.i32(e.type);
            if (e.type == GgufFile.T_ARRAY) {
                out.i32(e.elementType);
                if (e.elementType == GgufFile.T_STRING) {
                    List<?> list = (List<?>) e.value;
                    out.i64(list.size());
                    for (Object s : list) {
                        out.string((String) s);
                    }
                } else {
                    int[] a = (int[]) e.value;
                    out.i64(a.length);
                    for (int v : a) {
                        out.i32(v);
                    }
                }
            } else {
                switch (e.type) {
                    case GgufFile.T_STRING -> out.string((String) e.value);
                    case GgufFile.T_U32 -> out.i32((int) (long) (Long) e.value);
                    case GgufFile.T_F32 -> out.i32(Float.floatToRawIntBits((Float) e.value));
                    case GgufFile.T_BOOL -> out.write((Boolean) e.value ? 1 : 0);
                    default -> throw new IllegalStateException("type " + e.type);
                }
            }
        }
        long offset = 0;
        for (TensorEntry t : tensors) {
            out.string(t.name);
            out.i32(t.shape.length);
            for (int d = t.shape.length - 1; d >= 0; d--) {
                out.i64(t.shape[d]);
            }
            out.i32(t.type.id());
            out.i64(offset);
            offset = align(offset + t.data.byteSize());
        }
        out.pad(align(out.count) - out.count);
        for (TensorEntry t : tensors) {
            long n = t.data.byteSize();
            byte[] chunk = new byte[(int) Math.min(n, 1 << 20)];
            for (long o = 0; o < n; o += chunk.length) {
                int len = (int) Math.min(chunk.length, n - o);
                MemorySegment.copy(t.data, ValueLayout.JAVA_BYTE, o, chunk, 0, len);
                out.write(chunk, 0, len);
            }
            out.pad(align(n) - n);
        }
        out.flush();
    }

    private long align(long x) {
        return (x + alignment - 1) / alignment * alignment;
    }

    private static final class Counting extends java.io.FilterOutputStream {
        long count;
        private final ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);

        Counting(OutputStream out) {
            super(out);
        }

        @Override
        public void write(int v) throws IOException {
            out.write(v);
            count++;
        }

        @Override
        public void write(byte[] a, int off, int len) throws IOException {
            out.write(a, off, len);
            count += len;
        }

        void i32(int v) throws IOException {
            write(b.clear().putInt(v).array(), 0, 4);
        }

        void i64(long v) throws IOException {
            write(b.clear().putLong(v).array(), 0, 8);
        }

        void string(String s) throws IOException {
            byte[] u = s.getBytes(StandardCharsets.UTF_8);
            i64(u.length);
            write(u, 0, u.length);
        }

        void pad(long n) throws IOException {
            for (long i = 0; i < n; i++) {
                write(0);
            }
        }
    }
}
