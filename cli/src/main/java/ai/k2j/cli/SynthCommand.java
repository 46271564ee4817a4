package ai.k2j.cli;

import ai.k2j.loaders.DType;
import ai.k2j.loaders.SafeTensorsWriter;
import ai.k2j.tokenizer.Tokenizer;

import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.core.util.Separators;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.math.BigDecimal;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.stream.IntStream;
import java.util.stream.Stream;

/**
 * {@code k2j synth}: a checkpoint of a published architecture (Qwen2.5, Qwen3, Qwen3-MoE, Llama 3.x; see
 * {@link SynthPreset}) with random weights, for tests and benchmarks of models nobody needs to download.
 *
 * <p>Memory: one off-heap pool of seeded N(0, 0.02)-ish values, as large as the largest tensor plus some slack,
 * is generated once; every weight and bias is a slice of it at its own pseudo-random offset, and norm weights
 * share one vector of ones. So a 7B model needs ~1.1 GB (bf16) of memory, never the whole model, and the writer
 * streams the slices to disk. The price: tensors are shifted windows of one random sequence, not independent
 * draws, which is irrelevant for speed and for checking an engine against a reference on the same files.
 */
final class SynthCommand implements Command {

    static final double INIT_STD = 0.02;
    /** Slack past the largest tensor so slices start at distinct offsets. */
    static final long POOL_SLACK = 1 << 20;
    private static final int CHUNK = 1 << 20;
    /** Indented like transformers' save_pretrained output: {@code "key": value}, arrays one item per line. */
    private static final DefaultPrettyPrinter HF_STYLE = new DefaultPrettyPrinter()
            .withSeparators(Separators.createDefaultInstance()
                    .withObjectFieldValueSpacing(Separators.Spacing.AFTER))
            .withArrayIndenter(DefaultIndenter.SYSTEM_LINEFEED_INSTANCE);

    static final VerbSpec SPEC = new VerbSpec("synth", "random-weight checkpoint", List.of(
            Flag.required("preset", "NAME", String.join(", ", SynthPreset.ALL.keySet()) + ", "
                    + String.join(", ", DeepseekPreset.ALL.keySet())),
            Flag.required("out", "DIR", "directory to create (must not already hold a model)"),
            Flag.option("dtype", "bf16|f16|f32", "bf16", "weight dtype"),
            Flag.option("seed", "S", "0", "random seed; the same seed gives the same files"),
            Flag.option("tokenizer", "PATH", null, "model directory or tokenizer.json to copy in (with"
                    + " tokenizer_config.json); tiny takes the tokenizer's vocabulary size, the others keep the"
                    + " preset's"),
            Flag.option("max-shard-gb", "G", "4", "shard above G GB (10^9 bytes) as HF does")),
            "Weights are random (normal, std 0.02), norms 1; config.json follows the published Qwen2.5-*-Instruct"
                    + " config; generation_config.json asks for greedy decoding.");

    @Override
    public VerbSpec spec() {
        return SPEC;
    }

    @Override
    public int run(Args args, PrintStream out, PrintStream err) {
        String presetName = args.required("preset");
        SynthPreset preset = SynthPreset.ALL.get(presetName);
        DeepseekPreset deepseek = DeepseekPreset.ALL.get(presetName);
        if (preset == null && deepseek == null) {
            throw new UsageException("unknown preset '" + presetName + "' (known: "
                    + String.join(", ", SynthPreset.ALL.keySet()) + ", "
                    + String.join(", ", DeepseekPreset.ALL.keySet()) + ")");
        }
        Path outDir = args.path("out");
        DType dtype = switch (args.string("dtype", "bf16")) {
            case "bf16" -> DType.BF16;
            case "f16" -> DType.F16;
            case "f32" -> DType.F32;
            default -> throw new UsageException("--dtype must be bf16, f16 or f32, got '" + args.string("dtype", "")
                    + "'");
        };
        long seed = args.longValue("seed", 0);
        Path tokenizerPath = args.has("tokenizer") ? args.path("tokenizer") : null;
        double shardGb = args.decimal("max-shard-gb", 4);
        if (!(shardGb > 0) || Double.isInfinite(shardGb)) {
            throw new UsageException("--max-shard-gb must be > 0, got " + args.string("max-shard-gb", ""));
        }
        args.finish();
        long maxShardBytes = Math.max(1, (long) (shardGb * 1e9));

        // ---- tokenizer: sets tiny's vocabulary and the eos/bos ids; must fit the others' vocabulary
        Tokenizer tokenizer = null;
        Path tokenizerJson = null;
        if (tokenizerPath != null) {
            tokenizerJson = Files.isDirectory(tokenizerPath) ? tokenizerPath.resolve("tokenizer.json") : tokenizerPath;
            if (!Files.isRegularFile(tokenizerJson)) {
                throw new IllegalArgumentException("tokenizer not found: " + tokenizerJson);
            }
            tokenizer = Tokenizer.load(tokenizerPath);
            if (deepseek != null) {
                if (tokenizer.vocabSize() > deepseek.vocab()) {
                    throw new IllegalArgumentException("tokenizer " + tokenizerJson + " has " + tokenizer.vocabSize()
                            + " tokens, more than " + deepseek.name() + "'s vocabulary of " + deepseek.vocab());
                }
            } else if (preset.name().equals("tiny")) {
                preset = preset.withVocab(tokenizer.vocabSize());
            } else if (tokenizer.vocabSize() > preset.vocab()) {
                throw new IllegalArgumentException("tokenizer " + tokenizerJson + " has " + tokenizer.vocabSize()
                        + " tokens, more than " + preset.name() + "'s vocabulary of " + preset.vocab());
            }
        }
        int[] eos;
        int bos;
        if (deepseek != null) {
            eos = new int[] {deepseek.eos()};
            bos = deepseek.bos();
        } else {
            eos = eosIds(preset, tokenizer);
            bos = preset.family().equals("llama") ? SynthPreset.LLAMA_BOS
                    : preset.vocab() > SynthPreset.BOS ? SynthPreset.BOS : eos[eos.length - 1];
        }

        prepareOutDir(outDir);
        List<TensorSpec> specs = deepseek != null ? deepseek.tensors() : tensors(preset);
        String name = deepseek != null ? deepseek.name() : preset.name();
        long params = specs.stream().mapToLong(TensorSpec::elements).sum();
        long totalBytes = dtype.bytesFor(params);
        err.printf(Locale.ROOT, "[k2j] synth %s: %s parameters, %s, %s -> %s%n", name, Cli.count(params),
                dtype.safetensorsName(), Cli.bytes(totalBytes), outDir);

        long t0 = System.nanoTime();
        long poolElements = specs.stream().filter(s -> s.kind != Kind.ONES).mapToLong(TensorSpec::elements).max()
                .orElse(0) + POOL_SLACK;
        try (Arena arena = Arena.ofShared()) {
            err.printf(Locale.ROOT, "[k2j] generating a %s pool of random values (seed %d)%n",
                    Cli.bytes(dtype.bytesFor(poolElements)), seed);
            MemorySegment pool = randomPool(arena, poolElements, dtype, seed);
            // norms over hidden and (q/k) head_dim, or DeepSeek's q/kv LoRA ranks
            int onesLength = deepseek != null ? deepseek.widestNorm() : Math.max(preset.hidden(), preset.headDim());
            MemorySegment ones = arena.allocate(dtype.bytesFor(onesLength), 8);
            fill(ones, 0, onesLength, dtype, i -> 1f);

            List<SafeTensorsWriter.Entry> entries = new ArrayList<>(specs.size());
            for (int i = 0; i < specs.size(); i++) {
                TensorSpec s = specs.get(i);
                MemorySegment data;
                if (s.kind == Kind.ONES) {
                    data = ones.asSlice(0, dtype.bytesFor(s.elements()));
                } else {
                    long offset = Long.remainderUnsigned(mix(seed ^ mix(i + 1)), poolElements - s.elements() + 1);
                    data = pool.asSlice(dtype.bytesFor(offset), dtype.bytesFor(s.elements()));
                }
                entries.add(new SafeTensorsWriter.Entry(s.name, dtype, s.shape, data));
            }
            err.printf(Locale.ROOT, "[k2j] writing %d tensors (shards of at most %s GB)%n", entries.size(),
                    BigDecimal.valueOf(shardGb).stripTrailingZeros().toPlainString());
            SafeTensorsWriter.writeCheckpoint(outDir, entries, maxShardBytes);
        }

        writeJson(outDir.resolve("config.json"),
                deepseek != null ? deepseek.configJson(dtype) : configJson(preset, dtype, bos, eos));
        writeJson(outDir.resolve("generation_config.json"), generationConfigJson(bos, eos));
        if (tokenizerJson != null) {
            copy(tokenizerJson, outDir.resolve("tokenizer.json"));
            Path tc = tokenizerJson.resolveSibling("tokenizer_config.json");
            if (Files.isRegularFile(tc)) {
                copy(tc, outDir.resolve("tokenizer_config.json"));
            }
        }
        err.printf(Locale.ROOT, "[k2j] done in %.1f s%n", (System.nanoTime() - t0) / 1e9);
        return 0;
    }

    // ------------------------------------------------------------------ the checkpoint's layout

    enum Kind { RANDOM, ONES }

    record TensorSpec(String name, long[] shape, Kind kind) {
        long elements() {
            long n = 1;
            for (long d : shape) {
                n = Math.multiplyExact(n, d);
            }
            return n;
        }
    }

    /**
     * The tensor names and shapes ([out, in] for linear weights) the hub publishes for the preset's class: Qwen2 with
     * q/k/v biases; Qwen3 with q_norm/k_norm and no biases; Qwen3-MoE with a router and one tensor per expert per
     * projection; Llama without biases.
     */
    static List<TensorSpec> tensors(SynthPreset p) {
        long h = p.hidden(), q = (long) p.heads() * p.headDim(), kv = (long) p.kvHeads() * p.headDim();
        long ff = p.intermediate(), v = p.vocab();
        boolean qkNorm = p.family().startsWith("qwen3");
        List<TensorSpec> t = new ArrayList<>();
        t.add(new TensorSpec("model.embed_tokens.weight", new long[] {v, h}, Kind.RANDOM));
        for (int l = 0; l < p.layers(); l++) {
            String pre = "model.layers." + l + ".";
            t.add(new TensorSpec(pre + "input_layernorm.weight", new long[] {h}, Kind.ONES));
            t.add(new TensorSpec(pre + "self_attn.q_proj.weight", new long[] {q, h}, Kind.RANDOM));
            if (p.qwen2()) {
                t.add(new TensorSpec(pre + "self_attn.q_proj.bias", new long[] {q}, Kind.RANDOM));
            }
            t.add(new TensorSpec(pre + "self_attn.k_proj.weight", new long[] {kv, h}, Kind.RANDOM));
            if (p.qwen2()) {
                t.add(new TensorSpec(pre + "self_attn.k_proj.bias", new long[] {kv}, Kind.RANDOM));
            }
            t.add(new TensorSpec(pre + "self_attn.v_proj.weight", new long[] {kv, h}, Kind.RANDOM));
            if (p.qwen2()) {
                t.add(new TensorSpec(pre + "self_attn.v_proj.bias", new long[] {kv}, Kind.RANDOM));
            }
            t.add(new TensorSpec(pre + "self_attn.o_proj.weight", new long[] {h, q}, Kind.RANDOM));
            if (qkNorm) {
                t.add(new TensorSpec(pre + "self_attn.q_norm.weight", new long[] {p.headDim()}, Kind.ONES));
                t.add(new TensorSpec(pre + "self_attn.k_norm.weight", new long[] {p.headDim()}, Kind.ONES));
            }
            t.add(new TensorSpec(pre + "post_attention_layernorm.weight", new long[] {h}, Kind.ONES));
            if (p.experts() > 0) {
                long eff = p.moeIntermediate();
                t.add(new TensorSpec(pre + "mlp.gate.weight", new long[] {p.experts(), h}, Kind.RANDOM));
                for (int e = 0; e < p.experts(); e++) {
                    String ex = pre + "mlp.experts." + e + ".";
                    t.add(new TensorSpec(ex + "gate_proj.weight", new long[] {eff, h}, Kind.RANDOM));
                    t.add(new TensorSpec(ex + "up_proj.weight", new long[] {eff, h}, Kind.RANDOM));
                    t.add(new TensorSpec(ex + "down_proj.weight", new long[] {h, eff}, Kind.RANDOM));
                }
            } else {
                t.add(new TensorSpec(pre + "mlp.gate_proj.weight", new long[] {ff, h}, Kind.RANDOM));
                t.add(new TensorSpec(pre + "mlp.up_proj.weight", new long[] {ff, h}, Kind.RANDOM));
                t.add(new TensorSpec(pre + "mlp.down_proj.weight", new long[] {h, ff}, Kind.RANDOM));
            }
        }
        t.add(new TensorSpec("model.norm.weight", new long[] {h}, Kind.ONES));
        if (!p.tie()) {
            t.add(new TensorSpec("lm_head.weight", new long[] {v, h}, Kind.RANDOM));
        }
        return t;
    }

    /** <|im_end|> and <|endoftext|> when the vocabulary has them (Qwen ids, or the tokenizer's), else the last id. */
    static int[] eosIds(SynthPreset p, Tokenizer tokenizer) {
        if (p.family().equals("llama")) {
            return SynthPreset.LLAMA_EOS.clone();
        }
        if (tokenizer != null && p.name().equals("tiny")) {
            var imEnd = tokenizer.id("<|im_end|>");
            var end = tokenizer.id("<|endoftext|>");
            if (imEnd.isPresent() && end.isPresent()) {
                return new int[] {imEnd.getAsInt(), end.getAsInt()};
            }
            return new int[] {p.vocab() - 1};
        }
        return p.vocab() > SynthPreset.EOS_CHAT ? new int[] {SynthPreset.EOS_CHAT, SynthPreset.BOS}
                : new int[] {p.vocab() - 1};
    }

    /** config.json in the classic HF form (rope_theta at the top level), as the published checkpoints ship it. */
    static ObjectNode configJson(SynthPreset p, DType dtype, int bos, int[] eos) {
        ObjectNode c = Cli.JSON.createObjectNode();
        c.putArray("architectures").add(p.architecture());
        if (!p.qwen2()) {
            c.put("attention_bias", false);
        }
        c.put("attention_dropout", 0.0);
        c.put("bos_token_id", bos);
        if (p.family().equals("llama")) {
            var e = c.putArray("eos_token_id");
            for (int id : eos) {
                e.add(id);
            }
        } else {
            c.put("eos_token_id", eos[0]);
        }
        if (p.experts() > 0) {
            c.put("decoder_sparse_step", 1);
        }
        if (!p.qwen2()) {
            c.put("head_dim", p.headDim());
        }
        c.put("hidden_act", "silu");
        c.put("hidden_size", p.hidden());
        c.put("initializer_range", INIT_STD);
        c.put("intermediate_size", p.intermediate());
        c.put("max_position_embeddings", p.maxPositions());
        if (!p.family().equals("llama")) {
            c.put("max_window_layers", p.maxWindowLayers());
        }
        if (p.family().equals("llama")) {
            c.put("mlp_bias", false);
        }
        if (p.experts() > 0) {
            c.putArray("mlp_only_layers");
        }
        c.put("model_type", switch (p.family()) {
            case "qwen3" -> "qwen3";
            case "qwen3_moe" -> "qwen3_moe";
            case "llama" -> "llama";
            default -> "qwen2";
        });
        if (p.experts() > 0) {
            c.put("moe_intermediate_size", p.moeIntermediate());
            c.put("norm_topk_prob", true);
        }
        c.put("num_attention_heads", p.heads());
        if (p.experts() > 0) {
            c.put("num_experts", p.experts());
            c.put("num_experts_per_tok", p.expertsPerToken());
        }
        c.put("num_hidden_layers", p.layers());
        c.put("num_key_value_heads", p.kvHeads());
        c.put("rms_norm_eps", p.rmsNormEps());
        if (p.llama3RopeFactor() > 0) {
            ObjectNode r = c.putObject("rope_scaling");
            r.put("factor", p.llama3RopeFactor());
            r.put("high_freq_factor", 4.0);
            r.put("low_freq_factor", 1.0);
            r.put("original_max_position_embeddings", SynthPreset.LLAMA_ORIGINAL_POSITIONS);
            r.put("rope_type", "llama3");
        } else {
            c.putNull("rope_scaling");
        }
        c.put("rope_theta", p.ropeTheta());
        if (p.qwen2()) {
            c.put("sliding_window", p.slidingWindow());
        } else if (!p.family().equals("llama")) {
            c.putNull("sliding_window");
        }
        c.put("tie_word_embeddings", p.tie());
        c.put("torch_dtype", switch (dtype) {
            case BF16 -> "bfloat16";
            case F16 -> "float16";
            default -> "float32";
        });
        c.put("transformers_version", p.qwen2() ? "4.43.1" : "4.51.0");
        c.put("use_cache", true);
        if (!p.family().equals("llama")) {
            c.put("use_sliding_window", false);
        }
        c.put("vocab_size", p.vocab());
        return c;
    }

    static ObjectNode generationConfigJson(int bos, int[] eos) {
        ObjectNode g = Cli.JSON.createObjectNode();
        g.put("bos_token_id", bos);
        g.put("pad_token_id", bos);
        g.put("do_sample", false);
        var e = g.putArray("eos_token_id");
        for (int id : eos) {
            e.add(id);
        }
        g.put("transformers_version", "4.43.1");
        return g;
    }

    // ------------------------------------------------------------------ random values

    /**
     * Seeded values, deterministic whatever the thread count: chunk c always starts from the same generator
     * state. Filled in parallel, so {@code arena} must be a shared one.
     */
    static MemorySegment randomPool(Arena arena, long elements, DType dtype, long seed) {
        MemorySegment pool = arena.allocate(dtype.bytesFor(elements), 64);
        long chunks = (elements + CHUNK - 1) / CHUNK;
        IntStream.range(0, Math.toIntExact(chunks)).parallel().forEach(c -> {
            long start = (long) c * CHUNK;
            int n = (int) Math.min(CHUNK, elements - start);
            long[] state = {mix(seed * 0x9E3779B97F4A7C15L + c + 1)};
            fill(pool, start, n, dtype, i -> normalish(state) * (float) INIT_STD);
        });
        return pool;
    }

    interface FloatAt {
        float at(int i);
    }

    private static void fill(MemorySegment seg, long start, int n, DType dtype, FloatAt value) {
        for (int i = 0; i < n; i++) {
            float f = value.at(i);
            long idx = start + i;
            switch (dtype) {
                case F32 -> seg.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, idx, f);
                case F16 -> seg.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, idx, Float.floatToFloat16(f));
                case BF16 -> seg.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, idx, toBf16(f));
                default -> throw new IllegalArgumentException("synth writes bf16, f16 or f32, not " + dtype);
            }
        }
    }

    /** Round-to-nearest-even float32 → bfloat16 (what torch's .to(torch.bfloat16) does for finite values). */
    static short toBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        int rounding = ((bits >>> 16) & 1) + 0x7FFF;
        return (short) ((bits + rounding) >>> 16);
    }

    /** Mean 0, variance 1: a sum of four 16-bit uniforms (Irwin–Hall), close enough to normal for init. */
    private static float normalish(long[] state) {
        long x = state[0] += 0x9E3779B97F4A7C15L;
        x = mix(x);
        float sum = (x & 0xFFFF) + ((x >>> 16) & 0xFFFF) + ((x >>> 32) & 0xFFFF) + (x >>> 48);
        // each term is uniform on [0, 65536): mean 32767.5, variance 65536²/12
        return (sum / 65536f - 2f + 4f / 131072f) * 1.7320508f;
    }

    /** SplitMix64's finalizer. */
    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    // ------------------------------------------------------------------ files

    private static void prepareOutDir(Path dir) {
        try {
            if (Files.exists(dir)) {
                if (!Files.isDirectory(dir)) {
                    throw new IllegalArgumentException(dir + " exists and is not a directory");
                }
                try (Stream<Path> s = Files.list(dir)) {
                    var model = s.map(p -> p.getFileName().toString())
                            .filter(n -> n.endsWith(".safetensors") || n.equals("config.json")
                                    || n.equals("model.safetensors.index.json"))
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

    private static void writeJson(Path file, ObjectNode node) {
        try {
            Files.writeString(file, Cli.JSON.writer(HF_STYLE).writeValueAsString(node) + "\n");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
    }

    private static void copy(Path from, Path to) {
        try {
            Files.copy(from, to, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot copy " + from + " to " + to + ": " + e.getMessage(), e);
        }
    }
}
