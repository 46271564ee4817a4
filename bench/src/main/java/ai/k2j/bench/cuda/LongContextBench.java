package ai.k2j.bench.cuda;

import ai.k2j.engine.LanguageModel;
import ai.k2j.engine.ModelContext;
import ai.k2j.engine.Sequence;
import ai.k2j.engine.SpeculativeBench;
import ai.k2j.engine.model.Architectures;
import ai.k2j.engine.model.DecoderModel;
import ai.k2j.kernels.Backend;
import ai.k2j.kernels.Batch;
import ai.k2j.kernels.KvPrecision;
import ai.k2j.kernels.cuda.CudaBackend;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.RopeScaling;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.stream.IntStream;

/**
 * Decode speed of a Qwen2.5 shape at long contexts with each KV cache precision, and the cost of verifying k + 1
 * tokens, on random weights made in memory (no checkpoint files: a 32B model's 65 GB of BF16 would not fit the GPU
 * machine's disk). For tools/gpu/bench-32b.sh:
 * <pre>
 *   java ... ai.k2j.bench.cuda.LongContextBench --preset qwen2.5-32b [--backend cuda] [--contexts 1024,8192,32768]
 *            [--kv bf16,fp8] [--gen-tokens 32] [--verify-k 8] [--draft-preset qwen2.5-0.5b|none] [--layers N]
 *            [--json FILE (appended)]
 * </pre>
 * <b>Weights.</b> Every matrix is a view of one shared pool of random BF16 values (as large as the largest
 * matrix), uploaded by the backend like any checkpoint's tensor; norms are 1, biases 0. Decode speed does not
 * depend on the values.
 * <p><b>Long contexts without the prefill.</b> Each measurement claims N − 1 KV positions without computing them
 * ({@link Sequence#advanceUncomputed}: attention reads every cached key and value whatever they hold), then times
 * {@code gen-tokens} greedy decode steps (one recorded CUDA graph per step, as in generation) after a few untimed
 * ones. Bytes per token = every weight matrix once + the cache's keys and values of all layers at the mean context
 * ({@link KvPrecision#bytesPerToken} × positions); the roofline ratio divides the achieved bytes per second by the
 * device-to-device copy bandwidth measured in the same process.
 * <p><b>Verification cost.</b> At the first context and the first precision: the mean time of a forward over k + 1
 * tokens with logits (argmax) for all of them, k = 0..verify-k, each rolled back after; v(k) = t(k + 1) / t(1).
 * With a draft preset (0.5B by default, vocabulary 151,936 as the real one), its decode step time gives
 * c = t_draft / t_target, and the implied speedup at α = 0.7/0.8/0.9 is the project's bound with verify cost
 * (docs/speculative.md): τ(α, k) / (c·k + v(k)), τ = (1 − α^(k+1)) / (1 − α).
 */
public final class LongContextBench {

    private LongContextBench() {
    }

    /** Qwen2.5 shapes by name (HF's config.json values; max_position_embeddings 32768). */
    static ModelConfig preset(String name, int layersOverride) {
        int[] s = switch (name) {
            // hidden, intermediate, layers, heads, kvHeads, vocab, tied
            case "qwen2.5-0.5b" -> new int[] {896, 4864, 24, 14, 2, 151936, 1};
            case "qwen2.5-1.5b" -> new int[] {1536, 8960, 28, 12, 2, 151936, 1};
            case "qwen2.5-7b" -> new int[] {3584, 18944, 28, 28, 4, 152064, 0};
            case "qwen2.5-14b" -> new int[] {5120, 13824, 48, 40, 8, 152064, 0};
            case "qwen2.5-32b" -> new int[] {5120, 27648, 64, 40, 8, 152064, 0};
            default -> throw new IllegalArgumentException("LongContextBench: unknown preset '" + name
                    + "' (qwen2.5-0.5b, -1.5b, -7b, -14b, -32b)");
        };
        int layers = layersOverride > 0 ? layersOverride : s[2];
        return new ModelConfig("Qwen2ForCausalLM", "qwen2", s[0], s[1], layers, s[3], s[4], s[0] / s[3], s[5], 32768,
                1e-6, 1e6, RopeScaling.NONE, s[6] == 1, "bfloat16", 151643, new int[] {151645});
    }

    /** Tensor names and shapes of a Qwen2 checkpoint: every matrix a view of {@code pool}. */
    static Map<String, Tensor> weights(ModelConfig c, MemorySegment pool, Arena arena) {
        Map<String, Tensor> w = new HashMap<>();
        long[] offset = {0};
        int h = c.hiddenSize();
        java.util.function.BiConsumer<String, long[]> matrix = (name, shape) -> {
            long bytes = 2L * shape[0] * shape[1];
            long slack = pool.byteSize() - bytes;
            long at = slack <= 0 ? 0 : (offset[0] % (slack / 64 + 1)) * 64;  // varied, 64-byte aligned views
            offset[0] += 4_999_997L;
            w.put(name, new Tensor(name, DType.BF16, shape, pool.asSlice(at, bytes)));
        };
        java.util.function.BiConsumer<String, Float> vector = (name, value) -> {
            int n = name.endsWith("k_proj.bias") || name.endsWith("v_proj.bias") ? c.kvDim()
                    : name.endsWith("q_proj.bias") ? c.qDim() : h;
            MemorySegment seg = arena.allocate(4L * n, 64);
            for (int i = 0; i < n; i++) {
                seg.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, value);
            }
            w.put(name, new Tensor(name, DType.F32, new long[] {n}, seg));
        };
        matrix.accept("model.embed_tokens.weight", new long[] {c.vocabSize(), h});
        if (!c.tieWordEmbeddings()) {
            matrix.accept("lm_head.weight", new long[] {c.vocabSize(), h});
        }
        for (int l = 0; l < c.numLayers(); l++) {
            String p = "model.layers." + l + ".";
            vector.accept(p + "input_layernorm.weight", 1f);
            vector.accept(p + "post_attention_layernorm.weight", 1f);
            matrix.accept(p + "self_attn.q_proj.weight", new long[] {c.qDim(), h});
            matrix.accept(p + "self_attn.k_proj.weight", new long[] {c.kvDim(), h});
            matrix.accept(p + "self_attn.v_proj.weight", new long[] {c.kvDim(), h});
            vector.accept(p + "self_attn.q_proj.bias", 0f);
            vector.accept(p + "self_attn.k_proj.bias", 0f);
            vector.accept(p + "self_attn.v_proj.bias", 0f);
            matrix.accept(p + "self_attn.o_proj.weight", new long[] {h, c.qDim()});
            matrix.accept(p + "mlp.gate_proj.weight", new long[] {c.intermediateSize(), h});
            matrix.accept(p + "mlp.up_proj.weight", new long[] {c.intermediateSize(), h});
            matrix.accept(p + "mlp.down_proj.weight", new long[] {h, c.intermediateSize()});
        }
        vector.accept("model.norm.weight", 1f);
        return w;
    }

    /** The largest matrix's bytes: the pool every matrix views. */
    static long poolBytes(ModelConfig c) {
        long h = c.hiddenSize();
        return 2L * Math.max((long) c.vocabSize() * h, (long) c.intermediateSize() * h);
    }

    /** Random BF16 values (uniform, std ~0.02), filled in parallel, deterministic. */
    static MemorySegment pool(long bytes, Arena arena) {
        MemorySegment seg = arena.allocate(bytes, 4096);
        long n = bytes / 2;
        long chunk = 1 << 20;
        IntStream.range(0, (int) ((n + chunk - 1) / chunk)).parallel().forEach(ci -> {
            long state = (ci + 1) * 0x9E3779B97F4A7C15L;
            long end = Math.min(n, (ci + 1) * chunk);
            for (long i = ci * chunk; i < end; i++) {
                state = state * 6364136223846793005L + 1442695040888963407L;
                float v = ((state >>> 40) / (float) (1 << 24) - 0.5f) * 0.07f;
                seg.set(ValueLayout.JAVA_SHORT_UNALIGNED, 2 * i, (short) (Float.floatToRawIntBits(v) >>> 16));
            }
        });
        return seg;
    }

    /** Bytes of every matrix read once per decode token (as DecodeBench counts them). */
    static long weightBytesPerToken(ModelConfig c) {
        long h = c.hiddenSize();
        long perLayer = (c.qDim() + 2L * c.kvDim()) * h + h * c.qDim() + 3L * c.intermediateSize() * h;
        return 2 * (perLayer * c.numLayers() + (long) c.vocabSize() * h);
    }

    public static void main(String[] argv) {
        Map<String, String> a = new HashMap<>();
        for (int i = 0; i < argv.length; i++) {
            if (!argv[i].startsWith("--") || i + 1 == argv.length) {
                throw new IllegalArgumentException("LongContextBench: expected --flag value, got '" + argv[i] + "'");
            }
            a.put(argv[i].substring(2), argv[++i]);
        }
        String presetName = a.getOrDefault("preset", "qwen2.5-32b");
        String backendName = a.getOrDefault("backend", "cuda");
        int[] contexts = ints(a.getOrDefault("contexts", "1024,8192,32768"));
        List<KvPrecision> precisions = new ArrayList<>();
        for (String p : a.getOrDefault("kv", "bf16,fp8").split(",")) {
            precisions.add(KvPrecision.parse(p));
        }
        int gen = Integer.parseInt(a.getOrDefault("gen-tokens", "32"));
        int warm = Integer.parseInt(a.getOrDefault("warmup-tokens", "4"));
        int verifyK = Integer.parseInt(a.getOrDefault("verify-k", "8"));
        int verifyReps = Integer.parseInt(a.getOrDefault("verify-reps", "8"));
        String draftPreset = a.getOrDefault("draft-preset", "qwen2.5-0.5b");
        int layers = Integer.parseInt(a.getOrDefault("layers", "0"));
        String json = a.getOrDefault("json", "");
        String label = a.getOrDefault("label", presetName);
        a.keySet().removeAll(List.of("preset", "backend", "contexts", "kv", "gen-tokens", "warmup-tokens", "verify-k",
                "verify-reps", "draft-preset", "layers", "json", "label"));
        if (!a.isEmpty()) {
            throw new IllegalArgumentException("LongContextBench: unknown flags " + a.keySet());
        }
        ModelConfig config = preset(presetName, layers);
        int maxContext = 0;
        for (int n : contexts) {
            maxContext = Math.max(maxContext, n);
        }
        int contextCapacity = maxContext + Math.max(gen + warm, verifyK + 1) + 16;

        long t0 = System.nanoTime();
        try (Backend backend = LanguageModel.createBackend(backendName, 0); Arena arena = Arena.ofShared()) {
            double copyGBs = backend instanceof CudaBackend cb ? cb.copyBandwidthGBs() : Double.NaN;
            String device = backend instanceof CudaBackend cb ? cb.describe().lines().findFirst().orElse("cuda")
                    : backendName;
            System.out.printf(Locale.ROOT, "LongContextBench %s on %s; copy bandwidth %.0f GB/s%n", presetName, device,
                    copyGBs);
            MemorySegment pool = pool(Math.max(poolBytes(config),
                    draftPreset.equals("none") ? 0 : poolBytes(preset(draftPreset, 0))), arena);
            Map<String, Tensor> w = weights(config, pool, arena);
            DecoderModel model = Architectures.load(config, name -> Optional.ofNullable(w.get(name)),
                    "synthetic " + presetName, backend, WeightFormat.NATIVE);
            System.out.printf(Locale.ROOT, "weights made and loaded in %.1f s (%.1f GB of BF16 matrices)%n",
                    (System.nanoTime() - t0) / 1e9, weightBytesPerToken(config) / 1e9);
            long weightBytes = weightBytesPerToken(config);
            double stepOne = Double.NaN;
            double[] verify = null;
            for (KvPrecision kv : precisions) {
                ModelContext ctx = new ModelContext(model, ModelContext.Limits.singleSequence(contextCapacity), kv);
                Batch batch = ctx.newBatch();
                int[] out = new int[16];
                for (int n : contexts) {
                    double tps = decodeRate(ctx, batch, out, n, warm, gen);
                    long kvBytesPerPosition = kv.bytesPerToken(config.numLayers(), config.kvDim(), config.headDim());
                    double meanContext = n + warm + (gen - 1) / 2.0;
                    double bytes = weightBytes + kvBytesPerPosition * meanContext;
                    double achieved = bytes * tps / 1e9;
                    String line = String.format(Locale.ROOT,
                            "{\"engine\":\"k2j\",\"bench\":\"long-context\",\"label\":\"%s\",\"device\":\"%s\","
                                    + "\"kv_cache\":\"%s\",\"context\":%d,\"gen_tokens\":%d,\"decode_tok_s\":%.2f,"
                                    + "\"ms_per_token\":%.3f,\"weight_bytes_per_token\":%d,\"kv_bytes_per_token\":%.0f,"
                                    + "\"achieved_gb_s\":%.1f,\"copy_gb_s\":%.1f,\"roofline_fraction\":%.3f}",
                            label, device.replace("\"", "'"), kv.flagName(), n, gen, tps, 1e3 / tps, weightBytes,
                            kvBytesPerPosition * meanContext, achieved, Double.isNaN(copyGBs) ? -1 : copyGBs,
                            Double.isNaN(copyGBs) ? -1 : achieved / copyGBs);
                    System.out.printf(Locale.ROOT, "%-14s kv %-4s ctx %6d: %8.2f tok/s %8.3f ms/tok  weights %.1f GB"
                                    + " + KV %.2f GB per token  %6.0f GB/s  %5.1f%% of copy%n", label, kv.flagName(), n,
                            tps, 1e3 / tps, weightBytes / 1e9, kvBytesPerPosition * meanContext / 1e9, achieved,
                            100 * achieved / copyGBs);
                    emit(json, line);
                }
                if (verify == null && verifyK > 0) {
                    verify = verifyCurve(ctx, batch, out, contexts[0], verifyK, verifyReps);
                    stepOne = verify[0];
                    StringBuilder sb = new StringBuilder();
                    for (int k = 0; k <= verifyK; k++) {
                        sb.append(String.format(Locale.ROOT, "%s%.4f", k == 0 ? "" : ",", verify[k] / verify[0]));
                    }
                    System.out.printf(Locale.ROOT, "verify cost v(k) = t(k+1 tokens)/t(1), k = 0..%d at ctx %d, kv %s:"
                            + " %s (t(1) = %.3f ms)%n", verifyK, contexts[0], kv.flagName(), sb, verify[0] * 1e3);
                    emit(json, String.format(Locale.ROOT, "{\"engine\":\"k2j\",\"bench\":\"verify-cost\",\"label\":"
                                    + "\"%s\",\"device\":\"%s\",\"kv_cache\":\"%s\",\"context\":%d,\"t1_ms\":%.4f,"
                                    + "\"v\":[%s]}", label, device.replace("\"", "'"), kv.flagName(), contexts[0],
                            verify[0] * 1e3, sb));
                }
            }
            if (verify != null && !draftPreset.equals("none")) {
                ModelConfig dc = preset(draftPreset, 0);
                Map<String, Tensor> dw = weights(dc, pool, arena);
                DecoderModel draft = Architectures.load(dc, name -> Optional.ofNullable(dw.get(name)),
                        "synthetic " + draftPreset, backend, WeightFormat.NATIVE);
                ModelContext dctx = new ModelContext(draft, ModelContext.Limits.singleSequence(contexts[0] + 64),
                        precisions.getFirst());
                double draftTps = decodeRate(dctx, dctx.newBatch(), new int[16], contexts[0], warm, gen);
                double c = (1 / draftTps) / stepOne;
                System.out.printf(Locale.ROOT, "draft %s (vocab %d): %.1f tok/s, c = t_draft / t_target = %.4f%n",
                        draftPreset, dc.vocabSize(), draftTps, c);
                StringBuilder js = new StringBuilder();
                for (double alpha : new double[] {0.7, 0.8, 0.9}) {
                    StringBuilder row = new StringBuilder();
                    int bestK = 0;
                    double best = 1;
                    for (int k = 1; k < verify.length; k++) {
                        double v = verify[k] / verify[0];
                        double s = SpeculativeBench.expectedTokensPerPass(alpha, k) / (c * k + v);
                        row.append(String.format(Locale.ROOT, " k=%d:%.2f", k, s));
                        if (s > best) {
                            best = s;
                            bestK = k;
                        }
                        js.append(String.format(Locale.ROOT, "%s{\"alpha\":%.1f,\"k\":%d,\"v\":%.4f,\"speedup\":%.3f}",
                                js.isEmpty() ? "" : ",", alpha, k, v, s));
                    }
                    System.out.printf(Locale.ROOT, "implied speedup at alpha %.1f:%s  (best k=%d: %.2fx)%n", alpha,
                            row, bestK, best);
                }
                emit(json, String.format(Locale.ROOT, "{\"engine\":\"k2j\",\"bench\":\"speculative-bound\",\"label\":"
                                + "\"%s\",\"draft\":\"%s\",\"c\":%.5f,\"draft_tok_s\":%.2f,\"rows\":[%s]}", label,
                        draftPreset, c, draftTps, js));
            }
            System.out.printf(Locale.ROOT, "done in %.1f s%n", (System.nanoTime() - t0) / 1e9);
        }
    }

    /** Decode tokens per second at context n: n − 1 uncomputed positions, warm untimed steps, then gen timed ones. */
    static double decodeRate(ModelContext ctx, Batch batch, int[] out, int n, int warm, int gen) {
        try (Sequence seq = ctx.newSequence()) {
            seq.advanceUncomputed(n - 1);
            int token = 42;
            long start = 0;
            for (int i = 0; i < warm + gen; i++) {
                if (i == warm) {
                    start = System.nanoTime();
                }
                batch.clear();
                seq.addTo(batch, token, true);
                ctx.forwardArgmax(batch, out);
                token = Math.floorMod(out[0], 151643);
            }
            return gen / ((System.nanoTime() - start) / 1e9);
        }
    }

    /** Mean seconds of a forward over k + 1 tokens (logits for all), k = 0..maxK, at context n (rolled back). */
    static double[] verifyCurve(ModelContext ctx, Batch batch, int[] out, int n, int maxK, int reps) {
        double[] t = new double[maxK + 1];
        int[] ids = new int[maxK + 1];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = 1000 + 37 * i;
        }
        try (Sequence seq = ctx.newSequence()) {
            seq.advanceUncomputed(n);
            for (int k = 0; k <= maxK; k++) {
                long total = 0;
                for (int r = -2; r < reps; r++) {  // two untimed rounds (graph recording)
                    long s = System.nanoTime();
                    batch.clear();
                    seq.addTo(batch, ids, 0, k + 1, k + 1);
                    ctx.forwardArgmax(batch, out);
                    long e = System.nanoTime();
                    seq.rollback(n);
                    if (r >= 0) {
                        total += e - s;
                    }
                }
                t[k] = total / 1e9 / reps;
            }
        }
        return t;
    }

    private static int[] ints(String csv) {
        String[] p = csv.split(",");
        int[] v = new int[p.length];
        for (int i = 0; i < p.length; i++) {
            v[i] = Integer.parseInt(p[i].trim());
        }
        return v;
    }

    private static void emit(String json, String line) {
        System.out.println(line);
        if (!json.isEmpty()) {
            try {
                Files.writeString(Path.of(json), line + "\n", StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                        StandardOpenOption.APPEND);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }
}
