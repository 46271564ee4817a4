package ai.k2j.cli;

import ai.k2j.loaders.Checkpoint;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.GenerationConfig;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.RopeScaling;
import ai.k2j.loaders.Tensor;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import java.util.stream.Stream;

/** {@code k2j info}: what a model directory holds, from its config and the tensors actually present. */
final class InfoCommand implements Command {

    static final VerbSpec SPEC = new VerbSpec("info", "describe a model", List.of(
            Flag.required("model", "DIR", "HF-style model directory; prints architecture, sizes, rope, parameter"
                    + " count (from the tensors present), dtypes, bytes, shards and whether a tokenizer is there")),
            null);

    @Override
    public VerbSpec spec() {
        return SPEC;
    }

    @Override
    public int run(Args args, PrintStream out, PrintStream err) {
        args.path("model");
        args.finish();
        Path dir = Cli.modelDir(args);
        try (Checkpoint ckpt = Checkpoint.open(dir)) {
            ModelConfig c = ckpt.config();
            long params = 0;
            Map<DType, long[]> byType = new EnumMap<>(DType.class); // {tensors, bytes}
            for (String name : ckpt.tensorNames()) {
                Tensor t = ckpt.tensor(name);
                params += t.elements();
                long[] s = byType.computeIfAbsent(t.dtype(), k -> new long[2]);
                s[0]++;
                s[1] += t.byteSize();
            }
            List<Path> shards = ckpt.gguf().isPresent() ? List.of(dir) : shards(dir);

            row(out, "model", dir.toString());
            row(out, "format", ckpt.format());
            row(out, "architecture", c.architecture() + " (model_type " + c.modelType() + ")");
            row(out, "layers", Integer.toString(c.numLayers()));
            row(out, "heads", c.numHeads() + " query, " + c.numKvHeads() + " key/value (group " + c.groupSize() + ")");
            row(out, "head dim", Integer.toString(c.headDim()));
            row(out, "hidden", Integer.toString(c.hiddenSize()));
            row(out, "intermediate", Integer.toString(c.intermediateSize()));
            row(out, "vocab", Integer.toString(c.vocabSize()));
            row(out, "max positions", Integer.toString(c.maxPositionEmbeddings()));
            row(out, "rope", "theta " + num(c.ropeTheta()) + ", scaling " + scaling(c.ropeScaling()));
            row(out, "rms norm eps", num(c.rmsNormEps()));
            row(out, "tied embeddings", c.tieWordEmbeddings() ? "yes" : "no");
            String implied = params == c.parameterCount() ? ""
                    : " (config implies " + c.parameterCount() + ")";
            row(out, "parameters", Cli.count(params) + " (" + params + ")" + implied);
            if (c.moe() != null) {
                var m = c.moe();
                row(out, "experts", m.numExperts() + " per MoE layer, " + m.expertsPerToken() + " per token (width "
                        + m.expertIntermediateSize() + (m.normTopkProb() ? ", top-k renormalized" : "") + "), "
                        + IntStream.range(0, c.numLayers()).filter(c::isMoeLayer).count() + " of " + c.numLayers()
                        + " layers");
            }
            var ds = c.deepseek();
            if (ds != null) {
                row(out, "attention", "MLA: " + (ds.hasQLora() ? "q_lora_rank " + ds.qLoraRank() : "no q LoRA")
                        + ", kv_lora_rank " + ds.kvLoraRank() + ", qk nope/rope " + ds.qkNopeHeadDim() + "/"
                        + ds.qkRopeHeadDim() + ", v " + ds.vHeadDim() + "; cache " + ds.latentWidth()
                        + " floats per token and layer (expanded: " + c.numHeads() * (ds.qkHeadDim() + ds.vHeadDim())
                        + ")");
                row(out, "experts", ds.routedExperts() + " routed per MoE layer, " + ds.expertsPerToken()
                        + " per token (width " + ds.moeIntermediateSize() + "), " + ds.sharedExperts() + " shared, "
                        + "sigmoid routing in " + ds.topkGroup() + " of " + ds.nGroup() + " groups, scaling "
                        + num(ds.routedScalingFactor()) + "; " + IntStream.range(0, c.numLayers())
                        .filter(ds::isMoeLayer).count() + " of " + c.numLayers() + " layers"
                        + (ds.isFp8() ? "; FP8 blocks " + ds.fp8BlockRows() + "x" + ds.fp8BlockCols() : ""));
            }
            long active = c.activeParameterCount();
            row(out, "active params", Cli.count(active) + " (" + active + ") per token"
                    + (c.moe() != null ? ", from the config: the router's top " + c.moe().expertsPerToken()
                    + " experts" : ds != null && ds.routedExperts() > 0 ? ", from the config: the router's top "
                    + ds.expertsPerToken() + " experts and " + ds.sharedExperts() + " shared"
                    : ", all of them (dense)"));
            row(out, "tensors", Integer.toString(ckpt.tensorNames().size()));
            for (var e : byType.entrySet()) {
                row(out, "dtype " + e.getKey().safetensorsName(),
                        e.getValue()[0] + " tensors, " + Cli.bytes(e.getValue()[1]) + " (" + e.getValue()[1] + " bytes)");
            }
            row(out, "total bytes", Cli.bytes(ckpt.totalBytes()) + " (" + ckpt.totalBytes() + " bytes)");
            row(out, "shards", shards.size() + ": " + shards.stream()
                    .map(p -> p.getFileName() + " (" + Cli.bytes(size(p)) + ")").collect(Collectors.joining(", ")));
            GenerationConfig g = ckpt.generationConfig();
            int[] eos = g.eosTokenIds().length > 0 ? g.eosTokenIds() : c.eosTokenIds();
            row(out, "eos ids", eos.length == 0 ? "none" : Arrays.stream(eos).mapToObj(Integer::toString)
                    .collect(Collectors.joining(", ")));
            row(out, "sampling", g.doSample()
                    ? String.format(Locale.ROOT, "temperature %s, top_p %s, top_k %d (generation_config.json)",
                    num(g.temperature()), num(g.topP()), g.topK())
                    : "greedy (generation_config.json has no do_sample: true)");
            boolean tok = Files.isRegularFile(dir.resolve("tokenizer.json"));
            var gguf = ckpt.gguf().map(m -> m.file());
            if (gguf.isPresent() && gguf.get().has("tokenizer.ggml.tokens")) {
                row(out, "tokenizer", "GGUF metadata (tokenizer.ggml.model " + gguf.get().string("tokenizer.ggml.model")
                        + ", pre " + (gguf.get().has("tokenizer.ggml.pre") ? gguf.get().string("tokenizer.ggml.pre")
                        : "default") + ", " + gguf.get().strings("tokenizer.ggml.tokens").size() + " tokens)");
            } else row(out, "tokenizer", tok ? "tokenizer.json" + (Files.isRegularFile(dir.resolve("tokenizer_config.json"))
                    ? " + tokenizer_config.json" : "") : "none");
        }
        return 0;
    }

    private static void row(PrintStream out, String key, String value) {
        out.printf(Locale.ROOT, "%-16s %s%n", key, value);
    }

    private static String scaling(RopeScaling s) {
        if (s.isDefault()) {
            return "none";
        }
        StringBuilder b = new StringBuilder(s.type()).append(" factor ").append(num(s.factor()));
        if (s.originalMaxPositionEmbeddings() > 0) {
            b.append(", original max positions ").append(s.originalMaxPositionEmbeddings());
        }
        if (!Double.isNaN(s.lowFreqFactor())) {
            b.append(", low/high freq factor ").append(num(s.lowFreqFactor())).append('/')
                    .append(num(s.highFreqFactor()));
        }
        return b.toString();
    }

    /** 1000000.0 → "1000000", 1e-6 → "1.0E-6". */
    private static String num(double v) {
        return v == Math.rint(v) && Math.abs(v) < 1e15 ? Long.toString((long) v) : Double.toString(v);
    }

    private static List<Path> shards(Path dir) {
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> p.getFileName().toString().endsWith(".safetensors")).sorted().toList();
        } catch (IOException e) {
            throw new UncheckedIOException(dir + ": cannot list: " + e.getMessage(), e);
        }
    }

    private static long size(Path p) {
        try {
            return Files.size(p);
        } catch (IOException e) {
            return -1;
        }
    }
}
