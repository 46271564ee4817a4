package ai.k2j.cli;

import ai.k2j.tokenizer.Tokenizer;

import com.fasterxml.jackson.databind.JsonNode;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** synth tiny → info → generate --json → logits, end to end through the CLI on the real engine. */
class RoundTripTest {

    static void ok(CliRunner r) {
        assertEquals(0, r.code(), r::toString);
    }

    static int argmax(float[] row) {
        int best = 0;
        for (int i = 1; i < row.length; i++) {
            if (row[i] > row[best]) {
                best = i;
            }
        }
        return best;
    }

    @Test
    void synthInfoGenerateLogits(@TempDir Path tmp) throws Exception {
        Path qwen = CliRunner.qwenTokenizer();
        Path model = tmp.resolve("tiny");
        ok(CliRunner.run("synth", "--preset", "tiny", "--out", model.toString(), "--dtype", "f32", "--seed", "3",
                "--tokenizer", qwen.toString()));
        for (String f : new String[] {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
                "tokenizer_config.json"}) {
            assertTrue(Files.isRegularFile(model.resolve(f)), f);
        }
        int vocab = Tokenizer.load(qwen).vocabSize();

        // info reports what synth wrote
        CliRunner info = CliRunner.run("info", "--model", model.toString());
        ok(info);
        long params = SynthCommand.tensors(SynthPreset.ALL.get("tiny").withVocab(vocab)).stream()
                .mapToLong(SynthCommand.TensorSpec::elements).sum();
        String out = info.out();
        assertTrue(out.contains("architecture     Qwen2ForCausalLM"), out);
        assertTrue(out.contains("layers           2\n"), out);
        assertTrue(out.contains("heads            4 query, 2 key/value (group 2)\n"), out);
        assertTrue(out.contains("head dim         16\n"), out);
        assertTrue(out.contains("vocab            " + vocab + "\n"), out);
        assertTrue(out.contains("rope             theta 1000000, scaling none\n"), out);
        assertTrue(out.contains("tied embeddings  yes\n"), out);
        assertTrue(out.contains("(" + params + ")\n"), "parameter count " + params + " in\n" + out);
        assertTrue(out.contains("dtype F32        26 tensors, "), out);
        assertTrue(out.contains("(" + params * 4 + " bytes)"), out);
        assertTrue(out.contains("shards           1: model.safetensors"), out);
        assertTrue(out.contains("tokenizer        tokenizer.json + tokenizer_config.json"), out);
        assertTrue(out.contains("sampling         greedy"), out);

        // generate --json: one JSON object on stdout with exactly the documented fields
        CliRunner gen = CliRunner.run("generate", "--model", model.toString(), "--prompt-ids", "9707,1879",
                "--max-tokens", "4", "--json", "--threads", "1");
        ok(gen);
        assertEquals(1, gen.out().lines().count(), gen::toString);
        JsonNode j = Cli.JSON.readTree(gen.out());
        Set<String> keys = new TreeSet<>();
        j.fieldNames().forEachRemaining(keys::add);
        assertEquals(new TreeSet<>(Set.of("ids", "text", "finish_reason", "prompt_tokens", "completion_tokens",
                "prefill_tokens_per_second", "decode_tokens_per_second", "load_seconds", "time_to_first_token_ms")), keys);
        int[] ids = new int[j.get("ids").size()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = j.get("ids").get(i).asInt();
        }
        assertTrue(ids.length >= 1 && ids.length <= 4, gen::toString);
        assertEquals(2, j.get("prompt_tokens").asInt());
        assertEquals(ids.length, j.get("completion_tokens").asInt());
        assertEquals(ids.length == 4 ? "length" : "stop", j.get("finish_reason").asText());
        assertTrue(j.get("load_seconds").asDouble() > 0);

        // logits: [tokens, vocab] .npy whose last row's argmax is the first greedy token
        Path npy = tmp.resolve("logits.npy");
        ok(CliRunner.run("logits", "--model", model.toString(), "--prompt-ids", "9707,1879", "--out", npy.toString()));
        float[][] logits = NpyAndStreamTest.readNpy(npy);
        assertEquals(2, logits.length);
        assertEquals(vocab, logits[0].length);
        assertEquals(ids[0], argmax(logits[1]), "greedy first token = argmax of the prompt's last logits");
        if (ids.length >= 2) {
            Path npy2 = tmp.resolve("logits2.npy");
            ok(CliRunner.run("logits", "--model", model.toString(), "--prompt-ids", "9707,1879," + ids[0],
                    "--out", npy2.toString()));
            float[][] longer = NpyAndStreamTest.readNpy(npy2);
            assertEquals(3, longer.length);
            assertEquals(ids[1], argmax(longer[2]), "greedy second token = argmax after the first");
            for (int v = 0; v < vocab; v += 997) {
                assertEquals(logits[1][v], longer[1][v], 1e-3, "causal: position 1 does not see position 2");
            }
        }

        // streaming text generation with a chat prompt works and reports timings on stderr
        CliRunner chat = CliRunner.run("generate", "--model", model.toString(), "--prompt", "hi", "--chat",
                "--system", "be brief", "--max-tokens", "3", "--temperature", "0.8", "--seed", "1");
        ok(chat);
        assertTrue(chat.err().contains("[k2j] load ") && chat.err().contains("| seed 1"), chat::toString);
    }

    @Test
    void sameSeedSameFilesAndShardingKeepsTheWeights(@TempDir Path tmp) throws Exception {
        Path a = tmp.resolve("a"), b = tmp.resolve("b"), c = tmp.resolve("c"), sharded = tmp.resolve("sharded");
        ok(CliRunner.run("synth", "--preset", "tiny", "--out", a.toString(), "--seed", "5"));
        ok(CliRunner.run("synth", "--preset", "tiny", "--out", b.toString(), "--seed", "5"));
        ok(CliRunner.run("synth", "--preset", "tiny", "--out", c.toString(), "--seed", "6"));
        byte[] fa = Files.readAllBytes(a.resolve("model.safetensors"));
        assertArrayEquals(fa, Files.readAllBytes(b.resolve("model.safetensors")), "same seed, same bytes");
        assertFalse(java.util.Arrays.equals(fa, Files.readAllBytes(c.resolve("model.safetensors"))), "other seed");

        // 100 kB shards: the 128 kB bf16 embedding gets a shard of its own, the rest is split up
        ok(CliRunner.run("synth", "--preset", "tiny", "--out", sharded.toString(), "--seed", "5",
                "--max-shard-gb", "0.0001"));
        assertTrue(Files.isRegularFile(sharded.resolve("model.safetensors.index.json")));
        long shards;
        try (Stream<Path> s = Files.list(sharded)) {
            shards = s.filter(p -> p.toString().endsWith(".safetensors")).count();
        }
        assertTrue(shards > 1, "shards: " + shards);
        CliRunner info = CliRunner.run("info", "--model", sharded.toString());
        ok(info);
        assertTrue(info.out().contains("shards           " + shards + ": model-00001-of-"), info::toString);
        assertTrue(info.out().contains("tokenizer        none"), info::toString);

        Path la = tmp.resolve("a.npy"), ls = tmp.resolve("s.npy");
        ok(CliRunner.run("logits", "--model", a.toString(), "--prompt-ids", "1,2,3,1000", "--out", la.toString()));
        ok(CliRunner.run("logits", "--model", sharded.toString(), "--prompt-ids", "1,2,3,1000", "--out", ls.toString()));
        float[][] x = NpyAndStreamTest.readNpy(la), y = NpyAndStreamTest.readNpy(ls);
        assertEquals(4, x.length);
        assertEquals(1024, x[0].length);
        for (int t = 0; t < x.length; t++) {
            assertArrayEquals(x[t], y[t], "one file or shards: the same weights give the same logits");
        }

        // without a tokenizer: ids in, ids out; a text prompt is a clear failure
        CliRunner gen = CliRunner.run("generate", "--model", sharded.toString(), "--prompt-ids", "1,2,3,1000",
                "--max-tokens", "3", "--threads", "2");
        ok(gen);
        String[] printed = gen.out().strip().split(",");
        assertTrue(printed.length >= 1 && printed.length <= 3, gen::toString);
        assertEquals(argmax(y[3]), Integer.parseInt(printed[0]), "greedy first token = argmax of last logits");
        assertTrue(gen.err().contains("has no tokenizer.json: printed the generated ids"), gen::toString);
        CliRunner text = CliRunner.run("generate", "--model", sharded.toString(), "--prompt", "hello");
        assertEquals(1, text.code(), text::toString);
        assertTrue(text.err().contains("tokenizer"), text::toString);

        CliRunner outside = CliRunner.run("logits", "--model", a.toString(), "--prompt-ids", "1,1024",
                "--out", la.toString());
        assertEquals(1, outside.code(), outside::toString);
        assertTrue(outside.err().contains("prompt id 1024 is outside the vocabulary (size 1024)"), outside::toString);
    }
}
