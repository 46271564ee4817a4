package ai.k2j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** {@code k2j info} on the Qwen3-MoE and Llama 3 golden models: total and active parameters, experts, llama3 rope. */
class InfoActiveParametersTest {

    private static Path golden(String name) {
        String root = System.getProperty("k2j.repoRoot");
        Path base = root != null ? Path.of(root, "engine") : Path.of("").toAbsolutePath();
        return base.resolve("src/test/resources/golden").resolve(name);
    }

    @Test
    void moeModelShowsExpertsAndActiveParameters() {
        CliRunner info = CliRunner.run("info", "--model", golden("qwen3_moe_f32").toString());
        assertEquals(0, info.code(), info.err());
        String out = info.out();
        // layers 0 and 2 are MoE (8 experts of width 48), layer 1 dense (mlp_only_layers): every tensor is counted,
        // and the config implies the same total, so no "(config implies ...)" note
        assertTrue(out.contains("parameters       276.00 K (276000)\n"), out);
        assertTrue(out.contains("experts          8 per MoE layer, 2 per token (width 48, top-k renormalized), "
                + "2 of 3 layers\n"), out);
        // per MoE layer the 6 unchosen experts (3·64·48 each) are not read: 276000 − 2·6·9216
        assertTrue(out.contains("active params    165.41 K (165408) per token, from the config: the router's top 2"
                + " experts\n"), out);
    }

    @Test
    void llamaShowsItsRopeScalingAndDenseActiveParameters() {
        CliRunner info = CliRunner.run("info", "--model", golden("llama3_untied_f32").toString());
        assertEquals(0, info.code(), info.err());
        String out = info.out();
        assertTrue(out.contains("architecture     LlamaForCausalLM (model_type llama)\n"), out);
        assertTrue(out.contains("scaling llama3 factor 8, original max positions 32, low/high freq factor 1/4"), out);
        assertTrue(out.contains(", all of them (dense)\n"), out);
    }
}
