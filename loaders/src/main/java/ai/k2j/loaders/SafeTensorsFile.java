package ai.k2j.loaders;

import com.fasterxml.jackson.databind.JsonNode;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
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
import java.util.Optional;

/**
 * One safetensors file, memory-mapped read-only; every {@link Tensor}'s data is a zero-copy slice of the mapping.
 *
 * <p>Format: 8-byte little-endian header length N, N bytes of UTF-8 JSON
 * ({@code {"name": {"dtype": .., "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}}), then the
 * data section; offsets are relative to its start. The whole header is validated against the file size before
 * anything is mapped, so a malformed file gives a {@link ModelFormatException} naming the file, the tensor and
 * the problem, never an out-of-bounds read.
 *
 * <p>Stricter than HF where safety needs it (duplicate keys, overlapping tensors are errors); more lenient in one
 * place: gaps between tensors and trailing bytes after the last one are allowed (HF rejects them).
 *
 * <p>Quantized types (Q8_0, Q4_0) keep the logical shape; the last dimension must be a multiple of 32 and the
 * byte count is {@code elements / 32 * blockBytes}. Data is little-endian and only as aligned as the file makes
 * it: read it with unaligned layouts.
 *
 * <p>Immutable after {@link #open}; safe for concurrent reads while open.
 */
public final class SafeTensorsFile implements AutoCloseable {

    /** Largest header accepted, as in HF safetensors. */
    public static final long MAX_HEADER_BYTES = 100_000_000L;

    private static final String METADATA_KEY = "__metadata__";

    private final Path path;
    private final Arena arena;
    private final boolean ownsArena;
    private final long dataOffset;
    private final long dataBytes;
    private final Map<String, String> metadata;
    private final Map<String, Tensor> tensors;

    private SafeTensorsFile(Path path, Arena arena, boolean ownsArena, long dataOffset, long dataBytes,
                            Map<String, String> metadata, Map<String, Tensor> tensors) {
        this.path = path;
        this.arena = arena;
        this.ownsArena = ownsArena;
        this.dataOffset = dataOffset;
        this.dataBytes = dataBytes;
        this.metadata = metadata;
        this.tensors = tensors;
    }

    /** Opens the file with its own shared arena, which {@link #close()} closes (unmapping the file). */
    public static SafeTensorsFile open(Path file) {
        Arena arena = Arena.ofShared();
        try {
            return open(file, arena, true);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /**
     * Opens the file mapping it into {@code arena}; the mapping lives as long as the arena, and {@link #close()}
     * leaves the arena alone (its owner closes it).
     */
    public static SafeTensorsFile open(Path file, Arena arena) {
        return open(file, arena, false);
    }

    private static SafeTensorsFile open(Path file, Arena arena, boolean ownsArena) {
        String src = file.toString();
        ModelFiles.requireRegularFile(file);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long fileSize = ch.size();
            if (fileSize < 8) {
                throw new ModelFormatException(src + ": file is " + fileSize
                        + " bytes, too short for the 8-byte safetensors header length");
            }
            ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, lenBuf, 0, src);
            long headerLen = lenBuf.getLong(0); // u64: negative here means >= 2^63
            if (headerLen < 0 || headerLen > MAX_HEADER_BYTES) {
                throw new ModelFormatException(src + ": header length " + Long.toUnsignedString(headerLen)
                        + " is beyond the " + MAX_HEADER_BYTES + "-byte limit (not a safetensors file?)");
            }
            if (headerLen > fileSize - 8) {
                throw new ModelFormatException(src + ": header length " + headerLen
                        + " extends beyond the end of the file (" + fileSize + " bytes; truncated?)");
            }
            ByteBuffer headerBuf = ByteBuffer.allocate((int) headerLen);
            readFully(ch, headerBuf, 8, src);
            String headerText = decodeUtf8(headerBuf.flip(), src);

            long dataOffset = 8 + headerLen;
            long dataBytes = fileSize - dataOffset;
            Header header = parseHeader(headerText, dataBytes, src);

            // Only now, with every offset checked against the file size, map the file.
            MemorySegment mapping = ch.map(FileChannel.MapMode.READ_ONLY, 0, fileSize, arena);
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            for (Entry e : header.entries) {
                MemorySegment data = mapping.asSlice(dataOffset + e.begin, e.end - e.begin);
                tensors.put(e.name, new Tensor(e.name, e.dtype, e.shape, data));
            }
            return new SafeTensorsFile(file, arena, ownsArena, dataOffset, dataBytes, header.metadata,
                    Collections.unmodifiableMap(tensors));
        } catch (NoSuchFileException e) {
            throw new ModelFormatException(src + ": file not found");
        } catch (IOException e) {
            throw new ModelFormatException(src + ": cannot read: " + e, e);
        }
    }

    private static void readFully(FileChannel ch, ByteBuffer buf, long position, String src) throws IOException {
        long pos = position;
        while (buf.hasRemaining()) {
            int n = ch.read(buf, pos);
            if (n < 0) {
                throw new ModelFormatException(src + ": unexpected end of file at byte " + pos);
            }
            pos += n;
        }
    }

    private static String decodeUtf8(ByteBuffer bytes, String src) {
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(bytes).toString();
        } catch (CharacterCodingException e) {
            throw new ModelFormatException(src + ": header is not valid UTF-8", e);
        }
    }

    private record Entry(String name, DType dtype, long[] shape, long begin, long end) {
    }

    private record Header(Map<String, String> metadata, List<Entry> entries) {
    }

    /** Parses and validates the header JSON against a data section of {@code dataBytes} bytes. */
    private static Header parseHeader(String headerText, long dataBytes, String src) {
        JsonNode root = Json.parseObject(headerText, src + " (safetensors header)");
        Map<String, String> metadata = Map.of();
        List<Entry> entries = new ArrayList<>(root.size());
        for (Map.Entry<String, JsonNode> field : root.properties()) {
            String name = field.getKey();
            JsonNode node = field.getValue();
            if (name.equals(METADATA_KEY)) {
                metadata = Collections.unmodifiableMap(Json.stringMap(node, METADATA_KEY, src));
                continue;
            }
            entries.add(parseEntry(name, node, dataBytes, src));
        }
        checkOverlaps(entries, src);
        return new Header(metadata, entries);
    }

    private static Entry parseEntry(String name, JsonNode node, long dataBytes, String src) {
        String where = src + ": tensor '" + name + "'";
        if (!node.isObject()) {
            throw new ModelFormatException(where + ": entry must be a JSON object, got " + node);
        }
        JsonNode dtypeNode = node.get("dtype");
        if (dtypeNode == null || !dtypeNode.isTextual()) {
            throw new ModelFormatException(where + ": 'dtype' must be a string, got " + dtypeNode);
        }
        DType dtype = DType.fromSafetensors(dtypeNode.textValue(), where);

        JsonNode shapeNode = node.get("shape");
        if (shapeNode == null || !shapeNode.isArray()) {
            throw new ModelFormatException(where + ": 'shape' must be a list of non-negative integers, got " + shapeNode);
        }
        long[] shape = new long[shapeNode.size()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = Json.toNonNegativeLong(shapeNode.get(i), "shape[" + i + "]", where);
        }

        JsonNode offsets = node.get("data_offsets");
        if (offsets == null || !offsets.isArray() || offsets.size() != 2) {
            throw new ModelFormatException(where + ": 'data_offsets' must be [begin, end], got " + offsets);
        }
        long begin = Json.toNonNegativeLong(offsets.get(0), "data_offsets begin", where);
        long end = Json.toNonNegativeLong(offsets.get(1), "data_offsets end", where);
        if (begin > end || end > dataBytes) {
            throw new ModelFormatException(where + ": data_offsets [" + begin + ", " + end
                    + "] are outside the data section of " + dataBytes + " bytes (need 0 <= begin <= end <= "
                    + dataBytes + ")");
        }
        long expected = expectedBytes(dtype, shape, where);
        if (end - begin != expected) {
            throw new ModelFormatException(where + ": data_offsets [" + begin + ", " + end + "] hold "
                    + (end - begin) + " bytes but " + dtype + " " + Arrays.toString(shape) + " needs " + expected);
        }
        return new Entry(name, dtype, shape, begin, end);
    }

    /**
     * Bytes a tensor of this dtype and shape occupies; block-quantized types need the last dimension to be a
     * multiple of the block size. Throws {@link ModelFormatException} prefixed with {@code where}.
     */
    static long expectedBytes(DType dtype, long[] shape, String where) {
        long elements = 1;
        try {
            for (long d : shape) {
                if (d < 0) {
                    throw new ModelFormatException(where + ": negative dimension in shape " + Arrays.toString(shape));
                }
                elements = Math.multiplyExact(elements, d);
            }
            if (dtype.isQuantized()) {
                if (shape.length == 0 || shape[shape.length - 1] % dtype.blockSize() != 0) {
                    throw new ModelFormatException(where + ": " + dtype + " needs the last dimension to be a multiple of "
                            + dtype.blockSize() + ", shape is " + Arrays.toString(shape));
                }
            }
            return dtype.bytesFor(elements);
        } catch (ArithmeticException e) {
            throw new ModelFormatException(where + ": element count of shape " + Arrays.toString(shape)
                    + " overflows", e);
        }
    }

    private static void checkOverlaps(List<Entry> entries, String src) {
        List<Entry> sorted = new ArrayList<>(entries);
        sorted.removeIf(e -> e.begin == e.end); // empty tensors occupy nothing
        sorted.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        Entry last = null;
        for (Entry e : sorted) {
            if (last != null && e.begin < last.end) {
                throw new ModelFormatException(src + ": tensors '" + last.name + "' [" + last.begin + ", " + last.end
                        + ") and '" + e.name + "' [" + e.begin + ", " + e.end + ") overlap");
            }
            if (last == null || e.end > last.end) {
                last = e;
            }
        }
    }

    public Path path() {
        return path;
    }

    /** The {@code __metadata__} map (empty when the file has none). */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** All tensors by name, in the order the header lists them. */
    public Map<String, Tensor> tensors() {
        return tensors;
    }

    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    public Optional<Tensor> find(String name) {
        return Optional.ofNullable(tensors.get(name));
    }

    /** The tensor, or a {@link ModelFormatException} naming the file and the missing tensor. */
    public Tensor tensor(String name) {
        Tensor t = tensors.get(name);
        if (t == null) {
            throw new ModelFormatException(path + ": no tensor named '" + name + "'");
        }
        return t;
    }

    /** File offset of the data section (8 + header length). */
    public long dataOffset() {
        return dataOffset;
    }

    /** Size of the data section in bytes. */
    public long dataBytes() {
        return dataBytes;
    }

    /** Closes the arena when this file owns it ({@link #open(Path)}); otherwise does nothing. Idempotent. */
    @Override
    public void close() {
        if (ownsArena && arena.scope().isAlive()) {
            try {
                arena.close();
            } catch (IllegalStateException alreadyClosed) {
                // a concurrent close won the race; nothing left to do
            }
        }
    }

    @Override
    public String toString() {
        return "SafeTensorsFile[" + path + ", " + tensors.size() + " tensors]";
    }
}
