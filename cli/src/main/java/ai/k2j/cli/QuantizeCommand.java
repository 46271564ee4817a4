package ai.k2j.cli;

import ai.k2j.engine.model.Architectures;
import ai.k2j.loaders.Checkpoint;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.SafeTensorsWriter;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.Quantizer;
import ai.k2j.loaders.WeightFormat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;

/**
 * {@code k2j quantize}: writes a Q8_0 or Q4_0 copy of a checkpoint that loads zero-copy (mmap) like any other.
 *
 * <p>What is quantized: every 2-D {@code *.weight} of the decoder layers (q/k/v/o, gate/up/down) to
 * {@code --quant}; {@code lm_head.weight}, or with tied embeddings {@code model.embed_tokens.weight} (which then is
 * the lm_head), to {@code --head-quant}, by default {@link ModelContext#lmHeadFormat} of {@code --quant} (Q8_0 for
 * both Q8_0 and Q4_0 models) — exactly what a load-time {@code --quant} computes with. An untied embedding is only
 * gathered from (one row per token) and keeps its dtype; norms and biases stay as they are. The files are k2j's safetensors:
 * dtype {@code "Q8_0"}/{@code "Q4_0"}, logical shape {@code [rows, cols]}, data the llama.cpp blocks row-major
 * (docs/performance.md). config.json gains a {@code "k2j_quantization"} object recording the choices; every other
 * file of the model directory (tokenizer, generation config) is copied.
 */
final class QuantizeCommand implements Command {

    static final VerbSpec SPEC = new VerbSpec("quantize", "write a Q8_0/Q4_0 checkpoint", List.of(
            Flag.required("model", "DIR", "source checkpoint (F32, BF16 or F16 weights)"),
            Flag.required("quant", "q8_0|q4_0", "the decoder layers' weight matrices"),
            Flag.required("out", "DIR", "directory to create (must not already hold a model)"),
            Flag.option("head-quant", "q8_0|q4_0|keep", "q8_0", "lm_head (the embedding too when tied); keep: the"
                    + " source dtype"),
            Flag.option("threads", "N", "all processors", "quantizing threads"),
            Flag.option("max-shard-gb", "G", "4", "shard above G GB (10^9 bytes) as HF does")), null);

    @Override
    public VerbSpec spec() {
        return SPEC;
    }

    @Override
    public int run(Args args, PrintStream out, PrintStream err) {
        Path modelDir = args.path("model");
        DType quant = blockFormat(args.required("quant"), "--quant");
        Path outDir = args.path("out");
        String head = args.string("head-quant", Architectures.lmHeadFormat(WeightFormat.parse(quant.name())).toString());
        DType headQuant = head.equalsIgnoreCase("keep") ? null : blockFormat(head, "--head-quant");
        int threads = Cli.intAtLeast(args, "threads", Runtime.getRuntime().availableProcessors(), 1);
        double shardGb = args.decimal("max-shard-gb", 4);
        if (!(shardGb > 0) || Double.isInfinite(shardGb)) {
            throw new UsageException("--max-shard-gb must be > 0, got " + args.string("max-shard-gb", ""));
        }
        args.finish();
        Path dir = Cli.modelDir(args);
        if (dir.toAbsolutePath().normalize().equals(outDir.toAbsolutePath().normalize())) {
            throw new IllegalArgumentException("--out must differ from --model (" + dir + ")");
        }

        long t0 = System.nanoTime();
        try (Checkpoint ckpt = Checkpoint.open(dir); Arena arena = Arena.ofShared()) {
            prepareOutDir(outDir);
            List<SafeTensorsWriter.Entry> entries = new ArrayList<>();
            long before = 0;
            long after = 0;
            int quantized = 0;
            for (String name : ckpt.tensorNames()) {
                Tensor t = ckpt.tensor(name);
                DType target = targetFor(name, t, quant, headQuant, ckpt.config().tieWordEmbeddings());
                before += t.byteSize();
                if (target == null) {
                    entries.add(SafeTensorsWriter.Entry.of(t));
                    after += t.byteSize();
                    continue;
                }
                if (t.dtype().isQuantized()) {
                    throw new IllegalArgumentException(dir + ": tensor '" + name + "' is already " + t.dtype()
                            + "; quantize from an F32, BF16 or F16 checkpoint");
                }
                if (t.dim(1) % 32 != 0) {
                    err.printf("[k2j] %s: %d columns, not a multiple of 32: kept as %s%n", name, t.dim(1), t.dtype());
                    entries.add(SafeTensorsWriter.Entry.of(t));
                    after += t.byteSize();
                    continue;
                }
                MemorySegment data = arena.allocate(Quantizer.bytesFor(target, t.dim(0), t.dim(1)), 64);
                Quantizer.quantize(t, target, data, threads);
                entries.add(new SafeTensorsWriter.Entry(name, target, t.shape(), data));
                after += data.byteSize();
                quantized++;
            }
            err.printf(Locale.ROOT, "[k2j] quantized %d matrices of %s to %s (embed/lm_head: %s): %s -> %s%n",
                    quantized, dir, quant, headQuant == null ? "kept" : headQuant, Cli.bytes(before), Cli.bytes(after));
            SafeTensorsWriter.writeCheckpoint(outDir, entries, Math.max(1, (long) (shardGb * 1e9)));
            copyOtherFiles(dir, outDir);
            writeConfig(dir, outDir, quant, headQuant, ckpt);
        }
        err.printf(Locale.ROOT, "[k2j] wrote %s in %.1f s%n", outDir, (System.nanoTime() - t0) / 1e9);
        return 0;
    }

    /** The dtype a tensor is written in, or null to copy it unchanged. */
    static DType targetFor(String name, Tensor t, DType quant, DType headQuant, boolean tied) {
        if (name.equals("lm_head.weight")) {
            return tied ? null : headQuant;
        }
        if (name.equals("model.embed_tokens.weight")) {
            return tied ? headQuant : null;
        }
        if (name.startsWith("model.layers.") && name.endsWith(".weight") && t.rank() == 2) {
            return quant;
        }
        return null;
    }

    private static DType blockFormat(String s, String flag) {
        return switch (s.toLowerCase(Locale.ROOT)) {
            case "q8_0" -> DType.Q8_0;
            case "q4_0" -> DType.Q4_0;
            default -> throw new UsageException(flag + " must be q8_0 or q4_0" + (flag.equals("--head-quant")
                    ? " or keep" : "") + ", got '" + s + "'");
        };
    }

    private static void prepareOutDir(Path dir) {
        try {
            if (Files.exists(dir)) {
                if (!Files.isDirectory(dir)) {
                    throw new IllegalArgumentException(dir + " exists and is not a directory");
                }
                try (Stream<Path> s = Files.list(dir)) {
                    var model = s.map(p -> p.getFileName().toString())
                            .filter(n -> n.endsWith(".safetensors") || n.equals("config.json"))
                            .findFirst();
                    if (model.isPresent()) {
                        throw new IllegalArgumentException(dir + " already holds a model (" + model.get()
                                + "); remove it or choose another --out");
                    }
                }
            }
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create " + dir + ": " + e.getMessage(), e);
        }
    }

    /** Tokenizer files, generation_config.json, and anything else that is not a weight file or config.json. */
    private static void copyOtherFiles(Path from, Path to) {
        try (Stream<Path> s = Files.list(from)) {
            for (Path p : s.toList()) {
                String n = p.getFileName().toString();
                if (!Files.isRegularFile(p) || n.endsWith(".safetensors") || n.equals("config.json")
                        || n.equals("model.safetensors.index.json")) {
                    continue;
                }
                Files.copy(p, to.resolve(n), StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot copy the files of " + from + " to " + to + ": " + e.getMessage(), e);
        }
    }

    private static void writeConfig(Path from, Path to, DType quant, DType headQuant, Checkpoint ckpt) {
        try {
            JsonNode config = Cli.JSON.readTree(from.resolve("config.json").toFile());
            if (!(config instanceof ObjectNode o)) {
                throw new IllegalArgumentException(from.resolve("config.json") + " is not a JSON object");
            }
            ObjectNode q = o.putObject("k2j_quantization");
            q.put("layers", quant.safetensorsName());
            String headName = headQuant == null ? "kept" : headQuant.safetensorsName();
            boolean tied = ckpt.config().tieWordEmbeddings();
            q.put("lm_head", headName + (tied ? " (tied: embed_tokens)" : ""));
            q.put("embed_tokens", tied ? headName : "kept");
            q.put("format", "llama.cpp blocks of 32, row-major; see docs/performance.md");
            Files.writeString(to.resolve("config.json"),
                    Cli.JSON.writerWithDefaultPrettyPrinter().writeValueAsString(o) + "\n");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + to.resolve("config.json") + ": " + e.getMessage(), e);
        }
    }
}
