package ai.k2j.cli;

import ai.k2j.engine.BatchEngine;
import ai.k2j.engine.SamplingParams;
import ai.k2j.scaffold.Candidate;
import ai.k2j.scaffold.EngineGenerator;
import ai.k2j.scaffold.Evaluation;
import ai.k2j.scaffold.Scaffold;
import ai.k2j.scaffold.ScaffoldOptions;
import ai.k2j.scaffold.ThinkResult;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;

/**
 * {@code k2j think}: answers one question through the test-time scaffold — plan before you think, then best-of-N
 * with a verifier — and reports the plan, every candidate's tokens and answer, and the choice.
 */
final class ThinkCommand implements Command {

    static final int DEFAULT_MAX_TOKENS = 512;

    static final VerbSpec SPEC = new VerbSpec("think", "plan + best-of-N on one question", VerbSpec.join(
            ServingFlags.ENGINE_FLAGS.subList(0, 1),
            List.of(Flag.required("question", "TEXT", "the question (\\n unescaped)"),
                    Flag.option("planner", "DIR", "the model itself", "another model writes the plan"),
                    Flag.option("max-tokens", "N", DEFAULT_MAX_TOKENS + ", clamped to the context",
                            "most tokens per candidate"),
                    Flag.option("temperature", "T", Evaluation.DEFAULT_TEMPERATURE + ", K2 Think's protocol",
                            "sampling temperature"),
                    Flag.option("top-p", "P", String.valueOf(Evaluation.DEFAULT_TOP_P), "nucleus sampling"),
                    Flag.option("seed", "S", "random, printed", "sampling seed"),
                    Flag.toggle("json", "one JSON object instead of text")),
            ServingFlags.SCAFFOLD_FLAGS, ServingFlags.ENGINE_FLAGS.subList(1, ServingFlags.ENGINE_FLAGS.size())),
            null);

    @Override
    public VerbSpec spec() {
        return SPEC;
    }

    @Override
    public int run(Args args, PrintStream out, PrintStream err) {
        String question = ServingFlags.unescape(args.required("question"));
        Path plannerDir = args.has("planner") ? Path.of(args.required("planner")) : null;
        int maxTokens = ServingFlags.atLeast(args, "max-tokens", DEFAULT_MAX_TOKENS, 1);
        double temperature = ServingFlags.inRange(args, "temperature", Evaluation.DEFAULT_TEMPERATURE, 0, 100);
        double topP = ServingFlags.inRange(args, "top-p", Evaluation.DEFAULT_TOP_P, Double.MIN_VALUE, 1);
        long seed = args.has("seed") ? args.longValue("seed", 0) : ThreadLocalRandom.current().nextLong();
        boolean json = args.flag("json");
        ScaffoldOptions scaffoldOptions = ServingFlags.scaffold(args, ScaffoldOptions.defaults());
        ServingFlags flags = ServingFlags.read(args, 16);
        args.finish();
        if (plannerDir != null) {
            ServingFlags.requireDir(plannerDir);
        }
        if (!json) {
            err.println("k2j think: seed " + seed);
        }
        try (BatchEngine engine = flags.load();
             BatchEngine plannerEngine = plannerDir == null ? null
                     : BatchEngine.load(plannerDir, null, flags.options.withMaxBatch(1))) {
            EngineGenerator model = new EngineGenerator(engine, engine.hasDraft());
            EngineGenerator planner = plannerEngine == null ? model : new EngineGenerator(plannerEngine, false);
            Scaffold scaffold = new Scaffold(model, planner, scaffoldOptions, null);
            ThinkResult r = scaffold.think(question, new SamplingParams(temperature, topP, 0, 0, seed), maxTokens);
            if (json) {
                out.println(toJson(r, seed));
            } else {
                print(r, out);
            }
        }
        return 0;
    }

    static ObjectNode toJson(ThinkResult r, long seed) {
        ObjectNode o = new ObjectMapper().createObjectNode();
        o.put("question", r.question());
        o.put("seed", seed);
        if (r.plan() == null) {
            o.putNull("plan");
        } else {
            o.put("plan", r.plan());
        }
        o.put("plan_tokens", r.planTokens());
        o.put("prompt", r.prompt());
        ArrayNode cs = o.putArray("candidates");
        for (Candidate c : r.candidates()) {
            ObjectNode n = cs.addObject();
            n.put("index", c.index());
            n.put("tokens", c.tokens());
            n.put("finish_reason", c.finishReason());
            n.put("answer", c.answer());
            n.put("score", r.verdict().scores().get(c.index()));
            n.put("text", c.text());
        }
        o.put("verifier", r.verifier());
        o.put("chosen", r.verdict().chosen());
        o.put("reason", r.verdict().reason());
        o.put("verifier_tokens", r.verdict().tokens());
        o.put("answer", r.chosen().answer());
        o.put("response_tokens", r.responseTokens());
        o.put("total_tokens", r.totalTokens());
        return o;
    }

    private static void print(ThinkResult r, PrintStream out) {
        if (r.plan() != null) {
            out.println("== plan (" + r.planTokens() + " tokens)");
            out.println(r.plan());
        }
        for (Candidate c : r.candidates()) {
            out.println("== candidate " + c.index() + ": " + c.tokens() + " tokens, " + c.finishReason()
                    + ", answer " + (c.answer() == null ? "(none)" : c.answer()) + ", score "
                    + r.verdict().scores().get(c.index()) + (c.index() == r.verdict().chosen() ? "  <- chosen" : ""));
        }
        out.println("== choice (" + r.verifier() + "): " + r.verdict().reason());
        out.println("== tokens: response " + r.responseTokens() + ", total " + r.totalTokens()
                + " (plan " + r.planTokens() + ", verifier " + r.verdict().tokens() + ")");
        out.println(r.chosen().text());
    }
}
