package ai.k2j.tokenizer;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.UnaryOperator;
import java.util.regex.Pattern;

/**
 * Reads an HF tokenizer.json (and optional tokenizer_config.json) into the parts of a {@link Tokenizer}.
 * Supported: model BPE; normalizers NFC/NFD/NFKC/NFKD/Lowercase/Sequence; pre-tokenizers
 * Split/ByteLevel/Sequence; decoder ByteLevel or none. Anything else is rejected with a
 * {@link TokenizerFormatException} naming the file and the problem.
 */
final class TokenizerJson {
    private TokenizerJson() {}

    record Parsed(Bpe bpe, Map<String, Integer> vocab, List<AddedVocabulary.AddedToken> addedTokens,
                  UnaryOperator<String> normalizer, PreTokenizer preTokenizer, boolean byteLevelDecoder,
                  ChatTemplateConfig chat) {

        String chatTemplate() {
            return chat.template();
        }
    }

    /**
     * What tokenizer_config.json (and chat_template.jinja) say about chat: the default template, the
     * {@code tool_use} one when the config names several, and the special-token strings templates read
     * ({@code bos_token}, {@code eos_token}, {@code unk_token}, {@code pad_token}).
     */
    record ChatTemplateConfig(String template, String toolUseTemplate, Map<String, String> specialTokens) {
        static final ChatTemplateConfig NONE = new ChatTemplateConfig(null, null, Map.of());
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    static Parsed load(Path path) {
        if (TiktokenModel.present(path)) { // Kimi K2: tiktoken.model + tokenizer_config.json
            return TiktokenModel.load(path);
        }
        Path file = path;
        Path config = null;
        if (Files.isDirectory(path)) {
            file = path.resolve("tokenizer.json");
            config = path.resolve("tokenizer_config.json");
            if (!Files.exists(file, LinkOption.NOFOLLOW_LINKS)) {
                throw new TokenizerFormatException(path, "directory holds no tokenizer.json");
            }
        } else {
            Path sibling = path.resolveSibling("tokenizer_config.json");
            config = sibling;
        }
        requireRegularFile(file);
        Raw raw = readTokenizerJson(file);
        ChatTemplateConfig chat = ChatTemplateConfig.NONE;
        if (config != null && Files.exists(config, LinkOption.NOFOLLOW_LINKS)) {
            requireRegularFile(config);
            chat = chatConfig(config, readJson(config));
        }
        // transformers >= 4.43 may save the template on its own, beside the config; that file wins, as in HF
        Path jinja = (config != null ? config : file).resolveSibling("chat_template.jinja");
        if (Files.exists(jinja, LinkOption.NOFOLLOW_LINKS)) {
            requireRegularFile(jinja);
            try {
                chat = new ChatTemplateConfig(Files.readString(jinja), chat.toolUseTemplate(), chat.specialTokens());
            } catch (java.io.IOException | java.io.UncheckedIOException e) {
                throw new TokenizerFormatException(jinja, "cannot read: " + e, e);
            }
        }
        return parse(file, raw, chat);
    }

    /**
     * Reading a FIFO blocks forever and {@code /dev/zero} never ends: anything but a regular file (after
     * symlinks) is refused, saying what it is.
     */
    static void requireRegularFile(Path file) {
        BasicFileAttributes attrs;
        try {
            attrs = Files.readAttributes(file, BasicFileAttributes.class);
        } catch (NoSuchFileException e) {
            throw new TokenizerFormatException(file, Files.isSymbolicLink(file)
                    ? "is a symbolic link to " + linkTarget(file) + ", which does not exist" : "file not found");
        } catch (IOException e) {
            throw new TokenizerFormatException(file, "cannot read its attributes: " + e, e);
        }
        if (attrs.isRegularFile()) {
            return;
        }
        String what = attrs.isDirectory() ? "a directory" : "a special file";
        if (!attrs.isDirectory()) {
            try {
                int mode = (Integer) Files.getAttribute(file, "unix:mode");
                what = switch (mode & 0170000) {
                    case 0010000 -> "a FIFO (named pipe)";
                    case 0020000 -> "a character device";
                    case 0060000 -> "a block device";
                    case 0140000 -> "a socket";
                    default -> "a special file";
                };
            } catch (IOException | RuntimeException e) {
                what = "a special file (a device, pipe or socket)";
            }
        }
        String via = Files.isSymbolicLink(file) ? " (a symbolic link to " + linkTarget(file) + ")" : "";
        throw new TokenizerFormatException(file, "is " + what + via + ", not a regular file");
    }

    private static String linkTarget(Path link) {
        try {
            return Files.readSymbolicLink(link).toString();
        } catch (IOException e) {
            return "an unreadable target";
        }
    }

    /** The largest token id accepted: ids size per-id tables, so they are bounded before anything is allocated. */
    static final int MAX_TOKEN_ID = (1 << 24) - 1;
    /** How many ids past the number of tokens the largest id may lie (a vocabulary may leave a few unused). */
    static final int MAX_UNUSED_IDS = 1 << 16;

    /** Checks every id against the number of tokens and {@link #MAX_TOKEN_ID}, naming the first one too large. */
    static void checkIds(Path file, Map<String, Integer> vocab, List<AddedVocabulary.AddedToken> added) {
        long tokens = (long) vocab.size() + added.size();
        long limit = Math.min(MAX_TOKEN_ID, tokens - 1 + MAX_UNUSED_IDS);
        String why = " is beyond " + limit + ": the file has " + tokens + " tokens (ids may leave at most "
                + MAX_UNUSED_IDS + " unused; no id may exceed " + MAX_TOKEN_ID + ")";
        for (Map.Entry<String, Integer> e : vocab.entrySet()) {
            if (e.getValue() > limit) {
                throw new TokenizerFormatException(file, "model.vocab token " + quote(e.getKey()) + " has id "
                        + e.getValue() + ", which" + why);
            }
        }
        for (AddedVocabulary.AddedToken t : added) {
            if (t.id() > limit) {
                throw new TokenizerFormatException(file, "added token " + quote(t.content()) + " has id " + t.id()
                        + ", which" + why);
            }
        }
    }

    /** tokenizer.json with the two large parts (model.vocab, model.merges) read by streaming. */
    record Raw(ObjectNode root, Map<String, Integer> vocab, List<String[]> merges) {}

    private static Raw readTokenizerJson(Path file) {
        if (!Files.exists(file)) {
            throw new TokenizerFormatException(file, "file not found");
        }
        try (JsonParser p = JSON.createParser(file.toFile())) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw new TokenizerFormatException(file, "top level is not a JSON object");
            }
            ObjectNode root = JSON.createObjectNode();
            Map<String, Integer> vocab = null;
            List<String[]> merges = null;
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                JsonToken t = p.nextToken();
                if (name.equals("model") && t == JsonToken.START_OBJECT) {
                    ObjectNode model = root.putObject("model");
                    while (p.nextToken() == JsonToken.FIELD_NAME) {
                        String f = p.currentName();
                        JsonToken ft = p.nextToken();
                        if (f.equals("vocab") && ft == JsonToken.START_OBJECT) {
                            vocab = readVocab(file, p);
                        } else if (f.equals("merges") && ft == JsonToken.START_ARRAY) {
                            merges = readMerges(file, p);
                        } else {
                            model.set(f, p.readValueAsTree());
                        }
                    }
                } else {
                    root.set(name, p.readValueAsTree());
                }
            }
            if (p.currentToken() != JsonToken.END_OBJECT || p.nextToken() != null) {
                throw new TokenizerFormatException(file, "malformed JSON: trailing content after the top-level object");
            }
            return new Raw(root, vocab, merges);
        } catch (JacksonException e) {
            throw new TokenizerFormatException(file, "malformed JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new TokenizerFormatException(file, "cannot read: " + e, e);
        }
    }

    private static Map<String, Integer> readVocab(Path file, JsonParser p) throws IOException {
        Map<String, Integer> vocab = new HashMap<>(1 << 18);
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String token = p.currentName();
            JsonToken t = p.nextToken();
            if (t != JsonToken.VALUE_NUMBER_INT || p.getLongValue() < 0 || p.getLongValue() > Integer.MAX_VALUE - 1) {
                throw new TokenizerFormatException(file, "model.vocab[" + quote(token) + "] is not a valid id: " + p.getText());
            }
            vocab.put(token, p.getIntValue());
        }
        return vocab;
    }

    private static List<String[]> readMerges(Path file, JsonParser p) throws IOException {
        List<String[]> merges = new ArrayList<>(1 << 18);
        JsonToken t;
        while ((t = p.nextToken()) != JsonToken.END_ARRAY) {
            int rank = merges.size();
            if (t == JsonToken.VALUE_STRING) { // legacy "a b"
                String m = p.getText();
                int sp = m.indexOf(' ');
                if (sp < 0 || m.indexOf(' ', sp + 1) >= 0) {
                    throw new TokenizerFormatException(file, "model.merges[" + rank + "] " + quote(m) + " is not two tokens separated by one space");
                }
                merges.add(new String[] {m.substring(0, sp), m.substring(sp + 1)});
            } else if (t == JsonToken.START_ARRAY) {
                String a = p.nextToken() == JsonToken.VALUE_STRING ? p.getText() : null;
                String b = a != null && p.nextToken() == JsonToken.VALUE_STRING ? p.getText() : null;
                if (b == null || p.nextToken() != JsonToken.END_ARRAY) {
                    throw new TokenizerFormatException(file, "model.merges[" + rank + "] is neither \"a b\" nor [a, b]");
                }
                merges.add(new String[] {a, b});
            } else {
                throw new TokenizerFormatException(file, "model.merges[" + rank + "] is neither \"a b\" nor [a, b]");
            }
        }
        return merges;
    }

    private static JsonNode readJson(Path file) {
        if (!Files.exists(file)) {
            throw new TokenizerFormatException(file, "file not found");
        }
        try {
            JsonNode n = JSON.readTree(file.toFile());
            if (n == null || n.isMissingNode()) {
                throw new TokenizerFormatException(file, "file is empty");
            }
            return n;
        } catch (JacksonException e) {
            throw new TokenizerFormatException(file, "malformed JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new TokenizerFormatException(file, "cannot read: " + e, e);
        }
    }

    static ChatTemplateConfig chatConfig(Path config, JsonNode root) {
        if (!root.isObject()) {
            throw new TokenizerFormatException(config, "top level is not a JSON object");
        }
        Map<String, String> specials = new java.util.LinkedHashMap<>();
        for (String name : new String[] {"bos_token", "eos_token", "unk_token", "pad_token"}) {
            JsonNode v = root.get(name);
            if (v != null && v.isTextual()) {
                specials.put(name, v.asText());
            } else if (v != null && v.isObject() && v.path("content").isTextual()) { // an AddedToken
                specials.put(name, v.get("content").asText());
            }
        }
        JsonNode t = root.get("chat_template");
        if (t == null || t.isNull()) {
            return new ChatTemplateConfig(null, null, specials);
        }
        if (t.isTextual()) {
            return new ChatTemplateConfig(t.asText(), null, specials);
        }
        if (t.isArray()) { // [{"name": ..., "template": ...}]: HF uses "default", and "tool_use" when given tools
            String dflt = null;
            String toolUse = null;
            for (JsonNode e : t) {
                if (e.path("template").isTextual()) {
                    if ("default".equals(e.path("name").asText(null))) {
                        dflt = e.get("template").asText();
                    } else if ("tool_use".equals(e.path("name").asText(null))) {
                        toolUse = e.get("template").asText();
                    }
                }
            }
            return new ChatTemplateConfig(dflt, toolUse, specials);
        }
        throw new TokenizerFormatException(config, "chat_template is neither a string nor a list");
    }

    static Parsed parse(Path file, Raw raw, ChatTemplateConfig chatTemplate) {
        JsonNode root = raw.root();
        JsonNode model = root.get("model");
        if (model == null || !model.isObject()) {
            throw new TokenizerFormatException(file, "missing \"model\" object");
        }
        String type = model.path("type").asText("BPE");
        if (!type.equals("BPE")) {
            throw new TokenizerFormatException(file, "unsupported model type \"" + type + "\" (only BPE)");
        }
        Map<String, Integer> vocab = raw.vocab();
        if (vocab == null) {
            throw new TokenizerFormatException(file, "model.vocab is missing or not an object");
        }

        String prefix = text(file, model, "continuing_subword_prefix");
        String suffix = text(file, model, "end_of_word_suffix");
        JsonNode dropout = model.get("dropout");
        if (dropout != null && !dropout.isNull() && dropout.asDouble() > 0) {
            throw new TokenizerFormatException(file, "BPE dropout is not supported");
        }
        String unk = text(file, model, "unk_token");
        int unkId = -1;
        if (unk != null) {
            Integer id = vocab.get(unk);
            if (id == null) {
                throw new TokenizerFormatException(file, "unk_token " + quote(unk) + " is not in model.vocab");
            }
            unkId = id;
        }
        boolean ignoreMerges = bool(model, "ignore_merges");
        if ((raw.merges() == null || raw.merges().isEmpty()) && !ignoreMerges) {
            // Without merges BPE can only emit single characters: every longer token is unreachable and text
            // silently encodes one character (or byte) per token.
            java.util.Set<String> addedContents = new java.util.HashSet<>();
            JsonNode addedList = root.path("added_tokens");
            for (JsonNode t : addedList) {
                addedContents.add(t.path("content").asText());
            }
            for (String token : vocab.keySet()) {
                String core = token;
                if (prefix != null && !prefix.isEmpty() && core.startsWith(prefix)) {
                    core = core.substring(prefix.length());
                }
                if (suffix != null && !suffix.isEmpty() && core.endsWith(suffix)) {
                    core = core.substring(0, core.length() - suffix.length());
                }
                boolean byteFallbackToken = token.length() == 6 && token.startsWith("<0x") && token.endsWith(">");
                if (core.codePointCount(0, core.length()) > 1 && !byteFallbackToken && !addedContents.contains(token)) {
                    throw new TokenizerFormatException(file, "model.merges is " + (raw.merges() == null
                            ? "missing" : "empty") + ", yet model.vocab holds multi-character tokens such as "
                            + quote(token) + " that only merges can produce");
                }
            }
        }
        Bpe.MergeMap merges = resolveMerges(file, raw.merges(), vocab, prefix);
        Bpe bpe = new Bpe(vocab, merges, unkId, bool(model, "fuse_unk"), bool(model, "byte_fallback"),
                ignoreMerges, prefix, suffix);

        List<AddedVocabulary.AddedToken> added = new ArrayList<>();
        JsonNode addedNode = root.get("added_tokens");
        if (addedNode != null && !addedNode.isNull()) {
            if (!addedNode.isArray()) {
                throw new TokenizerFormatException(file, "added_tokens is not an array");
            }
            int k = 0;
            for (JsonNode t : addedNode) {
                JsonNode id = t.get("id");
                JsonNode content = t.get("content");
                if (id == null || !id.isIntegralNumber() || id.asLong() < 0 || id.asLong() > Integer.MAX_VALUE - 1
                        || content == null || !content.isTextual()) {
                    throw new TokenizerFormatException(file, "added_tokens[" + k + "] needs an id >= 0 and a string content");
                }
                boolean special = bool(t, "special");
                // HF's AddedToken default: normalized = !special
                boolean normalized = t.has("normalized") ? bool(t, "normalized") : !special;
                added.add(new AddedVocabulary.AddedToken(id.asInt(), content.asText(), special,
                        bool(t, "single_word"), bool(t, "lstrip"), bool(t, "rstrip"), normalized));
                k++;
            }
        }

        checkIds(file, vocab, added);
        UnaryOperator<String> normalizer = normalizer(file, root.get("normalizer"));
        PreTokenizer pre = preTokenizer(file, root.get("pre_tokenizer"));
        JsonNode dec = root.get("decoder");
        boolean byteLevel;
        if (dec == null || dec.isNull()) {
            byteLevel = false;
        } else if ("ByteLevel".equals(dec.path("type").asText())) {
            byteLevel = true;
        } else {
            throw new TokenizerFormatException(file, "unsupported decoder type " + quote(dec.path("type").asText()) + " (only ByteLevel or none)");
        }
        return new Parsed(bpe, vocab, added, normalizer, pre, byteLevel, chatTemplate);
    }

    private static Bpe.MergeMap resolveMerges(Path file, List<String[]> pairs, Map<String, Integer> vocab, String prefix) {
        if (pairs == null) {
            return new Bpe.MergeMap(0);
        }
        Bpe.MergeMap map = new Bpe.MergeMap(pairs.size());
        int rank = 0;
        for (String[] pair : pairs) {
            String a = pair[0];
            String b = pair[1];
            Integer aId = vocab.get(a);
            Integer bId = vocab.get(b);
            if (aId == null || bId == null) {
                throw new TokenizerFormatException(file, "model.merges[" + rank + "]: token " + quote(aId == null ? a : b) + " is not in model.vocab");
            }
            String bTail = b;
            if (prefix != null && !prefix.isEmpty()) {
                if (!b.startsWith(prefix)) {
                    throw new TokenizerFormatException(file, "model.merges[" + rank + "]: " + quote(b) + " lacks continuing_subword_prefix");
                }
                bTail = b.substring(prefix.length());
            }
            Integer newId = vocab.get(a + bTail);
            if (newId == null) {
                throw new TokenizerFormatException(file, "model.merges[" + rank + "]: merged token " + quote(a + bTail) + " is not in model.vocab");
            }
            map.put(aId, bId, rank, newId);
            rank++;
        }
        return map;
    }

    static UnaryOperator<String> normalizer(Path file, JsonNode n) {
        if (n == null || n.isNull()) {
            return UnaryOperator.identity();
        }
        String type = n.path("type").asText();
        return switch (type) {
            case "NFC" -> s -> unicodeNormalize(s, Normalizer.Form.NFC);
            case "NFD" -> s -> Normalizer.normalize(s, Normalizer.Form.NFD);
            case "NFKC" -> s -> Normalizer.normalize(s, Normalizer.Form.NFKC);
            case "NFKD" -> s -> Normalizer.normalize(s, Normalizer.Form.NFKD);
            case "Lowercase" -> s -> s.toLowerCase(Locale.ROOT);
            case "Sequence" -> {
                JsonNode list = n.get("normalizers");
                if (list == null || !list.isArray()) {
                    throw new TokenizerFormatException(file, "normalizer Sequence lacks a \"normalizers\" array");
                }
                List<UnaryOperator<String>> steps = new ArrayList<>();
                for (JsonNode c : list) {
                    steps.add(normalizer(file, c));
                }
                yield s -> {
                    for (UnaryOperator<String> step : steps) {
                        s = step.apply(s);
                    }
                    return s;
                };
            }
            default -> throw new TokenizerFormatException(file, "unsupported normalizer type " + quote(type));
        };
    }

    /** NFC with a fast path: text below U+0300 is always in NFC. */
    private static String unicodeNormalize(String s, Normalizer.Form form) {
        for (int i = 0; i < s.length(); i++) {
            if (s.charAt(i) >= 0x300) {
                return Normalizer.normalize(s, form);
            }
        }
        return s;
    }

    static PreTokenizer preTokenizer(Path file, JsonNode n) {
        if (n == null || n.isNull()) {
            return null;
        }
        String type = n.path("type").asText();
        switch (type) {
            case "Sequence" -> {
                JsonNode list = n.get("pretokenizers");
                if (list == null || !list.isArray()) {
                    throw new TokenizerFormatException(file, "pre_tokenizer Sequence lacks a \"pretokenizers\" array");
                }
                List<PreTokenizer> steps = new ArrayList<>();
                for (JsonNode c : list) {
                    PreTokenizer p = preTokenizer(file, c);
                    if (p != null) {
                        steps.add(p);
                    }
                }
                return steps.isEmpty() ? null : PreTokenizer.sequence(steps);
            }
            case "Split" -> {
                JsonNode pat = n.get("pattern");
                Pattern pattern;
                if (pat != null && pat.path("Regex").isTextual()) {
                    String regex = pat.get("Regex").asText();
                    try {
                        pattern = OnigRegex.compile(regex);
                    } catch (IllegalArgumentException e) {
                        throw new TokenizerFormatException(file, "pre_tokenizer Split regex " + quote(regex) + " cannot be used: " + e.getMessage(), e);
                    }
                } else if (pat != null && pat.path("String").isTextual()) {
                    pattern = Pattern.compile(Pattern.quote(pat.get("String").asText()));
                } else {
                    throw new TokenizerFormatException(file, "pre_tokenizer Split needs pattern {\"Regex\": ...} or {\"String\": ...}");
                }
                String behavior = n.path("behavior").asText();
                PreTokenizer.Behavior b = switch (behavior) {
                    case "Removed" -> PreTokenizer.Behavior.REMOVED;
                    case "Isolated" -> PreTokenizer.Behavior.ISOLATED;
                    case "MergedWithPrevious" -> PreTokenizer.Behavior.MERGED_WITH_PREVIOUS;
                    case "MergedWithNext" -> PreTokenizer.Behavior.MERGED_WITH_NEXT;
                    case "Contiguous" -> PreTokenizer.Behavior.CONTIGUOUS;
                    default -> throw new TokenizerFormatException(file, "pre_tokenizer Split has unknown behavior " + quote(behavior));
                };
                return new PreTokenizer.Split(pattern, b, bool(n, "invert"));
            }
            case "ByteLevel" -> {
                boolean useRegex = !n.has("use_regex") || bool(n, "use_regex");
                return new PreTokenizer.ByteLevelStep(bool(n, "add_prefix_space"),
                        useRegex ? OnigRegex.compile(PreTokenizer.GPT2_PATTERN) : null);
            }
            default -> throw new TokenizerFormatException(file, "unsupported pre_tokenizer type " + quote(type));
        }
    }

    private static boolean bool(JsonNode n, String field) {
        JsonNode v = n.get(field);
        return v != null && v.asBoolean(false);
    }

    private static String text(Path file, JsonNode n, String field) {
        JsonNode v = n.get(field);
        if (v == null || v.isNull()) {
            return null;
        }
        if (!v.isTextual()) {
            throw new TokenizerFormatException(file, "model." + field + " is not a string");
        }
        return v.asText();
    }

    private static String quote(String s) {
        String q = s.length() > 80 ? s.substring(0, 80) + "..." : s;
        return '"' + q + '"';
    }
}
