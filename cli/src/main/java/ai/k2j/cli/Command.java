package ai.k2j.cli;

import java.io.PrintStream;

/**
 * One CLI verb. Output for machines goes to {@code out}; progress and diagnostics to {@code err}.
 * {@link #run} validates every flag (throwing {@link UsageException}, exit 2) before doing any work.
 */
interface Command {
    /** Returns the exit code: 0 ok, 1 failure. */
    int run(Args args, PrintStream out, PrintStream err);

    /** The verb's declaration: name, summary and flags, the one source of its usage text. */
    VerbSpec spec();

    /** The verb's help text ({@code k2j VERB --help}), generated from {@link #spec()}. */
    default String usage() {
        return spec().help();
    }
}
