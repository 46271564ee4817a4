package ai.k2j.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.text.Normalizer;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Facts about the real Qwen tokenizer that can be checked against its vocabulary by hand. */
class QwenTokenizerTest {
    private final Tokenizer tok = QwenTokenizer.get();

    private int id(String token) {
        return tok.id(token).orElseThrow(() -> new AssertionError("not in vocab: " + token));
    }

    @Test
    void specialTokensHaveTheirFileIds() {
        assertArrayEquals(new int[] {151644}, tok.encode("<|im_start|>"));
        assertArrayEquals(new int[] {151645}, tok.encode("<|im_end|>"));
        assertArrayEquals(new int[] {151643}, tok.encode("<|endoftext|>"));
        assertEquals(151669, tok.vocabSize());
        assertEquals("<|im_start|>", tok.token(151644));
        assertEquals(null, tok.token(151669));
        assertEquals(null, tok.token(-1));
    }

    @Test
    void wholeWordsAreSingleVocabTokens() {
        assertArrayEquals(new int[] {id("hello")}, tok.encode("hello"));
        assertArrayEquals(new int[] {id("world")}, tok.encode("world"));
        // a leading space is part of the word, written as 'Ġ' in the byte-level alphabet
        assertArrayEquals(new int[] {id("\u0120world")}, tok.encode(" world"));
        assertNotEquals(id("world"), id("\u0120world"));
        assertArrayEquals(new int[] {id("Hello"), id(","), id("\u0120world"), id("!")}, tok.encode("Hello, world!"));
    }

    @Test
    void digitsAreSplitOneByOne() {
        int[] ids = tok.encode("12345");
        assertArrayEquals(new int[] {id("1"), id("2"), id("3"), id("4"), id("5")}, ids);
    }

    @Test
    void contractionsAreCaseInsensitive() {
        assertArrayEquals(new int[] {id("I"), id("'M")}, tok.encode("I'M"));
        assertArrayEquals(new int[] {id("you"), id("'re")}, tok.encode("you're"));
        // "'Re" is matched by the (?i:'re) alternative, so it stays apart from "you"
        int[] mixed = tok.encode("you'Re");
        assertEquals(id("you"), mixed[0]);
        assertEquals("you'Re", tok.decode(mixed));
    }

    @Test
    void newlinesAndSpacesFollowTheRegex() {
        // "\s*[\r\n]+" takes "  \n\n", then " " before "x" goes with the word
        int[] ids = tok.encode("  \n\n x");
        assertEquals("  \n\n x", tok.decode(ids));
        assertEquals(id("\u0120x"), ids[ids.length - 1]);
    }

    @Test
    void specialTokensAsTextWhenNotAllowed() {
        String chat = "<|im_start|>user\nhi<|im_end|>";
        int[] allowed = tok.encode(chat);
        assertArrayEquals(new int[] {151644, id("user"), id("\u010A"), id("hi"), 151645}, allowed);
        int[] plain = tok.encode(chat, false);
        assertTrue(Arrays.stream(plain).noneMatch(tok::isSpecial), Arrays.toString(plain));
        assertTrue(plain.length > allowed.length);
        assertEquals(chat, tok.decode(plain));
        // <think> is an added token but not special: it is still recognised
        assertArrayEquals(new int[] {151667}, tok.encode("<think>", false));
        assertFalse(tok.isSpecial(151667));
    }

    @Test
    void partialSpecialTokensAreText() {
        for (String s : List.of("<|im_start", "<|im_end|", "im_start|>", "<<|im_start|>>")) {
            int[] ids = tok.encode(s);
            assertEquals(s, tok.decode(ids));
            assertEquals(s.equals("<<|im_start|>>"), Arrays.stream(ids).anyMatch(i -> i == 151644), s);
        }
    }

    @Test
    void specialIdsAndSkipping() {
        int[] specials = tok.specialIds();
        assertEquals(14, specials.length);
        for (int k = 0; k < specials.length; k++) {
            assertEquals(151643 + k, specials[k]);
            assertTrue(tok.isSpecial(specials[k]));
        }
        assertFalse(tok.isSpecial(id("hello")));
        int[] ids = tok.encode("<|im_start|>assistant\n<think>\nok</think>hi<|im_end|><|endoftext|>");
        assertEquals("assistant\n<think>\nok</think>hi", tok.decode(ids, true));
        assertEquals("<|im_start|>assistant\n<think>\nok</think>hi<|im_end|><|endoftext|>", tok.decode(ids, false));
    }

    @Test
    void nfcIsAppliedBeforeBpe() {
        assertArrayEquals(tok.encode("caf\u00e9"), tok.encode("cafe\u0301"));
        assertArrayEquals(tok.encode("\u00c5"), tok.encode("A\u030a"));
        assertEquals("caf\u00e9", tok.decode(tok.encode("cafe\u0301")));
    }

    @Test
    void loneSurrogatesEncodeAsReplacementCharacter() {
        assertArrayEquals(tok.encode("a\uFFFDb"), tok.encode("a\uD800b"));
        assertArrayEquals(tok.encode("\uFFFD"), tok.encode("\uDC00"));
    }

    @Test
    void decodeSkipsUnknownIdsAndReplacesBrokenUtf8() {
        assertEquals("hello", tok.decode(new int[] {-5, id("hello"), 999_999}));
        // 0xF0 0x9F are the first two bytes of a 4-byte emoji: one maximal subpart -> one U+FFFD
        int f0 = id(String.valueOf(ByteLevel.BYTE_TO_CHAR[0xF0]));
        int x9f = id(String.valueOf(ByteLevel.BYTE_TO_CHAR[0x9F]));
        assertEquals("\uFFFDa", tok.decode(new int[] {f0, x9f, id("a")}));
        assertEquals("\uFFFD\uFFFD", tok.decode(new int[] {x9f, x9f}));
    }

    @Test
    void roundTripOfEveryGoldenText() throws Exception {
        int n = 0;
        for (String text : QwenTokenizer.goldenTexts()) {
            String nfc = Normalizer.normalize(text, Normalizer.Form.NFC);
            assertEquals(nfc, tok.decode(tok.encode(text)), () -> "round trip of " + text);
            assertEquals(nfc, tok.decode(tok.encode(text, false)), () -> "round trip (specials as text) of " + text);
            n++;
        }
        assertTrue(n >= 250);
    }

    @Test
    void streamingMatchesDecodeAndNeverSplitsACharacter() throws Exception {
        for (String text : QwenTokenizer.goldenTexts()) {
            int[] ids = tok.encode(text);
            for (boolean skip : new boolean[] {false, true}) {
                StreamingDecoder sd = tok.streamingDecoder(skip);
                StringBuilder sb = new StringBuilder();
                for (int id : ids) {
                    String piece = sd.push(id);
                    if (!piece.isEmpty()) {
                        assertFalse(Character.isHighSurrogate(piece.charAt(piece.length() - 1)), () -> "split surrogate in " + text);
                        assertFalse(Character.isLowSurrogate(piece.charAt(0)), () -> "split surrogate in " + text);
                    }
                    sb.append(piece);
                }
                sb.append(sd.flush());
                assertEquals(tok.decode(ids, skip), sb.toString(), () -> "streaming " + text);
            }
        }
    }

    @Test
    void streamingHoldsBackIncompleteBytes() {
        byte[] smile = "\uD83D\uDE00".getBytes(java.nio.charset.StandardCharsets.UTF_8); // F0 9F 98 80
        StreamingDecoder sd = tok.streamingDecoder(false);
        assertEquals("a", sd.push(id("a")));
        for (int k = 0; k < 3; k++) {
            assertEquals("", sd.push(id(String.valueOf(ByteLevel.BYTE_TO_CHAR[smile[k] & 0xFF]))));
        }
        assertEquals("\uD83D\uDE00", sd.push(id(String.valueOf(ByteLevel.BYTE_TO_CHAR[smile[3] & 0xFF]))));
        assertEquals("", sd.flush());
        // an unfinished character is flushed as one U+FFFD, like decode
        assertEquals("", sd.push(id(String.valueOf(ByteLevel.BYTE_TO_CHAR[0xE4]))));
        assertEquals("", sd.push(id(String.valueOf(ByteLevel.BYTE_TO_CHAR[0xBD]))));
        assertEquals("\uFFFD", sd.flush());
        // a byte that can never start a character is emitted at once
        assertEquals("\uFFFDb", sd.push(id(String.valueOf(ByteLevel.BYTE_TO_CHAR[0x80]))) + sd.push(id("b")));
    }

    @Test
    void streamingMatchesDecodeOnRandomIds() {
        java.util.Random r = new java.util.Random(7);
        for (int it = 0; it < 2000; it++) {
            int[] ids = new int[r.nextInt(12)];
            for (int k = 0; k < ids.length; k++) {
                // mostly single-byte tokens (ids 0..255 include every byte), some whole tokens and specials
                int kind = r.nextInt(10);
                ids[k] = kind < 7 ? id(String.valueOf(ByteLevel.BYTE_TO_CHAR[r.nextInt(256)]))
                        : kind < 9 ? r.nextInt(tok.vocabSize()) : 151643 + r.nextInt(26);
            }
            for (boolean skip : new boolean[] {false, true}) {
                StreamingDecoder sd = tok.streamingDecoder(skip);
                StringBuilder sb = new StringBuilder();
                for (int id : ids) {
                    String piece = sd.push(id);
                    assertFalse(!piece.isEmpty() && Character.isHighSurrogate(piece.charAt(piece.length() - 1)));
                    sb.append(piece);
                }
                sb.append(sd.flush());
                assertEquals(tok.decode(ids, skip), sb.toString(), () -> Arrays.toString(ids));
            }
        }
    }

    @Test
    void concurrentEncodingGivesTheSameIds() throws Exception {
        List<String> texts = QwenTokenizer.goldenTexts();
        List<int[]> expected = texts.stream().map(tok::encode).toList();
        var pool = java.util.concurrent.Executors.newFixedThreadPool(4);
        try {
            List<java.util.concurrent.Future<Boolean>> results = new java.util.ArrayList<>();
            for (int w = 0; w < 4; w++) {
                int offset = w;
                results.add(pool.submit(() -> {
                    for (int rep = 0; rep < 3; rep++) {
                        for (int k = 0; k < texts.size(); k++) {
                            int i = (k * 7 + offset * 13) % texts.size();
                            if (!Arrays.equals(expected.get(i), tok.encode(texts.get(i)))) {
                                return false;
                            }
                        }
                    }
                    return true;
                }));
            }
            for (var f : results) {
                assertTrue(f.get());
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void streamingEmitsWholeTokensImmediately() {
        StreamingDecoder sd = tok.streamingDecoder(true);
        assertEquals("", sd.push(151644));
        assertEquals("hello", sd.push(id("hello")));
        assertEquals(" world", sd.push(id("\u0120world")));
        StreamingDecoder keep = tok.streamingDecoder(false);
        assertEquals("<|im_start|>", keep.push(151644));
    }

    @Test
    void chatTemplateOfThisConfigHasNoDefaultSystemPrompt() {
        String p = tok.applyChatTemplate(List.of(ChatMessage.user("Hello!")), true);
        assertEquals("<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n", p);
        String s = tok.applyChatTemplate(List.of(ChatMessage.system("Be brief."), ChatMessage.user("Hi")), false);
        assertEquals("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n", s);
        int[] ids = tok.encode(p);
        assertEquals(151644, ids[0]);
        assertEquals(p, tok.decode(ids));
    }

    @Test
    void chatTemplateRendersThinkingLikeTheQwen3Template() {
        // assistant turns before the last user query lose their reasoning
        String multi = tok.applyChatTemplate(List.of(
                ChatMessage.user("a"),
                ChatMessage.assistant("<think>\nplan\n</think>\n\nanswer"),
                ChatMessage.user("b")), true);
        assertEquals("<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nanswer<|im_end|>\n"
                + "<|im_start|>user\nb<|im_end|>\n<|im_start|>assistant\n", multi);
        // the final assistant turn after the last query keeps (or gets an empty) think block
        String last = tok.applyChatTemplate(List.of(ChatMessage.user("a"), ChatMessage.assistant("answer")), false);
        assertEquals("<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nanswer<|im_end|>\n", last);
        String kept = tok.applyChatTemplate(List.of(ChatMessage.user("a"), ChatMessage.assistant("<think>r</think>x")), false);
        assertEquals("<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n<think>\nr\n</think>\n\nx<|im_end|>\n", kept);
    }
}
