package ai.k2j.testing;

import ai.k2j.loaders.DType;
import ai.k2j.loaders.SafeTensorsWriter;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Small random Qwen2 checkpoints written to disk (config.json + model.safetensors, F32), optionally with the demo
 * models' 8192-token tokenizer, for engine, server and scaffold tests. Public so other test packages use it.
 */
public final class TestCheckpoints {

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private TestCheckpoints() {
    }

    /** The repository root (surefire sets k2j.repoRoot). */
    public static Path repoRoot() {
        String root = System.getProperty("k2j.repoRoot");
        return root == null ? Path.of("").toAbsolutePath().getParent() : Path.of(root);
    }

    /**
     * The real Qwen tokenizer directory: {@code -Dk2j.qwenTokenizer=DIR} when set, else the copy committed under
     * testdata/qwen-tokenizer. Throws naming the place looked in when tokenizer.json is not there.
     */
    public static Path qwenTokenizer() {
        String prop = System.getProperty("k2j.qwenTokenizer");
        Path dir = prop != null && !prop.isBlank() ? Path.of(prop)
                : repoRoot().toAbsolutePath().normalize().resolve("testdata/qwen-tokenizer");
        if (!Files.isRegularFile(dir.resolve("tokenizer.json"))) {
            throw new AssertionError("Qwen tokenizer.json not found in " + dir + (prop != null
                    ? " (from -Dk2j.qwenTokenizer)" : " (committed test data; -Dk2j.qwenTokenizer=DIR points elsewhere)"));
        }
        return dir;
    }

    /** models/demo/draft: a trained 8192-token model with a tokenizer, committed to the repository. */
    public static Path demoDraft() {
        Path dir = repoRoot().resolve("models/demo/draft");
        if (!Files.isRegularFile(dir.resolve("model.safetensors"))) {
            throw new IllegalStateException("demo draft model not found at " + dir + " (k2j.repoRoot="
                    + System.getProperty("k2j.repoRoot") + ")");
        }
        return dir;
    }

    /**
     * Writes a random model to {@code dir}: hidden {@code hidden}, {@code layers} layers, 4 heads / 2 KV heads,
     * vocabulary {@code vocab} (8192 with {@code withDemoTokenizer}, whose tokenizer files are copied), eos
     * {@code vocab − 1} unless {@code eos} is given. Returns dir.
     */
    public static Path write(Path dir, int hidden, int layers, int vocab, long seed, boolean withDemoTokenizer,
                             int... eos) {
        int heads = 4;
        int kvHeads = 2;
        int headDim = hidden / heads;
        int inter = hidden * 3 / 2;
        int[] eosIds = eos.length == 0 ? new int[] {vocab - 1} : eos;
        try {
            Files.createDirectories(dir);
            Files.writeString(dir.resolve("config.json"), String.format(Locale.ROOT, """
                    {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": %d,
                     "intermediate_size": %d, "num_hidden_layers": %d, "num_attention_heads": %d,
                     "num_key_value_heads": %d, "vocab_size": %d, "max_position_embeddings": 1024,
                     "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": true, "dtype": "float32",
                     "eos_token_id": %s}
                    """, hidden, inter, layers, heads, kvHeads, vocab, java.util.Arrays.toString(eosIds)));
            if (withDemoTokenizer) {
                if (vocab != 8192) {
                    throw new IllegalArgumentException("the demo tokenizer has 8192 tokens");
                }
                Files.copy(demoDraft().resolve("tokenizer.json"), dir.resolve("tokenizer.json"));
                Files.copy(demoDraft().resolve("tokenizer_config.json"), dir.resolve("tokenizer_config.json"));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        SplittableRandom rnd = new SplittableRandom(seed);
        List<SafeTensorsWriter.Entry> w = new ArrayList<>();
        int q = heads * headDim;
        int kv = kvHeads * headDim;
        try (Arena arena = Arena.ofConfined()) {
            put(w, arena, rnd, "model.embed_tokens.weight", 1.0, 0, vocab, hidden);
            for (int l = 0; l < layers; l++) {
                String p = "model.layers." + l + ".";
                put(w, arena, rnd, p + "input_layernorm.weight", 0.1, 1, hidden);
                put(w, arena, rnd, p + "self_attn.q_proj.weight", 1.5 / Math.sqrt(hidden), 0, q, hidden);
                put(w, arena, rnd, p + "self_attn.k_proj.weight", 1.5 / Math.sqrt(hidden), 0, kv, hidden);
                put(w, arena, rnd, p + "self_attn.v_proj.weight", 1.0 / Math.sqrt(hidden), 0, kv, hidden);
                put(w, arena, rnd, p + "self_attn.q_proj.bias", 0.2, 0, q);
                put(w, arena, rnd, p + "self_attn.k_proj.bias", 0.2, 0, kv);
                put(w, arena, rnd, p + "self_attn.v_proj.bias", 0.2, 0, kv);
                put(w, arena, rnd, p + "self_attn.o_proj.weight", 1.0 / Math.sqrt(q), 0, hidden, q);
                put(w, arena, rnd, p + "post_attention_layernorm.weight", 0.1, 1, hidden);
                put(w, arena, rnd, p + "mlp.gate_proj.weight", 1.0 / Math.sqrt(hidden), 0, inter, hidden);
                put(w, arena, rnd, p + "mlp.up_proj.weight", 1.0 / Math.sqrt(hidden), 0, inter, hidden);
                put(w, arena, rnd, p + "mlp.down_proj.weight", 1.0 / Math.sqrt(inter), 0, hidden, inter);
            }
            put(w, arena, rnd, "model.norm.weight", 0.1, 1, hidden);
            SafeTensorsWriter.writeCheckpoint(dir, w, Long.MAX_VALUE);
        }
        return dir;
    }

    private static void put(List<SafeTensorsWriter.Entry> w, Arena arena, SplittableRandom rnd, String name,
                            double scale, double mean, long... shape) {
        long n = 1;
        for (long s : shape) {
            n *= s;
        }
        MemorySegment seg = arena.allocate(4 * n, 8);
        for (long i = 0; i < n; i++) {
            double u = 1 - rnd.nextDouble();
            double v = rnd.nextDouble();
            double g = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
            seg.set(F32, 4 * i, (float) (mean + scale * g));
        }
        w.add(new SafeTensorsWriter.Entry(name, DType.F32, shape, seg));
    }

    /** Deterministic pseudo-random ids in [0, vocab − 1) (never the default eos, vocab − 1). */
    public static int[] tokens(int n, int vocab, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = rnd.nextInt(vocab - 1);
        }
        return t;
    }

    /** "reference", plus "cpu" when the vectorized CPU backend is in the build. */
    public static List<String> backends() {
        List<String> out = new ArrayList<>(List.of("reference"));
        try {
            Class.forName("ai.k2j.kernels.cpu.CpuBackend");
            out.add("cpu");
        } catch (ClassNotFoundException e) {
            // not merged yet
        }
        return out;
    }
}
