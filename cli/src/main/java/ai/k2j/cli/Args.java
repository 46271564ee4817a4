package ai.k2j.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * {@code --flag value}, {@code --flag=value} and {@code --switch} arguments. A flag followed by another flag (or
 * nothing) is a switch; reading a switch as a value is a usage error, so {@code --prompt --chat} does not
 * silently generate for the prompt "true". Each command reads what it knows and then calls {@link #finish()} so
 * unknown flags are errors.
 */
final class Args {
    private final Map<String, String> values = new LinkedHashMap<>();
    private final Set<String> switches = new HashSet<>();
    private final List<String> positional = new ArrayList<>();
    private final Set<String> read = new HashSet<>();
    private VerbSpec spec;

    static Args parse(String[] argv) {
        Args a = new Args();
        for (int i = 0; i < argv.length; i++) {
            String s = argv[i];
            if (s.startsWith("--")) {
                String key = s.substring(2);
                String val = "true";
                boolean isSwitch = false;
                int eq = key.indexOf('=');
                if (eq >= 0) {
                    val = key.substring(eq + 1);
                    key = key.substring(0, eq);
                } else if (i + 1 < argv.length && !(argv[i + 1].startsWith("--") && argv[i + 1].length() > 2)) {
                    val = argv[++i];
                } else {
                    isSwitch = true;
                }
                if (key.isEmpty()) {
                    throw new IllegalArgumentException("empty flag name");
                }
                if (isSwitch) {
                    a.switches.add(key);
                }
                if (a.values.put(key, val) != null) {
                    throw new IllegalArgumentException("flag --" + key + " given twice");
                }
            } else {
                a.positional.add(s);
            }
        }
        return a;
    }

    /**
     * From now on, reading a flag the verb does not declare, or reading a declared switch as a value (or a value
     * as a switch), is a programming error (IllegalStateException): the declaration is the truth about flags.
     */
    Args declare(VerbSpec verb) {
        this.spec = verb;
        return this;
    }

    /** Marks {@code key} read after checking it against the declaration ({@code asSwitch} null: either form). */
    private void touch(String key, Boolean asSwitch) {
        read.add(key);
        if (spec == null || key.equals("help")) {
            return;
        }
        Flag f = spec.flag(key);
        if (f == null) {
            throw new IllegalStateException("k2j " + spec.verb() + " reads --" + key + ", which it does not declare");
        }
        if (asSwitch != null && asSwitch != f.isSwitch()) {
            throw new IllegalStateException("k2j " + spec.verb() + " reads --" + key + " as a "
                    + (asSwitch ? "switch" : "value") + " but declares it "
                    + (f.isSwitch() ? "a switch" : "with a value"));
        }
    }

    /**
     * When the code falls back to its default for {@code key}, that default must be the declared one (where the
     * declaration names a plain value: a number, or one word such as {@code cpu}); descriptive defaults ("all
     * processors") are not compared.
     */
    private void checkDefault(String key, String codeDefault, boolean numeric) {
        Flag f = spec == null ? null : spec.flag(key);
        if (f == null || f.defaultValue() == null || codeDefault == null || values.containsKey(key)) {
            return;
        }
        String declared = f.defaultValue();
        boolean same;
        if (numeric) {
            try {
                same = Double.parseDouble(declared) == Double.parseDouble(codeDefault);
            } catch (NumberFormatException e) {
                return;
            }
        } else {
            if (!declared.matches("[A-Za-z0-9_.]+")) {
                return;
            }
            same = declared.equalsIgnoreCase(codeDefault);
        }
        if (!same) {
            throw new IllegalStateException("k2j " + spec.verb() + " declares --" + key + " default " + declared
                    + " but uses " + codeDefault);
        }
    }

    boolean has(String key) {
        touch(key, null);
        return values.containsKey(key);
    }

    String string(String key, String dflt) {
        touch(key, false);
        requireValue(key);
        checkDefault(key, dflt, false);
        return values.getOrDefault(key, dflt);
    }

    String required(String key) {
        touch(key, false);
        String v = values.get(key);
        if (v == null) {
            throw new UsageException("missing required flag --" + key);
        }
        requireValue(key);
        return v;
    }

    private void requireValue(String key) {
        if (switches.contains(key)) {
            throw new UsageException("--" + key + " needs a value");
        }
    }

    Path path(String key) {
        return Path.of(required(key));
    }

    boolean flag(String key) {
        touch(key, true);
        String v = values.get(key);
        if (v == null) {
            return false;
        }
        if (v.equals("true") || v.equals("false")) {
            return Boolean.parseBoolean(v);
        }
        throw new UsageException("--" + key + " takes no value, got '" + v + "'");
    }

    int integer(String key, int dflt) {
        String v = string(key, null);
        if (v == null) {
            checkDefault(key, Integer.toString(dflt), true);
            return dflt;
        }
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new UsageException("--" + key + " must be an integer, got '" + v + "'");
        }
    }

    long longValue(String key, long dflt) {
        String v = string(key, null);
        if (v == null) {
            checkDefault(key, Long.toString(dflt), true);
            return dflt;
        }
        try {
            return Long.parseLong(v.trim());
        } catch (NumberFormatException e) {
            throw new UsageException("--" + key + " must be an integer, got '" + v + "'");
        }
    }

    double decimal(String key, double dflt) {
        String v = string(key, null);
        if (v == null) {
            checkDefault(key, Double.toString(dflt), true);
            return dflt;
        }
        try {
            return Double.parseDouble(v.trim());
        } catch (NumberFormatException e) {
            throw new UsageException("--" + key + " must be a number, got '" + v + "'");
        }
    }

    /** Comma-separated integers, e.g. {@code --prompt-ids 1,2,3}. */
    int[] ints(String key) {
        String v = required(key);
        String[] parts = v.split(",");
        int[] out = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            try {
                out[i] = Integer.parseInt(parts[i].trim());
            } catch (NumberFormatException e) {
                throw new UsageException("--" + key + " must be comma-separated integers, got '" + parts[i] + "'");
            }
        }
        return out;
    }

    List<String> positional() {
        return List.copyOf(positional);
    }

    /** Throws for flags nobody read: typos must not be silently ignored. */
    void finish() {
        for (String k : values.keySet()) {
            if (!read.contains(k)) {
                throw new UsageException("unknown flag --" + k);
            }
        }
        if (!positional.isEmpty()) {
            throw new UsageException("unexpected argument '" + positional.get(0) + "'");
        }
    }
}
