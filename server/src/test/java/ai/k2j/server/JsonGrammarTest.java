package ai.k2j.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The JSON grammar: what a schema accepts and refuses, byte by byte, and which schemas it refuses to compile. */
class JsonGrammarTest {

    private static JsonGrammar.Node schema(String json) throws Exception {
        return JsonGrammar.root(JsonGrammar.compile(RequestParser.JSON.readTree(json), "schema"));
    }

    /** Whether the whole text is a complete value of the grammar. */
    private static boolean accepts(JsonGrammar.Node root, String text) {
        JsonGrammar.Frame f = JsonGrammar.walk(JsonGrammar.initial(root), text.getBytes(StandardCharsets.UTF_8));
        return f != null && JsonGrammar.canEnd(f);
    }

    /** Whether the text is a prefix the grammar can still complete. */
    private static boolean prefix(JsonGrammar.Node root, String text) {
        return JsonGrammar.walk(JsonGrammar.initial(root), text.getBytes(StandardCharsets.UTF_8)) != null;
    }

    @Test
    void objectPropertiesRequiredEnumsArraysNested() throws Exception {
        JsonGrammar.Node g = schema("""
                {"type": "object", "properties": {
                   "city": {"type": "string", "maxLength": 10},
                   "unit": {"enum": ["celsius", "fahrenheit"]},
                   "days": {"type": "integer"},
                   "temps": {"type": "array", "items": {"type": "number"}, "maxItems": 3},
                   "ok": {"type": "boolean"},
                   "note": {"type": ["string", "null"]},
                   "where": {"type": "object", "properties": {"lat": {"type": "number"}}, "required": ["lat"]}},
                 "required": ["city", "unit"], "additionalProperties": false}""");
        assertTrue(accepts(g, "{\"city\": \"Paris\", \"unit\": \"celsius\"}"));
        assertTrue(accepts(g, "{\"unit\":\"fahrenheit\",\"city\":\"Z\u00fcrich\",\"days\":-3,\"temps\":[1.5,-2e3,0],"
                + "\"ok\":true,\"note\":null,\"where\":{\"lat\":48.85}}"));
        assertTrue(accepts(g, "{ \"city\" : \"a\\\"b\\u00e9\" ,\n  \"unit\": \"celsius\" }"));
        assertFalse(prefix(g, " {"), "no whitespace before the value");
        byte[] badUtf8 = {'{', '"', 'c', 'i', 't', 'y', '"', ':', '"', (byte) 0xC3, (byte) 0x28};
        assertEquals(null, JsonGrammar.walk(JsonGrammar.initial(g), badUtf8), "invalid UTF-8 in a string");
        byte[] overlong = {'{', '"', 'c', 'i', 't', 'y', '"', ':', '"', (byte) 0xE0, (byte) 0x80};
        assertEquals(null, JsonGrammar.walk(JsonGrammar.initial(g), overlong), "an overlong form");
        assertFalse(prefix(g, "{\"city\": \"Paris\", \"city\""), "a property twice");
        assertFalse(prefix(g, "{\"country\""), "an unknown property");
        assertFalse(prefix(g, "{\"unit\": \"kelvin\""), "a value outside the enum");
        assertFalse(prefix(g, "{\"days\": 1.5"), "a fraction in an integer");
        assertFalse(prefix(g, "{\"city\": \"Paris\"}"), "a required property missing");
        assertFalse(prefix(g, "{\"city\": \"abcdefghijk"), "longer than maxLength");
        assertFalse(prefix(g, "{\"temps\": [1, 2, 3, 4"), "more than maxItems");
        assertFalse(prefix(g, "{\"where\": {}"), "a nested required property missing");
        assertFalse(prefix(g, "{\"city\": \"a\nb\""), "a raw newline in a string");
        assertTrue(prefix(g, "{\"city\": \"Paris\", \"unit\": \"celsius\"") && !accepts(g,
                "{\"city\": \"Paris\", \"unit\": \"celsius\""), "unfinished is not complete");
        assertFalse(prefix(g, "{\"city\": \"Paris\", \"unit\": \"celsius\"} x"), "text after the value");
    }

    @Test
    void freeJsonObjectAndBoundedWhitespace() {
        JsonGrammar.Node g = JsonGrammar.root(JsonGrammar.FREE_OBJECT);
        assertTrue(accepts(g, "{\"a\": [1, {\"b\": null}, \"x\", true, -0.5e-3], \"c\": {}}"));
        assertFalse(prefix(g, "[1]"), "json_object must be an object");
        assertFalse(prefix(g, "{" + " ".repeat(JsonGrammar.MAX_WHITESPACE + 1)), "whitespace runs are bounded");
        assertFalse(prefix(g, "{\"a\": 01"), "a leading zero");
        assertFalse(prefix(g, "{\"a\": " + "[".repeat(JsonGrammar.MAX_DEPTH + 1)), "nesting is bounded");
    }

    @Test
    void enumNumbersThatArePrefixesOfEachOther() throws Exception {
        JsonGrammar.Node g = schema("{\"type\": \"object\", \"properties\": {\"n\": {\"enum\": [1, 10, 100]}},"
                + " \"required\": [\"n\"]}");
        for (String n : List.of("1", "10", "100")) {
            assertTrue(accepts(g, "{\"n\": " + n + "}"), n);
        }
        assertFalse(prefix(g, "{\"n\": 1000"));
    }

    @Test
    void forcedToolCallDispatchesArgumentsByName() throws Exception {
        JsonGrammar.Node g = ToolCalls.forcedCall(ToolCalls.Format.HERMES, List.of("get_weather", "add"),
                List.of(JsonGrammar.compile(RequestParser.JSON.readTree("{\"type\": \"object\", \"properties\":"
                                + " {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}"), "p"),
                        JsonGrammar.compile(RequestParser.JSON.readTree("{\"type\": \"object\", \"properties\":"
                                + " {\"a\": {\"type\": \"integer\"}}, \"required\": [\"a\"]}"), "p")));
        assertTrue(accepts(g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"));
        assertTrue(accepts(g, "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 2}}\n</tool_call>"));
        assertFalse(prefix(g, "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"city\""), "add's schema, not get_weather's");
        assertFalse(prefix(g, "<tool_call>\n{\"name\": \"delete_all\""), "an unknown tool");
        ToolCalls.Parsed p = ToolCalls.parse("<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 2}}\n</tool_call>",
                ToolCalls.Format.HERMES, java.util.Set.of("add"));
        assertEquals(1, p.calls().size());
        assertEquals("{\"a\":2}", p.calls().getFirst().arguments());
        JsonGrammar.Node kimi = ToolCalls.forcedCall(ToolCalls.Format.KIMI, List.of("add"),
                List.of(JsonGrammar.FREE_OBJECT));
        String k = "<|tool_calls_section_begin|><|tool_call_begin|>functions.add:0<|tool_call_argument_begin|>"
                + "{\"a\": 1}<|tool_call_end|><|tool_calls_section_end|>";
        assertTrue(accepts(kimi, k));
        ToolCalls.Parsed kp = ToolCalls.parse("Sure. " + k, ToolCalls.Format.KIMI, java.util.Set.of("add"));
        assertEquals("functions.add:0", kp.calls().getFirst().id());
        assertEquals("add", kp.calls().getFirst().name());
        assertEquals("Sure.", kp.content());
    }

    @Test
    void malformedCallsAreContent() {
        for (String bad : List.of("<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 2}\n</tool_call>",
                "<tool_call>\n{\"name\": \"nope\", \"arguments\": {}}\n</tool_call>",
                "<tool_call>\n{\"name\": \"add\", \"arguments\": {}}", "no call at all")) {
            ToolCalls.Parsed p = ToolCalls.parse(bad, ToolCalls.Format.HERMES, java.util.Set.of("add"));
            assertTrue(p.calls().isEmpty(), bad);
            assertEquals(bad, p.content());
        }
    }

    @Test
    void vocabularyMaskAgreesWithTokenByTokenChecks() throws Exception {
        ai.k2j.tokenizer.Tokenizer tok = ai.k2j.tokenizer.Tokenizer.load(ai.k2j.testing.TestCheckpoints.demoDraft());
        GrammarConstraint.Vocabulary v = new GrammarConstraint.Vocabulary(tok, tok.vocabSize(), java.util.Set.of());
        JsonGrammar.Node g = schema("{\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\"},"
                + " \"short\": {\"type\": \"string\", \"maxLength\": 3}, \"n\": {\"type\": \"number\"}},"
                + " \"required\": [\"name\"]}");
        int eos = tok.id("<|endoftext|>").orElseThrow();
        for (String prefix : List.of("", "{", "{\"name\": \"ab", "{\"name\": \"\u00e9", "{\"short\": \"ab",
                "{\"name\": \"x\", \"n\": -1.5", "{\"name\": \"x\"}")) {
            GrammarConstraint c = new GrammarConstraint(g, v, new int[] {eos});
            for (byte b : prefix.getBytes(StandardCharsets.UTF_8)) { // byte by byte: any prefix, token-aligned or not
                c = walkByte(c, tok, b);
            }
            float[] logits = new float[tok.vocabSize()];
            c.mask(logits, 0);
            int allowed = 0;
            for (int id = 0; id < logits.length; id++) {
                boolean masked = logits[id] == Float.NEGATIVE_INFINITY;
                assertEquals(c.allows(id), !masked, "token " + id + " '" + tok.token(id) + "' after " + prefix);
                allowed += masked ? 0 : 1;
            }
            assertTrue(allowed > 0, prefix);
        }
    }

    /** The constraint advanced by one byte, through the single-byte token that spells it. */
    private static GrammarConstraint walkByte(GrammarConstraint c, ai.k2j.tokenizer.Tokenizer tok, byte b) {
        for (int id = 0; id < tok.vocabSize(); id++) {
            byte[] t = tok.tokenBytes(id);
            if (t.length == 1 && t[0] == b && !tok.isSpecial(id)) {
                c.accept(id);
                return c;
            }
        }
        throw new AssertionError("no single-byte token for " + b);
    }

    @Test
    void unsupportedSchemaFeaturesAreNamed() {
        for (String[] c : new String[][] {
                {"{\"type\": \"string\", \"pattern\": \"^a\"}", "pattern"},
                {"{\"type\": \"string\", \"format\": \"date\"}", "format"},
                {"{\"$ref\": \"#/$defs/x\"}", "$ref"},
                {"{\"type\": \"number\", \"minimum\": 0}", "minimum"},
                {"{\"anyOf\": [{\"type\": \"object\"}, {\"type\": \"object\", \"properties\": {}}]}", "begin with the same"},
                {"{\"type\": \"object\", \"properties\": {\"a\": {}}, \"additionalProperties\": true}", "additionalProperties"},
                {"{\"type\": \"object\", \"properties\": {\"a\": {}}, \"required\": [\"b\"]}", "'b'"}}) {
            JsonGrammar.UnsupportedSchemaException e = assertThrows(JsonGrammar.UnsupportedSchemaException.class,
                    () -> schema(c[0]));
            assertTrue(e.getMessage().contains(c[1]), e.getMessage());
        }
    }
}
