package ai.k2j.cli;

import java.io.BufferedOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Supplier;

/** {@code k2j VERB [flags]}: the command-line interface. Each verb lives in its own class. */
public final class Main {

    private Main() {
    }

    /** Every verb, in the order {@code k2j --help} lists them. */
    static final Map<String, Supplier<Command>> VERBS = verbs();

    private static Map<String, Supplier<Command>> verbs() {
        Map<String, Supplier<Command>> m = new LinkedHashMap<>();
        for (Supplier<Command> s : List.<Supplier<Command>>of(GenerateCommand::new, LogitsCommand::new,
                TokenizeCommand::new, SynthCommand::new, InfoCommand::new, SpeculativeBenchCommand::new,
                PlanCommand::new, ServeCommand::new, ThinkCommand::new, EvalCommand::new, BenchCommand::new,
                QuantizeCommand::new, QuantAccuracyCommand::new)) {
            m.put(s.get().spec().verb(), s);
        }
        return Collections.unmodifiableMap(m);
    }

    /** {@code k2j --help}: each verb's summary and required flags, from its declaration. */
    static final String USAGE = usage();

    private static String usage() {
        StringBuilder b = new StringBuilder("usage: k2j VERB [flags]\n");
        for (Supplier<Command> s : VERBS.values()) {
            VerbSpec v = s.get().spec();
            b.append(String.format(Locale.ROOT, "  %-15s %-38s %s", v.verb(), v.summary(), v.shortSynopsis())
                    .stripTrailing()).append('\n');
        }
        return b.append("run 'k2j VERB --help' for a verb's flags.\n").toString();
    }

    public static void main(String[] argv) {
        // Tokens and JSON are UTF-8 whatever the platform's locale says; stdout is flushed by the verbs
        // (per token when streaming) and at exit.
        PrintStream out = new PrintStream(new BufferedOutputStream(new FileOutputStream(FileDescriptor.out), 1 << 16),
                false, StandardCharsets.UTF_8);
        PrintStream err = new PrintStream(new FileOutputStream(FileDescriptor.err), true, StandardCharsets.UTF_8);
        int code = run(argv, out, err);
        out.flush();
        err.flush();
        System.exit(code);
    }

    /** Runs a command; returns the process exit code (0 ok, 2 usage error, 1 failure). */
    public static int run(String[] argv, PrintStream out, PrintStream err) {
        if (argv.length == 0 || argv[0].equals("--help") || argv[0].equals("-h") || argv[0].equals("help")) {
            (argv.length == 0 ? err : out).print(USAGE);
            return argv.length == 0 ? 2 : 0;
        }
        String verb = argv[0];
        try {
            Supplier<Command> factory = VERBS.get(verb);
            Command cmd = factory == null ? null : factory.get();
            if (cmd == null) {
                err.println("k2j: unknown verb '" + verb + "'");
                err.print(USAGE);
                return 2;
            }
            String[] rest = Arrays.copyOfRange(argv, 1, argv.length);
            Args args;
            try {
                args = Args.parse(rest).declare(cmd.spec());
            } catch (IllegalArgumentException e) {
                throw new UsageException(e.getMessage());
            }
            if (args.has("help") || args.positional().contains("-h")) {
                out.print(cmd.usage());
                out.flush();
                return 0;
            }
            int code = cmd.run(args, out, err);
            out.flush();
            return code;
        } catch (UsageException e) {
            out.flush();
            err.println("k2j " + verb + ": " + e.getMessage());
            return 2;
        } catch (RuntimeException | OutOfMemoryError e) {
            out.flush();
            err.println("k2j " + verb + ": error: " + describe(e));
            if (System.getenv("K2J_DEBUG") != null) {
                e.printStackTrace(err);
            }
            return 1;
        }
    }

    /** The exception's message, or its class name when it has none (e.g. a bare NullPointerException). */
    private static String describe(Throwable e) {
        String m = e.getMessage();
        if (e instanceof OutOfMemoryError) {
            return "out of memory (" + (m == null ? "heap" : m) + "); raise -Xmx via K2J_JAVA_OPTS";
        }
        return m == null || m.isBlank() ? e.getClass().getSimpleName() : m;
    }
}
