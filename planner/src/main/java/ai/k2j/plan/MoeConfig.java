package ai.k2j.plan;

import ai.k2j.loaders.ModelFormatException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Reads the shape of a mixture-of-experts model from its HF {@code config.json}, for planning only. k2j's loader
 * ({@code ModelConfig}) reads dense Qwen2 configs; until it reads MoE ones this reader takes the fields the planner
 * needs: DeepSeek-V3 / Kimi K2 ({@code n_routed_experts}, {@code n_shared_experts}, {@code first_k_dense_replace},
 * {@code moe_intermediate_size}, MLA's {@code q_lora_rank}, {@code kv_lora_rank}, {@code qk_nope_head_dim},
 * {@code qk_rope_head_dim}, {@code v_head_dim}), Qwen3-MoE ({@code num_experts}) and Mixtral / gpt-oss
 * ({@code num_local_experts}).
 */
public final class MoeConfig {
    private MoeConfig() {
    }

    /** Whether this config.json describes an MoE model (has an expert count). */
    public static boolean isMoe(Path configJson) {
        JsonNode root = readTree(configJson);
        return expertCount(root) > 0;
    }

    /** Whether k2j's loader ({@code ModelConfig}) reads this MoE config itself (Qwen3-MoE). */
    static boolean loaderReads(Path configJson) {
        return "Qwen3MoeForCausalLM".equals(readTree(configJson).path("architectures").path(0).asText());
    }

    private static int expertCount(JsonNode root) {
        for (String k : new String[] {"n_routed_experts", "num_experts", "num_local_experts"}) {
            if (root.path(k).isInt() && root.path(k).asInt() > 0) {
                return root.path(k).asInt();
            }
        }
        return 0;
    }

    public static ModelShape read(Path configJson, String name) {
        JsonNode root = readTree(configJson);
        String src = configJson.toString();
        int experts = expertCount(root);
        if (experts < 1) {
            throw new ModelFormatException(src + ": no expert count (n_routed_experts, num_experts or "
                    + "num_local_experts): not an MoE config");
        }
        String arch = root.path("architectures").path(0).asText(root.path("model_type").asText("unknown"));
        int hidden = req(root, "hidden_size", src);
        int heads = req(root, "num_attention_heads", src);
        int layers = req(root, "num_hidden_layers", src);
        int vocab = req(root, "vocab_size", src);
        int topK = root.has("num_experts_per_tok") ? req(root, "num_experts_per_tok", src)
                : req(root, "experts_per_token", src);
        int expertWidth = root.has("moe_intermediate_size") ? req(root, "moe_intermediate_size", src)
                : req(root, "intermediate_size", src);
        int dense = root.has("intermediate_size") ? req(root, "intermediate_size", src) : expertWidth;
        int shared = root.path("n_shared_experts").asInt(0);
        int firstMoe = root.path("first_k_dense_replace").asInt(0);
        ModelShape.Mla mla = null;
        int kvHeads;
        int headDim;
        if (root.has("kv_lora_rank") && !root.path("kv_lora_rank").isNull()) {
            int nope = req(root, "qk_nope_head_dim", src);
            int rope = req(root, "qk_rope_head_dim", src);
            int qLora = root.path("q_lora_rank").isInt() ? root.path("q_lora_rank").asInt() : hidden;
            mla = new ModelShape.Mla(qLora, req(root, "kv_lora_rank", src), nope, rope, req(root, "v_head_dim", src));
            kvHeads = heads;
            headDim = nope + rope;
        } else {
            kvHeads = root.path("num_key_value_heads").asInt(heads);
            headDim = root.path("head_dim").isInt() ? root.path("head_dim").asInt() : hidden / heads;
        }
        boolean bias = root.path("attention_bias").asBoolean(false) || root.path("qkv_bias").asBoolean(false);
        try {
            return new ModelShape(name, arch, hidden, dense, layers, heads, kvHeads, headDim, vocab,
                    root.path("tie_word_embeddings").asBoolean(false), bias,
                    root.path("max_position_embeddings").asInt(4096),
                    new ModelShape.Moe(experts, topK, expertWidth, shared, firstMoe), mla);
        } catch (PlanException e) {
            throw new ModelFormatException(src + ": " + e.getMessage());
        }
    }

    private static int req(JsonNode root, String key, String src) {
        JsonNode n = root.path(key);
        if (!n.isInt() || n.asInt() < 1) {
            throw new ModelFormatException(src + ": missing or non-positive integer '" + key + "'");
        }
        return n.asInt();
    }

    private static JsonNode readTree(Path configJson) {
        try {
            return new ObjectMapper().readTree(Files.readString(configJson));
        } catch (IOException e) {
            throw new ModelFormatException(configJson + ": cannot read as JSON: " + e.getMessage());
        }
    }
}
