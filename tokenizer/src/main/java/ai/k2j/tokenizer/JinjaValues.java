package ai.k2j.tokenizer;

import ai.k2j.tokenizer.Jinja.Callable;
import ai.k2j.tokenizer.Jinja.Namespace;

import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static ai.k2j.tokenizer.Jinja.UNDEFINED;

/**
 * Python semantics for the template's values: None is {@code null}, ints are {@code Long}, floats {@code Double},
 * str is {@code String}, list/tuple {@code List}, dict {@code Map} (insertion-ordered, as Python's). Printing,
 * truthiness, comparison, arithmetic and the str/dict/list methods templates call follow CPython.
 */
final class JinjaValues {
    private JinjaValues() {
    }

    /** Converts caller data (Integer, Float, arrays of Maps...) to the template's value kinds. */
    static Object fromJava(Object v) {
        return switch (v) {
            case null -> null;
            case String s -> s;
            case Boolean b -> b;
            case Long l -> l;
            case Integer i -> (long) i;
            case Short s -> (long) s;
            case Byte b -> (long) b;
            case Double d -> d;
            case Float f -> (double) f;
            case BigDecimal d -> d.doubleValue();
            case java.math.BigInteger b -> b.longValue();
            case Map<?, ?> m -> {
                Map<Object, Object> out = new LinkedHashMap<>();
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    out.put(fromJava(e.getKey()), fromJava(e.getValue()));
                }
                yield out;
            }
            case Collection<?> c -> {
                List<Object> out = new ArrayList<>(c.size());
                for (Object o : c) {
                    out.add(fromJava(o));
                }
                yield out;
            }
            default -> {
                if (v == UNDEFINED || v instanceof Callable || v instanceof Namespace) {
                    yield v;
                }
                throw new IllegalArgumentException("cannot pass a " + v.getClass().getName() + " to a template");
            }
        };
    }

    static boolean truthy(Object v) {
        return switch (v) {
            case null -> false;
            case Boolean b -> b;
            case String s -> !s.isEmpty();
            case Long l -> l != 0;
            case Double d -> d != 0;
            case List<?> l -> !l.isEmpty();
            case Map<?, ?> m -> !m.isEmpty();
            default -> v != UNDEFINED;
        };
    }

    static String typeName(Object v) {
        return switch (v) {
            case null -> "None";
            case Boolean b -> "bool";
            case String s -> "str";
            case Long l -> "int";
            case Double d -> "float";
            case List<?> l -> "list";
            case Map<?, ?> m -> "dict";
            case Namespace n -> "namespace";
            case Callable c -> "function";
            default -> v == UNDEFINED ? "undefined" : "object";
        };
    }

    /** Python's str(). */
    static String str(Object v) {
        if (v instanceof String s) {
            return s;
        }
        if (v == UNDEFINED) {
            return "";
        }
        return repr(v);
    }

    /** Python's repr(). */
    static String repr(Object v) {
        return switch (v) {
            case null -> "None";
            case Boolean b -> b ? "True" : "False";
            case String s -> reprString(s);
            case Long l -> l.toString();
            case Double d -> reprFloat(d);
            case List<?> l -> {
                StringBuilder sb = new StringBuilder("[");
                for (int i = 0; i < l.size(); i++) {
                    sb.append(i == 0 ? "" : ", ").append(repr(l.get(i)));
                }
                yield sb.append(']').toString();
            }
            case Map<?, ?> m -> {
                StringBuilder sb = new StringBuilder("{");
                boolean first = true;
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    sb.append(first ? "" : ", ").append(repr(e.getKey())).append(": ").append(repr(e.getValue()));
                    first = false;
                }
                yield sb.append('}').toString();
            }
            case Namespace n -> "<Namespace " + n.attrs.keySet() + ">";
            default -> v == UNDEFINED ? "" : "<function>";
        };
    }

    private static String reprString(String s) {
        char q = s.contains("'") && !s.contains("\"") ? '"' : '\'';
        StringBuilder sb = new StringBuilder().append(q);
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (c == q) {
                        sb.append('\\').append(c);
                    } else if (c < 0x20 || c == 0x7f) {
                        sb.append(String.format("\\x%02x", (int) c));
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
        return sb.append(q).toString();
    }

    /** Python's float repr: shortest round-trip digits, "1.0", "1e-05", "1e+16", "inf", "nan". */
    static String reprFloat(double d) {
        if (Double.isNaN(d)) {
            return "nan";
        }
        if (Double.isInfinite(d)) {
            return d > 0 ? "inf" : "-inf";
        }
        if (d == 0) {
            return (1 / d < 0) ? "-0.0" : "0.0";
        }
        BigDecimal bd = new BigDecimal(Double.toString(d)).stripTrailingZeros();
        String digits = bd.unscaledValue().abs().toString();
        int exp = digits.length() - 1 - bd.scale(); // decimal exponent of the first digit
        String sign = d < 0 ? "-" : "";
        if (exp < -4 || exp >= 16) {
            String mant = digits.length() == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
            return sign + mant + "e" + (exp < 0 ? "-" : "+") + (Math.abs(exp) < 10 ? "0" : "") + Math.abs(exp);
        }
        String plain = bd.abs().toPlainString();
        if (!plain.contains(".")) {
            plain += ".0";
        }
        return sign + plain;
    }

    static List<Object> iterate(Object v) {
        if (v == null) {
            throw new ChatTemplateException("chat template: 'NoneType' object is not iterable");
        }
        return switch (v) {
            case List<?> l -> new ArrayList<>(l);
            case Map<?, ?> m -> new ArrayList<>(m.keySet());
            case String s -> {
                List<Object> out = new ArrayList<>();
                s.codePoints().forEach(cp -> out.add(new String(Character.toChars(cp))));
                yield out;
            }
            default -> {
                if (v == UNDEFINED) {
                    yield new ArrayList<>();
                }
                throw new ChatTemplateException("chat template: '" + typeName(v) + "' object is not iterable");
            }
        };
    }

    // ---------------------------------------------------------------- attribute and item access

    /** {@code obj.attr}: a Python attribute (method) first, then the item, as Jinja's getattr. */
    static Object getAttr(Object obj, String attr) {
        if (Jinja.isLoop(obj)) {
            return Jinja.loopAttr(obj, attr);
        }
        if (obj instanceof Namespace ns) {
            return ns.attrs.containsKey(attr) ? ns.attrs.get(attr) : UNDEFINED;
        }
        Callable method = method(obj, attr);
        if (method != null) {
            return method;
        }
        if (obj instanceof Map<?, ?> m) {
            return m.containsKey(attr) ? m.get(attr) : UNDEFINED;
        }
        if (obj instanceof List<?> && attr.chars().allMatch(Character::isDigit)) {
            return getItem(obj, Long.parseLong(attr));
        }
        if (obj == UNDEFINED) {
            throw new ChatTemplateException("chat template: '" + attr + "' of an undefined value");
        }
        return UNDEFINED;
    }

    /** {@code obj[key]}: the item first, then the attribute. */
    static Object getItem(Object obj, Object key) {
        if (obj == null) {
            return UNDEFINED;
        }
        switch (obj) {
            case Map<?, ?> m -> {
                if (m.containsKey(key)) {
                    return m.get(key);
                }
                if (key instanceof Double d && d == Math.rint(d) && m.containsKey((long) (double) d)) {
                    return m.get((long) (double) d);
                }
                return key instanceof String s ? getAttrOnly(obj, s) : UNDEFINED;
            }
            case List<?> l -> {
                if (key instanceof Long || key instanceof Boolean) {
                    long i = key instanceof Boolean b ? (b ? 1 : 0) : (Long) key;
                    if (i < 0) {
                        i += l.size();
                    }
                    return i >= 0 && i < l.size() ? l.get((int) i) : UNDEFINED;
                }
                return key instanceof String s ? getAttrOnly(obj, s) : UNDEFINED;
            }
            case String s -> {
                if (key instanceof Long k) {
                    long i = k < 0 ? k + s.length() : k;
                    return i >= 0 && i < s.length() ? String.valueOf(s.charAt((int) i)) : UNDEFINED;
                }
                return key instanceof String a ? getAttrOnly(obj, a) : UNDEFINED;
            }
            case Namespace ns -> {
                return key instanceof String s && ns.attrs.containsKey(s) ? ns.attrs.get(s) : UNDEFINED;
            }
            default -> {
                if (obj == UNDEFINED) {
                    throw new ChatTemplateException("chat template: item '" + str(key) + "' of an undefined value");
                }
                if (Jinja.isLoop(obj) && key instanceof String s) {
                    return Jinja.loopAttr(obj, s);
                }
                return UNDEFINED;
            }
        }
    }

    private static Object getAttrOnly(Object obj, String attr) {
        Callable m = method(obj, attr);
        return m == null ? UNDEFINED : m;
    }

    static Object slice(Object obj, Object start, Object stop, Object step) {
        long st = step == null ? 1 : requireLong(step, "slice step");
        if (st == 0) {
            throw new ChatTemplateException("chat template: slice step cannot be zero");
        }
        int n;
        if (obj instanceof List<?> l) {
            n = l.size();
        } else if (obj instanceof String s) {
            n = s.length();
        } else {
            throw new ChatTemplateException("chat template: cannot slice a " + typeName(obj));
        }
        long lo;
        long hi;
        if (st > 0) {
            lo = start == null ? 0 : clampIndex(requireLong(start, "slice start"), n, 0, n);
            hi = stop == null ? n : clampIndex(requireLong(stop, "slice stop"), n, 0, n);
        } else {
            lo = start == null ? n - 1 : clampIndex(requireLong(start, "slice start"), n, -1, n - 1);
            hi = stop == null ? -1 : clampIndex(requireLong(stop, "slice stop"), n, -1, n - 1);
        }
        List<Integer> idx = new ArrayList<>();
        if (st > 0) {
            for (long i = lo; i < hi; i += st) {
                idx.add((int) i);
            }
        } else {
            for (long i = lo; i > hi; i += st) {
                idx.add((int) i);
            }
        }
        if (obj instanceof List<?> l) {
            List<Object> out = new ArrayList<>(idx.size());
            for (int i : idx) {
                out.add(l.get(i));
            }
            return out;
        }
        String s = (String) obj;
        StringBuilder sb = new StringBuilder(idx.size());
        for (int i : idx) {
            sb.append(s.charAt(i));
        }
        return sb.toString();
    }

    private static long clampIndex(long i, int n, long min, long max) {
        if (i < 0) {
            i += n;
        }
        return Math.max(min, Math.min(max, i));
    }

    // ---------------------------------------------------------------- methods

    private static Callable method(Object obj, String name) {
        if (obj instanceof String s) {
            return stringMethod(s, name);
        }
        if (obj instanceof Map<?, ?> m) {
            return switch (name) {
                case "items" -> (a, kw) -> {
                    List<Object> out = new ArrayList<>();
                    for (Map.Entry<?, ?> e : m.entrySet()) {
                        out.add(java.util.Arrays.asList(e.getKey(), e.getValue()));
                    }
                    return out;
                };
                case "keys" -> (a, kw) -> new ArrayList<Object>(m.keySet());
                case "values" -> (a, kw) -> new ArrayList<Object>(m.values());
                case "get" -> (a, kw) -> {
                    argCount("get", a, 1, 2);
                    return m.containsKey(a.get(0)) ? m.get(a.get(0)) : a.size() > 1 ? a.get(1) : null;
                };
                default -> null;
            };
        }
        if (obj instanceof List<?> l) {
            return switch (name) {
                case "index" -> (a, kw) -> {
                    argCount("index", a, 1, 1);
                    for (int i = 0; i < l.size(); i++) {
                        if (equal(l.get(i), a.get(0))) {
                            return (long) i;
                        }
                    }
                    throw new ChatTemplateException("chat template: " + repr(a.get(0)) + " is not in list");
                };
                case "count" -> (a, kw) -> {
                    argCount("count", a, 1, 1);
                    long c = 0;
                    for (Object o : l) {
                        if (equal(o, a.get(0))) {
                            c++;
                        }
                    }
                    return c;
                };
                default -> null; // append/pop etc.: the sandbox keeps lists immutable, as HF's does
            };
        }
        return null;
    }

    private static Callable stringMethod(String s, String name) {
        return switch (name) {
            case "startswith", "endswith" -> (a, kw) -> {
                argCount(name, a, 1, 1);
                List<Object> options = a.get(0) instanceof List<?> l ? new ArrayList<>(l)
                        : java.util.Collections.singletonList(a.get(0));
                for (Object o : options) {
                    String p = requireString(o, name);
                    if (name.equals("startswith") ? s.startsWith(p) : s.endsWith(p)) {
                        return true;
                    }
                }
                return false;
            };
            case "strip", "lstrip", "rstrip" -> (a, kw) -> {
                argCount(name, a, 0, 1);
                String chars = a.isEmpty() || a.get(0) == null ? null : requireString(a.get(0), name);
                return strip(s, chars, !name.equals("rstrip"), !name.equals("lstrip"));
            };
            case "split", "rsplit" -> (a, kw) -> {
                Object sep = a.isEmpty() ? kw.get("sep") : a.get(0);
                Object max = a.size() > 1 ? a.get(1) : kw.getOrDefault("maxsplit", -1L);
                return split(s, sep == null ? null : requireString(sep, name), requireLong(max, "maxsplit"),
                        name.equals("rsplit"));
            };
            case "upper" -> (a, kw) -> s.toUpperCase(java.util.Locale.ROOT);
            case "lower" -> (a, kw) -> s.toLowerCase(java.util.Locale.ROOT);
            case "title" -> (a, kw) -> JinjaFilters.title(s);
            case "capitalize" -> (a, kw) -> s.isEmpty() ? s
                    : s.substring(0, 1).toUpperCase(java.util.Locale.ROOT) + s.substring(1).toLowerCase(java.util.Locale.ROOT);
            case "replace" -> (a, kw) -> {
                argCount(name, a, 2, 3);
                return replace(s, requireString(a.get(0), name), requireString(a.get(1), name),
                        a.size() > 2 ? requireLong(a.get(2), name) : -1);
            };
            case "find", "rfind", "index", "rindex" -> (a, kw) -> {
                argCount(name, a, 1, 1);
                String sub = requireString(a.get(0), name);
                int i = name.startsWith("r") ? s.lastIndexOf(sub) : s.indexOf(sub);
                if (i < 0 && name.contains("index")) {
                    throw new ChatTemplateException("chat template: substring not found");
                }
                return (long) i;
            };
            case "count" -> (a, kw) -> {
                argCount(name, a, 1, 1);
                String sub = requireString(a.get(0), name);
                if (sub.isEmpty()) {
                    return (long) s.length() + 1;
                }
                long c = 0;
                for (int i = s.indexOf(sub); i >= 0; i = s.indexOf(sub, i + sub.length())) {
                    c++;
                }
                return c;
            };
            case "join" -> (a, kw) -> {
                argCount(name, a, 1, 1);
                StringBuilder sb = new StringBuilder();
                List<Object> items = iterate(a.get(0));
                for (int i = 0; i < items.size(); i++) {
                    sb.append(i == 0 ? "" : s).append(requireString(items.get(i), "join"));
                }
                return sb.toString();
            };
            case "isdigit" -> (a, kw) -> !s.isEmpty() && s.chars().allMatch(Character::isDigit);
            case "isalpha" -> (a, kw) -> !s.isEmpty() && s.chars().allMatch(Character::isLetter);
            case "isspace" -> (a, kw) -> !s.isEmpty() && s.chars().allMatch(c -> Jinja.isPySpace((char) c));
            case "islower" -> (a, kw) -> s.chars().anyMatch(Character::isLetter) && s.equals(s.toLowerCase(java.util.Locale.ROOT));
            case "isupper" -> (a, kw) -> s.chars().anyMatch(Character::isLetter) && s.equals(s.toUpperCase(java.util.Locale.ROOT));
            case "splitlines" -> (a, kw) -> {
                List<Object> out = new ArrayList<>();
                for (String line : s.split("\r\n|\n|\r", -1)) {
                    out.add(line);
                }
                if (!out.isEmpty() && ((String) out.getLast()).isEmpty()) {
                    out.removeLast();
                }
                return out;
            };
            default -> null;
        };
    }

    static String strip(String s, String chars, boolean left, boolean right) {
        int i = 0;
        int j = s.length();
        if (left) {
            while (i < j && (chars == null ? Jinja.isPySpace(s.charAt(i)) : chars.indexOf(s.charAt(i)) >= 0)) {
                i++;
            }
        }
        if (right) {
            while (j > i && (chars == null ? Jinja.isPySpace(s.charAt(j - 1)) : chars.indexOf(s.charAt(j - 1)) >= 0)) {
                j--;
            }
        }
        return s.substring(i, j);
    }

    private static List<Object> split(String s, String sep, long max, boolean fromRight) {
        List<Object> out = new ArrayList<>();
        if (sep == null) { // runs of whitespace, no empty strings
            List<String> words = new ArrayList<>();
            int i = 0;
            while (i < s.length()) {
                while (i < s.length() && Jinja.isPySpace(s.charAt(i))) {
                    i++;
                }
                if (i >= s.length()) {
                    break;
                }
                int j = i;
                while (j < s.length() && !Jinja.isPySpace(s.charAt(j))) {
                    j++;
                }
                if (max >= 0 && words.size() == max && !fromRight) {
                    words.add(rstripPyKeep(s.substring(i)));
                    i = s.length();
                    break;
                }
                words.add(s.substring(i, j));
                i = j;
            }
            out.addAll(words);
            return out;
        }
        if (sep.isEmpty()) {
            throw new ChatTemplateException("chat template: empty separator");
        }
        if (fromRight && max >= 0) {
            List<String> parts = new ArrayList<>();
            int end = s.length();
            while (parts.size() < max) {
                int k = s.lastIndexOf(sep, end - sep.length());
                if (k < 0 || end - sep.length() < 0) {
                    break;
                }
                parts.addFirst(s.substring(k + sep.length(), end));
                end = k;
            }
            parts.addFirst(s.substring(0, end));
            out.addAll(parts);
            return out;
        }
        int from = 0;
        while (true) {
            int k = s.indexOf(sep, from);
            if (k < 0 || (max >= 0 && out.size() == max)) {
                out.add(s.substring(from));
                return out;
            }
            out.add(s.substring(from, k));
            from = k + sep.length();
        }
    }

    private static String rstripPyKeep(String s) {
        return Jinja.rstripPy(s);
    }

    private static String replace(String s, String old, String rep, long count) {
        if (count < 0) {
            return s.replace(old, rep);
        }
        StringBuilder sb = new StringBuilder();
        int from = 0;
        for (long c = 0; c < count; c++) {
            int k = s.indexOf(old, from);
            if (k < 0) {
                break;
            }
            sb.append(s, from, k).append(rep);
            from = k + old.length();
            if (old.isEmpty()) {
                if (from < s.length()) {
                    sb.append(s.charAt(from));
                }
                from++;
            }
        }
        if (from <= s.length()) {
            sb.append(s.substring(Math.min(from, s.length())));
        }
        return sb.toString();
    }

    static void argCount(String name, List<Object> a, int min, int max) {
        if (a.size() < min || a.size() > max) {
            throw new ChatTemplateException("chat template: " + name + "() takes " + (min == max ? "" + min
                    : min + " to " + max) + " arguments, got " + a.size());
        }
    }

    static String requireString(Object o, String where) {
        if (o instanceof String s) {
            return s;
        }
        throw new ChatTemplateException("chat template: " + where + " needs a str, got " + typeName(o));
    }

    static long requireLong(Object o, String where) {
        if (o instanceof Long l) {
            return l;
        }
        if (o instanceof Boolean b) {
            return b ? 1 : 0;
        }
        throw new ChatTemplateException("chat template: " + where + " needs an int, got " + typeName(o));
    }

    static Object requireNumber(Object o, String where) {
        if (o instanceof Long || o instanceof Double) {
            return o;
        }
        if (o instanceof Boolean b) {
            return b ? 1L : 0L;
        }
        throw new ChatTemplateException("chat template: " + where + " needs a number, got " + typeName(o));
    }

    static Object negate(Object v) {
        Object n = requireNumber(v, "unary -");
        return n instanceof Long l ? (Object) (-l) : (Object) (-(Double) n);
    }

    // ---------------------------------------------------------------- operators

    static boolean equal(Object a, Object b) {
        if (a == b) {
            return true;
        }
        if (a == null || b == null || a == UNDEFINED || b == UNDEFINED) {
            return false;
        }
        if (isNumeric(a) && isNumeric(b)) {
            return toDouble(a) == toDouble(b);
        }
        if (a instanceof List<?> x && b instanceof List<?> y) {
            if (x.size() != y.size()) {
                return false;
            }
            for (int i = 0; i < x.size(); i++) {
                if (!equal(x.get(i), y.get(i))) {
                    return false;
                }
            }
            return true;
        }
        return a.equals(b);
    }

    private static boolean isNumeric(Object o) {
        return o instanceof Long || o instanceof Double || o instanceof Boolean;
    }

    private static double toDouble(Object o) {
        return o instanceof Long l ? l : o instanceof Double d ? d : ((Boolean) o ? 1 : 0);
    }

    static int compare(Object a, Object b, String op) {
        if (isNumeric(a) && isNumeric(b)) {
            return Double.compare(toDouble(a), toDouble(b));
        }
        if (a instanceof String x && b instanceof String y) {
            return Integer.signum(comparePy(x, y));
        }
        throw new ChatTemplateException("chat template: '" + op + "' not supported between " + typeName(a) + " and "
                + typeName(b));
    }

    /** Python compares strings by code point. */
    private static int comparePy(String x, String y) {
        return java.util.Arrays.compare(x.codePoints().toArray(), y.codePoints().toArray());
    }

    static Object binary(String op, Object a, Object b, int line) {
        switch (op) {
            case "==" -> {
                return equal(a, b);
            }
            case "!=" -> {
                return !equal(a, b);
            }
            case "<" -> {
                return compare(a, b, op) < 0;
            }
            case ">" -> {
                return compare(a, b, op) > 0;
            }
            case "<=" -> {
                return compare(a, b, op) <= 0;
            }
            case ">=" -> {
                return compare(a, b, op) >= 0;
            }
            case "~" -> {
                return str(a) + str(b);
            }
            case "in" -> {
                return contains(b, a);
            }
            default -> {
            }
        }
        if (a == UNDEFINED || b == UNDEFINED) {
            throw new ChatTemplateException("chat template line " + line + ": '" + op + "' with an undefined value");
        }
        if (op.equals("+")) {
            if (a instanceof String x && b instanceof String y) {
                return x + y;
            }
            if (a instanceof List<?> x && b instanceof List<?> y) {
                List<Object> out = new ArrayList<>(x);
                out.addAll(y);
                return out;
            }
        }
        if (op.equals("*") && (a instanceof String || b instanceof String || a instanceof List || b instanceof List)) {
            Object seq = a instanceof String || a instanceof List ? a : b;
            long times = requireLong(seq == a ? b : a, "*");
            if (times * (seq instanceof String s ? s.length() : ((List<?>) seq).size()) > Jinja.MAX_OUTPUT) {
                throw new ChatTemplateException("chat template: repetition too large");
            }
            if (seq instanceof String s) {
                return s.repeat((int) Math.max(0, times));
            }
            List<Object> out = new ArrayList<>();
            for (long i = 0; i < times; i++) {
                out.addAll((List<?>) seq);
            }
            return out;
        }
        if (!isNumeric(a) || !isNumeric(b)) {
            throw new ChatTemplateException("chat template line " + line + ": unsupported operand types for " + op + ": '"
                    + typeName(a) + "' and '" + typeName(b) + "'");
        }
        boolean ints = !(a instanceof Double) && !(b instanceof Double);
        if (ints) {
            long x = (long) toDouble(a);
            long y = (long) toDouble(b);
            switch (op) {
                case "+" -> {
                    return x + y;
                }
                case "-" -> {
                    return x - y;
                }
                case "*" -> {
                    return x * y;
                }
                case "/" -> {
                    if (y == 0) {
                        throw new ChatTemplateException("chat template line " + line + ": division by zero");
                    }
                    return (double) x / y;
                }
                case "//" -> {
                    if (y == 0) {
                        throw new ChatTemplateException("chat template line " + line + ": division by zero");
                    }
                    return Math.floorDiv(x, y);
                }
                case "%" -> {
                    if (y == 0) {
                        throw new ChatTemplateException("chat template line " + line + ": modulo by zero");
                    }
                    return Math.floorMod(x, y);
                }
                case "**" -> {
                    if (y >= 0 && y < 64) {
                        return (long) Math.pow(x, y);
                    }
                    return Math.pow(x, y);
                }
                default -> throw new ChatTemplateException("chat template: unknown operator " + op);
            }
        }
        double x = toDouble(a);
        double y = toDouble(b);
        return switch (op) {
            case "+" -> x + y;
            case "-" -> x - y;
            case "*" -> x * y;
            case "/" -> x / y;
            case "//" -> Math.floor(x / y);
            case "%" -> x - y * Math.floor(x / y);
            case "**" -> Math.pow(x, y);
            default -> throw new ChatTemplateException("chat template: unknown operator " + op);
        };
    }

    static boolean contains(Object container, Object item) {
        if (container == null) {
            throw new ChatTemplateException("chat template: argument of type 'NoneType' is not iterable");
        }
        return switch (container) {
            case String s -> s.contains(requireString(item, "'in <string>'"));
            case List<?> l -> l.stream().anyMatch(o -> equal(o, item));
            case Map<?, ?> m -> m.containsKey(item);
            default -> {
                if (container == UNDEFINED) {
                    yield false;
                }
                throw new ChatTemplateException("chat template: argument of type '" + typeName(container)
                        + "' is not iterable");
            }
        };
    }

    // ---------------------------------------------------------------- JSON (Python's json.dumps)

    static String toJson(Object v, Long indent, boolean sortKeys, String itemSep, String keySep) {
        StringBuilder sb = new StringBuilder();
        String is = itemSep != null ? itemSep : indent == null ? ", " : ",";
        String ks = keySep != null ? keySep : ": ";
        writeJson(sb, v, indent, sortKeys, is, ks, 0);
        return sb.toString();
    }

    private static void writeJson(StringBuilder sb, Object v, Long indent, boolean sortKeys, String is, String ks,
                                  int level) {
        if (level > 200) {
            throw new ChatTemplateException("chat template: tojson nested too deeply");
        }
        switch (v) {
            case null -> sb.append("null");
            case Boolean b -> sb.append(b ? "true" : "false");
            case Long l -> sb.append(l);
            case Double d -> sb.append(Double.isNaN(d) ? "NaN" : Double.isInfinite(d) ? (d > 0 ? "Infinity"
                    : "-Infinity") : reprFloat(d));
            case String s -> jsonString(sb, s);
            case List<?> l -> {
                if (l.isEmpty()) {
                    sb.append("[]");
                    return;
                }
                sb.append('[');
                for (int i = 0; i < l.size(); i++) {
                    if (i > 0) {
                        sb.append(is);
                    }
                    newline(sb, indent, level + 1);
                    writeJson(sb, l.get(i), indent, sortKeys, is, ks, level + 1);
                }
                newline(sb, indent, level);
                sb.append(']');
            }
            case Map<?, ?> m -> {
                if (m.isEmpty()) {
                    sb.append("{}");
                    return;
                }
                List<Map.Entry<?, ?>> entries = new ArrayList<>(m.entrySet());
                if (sortKeys) {
                    entries.sort((x, y) -> comparePy(jsonKey(x.getKey()), jsonKey(y.getKey())));
                }
                sb.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : entries) {
                    if (!first) {
                        sb.append(is);
                    }
                    first = false;
                    newline(sb, indent, level + 1);
                    jsonString(sb, jsonKey(e.getKey()));
                    sb.append(ks);
                    writeJson(sb, e.getValue(), indent, sortKeys, is, ks, level + 1);
                }
                newline(sb, indent, level);
                sb.append('}');
            }
            case Namespace n -> throw new ChatTemplateException("chat template: Object of type Namespace is not JSON"
                    + " serializable");
            default -> {
                if (v == UNDEFINED) {
                    throw new ChatTemplateException("chat template: Object of type Undefined is not JSON serializable");
                }
                throw new ChatTemplateException("chat template: Object of type function is not JSON serializable");
            }
        }
    }

    private static String jsonKey(Object k) {
        return switch (k) {
            case String s -> s;
            case null -> "null";
            case Boolean b -> b ? "true" : "false";
            case Long l -> l.toString();
            case Double d -> reprFloat(d);
            default -> throw new ChatTemplateException("chat template: keys must be str, int, float, bool or None");
        };
    }

    private static void newline(StringBuilder sb, Long indent, int level) {
        if (indent != null) {
            sb.append('\n').append(" ".repeat((int) (indent * level)));
        }
    }

    /** json.dumps(ensure_ascii=False): escapes quote, backslash and control characters only. */
    static void jsonString(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                default -> {
                    if (c < 0x20) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
        sb.append('"');
    }
}
