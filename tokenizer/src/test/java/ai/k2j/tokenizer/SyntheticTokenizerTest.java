package ai.k2j.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Small hand-made tokenizer.json files: merge order, added-token options, chat styles, bad files. */
class SyntheticTokenizerTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    /** A byte-level tokenizer whose vocab is the 256-char alphabet plus {@code extra}, in order. */
    private static ObjectNode byteLevelJson(List<String> extra, List<String> merges, boolean qwenRegex) {
        ObjectNode root = JSON.createObjectNode();
        ObjectNode model = root.putObject("model");
        model.put("type", "BPE");
        ObjectNode vocab = model.putObject("vocab");
        int id = 0;
        for (int b = 0; b < 256; b++) {
            vocab.put(String.valueOf(ByteLevel.BYTE_TO_CHAR[b]), id++);
        }
        for (String e : extra) {
            vocab.put(e, id++);
        }
        ArrayNode m = model.putArray("merges");
        for (int i = 0; i < merges.size(); i++) {
            // both serialisations HF writes: "a b" strings and [a, b] pairs
            if (i % 2 == 0) {
                m.add(merges.get(i));
            } else {
                String[] ab = merges.get(i).split(" ");
                m.addArray().add(ab[0]).add(ab[1]);
            }
        }
        root.putObject("normalizer").put("type", "NFC");
        ObjectNode pre = root.putObject("pre_tokenizer");
        if (qwenRegex) {
            pre.put("type", "Sequence");
            ArrayNode steps = pre.putArray("pretokenizers");
            ObjectNode split = steps.addObject();
            split.put("type", "Split");
            split.putObject("pattern").put("Regex",
                    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+");
            split.put("behavior", "Isolated");
            split.put("invert", false);
            ObjectNode bl = steps.addObject();
            bl.put("type", "ByteLevel");
            bl.put("add_prefix_space", false);
            bl.put("use_regex", false);
        } else {
            pre.put("type", "ByteLevel");
            pre.put("add_prefix_space", false);
            pre.put("use_regex", false);
        }
        root.putObject("decoder").put("type", "ByteLevel");
        root.putArray("added_tokens");
        return root;
    }

    private Tokenizer load(ObjectNode json) throws Exception {
        Path dir = Files.createTempDirectory(tmp, "tok");
        Files.writeString(dir.resolve("tokenizer.json"), JSON.writeValueAsString(json));
        return Tokenizer.load(dir);
    }

    private static void addToken(ObjectNode json, int id, String content, boolean special, Map<String, Boolean> flags) {
        ObjectNode t = ((ArrayNode) json.get("added_tokens")).addObject();
        t.put("id", id);
        t.put("content", content);
        t.put("special", special);
        for (String f : List.of("single_word", "lstrip", "rstrip", "normalized")) {
            t.put(f, flags.getOrDefault(f, false));
        }
    }

    private static int b(char c) {
        return c; // ids 0..255 are the byte alphabet in byte order; ASCII letters map to themselves
    }

    @Test
    void lowestRankMergesFirst() throws Exception {
        // ids: ab=256, bc=257, abc=258
        Tokenizer t = load(byteLevelJson(List.of("ab", "bc", "abc"), List.of("b c", "a b", "ab c"), false));
        assertArrayEquals(new int[] {b('a'), 257}, t.encode("abc")); // "b c" has rank 0; (a, bc) has no merge
        Tokenizer u = load(byteLevelJson(List.of("ab", "bc", "abc"), List.of("a b", "b c", "ab c"), false));
        assertArrayEquals(new int[] {258}, u.encode("abc"));
    }

    @Test
    void equalRanksMergeLeftmostFirst() throws Exception {
        Tokenizer t = load(byteLevelJson(List.of("aa"), List.of("a a"), false));
        assertArrayEquals(new int[] {256, b('a')}, t.encode("aaa"));
        assertArrayEquals(new int[] {256, 256}, t.encode("aaaa"));
        assertEquals("aaaaa", t.decode(t.encode("aaaaa")));
    }

    @Test
    void addedTokenOptions() throws Exception {
        ObjectNode json = byteLevelJson(List.of(), List.of(), true);
        addToken(json, 300, "<s>", true, Map.of());
        addToken(json, 301, "foo", false, Map.of("single_word", true, "normalized", true));
        addToken(json, 302, "[L]", false, Map.of("lstrip", true, "rstrip", true));
        addToken(json, 303, "<s>x", false, Map.of()); // longer match at the same start wins
        Tokenizer t = load(json);
        assertArrayEquals(new int[] {b('a'), 300, b('b')}, t.encode("a<s>b"));
        assertArrayEquals(new int[] {303}, t.encode("<s>x"));
        // single_word: not inside a word
        assertArrayEquals(new int[] {301}, t.encode("foo"));
        assertEquals(301, t.encode("foo bar")[0]);
        assertTrue(java.util.Arrays.stream(t.encode("foobar")).noneMatch(i -> i == 301));
        // lstrip/rstrip swallow surrounding whitespace
        assertArrayEquals(new int[] {b('a'), 302, b('b')}, t.encode("a  [L]\t b"));
        // special tokens as text
        assertArrayEquals(new int[] {b('<'), b('s'), b('>')}, t.encode("<s>", false));
        assertTrue(t.isSpecial(300));
        assertArrayEquals(new int[] {300}, t.specialIds());
        assertEquals("ab", t.decode(new int[] {b('a'), 300, b('b')}, true));
    }

    @Test
    void chatStylesFollowTheConfigTemplate() throws Exception {
        ObjectNode json = byteLevelJson(List.of(), List.of(), true);
        Path plainDir = Files.createTempDirectory(tmp, "plain");
        Files.writeString(plainDir.resolve("tokenizer.json"), JSON.writeValueAsString(json));
        Tokenizer plain = Tokenizer.load(plainDir.resolve("tokenizer.json"));
        List<ChatMessage> msgs = List.of(ChatMessage.user("hi"), ChatMessage.assistant("yo"));
        assertEquals("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n<|im_start|>assistant\n",
                plain.applyChatTemplate(msgs, true));

        Path qwen25 = Files.createTempDirectory(tmp, "qwen25");
        Files.writeString(qwen25.resolve("tokenizer.json"), JSON.writeValueAsString(json));
        ObjectNode config = JSON.createObjectNode();
        config.put("chat_template", "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. "
                + "You are a helpful assistant.<|im_end|>\\n' }}{%- endif %}");
        Files.writeString(qwen25.resolve("tokenizer_config.json"), JSON.writeValueAsString(config));
        Tokenizer q = Tokenizer.load(qwen25);
        assertEquals("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
                + "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", q.applyChatTemplate(List.of(ChatMessage.user("hi")), true));
        assertEquals("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n",
                q.applyChatTemplate(List.of(ChatMessage.system("S"), ChatMessage.user("hi")), false));
        assertEquals("<|im_start|>user\nq<|im_end|>\n<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n</tool_response><|im_end|>\n",
                q.applyChatTemplate(List.of(ChatMessage.system("s"), ChatMessage.user("q"), new ChatMessage("tool", "r1"), new ChatMessage("tool", "r2")), false)
                        .replace("<|im_start|>system\ns<|im_end|>\n", ""));
    }

    @Test
    void qwen3TemplateSwitchesThinkingOffWithAnEmptyBlock() throws Exception {
        ObjectNode json = byteLevelJson(List.of(), List.of(), true);
        Path dir = Files.createTempDirectory(tmp, "qwen3");
        Files.writeString(dir.resolve("tokenizer.json"), JSON.writeValueAsString(json));
        ObjectNode config = JSON.createObjectNode();
        // the parts of Qwen3's template that choose its style
        config.put("chat_template", "{%- set reasoning_content = '' %}{{- '<think>\\n' + reasoning_content + "
                + "'\\n</think>\\n\\n' }}{%- if enable_thinking is defined and enable_thinking is false %}");
        Files.writeString(dir.resolve("tokenizer_config.json"), JSON.writeValueAsString(config));
        Tokenizer q3 = Tokenizer.load(dir);
        assertTrue(q3.chatTemplateThinks());
        List<ChatMessage> msgs = List.of(ChatMessage.user("hi /no_think"));
        assertEquals("<|im_start|>user\nhi /no_think<|im_end|>\n<|im_start|>assistant\n",
                q3.applyChatTemplate(msgs, true));
        assertEquals(q3.applyChatTemplate(msgs, true), q3.applyChatTemplate(msgs, true, true));
        assertEquals("<|im_start|>user\nhi /no_think<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
                q3.applyChatTemplate(msgs, true, false));
        assertEquals("<|im_start|>user\nhi /no_think<|im_end|>\n", q3.applyChatTemplate(msgs, false, false),
                "no generation prompt, no think block");
    }

    @Test
    void onigCharacterClasses() {
        var space = OnigRegex.compile("\\s+");
        for (String ws : List.of(" ", "\t", "\u000B", "\u0085", "\u00A0", "\u2028", "\u3000", "\u2009")) {
            assertTrue(space.matcher(ws).matches(), "\\s should match U+" + Integer.toHexString(ws.charAt(0)));
        }
        for (String not : List.of("\u200B", "\u001C", "\uFEFF", "\u180E")) {
            assertTrue(!space.matcher(not).matches(), "\\s should not match U+" + Integer.toHexString(not.charAt(0)));
        }
        assertTrue(OnigRegex.compile("[^\\s\\p{L}]+").matcher("!?").matches());
        assertTrue(!OnigRegex.compile("[^\\s\\p{L}]+").matcher("!\u3000").matches());
        assertTrue(OnigRegex.compile("(?i:'s)").matcher("'\u017F").matches(), "Unicode case folding: long s");
        assertTrue(OnigRegex.compile("\\w").matcher("\u00B2").matches(), "Onig \\w includes No");
        assertTrue(OnigRegex.compile("a.b").matcher("a\rb").matches(), "'.' excludes only \\n");
        assertThrows(IllegalArgumentException.class, () -> OnigRegex.compile("a\\Kb"));
    }

    @Test
    void malformedFilesNameTheFileAndProblem() throws Exception {
        Path notJson = tmp.resolve("bad.json");
        Files.writeString(notJson, "{ not json");
        assertProblem(notJson, "malformed JSON");

        Path noModel = tmp.resolve("nomodel.json");
        Files.writeString(noModel, "{\"added_tokens\": []}");
        assertProblem(noModel, "missing \"model\"");

        ObjectNode wp = byteLevelJson(List.of(), List.of(), false);
        ((ObjectNode) wp.get("model")).put("type", "WordPiece");
        assertProblem(write("wordpiece.json", wp), "unsupported model type");

        ObjectNode badMerge = byteLevelJson(List.of(), List.of("a b"), false);
        assertProblem(write("badmerge.json", badMerge), "merged token \"ab\" is not in model.vocab");

        ObjectNode unknownPart = byteLevelJson(List.of(), List.of(), false);
        ((ArrayNode) unknownPart.get("model").get("merges")).add("zz q");
        assertProblem(write("unknownpart.json", unknownPart), "token \"zz\" is not in model.vocab");

        ObjectNode badRegex = byteLevelJson(List.of(), List.of(), true);
        ((ObjectNode) badRegex.get("pre_tokenizer").get("pretokenizers").get(0).get("pattern")).put("Regex", "(unclosed");
        assertProblem(write("badregex.json", badRegex), "cannot be used");

        ObjectNode badNorm = byteLevelJson(List.of(), List.of(), false);
        ((ObjectNode) badNorm.get("normalizer")).put("type", "Precompiled");
        assertProblem(write("badnorm.json", badNorm), "unsupported normalizer type \"Precompiled\"");

        ObjectNode badAdded = byteLevelJson(List.of(), List.of(), false);
        ((ArrayNode) badAdded.get("added_tokens")).addObject().put("content", "<x>");
        assertProblem(write("badadded.json", badAdded), "added_tokens[0]");

        Path emptyDir = Files.createTempDirectory(tmp, "empty");
        assertProblem(emptyDir, "no tokenizer.json");
        assertProblem(tmp.resolve("absent.json"), "file not found");

        Path goodDir = Files.createTempDirectory(tmp, "cfg");
        Files.writeString(goodDir.resolve("tokenizer.json"), JSON.writeValueAsString(byteLevelJson(List.of(), List.of(), false)));
        Files.writeString(goodDir.resolve("tokenizer_config.json"), "[1, 2");
        assertProblem(goodDir, "tokenizer_config.json");
    }

    private Path write(String name, ObjectNode json) throws Exception {
        Path p = tmp.resolve(name);
        Files.writeString(p, JSON.writeValueAsString(json));
        return p;
    }

    private static void assertProblem(Path path, String expected) {
        TokenizerFormatException e = assertThrows(TokenizerFormatException.class, () -> Tokenizer.load(path));
        assertTrue(e.getMessage().contains(expected), "message lacks '" + expected + "': " + e.getMessage());
        assertTrue(e.getMessage().contains(path.getFileName().toString()), "message lacks the file: " + e.getMessage());
    }
}
