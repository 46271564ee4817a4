package ai.k2j.scaffold;

import java.math.BigDecimal;
import java.math.MathContext;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Final-answer extraction and comparison for checkable answers: the last {@code \boxed{...}} (nested braces
 * allowed), else the last number in the text. Answers are compared after normalization (spaces, {@code $},
 * {@code \text{}}, thousands separators and a trailing period removed, case folded) and, when both are numbers
 * or fractions ({@code 3/4}, {@code \frac{3}{4}}), by value: {@code 7}, {@code 7.0} and {@code 14/2} agree.
 */
public final class Answers {

    private static final Pattern NUMBER = Pattern.compile("-?\\d+(?:,\\d{3})*(?:\\.\\d+)?(?:\\s*/\\s*\\d+)?");
    private static final Pattern FRAC = Pattern.compile("\\\\d?frac\\{([^{}]*)\\}\\{([^{}]*)\\}");
    private static final Pattern TEXT = Pattern.compile("\\\\(?:text|mathrm|textbf)\\{([^{}]*)\\}");

    private Answers() {
    }

    /** The answer the text commits to, or null: the last \boxed{...}, else the last number. */
    public static String extract(String text) {
        if (text == null) {
            return null;
        }
        String boxed = lastBoxed(text);
        if (boxed != null) {
            return boxed.strip();
        }
        Matcher m = NUMBER.matcher(text);
        String last = null;
        while (m.find()) {
            last = m.group();
        }
        return last;
    }

    /** The content of the last {@code \boxed{...}} (or {@code \fbox{...}}), or null. */
    static String lastBoxed(String text) {
        int at = Math.max(text.lastIndexOf("\\boxed{"), text.lastIndexOf("\\fbox{"));
        if (at < 0) {
            return null;
        }
        int open = text.indexOf('{', at);
        int depth = 0;
        for (int i = open; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '{') {
                depth++;
            } else if (c == '}' && --depth == 0) {
                return text.substring(open + 1, i);
            }
        }
        return null; // unbalanced: the box was never closed
    }

    /** A canonical form for voting and comparison (numbers in plain decimal form, e.g. "1,000.50" → "1000.5"). */
    public static String normalize(String answer) {
        if (answer == null) {
            return null;
        }
        String s = answer.strip();
        s = TEXT.matcher(s).replaceAll("$1");
        s = FRAC.matcher(s).replaceAll("$1/$2");
        s = s.replace("$", "").replace("\\!", "").replace("\\,", "").replace("\\left", "").replace("\\right", "");
        s = s.replaceAll("\\s+", "");
        while (s.endsWith(".")) {
            s = s.substring(0, s.length() - 1);
        }
        s = s.toLowerCase(Locale.ROOT);
        BigDecimal v = value(s);
        if (v != null) {
            return v.stripTrailingZeros().toPlainString();
        }
        return s;
    }

    /** Whether two answers agree (after normalization, numerically when both are numbers). */
    public static boolean equivalent(String a, String b) {
        if (a == null || b == null) {
            return false;
        }
        String na = normalize(a);
        String nb = normalize(b);
        if (na.equals(nb)) {
            return true;
        }
        BigDecimal va = value(na);
        BigDecimal vb = value(nb);
        return va != null && vb != null && va.compareTo(vb) == 0;
    }

    /** The value of "12", "-3.5", "1,000", "3/4" (to 20 significant digits), else null. */
    static BigDecimal value(String s) {
        String t = s.replace(",", "");
        try {
            int slash = t.indexOf('/');
            if (slash > 0) {
                BigDecimal num = new BigDecimal(t.substring(0, slash));
                BigDecimal den = new BigDecimal(t.substring(slash + 1));
                if (den.signum() == 0) {
                    return null;
                }
                return num.divide(den, new MathContext(20)).stripTrailingZeros();
            }
            if (!t.matches("-?\\d+(\\.\\d+)?")) {
                return null;
            }
            return new BigDecimal(t);
        } catch (NumberFormatException | ArithmeticException e) {
            return null;
        }
    }
}
