package ai.k2j.cli;

import ai.k2j.cli.SynthCommand.Kind;
import ai.k2j.cli.SynthCommand.TensorSpec;
import ai.k2j.loaders.DType;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code k2j synth}'s DeepSeek-V3-class presets ({@code DeepseekV3ForCausalLM}): MLA and sigmoid-routed MoE with
 * shared experts, written with the hub's tensor names (one tensor per expert). {@code kimi-k2} and
 * {@code deepseek-v3} are the published config.json shapes (Kimi-K2-Instruct, DeepSeek-V3); {@code deepseek-lite}
 * is DeepSeek-V2-Lite's shape (about 16B total, 2.4B active) in the V3 class; {@code kimi-mini} is a small
 * Kimi-like model (about 1.2B total) whose BF16 weights fit this project's 24 GiB development machines with room to
 * spare, for CPU speed work. Random weights are BF16/F16/F32, not FP8.
 */
record DeepseekPreset(String name, String modelType, int hidden, int intermediate, int layers, int heads,
                      int qLoraRank, int kvLoraRank, int nopeDim, int ropeDim, int vDim, int experts,
                      int expertsPerToken, int sharedExperts, int moeIntermediate, int firstDense, int nGroup,
                      int topkGroup, double routedScaling, int vocab, double ropeTheta, double yarnFactor,
                      int originalPositions, int maxPositions, int bos, int eos) {

    static final Map<String, DeepseekPreset> ALL = new LinkedHashMap<>();

    static {
        add(new DeepseekPreset("kimi-k2", "kimi_k2", 7168, 18432, 61, 64, 1536, 512, 128, 64, 128, 384, 8, 1, 2048,
                1, 1, 1, 2.827, 163840, 50000.0, 32.0, 4096, 131072, 163584, 163585));
        add(new DeepseekPreset("deepseek-v3", "deepseek_v3", 7168, 18432, 61, 128, 1536, 512, 128, 64, 128, 256, 8,
                1, 2048, 3, 8, 4, 2.5, 129280, 10000.0, 40.0, 4096, 163840, 0, 1));
        add(new DeepseekPreset("deepseek-lite", "deepseek_v3", 2048, 10944, 27, 16, 0, 512, 128, 64, 128, 64, 6,
                2, 1408, 1, 1, 1, 1.0, 102400, 10000.0, 40.0, 4096, 163840, 100000, 100001));
        add(new DeepseekPreset("kimi-mini", "kimi_k2", 1024, 3072, 12, 16, 512, 256, 64, 32, 64, 64, 6, 1, 384, 1,
                1, 1, 2.827, 163840, 50000.0, 32.0, 4096, 131072, 163584, 163585));
    }

    private static void add(DeepseekPreset p) {
        ALL.put(p.name, p);
    }

    /** The widest norm: over hidden, q_lora_rank (q_a_layernorm) and kv_lora_rank (kv_a_layernorm). */
    int widestNorm() {
        return Math.max(hidden, Math.max(qLoraRank, kvLoraRank));
    }

    /** The tensors a DeepseekV3ForCausalLM checkpoint publishes, [out, in] for linear weights. */
    List<TensorSpec> tensors() {
        long h = hidden;
        long qk = (long) nopeDim + ropeDim;
        List<TensorSpec> t = new ArrayList<>();
        t.add(new TensorSpec("model.embed_tokens.weight", new long[] {vocab, h}, Kind.RANDOM));
        for (int l = 0; l < layers; l++) {
            String p = "model.layers." + l + ".";
            String a = p + "self_attn.";
            t.add(new TensorSpec(p + "input_layernorm.weight", new long[] {h}, Kind.ONES));
            if (qLoraRank > 0) {
                t.add(new TensorSpec(a + "q_a_proj.weight", new long[] {qLoraRank, h}, Kind.RANDOM));
                t.add(new TensorSpec(a + "q_a_layernorm.weight", new long[] {qLoraRank}, Kind.ONES));
                t.add(new TensorSpec(a + "q_b_proj.weight", new long[] {heads * qk, qLoraRank}, Kind.RANDOM));
            } else {
                t.add(new TensorSpec(a + "q_proj.weight", new long[] {heads * qk, h}, Kind.RANDOM));
            }
            t.add(new TensorSpec(a + "kv_a_proj_with_mqa.weight", new long[] {kvLoraRank + ropeDim, h}, Kind.RANDOM));
            t.add(new TensorSpec(a + "kv_a_layernorm.weight", new long[] {kvLoraRank}, Kind.ONES));
            t.add(new TensorSpec(a + "kv_b_proj.weight", new long[] {(long) heads * (nopeDim + vDim), kvLoraRank},
                    Kind.RANDOM));
            t.add(new TensorSpec(a + "o_proj.weight", new long[] {h, (long) heads * vDim}, Kind.RANDOM));
            t.add(new TensorSpec(p + "post_attention_layernorm.weight", new long[] {h}, Kind.ONES));
            if (l < firstDense) {
                mlp(t, p + "mlp.", h, intermediate);
            } else {
                t.add(new TensorSpec(p + "mlp.gate.weight", new long[] {experts, h}, Kind.RANDOM));
                t.add(new TensorSpec(p + "mlp.gate.e_score_correction_bias", new long[] {experts}, Kind.RANDOM));
                for (int e = 0; e < experts; e++) {
                    mlp(t, p + "mlp.experts." + e + ".", h, moeIntermediate);
                }
                mlp(t, p + "mlp.shared_experts.", h, (long) sharedExperts * moeIntermediate);
            }
        }
        t.add(new TensorSpec("model.norm.weight", new long[] {h}, Kind.ONES));
        t.add(new TensorSpec("lm_head.weight", new long[] {vocab, h}, Kind.RANDOM));
        return t;
    }

    private static void mlp(List<TensorSpec> t, String prefix, long h, long ff) {
        t.add(new TensorSpec(prefix + "gate_proj.weight", new long[] {ff, h}, Kind.RANDOM));
        t.add(new TensorSpec(prefix + "up_proj.weight", new long[] {ff, h}, Kind.RANDOM));
        t.add(new TensorSpec(prefix + "down_proj.weight", new long[] {h, ff}, Kind.RANDOM));
    }

    /** config.json in the published form (classic rope_theta + rope_scaling, without quantization_config). */
    ObjectNode configJson(DType dtype) {
        ObjectNode c = Cli.JSON.createObjectNode();
        c.putArray("architectures").add("DeepseekV3ForCausalLM");
        c.put("attention_bias", false);
        c.put("attention_dropout", 0.0);
        c.put("bos_token_id", bos);
        c.put("eos_token_id", eos);
        c.put("first_k_dense_replace", firstDense);
        c.put("hidden_act", "silu");
        c.put("hidden_size", hidden);
        c.put("initializer_range", SynthCommand.INIT_STD);
        c.put("intermediate_size", intermediate);
        c.put("kv_lora_rank", kvLoraRank);
        c.put("max_position_embeddings", maxPositions);
        c.put("model_type", modelType);
        c.put("moe_intermediate_size", moeIntermediate);
        c.put("moe_layer_freq", 1);
        c.put("n_group", nGroup);
        c.put("n_routed_experts", experts);
        c.put("n_shared_experts", sharedExperts);
        c.put("norm_topk_prob", true);
        c.put("num_attention_heads", heads);
        c.put("num_experts_per_tok", expertsPerToken);
        c.put("num_hidden_layers", layers);
        c.put("num_key_value_heads", heads);
        if (qLoraRank > 0) {
            c.put("q_lora_rank", qLoraRank);
        } else {
            c.putNull("q_lora_rank");
        }
        c.put("qk_nope_head_dim", nopeDim);
        c.put("qk_rope_head_dim", ropeDim);
        c.put("rms_norm_eps", 1e-6);
        ObjectNode r = c.putObject("rope_scaling");
        r.put("beta_fast", 32.0);
        r.put("beta_slow", 1.0);
        r.put("factor", yarnFactor);
        r.put("mscale", 1.0);
        r.put("mscale_all_dim", 1.0);
        r.put("original_max_position_embeddings", originalPositions);
        r.put("type", "yarn");
        c.put("rope_theta", ropeTheta);
        c.put("routed_scaling_factor", routedScaling);
        c.put("scoring_func", "sigmoid");
        c.put("tie_word_embeddings", false);
        c.put("topk_group", topkGroup);
        c.put("topk_method", "noaux_tc");
        c.put("torch_dtype", switch (dtype) {
            case BF16 -> "bfloat16";
            case F16 -> "float16";
            default -> "float32";
        });
        c.put("use_cache", true);
        c.put("v_head_dim", vDim);
        c.put("vocab_size", vocab);
        return c;
    }
}
