package ai.k2j.engine;

import ai.k2j.engine.model.Architectures;
import ai.k2j.kernels.Batch;
import ai.k2j.kernels.ReferenceBackend;
import ai.k2j.loaders.Checkpoint;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.Fp8Blocks;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.ModelFormatException;
import ai.k2j.loaders.Tensor;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * DeepSeek-V3's MLA and MoE beyond {@link DeepseekGoldenTest}: the absorbed decode (one token per step over the
 * latent cache) against HF's expanded-form prefill logits at every position; a decode step allocates nothing; the
 * latent cache size; FP8 dequantization against an independent decoder; and config/tensor contradictions as errors
 * naming the field and the tensor.
 */
class DeepseekV3Test {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    static Stream<String[]> fixturesAndBackends() {
        List<String[]> out = new ArrayList<>();
        for (String fixture : List.of("dsv3_qlora_groups_f32", "dsv3_kimi_like_bf16", "dsv3_yarn_mscale_f32",
                "dsv3_fp8_blocks")) {
            for (String backend : TestModels.backends()) {
                out.add(new String[] {fixture, backend});
            }
        }
        return out.stream();
    }

    private static Path fixture(String name) {
        return DeepseekGoldenTest.dir().resolve(name);
    }

    /**
     * Feeding the prompt one token per step (each step attends over the latent cache in the absorbed form) gives
     * HF's logits at every position, which HF computed in one expanded-form prefill; a second pass prefills the first
     * half in one chunk and decodes the rest, so prefill and decode share the cache.
     */
    @ParameterizedTest(name = "{0} on {1}")
    @MethodSource("fixturesAndBackends")
    void absorbedDecodeStepsEqualExpandedPrefillAtEveryPosition(String name, String backend) throws IOException {
        Path dir = fixture(name);
        int[] prompt = JSON.readTree(dir.resolve("expected.json").toFile()).get("prompt_ids").traverse(JSON)
                .readValueAs(int[].class);
        Npy.Array hf = Npy.readFloat32(dir.resolve("logits.npy"));
        try (Checkpoint ckpt = Checkpoint.open(dir)) {
            ModelContext model = ModelContext.load(ckpt.config(), ckpt::find, name,
                    LanguageModel.createBackend(backend, 2), ModelContext.Limits.singleSequence(256), null);
            int vocab = model.vocabSize();
            for (int split : new int[] {0, prompt.length / 2}) {
                Batch batch = model.newBatch();
                try (Sequence seq = model.newSequence()) {
                    if (split > 0) {
                        model.prefill(seq, batch, prompt, 0, split, false);
                    }
                    for (int t = split; t < prompt.length; t++) {
                        batch.clear();
                        seq.addTo(batch, prompt[t], true);
                        float[] logits = model.forward(batch);
                        float[] ref = hf.row(t);
                        double scale = 1;
                        double worst = 0;
                        for (int v = 0; v < vocab; v++) {
                            scale = Math.max(scale, Math.abs(ref[v]));
                            worst = Math.max(worst, Math.abs(logits[v] - ref[v]));
                        }
                        assertTrue(worst <= 1e-4 * scale, name + " [" + backend + "] decode step at position " + t
                                + " (prefilled " + split + "): |ours − HF| = " + worst + ", allowed " + 1e-4 * scale);
                    }
                }
            }
            model.backend().close();
        }
    }

    @ParameterizedTest(name = "{0} on {1}")
    @MethodSource("fixturesAndBackends")
    void greedyDecodeStepsAllocateNothing(String name, String backend) {
        if (!name.equals("dsv3_qlora_groups_f32") && !name.equals("dsv3_kimi_like_bf16")) {
            return; // the two cover q LoRA on/off, groups and n_group 1, 1 and 2 shared experts
        }
        try (Checkpoint ckpt = Checkpoint.open(fixture(name))) {
            int vocab = ckpt.config().vocabSize();
            ModelContext model = ModelContext.load(ckpt.config(), ckpt::find, name,
                    LanguageModel.createBackend(backend, 2), ModelContext.Limits.singleSequence(1024), null);
            Sampler sampler = new Sampler(vocab);
            sampler.reset(SamplingParams.greedy());
            DecodeLoop loop = new DecodeLoop(model, sampler);
            try (Sequence seq = model.newSequence()) {
                int token = loop.prefill(seq, TestModels.randomTokens(20, vocab, 1));
                for (int i = 0; i < 500; i++) {
                    token = loop.step(token);
                }
                long tid = Thread.currentThread().threadId();
                long best = Long.MAX_VALUE;
                for (int window = 0; window < 5 && best != 0; window++) {
                    long before = THREADS.getThreadAllocatedBytes(tid);
                    for (int i = 0; i < 50; i++) {
                        token = loop.step(token);
                    }
                    best = Math.min(best, THREADS.getThreadAllocatedBytes(tid) - before);
                }
                assertEquals(0, best, "bytes allocated over 50 decode steps of " + name + " on " + backend);
            }
            model.backend().close();
        }
    }

    /**
     * The cache holds kv_lora_rank + qk_rope_head_dim floats per token and layer (split over the key and value
     * slots): 40 here; a decode step reads the attention, the dense layer, and per MoE layer the router, the shared
     * experts and only num_experts_per_tok routed experts.
     */
    @Test
    void latentCacheRowAndActiveWeightBytes() {
        try (Checkpoint ckpt = Checkpoint.open(fixture("dsv3_qlora_groups_f32"))) {
            ModelContext model = ModelContext.load(ckpt.config(), ckpt::find, "f32",
                    LanguageModel.createBackend("reference", 1), ModelContext.Limits.singleSequence(64), null);
            assertEquals(32 + 8, 2 * model.model().kvDim());
            long h = 64;
            long attention = h * 24 + 24L * 4 * 24 + h * 40 + 4L * 32 * 16 + 4L * 16 * 32 + 4L * 16 * h;
            long dense = 3 * h * 96;
            long expert = 3 * h * 24;
            long moe = 8 * h + 2 * expert + expert; // router, 2 chosen, 1 shared
            long lmHead = 512 * h;
            assertEquals(4 * (3 * attention + dense + 2 * moe + lmHead), model.weightBytesPerToken());
            model.backend().close();
        }
    }

    /** Kimi K2's shape: 576 floats per token and layer in the latent cache vs 64 × (192 + 128) expanded. */
    @Test
    void kimiK2LatentCacheIsSmallerThanExpanded() {
        ModelConfig kimi = ModelConfig.parse(kimiK2ConfigJson(), "kimi-k2");
        var ds = kimi.deepseek();
        assertEquals(576, ds.latentWidth());
        assertEquals(64 * (192 + 128), kimi.numHeads() * (ds.qkHeadDim() + ds.vHeadDim()));
        // parameters: about 1.03T total, 32.9B active (Kimi's model card: 1T total, 32B activated)
        assertEquals(1.03e12, kimi.parameterCount(), 0.01e12);
        assertEquals(32.9e9, kimi.activeParameterCount(), 0.2e9);
    }

    static String kimiK2ConfigJson() {
        return """
                {"architectures": ["DeepseekV3ForCausalLM"], "model_type": "kimi_k2", "hidden_size": 7168,
                 "intermediate_size": 18432, "moe_intermediate_size": 2048, "num_hidden_layers": 61,
                 "num_attention_heads": 64, "num_key_value_heads": 64, "n_shared_experts": 1,
                 "n_routed_experts": 384, "routed_scaling_factor": 2.827, "kv_lora_rank": 512, "q_lora_rank": 1536,
                 "qk_rope_head_dim": 64, "v_head_dim": 128, "qk_nope_head_dim": 128, "n_group": 1, "topk_group": 1,
                 "num_experts_per_tok": 8, "first_k_dense_replace": 1, "norm_topk_prob": true,
                 "max_position_embeddings": 131072, "rms_norm_eps": 1e-6, "vocab_size": 163840,
                 "rope_theta": 50000.0, "rope_scaling": {"type": "yarn", "factor": 32.0, "beta_fast": 1.0,
                 "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096},
                 "scoring_func": "sigmoid", "topk_method": "noaux_tc", "tie_word_embeddings": false,
                 "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                 "weight_block_size": [128, 128]}}""";
    }

    // ------------------------------------------------------------------------------------------------ FP8

    /** e4m3fn by definition (sign, 4-bit exponent of bias 7, 3-bit mantissa, subnormals, one NaN pattern), in double. */
    private static double e4m3(int bits) {
        int sign = bits >> 7 & 1;
        int exponent = bits >> 3 & 0xF;
        int mantissa = bits & 7;
        if (exponent == 15 && mantissa == 7) {
            return Double.NaN;
        }
        double v = exponent == 0 ? Math.pow(2, -6) * (mantissa / 8.0) : Math.pow(2, exponent - 7) * (1 + mantissa / 8.0);
        return sign == 1 ? -v : v;
    }

    @Test
    void fp8BlockDequantizationMatchesAnIndependentDecoder() {
        for (int bits = 0; bits < 256; bits++) {
            double want = e4m3(bits);
            float got = Fp8Blocks.value((byte) bits);
            if (Double.isNaN(want)) {
                assertTrue(Float.isNaN(got), "bits " + bits);
            } else {
                assertEquals(want, got, 0.0, "bits " + bits);
            }
        }
        assertEquals(448.0, Fp8Blocks.value((byte) 0x7E), 0.0);
        // a 37 x 70 matrix in blocks of 16 x 32: partial blocks on both edges
        int rows = 37, cols = 70, br = 16, bc = 32;
        Random random = new Random(7);
        Arena arena = Arena.ofAuto();
        MemorySegment q = arena.allocate(rows * cols);
        byte[] bytes = new byte[rows * cols];
        random.nextBytes(bytes);
        for (int i = 0; i < bytes.length; i++) {
            if ((bytes[i] & 0x7F) == 0x7F) {
                bytes[i] = 0x11; // no NaNs in a weight
            }
            q.set(ValueLayout.JAVA_BYTE, i, bytes[i]);
        }
        int sr = 3, sc = 3;
        float[] scales = new float[sr * sc];
        MemorySegment s = arena.allocate(4L * scales.length);
        for (int i = 0; i < scales.length; i++) {
            scales[i] = (float) (random.nextDouble() * 0.01 + 1e-4);
            s.set(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 4L * i, scales[i]);
        }
        Tensor weight = new Tensor("w", DType.F8_E4M3, new long[] {rows, cols}, q);
        Tensor scale = new Tensor("w_scale_inv", DType.F32, new long[] {sr, sc}, s);
        Tensor out = Fp8Blocks.dequantize(weight, scale, br, bc, "test");
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                float want = (float) e4m3(bytes[r * cols + c] & 0xFF) * scales[(r / br) * sc + c / bc];
                assertEquals(want, out.data().get(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN),
                        4L * (r * cols + c)), 0.0f, "element " + r + ", " + c);
            }
        }
        // a scale tensor of another block size is refused, naming the field and both tensors
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> Fp8Blocks.dequantize(weight, scale, 32, 32, "ckpt"));
        assertTrue(e.getMessage().contains("weight_block_size [32, 32]") && e.getMessage().contains("'w_scale_inv'")
                && e.getMessage().contains("'w'"), e.getMessage());
    }

    // ------------------------------------------------------------------------------------------------ bad input

    private static String loadError(String fixture, Consumer<ObjectNode> editConfig,
                                    Function<Function<String, Optional<Tensor>>, Function<String, Optional<Tensor>>> tensors)
            throws IOException {
        Path dir = fixture(fixture);
        ObjectNode json = (ObjectNode) JSON.readTree(Files.readString(dir.resolve("config.json")));
        editConfig.accept(json);
        try (Checkpoint ckpt = Checkpoint.open(dir); ReferenceBackend backend = new ReferenceBackend()) {
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> {
                ModelConfig config = ModelConfig.parse(json.toString(), "edited config.json");
                Architectures.load(config, tensors.apply(ckpt::find), fixture, backend, null);
            });
            return e.getMessage();
        }
    }

    private static void assertMentions(String message, String... parts) {
        for (String p : parts) {
            assertTrue(message.contains(p), "error should mention " + p + ": " + message);
        }
    }

    @Test
    void contradictionsBetweenConfigAndTensorsNameTheFieldAndTheTensor() throws IOException {
        var same = (Function<Function<String, Optional<Tensor>>, Function<String, Optional<Tensor>>>) f -> f;
        assertMentions(loadError("dsv3_qlora_groups_f32", j -> j.put("kv_lora_rank", 16), same),
                "kv_lora_rank=16", "kv_a_proj_with_mqa.weight");
        assertMentions(loadError("dsv3_qlora_groups_f32", j -> j.put("n_routed_experts", 16), same),
                "n_routed_experts=16", "mlp.gate.weight");
        assertMentions(loadError("dsv3_qlora_groups_f32", j -> {
            j.put("n_routed_experts", 12);
            j.put("n_group", 4);
        }, same), "n_routed_experts=12", "mlp.gate.weight");
        assertMentions(loadError("dsv3_qlora_groups_f32", j -> j.putNull("q_lora_rank"), same),
                "q_proj.weight", "q_lora_rank=null");
        assertMentions(loadError("dsv3_kimi_like_bf16", j -> j.put("n_shared_experts", 1), same),
                "n_shared_experts=1", "shared_experts.gate_proj.weight");
        // FP8: a missing scale tensor, a block size its scales do not have, no quantization_config
        assertMentions(loadError("dsv3_fp8_blocks", j -> { }, f -> name -> name.endsWith("o_proj.weight_scale_inv")
                ? Optional.empty() : f.apply(name)), "o_proj.weight_scale_inv", "weight_block_size");
        assertMentions(loadError("dsv3_fp8_blocks", j -> ((ObjectNode) j.get("quantization_config"))
                .putArray("weight_block_size").add(16).add(16), same), "weight_block_size [16, 16]", "_scale_inv");
        assertMentions(loadError("dsv3_fp8_blocks", j -> j.remove("quantization_config"), same),
                "F8_E4M3", "quantization_config");
        // config-only contradictions
        assertMentions(loadError("dsv3_qlora_groups_f32", j -> j.put("num_key_value_heads", 1), same),
                "num_key_value_heads");
        assertMentions(loadError("dsv3_qlora_groups_f32", j -> j.put("n_group", 3), same), "n_group (3)");
        assertMentions(loadError("dsv3_qlora_groups_f32", j -> j.put("scoring_func", "softmax"), same),
                "scoring_func");
    }

    /** An extra expert in the checkpoint beyond n_routed_experts is an error, not silently ignored. */
    @Test
    void moreExpertsThanTheConfigSaysIsAnError() throws IOException {
        String message = loadError("dsv3_qlora_groups_f32", j -> { }, f -> name -> {
            if (name.contains(".mlp.experts.8.")) { // expert 8 shows up as a copy of expert 0
                return f.apply(name.replace(".mlp.experts.8.", ".mlp.experts.0."));
            }
            return f.apply(name);
        });
        assertMentions(message, "mlp.experts.8.gate_proj.weight", "n_routed_experts=8");
    }
}
