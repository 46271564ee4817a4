package ai.k2j.loaders;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** config.json fields of Llama 3.x (llama3 RoPE), Qwen3 (explicit head_dim, no biases) and Qwen3-MoE. */
class NewArchitectureConfigTest {

    /** Llama-3.1-8B-Instruct's config.json (the architecture fields). */
    static final String LLAMA31_8B = """
            {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
             "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
             "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "attention_bias": false, "mlp_bias": false,
             "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 8192, "rope_type": "llama3"},
             "tie_word_embeddings": false, "torch_dtype": "bfloat16", "bos_token_id": 128000,
             "eos_token_id": [128001, 128008, 128009]}""";

    /** Qwen3-30B-A3B's config.json (the architecture fields). */
    static final String QWEN3_30B_A3B = """
            {"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "hidden_size": 2048,
             "intermediate_size": 6144, "num_hidden_layers": 48, "num_attention_heads": 32,
             "num_key_value_heads": 4, "head_dim": 128, "vocab_size": 151936, "max_position_embeddings": 40960,
             "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "rope_scaling": null, "attention_bias": false,
             "num_experts": 128, "num_experts_per_tok": 8, "moe_intermediate_size": 768, "norm_topk_prob": true,
             "decoder_sparse_step": 1, "mlp_only_layers": [], "tie_word_embeddings": false,
             "torch_dtype": "bfloat16"}""";

    @Test
    void llama3RopeFactorsAreRead() {
        ModelConfig c = ModelConfig.parse(LLAMA31_8B, "llama");
        RopeScaling s = c.ropeScaling();
        assertEquals("llama3", s.type());
        assertEquals(8.0, s.factor());
        assertEquals(1.0, s.lowFreqFactor());
        assertEquals(4.0, s.highFreqFactor());
        assertEquals(8192, s.originalMaxPositionEmbeddings());
        assertFalse(c.hasQkvBias());
        assertFalse(c.hasQkNorm());
        assertNull(c.moe());
        // published: 8.03B parameters
        assertEquals(8_030_261_248L, c.parameterCount());
        assertEquals(c.parameterCount(), c.activeParameterCount());
    }

    @Test
    void llama3WithoutItsFactorsIsRejectedNamingThem() {
        String broken = LLAMA31_8B.replace("\"low_freq_factor\": 1.0, ", "");
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> ModelConfig.parse(broken, "cfg"));
        assertTrue(e.getMessage().contains("low_freq_factor"), e.getMessage());
    }

    @Test
    void biasesOnABiaslessArchitectureAreRejected() {
        String biased = LLAMA31_8B.replace("\"attention_bias\": false", "\"attention_bias\": true");
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> ModelConfig.parse(biased, "cfg"));
        assertTrue(e.getMessage().contains("attention_bias"), e.getMessage());
    }

    @Test
    void qwen3MoeFieldsAndActiveParameters() {
        ModelConfig c = ModelConfig.parse(QWEN3_30B_A3B, "qwen3moe");
        MoeConfig m = c.moe();
        assertEquals(128, m.numExperts());
        assertEquals(8, m.expertsPerToken());
        assertEquals(768, m.expertIntermediateSize());
        assertTrue(m.normTopkProb());
        assertEquals(128, c.headDim());
        assertTrue(c.hasQkNorm());
        assertTrue(c.isMoeLayer(0) && c.isMoeLayer(47));
        // published: 30.5B total (30,532,122,624 in the safetensors), 3.3B active
        assertEquals(30_532_122_624L, c.parameterCount());
        // 48 × (attention 18,878,720 + router 262,144 + 8 experts 37,748,736) + 2 × embeddings 311,164,928 + norm
        assertEquals(3_353_032_704L, c.activeParameterCount());
    }

    @Test
    void sparseStepAndMlpOnlyLayersLeaveDenseLayers() {
        String mixed = QWEN3_30B_A3B.replace("\"decoder_sparse_step\": 1", "\"decoder_sparse_step\": 2")
                .replace("\"mlp_only_layers\": []", "\"mlp_only_layers\": [3]");
        ModelConfig c = ModelConfig.parse(mixed, "cfg");
        assertFalse(c.isMoeLayer(0));
        assertTrue(c.isMoeLayer(1));
        assertFalse(c.isMoeLayer(2));
        assertFalse(c.isMoeLayer(3)); // would be MoE by the step, but is listed in mlp_only_layers
        assertTrue(c.isMoeLayer(5));
        assertArrayEquals(new int[] {3}, c.moe().mlpOnlyLayers());
    }

    @Test
    void moreExpertsPerTokenThanExpertsIsRejected() {
        String bad = QWEN3_30B_A3B.replace("\"num_experts_per_tok\": 8", "\"num_experts_per_tok\": 200");
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> ModelConfig.parse(bad, "cfg"));
        assertTrue(e.getMessage().startsWith("cfg: num_experts_per_tok (200) exceeds num_experts"), e.getMessage());
    }
}
