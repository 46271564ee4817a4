package ai.k2j.tokenizer;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A Jinja2 interpreter for chat templates, with the semantics of Python Jinja2 as Hugging Face transformers runs it
 * ({@code ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)}, the loop-controls extension, the
 * {@code {% generation %}} tag, and the globals {@code raise_exception}, {@code strftime_now}, a {@code tojson}
 * that is Python's {@code json.dumps}). Why not a general JVM engine: Jinjava 2.8.2 (tried) renders Python-isms
 * that every chat template uses differently — no {@code namespace()}, no {@code [::-1]} slices, no
 * {@code str.lstrip}, whitespace control ignored on {@code {{-}}, Java map order and JSON spacing from
 * {@code tojson} — so prompts would not be byte-identical to HF. This follows the approach of
 * {@code @huggingface/jinja} (transformers.js) and llama.cpp's minja: the subset templates use, exactly.
 *
 * <p>Sandboxed by construction: values are only strings, numbers, booleans, None, lists, dicts and the
 * interpreter's own objects; there is no reflection, file, import or include. Rendering is bounded in steps
 * ({@link #MAX_STEPS}), output ({@link #MAX_OUTPUT}), range size and macro depth; exceeding a bound, a syntax
 * error, or {@code raise_exception} throws {@link ChatTemplateException}.
 */
final class Jinja {

    static final int MAX_STEPS = 5_000_000;
    static final int MAX_OUTPUT = 8 << 20;
    static final int MAX_RANGE = 100_000;
    static final int MAX_DEPTH = 64;

    /** Jinja's Undefined: prints as "", is falsy, iterates empty; arithmetic on it fails. */
    static final Object UNDEFINED = new Object() {
        @Override
        public String toString() {
            return "Undefined";
        }
    };

    private final List<Node> body;

    private Jinja(List<Node> body) {
        this.body = body;
    }

    static Jinja parse(String source) {
        try {
            return new Jinja(new Parser(new Lexer(source).tokenize()).parseTemplate());
        } catch (StackOverflowError e) {
            throw new ChatTemplateException("chat template: blocks nested too deeply to parse");
        } catch (ChatTemplateException e) {
            throw e;
        } catch (RuntimeException e) { // a renderer bug must still be a clear 4xx-able error, never a crash
            throw new ChatTemplateException("chat template cannot be parsed: " + e);
        }
    }

    /** Renders with {@code context} (plain Java values: String, Long/Integer/Double, Boolean, null, List, Map). */
    String render(Map<String, Object> context, Map<String, Object> globals) {
        Renderer r = new Renderer();
        Scope root = new Scope(null);
        root.vars.putAll(globals);
        for (Map.Entry<String, Object> e : context.entrySet()) {
            root.vars.put(e.getKey(), JinjaValues.fromJava(e.getValue()));
        }
        r.root = root;
        try {
            r.renderAll(body, root);
        } catch (StackOverflowError e) {
            throw new ChatTemplateException("chat template: nested too deeply to render");
        } catch (BreakSignal | ContinueSignal e) {
            throw new ChatTemplateException("chat template: break or continue outside a for loop");
        } catch (ChatTemplateException e) {
            throw e;
        } catch (RuntimeException e) {
            throw new ChatTemplateException("chat template cannot be rendered: " + e);
        }
        return r.out.toString();
    }

    // ================================================================================================ lexer

    private enum T { TEXT, VAR_BEGIN, VAR_END, BLOCK_BEGIN, BLOCK_END, NAME, STRING, INT, FLOAT, OP, EOF }

    private record Tok(T type, String text, int line) {
        @Override
        public String toString() {
            return type == T.EOF ? "end of template" : "'" + text + "'";
        }
    }

    private static final class Lexer {
        private final String src;
        private final List<Tok> out = new ArrayList<>();
        private int pos;
        private int line = 1;

        Lexer(String source) {
            String s = source.replace("\r\n", "\n").replace('\r', '\n');
            if (s.endsWith("\n")) { // keep_trailing_newline=False
                s = s.substring(0, s.length() - 1);
            }
            this.src = s;
        }

        List<Tok> tokenize() {
            boolean lineStarting = true;
            boolean stripNextLeading = false;
            while (pos < src.length()) {
                int next = findTagStart(pos);
                String text = src.substring(pos, next < 0 ? src.length() : next);
                if (stripNextLeading) {
                    text = lstripPy(text);
                    stripNextLeading = false;
                }
                if (next < 0) {
                    addText(text);
                    pos = src.length();
                    break;
                }
                char kind = src.charAt(next + 1);
                int inner = next + 2;
                char mod = inner < src.length() ? src.charAt(inner) : 0;
                if (mod == '-') {
                    text = rstripPy(text);
                    inner++;
                } else if (mod == '+') {
                    inner++;
                } else if (kind != '{') { // lstrip_blocks: blocks and comments alone on their line
                    int lpos = text.lastIndexOf('\n') + 1;
                    if (lpos > 0 || lineStarting) {
                        boolean onlyBlank = true;
                        for (int i = lpos; i < text.length(); i++) {
                            char c = text.charAt(i);
                            if (c != ' ' && c != '\t') {
                                onlyBlank = false;
                                break;
                            }
                        }
                        if (onlyBlank) {
                            text = text.substring(0, lpos);
                        }
                    }
                }
                addText(text);
                line += count(src, pos, next);
                pos = inner;
                if (kind == '#') {
                    int end = src.indexOf("#}", pos);
                    if (end < 0) {
                        throw error("unclosed comment");
                    }
                    boolean minus = end > pos && src.charAt(end - 1) == '-';
                    line += count(src, pos, end + 2);
                    pos = end + 2;
                    if (minus) {
                        stripNextLeading = true;
                    } else if (pos < src.length() && src.charAt(pos) == '\n') { // trim_blocks
                        pos++;
                        line++;
                    }
                    lineStarting = pos > 0 && src.charAt(pos - 1) == '\n';
                    continue;
                }
                boolean block = kind == '%';
                out.add(new Tok(block ? T.BLOCK_BEGIN : T.VAR_BEGIN, block ? "{%" : "{{", line));
                int endKind = lexTag(block);
                // endKind: 0 plain end, 1 '-' end (strip following whitespace), 2 '+' end
                if (endKind == 1) {
                    stripNextLeading = true;
                } else if (block && endKind == 0 && pos < src.length() && src.charAt(pos) == '\n') {
                    pos++; // trim_blocks
                    line++;
                }
                lineStarting = pos > 0 && src.charAt(pos - 1) == '\n';
                if (block && isRawStart()) {
                    lexRaw();
                }
            }
            out.add(new Tok(T.EOF, "", line));
            return out;
        }

        /** After {@code {% raw %}}: everything up to {@code {% endraw %}} is text. */
        private boolean isRawStart() {
            int n = out.size();
            return n >= 3 && out.get(n - 1).type == T.BLOCK_END && out.get(n - 2).type == T.NAME
                    && out.get(n - 2).text.equals("raw") && out.get(n - 3).type == T.BLOCK_BEGIN;
        }

        private void lexRaw() {
            out.removeLast();
            out.removeLast();
            out.removeLast();
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("\\{%([-+]?)\\s*endraw\\s*([-+]?)%}")
                    .matcher(src);
            if (!m.find(pos)) {
                throw error("missing {% endraw %}");
            }
            String text = src.substring(pos, m.start());
            if (m.group(1).equals("-")) {
                text = rstripPy(text);
            }
            addText(text);
            line += count(src, pos, m.end());
            pos = m.end();
            if (m.group(2).equals("-")) {
                while (pos < src.length() && isPySpace(src.charAt(pos))) {
                    pos++;
                }
            } else if (!m.group(2).equals("+") && pos < src.length() && src.charAt(pos) == '\n') {
                pos++;
            }
        }

        private int findTagStart(int from) {
            int i = from;
            while (true) {
                i = src.indexOf('{', i);
                if (i < 0 || i + 1 >= src.length()) {
                    return -1;
                }
                char c = src.charAt(i + 1);
                if (c == '{' || c == '%' || c == '#') {
                    return i;
                }
                i++;
            }
        }

        private void addText(String text) {
            if (!text.isEmpty()) {
                out.add(new Tok(T.TEXT, text, line));
            }
        }

        /** Tokens up to the tag's end; returns how the tag ended (0 plain, 1 '-', 2 '+'). */
        private int lexTag(boolean block) {
            char close = block ? '%' : '}';
            while (true) {
                while (pos < src.length() && isPySpace(src.charAt(pos))) {
                    if (src.charAt(pos) == '\n') {
                        line++;
                    }
                    pos++;
                }
                if (pos >= src.length()) {
                    throw error("unclosed " + (block ? "{%" : "{{"));
                }
                char c = src.charAt(pos);
                if ((c == '-' || c == '+') && src.startsWith(close + "}", pos + 1)) {
                    pos += 3;
                    out.add(new Tok(block ? T.BLOCK_END : T.VAR_END, "end", line));
                    return c == '-' ? 1 : 2;
                }
                if (c == close && pos + 1 < src.length() && src.charAt(pos + 1) == '}') {
                    pos += 2;
                    out.add(new Tok(block ? T.BLOCK_END : T.VAR_END, "end", line));
                    return 0;
                }
                if (c == '\'' || c == '"') {
                    out.add(new Tok(T.STRING, readString(c), line));
                } else if (Character.isDigit(c)) {
                    int s = pos;
                    while (pos < src.length() && (Character.isDigit(src.charAt(pos)) || src.charAt(pos) == '_')) {
                        pos++;
                    }
                    boolean isFloat = false;
                    if (pos + 1 < src.length() && src.charAt(pos) == '.' && Character.isDigit(src.charAt(pos + 1))) {
                        isFloat = true;
                        pos++;
                        while (pos < src.length() && Character.isDigit(src.charAt(pos))) {
                            pos++;
                        }
                    }
                    if (pos < src.length() && (src.charAt(pos) == 'e' || src.charAt(pos) == 'E')) {
                        int save = pos;
                        pos++;
                        if (pos < src.length() && (src.charAt(pos) == '+' || src.charAt(pos) == '-')) {
                            pos++;
                        }
                        if (pos < src.length() && Character.isDigit(src.charAt(pos))) {
                            isFloat = true;
                            while (pos < src.length() && Character.isDigit(src.charAt(pos))) {
                                pos++;
                            }
                        } else {
                            pos = save;
                        }
                    }
                    out.add(new Tok(isFloat ? T.FLOAT : T.INT, src.substring(s, pos).replace("_", ""), line));
                } else if (Character.isLetter(c) || c == '_') {
                    int s = pos;
                    while (pos < src.length() && (Character.isLetterOrDigit(src.charAt(pos)) || src.charAt(pos) == '_')) {
                        pos++;
                    }
                    out.add(new Tok(T.NAME, src.substring(s, pos), line));
                } else {
                    String op = null;
                    for (String o : new String[] {"==", "!=", "<=", ">=", "//", "**"}) {
                        if (src.startsWith(o, pos)) {
                            op = o;
                            break;
                        }
                    }
                    if (op == null) {
                        if ("+-*/%~<>=.,:|()[]{}".indexOf(c) < 0) {
                            throw error("unexpected character '" + c + "'");
                        }
                        op = String.valueOf(c);
                    }
                    pos += op.length();
                    out.add(new Tok(T.OP, op, line));
                }
            }
        }

        private String readString(char quote) {
            StringBuilder sb = new StringBuilder();
            pos++;
            while (true) {
                if (pos >= src.length()) {
                    throw error("unterminated string");
                }
                char c = src.charAt(pos++);
                if (c == quote) {
                    return sb.toString();
                }
                if (c == '\n') {
                    line++;
                }
                if (c != '\\') {
                    sb.append(c);
                    continue;
                }
                if (pos >= src.length()) {
                    throw error("unterminated string");
                }
                char e = src.charAt(pos++);
                switch (e) {
                    case 'n' -> sb.append('\n');
                    case 't' -> sb.append('\t');
                    case 'r' -> sb.append('\r');
                    case 'b' -> sb.append('\b');
                    case 'f' -> sb.append('\f');
                    case 'v' -> sb.append('\u000b');
                    case 'a' -> sb.append('\u0007');
                    case '0' -> sb.append('\0');
                    case '\\', '\'', '"' -> sb.append(e);
                    case '\n' -> line++;
                    case 'x' -> sb.append((char) hex(2));
                    case 'u' -> sb.append((char) hex(4));
                    case 'U' -> sb.appendCodePoint(hex(8));
                    default -> sb.append('\\').append(e);
                }
            }
        }

        private int hex(int digits) {
            if (pos + digits > src.length()) {
                throw error("truncated escape in string");
            }
            try {
                int v = Integer.parseInt(src.substring(pos, pos + digits), 16);
                pos += digits;
                return v;
            } catch (NumberFormatException e) {
                throw error("bad escape in string");
            }
        }

        private ChatTemplateException error(String what) {
            return new ChatTemplateException("chat template line " + line + ": " + what);
        }

        private static int count(String s, int from, int to) {
            int n = 0;
            for (int i = from; i < to && i < s.length(); i++) {
                if (s.charAt(i) == '\n') {
                    n++;
                }
            }
            return n;
        }
    }

    /** Python's str.isspace for one char. */
    static boolean isPySpace(char c) {
        return c == ' ' || (c >= '\t' && c <= '\r') || (c >= '\u001c' && c <= '\u001f') || c == '\u0085'
                || c == '\u00a0' || c == '\u1680' || (c >= '\u2000' && c <= '\u200a') || c == '\u2028'
                || c == '\u2029' || c == '\u202f' || c == '\u205f' || c == '\u3000';
    }

    static String lstripPy(String s) {
        int i = 0;
        while (i < s.length() && isPySpace(s.charAt(i))) {
            i++;
        }
        return s.substring(i);
    }

    static String rstripPy(String s) {
        int j = s.length();
        while (j > 0 && isPySpace(s.charAt(j - 1))) {
            j--;
        }
        return s.substring(0, j);
    }

    // ================================================================================================ AST

    private sealed interface Node permits Text, Output, If, For, SetVar, SetBlock, MacroDef, Break, Continue, Wrapper {
    }

    private record Text(String text) implements Node {
    }

    private record Output(Expr expr) implements Node {
    }

    private record If(List<Expr> conditions, List<List<Node>> branches, List<Node> otherwise) implements Node {
    }

    private record For(List<String> targets, Expr iterable, Expr filter, List<Node> body, List<Node> otherwise,
                       int line) implements Node {
    }

    private record SetVar(Expr target, Expr value) implements Node {
    }

    private record SetBlock(String name, List<Node> body) implements Node {
    }

    private record MacroDef(String name, List<String> params, List<Expr> defaults, List<Node> body) implements Node {
    }

    private record Break() implements Node {
    }

    private record Continue() implements Node {
    }

    /** {@code {% generation %}}: renders its body (HF marks assistant text with it). */
    private record Wrapper(List<Node> body) implements Node {
    }

    private sealed interface Expr permits Literal, Name, GetAttr, GetItem, Slice, Call, Filter, Test, Unary, Binary,
            Cond, ListExpr, DictExpr {
    }

    private record Literal(Object value) implements Expr {
    }

    private record Name(String name) implements Expr {
    }

    private record GetAttr(Expr target, String attr) implements Expr {
    }

    private record GetItem(Expr target, Expr key) implements Expr {
    }

    private record Slice(Expr target, Expr start, Expr stop, Expr step) implements Expr {
    }

    private record Call(Expr fn, List<Expr> args, List<String> kwNames, List<Expr> kwValues, int line) implements Expr {
    }

    private record Filter(Expr target, String name, List<Expr> args, List<String> kwNames, List<Expr> kwValues,
                          int line) implements Expr {
    }

    private record Test(Expr target, String name, List<Expr> args, boolean negated, int line) implements Expr {
    }

    private record Unary(String op, Expr operand) implements Expr {
    }

    private record Binary(String op, Expr left, Expr right, int line) implements Expr {
    }

    private record Cond(Expr test, Expr then, Expr otherwise) implements Expr {
    }

    private record ListExpr(List<Expr> items, boolean tuple) implements Expr {
    }

    private record DictExpr(List<Expr> keys, List<Expr> values) implements Expr {
    }

    // ================================================================================================ parser

    private static final class Parser {
        private final List<Tok> toks;
        private int i;
        private int depth;

        Parser(List<Tok> toks) {
            this.toks = toks;
        }

        List<Node> parseTemplate() {
            List<Node> body = parseBody();
            if (peek().type != T.EOF) {
                throw error("unexpected {% " + peekBlockName() + " %}");
            }
            return body;
        }

        private String peekBlockName() {
            return toks.get(i + 1).text;
        }

        /** Nodes until EOF or a block tag whose name is in {@code ends} (left unconsumed, at its '{%'). */
        private List<Node> parseBody(String... ends) {
            List<Node> nodes = new ArrayList<>();
            while (true) {
                Tok t = peek();
                switch (t.type) {
                    case EOF -> {
                        if (ends.length > 0) {
                            throw error("missing {% " + ends[ends.length - 1] + " %}");
                        }
                        return nodes;
                    }
                    case TEXT -> {
                        i++;
                        nodes.add(new Text(t.text));
                    }
                    case VAR_BEGIN -> {
                        i++;
                        Expr e = parseTuple();
                        expect(T.VAR_END, "}}");
                        nodes.add(new Output(e));
                    }
                    case BLOCK_BEGIN -> {
                        Tok name = toks.get(i + 1);
                        if (name.type != T.NAME) {
                            throw error("expected a tag name after {%, got " + name);
                        }
                        for (String end : ends) {
                            if (name.text.equals(end)) {
                                return nodes;
                            }
                        }
                        i += 2;
                        nodes.add(parseStatement(name));
                    }
                    default -> throw error("unexpected " + t);
                }
            }
        }

        private Node parseStatement(Tok name) {
            switch (name.text) {
                case "if" -> {
                    List<Expr> conds = new ArrayList<>();
                    List<List<Node>> branches = new ArrayList<>();
                    List<Node> otherwise = null;
                    conds.add(parseTuple());
                    expect(T.BLOCK_END, "%}");
                    while (true) {
                        branches.add(parseBody("elif", "else", "endif"));
                        i++; // {%
                        String tag = next().text;
                        if (tag.equals("elif")) {
                            conds.add(parseTuple());
                            expect(T.BLOCK_END, "%}");
                        } else if (tag.equals("else")) {
                            expect(T.BLOCK_END, "%}");
                            otherwise = parseBody("endif");
                            i += 2;
                            expect(T.BLOCK_END, "%}");
                            break;
                        } else {
                            expect(T.BLOCK_END, "%}");
                            break;
                        }
                    }
                    return new If(conds, branches, otherwise == null ? List.of() : otherwise);
                }
                case "for" -> {
                    List<String> targets = new ArrayList<>();
                    boolean paren = peekOp("(");
                    if (paren) {
                        i++;
                    }
                    do {
                        targets.add(expectName());
                    } while (acceptOp(","));
                    if (paren) {
                        expectOp(")");
                    }
                    if (!acceptName("in")) {
                        throw error("expected 'in' in for loop");
                    }
                    Expr iter = parseTupleNoCond();
                    Expr filter = null;
                    if (acceptName("if")) {
                        filter = parseExpression(false);
                    }
                    if (acceptName("recursive")) {
                        throw error("recursive for loops are not supported");
                    }
                    expect(T.BLOCK_END, "%}");
                    List<Node> body = parseBody("else", "endfor");
                    i++;
                    List<Node> otherwise = List.of();
                    if (next().text.equals("else")) {
                        expect(T.BLOCK_END, "%}");
                        otherwise = parseBody("endfor");
                        i += 2;
                    }
                    expect(T.BLOCK_END, "%}");
                    return new For(targets, iter, filter, body, otherwise, name.line);
                }
                case "set" -> {
                    String first = expectName();
                    if (peek().type == T.BLOCK_END) { // {% set x %}...{% endset %}
                        i++;
                        List<Node> body = parseBody("endset");
                        i += 2;
                        expect(T.BLOCK_END, "%}");
                        return new SetBlock(first, body);
                    }
                    Expr target;
                    if (acceptOp(".")) {
                        target = new GetAttr(new Name(first), expectName());
                    } else if (peekOp(",")) {
                        List<Expr> names = new ArrayList<>();
                        names.add(new Name(first));
                        while (acceptOp(",")) {
                            names.add(new Name(expectName()));
                        }
                        target = new ListExpr(names, true);
                    } else {
                        target = new Name(first);
                    }
                    expectOp("=");
                    Expr value = parseTuple();
                    expect(T.BLOCK_END, "%}");
                    return new SetVar(target, value);
                }
                case "macro" -> {
                    String mname = expectName();
                    expectOp("(");
                    List<String> params = new ArrayList<>();
                    List<Expr> defaults = new ArrayList<>();
                    while (!acceptOp(")")) {
                        params.add(expectName());
                        defaults.add(acceptOp("=") ? parseExpression(true) : null);
                        if (!peekOp(")")) {
                            expectOp(",");
                        }
                    }
                    expect(T.BLOCK_END, "%}");
                    List<Node> body = parseBody("endmacro");
                    i += 2;
                    expect(T.BLOCK_END, "%}");
                    return new MacroDef(mname, params, defaults, body);
                }
                case "break", "continue" -> {
                    expect(T.BLOCK_END, "%}");
                    return name.text.equals("break") ? new Break() : new Continue();
                }
                case "generation" -> {
                    expect(T.BLOCK_END, "%}");
                    List<Node> body = parseBody("endgeneration");
                    i += 2;
                    expect(T.BLOCK_END, "%}");
                    return new Wrapper(body);
                }
                default -> throw new ChatTemplateException("chat template line " + name.line + ": unsupported tag '"
                        + name.text + "'");
            }
        }

        // ---------------------------------------------------------------- expressions

        private Expr parseTuple() {
            Expr first = parseExpression(true);
            if (!peekOp(",")) {
                return first;
            }
            List<Expr> items = new ArrayList<>();
            items.add(first);
            while (acceptOp(",")) {
                if (peek().type == T.BLOCK_END || peek().type == T.VAR_END) {
                    break;
                }
                items.add(parseExpression(true));
            }
            return new ListExpr(items, true);
        }

        private Expr parseTupleNoCond() {
            Expr first = parseExpression(false);
            if (!peekOp(",")) {
                return first;
            }
            List<Expr> items = new ArrayList<>();
            items.add(first);
            while (acceptOp(",")) {
                items.add(parseExpression(false));
            }
            return new ListExpr(items, true);
        }

        private Expr parseExpression(boolean withCond) {
            if (++depth > 200) {
                throw error("expression nested too deeply");
            }
            try {
                Expr e = parseOr();
                if (withCond && acceptName("if")) {
                    Expr test = parseOr();
                    Expr otherwise = acceptName("else") ? parseExpression(true) : null;
                    return new Cond(test, e, otherwise);
                }
                return e;
            } finally {
                depth--;
            }
        }

        private Expr parseOr() {
            Expr left = parseAnd();
            while (acceptName("or")) {
                left = new Binary("or", left, parseAnd(), line());
            }
            return left;
        }

        private Expr parseAnd() {
            Expr left = parseNot();
            while (acceptName("and")) {
                left = new Binary("and", left, parseNot(), line());
            }
            return left;
        }

        private Expr parseNot() {
            if (peek().type == T.NAME && peek().text.equals("not")) {
                i++;
                return new Unary("not", parseNot());
            }
            return parseCompare();
        }

        /** Comparisons chain as in Python: {@code a < b < c} is {@code a < b and b < c}. */
        private Expr parseCompare() {
            Expr left = parseConcat();
            Expr chain = null;
            while (true) {
                Tok t = peek();
                Expr cmp;
                Expr right;
                if (t.type == T.OP && List.of("==", "!=", "<", ">", "<=", ">=").contains(t.text)) {
                    i++;
                    right = parseConcat();
                    cmp = new Binary(t.text, left, right, t.line);
                } else if (t.type == T.NAME && t.text.equals("in")) {
                    i++;
                    right = parseConcat();
                    cmp = new Binary("in", left, right, t.line);
                } else if (t.type == T.NAME && t.text.equals("not") && toks.get(i + 1).type == T.NAME
                        && toks.get(i + 1).text.equals("in")) {
                    i += 2;
                    right = parseConcat();
                    cmp = new Unary("not", new Binary("in", left, right, t.line));
                } else {
                    return chain == null ? left : chain;
                }
                chain = chain == null ? cmp : new Binary("and", chain, cmp, t.line);
                left = right;
            }
        }

        private Expr parseConcat() {
            Expr left = parseMath1();
            while (acceptOp("~")) {
                left = new Binary("~", left, parseMath1(), line());
            }
            return left;
        }

        private Expr parseMath1() {
            Expr left = parseMath2();
            while (peekOp("+") || peekOp("-")) {
                String op = next().text;
                left = new Binary(op, left, parseMath2(), line());
            }
            return left;
        }

        private Expr parseMath2() {
            Expr left = parsePow();
            while (peekOp("*") || peekOp("/") || peekOp("//") || peekOp("%")) {
                String op = next().text;
                left = new Binary(op, left, parsePow(), line());
            }
            return left;
        }

        private Expr parsePow() {
            Expr left = parseUnary(true);
            while (acceptOp("**")) {
                left = new Binary("**", left, parseUnary(true), line());
            }
            return left;
        }

        private Expr parseUnary(boolean withFilter) {
            Expr e;
            if (acceptOp("-")) {
                e = new Unary("-", parseUnary(false));
            } else if (acceptOp("+")) {
                e = new Unary("+", parseUnary(false));
            } else {
                e = parsePostfix(parsePrimary());
            }
            return withFilter ? parseFilters(e) : e;
        }

        private Expr parsePrimary() {
            Tok t = next();
            switch (t.type) {
                case NAME -> {
                    return switch (t.text) {
                        case "true", "True" -> new Literal(Boolean.TRUE);
                        case "false", "False" -> new Literal(Boolean.FALSE);
                        case "none", "None" -> new Literal(null);
                        default -> new Name(t.text);
                    };
                }
                case STRING -> {
                    StringBuilder sb = new StringBuilder(t.text);
                    while (peek().type == T.STRING) { // adjacent literals concatenate
                        sb.append(next().text);
                    }
                    return new Literal(sb.toString());
                }
                case INT -> {
                    try {
                        return new Literal(Long.parseLong(t.text));
                    } catch (NumberFormatException e) {
                        throw error("integer literal out of range: " + t.text);
                    }
                }
                case FLOAT -> {
                    return new Literal(Double.parseDouble(t.text));
                }
                case OP -> {
                    switch (t.text) {
                        case "(" -> {
                            if (acceptOp(")")) {
                                return new ListExpr(List.of(), true);
                            }
                            Expr first = parseExpression(true);
                            if (acceptOp(")")) {
                                return first;
                            }
                            List<Expr> items = new ArrayList<>();
                            items.add(first);
                            while (acceptOp(",")) {
                                if (peekOp(")")) {
                                    break;
                                }
                                items.add(parseExpression(true));
                            }
                            expectOp(")");
                            return new ListExpr(items, true);
                        }
                        case "[" -> {
                            List<Expr> items = new ArrayList<>();
                            while (!acceptOp("]")) {
                                items.add(parseExpression(true));
                                if (!peekOp("]")) {
                                    expectOp(",");
                                }
                            }
                            return new ListExpr(items, false);
                        }
                        case "{" -> {
                            List<Expr> keys = new ArrayList<>();
                            List<Expr> values = new ArrayList<>();
                            while (!acceptOp("}")) {
                                keys.add(parseExpression(true));
                                expectOp(":");
                                values.add(parseExpression(true));
                                if (!peekOp("}")) {
                                    expectOp(",");
                                }
                            }
                            return new DictExpr(keys, values);
                        }
                        default -> throw error("unexpected " + t);
                    }
                }
                default -> throw error("unexpected " + t);
            }
        }

        private Expr parsePostfix(Expr e) {
            while (true) {
                if (acceptOp(".")) {
                    Tok t = next();
                    if (t.type != T.NAME && t.type != T.INT) {
                        throw error("expected an attribute name after '.', got " + t);
                    }
                    e = new GetAttr(e, t.text);
                } else if (acceptOp("[")) {
                    Expr start = null;
                    if (!peekOp(":")) {
                        start = parseExpression(true);
                        if (acceptOp("]")) {
                            e = new GetItem(e, start);
                            continue;
                        }
                    }
                    expectOp(":");
                    Expr stop = null;
                    Expr step = null;
                    if (!peekOp("]") && !peekOp(":")) {
                        stop = parseExpression(true);
                    }
                    if (acceptOp(":") && !peekOp("]")) {
                        step = parseExpression(true);
                    }
                    expectOp("]");
                    e = new Slice(e, start, stop, step);
                } else if (peekOp("(")) {
                    e = parseCall(e);
                } else {
                    return e;
                }
            }
        }

        private Call parseCall(Expr fn) {
            int line = line();
            expectOp("(");
            List<Expr> args = new ArrayList<>();
            List<String> kwNames = new ArrayList<>();
            List<Expr> kwValues = new ArrayList<>();
            while (!acceptOp(")")) {
                if (peek().type == T.NAME && toks.get(i + 1).type == T.OP && toks.get(i + 1).text.equals("=")) {
                    kwNames.add(next().text);
                    i++;
                    kwValues.add(parseExpression(true));
                } else {
                    if (!kwNames.isEmpty()) {
                        throw error("positional argument after keyword argument");
                    }
                    args.add(parseExpression(true));
                }
                if (!peekOp(")")) {
                    expectOp(",");
                }
            }
            return new Call(fn, args, kwNames, kwValues, line);
        }

        private Expr parseFilters(Expr e) {
            while (true) {
                if (acceptOp("|")) {
                    int line = line();
                    String name = expectName();
                    while (acceptOp(".")) {
                        name += "." + expectName();
                    }
                    if (peekOp("(")) {
                        Call c = parseCall(new Name(name));
                        e = new Filter(e, name, c.args, c.kwNames, c.kwValues, line);
                    } else {
                        e = new Filter(e, name, List.of(), List.of(), List.of(), line);
                    }
                } else if (peek().type == T.NAME && peek().text.equals("is")) {
                    int line = line();
                    i++;
                    boolean negated = acceptName("not");
                    String name = expectName();
                    List<Expr> args = new ArrayList<>();
                    if (peekOp("(")) {
                        args.addAll(parseCall(new Name(name)).args);
                    } else {
                        Tok t = peek();
                        boolean startsArg = t.type == T.STRING || t.type == T.INT || t.type == T.FLOAT
                                || (t.type == T.NAME && !List.of("and", "or", "else", "if", "in", "is", "not")
                                .contains(t.text))
                                || (t.type == T.OP && (t.text.equals("[") || t.text.equals("{")));
                        if (startsArg) {
                            args.add(parsePostfix(parsePrimary()));
                        }
                    }
                    e = new Test(e, name, args, negated, line);
                } else {
                    return e;
                }
            }
        }

        // ---------------------------------------------------------------- token helpers

        private Tok peek() {
            return toks.get(i);
        }

        private Tok next() {
            Tok t = toks.get(i);
            if (t.type != T.EOF) {
                i++;
            }
            return t;
        }

        private int line() {
            return toks.get(Math.max(0, i - 1)).line;
        }

        private boolean peekOp(String op) {
            Tok t = peek();
            return t.type == T.OP && t.text.equals(op);
        }

        private boolean acceptOp(String op) {
            if (peekOp(op)) {
                i++;
                return true;
            }
            return false;
        }

        private void expectOp(String op) {
            if (!acceptOp(op)) {
                throw error("expected '" + op + "', got " + peek());
            }
        }

        private boolean acceptName(String name) {
            Tok t = peek();
            if (t.type == T.NAME && t.text.equals(name)) {
                i++;
                return true;
            }
            return false;
        }

        private String expectName() {
            Tok t = next();
            if (t.type != T.NAME) {
                throw error("expected a name, got " + t);
            }
            return t.text;
        }

        private void expect(T type, String what) {
            Tok t = next();
            if (t.type != type) {
                throw error("expected '" + what + "', got " + t);
            }
        }

        private ChatTemplateException error(String what) {
            return new ChatTemplateException("chat template line " + peek().line + ": " + what);
        }
    }

    // ================================================================================================ runtime

    private static final class Scope {
        final Scope parent;
        final Map<String, Object> vars = new HashMap<>();

        Scope(Scope parent) {
            this.parent = parent;
        }

        Object get(String name) {
            for (Scope s = this; s != null; s = s.parent) {
                Object v = s.vars.get(name);
                if (v != null || s.vars.containsKey(name)) {
                    return v;
                }
            }
            return UNDEFINED;
        }
    }

    /** Jinja's namespace(): the one mutable object a template may assign attributes of. */
    static final class Namespace {
        final Map<String, Object> attrs = new LinkedHashMap<>();
    }

    /** Something callable from a template: a global, a bound method, a macro. */
    interface Callable {
        Object call(List<Object> args, Map<String, Object> kwargs);
    }

    private record Macro(MacroDef def, Renderer renderer) implements Callable {
        @Override
        public Object call(List<Object> args, Map<String, Object> kwargs) {
            return renderer.callMacro(def, args, kwargs);
        }
    }

    /** loop.* inside a for loop. */
    private static final class Loop {
        List<Object> items;
        int index0;
    }

    private static final class BreakSignal extends RuntimeException {
        BreakSignal() {
            super(null, null, false, false);
        }
    }

    private static final class ContinueSignal extends RuntimeException {
        ContinueSignal() {
            super(null, null, false, false);
        }
    }

    private static final BreakSignal BREAK = new BreakSignal();
    private static final ContinueSignal CONTINUE = new ContinueSignal();

    private static final class Renderer {
        final StringBuilder out = new StringBuilder();
        Scope root;
        long steps;
        int macroDepth;

        void step() {
            if (++steps > MAX_STEPS) {
                throw new ChatTemplateException("chat template ran past " + MAX_STEPS + " steps (a loop too long?)");
            }
        }

        void emit(StringBuilder sb, String s) {
            sb.append(s);
            if (sb.length() > MAX_OUTPUT) {
                throw new ChatTemplateException("chat template output passed " + MAX_OUTPUT + " characters");
            }
        }

        void renderAll(List<Node> nodes, Scope scope) {
            render(nodes, scope, out);
        }

        void render(List<Node> nodes, Scope scope, StringBuilder sb) {
            for (Node n : nodes) {
                step();
                switch (n) {
                    case Text t -> emit(sb, t.text);
                    case Output o -> emit(sb, JinjaValues.str(eval(o.expr, scope)));
                    case If f -> {
                        boolean done = false;
                        for (int k = 0; k < f.conditions.size(); k++) {
                            if (JinjaValues.truthy(eval(f.conditions.get(k), scope))) {
                                render(f.branches.get(k), scope, sb);
                                done = true;
                                break;
                            }
                        }
                        if (!done) {
                            render(f.otherwise, scope, sb);
                        }
                    }
                    case For f -> renderFor(f, scope, sb);
                    case SetVar s -> assign(s.target, eval(s.value, scope), scope);
                    case SetBlock s -> {
                        StringBuilder inner = new StringBuilder();
                        render(s.body, scope, inner);
                        scope.vars.put(s.name, inner.toString());
                    }
                    case MacroDef m -> scope.vars.put(m.name, new Macro(m, this));
                    case Break b -> throw BREAK;
                    case Continue c -> throw CONTINUE;
                    case Wrapper w -> render(w.body, scope, sb);
                }
            }
        }

        private void assign(Expr target, Object value, Scope scope) {
            switch (target) {
                case Name n -> scope.vars.put(n.name, value);
                case GetAttr g -> {
                    Object obj = eval(g.target, scope);
                    if (!(obj instanceof Namespace ns)) {
                        throw new ChatTemplateException("chat template: cannot assign attribute '" + g.attr
                                + "' of " + JinjaValues.typeName(obj) + " (only of a namespace())");
                    }
                    ns.attrs.put(g.attr, value);
                }
                case ListExpr l -> {
                    List<Object> values = JinjaValues.iterate(value);
                    if (values.size() != l.items.size()) {
                        throw new ChatTemplateException("chat template: cannot unpack " + values.size() + " values into "
                                + l.items.size() + " names");
                    }
                    for (int k = 0; k < values.size(); k++) {
                        assign(l.items.get(k), values.get(k), scope);
                    }
                }
                default -> throw new ChatTemplateException("chat template: cannot assign to this expression");
            }
        }

        private void renderFor(For f, Scope scope, StringBuilder sb) {
            List<Object> all = JinjaValues.iterate(eval(f.iterable, scope));
            List<Object> items = all;
            if (f.filter != null) {
                items = new ArrayList<>();
                for (Object item : all) {
                    step();
                    Scope s = new Scope(scope);
                    bindTargets(f, item, s);
                    if (JinjaValues.truthy(eval(f.filter, s))) {
                        items.add(item);
                    }
                }
            }
            if (items.isEmpty()) {
                render(f.otherwise, scope, sb);
                return;
            }
            Loop loop = new Loop();
            loop.items = items;
            for (int k = 0; k < items.size(); k++) {
                step();
                loop.index0 = k;
                Scope s = new Scope(scope);
                s.vars.put("loop", loop);
                bindTargets(f, items.get(k), s);
                try {
                    render(f.body, s, sb);
                } catch (BreakSignal b) {
                    break;
                } catch (ContinueSignal c) {
                    // next item
                }
            }
        }

        private void bindTargets(For f, Object item, Scope s) {
            if (f.targets.size() == 1) {
                s.vars.put(f.targets.getFirst(), item);
                return;
            }
            List<Object> parts = JinjaValues.iterate(item);
            if (parts.size() != f.targets.size()) {
                throw new ChatTemplateException("chat template line " + f.line + ": cannot unpack " + parts.size()
                        + " values into " + f.targets.size() + " loop variables");
            }
            for (int k = 0; k < parts.size(); k++) {
                s.vars.put(f.targets.get(k), parts.get(k));
            }
        }

        Object callMacro(MacroDef def, List<Object> args, Map<String, Object> kwargs) {
            if (++macroDepth > MAX_DEPTH) {
                throw new ChatTemplateException("chat template: macro calls nested deeper than " + MAX_DEPTH);
            }
            try {
                Scope s = new Scope(root);
                if (args.size() > def.params.size()) {
                    throw new ChatTemplateException("chat template: macro '" + def.name + "' takes " + def.params.size()
                            + " arguments, got " + args.size());
                }
                for (int k = 0; k < def.params.size(); k++) {
                    String p = def.params.get(k);
                    Object v;
                    if (k < args.size()) {
                        v = args.get(k);
                    } else if (kwargs.containsKey(p)) {
                        v = kwargs.get(p);
                    } else if (def.defaults.get(k) != null) {
                        v = eval(def.defaults.get(k), s);
                    } else {
                        v = UNDEFINED;
                    }
                    s.vars.put(p, v);
                }
                StringBuilder sb = new StringBuilder();
                render(def.body, s, sb);
                return sb.toString();
            } finally {
                macroDepth--;
            }
        }

        Object eval(Expr e, Scope scope) {
            step();
            return switch (e) {
                case Literal l -> l.value;
                case Name n -> scope.get(n.name);
                case GetAttr g -> JinjaValues.getAttr(eval(g.target, scope), g.attr);
                case GetItem g -> JinjaValues.getItem(eval(g.target, scope), eval(g.key, scope));
                case Slice s -> JinjaValues.slice(eval(s.target, scope), s.start == null ? null : eval(s.start, scope),
                        s.stop == null ? null : eval(s.stop, scope), s.step == null ? null : eval(s.step, scope));
                case Call c -> {
                    Object fn = eval(c.fn, scope);
                    List<Object> args = new ArrayList<>(c.args.size());
                    for (Expr a : c.args) {
                        args.add(eval(a, scope));
                    }
                    Map<String, Object> kw = new LinkedHashMap<>();
                    for (int k = 0; k < c.kwNames.size(); k++) {
                        kw.put(c.kwNames.get(k), eval(c.kwValues.get(k), scope));
                    }
                    if (!(fn instanceof Callable callable)) {
                        throw new ChatTemplateException("chat template line " + c.line + ": "
                                + (fn == UNDEFINED ? "calling an undefined name" : JinjaValues.typeName(fn)
                                + " is not callable"));
                    }
                    yield callable.call(args, kw);
                }
                case Filter f -> {
                    List<Object> args = new ArrayList<>(f.args.size());
                    for (Expr a : f.args) {
                        args.add(eval(a, scope));
                    }
                    Map<String, Object> kw = new LinkedHashMap<>();
                    for (int k = 0; k < f.kwNames.size(); k++) {
                        kw.put(f.kwNames.get(k), eval(f.kwValues.get(k), scope));
                    }
                    yield JinjaFilters.apply(f.name, eval(f.target, scope), args, kw, f.line, this);
                }
                case Test t -> {
                    List<Object> args = new ArrayList<>(t.args.size());
                    for (Expr a : t.args) {
                        args.add(eval(a, scope));
                    }
                    boolean r = JinjaFilters.test(t.name, eval(t.target, scope), args, t.line);
                    yield r != t.negated;
                }
                case Unary u -> {
                    Object v = eval(u.operand, scope);
                    yield switch (u.op) {
                        case "not" -> !JinjaValues.truthy(v);
                        case "-" -> JinjaValues.negate(v);
                        default -> JinjaValues.requireNumber(v, "unary +");
                    };
                }
                case Binary b -> switch (b.op) {
                    case "and" -> {
                        Object l = eval(b.left, scope);
                        yield JinjaValues.truthy(l) ? eval(b.right, scope) : l;
                    }
                    case "or" -> {
                        Object l = eval(b.left, scope);
                        yield JinjaValues.truthy(l) ? l : eval(b.right, scope);
                    }
                    default -> JinjaValues.binary(b.op, eval(b.left, scope), eval(b.right, scope), b.line);
                };
                case Cond c -> JinjaValues.truthy(eval(c.test, scope)) ? eval(c.then, scope)
                        : c.otherwise == null ? UNDEFINED : eval(c.otherwise, scope);
                case ListExpr l -> {
                    List<Object> items = new ArrayList<>(l.items.size());
                    for (Expr x : l.items) {
                        items.add(eval(x, scope));
                    }
                    yield items;
                }
                case DictExpr d -> {
                    Map<Object, Object> m = new LinkedHashMap<>();
                    for (int k = 0; k < d.keys.size(); k++) {
                        m.put(eval(d.keys.get(k), scope), eval(d.values.get(k), scope));
                    }
                    yield m;
                }
            };
        }
    }

    /** loop attribute lookup (kept here: Loop is private to the renderer). */
    static Object loopAttr(Object loop, String attr) {
        Loop l = (Loop) loop;
        int n = l.items.size();
        return switch (attr) {
            case "index" -> (long) l.index0 + 1;
            case "index0" -> (long) l.index0;
            case "revindex" -> (long) (n - l.index0);
            case "revindex0" -> (long) (n - l.index0 - 1);
            case "first" -> l.index0 == 0;
            case "last" -> l.index0 == n - 1;
            case "length" -> (long) n;
            case "depth" -> 1L;
            case "depth0" -> 0L;
            case "previtem" -> l.index0 > 0 ? l.items.get(l.index0 - 1) : UNDEFINED;
            case "nextitem" -> l.index0 < n - 1 ? l.items.get(l.index0 + 1) : UNDEFINED;
            case "cycle" -> (Callable) (args, kw) -> args.isEmpty() ? UNDEFINED : args.get(l.index0 % args.size());
            default -> UNDEFINED;
        };
    }

    static boolean isLoop(Object o) {
        return o instanceof Loop;
    }
}
