package ai.k2j.loaders;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * Writes safetensors files (used by {@code k2j synth} and {@code k2j quantize}). Data is streamed from
 * off-heap segments, never gathered on the heap; files are written to a temporary name and renamed, so a
 * crash never leaves a truncated file under the final name.
 *
 * <p>The output is the standard format HF {@code safetensors} reads: header padded with spaces to a multiple of
 * 8 bytes, tensors contiguous from offset 0 to the end of the file, laid out in HF's order (widest dtype first,
 * then by name) so every tensor starts at an offset aligned to its element size and, for HF's own dtypes, the file
 * is byte-for-byte what HF {@code safetensors.torch.save_file} writes for the same tensors and metadata. Entries are validated first: names unique and non-empty, bytes matching
 * dtype and shape ({@code elements / 32 * blockBytes} for Q8_0/Q4_0, whose last dimension must be a multiple of 32);
 * a bad entry is an {@link IllegalArgumentException} naming it. I/O failures are {@link UncheckedIOException}s.
 */
public final class SafeTensorsWriter {

    /** Largest slice handed to one channel write: a ByteBuffer view cannot exceed 2 GiB. */
    static final long MAX_WRITE_CHUNK = 1L << 30;

    private static final Pattern SHARD_NAME = Pattern.compile("model-\\d{5}-of-\\d{5}\\.safetensors");

    private SafeTensorsWriter() {
    }

    /** One tensor to write: its bytes must match dtype and shape exactly. */
    public record Entry(String name, DType dtype, long[] shape, MemorySegment data) {
        public Entry {
            Objects.requireNonNull(name, "name");
            Objects.requireNonNull(dtype, "dtype");
            Objects.requireNonNull(data, "data");
            shape = Objects.requireNonNull(shape, "shape").clone();
        }

        @Override
        public long[] shape() {
            return shape.clone();
        }

        /** An entry viewing an existing tensor (e.g. to copy or re-shard a checkpoint). */
        public static Entry of(Tensor t) {
            return new Entry(t.name(), t.dtype(), t.shape(), t.data());
        }
    }

    /** Writes one file with the given {@code __metadata__} (may be empty). */
    public static void write(Path file, List<Entry> tensors, Map<String, String> metadata) {
        write(file, tensors, metadata, MAX_WRITE_CHUNK);
    }

    static void write(Path file, List<Entry> tensors, Map<String, String> metadata, long chunkBytes) {
        validate(file, tensors);
        List<Entry> ordered = new ArrayList<>(tensors);
        ordered.sort(HF_ORDER);

        ObjectNode header = Json.MAPPER.createObjectNode();
        if (metadata != null && !metadata.isEmpty()) {
            ObjectNode meta = header.putObject("__metadata__");
            metadata.forEach((k, v) -> meta.put(Objects.requireNonNull(k, "metadata key"),
                    Objects.requireNonNull(v, "metadata value for " + k)));
        }
        long offset = 0;
        for (Entry e : ordered) {
            ObjectNode info = header.putObject(e.name());
            info.put("dtype", e.dtype().safetensorsName());
            ArrayNode shape = info.putArray("shape");
            for (long d : e.shape()) {
                shape.add(d);
            }
            long size = e.data().byteSize();
            info.putArray("data_offsets").add(offset).add(offset + size);
            offset += size;
        }
        byte[] json;
        try {
            json = Json.MAPPER.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot serialize safetensors header for " + file, e);
        }
        int padded = (json.length + 7) & ~7;
        ByteBuffer head = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        head.putLong(padded).put(json);
        while (head.hasRemaining()) {
            head.put((byte) ' ');
        }
        head.flip();

        writeAtomically(file, ch -> {
            writeFully(ch, head);
            for (Entry e : ordered) {
                writeSegment(ch, e.data(), chunkBytes);
            }
        });
    }

    /**
     * Streams a segment to the channel: off-heap and byte[]-backed segments are viewed as ByteBuffers directly;
     * other heap segments (float[], short[], ...) cannot be, so they pass through a small bounce buffer.
     */
    private static void writeSegment(FileChannel ch, MemorySegment data, long chunkBytes) throws IOException {
        boolean viewable = true;
        if (!data.isNative()) {
            try {
                data.asSlice(0, 0).asByteBuffer();
            } catch (UnsupportedOperationException notByteArray) {
                viewable = false;
            }
        }
        long size = data.byteSize();
        if (viewable) {
            for (long pos = 0; pos < size; pos += chunkBytes) {
                writeFully(ch, data.asSlice(pos, Math.min(chunkBytes, size - pos)).asByteBuffer());
            }
            return;
        }
        byte[] bounce = new byte[(int) Math.min(Math.min(chunkBytes, 1 << 20), Math.max(size, 1))];
        MemorySegment bounceSegment = MemorySegment.ofArray(bounce);
        for (long pos = 0; pos < size; pos += bounce.length) {
            int n = (int) Math.min(bounce.length, size - pos);
            MemorySegment.copy(data, pos, bounceSegment, 0, n);
            writeFully(ch, ByteBuffer.wrap(bounce, 0, n));
        }
    }

    /**
     * Writes {@code model.safetensors} into {@code dir}, or, when the total exceeds {@code maxShardBytes},
     * {@code model-0000i-of-0000n.safetensors} shards plus {@code model.safetensors.index.json} as HF does.
     *
     * <p>Shards are filled in entry order as HF does: a tensor that would overflow the open shard starts a new one,
     * and a tensor larger than {@code maxShardBytes} gets a dedicated shard while the open one stays open.
     * Every file carries {@code __metadata__ {"format": "pt"}}, which transformers requires. Weight files of the
     * other layout left in {@code dir} from an earlier write ({@code model.safetensors}, the index, stale
     * {@code model-NNNNN-of-NNNNN.safetensors}) are deleted so the directory holds exactly one checkpoint.
     */
    public static void writeCheckpoint(Path dir, List<Entry> tensors, long maxShardBytes) {
        if (maxShardBytes <= 0) {
            throw new IllegalArgumentException("maxShardBytes must be positive, got " + maxShardBytes);
        }
        validate(dir, tensors);
        Map<String, String> format = Map.of("format", "pt");
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create " + dir, e);
        }
        long total = 0;
        for (Entry e : tensors) {
            total += e.data().byteSize();
        }
        Set<String> keep = new HashSet<>();
        if (total <= maxShardBytes) {
            write(dir.resolve(Checkpoint.SINGLE_FILE), tensors, format);
            keep.add(Checkpoint.SINGLE_FILE);
            deleteIfExists(dir.resolve(Checkpoint.INDEX_FILE));
        } else {
            List<List<Entry>> shards = new ArrayList<>();
            List<Entry> current = new ArrayList<>();
            long currentBytes = 0;
            for (Entry e : tensors) {
                long size = e.data().byteSize();
                if (size > maxShardBytes) { // as HF: a dedicated shard, and the open shard stays open
                    shards.add(List.of(e));
                    continue;
                }
                if (!current.isEmpty() && currentBytes + size > maxShardBytes) {
                    shards.add(current);
                    current = new ArrayList<>();
                    currentBytes = 0;
                }
                current.add(e);
                currentBytes += size;
            }
            if (!current.isEmpty()) {
                shards.add(current);
            }
            if (shards.size() > 99_999) {
                throw new IllegalArgumentException(dir + ": " + shards.size() + " shards exceed the 5-digit naming");
            }
            Map<String, String> weightMap = new TreeMap<>();
            for (int i = 0; i < shards.size(); i++) {
                String name = String.format("model-%05d-of-%05d.safetensors", i + 1, shards.size());
                write(dir.resolve(name), shards.get(i), format);
                keep.add(name);
                for (Entry e : shards.get(i)) {
                    weightMap.put(e.name(), name);
                }
            }
            // A stale single file would shadow the index (it is preferred on open), so it goes first.
            deleteIfExists(dir.resolve(Checkpoint.SINGLE_FILE));
            ObjectNode index = Json.MAPPER.createObjectNode();
            index.putObject("metadata").put("total_size", total);
            ObjectNode map = index.putObject("weight_map");
            weightMap.forEach(map::put);
            byte[] json;
            try {
                json = Json.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsBytes(index);
            } catch (JsonProcessingException e) {
                throw new IllegalStateException("cannot serialize " + Checkpoint.INDEX_FILE, e);
            }
            keep.add(Checkpoint.INDEX_FILE);
            writeAtomically(dir.resolve(Checkpoint.INDEX_FILE), ch -> writeFully(ch, ByteBuffer.wrap(json)));
        }
        try (DirectoryStream<Path> files = Files.newDirectoryStream(dir)) {
            for (Path f : files) {
                String name = f.getFileName().toString();
                if (SHARD_NAME.matcher(name).matches() && !keep.contains(name)) {
                    Files.deleteIfExists(f);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot remove stale shards from " + dir, e);
        }
    }

    private static void validate(Path target, List<Entry> tensors) {
        Objects.requireNonNull(tensors, "tensors");
        Set<String> names = new HashSet<>();
        for (Entry e : tensors) {
            Objects.requireNonNull(e, "entry");
            String where = target + ": tensor '" + e.name() + "'";
            if (e.name().isEmpty() || e.name().equals("__metadata__")) {
                throw new IllegalArgumentException(where + ": invalid tensor name");
            }
            if (!names.add(e.name())) {
                throw new IllegalArgumentException(where + ": duplicate tensor name");
            }
            long expected;
            try {
                expected = SafeTensorsFile.expectedBytes(e.dtype(), e.shape(), where);
            } catch (ModelFormatException bad) {
                throw new IllegalArgumentException(bad.getMessage(), bad);
            }
            if (e.data().byteSize() != expected) {
                throw new IllegalArgumentException(where + ": data has " + e.data().byteSize() + " bytes but "
                        + e.dtype() + " " + Arrays.toString(e.shape()) + " needs " + expected);
            }
        }
    }

    /**
     * HF safetensors' layout order: dtype by its rank in safetensors' Dtype enum (declared in increasing alignment),
     * widest first, then name by UTF-8 bytes. Q8_0/Q4_0 (2-byte aligned f16 scales) go after the 2-byte types.
     */
    private static int hfRank(DType d) {
        return switch (d) {
            case BOOL -> 0;
            case U8 -> 10;
            case I8 -> 20;
            case F8_E4M3 -> 30;
            case Q4_0 -> 40;
            case Q8_0 -> 45;
            case Q4_K, Q5_K, Q6_K -> 46;
            case AWQ_INT4, GPTQ_INT4, GPTQ_INT8 -> 47;
            case I16 -> 50;
            case F16 -> 70;
            case BF16 -> 80;
            case I32 -> 90;
            case F32 -> 110;
            case F64 -> 120;
            case I64 -> 130;
        };
    }

    private static final Comparator<Entry> HF_ORDER = Comparator.comparingInt((Entry e) -> -hfRank(e.dtype()))
            .thenComparing((a, b) -> Arrays.compareUnsigned(a.name().getBytes(StandardCharsets.UTF_8),
                    b.name().getBytes(StandardCharsets.UTF_8)));

    @FunctionalInterface
    private interface ChannelWriter {
        void write(FileChannel ch) throws IOException;
    }

    private static void writeAtomically(Path file, ChannelWriter body) {
        Path dir = file.toAbsolutePath().getParent();
        Path tmp = null;
        try {
            tmp = Files.createTempFile(dir, "." + file.getFileName() + ".", ".tmp");
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                body.write(ch);
                ch.force(true);
            }
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            tmp = null;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file, e);
        } finally {
            if (tmp != null) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException ignored) {
                    // the write already failed; that error is the one to report
                }
            }
        }
    }

    private static void writeFully(FileChannel ch, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) {
            ch.write(buf);
        }
    }

    private static void deleteIfExists(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot delete " + p, e);
        }
    }
}
