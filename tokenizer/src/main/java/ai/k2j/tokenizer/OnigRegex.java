package ai.k2j.tokenizer;

import java.util.regex.Pattern;

/**
 * Compiles an HF tokenizers regex (evaluated there by Oniguruma, Ruby syntax, UTF-8) into a
 * java.util.regex Pattern with the same matches. Character types are rewritten to the exact
 * Oniguruma Unicode sets rather than relying on Java's definitions:
 * <ul>
 *   <li>{@code \s} = U+0009..U+000D, U+0085, Zl, Zp, Zs (= Unicode White_Space);</li>
 *   <li>{@code \d} = Nd; {@code \w} = L, M, N, Pc; {@code \h} = [0-9a-fA-F];</li>
 *   <li>{@code (?i)} folds Unicode case (UNICODE_CASE), e.g. {@code (?i:'s)} also matches "'ſ";</li>
 *   <li>{@code ^ $ .} treat only "\n" as a line break, and ^/$ match at every line (Ruby semantics).</li>
 * </ul>
 * Unsupported constructs (e.g. {@code \K}) are rejected rather than silently mistranslated.
 */
final class OnigRegex {
    private OnigRegex() {}

    static final String SPACE = "\\t\\n\\x0B\\f\\r\\x{85}\\p{Zl}\\p{Zp}\\p{Zs}";
    static final String DIGIT = "\\p{Nd}";
    static final String WORD = "\\p{L}\\p{M}\\p{N}\\p{Pc}";
    static final String HEX = "0-9a-fA-F";

    static Pattern compile(String onig) {
        return Pattern.compile(translate(onig), Pattern.UNICODE_CASE | Pattern.MULTILINE | Pattern.UNIX_LINES);
    }

    static String translate(String p) {
        StringBuilder out = new StringBuilder(p.length() + 64);
        int classDepth = 0;
        for (int i = 0; i < p.length(); i++) {
            char c = p.charAt(i);
            if (c == '\\') {
                if (i + 1 >= p.length()) {
                    throw new IllegalArgumentException("pattern ends with a lone backslash");
                }
                char e = p.charAt(++i);
                String set = switch (e) {
                    case 's', 'S' -> SPACE;
                    case 'd', 'D' -> DIGIT;
                    case 'w', 'W' -> WORD;
                    case 'h', 'H' -> HEX;
                    default -> null;
                };
                if (set != null) {
                    boolean negated = Character.isUpperCase(e);
                    if (classDepth > 0 && !negated) {
                        out.append(set);
                    } else {
                        // a nested class inside a class is a union in Java
                        out.append(negated ? "[^" : "[").append(set).append(']');
                    }
                    continue;
                }
                if (e == 'K' || e == 'G' || e == 'y' || e == 'Y' || e == 'O' || e == 'g' || e == 'k') {
                    throw new IllegalArgumentException("unsupported regex escape \\" + e);
                }
                out.append('\\').append(e);
                continue;
            }
            if (classDepth > 0) {
                if (c == '[') {
                    classDepth++;
                } else if (c == ']') {
                    classDepth--;
                }
                out.append(c);
                continue;
            }
            if (c == '[') {
                classDepth = 1;
                out.append(c);
                // a ']' right after '[' or '[^' is a literal in Oniguruma
                if (i + 1 < p.length() && p.charAt(i + 1) == '^') {
                    out.append('^');
                    i++;
                }
                if (i + 1 < p.length() && p.charAt(i + 1) == ']') {
                    out.append("\\]");
                    i++;
                }
                continue;
            }
            out.append(c);
        }
        return out.toString();
    }
}
