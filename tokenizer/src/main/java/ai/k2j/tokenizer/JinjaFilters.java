package ai.k2j.tokenizer;

import ai.k2j.tokenizer.Jinja.Callable;
import ai.k2j.tokenizer.Jinja.Namespace;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static ai.k2j.tokenizer.Jinja.UNDEFINED;
import static ai.k2j.tokenizer.JinjaValues.argCount;
import static ai.k2j.tokenizer.JinjaValues.iterate;
import static ai.k2j.tokenizer.JinjaValues.requireLong;
import static ai.k2j.tokenizer.JinjaValues.requireString;
import static ai.k2j.tokenizer.JinjaValues.str;
import static ai.k2j.tokenizer.JinjaValues.truthy;
import static ai.k2j.tokenizer.JinjaValues.typeName;

/** Jinja2's built-in filters and tests that chat templates use, plus HF's {@code tojson}; and the globals. */
final class JinjaFilters {
    private JinjaFilters() {
    }

    static Object apply(String name, Object v, List<Object> a, Map<String, Object> kw, int line, Object renderer) {
        switch (name) {
            case "length", "count" -> {
                if (v == null) {
                    throw error(line, "object of type 'NoneType' has no len()");
                }
                return switch (v) {
                    case String s -> (long) s.codePointCount(0, s.length());
                    case List<?> l -> (long) l.size();
                    case Map<?, ?> m -> (long) m.size();
                    default -> {
                        if (v == UNDEFINED) {
                            yield 0L;
                        }
                        throw error(line, "object of type '" + typeName(v) + "' has no len()");
                    }
                };
            }
            case "tojson" -> {
                Object indent = kw.containsKey("indent") ? kw.get("indent") : a.isEmpty() ? null : a.getFirst();
                Object seps = kw.get("separators");
                String itemSep = null;
                String keySep = null;
                if (seps instanceof List<?> l && l.size() == 2) {
                    itemSep = requireString(l.get(0), "tojson separators");
                    keySep = requireString(l.get(1), "tojson separators");
                }
                return JinjaValues.toJson(v, indent == null ? null : requireLong(indent, "tojson indent"),
                        truthy(kw.getOrDefault("sort_keys", false)), itemSep, keySep);
            }
            case "trim" -> {
                String chars = a.isEmpty() ? null : (String) a.getFirst();
                return JinjaValues.strip(str(v), chars, true, true);
            }
            case "upper" -> {
                return str(v).toUpperCase(Locale.ROOT);
            }
            case "lower" -> {
                return str(v).toLowerCase(Locale.ROOT);
            }
            case "title" -> {
                return title(str(v));
            }
            case "capitalize" -> {
                String s = str(v);
                return s.isEmpty() ? s : s.substring(0, 1).toUpperCase(Locale.ROOT) + s.substring(1).toLowerCase(Locale.ROOT);
            }
            case "string" -> {
                return str(v);
            }
            case "safe" -> {
                return v;
            }
            case "e", "escape" -> {
                return str(v).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&#34;")
                        .replace("'", "&#39;");
            }
            case "int" -> {
                if (v == null) {
                    return a.isEmpty() ? 0L : a.getFirst();
                }
                return switch (v) {
                    case Long l -> l;
                    case Double d -> (long) (double) d;
                    case Boolean b -> b ? 1L : 0L;
                    case String s -> {
                        try {
                            yield Long.parseLong(s.strip());
                        } catch (NumberFormatException e) {
                            try {
                                yield (long) Double.parseDouble(s.strip());
                            } catch (NumberFormatException e2) {
                                yield a.isEmpty() ? 0L : a.getFirst();
                            }
                        }
                    }
                    default -> a.isEmpty() ? 0L : a.getFirst();
                };
            }
            case "float" -> {
                if (v == null) {
                    return a.isEmpty() ? 0.0 : a.getFirst();
                }
                return switch (v) {
                    case Long l -> (double) l;
                    case Double d -> d;
                    case Boolean b -> b ? 1.0 : 0.0;
                    case String s -> {
                        try {
                            yield Double.parseDouble(s.strip());
                        } catch (NumberFormatException e) {
                            yield a.isEmpty() ? 0.0 : a.getFirst();
                        }
                    }
                    default -> a.isEmpty() ? 0.0 : a.getFirst();
                };
            }
            case "abs" -> {
                Object n = JinjaValues.requireNumber(v, "abs");
                return n instanceof Long l ? (Object) Math.abs(l) : (Object) Math.abs((Double) n);
            }
            case "round" -> {
                long precision = a.isEmpty() ? requireLong(kw.getOrDefault("precision", 0L), "round")
                        : requireLong(a.getFirst(), "round");
                double x = ((Number) JinjaValues.requireNumber(v, "round")).doubleValue();
                double f = Math.pow(10, precision);
                return Math.rint(x * f) / f;
            }
            case "d", "default" -> {
                Object dflt = a.isEmpty() ? kw.getOrDefault("default_value", "") : a.getFirst();
                boolean bool = a.size() > 1 ? truthy(a.get(1)) : truthy(kw.getOrDefault("boolean", false));
                return v == UNDEFINED || (bool && !truthy(v)) ? dflt : v;
            }
            case "first" -> {
                List<Object> items = iterate(v);
                return items.isEmpty() ? UNDEFINED : items.getFirst();
            }
            case "last" -> {
                List<Object> items = iterate(v);
                return items.isEmpty() ? UNDEFINED : items.getLast();
            }
            case "list" -> {
                return iterate(v);
            }
            case "reverse" -> {
                if (v instanceof String s) {
                    return new StringBuilder(s).reverse().toString();
                }
                List<Object> items = iterate(v);
                java.util.Collections.reverse(items);
                return items;
            }
            case "join" -> {
                String sep = a.isEmpty() ? str(kw.getOrDefault("d", "")) : str(a.getFirst());
                Object attr = a.size() > 1 ? a.get(1) : kw.get("attribute");
                StringBuilder sb = new StringBuilder();
                List<Object> items = iterate(v);
                for (int i = 0; i < items.size(); i++) {
                    Object item = attr == null ? items.get(i) : JinjaValues.getItem(items.get(i), attr);
                    sb.append(i == 0 ? "" : sep).append(str(item));
                }
                return sb.toString();
            }
            case "items" -> {
                if (v == UNDEFINED) {
                    return new ArrayList<>();
                }
                if (!(v instanceof Map<?, ?> m)) {
                    throw error(line, "items() of a " + typeName(v));
                }
                List<Object> out = new ArrayList<>();
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    out.add(java.util.Arrays.asList(e.getKey(), e.getValue()));
                }
                return out;
            }
            case "dictsort" -> {
                if (!(v instanceof Map<?, ?> m)) {
                    throw error(line, "dictsort of a " + typeName(v));
                }
                List<Object> out = new ArrayList<>();
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    out.add(java.util.Arrays.asList(e.getKey(), e.getValue()));
                }
                out.sort((x, y) -> sortKey(((List<?>) x).getFirst(), y == null ? null : ((List<?>) y).getFirst()));
                return out;
            }
            case "sort" -> {
                List<Object> items = iterate(v);
                Object attr = kw.get("attribute");
                boolean reverse = truthy(kw.getOrDefault("reverse", a.isEmpty() ? false : a.getFirst()));
                items.sort((x, y) -> {
                    Object kx = attr == null ? x : JinjaValues.getItem(x, attr);
                    Object ky = attr == null ? y : JinjaValues.getItem(y, attr);
                    return sortKey(kx, ky);
                });
                if (reverse) {
                    java.util.Collections.reverse(items);
                }
                return items;
            }
            case "unique" -> {
                List<Object> out = new ArrayList<>();
                for (Object o : iterate(v)) {
                    if (out.stream().noneMatch(x -> JinjaValues.equal(x, o))) {
                        out.add(o);
                    }
                }
                return out;
            }
            case "sum" -> {
                Object total = kw.getOrDefault("start", 0L);
                for (Object o : iterate(v)) {
                    total = JinjaValues.binary("+", total, o, line);
                }
                return total;
            }
            case "min", "max" -> {
                List<Object> items = iterate(v);
                if (items.isEmpty()) {
                    return UNDEFINED;
                }
                Object best = items.getFirst();
                for (Object o : items) {
                    int c = sortKey(o, best);
                    if (name.equals("min") ? c < 0 : c > 0) {
                        best = o;
                    }
                }
                return best;
            }
            case "map" -> {
                List<Object> out = new ArrayList<>();
                Object attr = kw.get("attribute");
                for (Object o : iterate(v)) {
                    if (attr != null) {
                        Object x = JinjaValues.getItem(o, attr);
                        out.add(x == UNDEFINED && kw.containsKey("default") ? kw.get("default") : x);
                    } else if (!a.isEmpty()) {
                        out.add(apply(requireString(a.getFirst(), "map"), o, a.subList(1, a.size()), Map.of(), line,
                                renderer));
                    } else {
                        throw error(line, "map needs a filter name or attribute=");
                    }
                }
                return out;
            }
            case "select", "reject", "selectattr", "rejectattr" -> {
                boolean attrMode = name.endsWith("attr");
                boolean keep = name.startsWith("select");
                List<Object> out = new ArrayList<>();
                for (Object o : iterate(v)) {
                    Object subject = o;
                    List<Object> rest = a;
                    if (attrMode) {
                        if (a.isEmpty()) {
                            throw error(line, name + " needs an attribute name");
                        }
                        subject = JinjaValues.getItem(o, a.getFirst());
                        rest = a.subList(1, a.size());
                    }
                    boolean r = rest.isEmpty() ? truthy(subject)
                            : test(requireString(rest.getFirst(), name), subject, rest.subList(1, rest.size()), line);
                    if (r == keep) {
                        out.add(o);
                    }
                }
                return out;
            }
            case "replace" -> {
                argCount("replace", a, 2, 3);
                String s = str(v);
                String old = str(a.get(0));
                String rep = str(a.get(1));
                if (a.size() == 2) {
                    return s.replace(old, rep);
                }
                Callable m = (Callable) JinjaValues.getAttr(s, "replace");
                return m.call(a, Map.of());
            }
            case "indent" -> {
                long width = a.isEmpty() ? requireLong(kw.getOrDefault("width", 4L), "indent")
                        : a.getFirst() instanceof String ? 0 : requireLong(a.getFirst(), "indent");
                String pad = !a.isEmpty() && a.getFirst() instanceof String s ? s : " ".repeat((int) width);
                boolean first = truthy(a.size() > 1 ? a.get(1) : kw.getOrDefault("first", false));
                boolean blank = truthy(a.size() > 2 ? a.get(2) : kw.getOrDefault("blank", false));
                String s = str(v);
                String[] lines = s.split("\n", -1);
                StringBuilder sb = new StringBuilder();
                for (int i = 0; i < lines.length; i++) {
                    if (i > 0) {
                        sb.append('\n');
                    }
                    boolean indentIt = (i > 0 || first) && (blank || !lines[i].isBlank());
                    sb.append(indentIt ? pad : "").append(lines[i]);
                }
                return sb.toString();
            }
            case "wordcount" -> {
                return (long) ((List<?>) ((Callable) JinjaValues.getAttr(str(v), "split")).call(List.of(), Map.of())).size();
            }
            case "attr" -> {
                argCount("attr", a, 1, 1);
                return JinjaValues.getAttr(v, requireString(a.getFirst(), "attr"));
            }
            case "center" -> {
                String s = str(v);
                int width = (int) (a.isEmpty() ? 80 : requireLong(a.getFirst(), "center"));
                int total = Math.max(0, width - s.length());
                int left = total / 2 + (total & width & 1);
                return " ".repeat(left) + s + " ".repeat(total - left);
            }
            case "batch" -> {
                long size = requireLong(a.isEmpty() ? 1L : a.getFirst(), "batch");
                if (size <= 0) {
                    throw error(line, "batch size must be positive");
                }
                List<Object> out = new ArrayList<>();
                List<Object> cur = new ArrayList<>();
                for (Object o : iterate(v)) {
                    cur.add(o);
                    if (cur.size() == size) {
                        out.add(cur);
                        cur = new ArrayList<>();
                    }
                }
                if (!cur.isEmpty()) {
                    out.add(cur);
                }
                return out;
            }
            default -> throw error(line, "no filter named '" + name + "'");
        }
    }

    private static int sortKey(Object x, Object y) {
        if (x instanceof String s && y instanceof String t) {
            return s.compareToIgnoreCase(t); // Jinja sorts case-insensitively by default
        }
        return JinjaValues.compare(x, y, "sort");
    }

    static boolean test(String name, Object v, List<Object> a, int line) {
        return switch (name) {
            case "defined" -> v != UNDEFINED;
            case "undefined" -> v == UNDEFINED;
            case "none" -> v == null;
            case "boolean" -> v instanceof Boolean;
            case "false" -> Boolean.FALSE.equals(v);
            case "true" -> Boolean.TRUE.equals(v);
            case "integer" -> v instanceof Long;
            case "float" -> v instanceof Double;
            case "number" -> v instanceof Long || v instanceof Double || v instanceof Boolean;
            case "string" -> v instanceof String;
            case "mapping" -> v instanceof Map;
            case "sequence" -> v instanceof List || v instanceof String || v instanceof Map;
            case "iterable" -> v instanceof List || v instanceof String || v instanceof Map;
            case "callable" -> v instanceof Callable;
            case "lower" -> v instanceof String s && s.equals(s.toLowerCase(Locale.ROOT));
            case "upper" -> v instanceof String s && s.equals(s.toUpperCase(Locale.ROOT));
            case "even", "odd" -> {
                long n = requireLong(v, name);
                yield (n % 2 == 0) == name.equals("even");
            }
            case "divisibleby" -> {
                argCount(name, a, 1, 1);
                long d = requireLong(a.getFirst(), name);
                yield d != 0 && requireLong(v, name) % d == 0;
            }
            case "eq", "equalto", "==" -> {
                argCount(name, a, 1, 1);
                yield JinjaValues.equal(v, a.getFirst());
            }
            case "ne", "!=" -> {
                argCount(name, a, 1, 1);
                yield !JinjaValues.equal(v, a.getFirst());
            }
            case "lt", "lessthan", "<" -> JinjaValues.compare(v, one(name, a), "<") < 0;
            case "gt", "greaterthan", ">" -> JinjaValues.compare(v, one(name, a), ">") > 0;
            case "le", "<=" -> JinjaValues.compare(v, one(name, a), "<=") <= 0;
            case "ge", ">=" -> JinjaValues.compare(v, one(name, a), ">=") >= 0;
            case "in" -> JinjaValues.contains(one(name, a), v);
            case "sameas" -> {
                Object o = one(name, a);
                yield v == o || (v instanceof Boolean && v.equals(o));
            }
            default -> throw error(line, "no test named '" + name + "'");
        };
    }

    private static Object one(String name, List<Object> a) {
        argCount(name, a, 1, 1);
        return a.getFirst();
    }

    /** Python's str.title(). */
    static String title(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        boolean prevCased = false;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            sb.append(prevCased ? Character.toLowerCase(c) : Character.toUpperCase(c));
            prevCased = Character.isLetter(c);
        }
        return sb.toString();
    }

    private static ChatTemplateException error(int line, String what) {
        return new ChatTemplateException("chat template line " + line + ": " + what);
    }

    // ---------------------------------------------------------------- globals

    /** The globals HF provides: range, namespace, dict, raise_exception, strftime_now. */
    static Map<String, Object> globals(java.time.Clock clock) {
        Map<String, Object> g = new LinkedHashMap<>();
        g.put("range", (Callable) (a, kw) -> {
            argCount("range", a, 1, 3);
            long start = a.size() == 1 ? 0 : requireLong(a.get(0), "range");
            long stop = requireLong(a.size() == 1 ? a.get(0) : a.get(1), "range");
            long step = a.size() == 3 ? requireLong(a.get(2), "range") : 1;
            if (step == 0) {
                throw new ChatTemplateException("chat template: range() step must not be zero");
            }
            long count = step > 0 ? Math.max(0, (stop - start + step - 1) / step)
                    : Math.max(0, (start - stop - step - 1) / -step);
            if (count > Jinja.MAX_RANGE) {
                throw new ChatTemplateException("chat template: range() of " + count + " items is over the sandbox's "
                        + Jinja.MAX_RANGE);
            }
            List<Object> out = new ArrayList<>((int) count);
            for (long i = 0, x = start; i < count; i++, x += step) {
                out.add(x);
            }
            return out;
        });
        g.put("namespace", (Callable) (a, kw) -> {
            Namespace ns = new Namespace();
            for (Object o : a) {
                if (o instanceof Map<?, ?> m) {
                    for (Map.Entry<?, ?> e : m.entrySet()) {
                        ns.attrs.put(str(e.getKey()), e.getValue());
                    }
                }
            }
            ns.attrs.putAll(kw);
            return ns;
        });
        g.put("dict", (Callable) (a, kw) -> {
            Map<Object, Object> m = new LinkedHashMap<>();
            for (Object o : a) {
                if (o instanceof Map<?, ?> src) {
                    m.putAll(src);
                }
            }
            m.putAll(kw);
            return m;
        });
        g.put("raise_exception", (Callable) (a, kw) -> {
            throw new ChatTemplateException(JinjaChatTemplate.RAISED + (a.isEmpty() ? "" : str(a.getFirst())));
        });
        g.put("strftime_now", (Callable) (a, kw) -> {
            argCount("strftime_now", a, 1, 1);
            return strftime(requireString(a.getFirst(), "strftime_now"),
                    java.time.ZonedDateTime.now(clock));
        });
        return g;
    }

    /** Python's strftime for the common directives (C locale). */
    static String strftime(String format, java.time.ZonedDateTime t) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < format.length(); i++) {
            char c = format.charAt(i);
            if (c != '%' || i + 1 >= format.length()) {
                sb.append(c);
                continue;
            }
            char d = format.charAt(++i);
            String month = t.getMonth().getDisplayName(java.time.format.TextStyle.FULL, Locale.ENGLISH);
            String day = t.getDayOfWeek().getDisplayName(java.time.format.TextStyle.FULL, Locale.ENGLISH);
            switch (d) {
                case 'd' -> sb.append(String.format("%02d", t.getDayOfMonth()));
                case 'm' -> sb.append(String.format("%02d", t.getMonthValue()));
                case 'Y' -> sb.append(t.getYear());
                case 'y' -> sb.append(String.format("%02d", t.getYear() % 100));
                case 'H' -> sb.append(String.format("%02d", t.getHour()));
                case 'I' -> sb.append(String.format("%02d", (t.getHour() + 11) % 12 + 1));
                case 'M' -> sb.append(String.format("%02d", t.getMinute()));
                case 'S' -> sb.append(String.format("%02d", t.getSecond()));
                case 'p' -> sb.append(t.getHour() < 12 ? "AM" : "PM");
                case 'b', 'h' -> sb.append(month, 0, 3);
                case 'B' -> sb.append(month);
                case 'a' -> sb.append(day, 0, 3);
                case 'A' -> sb.append(day);
                case 'j' -> sb.append(String.format("%03d", t.getDayOfYear()));
                case 'e' -> sb.append(String.format("%2d", t.getDayOfMonth()));
                case 'Z' -> sb.append(t.getZone().getId().equals("Z") ? "UTC" : t.getZone().getId());
                case '%' -> sb.append('%');
                default -> sb.append('%').append(d);
            }
        }
        return sb.toString();
    }
}
