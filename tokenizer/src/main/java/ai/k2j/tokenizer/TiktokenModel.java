package ai.k2j.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Kimi K2's tokenizer, which ships no tokenizer.json: a tiktoken {@code tiktoken.model} (one line per token:
 * the token's bytes in base64, a space, its rank = id) plus {@code tokenizer_config.json}, whose
 * {@code added_tokens_decoder} names the special tokens after the ranks (the ids from the number of ranks on up to
 * 256 reserved ones; unnamed ones are {@code <|reserved_token_ID|>}, as Kimi's {@code tokenization_kimi.py}).
 *
 * <p>Encoding is tiktoken's: special tokens split out first, the rest cut by Kimi's pattern ({@link #KIMI_PATTERN})
 * and each piece's bytes merged pairwise, always the adjacent pair whose concatenation has the lowest rank. k2j runs
 * it as a byte-level BPE (HF's TikTokenConverter's construction): the vocabulary is the ranks' byte strings in
 * GPT-2's byte alphabet, and each token of n bytes contributes a merge (a, b) for every split into two tokens, ranked
 * by the token's rank; a BPE that merges the adjacent pair of lowest rank then takes exactly tiktoken's steps.
 * Not replicated: tiktoken's cut of very long whitespace/non-whitespace runs (Kimi splits text at runs of 25,000
 * characters before encoding), which changes ids only for such runs.
 */
final class TiktokenModel {

    private TiktokenModel() {
    }

    /**
     * Kimi's pre-tokenizer pattern from {@code tokenization_kimi.py} ({@code pat_str}), in Java syntax (run with
     * {@link Pattern#UNICODE_CHARACTER_CLASS}, so {@code \s} is Unicode whitespace as in tiktoken's regex):
     * <ol>
     * <li>{@code [\p{Han}]+} — runs of Han characters first;</li>
     * <li>an optional non-letter/non-digit (not CR/LF), upper/title/modifier/other letters or marks (not Han), then
     *     at least one lower/modifier/other letter or mark (not Han), then an optional English contraction
     *     ('s 't 're 've 'm 'll 'd, any case);</li>
     * <li>the same with at least one leading upper-class letter and any lower-class ones after;</li>
     * <li>{@code \p{N}{1,3}} — digits in runs of up to three;</li>
     * <li>{@code  ?[^\s\p{L}\p{N}]+[\r\n]*} — punctuation/symbol runs with an optional leading space;</li>
     * <li>{@code \s*[\r\n]+}, {@code \s+(?!\S)}, {@code \s+} — whitespace as GPT-4's cl100k pattern.</li>
     * </ol>
     */
    static final String KIMI_PATTERN = String.join("|",
            "[\\p{IsHan}]+",
            "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}&&[^\\p{IsHan}]]*"
                    + "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}&&[^\\p{IsHan}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
            "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}&&[^\\p{IsHan}]]+"
                    + "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}&&[^\\p{IsHan}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
            "\\p{N}{1,3}",
            " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*",
            "\\s*[\\r\\n]+",
            "\\s+(?!\\S)",
            "\\s+");

    /** Reserved special-token ids after the ranks (Kimi's num_reserved_special_tokens). */
    static final int RESERVED_SPECIAL_TOKENS = 256;

    private static final ObjectMapper JSON = new ObjectMapper();

    /** Whether {@code dir} holds a tiktoken.model and no tokenizer.json. */
    static boolean present(Path dir) {
        return Files.isDirectory(dir) && !Files.exists(dir.resolve("tokenizer.json"), LinkOption.NOFOLLOW_LINKS)
                && Files.exists(dir.resolve("tiktoken.model"), LinkOption.NOFOLLOW_LINKS);
    }

    static TokenizerJson.Parsed load(Path dir) {
        Path model = dir.resolve("tiktoken.model");
        TokenizerJson.requireRegularFile(model);
        List<byte[]> ranks = readRanks(model);
        Map<String, Integer> vocab = new HashMap<>(ranks.size() * 2);
        String[] mapped = new String[ranks.size()];
        for (int id = 0; id < ranks.size(); id++) {
            mapped[id] = mapped(ranks.get(id));
            if (vocab.putIfAbsent(mapped[id], id) != null) {
                throw new TokenizerFormatException(model, "the bytes of rank " + id + " also have rank "
                        + vocab.get(mapped[id]));
            }
        }
        for (int b = 0; b < 256; b++) {
            if (!vocab.containsKey(String.valueOf(ByteLevel.BYTE_TO_CHAR[b]))) {
                throw new TokenizerFormatException(model, "no rank for the single byte 0x" + Integer.toHexString(b)
                        + " (tiktoken needs all 256)");
            }
        }
        List<String[]> merges = merges(mapped, vocab);

        ObjectNode root = JSON.createObjectNode();
        ObjectNode m = root.putObject("model");
        m.put("type", "BPE");
        m.put("ignore_merges", false);
        root.putObject("decoder").put("type", "ByteLevel");
        var added = root.putArray("added_tokens");
        Map<Integer, String> specials = specialTokens(dir.resolve("tokenizer_config.json"), ranks.size());
        specials.forEach((id, content) -> added.addObject().put("id", id).put("content", content)
                .put("special", true).put("normalized", false));
        TokenizerJson.ChatTemplateConfig template = TokenizerJson.ChatTemplateConfig.NONE;
        Path config = dir.resolve("tokenizer_config.json");
        if (Files.exists(config, LinkOption.NOFOLLOW_LINKS)) {
            template = TokenizerJson.chatConfig(config, readJson(config));
        }
        TokenizerJson.Parsed p = TokenizerJson.parse(model, new TokenizerJson.Raw(root, vocab, merges), template);
        PreTokenizer pre = PreTokenizer.sequence(List.of(
                new PreTokenizer.Split(Pattern.compile(KIMI_PATTERN, Pattern.UNICODE_CHARACTER_CLASS),
                        PreTokenizer.Behavior.ISOLATED, false),
                new PreTokenizer.ByteLevelStep(false, null)));
        return new TokenizerJson.Parsed(p.bpe(), p.vocab(), p.addedTokens(), p.normalizer(), pre,
                p.byteLevelDecoder(), p.chat());
    }

    /** The ranks' byte strings by rank, which must be 0, 1, 2, ... in file order. */
    static List<byte[]> readRanks(Path file) {
        List<String> lines;
        try {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new TokenizerFormatException(file, "cannot read: " + e, e);
        }
        List<byte[]> ranks = new ArrayList<>(lines.size());
        Base64.Decoder base64 = Base64.getDecoder();
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i);
            if (line.isEmpty()) {
                continue;
            }
            int space = line.indexOf(' ');
            if (space <= 0 || space != line.lastIndexOf(' ')) {
                throw new TokenizerFormatException(file, "line " + (i + 1) + " is not 'BASE64 RANK'");
            }
            byte[] bytes;
            int rank;
            try {
                bytes = base64.decode(line.substring(0, space));
                rank = Integer.parseInt(line.substring(space + 1));
            } catch (IllegalArgumentException e) {
                throw new TokenizerFormatException(file, "line " + (i + 1) + ": " + e.getMessage(), e);
            }
            if (rank != ranks.size() || bytes.length == 0) {
                throw new TokenizerFormatException(file, "line " + (i + 1) + " has rank " + rank + ", expected "
                        + ranks.size() + " (ranks must count up from 0, tokens be non-empty)");
            }
            ranks.add(bytes);
        }
        if (ranks.isEmpty()) {
            throw new TokenizerFormatException(file, "no ranks");
        }
        return ranks;
    }

    /** A token's bytes in GPT-2's byte alphabet (tokenizer.json's spelling). */
    static String mapped(byte[] bytes) {
        StringBuilder s = new StringBuilder(bytes.length);
        for (byte b : bytes) {
            s.append(ByteLevel.BYTE_TO_CHAR[b & 0xFF]);
        }
        return s.toString();
    }

    /** Every split (a, b) of every token into two tokens, ordered by the token's rank, then by split point. */
    static List<String[]> merges(String[] mapped, Map<String, Integer> vocab) {
        List<String[]> merges = new ArrayList<>();
        for (String token : mapped) {
            for (int cut = 1; cut < token.length(); cut++) {
                String a = token.substring(0, cut);
                String b = token.substring(cut);
                if (vocab.containsKey(a) && vocab.containsKey(b)) {
                    merges.add(new String[] {a, b});
                }
            }
        }
        return merges;
    }

    /** added_tokens_decoder's names, and reserved names for the other ids of the special range. */
    private static Map<Integer, String> specialTokens(Path config, int base) {
        Map<Integer, String> out = new java.util.TreeMap<>();
        if (Files.exists(config, LinkOption.NOFOLLOW_LINKS)) {
            JsonNode decoder = readJson(config).path("added_tokens_decoder");
            var fields = decoder.properties().iterator();
            while (fields.hasNext()) {
                var e = fields.next();
                int id;
                try {
                    id = Integer.parseInt(e.getKey());
                } catch (NumberFormatException ex) {
                    throw new TokenizerFormatException(config, "added_tokens_decoder key '" + e.getKey()
                            + "' is not an id");
                }
                String content = e.getValue().path("content").asText(null);
                if (content == null || id < base) {
                    throw new TokenizerFormatException(config, "added_tokens_decoder[" + id + "] needs a content "
                            + "and an id past the " + base + " ranks");
                }
                out.put(id, content);
            }
        }
        for (int id = base; id < base + RESERVED_SPECIAL_TOKENS; id++) {
            out.putIfAbsent(id, "<|reserved_token_" + id + "|>");
        }
        return out;
    }

    private static JsonNode readJson(Path file) {
        TokenizerJson.requireRegularFile(file);
        try {
            return JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw new TokenizerFormatException(file, "malformed JSON: " + e.getMessage(), e);
        }
    }
}
