package ai.k2j.scaffold;

import ai.k2j.engine.BatchEngine;
import ai.k2j.engine.EngineOptions;
import ai.k2j.testing.TestCheckpoints;
import ai.k2j.engine.SamplingParams;
import ai.k2j.tokenizer.ChatMessage;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(value = 300, unit = TimeUnit.SECONDS)
class ScaffoldTest {

    @TempDir
    Path tmp;

    static Path dataset() {
        return TestCheckpoints.repoRoot().resolve("scaffold/src/test/resources/eval/arithmetic.jsonl");
    }

    static Candidate candidate(int i, String text) {
        return new Candidate(i, text, 10 + i, "stop", Answers.extract(text));
    }

    @Test
    void answersAreExtractedFromBoxesOrTheLastNumberAndComparedByValue() {
        assertEquals("\\frac{1}{2}", Answers.extract("so x = \\boxed{\\frac{1}{2}} done"));
        assertEquals("42", Answers.extract("first \\boxed{1} then \\boxed{42}"));
        assertEquals("7", Answers.extract("3 + 4 gives 7."));
        assertEquals("-1,250.5", Answers.extract("the total is -1,250.5 dollars"));
        assertNull(Answers.extract("no digits here"));
        assertNull(Answers.extract(null));
        assertTrue(Answers.equivalent("7.0", "7"));
        assertTrue(Answers.equivalent("$1,000$", "1000"));
        assertTrue(Answers.equivalent("\\frac{3}{4}", "0.75"));
        assertTrue(Answers.equivalent("14/2", "7"));
        assertTrue(Answers.equivalent("\\text{Paris}.", "paris"));
        assertFalse(Answers.equivalent("7", "8"));
        assertFalse(Answers.equivalent(null, "8"));
        assertEquals("1000.5", Answers.normalize("1,000.50"));
    }

    @Test
    void majorityVotePicksTheMostCommonAnswer() {
        Verdict v = new MajorityVote().choose("q", List.of(candidate(0, "it is 5"), candidate(1, "\\boxed{7}"),
                candidate(2, "maybe 7.0"), candidate(3, "no idea")));
        assertEquals(1, v.chosen());
        assertEquals(List.of(1.0, 2.0, 2.0, 0.0), v.scores());
        assertTrue(v.reason().contains("7"), v.reason());
        // ties go to the answer seen first; nobody answering takes candidate 0
        assertEquals(0, new MajorityVote().choose("q", List.of(candidate(0, "5"), candidate(1, "6"))).chosen());
        assertEquals(0, new MajorityVote().choose("q", List.of(candidate(0, "?"), candidate(1, "?"))).chosen());
    }

    @Test
    void pairwiseJudgeRunsAKnockoutOnTheModelsVerdicts() {
        List<String> prompts = Collections.synchronizedList(new ArrayList<>());
        Generator alwaysB = (messages, n, s, max) -> {
            prompts.add(messages.get(0).content());
            assertTrue(s.isGreedy(), "the judge decodes greedily");
            return List.of(new Generator.Sample("B", 1, "stop"));
        };
        List<Candidate> cs = List.of(candidate(0, "zero"), candidate(1, "one"), candidate(2, "two"));
        Verdict v = new PairwiseJudge(alwaysB).choose("Which?", cs);
        assertEquals(2, v.chosen());
        assertEquals(2, prompts.size(), "N - 1 matches");
        assertTrue(prompts.get(0).contains("zero") && prompts.get(0).contains("one") && prompts.get(0).contains("Which?"));
        assertTrue(prompts.get(1).contains("one") && prompts.get(1).contains("two"), "the winner meets the next");
        assertEquals(2, v.tokens());
        Generator alwaysA = (messages, n, s, max) -> List.of(new Generator.Sample(" A, clearly", 3, "stop"));
        assertEquals(0, new PairwiseJudge(alwaysA).choose("q", cs).chosen());
        Generator confused = (messages, n, s, max) -> List.of(new Generator.Sample("Both are fine", 3, "stop"));
        Verdict keep = new PairwiseJudge(confused).choose("q", cs);
        assertEquals(0, keep.chosen());
        assertTrue(keep.reason().contains("2 replies named neither"), keep.reason());
        assertEquals("A", PairwiseJudge.verdictOf("Answer: A"));
        assertNull(PairwiseJudge.verdictOf("ABBA"));
    }

    @Test
    void aUserVerifierSuchAsUnitTestsDecides() {
        // "unit tests": the candidate's code must define square(x) returning x * x
        Verifier tests = Verifier.scoring(c -> c.text().contains("return x * x") ? 1 : 0);
        List<Candidate> cs = List.of(candidate(0, "def square(x): return x + x"),
                candidate(1, "def square(x): return x * x"), candidate(2, "def square(x): pass"));
        Verdict v = tests.choose("write square", cs);
        assertEquals(1, v.chosen());
        assertEquals(List.of(0.0, 1.0, 0.0), v.scores());
    }

    /** Plan first (with its own prompt and planner), plan placed before the reasoning prompt, N candidates. */
    @Test
    void planBeforeYouThinkFeedsThePlanIntoTheReasoningPrompt() {
        List<String> planPrompts = new ArrayList<>();
        List<String> reasoningPrompts = new ArrayList<>();
        Generator planner = (messages, n, s, max) -> {
            planPrompts.add(messages.get(0).content());
            assertEquals(1, n);
            assertEquals(20, max);
            return List.of(new Generator.Sample("  1. add the numbers  ", 7, "stop"));
        };
        Generator reasoner = (messages, n, s, max) -> {
            reasoningPrompts.add(messages.get(0).content());
            List<Generator.Sample> out = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                out.add(new Generator.Sample(i == 1 ? "\\boxed{5}" : "\\boxed{4}", 30 + i, "stop"));
            }
            return out;
        };
        ScaffoldOptions o = ScaffoldOptions.defaults().withPlanPrompt("PLAN FOR: {question}").withPlanMaxTokens(20)
                .withReasoningPrompt("[{plan}] then {question}").withBestOf(3);
        ThinkResult r = new Scaffold(reasoner, planner, o, null).think("2 + 2?", SamplingParams.of(1, 0.95, 0, 1), 64);
        assertEquals(List.of("PLAN FOR: 2 + 2?"), planPrompts);
        assertEquals(List.of("[1. add the numbers] then 2 + 2?"), reasoningPrompts);
        assertEquals("1. add the numbers", r.plan());
        assertEquals(3, r.candidates().size());
        assertEquals("4", r.chosen().answer(), "majority");
        assertEquals(7 + 30 + 31 + 32, r.totalTokens());
        assertEquals(r.chosen().tokens(), r.responseTokens());
        // without a plan the direct prompt is used, and the planner is not called
        ThinkResult direct = new Scaffold(reasoner, planner, ScaffoldOptions.none(), null)
                .think("2 + 2?", SamplingParams.greedy(), 64);
        assertNull(direct.plan());
        assertEquals(1, planPrompts.size());
        assertEquals(1, direct.candidates().size());
        assertTrue(reasoningPrompts.getLast().startsWith("2 + 2?"), reasoningPrompts.getLast());
        assertEquals("a {x} b", Scaffold.fill("{q} {x} {p}", java.util.Map.of("q", "a", "p", "b")));
        assertEquals("{plan}", Scaffold.fill("{question}", java.util.Map.of("question", "{plan}", "plan", "X")),
                "values are not expanded again");
        assertThrows(IllegalArgumentException.class, () -> o.withReasoningPrompt("no placeholders"));
    }

    /** pass@1 over runs, exactly: a scripted model right on even seeds and wrong on odd ones scores 1/2. */
    @Test
    void evaluationAveragesPassAt1OverRunsAndCountsTokens() {
        List<Evaluation.Item> items = Evaluation.read(dataset());
        assertEquals(24, items.size());
        Generator parity = (messages, n, s, max) -> {
            List<Generator.Sample> out = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                String q = messages.get(0).content();
                String right = items.stream().filter(it -> q.contains(it.question())).findFirst().orElseThrow().answer();
                boolean even = ((s.seed() + i) & 1) == 0;
                out.add(new Generator.Sample("\\boxed{" + (even ? right : right + "1") + "}", even ? 10 : 20, "stop"));
            }
            return out;
        };
        Evaluation.Settings settings = Evaluation.Settings.k2Think(4, 64);
        assertEquals(1.0, settings.temperature());
        assertEquals(0.95, settings.topP());
        Evaluation.Report plain = Evaluation.run(new Scaffold(parity, ScaffoldOptions.none()), "plain", items,
                settings);
        assertEquals(0.5, plain.passAt1(), 1e-12);
        assertEquals(15.0, plain.meanResponseTokens(), 1e-12);
        assertEquals(24, plain.questions());
        assertEquals(4, plain.items().get(0).runs());
        Evaluation.Report best = Evaluation.run(new Scaffold(parity, ScaffoldOptions.none().withBestOf(3)), "best3",
                items, settings);
        assertEquals(0.5, best.passAt1(), 1e-12, "the majority of seeds s, s+1, s+2 has the parity of s");
        assertEquals(45.0, best.meanTotalTokens(), 1e-12, "10 + 20 + 10 (even s) and 20 + 10 + 20 (odd s), averaged");
    }

    @Test
    void badDatasetLinesAreReportedWithTheirLine() throws Exception {
        Path f = tmp.resolve("bad.jsonl");
        Files.writeString(f, "{\"question\": \"1+1\", \"answer\": 2}\n\n{\"question\": \"x\"}\n");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Evaluation.read(f));
        assertTrue(e.getMessage().contains("bad.jsonl:3") && e.getMessage().contains("answer"), e.getMessage());
        Files.writeString(f, "{\"question\": \"1+1\", \"answer\": 2}\nnot json\n");
        e = assertThrows(IllegalArgumentException.class, () -> Evaluation.read(f));
        assertTrue(e.getMessage().contains("bad.jsonl:2") && e.getMessage().contains("invalid JSON"), e.getMessage());
        Files.writeString(f, "{\"question\": \"1+1\", \"answer\": 2, \"source\": \"made up\"}\n");
        assertEquals("2", Evaluation.read(f).get(0).answer(), "a number is read as the answer; extra fields ignored");
    }

    /**
     * The whole machinery on the trained demo draft model (a Python code model, so pass@1 is near zero): runs
     * batch through the engine, the scaffold spends more tokens than the plain prompt, and the report adds up.
     */
    @Test
    void evaluationRunsOnTheDemoModelWithAndWithoutTheScaffold() {
        List<Evaluation.Item> items = Evaluation.read(dataset()).subList(0, 3);
        try (BatchEngine engine = BatchEngine.load(TestCheckpoints.demoDraft(), null, EngineOptions.defaults()
                .withBackend("reference").withMaxContext(512).withMaxBatch(16))) {
            EngineGenerator model = new EngineGenerator(engine, false);
            Evaluation.Settings settings = Evaluation.Settings.k2Think(2, 12);
            Evaluation.Report plain = Evaluation.run(new Scaffold(model, ScaffoldOptions.none()), "plain", items,
                    settings);
            Evaluation.Report scaffold = Evaluation.run(new Scaffold(model, ScaffoldOptions.defaults()
                    .withPlanMaxTokens(8)), "scaffold", items, settings);
            for (Evaluation.Report r : List.of(plain, scaffold)) {
                assertTrue(r.passAt1() >= 0 && r.passAt1() <= 1);
                assertTrue(r.meanResponseTokens() >= 1 && r.meanResponseTokens() <= 12, "" + r.meanResponseTokens());
                assertEquals(3, r.items().size());
                assertEquals(2, r.items().get(0).answers().size());
            }
            assertEquals(plain.meanResponseTokens(), plain.meanTotalTokens(), 1e-9, "one sample, no plan");
            assertTrue(scaffold.meanTotalTokens() > scaffold.meanResponseTokens() * 2,
                    "plan + 3 candidates: " + scaffold.meanTotalTokens());
            assertTrue(engine.metrics().steps() < engine.metrics().generatedTokens(), "runs decoded in batches");
        }
    }
}
