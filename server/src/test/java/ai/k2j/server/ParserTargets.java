package ai.k2j.server;

import ai.k2j.testing.TestCheckpoints;
import ai.k2j.engine.BatchEngine;
import ai.k2j.engine.EngineOptions;
import ai.k2j.loaders.GenerationConfig;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.ModelFormatException;
import ai.k2j.loaders.SafeTensorsFile;
import ai.k2j.tokenizer.Tokenizer;
import ai.k2j.tokenizer.TokenizerFormatException;
import com.fasterxml.jackson.databind.JsonNode;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * The fuzz targets, shared by the Jazzer {@link ParserFuzzTest} and the seeded {@link ParserMutationFuzzTest}:
 * each takes raw bytes and must either accept them or refuse them with the parser's own exception (naming the
 * problem). Anything else thrown, a hang or running out of memory is a finding.
 */
final class ParserTargets {
    private ParserTargets() {
    }

    interface Target {
        void run(byte[] input);
    }

    private static final ThreadLocal<Path> SCRATCH = ThreadLocal.withInitial(() -> {
        try {
            Path dir = Files.createTempDirectory("k2j-fuzz");
            dir.toFile().deleteOnExit();
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    });

    private static Path write(String name, byte[] bytes) {
        Path file = SCRATCH.get().resolve(name);
        try {
            Files.write(file, bytes);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        file.toFile().deleteOnExit();
        return file;
    }

    /** A whole .safetensors file: 8-byte header length, JSON header, data. */
    static void safetensors(byte[] input) {
        Path file = write("fuzz.safetensors", input);
        try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
            f.tensors().values().forEach(t -> t.data().byteSize());
        } catch (ModelFormatException expected) {
            // a clear refusal
        }
    }

    /** config.json and generation_config.json text. */
    static void configJson(byte[] input) {
        String text = new String(input, StandardCharsets.UTF_8);
        try {
            ModelConfig c = ModelConfig.parse(text, "config.json");
            c.parameterCount();
        } catch (ModelFormatException expected) {
            // a clear refusal
        }
        try {
            GenerationConfig.parse(text, "generation_config.json");
        } catch (ModelFormatException expected) {
            // a clear refusal
        }
    }

    static final String SAMPLE_TEXT = "Hello wörld <|im_start|>user\n  def f(x):\treturn x**2 \uD83D\uDE00 <|im_end|>";

    /** tokenizer.json; a tokenizer that loads must also encode and decode. */
    static void tokenizerJson(byte[] input) {
        Path file = write("tokenizer.json", input);
        Tokenizer t;
        try {
            t = Tokenizer.load(file);
        } catch (TokenizerFormatException expected) {
            return;
        }
        int[] ids = t.encode(SAMPLE_TEXT);
        t.decode(ids);
        t.encode(SAMPLE_TEXT, false);
        var decoder = t.streamingDecoder(false);
        for (int id : ids) {
            decoder.push(id);
        }
        decoder.flush();
        t.decode(new int[] {-1, 0, Integer.MAX_VALUE, t.vocabSize()});
    }

    private static BatchEngine engine;
    private static RequestParser parser;

    private static synchronized RequestParser parser() {
        if (parser == null) {
            engine = BatchEngine.load(TestCheckpoints.demoDraft(), null, EngineOptions.defaults()
                    .withBackend("reference").withMaxContext(256).withMaxBatch(4));
            parser = new RequestParser(engine, "demo", false);
        }
        return parser;
    }

    /** A request body for /v1/chat/completions (first byte odd) or /v1/completions. */
    static void requestJson(byte[] input) {
        if (input.length == 0) {
            return;
        }
        boolean chat = (input[0] & 1) == 1;
        byte[] body = Arrays.copyOfRange(input, 1, input.length);
        try {
            JsonNode root = RequestParser.parseBody(body);
            parser().parse(root, chat);
        } catch (ApiException expected) {
            // a 4xx with an OpenAI error body
        }
    }
}
