package ai.k2j.loaders;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ModelConfigTest {

    /** Qwen/Qwen2.5-0.5B-Instruct config.json as published (transformers 4.x form). */
    static final String QWEN25_05B = """
            {
              "architectures": ["Qwen2ForCausalLM"],
              "attention_dropout": 0.0,
              "bos_token_id": 151643,
              "eos_token_id": 151645,
              "hidden_act": "silu",
              "hidden_size": 896,
              "initializer_range": 0.02,
              "intermediate_size": 4864,
              "max_position_embeddings": 32768,
              "max_window_layers": 21,
              "model_type": "qwen2",
              "num_attention_heads": 14,
              "num_hidden_layers": 24,
              "num_key_value_heads": 2,
              "rms_norm_eps": 1e-06,
              "rope_theta": 1000000.0,
              "sliding_window": 32768,
              "tie_word_embeddings": true,
              "torch_dtype": "bfloat16",
              "transformers_version": "4.43.1",
              "use_cache": true,
              "use_sliding_window": false,
              "vocab_size": 151936
            }
            """;

    /** Qwen2.5-7B-Instruct shape with the YaRN block Qwen documents for long context (classic form). */
    static final String QWEN25_7B_YARN = """
            {
              "architectures": ["Qwen2ForCausalLM"], "bos_token_id": 151643, "eos_token_id": 151645,
              "hidden_act": "silu", "hidden_size": 3584, "intermediate_size": 18944,
              "max_position_embeddings": 32768, "model_type": "qwen2", "num_attention_heads": 28,
              "num_hidden_layers": 28, "num_key_value_heads": 4, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
              "rope_scaling": {"factor": 4.0, "original_max_position_embeddings": 32768, "type": "yarn"},
              "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 152064
            }
            """;

    /** What transformers 5 writes: rope_parameters instead of rope_theta / rope_scaling, and "dtype". */
    static final String TRANSFORMERS5_YARN = """
            {
              "architectures": ["Qwen2ForCausalLM"], "bos_token_id": 151643, "eos_token_id": [151645, 151643],
              "dtype": "float32", "hidden_act": "silu", "hidden_size": 896, "intermediate_size": 4864,
              "layer_types": ["full_attention", "full_attention"],
              "max_position_embeddings": 131072, "model_type": "qwen2", "num_attention_heads": 14,
              "num_hidden_layers": 2, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
              "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "yarn", "factor": 4.0,
                                  "original_max_position_embeddings": 32768, "beta_fast": 32.0, "beta_slow": 1.0,
                                  "truncate": false},
              "tie_word_embeddings": true, "vocab_size": 151936
            }
            """;

    @TempDir
    Path tmp;

    private static ModelFormatException fails(String json, String... fragments) {
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> ModelConfig.parse(json, "cfg.json"));
        assertTrue(e.getMessage().startsWith("cfg.json: "), () -> "message must name the file: " + e.getMessage());
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), () -> "expected '" + f + "' in: " + e.getMessage());
        }
        return e;
    }

    private static String without(String json, String field) {
        String out = json.replace("\"" + field + "\"", "\"removed_" + field + "\""); // keeps the JSON valid
        assertNotEquals(json, out, "test setup: field " + field + " not found");
        return out;
    }

    private static String with(String json, String field, String value) {
        String out = json.replaceFirst("\"" + field + "\"\\s*:\\s*[^,}\\n]*", "\"" + field + "\": " + java.util.regex.Matcher.quoteReplacement(value));
        assertNotEquals(json, out, "test setup: field " + field + " not replaced");
        return out;
    }

    @Test
    void qwen25HalfBillionClassicForm() {
        ModelConfig c = ModelConfig.read(TestFiles.text(tmp.resolve("config.json"), QWEN25_05B));
        assertEquals("Qwen2ForCausalLM", c.architecture());
        assertEquals("qwen2", c.modelType());
        assertEquals(896, c.hiddenSize());
        assertEquals(4864, c.intermediateSize());
        assertEquals(24, c.numLayers());
        assertEquals(14, c.numHeads());
        assertEquals(2, c.numKvHeads());
        assertEquals(64, c.headDim());
        assertEquals(7, c.groupSize());
        assertEquals(896, c.qDim());
        assertEquals(128, c.kvDim());
        assertEquals(151936, c.vocabSize());
        assertEquals(32768, c.maxPositionEmbeddings());
        assertEquals(1e-6, c.rmsNormEps());
        assertEquals(1_000_000.0, c.ropeTheta());
        assertSame(RopeScaling.NONE, c.ropeScaling());
        assertTrue(c.tieWordEmbeddings());
        assertEquals("bfloat16", c.torchDtype());
        assertEquals(151643, c.bosTokenId());
        assertArrayEquals(new int[] {151645}, c.eosTokenIds());
        assertEquals(494_032_768L, c.parameterCount(), "Qwen2.5-0.5B has 494,032,768 parameters");
    }

    @Test
    void untiedEmbeddingsCountTheLmHead() {
        ModelConfig tied = ModelConfig.parse(QWEN25_05B, "a");
        ModelConfig untied = ModelConfig.parse(with(QWEN25_05B, "tie_word_embeddings", "false"), "b");
        assertFalse(untied.tieWordEmbeddings());
        assertEquals(151936L * 896, untied.parameterCount() - tied.parameterCount());
        assertFalse(ModelConfig.parse(without(QWEN25_05B, "tie_word_embeddings"), "c").tieWordEmbeddings(),
                "Qwen2Config defaults tie_word_embeddings to false");
    }

    @Test
    void classicYarnRopeScaling() {
        ModelConfig c = ModelConfig.parse(QWEN25_7B_YARN, "7b");
        assertEquals(128, c.headDim());
        assertEquals(1_000_000.0, c.ropeTheta());
        RopeScaling s = c.ropeScaling();
        assertTrue(s.isYarn());
        assertEquals(4.0, s.factor());
        assertEquals(32768, s.originalMaxPositionEmbeddings());
        assertTrue(Double.isNaN(s.betaFast()) && Double.isNaN(s.betaSlow()) && Double.isNaN(s.attentionFactor()));
        assertTrue(Double.isNaN(s.mscale()) && Double.isNaN(s.mscaleAllDim()));
        assertTrue(s.truncate());
        assertFalse(c.tieWordEmbeddings());
        // "rope_type" is the newer spelling of "type"
        ModelConfig c2 = ModelConfig.parse(QWEN25_7B_YARN.replace("\"type\": \"yarn\"", "\"rope_type\": \"yarn\""), "7b");
        assertEquals(c, c2);
    }

    @Test
    void transformers5RopeParametersYarn() {
        ModelConfig c = ModelConfig.parse(TRANSFORMERS5_YARN, "t5");
        assertEquals(1_000_000.0, c.ropeTheta());
        RopeScaling s = c.ropeScaling();
        assertEquals("yarn", s.type());
        assertEquals(4.0, s.factor());
        assertEquals(32768, s.originalMaxPositionEmbeddings());
        assertEquals(32.0, s.betaFast());
        assertEquals(1.0, s.betaSlow());
        assertFalse(s.truncate());
        assertEquals("float32", c.torchDtype(), "transformers 5 spells torch_dtype as dtype");
        assertArrayEquals(new int[] {151645, 151643}, c.eosTokenIds());
        assertEquals(131072, c.maxPositionEmbeddings());
    }

    @Test
    void transformers5DefaultRopeMatchesClassicForm() {
        String t5 = without(QWEN25_05B, "rope_theta").replace("\"vocab_size\"",
                "\"rope_parameters\": {\"rope_theta\": 1000000.0, \"rope_type\": \"default\"}, \"vocab_size\"");
        assertEquals(ModelConfig.parse(QWEN25_05B, "x"), ModelConfig.parse(t5, "x"));
    }

    @Test
    void ropeScalingEdgeCases() {
        assertSame(RopeScaling.NONE, ModelConfig.parse(with(QWEN25_05B, "rope_theta", "1000000.0, \"rope_scaling\": null"), "x").ropeScaling());
        assertEquals(10000.0, ModelConfig.parse(without(QWEN25_05B, "rope_theta"), "x").ropeTheta(), "HF default theta");
        ModelConfig linear = ModelConfig.parse(QWEN25_7B_YARN.replace("\"type\": \"yarn\"", "\"type\": \"linear\""), "x");
        assertEquals("linear", linear.ropeScaling().type());
        fails(QWEN25_7B_YARN.replace("\"type\": \"yarn\"", "\"type\": \"longrope\""), "rope type 'longrope' is not supported");
        fails(QWEN25_7B_YARN.replace("\"type\": \"yarn\"", "\"type\": \"llama3\""),
                "rope scaling 'llama3' needs low_freq_factor > 0");
        fails(QWEN25_7B_YARN.replace("\"factor\": 4.0, ", ""), "rope scaling 'yarn' needs a positive 'factor'");
        fails(QWEN25_7B_YARN.replace("\"factor\": 4.0", "\"factor\": -2"), "needs a positive 'factor'");
        fails(QWEN25_7B_YARN.replace("\"factor\": 4.0", "\"factor\": \"4\""), "field 'factor' must be a number");
        fails(with(QWEN25_05B, "rope_theta", "1000000.0, \"rope_scaling\": \"yarn\""), "'rope_scaling' must be an object or null");
        fails(with(QWEN25_05B, "rope_theta", "0"), "rope_theta must be a finite number > 0");
        fails(QWEN25_05B.replace("\"vocab_size\"", "\"rope_parameters\": 5, \"vocab_size\""), "'rope_parameters' must be an object");
        fails(QWEN25_05B.replace("\"vocab_size\"", "\"rope_parameters\": {\"full_attention\": {\"rope_type\": \"default\"}}, \"vocab_size\""),
                "per-layer-type rope_parameters ('full_attention') are not supported");
    }

    @ParameterizedTest
    @ValueSource(strings = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size"})
    void missingRequiredField(String field) {
        fails(without(QWEN25_05B, field), "required field '" + field + "' is missing");
        fails(with(QWEN25_05B, field, "null"), "required field '" + field + "' is missing");
    }

    @Test
    void optionalFieldsTakeQwen2Defaults() {
        String minimal = "{\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 2,"
                + " \"num_attention_heads\": 4, \"vocab_size\": 100}";
        ModelConfig c = ModelConfig.parse(minimal, "min");
        assertEquals(4, c.numKvHeads(), "num_key_value_heads defaults to num_attention_heads");
        assertEquals(16, c.headDim());
        assertEquals(32768, c.maxPositionEmbeddings());
        assertEquals(1e-6, c.rmsNormEps());
        assertEquals("Qwen2ForCausalLM", c.architecture());
        assertEquals(-1, c.bosTokenId());
        assertEquals(0, c.eosTokenIds().length);
    }

    @Test
    void wrongTypes() {
        fails(with(QWEN25_05B, "hidden_size", "\"896\""), "field 'hidden_size' must be an integer");
        fails(with(QWEN25_05B, "hidden_size", "896.5"), "field 'hidden_size' must be an integer");
        fails(with(QWEN25_05B, "num_hidden_layers", "99999999999"), "field 'num_hidden_layers' must be an integer");
        fails(with(QWEN25_05B, "num_key_value_heads", "[2]"), "field 'num_key_value_heads' must be an integer");
        fails(with(QWEN25_05B, "tie_word_embeddings", "\"true\""), "field 'tie_word_embeddings' must be true or false");
        fails(with(QWEN25_05B, "tie_word_embeddings", "1"), "field 'tie_word_embeddings' must be true or false");
        fails(with(QWEN25_05B, "rms_norm_eps", "\"1e-6\""), "field 'rms_norm_eps' must be a number");
        fails(with(QWEN25_05B, "eos_token_id", "\"</s>\""), "field 'eos_token_id' must be an integer or a list");
        fails(with(QWEN25_05B, "eos_token_id", "[151645, \"x\"]"), "field 'eos_token_id[1]' must be an integer");
        fails(with(QWEN25_05B, "bos_token_id", "1.5"), "field 'bos_token_id' must be an integer");
        fails(with(QWEN25_05B, "model_type", "2"), "field 'model_type' must be a string");
        fails(with(QWEN25_05B, "torch_dtype", "16"), "field 'torch_dtype' must be a string");
        fails(QWEN25_05B.replace("[\"Qwen2ForCausalLM\"]", "\"Qwen2ForCausalLM\""), "'architectures' must be a list of strings");
    }

    @Test
    void inconsistentShapes() {
        fails(with(QWEN25_05B, "num_key_value_heads", "3"), "num_attention_heads (14) is not a multiple of num_key_value_heads (3)");
        fails(with(QWEN25_05B, "hidden_size", "900"), "hidden_size 900 is not divisible by num_attention_heads 14");
        fails(with(QWEN25_05B, "hidden_size", "-896"), "field 'hidden_size' must be positive, got -896");
        fails(with(QWEN25_05B, "num_attention_heads", "0"), "field 'num_attention_heads' must be positive");
        fails(with(QWEN25_05B, "max_position_embeddings", "0"), "field 'max_position_embeddings' must be positive");
        fails(with(QWEN25_05B, "rms_norm_eps", "0"), "rms_norm_eps must be a finite number > 0");
        fails(with(QWEN25_05B, "hidden_act", "\"gelu\""), "hidden_act 'gelu' is not supported");
        fails(QWEN25_05B.replace("\"vocab_size\"", "\"head_dim\": 0, \"vocab_size\""), "field 'head_dim' must be positive");
        fails(QWEN25_05B.replace("\"vocab_size\"", "\"head_dim\": 63, \"vocab_size\""), "head_dim must be even");
    }

    @Test
    void explicitHeadDimWins() {
        ModelConfig c = ModelConfig.parse(QWEN25_05B.replace("\"vocab_size\"", "\"head_dim\": 128, \"vocab_size\""), "x");
        assertEquals(128, c.headDim());
        assertEquals(14 * 128, c.qDim());
        assertEquals(2 * 128, c.kvDim());
    }

    @Test
    void malformedJsonAndFiles() {
        fails("{\"hidden_size\": 896,", "invalid JSON");
        fails(QWEN25_05B + "}", "invalid JSON");
        fails("[]", "expected a JSON object");
        fails("", "expected a JSON object");
        fails("{\"hidden_size\": 1, \"hidden_size\": 2}", "invalid JSON", "Duplicate field 'hidden_size'");
        Path absent = tmp.resolve("config.json");
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> ModelConfig.read(absent));
        assertEquals(absent + ": config.json not found", e.getMessage());
    }

    @Test
    void equalityComparesEosIdsByContent() {
        ModelConfig a = ModelConfig.parse(QWEN25_05B, "a");
        ModelConfig b = ModelConfig.parse(QWEN25_05B, "b");
        assertEquals(a, b);
        assertEquals(a.hashCode(), b.hashCode());
        assertNotEquals(a, ModelConfig.parse(with(QWEN25_05B, "eos_token_id", "151643"), "c"));
        int[] eos = a.eosTokenIds();
        eos[0] = 0;
        assertEquals(151645, a.eosTokenIds()[0], "eosTokenIds must be defensively copied");
    }
}
