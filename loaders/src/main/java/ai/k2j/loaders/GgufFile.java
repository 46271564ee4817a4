package ai.k2j.loaders;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One GGUF file (version 2 or 3), memory-mapped read-only; every {@link Tensor}'s data is a zero-copy slice of the
 * mapping.
 *
 * <p>Format (little-endian): magic {@code GGUF}, u32 version, u64 tensor count, u64 metadata count; the metadata
 * key/value pairs (key: u64 length + UTF-8; u32 value type; value: u8..f64, bool, string, or array = u32 element
 * type + u64 count + elements); the tensor infos (name, u32 n_dims, u64 ne[n_dims] innermost first, u32 ggml
 * type, u64 offset); padding to {@code general.alignment} (default 32); the data section, each tensor at its
 * offset from the data section's start. Every length, count and offset is checked against the file's size before
 * it is used, so a truncated or corrupt file is a {@link ModelFormatException} naming the file and the field (and
 * the tensor or key), never an out-of-bounds read or a huge allocation.
 *
 * <p>Tensors keep k2j's shape order (outermost first: a ggml {@code ne = [cols, rows]} matrix is {@code [rows, cols]}).
 * Types k2j has no kernels for are refused at open, naming the tensor and the type.
 */
public final class GgufFile {

    public static final int MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
    public static final int DEFAULT_ALIGNMENT = 32;
    /** ggml's GGML_MAX_DIMS. */
    static final int MAX_DIMS = 4;

    /** Metadata value types. */
    static final int T_U8 = 0, T_I8 = 1, T_U16 = 2, T_I16 = 3, T_U32 = 4, T_I32 = 5, T_F32 = 6, T_BOOL = 7,
            T_STRING = 8, T_ARRAY = 9, T_U64 = 10, T_I64 = 11, T_F64 = 12;

    /** A tensor's entry in the file: its type and where its data lies. */
    public record TensorInfo(String name, GgmlType type, long[] ne, long offset, long bytes) {
        public TensorInfo {
            ne = ne.clone();
        }

        @Override
        public long[] ne() {
            return ne.clone();
        }
    }

    private final Path path;
    private final int version;
    private final long alignment;
    private final Map<String, Object> metadata;
    private final Map<String, TensorInfo> infos;
    private final Map<String, Tensor> tensors;

    private GgufFile(Path path, int version, long alignment, Map<String, Object> metadata,
                     Map<String, TensorInfo> infos, Map<String, Tensor> tensors) {
        this.path = path;
        this.version = version;
        this.alignment = alignment;
        this.metadata = metadata;
        this.infos = infos;
        this.tensors = tensors;
    }

    /** Whether the file starts with the GGUF magic (false for unreadable or short files). */
    public static boolean isGguf(Path file) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN);
            while (b.hasRemaining() && ch.read(b) >= 0) {
                // read until 4 bytes or end of file
            }
            return !b.hasRemaining() && b.getInt(0) == MAGIC;
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    /** Maps and validates the file; tensor data stays valid until {@code arena} closes. */
    public static GgufFile open(Path file, Arena arena) {
        ModelFiles.requireRegularFile(file);
        MemorySegment all;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            all = ch.size() == 0 ? MemorySegment.NULL : ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
        } catch (NoSuchFileException e) {
            throw new ModelFormatException(file + ": no such file");
        } catch (IOException e) {
            throw new ModelFormatException(file + ": cannot map: " + e.getMessage(), e);
        }
        return parse(file, all);
    }

    /** Parses a GGUF image already in memory (tests; the segment must outlive the returned tensors). */
    public static GgufFile parse(Path file, MemorySegment all) {
        Reader r = new Reader(file, all);
        int magic = r.i32("magic");
        if (magic != MAGIC) {
            throw new ModelFormatException(file + ": not a GGUF file (magic " + String.format("0x%08x", magic)
                    + ", expected 0x46554747 \"GGUF\")");
        }
        int version = r.i32("version");
        if (version != 2 && version != 3) {
            throw new ModelFormatException(file + ": GGUF version " + Integer.toUnsignedString(version)
                    + " is not supported (k2j reads versions 2 and 3)");
        }
        long tensorCount = r.u64("tensor_count");
        long kvCount = r.u64("metadata_kv_count");
        // every key/value takes at least 8 + 4 bytes and every tensor info at least 8 + 4 + 8 + 4 + 8
        r.checkCount(kvCount, 12, "metadata_kv_count");
        r.checkCount(tensorCount, 32, "tensor_count");

        Map<String, Object> metadata = new LinkedHashMap<>();
        for (long k = 0; k < kvCount; k++) {
            String key = r.string("metadata key #" + k);
            int type = r.i32("type of metadata '" + key + "'");
            Object value = r.value(type, "metadata '" + key + "'");
            if (metadata.putIfAbsent(key, value) != null) {
                throw new ModelFormatException(file + ": metadata key '" + key + "' appears twice");
            }
        }
        long alignment = DEFAULT_ALIGNMENT;
        Object align = metadata.get("general.alignment");
        if (align != null) {
            if (!(align instanceof Long a) || a <= 0 || Long.bitCount(a) != 1 || a > 1 << 20) {
                throw new ModelFormatException(file + ": metadata 'general.alignment' is " + align
                        + ", expected a power of two up to 2^20");
            }
            alignment = a;
        }

        List<TensorInfo> list = new ArrayList<>();
        Map<String, TensorInfo> infos = new LinkedHashMap<>();
        for (long i = 0; i < tensorCount; i++) {
            String name = r.string("name of tensor #" + i);
            String what = "tensor '" + name + "'";
            int nDims = r.i32("n_dims of " + what);
            if (nDims < 1 || nDims > MAX_DIMS) {
                throw new ModelFormatException(file + ": " + what + " has n_dims " + Integer.toUnsignedString(nDims)
                        + ", expected 1.." + MAX_DIMS);
            }
            long[] ne = new long[nDims];
            long elements = 1;
            for (int d = 0; d < nDims; d++) {
                ne[d] = r.u64("ne[" + d + "] of " + what);
                if (ne[d] <= 0 || ne[d] > Integer.MAX_VALUE) {
                    throw new ModelFormatException(file + ": " + what + " has dimension ne[" + d + "] = "
                            + Long.toUnsignedString(ne[d]) + ", expected 1.." + Integer.MAX_VALUE);
                }
                elements = multiply(elements, ne[d], file, what);
            }
            int typeId = r.i32("type of " + what);
            GgmlType type = GgmlType.of(Integer.toUnsignedLong(typeId));
            if (type == null) {
                throw new ModelFormatException(file + ": " + what + " has unknown ggml type id "
                        + Integer.toUnsignedString(typeId));
            }
            long offset = r.u64("offset of " + what);
            if (ne[0] % type.blockSize() != 0) {
                throw new ModelFormatException(file + ": " + what + " is " + type + " with " + ne[0]
                        + " values per row, not a multiple of its block size " + type.blockSize());
            }
            long bytes = multiply(elements / type.blockSize(), type.blockBytes(), file, what);
            TensorInfo info = new TensorInfo(name, type, ne, offset, bytes);
            if (infos.putIfAbsent(name, info) != null) {
                throw new ModelFormatException(file + ": tensor '" + name + "' appears twice");
            }
            list.add(info);
        }
        long dataStart = align(r.position(), alignment);
        long dataBytes = all.byteSize() - dataStart;
        if (dataBytes < 0) {
            dataBytes = 0;
        }
        for (TensorInfo t : list) {
            if (t.offset() < 0 || t.offset() % alignment != 0) {
                throw new ModelFormatException(file + ": tensor '" + t.name() + "' has offset "
                        + Long.toUnsignedString(t.offset()) + ", not a multiple of the alignment " + alignment);
            }
            if (t.offset() > dataBytes || t.bytes() > dataBytes - t.offset()) {
                throw new ModelFormatException(file + ": tensor '" + t.name() + "' (" + t.type() + " "
                        + Arrays.toString(t.ne()) + ") needs bytes [" + t.offset() + ", " + (t.offset() + t.bytes())
                        + ") of the data section, which holds " + dataBytes + " bytes (truncated file?)");
            }
        }
        List<TensorInfo> byOffset = new ArrayList<>(list);
        byOffset.sort(Comparator.comparingLong(TensorInfo::offset));
        for (int i = 1; i < byOffset.size(); i++) {
            TensorInfo a = byOffset.get(i - 1);
            TensorInfo b = byOffset.get(i);
            if (b.offset() < a.offset() + a.bytes()) {
                throw new ModelFormatException(file + ": tensors '" + a.name() + "' and '" + b.name()
                        + "' overlap in the data section");
            }
        }
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        for (TensorInfo t : list) {
            if (t.type().dtype() == null) {
                continue; // refused when asked for (tensor(name)), so a file with an unused odd tensor still opens
            }
            long[] shape = new long[t.ne().length];
            for (int d = 0; d < shape.length; d++) {
                shape[d] = t.ne()[shape.length - 1 - d];
            }
            tensors.put(t.name(), new Tensor(t.name(), t.type().dtype(), shape,
                    all.asSlice(dataStart + t.offset(), t.bytes())));
        }
        return new GgufFile(file, version, alignment, Collections.unmodifiableMap(metadata),
                Collections.unmodifiableMap(infos), Collections.unmodifiableMap(tensors));
    }

    private static long multiply(long a, long b, Path file, String what) {
        try {
            return Math.multiplyExact(a, b);
        } catch (ArithmeticException e) {
            throw new ModelFormatException(file + ": " + what + " is too large (size overflows 64 bits)");
        }
    }

    private static long align(long x, long alignment) {
        return (x + alignment - 1) / alignment * alignment;
    }

    public Path path() {
        return path;
    }

    public int version() {
        return version;
    }

    public long alignment() {
        return alignment;
    }

    /**
     * Metadata values: integers as {@link Long} (u64 above 2^63 wrap), floats as {@link Double}, {@link Boolean},
     * {@link String}, arrays as {@link List} of those.
     */
    public Map<String, Object> metadata() {
        return metadata;
    }

    /** Every tensor entry of the file, in file order (including types k2j cannot compute with). */
    public Map<String, TensorInfo> tensorInfos() {
        return infos;
    }

    /** The tensor, or an error naming the file and the tensor (missing, or of a type k2j has no kernels for). */
    public Tensor tensor(String name) {
        Tensor t = tensors.get(name);
        if (t == null) {
            TensorInfo info = infos.get(name);
            if (info != null) {
                throw new ModelFormatException(path + ": tensor '" + name + "' is " + info.type()
                        + ", which k2j does not support (GGUF types read: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)");
            }
            throw new ModelFormatException(path + ": GGUF file has no tensor named '" + name + "'");
        }
        return t;
    }

    public boolean hasTensor(String name) {
        return infos.containsKey(name);
    }

    // ---------------------------------------------------------------- typed metadata access

    public boolean has(String key) {
        return metadata.containsKey(key);
    }

    /** A required string value. */
    public String string(String key) {
        Object v = require(key);
        if (v instanceof String s) {
            return s;
        }
        throw wrongType(key, v, "a string");
    }

    /** A required integer value (any integer type). */
    public long integer(String key) {
        Object v = require(key);
        if (v instanceof Long l) {
            return l;
        }
        throw wrongType(key, v, "an integer");
    }

    /** An integer value, or {@code fallback} when absent. */
    public long integer(String key, long fallback) {
        return has(key) ? integer(key) : fallback;
    }

    /** A float value (f32 or f64; integers are accepted too), or {@code fallback} when absent. */
    public double real(String key, double fallback) {
        Object v = metadata.get(key);
        if (v == null) {
            return fallback;
        }
        if (v instanceof Double d) {
            return d;
        }
        if (v instanceof Long l) {
            return l;
        }
        throw wrongType(key, v, "a number");
    }

    public boolean bool(String key, boolean fallback) {
        Object v = metadata.get(key);
        if (v == null) {
            return fallback;
        }
        if (v instanceof Boolean b) {
            return b;
        }
        throw wrongType(key, v, "a bool");
    }

    /** A required array of strings. */
    public List<String> strings(String key) {
        List<?> list = array(key);
        List<String> out = new ArrayList<>(list.size());
        for (int i = 0; i < list.size(); i++) {
            if (!(list.get(i) instanceof String s)) {
                throw new ModelFormatException(path + ": metadata '" + key + "'[" + i + "] is not a string");
            }
            out.add(s);
        }
        return out;
    }

    /** A required array of integers, each within int range. */
    public int[] ints(String key) {
        List<?> list = array(key);
        int[] out = new int[list.size()];
        for (int i = 0; i < out.length; i++) {
            if (!(list.get(i) instanceof Long l) || l < Integer.MIN_VALUE || l > Integer.MAX_VALUE) {
                throw new ModelFormatException(path + ": metadata '" + key + "'[" + i + "] is not a 32-bit integer");
            }
            out[i] = (int) (long) l;
        }
        return out;
    }

    private List<?> array(String key) {
        Object v = require(key);
        if (v instanceof List<?> l) {
            return l;
        }
        throw wrongType(key, v, "an array");
    }

    private Object require(String key) {
        Object v = metadata.get(key);
        if (v == null) {
            throw new ModelFormatException(path + ": metadata '" + key + "' is missing");
        }
        return v;
    }

    private ModelFormatException wrongType(String key, Object v, String expected) {
        String actual = v instanceof List<?> ? "an array" : v.getClass().getSimpleName().toLowerCase();
        return new ModelFormatException(path + ": metadata '" + key + "' is " + actual + ", expected " + expected);
    }

    @Override
    public String toString() {
        return "GgufFile[" + path + ", v" + version + ", " + infos.size() + " tensors, " + metadata.size() + " keys]";
    }

    // ---------------------------------------------------------------- the bounds-checked header reader

    private static final class Reader {
        private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        /** Nested arrays deeper than this are refused (ggml writes none; a crafted file could recurse). */
        private static final int MAX_DEPTH = 4;

        final Path file;
        final MemorySegment s;
        final java.nio.charset.CharsetDecoder utf8 = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
        long pos;
        int depth;

        Reader(Path file, MemorySegment s) {
            this.file = file;
            this.s = s;
        }

        long position() {
            return pos;
        }

        private void need(long bytes, String field) {
            if (bytes > s.byteSize() - pos) {
                throw new ModelFormatException(file + ": truncated at " + field + " (byte " + pos + " needs " + bytes
                        + " more bytes, the file has " + Math.max(0, s.byteSize() - pos) + ")");
            }
        }

        /** A count of items of at least {@code minBytes} each must fit in the rest of the file. */
        void checkCount(long count, long minBytes, String field) {
            if (count < 0 || count > (s.byteSize() - pos) / minBytes) {
                throw new ModelFormatException(file + ": " + field + " " + Long.toUnsignedString(count)
                        + " cannot fit in the " + (s.byteSize() - pos) + " bytes left (truncated or corrupt header)");
            }
        }

        int i32(String field) {
            need(4, field);
            int v = s.get(I32, pos);
            pos += 4;
            return v;
        }

        long u64(String field) {
            need(8, field);
            long v = s.get(I64, pos);
            pos += 8;
            return v;
        }

        String string(String field) {
            long n = u64("length of " + field);
            if (n < 0 || n > s.byteSize() - pos) {
                throw new ModelFormatException(file + ": " + field + " has length " + Long.toUnsignedString(n)
                        + ", past the end of the file (truncated or corrupt header at byte " + pos + ")");
            }
            if (n > Integer.MAX_VALUE - 8) {
                throw new ModelFormatException(file + ": " + field + " is too long (" + n + " bytes)");
            }
            byte[] b = s.asSlice(pos, n).toArray(ValueLayout.JAVA_BYTE);
            pos += n;
            try {
                return utf8.decode(ByteBuffer.wrap(b)).toString();
            } catch (CharacterCodingException e) {
                throw new ModelFormatException(file + ": " + field + " is not valid UTF-8");
            }
        }

        Object value(int type, String field) {
            switch (type) {
                case T_U8 -> {
                    need(1, field);
                    return (long) (s.get(ValueLayout.JAVA_BYTE, pos++) & 0xFF);
                }
                case T_I8 -> {
                    need(1, field);
                    return (long) s.get(ValueLayout.JAVA_BYTE, pos++);
                }
                case T_BOOL -> {
                    need(1, field);
                    byte b = s.get(ValueLayout.JAVA_BYTE, pos++);
                    if (b != 0 && b != 1) {
                        throw new ModelFormatException(file + ": " + field + " is a bool of value " + b + " (not 0 or 1)");
                    }
                    return b == 1;
                }
                case T_U16, T_I16 -> {
                    need(2, field);
                    short v = s.get(I16, pos);
                    pos += 2;
                    return type == T_U16 ? (long) (v & 0xFFFF) : (long) v;
                }
                case T_U32 -> {
                    return Integer.toUnsignedLong(i32(field));
                }
                case T_I32 -> {
                    return (long) i32(field);
                }
                case T_F32 -> {
                    return (double) Float.intBitsToFloat(i32(field));
                }
                case T_U64, T_I64 -> {
                    return u64(field);
                }
                case T_F64 -> {
                    return Double.longBitsToDouble(u64(field));
                }
                case T_STRING -> {
                    return string(field);
                }
                case T_ARRAY -> {
                    int elementType = i32("element type of " + field);
                    long count = u64("length of " + field);
                    long min = switch (elementType) {
                        case T_U8, T_I8, T_BOOL -> 1;
                        case T_U16, T_I16 -> 2;
                        case T_U32, T_I32, T_F32 -> 4;
                        case T_U64, T_I64, T_F64, T_STRING -> 8;
                        case T_ARRAY -> 12;
                        default -> throw new ModelFormatException(file + ": " + field + " is an array of unknown type "
                                + Integer.toUnsignedString(elementType));
                    };
                    checkCount(count, min, "length of " + field);
                    if (++depth > MAX_DEPTH) {
                        throw new ModelFormatException(file + ": " + field + " nests arrays deeper than " + MAX_DEPTH);
                    }
                    List<Object> list = new ArrayList<>((int) Math.min(count, 1 << 20));
                    String element = field + " (an element)"; // not one label per element: arrays hold 150k tokens
                    for (long i = 0; i < count; i++) {
                        list.add(value(elementType, element));
                    }
                    depth--;
                    return Collections.unmodifiableList(list);
                }
                default -> throw new ModelFormatException(file + ": " + field + " has unknown value type "
                        + Integer.toUnsignedString(type));
            }
        }
    }
}
