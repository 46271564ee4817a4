package ai.k2j.cli;

import ai.k2j.engine.BatchEngine;
import ai.k2j.scaffold.EngineGenerator;
import ai.k2j.scaffold.Evaluation;
import ai.k2j.scaffold.Scaffold;
import ai.k2j.scaffold.ScaffoldOptions;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * {@code k2j eval}: pass@1 averaged over runs on a question/answer JSONL file, at K2 Think's protocol defaults
 * (temperature 1.0, top-p 0.95), without and with the scaffold, plus mean response tokens — the figures K2 Think
 * used to report its token reductions.
 */
final class EvalCommand implements Command {

    static final VerbSpec SPEC = new VerbSpec("eval", "pass@1 with and without the scaffold",
            VerbSpec.join(ServingFlags.ENGINE_FLAGS.subList(0, 1), List.of(
                    Flag.required("data", "FILE.jsonl", "JSON lines {\"question\": ..., \"answer\": ...}; answers are"
                            + " checked against the response's last \\boxed{} (else its last number)"),
                    Flag.option("runs", "N", "4", "independent runs per question; pass@1 is averaged over them"),
                    Flag.option("scaffold", "both|on|off", "both: without, then with", "which configurations run"),
                    Flag.option("limit", "N", "all", "only the first N questions"),
                    Flag.option("max-tokens", "N", "512, clamped to the context", "most tokens per response"),
                    Flag.option("temperature", "T", String.valueOf(Evaluation.DEFAULT_TEMPERATURE),
                            "sampling temperature"),
                    Flag.option("top-p", "P", String.valueOf(Evaluation.DEFAULT_TOP_P), "nucleus sampling"),
                    Flag.option("seed", "S", "0", "base seed"),
                    Flag.toggle("json", "one JSON object instead of a table")),
                    ServingFlags.SCAFFOLD_FLAGS,
                    ServingFlags.ENGINE_FLAGS.subList(1, ServingFlags.ENGINE_FLAGS.size())), null);

    @Override
    public VerbSpec spec() {
        return SPEC;
    }

    @Override
    public int run(Args args, PrintStream out, PrintStream err) {
        Path data = args.path("data");
        int runs = ServingFlags.atLeast(args, "runs", 4, 1);
        String mode = args.string("scaffold", "both");
        if (!List.of("both", "on", "off").contains(mode)) {
            throw new UsageException("--scaffold must be both, on or off, got '" + mode + "'");
        }
        int limit = ServingFlags.atLeast(args, "limit", Integer.MAX_VALUE, 1);
        int maxTokens = ServingFlags.atLeast(args, "max-tokens", 512, 1);
        double temperature = ServingFlags.inRange(args, "temperature", Evaluation.DEFAULT_TEMPERATURE, 0, 100);
        double topP = ServingFlags.inRange(args, "top-p", Evaluation.DEFAULT_TOP_P, Double.MIN_VALUE, 1);
        long seed = args.longValue("seed", 0);
        boolean json = args.flag("json");
        ScaffoldOptions scaffoldOptions = ServingFlags.scaffold(args, ScaffoldOptions.defaults());
        ServingFlags flags = ServingFlags.read(args, 16);
        args.finish();

        List<Evaluation.Item> items = Evaluation.read(data);
        if (items.size() > limit) {
            items = items.subList(0, limit);
        }
        Evaluation.Settings settings = new Evaluation.Settings(runs, temperature, topP, maxTokens, seed);
        List<Evaluation.Report> reports = new ArrayList<>();
        try (BatchEngine engine = flags.load()) {
            EngineGenerator model = new EngineGenerator(engine, engine.hasDraft());
            if (!mode.equals("on")) {
                reports.add(progress(err, json, Evaluation.run(new Scaffold(model, ScaffoldOptions.none()
                        .withDirectPrompt(scaffoldOptions.directPrompt())), "plain", items, settings)));
            }
            if (!mode.equals("off")) {
                reports.add(progress(err, json, Evaluation.run(new Scaffold(model, scaffoldOptions), label(
                        scaffoldOptions), items, settings)));
            }
        }
        if (json) {
            out.println(toJson(reports, data, settings));
            return 0;
        }
        out.println(String.format(Locale.ROOT, "%d questions x %d runs, temperature %s, top-p %s, max tokens %d",
                items.size(), runs, temperature, topP, maxTokens));
        out.println("config                         pass@1   mean response tokens   mean total tokens   seconds");
        for (Evaluation.Report r : reports) {
            out.println(String.format(Locale.ROOT, "%-30s %6.3f   %20.1f   %17.1f   %7.1f", r.label(), r.passAt1(),
                    r.meanResponseTokens(), r.meanTotalTokens(), r.wallNanos() / 1e9));
        }
        if (reports.size() == 2 && reports.get(0).meanResponseTokens() > 0) {
            double change = reports.get(1).meanResponseTokens() / reports.get(0).meanResponseTokens() - 1;
            out.println(String.format(Locale.ROOT, "response tokens with the scaffold: %+.1f%%; pass@1 %+.3f",
                    100 * change, reports.get(1).passAt1() - reports.get(0).passAt1()));
        }
        return 0;
    }

    static String label(ScaffoldOptions o) {
        return (o.plan() ? "plan + " : "") + "best-of-" + o.bestOf() + " (" + o.verifier() + ")";
    }

    private static Evaluation.Report progress(PrintStream err, boolean json, Evaluation.Report r) {
        if (!json) {
            err.println(String.format(Locale.ROOT, "k2j eval: %s done in %.1f s", r.label(), r.wallNanos() / 1e9));
        }
        return r;
    }

    static ObjectNode toJson(List<Evaluation.Report> reports, Path data, Evaluation.Settings s) {
        ObjectMapper m = new ObjectMapper();
        ObjectNode o = m.createObjectNode();
        o.put("data", data.toString());
        o.put("runs", s.runs());
        o.put("temperature", s.temperature());
        o.put("top_p", s.topP());
        o.put("max_tokens", s.maxTokens());
        ArrayNode arr = o.putArray("reports");
        for (Evaluation.Report r : reports) {
            ObjectNode n = arr.addObject();
            n.put("config", r.label());
            n.put("questions", r.questions());
            n.put("pass_at_1", r.passAt1());
            n.put("mean_response_tokens", r.meanResponseTokens());
            n.put("mean_total_tokens", r.meanTotalTokens());
            n.put("seconds", r.wallNanos() / 1e9);
            ArrayNode items = n.putArray("items");
            for (Evaluation.ItemResult ir : r.items()) {
                ObjectNode i = items.addObject();
                i.put("line", ir.item().line());
                i.put("answer", ir.item().answer());
                i.put("passes", ir.passes());
                i.put("runs", ir.runs());
                ArrayNode given = i.putArray("given");
                ir.answers().forEach(given::add);
                i.put("mean_response_tokens", ir.meanResponseTokens());
            }
        }
        return o;
    }
}
