package ai.k2j.cli;

import java.util.Objects;

/**
 * One flag of a verb, declared once: the verb's {@code --help}, its synopsis (in {@code k2j --help} and the
 * README's CLI reference, which {@code CliReferenceTest} compares) and {@link Args}' check of what the verb reads
 * all come from it.
 *
 * @param name         without the leading dashes
 * @param value        the value's placeholder in usage text ({@code N}, {@code DIR|none}); null for a switch
 * @param defaultValue what applies when the flag is absent, as shown in {@code --help}; null when there is none
 *                     to show (required flags, switches, or a help text that already says it)
 * @param help         what the flag does (one sentence or a few; wrapped when printed)
 * @param required     the verb cannot run without it (or, in a group, without one of the group)
 * @param group        flags sharing a non-null group are alternatives, shown as {@code (--a X | --b Y)}
 */
record Flag(String name, String value, String defaultValue, String help, boolean required, String group) {

    Flag {
        Objects.requireNonNull(name);
        Objects.requireNonNull(help);
        if (name.startsWith("-") || name.isBlank()) {
            throw new IllegalArgumentException("flag name without dashes: " + name);
        }
    }

    /** An optional flag with a value. */
    static Flag option(String name, String value, String defaultValue, String help) {
        return new Flag(name, value, defaultValue, help, false, null);
    }

    /** A switch (no value; absent means off). */
    static Flag toggle(String name, String help) {
        return new Flag(name, null, null, help, false, null);
    }

    /** A required flag with a value. */
    static Flag required(String name, String value, String help) {
        return new Flag(name, value, null, help, true, null);
    }

    /** This flag as one of the alternatives of {@code group} (required: exactly one of the group must be given). */
    Flag inGroup(String group, boolean groupRequired) {
        return new Flag(name, value, defaultValue, help, groupRequired, group);
    }

    boolean isSwitch() {
        return value == null;
    }

    /** {@code --name VALUE}, or {@code --name} for a switch. */
    String form() {
        return value == null ? "--" + name : "--" + name + " " + value;
    }
}
