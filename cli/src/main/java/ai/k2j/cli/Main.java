package ai.k2j.cli;

import java.io.BufferedOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/** {@code k2j VERB [flags]}: the command-line interface. Each verb lives in its own class. */
public final class Main {

    private Main() {
    }

    static final String USAGE = """
            usage: k2j VERB [flags]
              generate   generate text       [--model DIR] (--prompt TEXT | --prompt-ids 1,2,3) [--chat] [--system TEXT]
                                             [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--min-p P]
                                             [--seed S] [--stop STR] [--threads N] [--ctx N] [--quant Q] [--json]
                                             [--draft DIR|none] [--draft-tokens K] [--adaptive] [--lookup]
                                             (no --model: the demo model with its draft, speculative decoding on)
              logits     prompt logits       --model DIR --prompt-ids 1,2,3 --out FILE.npy
              tokenize   text to ids         --tokenizer PATH (--text TEXT | --jsonl FILE) [--json]
              synth      random model        --preset NAME --out DIR [--dtype bf16|f16|f32] [--seed S]
                                             [--tokenizer PATH] [--max-shard-gb G]
              info       describe a model    --model DIR
              spec-bench plain vs speculative [--model DIR] [--draft DIR] [--draft-tokens 2,4,6] [--adaptive]
                                             [--lookup] [--max-tokens N] [--temperature T] [--json]
              plan       wafer-scale plan    --model DIR|preset:NAME --out DIR [--target wse3] [--wafers N] [--dtype D] [--ctx N]
              serve      OpenAI server       --model DIR [--draft DIR] [--port P] [--max-batch B] [--ctx N] [--host H]
              think      plan + best-of-N    --model DIR --question TEXT [--best-of N] [--verifier majority|judge|first]
                                             [--no-plan] [--planner DIR] [--max-tokens N] [--seed S] [--json]
              eval       pass@1 on a dataset --model DIR --data FILE.jsonl [--runs N] [--scaffold both|on|off] [--json]
              bench      speed vs roofline   --model DIR [--quant q8_0|q4_0] [--prompt-tokens N] [--gen-tokens M]
                                             [--threads N] [--draft DIR] [--json]
              quantize   write Q8_0/Q4_0     --model DIR --quant q8_0|q4_0 --out DIR [--head-quant Q]
              quant-accuracy  KL vs BF16     --model DIR (--quant Q | --quantized DIR) (--text FILE | --tokens N)
            run 'k2j VERB --help' for a verb's flags.
            """;

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
            Command cmd = switch (verb) {
                case "generate" -> new GenerateCommand();
                case "logits" -> new LogitsCommand();
                case "tokenize" -> new TokenizeCommand();
                case "synth" -> new SynthCommand();
                case "info" -> new InfoCommand();
                case "plan" -> new PlanCommand();
                case "spec-bench" -> new SpeculativeBenchCommand();
                case "serve" -> new ServeCommand();
                case "think" -> new ThinkCommand();
                case "eval" -> new EvalCommand();
                case "bench" -> new BenchCommand();
                case "quantize" -> new QuantizeCommand();
                case "quant-accuracy" -> new QuantAccuracyCommand();
                default -> null;
            };
            if (cmd == null) {
                err.println("k2j: unknown verb '" + verb + "'");
                err.print(USAGE);
                return 2;
            }
            String[] rest = Arrays.copyOfRange(argv, 1, argv.length);
            Args args;
            try {
                args = Args.parse(rest);
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
