package ai.k2j.cli;

import java.io.PrintStream;

/** One CLI verb. Output for machines goes to {@code out}; progress and diagnostics to {@code err}. */
interface Command {
    int run(Args args, PrintStream out, PrintStream err);
}
