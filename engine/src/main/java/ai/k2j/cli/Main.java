package ai.k2j.cli;

import java.io.PrintStream;
import java.util.Arrays;

/** {@code k2j VERB [flags]}: the command-line interface. Each verb lives in its own class. */
public final class Main {

    private Main() {
    }

    static final String USAGE = """
            usage: k2j VERB [flags]
              generate   generate text       --model DIR (--prompt TEXT | --prompt-ids 1,2,3) [--chat] [--max-tokens N]
                                             [--temperature T] [--top-p P] [--top-k K] [--min-p P] [--seed S] [--json]
              logits     prompt logits       --model DIR --prompt-ids 1,2,3 --out FILE.npy
              tokenize   text to ids         --tokenizer PATH (--text TEXT | --jsonl FILE) [--json]
              synth      random model        --preset NAME --out DIR [--dtype bf16|f16|f32] [--seed S] [--tokenizer PATH]
              info       describe a model    --model DIR
              plan       wafer-scale plan    --model DIR|preset:NAME --out DIR [--target wse3] [--wafers N] [--dtype D] [--ctx N]
            run 'k2j VERB --help' for a verb's flags.
            """;

    public static void main(String[] argv) {
        int code = run(argv, System.out, System.err);
        System.out.flush();
        if (code != 0) {
            System.exit(code);
        }
    }

    /** Runs a command; returns the process exit code (0 ok, 2 usage error, 1 failure). */
    public static int run(String[] argv, PrintStream out, PrintStream err) {
        if (argv.length == 0 || argv[0].equals("--help") || argv[0].equals("-h") || argv[0].equals("help")) {
            out.print(USAGE);
            return argv.length == 0 ? 2 : 0;
        }
        String verb = argv[0];
        Args args;
        try {
            args = Args.parse(Arrays.copyOfRange(argv, 1, argv.length));
        } catch (IllegalArgumentException e) {
            err.println("k2j " + verb + ": " + e.getMessage());
            return 2;
        }
        try {
            Command cmd = switch (verb) {
                case "plan" -> new PlanCommand();
                default -> null;
            };
            if (cmd == null) {
                err.println("k2j: unknown verb '" + verb + "'");
                err.print(USAGE);
                return 2;
            }
            return cmd.run(args, out, err);
        } catch (UsageException e) {
            err.println("k2j " + verb + ": " + e.getMessage());
            return 2;
        } catch (RuntimeException e) {
            err.println("k2j " + verb + ": error: " + (e.getMessage() == null ? e.toString() : e.getMessage()));
            if (System.getenv("K2J_DEBUG") != null) {
                e.printStackTrace(err);
            }
            return 1;
        }
    }
}
