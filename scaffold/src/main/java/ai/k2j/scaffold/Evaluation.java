package ai.k2j.scaffold;

import ai.k2j.engine.SamplingParams;
import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * pass@1 on a question/answer dataset, the way K2 Think reports it: every question answered {@code runs} times
 * independently (temperature 1.0, top-p 0.95 by default), a run passes when the chosen response's extracted
 * answer (last {@code \boxed{}}, else last number) is {@link Answers#equivalent} to the reference; pass@1 is the
 * mean pass rate over runs and questions. Also the mean response tokens (the chosen response: what a user reads,
 * the figure K2 Think's token reductions are about) and the mean total tokens (plan + every candidate + judge).
 * All runs are submitted at once, so an engine-backed generator batches them.
 */
public final class Evaluation {

    /** K2 Think's sampling protocol. */
    public static final double DEFAULT_TEMPERATURE = 1.0;
    public static final double DEFAULT_TOP_P = 0.95;

    private static final ObjectMapper JSON = new ObjectMapper();

    private Evaluation() {
    }

    /** One dataset line: {@code {"question": "...", "answer": "..."}} (other fields are ignored). */
    public record Item(int line, String question, String answer) {
    }

    /**
     * @param runs      independent runs per question (pass@1 is averaged over them)
     * @param maxTokens most tokens per response
     * @param seed      base seed (run r of question q uses a seed derived from seed, q and r)
     */
    public record Settings(int runs, double temperature, double topP, int maxTokens, long seed) {
        public Settings {
            if (runs < 1) {
                throw new IllegalArgumentException("runs must be >= 1, got " + runs);
            }
            if (maxTokens < 1) {
                throw new IllegalArgumentException("max tokens must be >= 1, got " + maxTokens);
            }
        }

        public static Settings k2Think(int runs, int maxTokens) {
            return new Settings(runs, DEFAULT_TEMPERATURE, DEFAULT_TOP_P, maxTokens, 0);
        }
    }

    /** Per question: passes out of runs, and the answers given. */
    public record ItemResult(Item item, int passes, int runs, double meanResponseTokens, double meanTotalTokens,
                             List<String> answers) {
        public double passRate() {
            return (double) passes / runs;
        }
    }

    public record Report(String label, int questions, int runs, double passAt1, double meanResponseTokens,
                         double meanTotalTokens, List<ItemResult> items, long wallNanos) {
    }

    /** Reads a JSON-lines file; blank lines are skipped; a bad line fails naming the file and line. */
    public static List<Item> read(Path file) {
        List<String> lines;
        try {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
        List<Item> items = new ArrayList<>();
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i).strip();
            if (line.isEmpty()) {
                continue;
            }
            String where = file + ":" + (i + 1);
            JsonNode node;
            try {
                node = JSON.readTree(line);
            } catch (JacksonException e) {
                throw new IllegalArgumentException(where + ": invalid JSON: " + e.getOriginalMessage());
            }
            if (node == null || !node.isObject()) {
                throw new IllegalArgumentException(where + ": expected a JSON object per line");
            }
            items.add(new Item(i + 1, text(node, "question", where), text(node, "answer", where)));
        }
        if (items.isEmpty()) {
            throw new IllegalArgumentException(file + ": no questions");
        }
        return items;
    }

    private static String text(JsonNode node, String field, String where) {
        JsonNode v = node.get(field);
        if (v == null || v.isNull()) {
            throw new IllegalArgumentException(where + ": missing \"" + field + "\"");
        }
        if (v.isTextual()) {
            return v.textValue();
        }
        if (v.isNumber()) {
            return v.asText();
        }
        throw new IllegalArgumentException(where + ": \"" + field + "\" must be a string or number, got "
                + v.getNodeType().toString().toLowerCase());
    }

    /** Runs every question {@code settings.runs()} times through the scaffold. */
    public static Report run(Scaffold scaffold, String label, List<Item> items, Settings settings) {
        long start = System.nanoTime();
        List<List<Future<ThinkResult>>> futures = new ArrayList<>();
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            for (int q = 0; q < items.size(); q++) {
                Item item = items.get(q);
                List<Future<ThinkResult>> runs = new ArrayList<>();
                for (int r = 0; r < settings.runs(); r++) {
                    long seed = settings.seed() + 1_000_003L * q + 7_919L * r;
                    SamplingParams sampling = new SamplingParams(settings.temperature(), settings.topP(), 0, 0, seed);
                    runs.add(pool.submit(() -> scaffold.think(item.question(), sampling, settings.maxTokens())));
                }
                futures.add(runs);
            }
            List<ItemResult> results = new ArrayList<>();
            double passSum = 0;
            double responseSum = 0;
            double totalSum = 0;
            for (int q = 0; q < items.size(); q++) {
                Item item = items.get(q);
                int passes = 0;
                double response = 0;
                double total = 0;
                List<String> answers = new ArrayList<>();
                for (Future<ThinkResult> f : futures.get(q)) {
                    ThinkResult r = get(f);
                    String answer = r.chosen().answer();
                    answers.add(answer);
                    if (Answers.equivalent(answer, item.answer())) {
                        passes++;
                    }
                    response += r.responseTokens();
                    total += r.totalTokens();
                }
                int n = settings.runs();
                results.add(new ItemResult(item, passes, n, response / n, total / n, answers));
                passSum += (double) passes / n;
                responseSum += response / n;
                totalSum += total / n;
            }
            int q = items.size();
            return new Report(label, q, settings.runs(), passSum / q, responseSum / q, totalSum / q, results,
                    System.nanoTime() - start);
        }
    }

    private static ThinkResult get(Future<ThinkResult> f) {
        try {
            return f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("evaluation interrupted", e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException re) {
                throw re;
            }
            throw new IllegalStateException(e.getCause());
        }
    }
}
