package ai.k2j.server;

import com.fasterxml.jackson.databind.JsonNode;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A byte-level grammar for JSON values, compiled from a JSON schema (structured output) or built for a forced tool
 * call, and its recognizer. The recognizer state is an immutable {@link Frame} (the innermost value being read,
 * linked to the values that contain it), so checking a token is a walk over its bytes from a shared state with no
 * copying, and a vocabulary is masked by walking a sorted token list depth-first, pruning at the first refused byte.
 *
 * <p>Termination: whitespace runs inside containers are bounded ({@link #MAX_WHITESPACE} bytes; none around the
 * value), numbers to 15 integer, 15 fraction
 * and 3 exponent digits, nesting to {@link #MAX_DEPTH}, so every state reaches an end within a bounded number of
 * bytes — except free strings, which are bounded only by a schema's {@code maxLength} (or the request's max_tokens).
 */
final class JsonGrammar {
    static final int MAX_WHITESPACE = 4;
    static final int MAX_DEPTH = 32;
    static final int MAX_PROPERTIES = 64;

    enum Kind { ROOT, OBJECT, ARRAY, STRING, NUMBER, LITERALS, ANY, ANY_OF, SEQ }

    /** A compiled grammar element. Immutable after compilation. */
    static final class Node {
        final Kind kind;
        // OBJECT: properties in schema order, their key literals, which are required; additional: value of free keys
        String[] propNames;
        Node[] propSchemas;
        Node keyLiterals;
        long required;
        Node additional;
        // ARRAY
        Node items;
        int minItems;
        int maxItems = Integer.MAX_VALUE;
        // STRING
        int minLength;
        int maxLength = Integer.MAX_VALUE;
        // NUMBER
        boolean integer;
        // LITERALS: the texts sorted by bytes, and each one's index in the given order
        byte[][] literals;
        int[] literalInfo;
        // ANY_OF, SEQ (a part null: chosen by the info the previous part completed with, from dispatch)
        Node[] alternatives;
        Node[] parts;
        Node[] dispatch;
        // ROOT
        Node child;

        Node(Kind kind) {
            this.kind = kind;
        }
    }

    /** Immutable recognizer state: the innermost value's node, its progress, and the frame of its container. */
    static final class Frame {
        final Node node;
        final int mode;
        final int a;
        final int b;
        final long seen;
        final Frame parent;
        final int depth;

        Frame(Node node, int mode, int a, int b, long seen, Frame parent, int depth) {
            this.node = node;
            this.mode = mode;
            this.a = a;
            this.b = b;
            this.seen = seen;
            this.parent = parent;
            this.depth = depth;
        }

        Frame with(int mode, int a, int b) {
            return new Frame(node, mode, a, b, seen, parent, depth);
        }
    }

    // ---------------------------------------------------------------- shared nodes of free JSON

    static final Node ANY = new Node(Kind.ANY);
    static final Node ANY_STRING = string(0, Integer.MAX_VALUE);
    static final Node ANY_NUMBER = number(false);
    static final Node TRUE_FALSE_NULL = literals(List.of("true", "false", "null"));
    static final Node FREE_OBJECT = new Node(Kind.OBJECT);
    static final Node ANY_ARRAY = new Node(Kind.ARRAY);

    static {
        FREE_OBJECT.additional = ANY;
        ANY_ARRAY.items = ANY;
    }

    static Node string(int min, int max) {
        Node n = new Node(Kind.STRING);
        n.minLength = min;
        n.maxLength = max;
        return n;
    }

    static Node number(boolean integer) {
        Node n = new Node(Kind.NUMBER);
        n.integer = integer;
        return n;
    }

    /** A set of exact texts; the recognizer completes with the matched text's index in {@code texts}. */
    static Node literals(List<String> texts) {
        Node n = new Node(Kind.LITERALS);
        Integer[] order = new Integer[texts.size()];
        byte[][] bytes = new byte[texts.size()][];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
            bytes[i] = texts.get(i).getBytes(StandardCharsets.UTF_8);
        }
        Arrays.sort(order, Comparator.comparing(i -> bytes[i], Arrays::compareUnsigned));
        n.literals = new byte[order.length][];
        n.literalInfo = new int[order.length];
        for (int i = 0; i < order.length; i++) {
            n.literals[i] = bytes[order[i]];
            n.literalInfo[i] = order[i];
        }
        return n;
    }

    static Node root(Node child) {
        Node n = new Node(Kind.ROOT);
        n.child = child;
        return n;
    }

    /** Parts read one after another without whitespace; a null part is chosen from {@code dispatch} by the info the
     * part before it completed with (a tool's arguments schema by the tool name matched). */
    static Node seq(Node[] parts, Node[] dispatch) {
        Node n = new Node(Kind.SEQ);
        n.parts = parts;
        n.dispatch = dispatch;
        return n;
    }

    static Frame initial(Node root) {
        return new Frame(root, 0, 0, 0, 0, null, 0);
    }

    // ---------------------------------------------------------------- recognizer

    static Frame walk(Frame s, byte[] bytes) {
        for (int i = 0; i < bytes.length && s != null; i++) {
            s = step(s, bytes[i] & 0xFF);
        }
        return s;
    }

    private static boolean ws(int c) {
        return c == ' ' || c == '\n' || c == '\t' || c == '\r';
    }

    /** The state after byte {@code c}, or null when the grammar refuses it. */
    static Frame step(Frame f, int c) {
        Node n = f.node;
        switch (n.kind) {
            case ROOT -> { // no whitespace around the value: a model that likes indentation would spend tokens on it
                return f.mode == 0 ? start(n.child, f.with(1, 0, 0), c, 0) : null;
            }
            case OBJECT -> {
                return stepObject(f, c);
            }
            case ARRAY -> {
                return stepArray(f, c);
            }
            case STRING -> {
                return stepString(f, c);
            }
            case NUMBER -> {
                return stepNumber(f, c);
            }
            case LITERALS -> {
                return stepLiterals(f, c);
            }
            case SEQ -> {
                int k = f.mode / 2;
                Node part = n.parts[k] != null ? n.parts[k] : n.dispatch[f.b];
                return start(part, f.with(f.mode + 1, 0, f.b), c, 0);
            }
            default -> throw new IllegalStateException("no frame of kind " + n.kind);
        }
    }

    /** Begins reading {@code n} with its first byte; {@code excluded}: literal indexes refused (object keys seen). */
    static Frame start(Node n, Frame parent, int c, long excluded) {
        int depth = parent == null ? 0 : parent.depth;
        switch (n.kind) {
            case OBJECT -> {
                return c == '{' && depth < MAX_DEPTH ? new Frame(n, 0, 0, 0, 0, parent, depth + 1) : null;
            }
            case ARRAY -> {
                return c == '[' && depth < MAX_DEPTH ? new Frame(n, 0, 0, 0, 0, parent, depth + 1) : null;
            }
            case STRING -> {
                return c == '"' ? new Frame(n, 1, 0, 0, 0, parent, depth) : null;
            }
            case NUMBER -> {
                return stepNumber(new Frame(n, 0, 0, 0, 0, parent, depth), c);
            }
            case LITERALS -> {
                return stepLiterals(new Frame(n, 0, 0, n.literals.length, excluded, parent, depth), c);
            }
            case ANY -> {
                Node pick = switch (c) {
                    case '{' -> FREE_OBJECT;
                    case '[' -> ANY_ARRAY;
                    case '"' -> ANY_STRING;
                    case 't', 'f', 'n' -> TRUE_FALSE_NULL;
                    default -> c == '-' || (c >= '0' && c <= '9') ? ANY_NUMBER : null;
                };
                return pick == null ? null : start(pick, parent, c, 0);
            }
            case ANY_OF -> {
                for (Node alt : n.alternatives) { // first bytes are disjoint (checked when compiled)
                    Frame f = start(alt, parent, c, 0);
                    if (f != null) {
                        return f;
                    }
                }
                return null;
            }
            case SEQ -> {
                return step(new Frame(n, 0, 0, 0, 0, parent, depth), c);
            }
            default -> throw new IllegalStateException("cannot start " + n.kind);
        }
    }

    /** The container's state once its child value has been read; {@code info}: which literal matched, or -1. */
    static Frame complete(Frame p, int info) {
        Node n = p.node;
        return switch (n.kind) {
            case ROOT -> p.with(2, 0, 0);
            case OBJECT -> p.mode == 1 ? p.with(2, 0, info) : p.with(5, 0, 0);
            case ARRAY -> p.with(2, p.a, 0);
            case SEQ -> {
                int next = p.mode + 1;
                Node done = n.parts[p.mode / 2];
                // a choice among several literals (the tool names) picks the dispatched part that follows
                int b = done != null && done.kind == Kind.LITERALS && done.literals.length > 1 ? info : p.b;
                if (next / 2 == n.parts.length) {
                    yield complete(p.parent, -1);
                }
                yield p.with(next, 0, b);
            }
            default -> throw new IllegalStateException("no children in " + n.kind);
        };
    }

    /** Whether the text read so far is a complete value (only the end may follow). */
    static boolean canEnd(Frame f) {
        if (f == null) {
            return false;
        }
        if (f.node.kind == Kind.ROOT) {
            return f.mode == 2;
        }
        if (f.node.kind == Kind.NUMBER && numberAccepting(f.mode)) {
            return canEnd(complete(f.parent, -1));
        }
        if (f.node.kind == Kind.LITERALS) {
            int exact = exactLiteral(f);
            return exact >= 0 && canEnd(complete(f.parent, f.node.literalInfo[exact]));
        }
        return false;
    }

    private static Frame stepObject(Frame f, int c) {
        Node n = f.node;
        switch (f.mode) {
            case 0, 6 -> { // after '{' or ','
                if (ws(c)) {
                    return f.a < MAX_WHITESPACE ? f.with(f.mode, f.a + 1, 0) : null;
                }
                if (c == '}' && f.mode == 0) {
                    return (n.required & ~f.seen) == 0 ? complete(f.parent, -1) : null;
                }
                if (c != '"') {
                    return null;
                }
                Frame inKey = new Frame(n, 1, 0, 0, f.seen, f.parent, f.depth);
                return n.keyLiterals != null ? start(n.keyLiterals, inKey, c, f.seen)
                        : start(ANY_STRING, inKey, c, 0);
            }
            case 2 -> { // after a key (b: its property index)
                if (ws(c)) {
                    return f.a < MAX_WHITESPACE ? f.with(2, f.a + 1, f.b) : null;
                }
                return c == ':' ? f.with(3, 0, f.b) : null;
            }
            case 3 -> { // after ':'
                if (ws(c)) {
                    return f.a < MAX_WHITESPACE ? f.with(3, f.a + 1, f.b) : null;
                }
                boolean props = n.keyLiterals != null;
                Node value = props ? n.propSchemas[f.b] : n.additional;
                long seen = props ? f.seen | (1L << f.b) : f.seen;
                return start(value, new Frame(n, 4, 0, 0, seen, f.parent, f.depth), c, 0);
            }
            case 5 -> { // after a value
                if (ws(c)) {
                    return f.a < MAX_WHITESPACE ? f.with(5, f.a + 1, 0) : null;
                }
                if (c == ',') {
                    boolean more = n.keyLiterals == null || Long.bitCount(f.seen) < n.propNames.length;
                    return more ? f.with(6, 0, 0) : null;
                }
                if (c == '}') {
                    return (n.required & ~f.seen) == 0 ? complete(f.parent, -1) : null;
                }
                return null;
            }
            default -> throw new IllegalStateException("object mode " + f.mode);
        }
    }

    private static Frame stepArray(Frame f, int c) {
        Node n = f.node;
        switch (f.mode) {
            case 0, 3 -> { // after '[' or ',' (a: items so far, b: whitespace)
                if (ws(c)) {
                    return f.b < MAX_WHITESPACE ? f.with(f.mode, f.a, f.b + 1) : null;
                }
                if (c == ']' && f.mode == 0) {
                    return n.minItems == 0 ? complete(f.parent, -1) : null;
                }
                return f.a < n.maxItems ? start(n.items, f.with(1, f.a + 1, 0), c, 0) : null;
            }
            case 2 -> { // after an item
                if (ws(c)) {
                    return f.b < MAX_WHITESPACE ? f.with(2, f.a, f.b + 1) : null;
                }
                if (c == ',') {
                    return f.a < n.maxItems ? f.with(3, f.a, 0) : null;
                }
                if (c == ']') {
                    return f.a >= n.minItems ? complete(f.parent, -1) : null;
                }
                return null;
            }
            default -> throw new IllegalStateException("array mode " + f.mode);
        }
    }

    private static Frame stepString(Frame f, int c) {
        Node n = f.node;
        switch (f.mode) {
            case 1 -> { // in the string (a: characters so far; b: UTF-8 continuation bytes due, see utf8)
                if (f.b != 0) {
                    int lo = UTF8_LOW[f.b & 15];
                    int hi = UTF8_HIGH[f.b & 15];
                    if (c < lo || c > hi) {
                        return null;
                    }
                    int due = (f.b >> 4) - 1;
                    return f.with(1, f.a, due == 0 ? 0 : due << 4);
                }
                if (c == '"') {
                    return f.a >= n.minLength ? complete(f.parent, -1) : null;
                }
                if (c < 0x20 || f.a >= n.maxLength) {
                    return null;
                }
                if (c >= 0x80) { // a UTF-8 lead byte: one character, its continuation bytes checked as they come
                    int b = utf8(c);
                    return b < 0 ? null : f.with(1, f.a + 1, b);
                }
                return c == '\\' ? f.with(2, f.a + 1, 0) : f.with(1, f.a + 1, 0);
            }
            case 2 -> { // after '\'
                if ("\"\\/bfnrt".indexOf(c) >= 0) {
                    return f.with(1, f.a, 0);
                }
                return c == 'u' ? f.with(3, f.a, 0) : null;
            }
            case 3 -> { // \\u hex digits (b: how many so far)
                boolean hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
                if (!hex) {
                    return null;
                }
                return f.b < 3 ? f.with(3, f.a, f.b + 1) : f.with(1, f.a, 0);
            }
            default -> throw new IllegalStateException("string mode " + f.mode);
        }
    }

    // a UTF-8 lead byte's due continuation bytes, as (count << 4) | range of the first one (RFC 3629: no overlong
    // forms, no surrogates, nothing past U+10FFFF)
    private static final int[] UTF8_LOW = {0x80, 0xA0, 0x80, 0x90, 0x80};
    private static final int[] UTF8_HIGH = {0xBF, 0xBF, 0x9F, 0xBF, 0x8F};

    private static int utf8(int lead) {
        if (lead >= 0xC2 && lead <= 0xDF) {
            return 1 << 4;
        }
        if (lead >= 0xE0 && lead <= 0xEF) {
            return (2 << 4) | (lead == 0xE0 ? 1 : lead == 0xED ? 2 : 0);
        }
        if (lead >= 0xF0 && lead <= 0xF4) {
            return (3 << 4) | (lead == 0xF0 ? 3 : lead == 0xF4 ? 4 : 0);
        }
        return -1;
    }

    // number modes: 0 start, 1 after '-', 2 '0', 3 integer digits, 4 after '.', 5 fraction digits, 6 after 'e',
    // 7 after the exponent's sign, 8 exponent digits; a counts digits of the current part
    private static boolean numberAccepting(int mode) {
        return mode == 2 || mode == 3 || mode == 5 || mode == 8;
    }

    private static Frame stepNumber(Frame f, int c) {
        boolean digit = c >= '0' && c <= '9';
        boolean integer = f.node.integer;
        int m = f.mode;
        Frame next = switch (m) {
            case 0 -> c == '-' ? f.with(1, 0, 0) : c == '0' ? f.with(2, 1, 0) : digit ? f.with(3, 1, 0) : null;
            case 1 -> c == '0' ? f.with(2, 1, 0) : digit ? f.with(3, 1, 0) : null;
            case 2, 3 -> digit && m == 3 && f.a < 15 ? f.with(3, f.a + 1, 0)
                    : c == '.' && !integer ? f.with(4, 0, 0)
                    : (c == 'e' || c == 'E') && !integer ? f.with(6, 0, 0) : null;
            case 4 -> digit ? f.with(5, 1, 0) : null;
            case 5 -> digit && f.a < 15 ? f.with(5, f.a + 1, 0) : (c == 'e' || c == 'E') ? f.with(6, 0, 0) : null;
            case 6 -> c == '+' || c == '-' ? f.with(7, 0, 0) : digit ? f.with(8, 1, 0) : null;
            case 7 -> digit ? f.with(8, 1, 0) : null;
            case 8 -> digit && f.a < 3 ? f.with(8, f.a + 1, 0) : null;
            default -> throw new IllegalStateException("number mode " + m);
        };
        if (next != null) {
            return next;
        }
        // the number ended before c: c belongs to the container
        return numberAccepting(m) ? step(complete(f.parent, -1), c) : null;
    }

    /** The index (in sorted order) of a literal fully matched at this frame's position and not excluded, or -1. */
    private static int exactLiteral(Frame f) {
        Node n = f.node;
        for (int i = f.a; i < f.b; i++) {
            if (n.literals[i].length == f.mode && (f.seen & (1L << n.literalInfo[i])) == 0) {
                return i;
            }
            if (n.literals[i].length > f.mode) {
                break; // sorted: shorter (prefix) literals come first
            }
        }
        return -1;
    }

    private static Frame stepLiterals(Frame f, int c) {
        Node n = f.node;
        int pos = f.mode;
        int lo = -1;
        int hi = -1;
        boolean live = false;
        for (int i = f.a; i < f.b; i++) {
            byte[] l = n.literals[i];
            if (l.length > pos && (l[pos] & 0xFF) == c) {
                if (lo < 0) {
                    lo = i;
                }
                hi = i + 1;
                live |= (f.seen & (1L << n.literalInfo[i])) == 0;
            }
        }
        if (lo >= 0 && live) {
            Frame next = new Frame(n, pos + 1, lo, hi, f.seen, f.parent, f.depth);
            int exact = exactLiteral(next);
            if (exact >= 0) {
                boolean longer = false;
                for (int i = lo; i < hi; i++) {
                    if (i != exact && (f.seen & (1L << n.literalInfo[i])) == 0) {
                        longer = true;
                        break;
                    }
                }
                if (!longer) {
                    return complete(f.parent, n.literalInfo[exact]);
                }
            }
            return next;
        }
        int exact = exactLiteral(f);
        return exact >= 0 && pos > 0 ? step(complete(f.parent, n.literalInfo[exact]), c) : null;
    }

    // ---------------------------------------------------------------- JSON schema compiler

    /** A schema this grammar cannot enforce; the message names the keyword and where it is. */
    static final class UnsupportedSchemaException extends RuntimeException {
        UnsupportedSchemaException(String message) {
            super(message);
        }
    }

    private static final Set<String> ANNOTATIONS = Set.of("title", "description", "default", "examples", "$schema",
            "$id", "$comment", "deprecated", "readOnly", "writeOnly");
    private static final Set<String> OBJECT_WORDS = Set.of("properties", "required", "additionalProperties");
    private static final Set<String> ARRAY_WORDS = Set.of("items", "minItems", "maxItems");
    private static final Set<String> STRING_WORDS = Set.of("minLength", "maxLength");

    static Node compile(JsonNode schema, String path) {
        if (schema.isBoolean() && schema.booleanValue()) {
            return ANY;
        }
        if (!schema.isObject()) {
            throw new UnsupportedSchemaException(path + ": a schema must be an object");
        }
        for (Map.Entry<String, JsonNode> e : schema.properties()) {
            String k = e.getKey();
            if (!ANNOTATIONS.contains(k) && !OBJECT_WORDS.contains(k) && !ARRAY_WORDS.contains(k)
                    && !STRING_WORDS.contains(k) && !Set.of("type", "enum", "const", "anyOf").contains(k)) {
                throw new UnsupportedSchemaException(path + ": the keyword '" + k + "' is not supported by"
                        + " constrained decoding (supported: type, properties, required, additionalProperties false,"
                        + " items, minItems, maxItems, minLength, maxLength, enum, const, anyOf)");
            }
        }
        if (schema.has("enum") || schema.has("const")) {
            List<String> texts = new ArrayList<>();
            if (schema.has("const")) {
                texts.add(schema.get("const").toString());
            } else {
                if (!schema.get("enum").isArray() || schema.get("enum").isEmpty()) {
                    throw new UnsupportedSchemaException(path + ".enum: must be a non-empty array");
                }
                schema.get("enum").forEach(v -> texts.add(v.toString()));
            }
            return literals(texts);
        }
        if (schema.has("anyOf")) {
            JsonNode alts = schema.get("anyOf");
            if (!alts.isArray() || alts.isEmpty()) {
                throw new UnsupportedSchemaException(path + ".anyOf: must be a non-empty array");
            }
            Node[] nodes = new Node[alts.size()];
            for (int i = 0; i < nodes.length; i++) {
                nodes[i] = compile(alts.get(i), path + ".anyOf[" + i + "]");
            }
            return anyOf(nodes, path + ".anyOf");
        }
        JsonNode type = schema.get("type");
        if (type == null) {
            if (schema.has("properties")) {
                return object(schema, path);
            }
            return ANY;
        }
        if (type.isArray()) {
            Node[] nodes = new Node[type.size()];
            for (int i = 0; i < nodes.length; i++) {
                nodes[i] = typed(type.get(i).asText(), schema, path);
            }
            return nodes.length == 1 ? nodes[0] : anyOf(nodes, path + ".type");
        }
        return typed(type.asText(), schema, path);
    }

    private static Node typed(String type, JsonNode schema, String path) {
        return switch (type) {
            case "object" -> object(schema, path);
            case "array" -> {
                Node n = new Node(Kind.ARRAY);
                n.items = schema.has("items") ? compile(schema.get("items"), path + ".items") : ANY;
                n.minItems = count(schema, "minItems", 0, path);
                n.maxItems = count(schema, "maxItems", Integer.MAX_VALUE, path);
                yield n;
            }
            case "string" -> string(count(schema, "minLength", 0, path),
                    count(schema, "maxLength", Integer.MAX_VALUE, path));
            case "number" -> ANY_NUMBER;
            case "integer" -> number(true);
            case "boolean" -> literals(List.of("true", "false"));
            case "null" -> literals(List.of("null"));
            default -> throw new UnsupportedSchemaException(path + ".type: unknown type '" + type + "'");
        };
    }

    private static int count(JsonNode schema, String word, int dflt, String path) {
        JsonNode v = schema.get(word);
        if (v == null) {
            return dflt;
        }
        if (!v.canConvertToInt() || v.intValue() < 0 || !v.isIntegralNumber()) {
            throw new UnsupportedSchemaException(path + "." + word + ": must be a non-negative integer");
        }
        return v.intValue();
    }

    private static Node object(JsonNode schema, String path) {
        JsonNode props = schema.get("properties");
        JsonNode additional = schema.get("additionalProperties");
        Node n = new Node(Kind.OBJECT);
        if (props == null || props.isEmpty()) {
            if (schema.has("required") && !schema.get("required").isEmpty()) {
                throw new UnsupportedSchemaException(path + ".required: names properties the schema does not define");
            }
            if (additional == null || (additional.isBoolean() && additional.booleanValue())) {
                n.additional = ANY;
            } else if (additional.isBoolean()) { // additionalProperties false and no properties: only {}
                n.propNames = new String[0];
                n.propSchemas = new Node[0];
                n.keyLiterals = literals(List.of());
            } else {
                n.additional = compile(additional, path + ".additionalProperties");
            }
            return n;
        }
        if (!props.isObject()) {
            throw new UnsupportedSchemaException(path + ".properties: must be an object");
        }
        if (additional != null && !(additional.isBoolean() && !additional.booleanValue())) {
            throw new UnsupportedSchemaException(path + ".additionalProperties: only false is supported beside"
                    + " properties (the output has exactly the listed properties)");
        }
        if (props.size() > MAX_PROPERTIES) {
            throw new UnsupportedSchemaException(path + ".properties: more than " + MAX_PROPERTIES + " properties");
        }
        n.propNames = new String[props.size()];
        n.propSchemas = new Node[props.size()];
        List<String> keyTexts = new ArrayList<>();
        int i = 0;
        for (Map.Entry<String, JsonNode> e : props.properties()) {
            n.propNames[i] = e.getKey();
            n.propSchemas[i] = compile(e.getValue(), path + ".properties." + e.getKey());
            keyTexts.add(com.fasterxml.jackson.databind.node.TextNode.valueOf(e.getKey()).toString());
            i++;
        }
        n.keyLiterals = literals(keyTexts);
        JsonNode req = schema.get("required");
        if (req != null) {
            if (!req.isArray()) {
                throw new UnsupportedSchemaException(path + ".required: must be an array of property names");
            }
            for (JsonNode r : req) {
                int idx = Arrays.asList(n.propNames).indexOf(r.asText());
                if (idx < 0) {
                    throw new UnsupportedSchemaException(path + ".required: '" + r.asText() + "' is not among the"
                            + " properties");
                }
                n.required |= 1L << idx;
            }
        }
        return n;
    }

    private static Node anyOf(Node[] alternatives, String path) {
        boolean[] seen = new boolean[256];
        for (Node alt : alternatives) {
            boolean[] first = firstBytes(alt);
            for (int c = 0; c < 256; c++) {
                if (first[c] && seen[c]) {
                    throw new UnsupportedSchemaException(path + ": alternatives that can begin with the same"
                            + " character ('" + (char) c + "', e.g. two object schemas) are not supported");
                }
                seen[c] |= first[c];
            }
        }
        Node n = new Node(Kind.ANY_OF);
        n.alternatives = alternatives;
        return n;
    }

    static boolean[] firstBytes(Node n) {
        boolean[] out = new boolean[256];
        switch (n.kind) {
            case OBJECT -> out['{'] = true;
            case ARRAY -> out['['] = true;
            case STRING -> out['"'] = true;
            case NUMBER -> {
                out['-'] = true;
                for (int c = '0'; c <= '9'; c++) {
                    out[c] = true;
                }
            }
            case LITERALS -> {
                for (byte[] l : n.literals) {
                    if (l.length > 0) {
                        out[l[0] & 0xFF] = true;
                    }
                }
            }
            case ANY -> {
                for (Node x : new Node[] {FREE_OBJECT, ANY_ARRAY, ANY_STRING, ANY_NUMBER, TRUE_FALSE_NULL}) {
                    boolean[] f = firstBytes(x);
                    for (int c = 0; c < 256; c++) {
                        out[c] |= f[c];
                    }
                }
            }
            case ANY_OF -> {
                for (Node x : n.alternatives) {
                    boolean[] f = firstBytes(x);
                    for (int c = 0; c < 256; c++) {
                        out[c] |= f[c];
                    }
                }
            }
            default -> throw new IllegalStateException("first bytes of " + n.kind);
        }
        return out;
    }
}
