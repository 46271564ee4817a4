package ai.k2j.cli;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * A verb's declaration: its name, a one-line summary, its flags in the order they are shown, and notes printed
 * after the flags in {@code --help}. Usage text is generated from it, never written by hand.
 */
record VerbSpec(String verb, String summary, List<Flag> flags, String notes) {

    /** Width usage text is wrapped to. */
    static final int WIDTH = 112;

    VerbSpec {
        flags = List.copyOf(flags);
        Set<String> names = new HashSet<>();
        for (Flag f : flags) {
            if (!names.add(f.name())) {
                throw new IllegalStateException("k2j " + verb + " declares --" + f.name() + " twice");
            }
        }
        notes = notes == null ? "" : notes.strip();
    }

    /** The flag lists one after another (a verb's own flags and shared ones). */
    @SafeVarargs
    static List<Flag> join(List<Flag>... parts) {
        List<Flag> all = new ArrayList<>();
        for (List<Flag> p : parts) {
            all.addAll(p);
        }
        return all;
    }

    /** The declared flag, or null. */
    Flag flag(String name) {
        for (Flag f : flags) {
            if (f.name().equals(name)) {
                return f;
            }
        }
        return null;
    }

    /**
     * Every flag in declaration order, optional ones in brackets, a group's alternatives together at the place of
     * its first member: {@code ./k2j generate [--model DIR] (--prompt TEXT | --prompt-ids IDS) ...}, wrapped with
     * continuation lines indented under the first flag. The README's usage block of the verb is exactly this.
     */
    String synopsis() {
        return wrap("./k2j " + verb + " ", terms(false));
    }

    /** Required flags and groups only, then {@code [flags]} when there are optional ones. */
    String shortSynopsis() {
        List<String> t = terms(true);
        boolean optional = flags.stream().anyMatch(f -> !f.required());
        if (optional) {
            t.add("[flags]");
        }
        return String.join(" ", t);
    }

    private List<String> terms(boolean requiredOnly) {
        Map<String, List<Flag>> groups = new LinkedHashMap<>();
        for (Flag f : flags) {
            if (f.group() != null) {
                groups.computeIfAbsent(f.group(), g -> new ArrayList<>()).add(f);
            }
        }
        List<String> out = new ArrayList<>();
        Set<String> done = new HashSet<>();
        for (Flag f : flags) {
            if (f.group() != null) {
                if (!done.add(f.group())) {
                    continue;
                }
                List<Flag> members = groups.get(f.group());
                boolean req = members.getFirst().required();
                if (requiredOnly && !req) {
                    continue;
                }
                String alts = members.stream().map(Flag::form).collect(Collectors.joining(" | "));
                out.add(req ? "(" + alts + ")" : "[" + alts + "]");
            } else if (f.required()) {
                out.add(f.form());
            } else if (!requiredOnly) {
                out.add("[" + f.form() + "]");
            }
        }
        return out;
    }

    /** {@code k2j VERB --help}: the short synopsis, one entry per flag with its default, then the notes. */
    String help() {
        StringBuilder b = new StringBuilder("usage: k2j ").append(verb).append(' ').append(shortSynopsis())
                .append('\n');
        int col = 2 + flags.stream().mapToInt(f -> f.form().length()).max().orElse(0) + 2;
        col = Math.min(col, 25);
        for (Flag f : flags) {
            String text = f.help() + (f.defaultValue() != null ? " (default: " + f.defaultValue() + ")" : "")
                    + (f.required() && f.group() == null ? " (required)" : "");
            String head = "  " + f.form();
            List<String> lines = words(text, WIDTH - col);
            if (head.length() + 2 > col) {
                b.append(head).append('\n');
                head = "";
            }
            for (String line : lines) {
                b.append(head).append(" ".repeat(col - head.length())).append(line).append('\n');
                head = "";
            }
        }
        if (!notes.isEmpty()) {
            for (String para : notes.split("\n")) {
                for (String line : words(para, WIDTH)) {
                    b.append(line).append('\n');
                }
            }
        }
        return b.toString();
    }

    /** Joins terms after {@code prefix}, never breaking a term, continuation lines indented to the prefix. */
    private static String wrap(String prefix, List<String> terms) {
        StringBuilder b = new StringBuilder(prefix.stripTrailing());
        int lineStart = 0;
        String indent = " ".repeat(prefix.length());
        for (String t : terms) {
            if (b.length() - lineStart + 1 + t.length() > WIDTH) {
                b.append('\n');
                lineStart = b.length();
                b.append(indent).append(t);
            } else {
                b.append(' ').append(t);
            }
        }
        return b.append('\n').toString();
    }

    /** Greedy word wrap of one paragraph. */
    private static List<String> words(String text, int width) {
        List<String> lines = new ArrayList<>();
        StringBuilder line = new StringBuilder();
        for (String w : text.strip().split(" +")) {
            if (!line.isEmpty() && line.length() + 1 + w.length() > width) {
                lines.add(line.toString());
                line.setLength(0);
            }
            if (!line.isEmpty()) {
                line.append(' ');
            }
            line.append(w);
        }
        lines.add(line.toString());
        return lines;
    }
}
