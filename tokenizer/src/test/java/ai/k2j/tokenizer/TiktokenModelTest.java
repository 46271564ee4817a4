package ai.k2j.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Kimi K2's tiktoken format on made-up files (no copy of Kimi's tiktoken.model is reachable here): a rank file
 * learned by a small BPE training on mixed English/Chinese/Japanese/digit text, with the 256 single bytes at
 * shuffled ranks. The reference below is tiktoken's algorithm written out directly — Kimi's pattern transcribed
 * from its Python spelling, then per piece the byte-pair merge that always joins the adjacent pair whose
 * concatenation has the lowest rank — and k2j's tokenizer (a byte-level BPE built from the ranks) must give the same
 * ids on every text, and decode them back.
 */
class TiktokenModelTest {

    /** Kimi's pat_str as tokenization_kimi.py spells it; Java needs \p{IsHan} for the Han script. */
    private static final String[] KIMI_PARTS = {
            "[\\p{Han}]+",
            "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}&&[^\\p{Han}]]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}&&[^\\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
            "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}&&[^\\p{Han}]]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}&&[^\\p{Han}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
            "\\p{N}{1,3}",
            " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*",
            "\\s*[\\r\\n]+",
            "\\s+(?!\\S)",
            "\\s+"};

    private static final Pattern REFERENCE_SPLIT = Pattern.compile(
            String.join("|", KIMI_PARTS).replace("\\p{Han}", "\\p{IsHan}"), Pattern.UNICODE_CHARACTER_CLASS);

    private static final String CORPUS = """
            The quick brown fox jumps over the lazy dog. THE DOG'S bone isn't there; we'll see, they've said.
            深度求索和月之暗面的模型都使用中文分词。中文汉字连在一起。我们今天学习中文。
            日本語のテキスト、カタカナとひらがな。東京タワーは高いです。
            Numbers 1234567890 and 3.14159, 2,718,281 and 42. Prices: $19.99, €5, ¥1000.
            def tokenize(text):\n    return [t for t in text.split() if t]\n\n\tindented\r\nwindows line
            ÀÉÎÕÜ àéîõü ñ ç ß Ωμέγα Привет мир 안녕하세요 مرحبا עברית 😀🚀 emoji!!!
            """;

    private static final String[] TEXTS = {
            "The quick brown fox", "THE DOG'S bone isn't there", "we'LL see, they've said, I'M here",
            "深度求索模型", "中文English混合mixed文本", "日本語のテキスト、東京", "1234567890", "3.14159 and 2,718,281",
            "   leading spaces\n\n\ttabs\r\nwindows", "trailing spaces   ", "Привет мир", "안녕하세요", "😀🚀 emoji!!!",
            "ÀÉÎÕÜ àéîõü", "a", "", "  ", "\n", "x\u0301y", "CamelCaseWords and UPPERCASE lowercase",
            "don't DON'T Don't", "price: $19.99 (approx.)", "中", "の", "tokenize(text) -> list[int]", "漢字かな交じり文"};

    // ------------------------------------------------------------------------------------------------ reference

    private static List<Integer> referenceEncode(String text, Map<ByteBuffer, Integer> ranks) {
        List<Integer> ids = new ArrayList<>();
        Matcher m = REFERENCE_SPLIT.matcher(text);
        while (m.find()) {
            byte[] piece = m.group().getBytes(StandardCharsets.UTF_8);
            List<byte[]> parts = new ArrayList<>();
            for (byte b : piece) {
                parts.add(new byte[] {b});
            }
            while (parts.size() > 1) {
                int best = -1;
                int bestRank = Integer.MAX_VALUE;
                for (int i = 0; i + 1 < parts.size(); i++) {
                    Integer r = ranks.get(ByteBuffer.wrap(concat(parts.get(i), parts.get(i + 1))));
                    if (r != null && r < bestRank) {
                        bestRank = r;
                        best = i;
                    }
                }
                if (best < 0) {
                    break;
                }
                parts.set(best, concat(parts.get(best), parts.get(best + 1)));
                parts.remove(best + 1);
            }
            for (byte[] p : parts) {
                ids.add(ranks.get(ByteBuffer.wrap(p)));
            }
        }
        return ids;
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] out = new byte[a.length + b.length];
        System.arraycopy(a, 0, out, 0, a.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    // ------------------------------------------------------------------------------------------------ made-up files

    /** Ranks: the 256 bytes shuffled, then merges learned greedily (most frequent adjacent pair) over the corpus. */
    private static List<byte[]> learnRanks(int merges, long seed) {
        List<byte[]> ranks = new ArrayList<>();
        List<Integer> bytes = new ArrayList<>();
        for (int b = 0; b < 256; b++) {
            bytes.add(b);
        }
        Collections.shuffle(bytes, new Random(seed));
        for (int b : bytes) {
            ranks.add(new byte[] {(byte) b});
        }
        List<List<byte[]>> words = new ArrayList<>();
        Matcher m = REFERENCE_SPLIT.matcher(CORPUS);
        while (m.find()) {
            List<byte[]> w = new ArrayList<>();
            for (byte b : m.group().getBytes(StandardCharsets.UTF_8)) {
                w.add(new byte[] {b});
            }
            words.add(w);
        }
        for (int k = 0; k < merges; k++) {
            Map<ByteBuffer, Integer> counts = new HashMap<>();
            for (List<byte[]> w : words) {
                for (int i = 0; i + 1 < w.size(); i++) {
                    counts.merge(ByteBuffer.wrap(concat(w.get(i), w.get(i + 1))), 1, Integer::sum);
                }
            }
            ByteBuffer best = counts.entrySet().stream()
                    .max(Map.Entry.<ByteBuffer, Integer>comparingByValue()
                            .thenComparing(Map.Entry.comparingByKey(java.util.Comparator.reverseOrder())))
                    .map(Map.Entry::getKey).orElse(null);
            if (best == null) {
                break;
            }
            byte[] token = best.array();
            ranks.add(token);
            for (List<byte[]> w : words) {
                for (int i = 0; i + 1 < w.size(); i++) {
                    if (java.util.Arrays.equals(concat(w.get(i), w.get(i + 1)), token)) {
                        w.set(i, token);
                        w.remove(i + 1);
                    }
                }
            }
        }
        return ranks;
    }

    private static Path writeModel(Path dir, List<byte[]> ranks, String config) throws Exception {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < ranks.size(); i++) {
            sb.append(Base64.getEncoder().encodeToString(ranks.get(i))).append(' ').append(i).append('\n');
        }
        Files.writeString(dir.resolve("tiktoken.model"), sb.toString());
        if (config != null) {
            Files.writeString(dir.resolve("tokenizer_config.json"), config);
        }
        return dir;
    }

    private static Map<ByteBuffer, Integer> rankMap(List<byte[]> ranks) {
        Map<ByteBuffer, Integer> map = new HashMap<>();
        for (int i = 0; i < ranks.size(); i++) {
            map.put(ByteBuffer.wrap(ranks.get(i)), i);
        }
        return map;
    }

    @Test
    void idsEqualTiktokensAlgorithmOnMadeUpRanks(@TempDir Path dir) throws Exception {
        for (long seed : new long[] {1, 2}) {
            Path d = Files.createDirectories(dir.resolve("seed" + seed));
            List<byte[]> ranks = learnRanks(seed == 1 ? 400 : 150, seed);
            Tokenizer tok = Tokenizer.load(writeModel(d, ranks, null));
            Map<ByteBuffer, Integer> map = rankMap(ranks);
            List<String> texts = new ArrayList<>(List.of(TEXTS));
            for (String line : CORPUS.split("\n")) {
                texts.add(line);
            }
            texts.add(CORPUS);
            for (String text : texts) {
                int[] want = referenceEncode(text, map).stream().mapToInt(Integer::intValue).toArray();
                int[] got = tok.encode(text);
                assertArrayEquals(want, got, "seed " + seed + ", text " + text);
                assertEquals(text, tok.decode(got), "round trip of " + text);
            }
        }
    }

    @Test
    void specialTokensFollowTheRanksAndSplitOutOfText(@TempDir Path dir) throws Exception {
        List<byte[]> ranks = learnRanks(100, 3);
        int base = ranks.size();
        String config = """
                {"added_tokens_decoder": {
                  "%d": {"content": "[BOS]", "special": true},
                  "%d": {"content": "[EOS]", "special": true},
                  "%d": {"content": "<|im_end|>", "special": true}},
                 "chat_template": "{%% for m in messages %%}{{ m.content }}{%% endfor %%}"}
                """.formatted(base, base + 1, base + 2);
        Tokenizer tok = Tokenizer.load(writeModel(dir, ranks, config));
        assertEquals(base + TiktokenModel.RESERVED_SPECIAL_TOKENS, tok.vocabSize());
        int[] ids = tok.encode("[BOS]The fox<|im_end|>");
        assertEquals(base, ids[0]);
        assertEquals(base + 2, ids[ids.length - 1]);
        List<Integer> middle = referenceEncode("The fox", rankMap(ranks));
        assertEquals(middle.size() + 2, ids.length);
        assertEquals(java.util.OptionalInt.of(base + 7), tok.id("<|reserved_token_" + (base + 7) + "|>"));
        assertTrue(tok.isSpecial(base + 1));
    }

    @Test
    void malformedRankFilesAreClearErrors(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("tiktoken.model"), "YQ== 0\nYg== 5\n");
        TokenizerFormatException e = assertThrows(TokenizerFormatException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains("line 2 has rank 5, expected 1"), e.getMessage());
        Files.writeString(dir.resolve("tiktoken.model"), "YQ== 0\n");
        e = assertThrows(TokenizerFormatException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains("no rank for the single byte"), e.getMessage());
    }
}
