package ai.k2j.tokenizer;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A byte-level BPE tokenizer described by GGUF metadata ({@code tokenizer.ggml.*}), rebuilt as the tokenizer.json
 * it was converted from and parsed by the same code, so it tokenizes as that file did:
 *
 * <ul>
 *   <li>{@code tokens} by id with {@code token_type}: NORMAL (1) tokens form the BPE vocabulary; CONTROL (3)
 *       tokens are special added tokens, USER_DEFINED (4) non-special added tokens; UNUSED (5) ids (the padding
 *       llama.cpp's converter fills the embedding rows with) are left out. Other types are refused. (The
 *       converter writes every {@code <|...|>} added token as CONTROL, also those tokenizer.json calls non-special,
 *       such as Qwen2.5's {@code <|fim_prefix|>}: GGUF keeps no other record, so those read back as special.)</li>
 *   <li>{@code merges} as "left right" strings, in rank order.</li>
 *   <li>{@code pre}: the pre-tokenizer by llama.cpp's name: {@code qwen2} (Qwen's split regex, NFC normalizer),
 *       {@code llama-bpe} (Llama 3's split regex), {@code default}/{@code gpt2} (GPT-2's ByteLevel regex).</li>
 * </ul>
 */
final class GgufVocabulary {
    private GgufVocabulary() {
    }

    static final int NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6;

    static final String QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
            + " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static final String LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
            + " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

    static Tokenizer build(Path source, String model, List<String> tokens, int[] types, List<String> merges,
                           String pre, String chatTemplate) {
        if (!"gpt2".equals(model)) {
            throw new TokenizerFormatException(source, "tokenizer.ggml.model '" + model
                    + "' is not supported (k2j reads byte-level BPE, 'gpt2')");
        }
        if (types != null && types.length != tokens.size()) {
            throw new TokenizerFormatException(source, "tokenizer.ggml.token_type has " + types.length
                    + " entries but tokenizer.ggml.tokens has " + tokens.size());
        }
        ObjectMapper json = new ObjectMapper();
        ObjectNode root = json.createObjectNode();
        Map<String, Integer> vocab = new HashMap<>();
        ArrayNode added = root.putArray("added_tokens");
        for (int id = 0; id < tokens.size(); id++) {
            int type = types == null ? NORMAL : types[id];
            String token = tokens.get(id);
            switch (type) {
                case NORMAL -> {
                    Integer previous = vocab.putIfAbsent(token, id);
                    if (previous != null) {
                        throw new TokenizerFormatException(source, "tokenizer.ggml.tokens[" + id + "] '" + token
                                + "' repeats token " + previous);
                    }
                }
                case CONTROL, USER_DEFINED -> {
                    ObjectNode a = added.addObject();
                    a.put("id", id);
                    a.put("content", token);
                    a.put("single_word", false);
                    a.put("lstrip", false);
                    a.put("rstrip", false);
                    a.put("normalized", false);
                    a.put("special", type == CONTROL);
                }
                case UNUSED -> {
                }
                default -> throw new TokenizerFormatException(source, "tokenizer.ggml.token_type[" + id + "] is "
                        + type + " (token '" + token + "'), which byte-level BPE does not use");
            }
        }
        List<String[]> pairs = new ArrayList<>(merges.size());
        for (int i = 0; i < merges.size(); i++) {
            String m = merges.get(i);
            int space = m.indexOf(' ', 1); // a merge's left part is never empty; its parts hold no spaces
            if (space < 0 || m.indexOf(' ', space + 1) >= 0) {
                throw new TokenizerFormatException(source, "tokenizer.ggml.merges[" + i + "] '" + m
                        + "' is not two tokens separated by one space");
            }
            pairs.add(new String[] {m.substring(0, space), m.substring(space + 1)});
        }
        ObjectNode modelNode = root.putObject("model");
        modelNode.put("type", "BPE");
        modelNode.put("byte_fallback", false);
        modelNode.put("ignore_merges", false);
        String name = pre == null ? "default" : pre;
        ObjectNode byteLevel = json.createObjectNode();
        byteLevel.put("type", "ByteLevel");
        byteLevel.put("add_prefix_space", false);
        switch (name) {
            case "qwen2", "llama-bpe", "llama3" -> {
                if (name.equals("qwen2")) {
                    root.putObject("normalizer").put("type", "NFC");
                }
                ObjectNode seq = root.putObject("pre_tokenizer");
                seq.put("type", "Sequence");
                ArrayNode steps = seq.putArray("pretokenizers");
                ObjectNode split = steps.addObject();
                split.put("type", "Split");
                split.putObject("pattern").put("Regex", name.equals("qwen2") ? QWEN2_SPLIT : LLAMA3_SPLIT);
                split.put("behavior", "Isolated");
                split.put("invert", false);
                byteLevel.put("use_regex", false);
                steps.add(byteLevel);
            }
            case "default", "gpt2" -> {
                byteLevel.put("use_regex", true);
                root.set("pre_tokenizer", byteLevel);
            }
            default -> throw new TokenizerFormatException(source, "tokenizer.ggml.pre '" + pre
                    + "' is not supported (k2j reads qwen2, llama-bpe, default)");
        }
        root.putObject("decoder").put("type", "ByteLevel");
        return new Tokenizer(TokenizerJson.parse(source, new TokenizerJson.Raw(root, vocab, pairs),
                new TokenizerJson.ChatTemplateConfig(chatTemplate, null, java.util.Map.of())));
    }
}
