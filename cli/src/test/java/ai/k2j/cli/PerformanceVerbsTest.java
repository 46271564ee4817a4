package ai.k2j.cli;

import ai.k2j.engine.LanguageModel;
import ai.k2j.engine.ModelOptions;
import ai.k2j.loaders.Checkpoint;
import ai.k2j.loaders.DType;

import com.fasterxml.jackson.databind.JsonNode;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.TreeSet;

import static ai.k2j.cli.RoundTripTest.ok;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * quantize, quant-accuracy and bench on the trained demo model (models/demo/target, BF16, Qwen2 architecture):
 * a quantized checkpoint holds the documented dtypes and computes exactly what load-time quantization computes;
 * quantization error stays within bounds on held-out text; bench reports every field.
 */
class PerformanceVerbsTest {

    static Path demo() {
        Path root = Path.of(System.getProperty("k2j.repoRoot", System.getProperty("user.dir")));
        Path dir = root.resolve("models/demo/target");
        if (!Files.isRegularFile(dir.resolve("config.json"))) {
            dir = root.resolve("../models/demo/target").normalize(); // run from a module directory
        }
        if (!Files.isRegularFile(dir.resolve("config.json"))) {
            throw new AssertionError("demo model not found: looked for " + dir.resolve("config.json")
                    + " (set -Dk2j.repoRoot to the repository root)");
        }
        return dir;
    }

    @Test
    void quantizedCheckpointHoldsTheDocumentedDtypesAndMatchesLoadTimeQuantization(@TempDir Path tmp)
            throws Exception {
        Path src = demo();
        Path out = tmp.resolve("q4");
        CliRunner r = CliRunner.run("quantize", "--model", src.toString(), "--quant", "q4_0", "--out", out.toString(),
                "--threads", "2");
        ok(r);
        long before;
        try (Checkpoint s = Checkpoint.open(src)) {
            before = s.totalBytes();
        }
        try (Checkpoint q = Checkpoint.open(out)) {
            assertEquals(DType.Q4_0, q.tensor("model.layers.0.self_attn.q_proj.weight").dtype());
            assertEquals(DType.Q4_0, q.tensor("model.layers.1.mlp.down_proj.weight").dtype());
            assertEquals(DType.Q8_0, q.tensor("model.embed_tokens.weight").dtype(), "tied lm_head stays Q8_0");
            assertEquals(DType.BF16, q.tensor("model.layers.0.input_layernorm.weight").dtype());
            assertEquals(DType.BF16, q.tensor("model.layers.0.self_attn.q_proj.bias").dtype());
            assertTrue(q.totalBytes() < before / 2, q.totalBytes() + " vs " + before);
        }
        JsonNode config = Cli.JSON.readTree(out.resolve("config.json").toFile());
        assertEquals("Q4_0", config.get("k2j_quantization").get("layers").asText());
        assertTrue(Files.isRegularFile(out.resolve("tokenizer.json")));
        assertTrue(Files.isRegularFile(out.resolve("generation_config.json")));

        int[] ids = {5, 77, 1000, 42, 8000, 3, 19, 256, 4095, 1};
        ModelOptions options = ModelOptions.defaults().withThreads(2);
        float[][] stored;
        float[][] atLoad;
        try (LanguageModel m = LanguageModel.load(out, options)) {
            stored = m.logits(ids);
        }
        try (LanguageModel m = LanguageModel.load(src, options.withWeightFormat(ai.k2j.loaders.WeightFormat.Q4_0))) {
            atLoad = m.logits(ids);
        }
        for (int i = 0; i < ids.length; i++) {
            assertArrayEquals(atLoad[i], stored[i], "position " + i + ": checkpoint vs --quant q4_0 at load");
        }

        CliRunner again = CliRunner.run("quantize", "--model", src.toString(), "--quant", "q8_0", "--out",
                out.toString());
        assertEquals(1, again.code(), again::toString);
        assertTrue(again.err().contains("already holds a model"), again::toString);
        CliRunner requant = CliRunner.run("quantize", "--model", out.toString(), "--quant", "q8_0", "--out",
                tmp.resolve("q8").toString());
        assertEquals(1, requant.code(), requant::toString);
        assertTrue(requant.err().contains("is already Q"), requant::toString);
    }

    @Test
    void quantizationErrorIsBoundedOnHeldOutText() throws Exception {
        Path src = demo();
        Path text = src.resolveSibling("heldout_code.txt");
        // Measured on this text (first 512 tokens): Q8_0 mean KL 0.00019 nats, top-1 99.6%; Q4_0 (Q8_0 lm_head)
        // 0.039 nats, 92.0%. The bounds leave room for kernel changes, not for a broken quantizer.
        double[][] bounds = {{0.002, 0.97}, {0.08, 0.85}};
        String[] quants = {"q8_0", "q4_0"};
        double[] kl = new double[2];
        for (int i = 0; i < 2; i++) {
            CliRunner r = CliRunner.run("quant-accuracy", "--model", src.toString(), "--quant", quants[i], "--text",
                    text.toString(), "--max-tokens", "512", "--threads", "2", "--json");
            ok(r);
            JsonNode j = Cli.JSON.readTree(r.out());
            assertEquals(512, j.get("positions").asInt());
            kl[i] = j.get("mean_kl").asDouble();
            double top1 = j.get("top1_agreement").asDouble();
            assertTrue(kl[i] > 0 && kl[i] < bounds[i][0], quants[i] + " mean KL " + kl[i]);
            assertTrue(top1 >= bounds[i][1] && top1 <= 1, quants[i] + " top-1 agreement " + top1);
            double pplRef = j.get("reference_perplexity").asDouble();
            double pplQ = j.get("quantized_perplexity").asDouble();
            assertTrue(pplRef > 1 && pplRef < 20, "the demo model predicts code: perplexity " + pplRef);
            assertTrue(Math.abs(pplQ - pplRef) / pplRef < (i == 0 ? 0.01 : 0.1), "perplexity " + pplQ + " vs " + pplRef);
        }
        assertTrue(kl[1] > 10 * kl[0], "Q4_0 loses more than Q8_0: " + kl[1] + " vs " + kl[0]);
    }

    @Test
    void compareIsZeroForIdenticalDistributionsAndMatchesAHandComputedCase() {
        float[][] a = {{1, 2, 3}, {0, 0, 5}};
        float[][] shifted = {{11, 12, 13}, {-3, -3, 2}}; // softmax is shift-invariant
        QuantAccuracyCommand.Result same = QuantAccuracyCommand.compare(a, shifted, new int[] {2, 2});
        assertEquals(0, same.meanKl(), 1e-12);
        assertEquals(1.0, same.top1Agreement());
        assertEquals(same.refPerplexity(), same.quantPerplexity(), 1e-9);

        float[][] p = {{0, 0}};
        float[][] q = {{(float) Math.log(3), 0}}; // P = (1/2, 1/2), Q = (3/4, 1/4)
        QuantAccuracyCommand.Result r = QuantAccuracyCommand.compare(p, q, new int[] {0});
        double expected = 0.5 * Math.log(0.5 / 0.75) + 0.5 * Math.log(0.5 / 0.25);
        assertEquals(expected, r.meanKl(), 1e-6);
        assertEquals(1.0, r.top1Agreement(), "argmax 0 (a tie goes to the lowest index) in both");
    }

    @Test
    void benchReportsEveryFieldAsOneJsonObject() throws Exception {
        CliRunner r = CliRunner.run("bench", "--model", demo().toString(), "--prompt-tokens", "40", "--gen-tokens",
                "12", "--threads", "2", "--warmup", "1", "--bandwidth-mb", "64", "--json");
        ok(r);
        assertEquals(1, r.out().lines().count(), r::toString);
        JsonNode j = Cli.JSON.readTree(r.out());
        Set<String> keys = new TreeSet<>();
        j.fieldNames().forEachRemaining(keys::add);
        assertEquals(new TreeSet<>(Set.of("model", "backend", "weights", "threads", "vector_bits", "prompt_tokens",
                "gen_tokens", "prefill_tokens_per_second", "decode_tokens_per_second", "time_to_first_token_ms",
                "inter_token_latency_p50_ms", "inter_token_latency_p99_ms", "weight_bytes_per_token",
                "achieved_gb_per_second", "read_bandwidth_gb_per_second", "roofline_ratio", "prefill_to_decode_ratio",
                "allocated_bytes_per_token", "read_bandwidth_best_gb_per_second", "roofline_ratio_vs_best",
                "probe_passes_interleaved")), keys);
        assertEquals("BF16", j.get("weights").asText());
        assertEquals(40, j.get("prompt_tokens").asInt());
        for (String k : new String[] {"prefill_tokens_per_second", "decode_tokens_per_second", "time_to_first_token_ms",
                "inter_token_latency_p50_ms", "achieved_gb_per_second", "read_bandwidth_gb_per_second",
                "roofline_ratio", "read_bandwidth_best_gb_per_second", "roofline_ratio_vs_best"}) {
            assertTrue(j.get(k).asDouble() > 0, k + " = " + j.get(k));
        }
        assertTrue(j.get("inter_token_latency_p99_ms").asDouble() >= j.get("inter_token_latency_p50_ms").asDouble());
        // every layer matrix and the tied lm_head, read once per token: 2 bytes per parameter of them
        try (Checkpoint c = Checkpoint.open(demo())) {
            long matrices = 0;
            for (String name : c.tensorNames()) {
                if (c.tensor(name).rank() == 2) {
                    matrices += c.tensor(name).byteSize();
                }
            }
            assertEquals(matrices, j.get("weight_bytes_per_token").asLong());
        }
        // 11 decode steps: a probe pass after steps 4 and 8, between the steps; the best pass bounds their mean
        assertEquals(2, j.get("probe_passes_interleaved").asInt());
        assertTrue(j.get("read_bandwidth_best_gb_per_second").asDouble() >= j.get("read_bandwidth_gb_per_second").asDouble());
        assertEquals(j.get("achieved_gb_per_second").asDouble() / j.get("read_bandwidth_best_gb_per_second").asDouble(),
                j.get("roofline_ratio_vs_best").asDouble(), 1e-9);
        double gbs = j.get("achieved_gb_per_second").asDouble();
        assertEquals(j.get("weight_bytes_per_token").asDouble() * j.get("decode_tokens_per_second").asDouble() / 1e9,
                gbs, 1e-6 * gbs);

        CliRunner bad = CliRunner.run("bench", "--model", demo().toString(), "--quant", "q5_k");
        assertEquals(2, bad.code(), bad::toString);
        assertTrue(bad.err().contains("--quant"), bad::toString);
    }
}
