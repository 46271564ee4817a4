package ai.k2j.engine;

import ai.k2j.loaders.GgufFile;
import ai.k2j.loaders.GgufWriter;
import ai.k2j.testing.GgufFixtures;
import ai.k2j.testing.TestCheckpoints;
import ai.k2j.tokenizer.ChatMessage;
import ai.k2j.tokenizer.Tokenizer;
import ai.k2j.tokenizer.TokenizerFormatException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The Qwen tokenizer (testdata/qwen-tokenizer) written into a GGUF file as llama.cpp's converter writes it
 * (tokens, token types, merges, pre = qwen2, chat template) tokenizes exactly as its tokenizer.json.
 */
class GgufTokenizerTest {

    @TempDir
    Path dir;

    static final List<String> TEXTS = List.of(
            "Hello, world! How's it going? I'm fine; we'll see.",
            "  leading spaces, trailing spaces   \n\n\tand tabs\r\nCRLF",
            "def f(x):\n    return x ** 2  # squares\n\nprint(f(12345678))",
            "数学是科学的语言。日本語のテキストも。한국어 텍스트.",
            "emoji 🤖🚀 and combining é vs é (NFC), ﬁ ligature",
            "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nhi<|im_end|>",
            "<tool_call>{\"name\": \"f\"}</tool_call> <|endoftext|> <|fim_prefix|>",
            "numbers 3.14159 1,000,000 2024-12-07 0x1F",
            "");

    private Tokenizer fromGguf(int vocab) {
        Path file = dir.resolve("tok.gguf");
        GgufWriter w = new GgufWriter().putString("general.architecture", "qwen2");
        GgufFixtures.putTokenizer(w, TestCheckpoints.qwenTokenizer(), vocab);
        w.write(file);
        try (Arena arena = Arena.ofConfined()) {
            GgufFile g = GgufFile.open(file, arena);
            return ModelTokenizer.fromGguf(g, vocab);
        }
    }

    @Test
    void tokenizesLikeTheTokenizerJsonItCameFrom() {
        Tokenizer json = Tokenizer.load(TestCheckpoints.qwenTokenizer());
        Tokenizer gguf = fromGguf(151936); // Qwen2.5's embedding rows: the converter pads with UNUSED tokens
        assertEquals(json.vocabSize(), gguf.vocabSize());
        // llama.cpp's converter marks every <|...|> added token CONTROL, also those tokenizer.json calls non-special
        // (Qwen2.5's <|fim_prefix|> family): GGUF keeps no other record, so those read back as special
        for (int id : json.specialIds()) {
            assertTrue(gguf.isSpecial(id), json.token(id));
        }
        for (int id : gguf.specialIds()) {
            assertTrue(json.isSpecial(id) || json.token(id).startsWith("<|"), json.token(id));
        }
        for (String text : TEXTS) {
            int[] ids = json.encode(text);
            assertArrayEquals(ids, gguf.encode(text), text);
            assertEquals(json.decode(ids), gguf.decode(ids));
            if (!text.contains("<|fim")) { // see above: those differ in specialness only
                assertArrayEquals(json.encode(text, false), gguf.encode(text, false), text);
                assertEquals(json.decode(ids, true), gguf.decode(ids, true));
            }
        }
        List<ChatMessage> chat = List.of(new ChatMessage("system", "Be brief."), new ChatMessage("user", "2+2?"));
        assertEquals(json.applyChatTemplate(chat, true), gguf.applyChatTemplate(chat, true));
        assertArrayEquals(json.encodeChat(chat, true, false), gguf.encodeChat(chat, true, false));
    }

    @Test
    void tokensPastTheEmbeddingAndUnknownPreTokenizersAreNamed() {
        Path file = dir.resolve("tok.gguf");
        GgufWriter w = new GgufWriter();
        GgufFixtures.putTokenizer(w, TestCheckpoints.qwenTokenizer(), 151936);
        w.write(file);
        try (Arena arena = Arena.ofConfined()) {
            GgufFile g = GgufFile.open(file, arena);
            var e = assertThrows(ai.k2j.loaders.ModelFormatException.class, () -> ModelTokenizer.fromGguf(g, 1000));
            assertTrue(e.getMessage().contains("1000 embedding rows"), e.getMessage());
            var bad = assertThrows(TokenizerFormatException.class, () -> Tokenizer.fromGguf(g.path(), "gpt2",
                    List.of("a"), null, List.of(), "falcon", null));
            assertTrue(bad.getMessage().contains("tok.gguf") && bad.getMessage().contains("'falcon'"), bad.getMessage());
            var spm = assertThrows(TokenizerFormatException.class, () -> Tokenizer.fromGguf(g.path(), "llama",
                    List.of("a"), null, List.of(), null, null));
            assertTrue(spm.getMessage().contains("tokenizer.ggml.model 'llama'"), spm.getMessage());
            var merge = assertThrows(TokenizerFormatException.class, () -> Tokenizer.fromGguf(g.path(), "gpt2",
                    List.of("a", "b", "ab"), null, List.of("ab"), "qwen2", null));
            assertTrue(merge.getMessage().contains("tokenizer.ggml.merges[0]"), merge.getMessage());
        }
    }
}
