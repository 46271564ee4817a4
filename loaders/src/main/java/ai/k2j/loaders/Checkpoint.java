package ai.k2j.loaders;

import com.fasterxml.jackson.databind.JsonNode;

import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.SortedSet;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A model directory: config.json, optional generation_config.json, and its weights in one
 * {@code model.safetensors} or shards listed by {@code model.safetensors.index.json}. All shards are mapped
 * into one shared {@link java.lang.foreign.Arena}; {@link #close()} unmaps them (tensors become invalid).
 *
 * <p>Like HF transformers, a {@code model.safetensors} is preferred over an index when both exist. With an index,
 * every tensor of {@code weight_map} must be in the shard it names, and no tensor may appear in two shards;
 * tensors present in a listed shard but missing from {@code weight_map} are still loaded (HF loads whole shards).
 *
 * <p>Immutable once opened: reads are safe from any thread until {@link #close()}.
 */
public final class Checkpoint implements AutoCloseable {

    static final String SINGLE_FILE = "model.safetensors";
    static final String INDEX_FILE = "model.safetensors.index.json";

    private final Path dir;
    private final ModelConfig config;
    private final GenerationConfig generationConfig;
    private final Map<String, Tensor> tensors; // sorted, unmodifiable
    private final long totalBytes;
    private final Arena arena;
    /** The GGUF file this checkpoint was read from, or null for a safetensors directory. */
    private final GgufModel gguf;
    private final AtomicBoolean closed = new AtomicBoolean();

    private Checkpoint(Path dir, ModelConfig config, GenerationConfig generationConfig, Map<String, Tensor> tensors,
                       Arena arena) {
        this(dir, config, generationConfig, tensors, arena, null);
    }

    private Checkpoint(Path dir, ModelConfig config, GenerationConfig generationConfig, Map<String, Tensor> tensors,
                       Arena arena, GgufModel gguf) {
        this.gguf = gguf;
        this.dir = dir;
        this.config = config;
        this.generationConfig = generationConfig;
        this.tensors = tensors;
        this.arena = arena;
        long total = 0;
        for (Tensor t : tensors.values()) {
            if (t.packing() == null) { // an AWQ/GPTQ layer's weight is its qweight, already counted
                total += t.byteSize();
            }
        }
        this.totalBytes = total;
    }

    /**
     * Opens and validates every safetensors file of the directory, or a single GGUF file (its metadata read as
     * the config, its tensors under HF names: {@link GgufModel}).
     */
    public static Checkpoint open(Path dir) {
        if (Files.isRegularFile(dir) && GgufFile.isGguf(dir)) {
            return openGguf(dir);
        }
        if (!Files.isDirectory(dir)) {
            throw new ModelFormatException(dir + ": not a directory (expected a model directory with config.json"
                    + " and safetensors weights)");
        }
        ModelConfig config = ModelConfig.read(dir.resolve("config.json"));
        GenerationConfig generation = GenerationConfig.read(dir.resolve("generation_config.json"));
        Arena arena = Arena.ofShared();
        try {
            Map<String, Tensor> tensors;
            if (ModelFiles.present(dir.resolve(SINGLE_FILE))) {
                tensors = new TreeMap<>(SafeTensorsFile.open(dir.resolve(SINGLE_FILE), arena).tensors());
            } else if (ModelFiles.present(dir.resolve(INDEX_FILE))) {
                tensors = openShards(dir, arena);
            } else {
                throw new ModelFormatException(dir + ": no weights: neither " + SINGLE_FILE + " nor " + INDEX_FILE
                        + " is present");
            }
            if (tensors.isEmpty()) {
                throw new ModelFormatException(dir + ": no weights: the safetensors files hold no tensors");
            }
            String configFile = dir.resolve("config.json").toString();
            PackedInt.Config packed = PackedInt.config(Json.parseObject(Json.readFile(dir.resolve("config.json")),
                    configFile), configFile);
            if (packed != null) {
                tensors = PackedInt.addPackedWeights(tensors, packed, dir.toString());
            }
            return new Checkpoint(dir, config, generation, Collections.unmodifiableMap(tensors), arena);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static Checkpoint openGguf(Path file) {
        Arena arena = Arena.ofShared();
        try {
            GgufModel model = GgufModel.of(GgufFile.open(file, arena), arena);
            return new Checkpoint(file, model.config(), model.generationConfig(), model.tensors(), arena, model);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** The GGUF model this checkpoint was read from (metadata, tokenizer), if it is one. */
    public Optional<GgufModel> gguf() {
        return Optional.ofNullable(gguf);
    }

    /**
     * The weight file format: "safetensors (BF16 ×n, ...)" by tensor dtype, or the GGUF description
     * ({@link GgufModel#describe}).
     */
    public String format() {
        if (gguf != null) {
            return gguf.describe();
        }
        Map<DType, Integer> counts = new TreeMap<>();
        for (Tensor t : tensors.values()) {
            counts.merge(t.dtype(), 1, Integer::sum);
        }
        StringBuilder sb = new StringBuilder("safetensors (");
        String sep = "";
        for (Map.Entry<DType, Integer> e : counts.entrySet()) {
            sb.append(sep).append(e.getKey()).append(" ×").append(e.getValue());
            sep = ", ";
        }
        return sb.append(" tensors)").toString();
    }

    private static Map<String, Tensor> openShards(Path dir, Arena arena) {
        Path indexFile = dir.resolve(INDEX_FILE);
        String src = indexFile.toString();
        JsonNode root = Json.parseObject(Json.readFile(indexFile), src);
        JsonNode weightMapNode = root.get("weight_map");
        if (weightMapNode == null) {
            throw new ModelFormatException(src + ": 'weight_map' is missing");
        }
        Map<String, String> weightMap = Json.stringMap(weightMapNode, "weight_map", src);
        if (weightMap.isEmpty()) {
            throw new ModelFormatException(src + ": no weights: 'weight_map' is empty");
        }

        // Open each distinct shard once, in first-mention order.
        Map<String, SafeTensorsFile> shards = new LinkedHashMap<>();
        for (Map.Entry<String, String> e : weightMap.entrySet()) {
            String shardName = e.getValue();
            if (!shards.containsKey(shardName)) {
                Path shard = resolveShard(dir, shardName, e.getKey(), src);
                String problem = ModelFiles.problem(shard);
                if (problem != null) {
                    throw new ModelFormatException(src + ": shard '" + shardName + "' (holding tensor '" + e.getKey()
                            + "') " + (ModelFiles.present(shard) ? "in " + dir + " " + problem
                            : "is missing from " + dir));
                }
                shards.put(shardName, SafeTensorsFile.open(shard, arena));
            }
        }

        Map<String, Tensor> tensors = new TreeMap<>();
        Map<String, String> shardOf = new TreeMap<>();
        for (Map.Entry<String, SafeTensorsFile> s : shards.entrySet()) {
            for (Tensor t : s.getValue().tensors().values()) {
                String previous = shardOf.putIfAbsent(t.name(), s.getKey());
                if (previous != null) {
                    throw new ModelFormatException(dir + ": tensor '" + t.name() + "' appears in two shards, '"
                            + previous + "' and '" + s.getKey() + "'");
                }
                tensors.put(t.name(), t);
            }
        }
        List<String> misplaced = new ArrayList<>();
        for (Map.Entry<String, String> e : weightMap.entrySet()) {
            if (!e.getValue().equals(shardOf.get(e.getKey()))) {
                misplaced.add(e.getKey());
            }
        }
        if (!misplaced.isEmpty()) {
            String first = misplaced.getFirst();
            String actual = shardOf.get(first);
            throw new ModelFormatException(src + ": tensor '" + first + "' is listed in shard '" + weightMap.get(first)
                    + "' but " + (actual == null ? "is absent from it" : "is in '" + actual + "'")
                    + (misplaced.size() > 1 ? " (and " + (misplaced.size() - 1) + " more tensors like it)" : ""));
        }
        return tensors;
    }

    /** Shard names are plain file names inside the model directory; anything else is rejected. */
    private static Path resolveShard(Path dir, String shardName, String tensor, String src) {
        Path name;
        try {
            name = Path.of(shardName);
        } catch (RuntimeException e) {
            name = null;
        }
        if (name == null || shardName.isEmpty() || name.isAbsolute() || name.getNameCount() != 1
                || shardName.equals("..") || shardName.equals(".")) {
            throw new ModelFormatException(src + ": shard name '" + shardName + "' (for tensor '" + tensor
                    + "') is not a plain file name in the model directory");
        }
        return dir.resolve(name);
    }

    public Path dir() {
        return dir;
    }

    public ModelConfig config() {
        return config;
    }

    public GenerationConfig generationConfig() {
        return generationConfig;
    }

    public boolean contains(String tensorName) {
        return tensors.containsKey(tensorName);
    }

    /** The tensor, or a {@link ModelFormatException} naming the directory and the missing tensor. */
    public Tensor tensor(String name) {
        checkOpen();
        Tensor t = tensors.get(name);
        if (t == null) {
            throw new ModelFormatException(dir + ": checkpoint has no tensor named '" + name + "'");
        }
        return t;
    }

    public Optional<Tensor> find(String name) {
        checkOpen();
        return Optional.ofNullable(tensors.get(name));
    }

    public SortedSet<String> tensorNames() {
        return Collections.unmodifiableSortedSet(new TreeSet<>(tensors.keySet()));
    }

    /** Total bytes of tensor data over all shards. */
    public long totalBytes() {
        return totalBytes;
    }

    /** Unmaps every shard; idempotent. Tensors obtained before become invalid (access throws). */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            arena.close();
        }
    }

    private void checkOpen() {
        if (closed.get()) {
            throw new IllegalStateException(dir + ": checkpoint is closed");
        }
    }

    @Override
    public String toString() {
        return "Checkpoint[" + dir + ", " + tensors.size() + " tensors, " + totalBytes + " bytes]";
    }
}
