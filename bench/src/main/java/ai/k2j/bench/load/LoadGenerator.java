package ai.k2j.bench.load;

import ai.k2j.engine.BatchEngine;
import ai.k2j.engine.EngineOptions;
import ai.k2j.server.OpenAiServer;
import ai.k2j.server.ServerOptions;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;

/**
 * Load generator for the OpenAI-compatible server: C concurrent streams, each sending streaming
 * {@code /v1/completions} requests back to back (fixed output length: {@code ignore_eos}, greedy), for each C in
 * the list. Reports per level the aggregate generated tokens per second, p50/p99 time to first token and p50/p99
 * inter-token latency (gaps between SSE chunks as the client receives them), and the throughput ratio of each
 * level to one stream — continuous batching should make 16 streams far faster in aggregate than one.
 *
 * <pre>
 * k2j-bench load: --model DIR [--draft DIR] [--backend cpu] [--threads N] [--ctx N]   (in-process server)
 *                 | --url http://HOST:PORT [--model-id ID]                           (a running server)
 *                 [--concurrency 1,4,16] [--requests 3] [--max-tokens 64] [--prompt-file FILE] [--json FILE]
 * </pre>
 * With {@code --model} it starts an engine (max batch = the largest concurrency) and a server on 127.0.0.1, so
 * the numbers include HTTP and SSE.
 */
public final class LoadGenerator {

    private static final ObjectMapper JSON = new ObjectMapper();

    /** One level's measurements. */
    public record Level(int concurrency, int requests, long tokens, double seconds, double tokensPerSecond,
                        double ttftP50, double ttftP99, double itlP50, double itlP99) {
    }

    /** One request as the client saw it. */
    record Timing(long tokens, double ttft, double[] gaps) {
    }

    private final HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(10)).build();
    private final String baseUrl;
    private final String modelId;
    private final List<String> prompts;

    public LoadGenerator(String baseUrl, String modelId, List<String> prompts) {
        this.baseUrl = baseUrl;
        this.modelId = modelId;
        this.prompts = List.copyOf(prompts);
        if (prompts.isEmpty()) {
            throw new IllegalArgumentException("no prompts");
        }
    }

    /** Runs {@code concurrency} streams of {@code requestsPerStream} requests each. */
    public Level run(int concurrency, int requestsPerStream, int maxTokens) throws Exception {
        List<Future<List<Timing>>> streams = new ArrayList<>();
        long start = System.nanoTime();
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            for (int s = 0; s < concurrency; s++) {
                int stream = s;
                streams.add(pool.submit(() -> {
                    List<Timing> out = new ArrayList<>();
                    for (int r = 0; r < requestsPerStream; r++) {
                        out.add(request(prompts.get((stream * requestsPerStream + r) % prompts.size()), maxTokens));
                    }
                    return out;
                }));
            }
            List<Timing> all = new ArrayList<>();
            for (Future<List<Timing>> f : streams) {
                all.addAll(f.get());
            }
            double seconds = (System.nanoTime() - start) * 1e-9;
            long tokens = all.stream().mapToLong(Timing::tokens).sum();
            double[] ttft = all.stream().mapToDouble(Timing::ttft).sorted().toArray();
            double[] gaps = all.stream().flatMapToDouble(t -> Arrays.stream(t.gaps())).sorted().toArray();
            return new Level(concurrency, all.size(), tokens, seconds, tokens / seconds, percentile(ttft, 0.5),
                    percentile(ttft, 0.99), percentile(gaps, 0.5), percentile(gaps, 0.99));
        }
    }

    /** One streaming request: time to the first text chunk, gaps between text chunks, tokens from usage. */
    Timing request(String prompt, int maxTokens) throws IOException, InterruptedException {
        ObjectNode body = JSON.createObjectNode();
        body.put("model", modelId);
        body.put("prompt", prompt);
        body.put("max_tokens", maxTokens);
        body.put("temperature", 0);
        body.put("ignore_eos", true);
        body.put("stream", true);
        body.putObject("stream_options").put("include_usage", true);
        HttpRequest req = HttpRequest.newBuilder(URI.create(baseUrl + "/v1/completions"))
                .timeout(Duration.ofMinutes(10))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body.toString())).build();
        long sent = System.nanoTime();
        HttpResponse<Stream<String>> resp = client.send(req, HttpResponse.BodyHandlers.ofLines());
        if (resp.statusCode() != 200) {
            String text = String.join("\n", resp.body().toList());
            throw new IOException("HTTP " + resp.statusCode() + ": " + text);
        }
        long first = -1;
        long last = -1;
        long tokens = -1;
        List<Double> gaps = new ArrayList<>();
        try (Stream<String> lines = resp.body()) {
            Iterator<String> it = lines.iterator();
            while (it.hasNext()) {
                String line = it.next();
                if (!line.startsWith("data: ") || line.equals("data: [DONE]")) {
                    continue;
                }
                long now = System.nanoTime();
                JsonNode chunk = JSON.readTree(line.substring(6));
                if (chunk.has("error")) {
                    throw new IOException("stream error: " + chunk);
                }
                JsonNode usage = chunk.get("usage");
                if (usage != null && usage.isObject()) {
                    tokens = usage.get("completion_tokens").asLong();
                }
                JsonNode choices = chunk.get("choices");
                if (choices != null && !choices.isEmpty() && !choices.get(0).path("text").asText("").isEmpty()) {
                    if (first < 0) {
                        first = now;
                    } else {
                        gaps.add((now - last) * 1e-9);
                    }
                    last = now;
                }
            }
        }
        if (tokens < 0 || first < 0) {
            throw new IOException("the stream ended without text or usage");
        }
        return new Timing(tokens, (first - sent) * 1e-9, gaps.stream().mapToDouble(Double::doubleValue).toArray());
    }

    static double percentile(double[] sorted, double q) {
        if (sorted.length == 0) {
            return Double.NaN;
        }
        int i = (int) Math.ceil(q * sorted.length) - 1;
        return sorted[Math.max(0, Math.min(sorted.length - 1, i))];
    }

    /** Prompts: chunks of about 400 characters cut from a text file at line boundaries, or a small built-in set. */
    static List<String> prompts(Path file) throws IOException {
        if (file == null) {
            return List.of("def fibonacci(n):\n", "import os\nimport sys\n\n", "class Stack:\n    def __init__(self):\n",
                    "for i in range(10):\n", "with open(path) as f:\n", "# parse the command line\n",
                    "if __name__ == '__main__':\n", "try:\n    import json\nexcept ImportError:\n",
                    "def __repr__(self):\n", "return sorted(items, key=lambda x:", "async def fetch(session, url):\n",
                    "x = np.zeros((3, 4))\n", "@property\ndef name(self):\n", "raise ValueError(",
                    "def test_add():\n    assert", "lines = text.splitlines()\n");
        }
        List<String> out = new ArrayList<>();
        StringBuilder cur = new StringBuilder();
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            cur.append(line).append('\n');
            if (cur.length() >= 400) {
                out.add(cur.toString());
                cur.setLength(0);
            }
        }
        return out.isEmpty() ? List.of(cur.toString()) : out;
    }

    public static void main(String[] argv) throws Exception {
        System.exit(run(argv, System.out, System.err));
    }

    static int run(String[] argv, PrintStream out, PrintStream err) throws Exception {
        java.util.Map<String, String> a = new java.util.LinkedHashMap<>();
        for (int i = 0; i < argv.length; i++) {
            if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
                err.println("usage: LoadGenerator (--model DIR [--draft DIR] [--backend B] [--threads N] [--ctx N]"
                        + " | --url URL [--model-id ID]) [--concurrency 1,4,16] [--requests 3] [--max-tokens 64]"
                        + " [--prompt-file FILE] [--json FILE]");
                return 2;
            }
            a.put(argv[i].substring(2), argv[++i]);
        }
        int[] levels = Arrays.stream(a.getOrDefault("concurrency", "1,4,16").split(",")).map(String::trim)
                .mapToInt(Integer::parseInt).toArray();
        int requests = Integer.parseInt(a.getOrDefault("requests", "3"));
        int maxTokens = Integer.parseInt(a.getOrDefault("max-tokens", "64"));
        List<String> prompts = prompts(a.containsKey("prompt-file") ? Path.of(a.get("prompt-file")) : null);
        BatchEngine engine = null;
        OpenAiServer server = null;
        String url = a.get("url");
        String modelId = a.getOrDefault("model-id", "k2j");
        try {
            if (url == null) {
                if (!a.containsKey("model")) {
                    err.println("give --model DIR (in-process server) or --url URL");
                    return 2;
                }
                int maxBatch = Arrays.stream(levels).max().orElse(1);
                EngineOptions options = EngineOptions.defaults().withMaxBatch(maxBatch)
                        .withBackend(a.getOrDefault("backend", "cpu"))
                        .withThreads(Integer.parseInt(a.getOrDefault("threads", "0")))
                        .withMaxContext(Integer.parseInt(a.getOrDefault("ctx", "0")));
                engine = BatchEngine.load(Path.of(a.get("model")), a.containsKey("draft") ? Path.of(a.get("draft"))
                        : null, options);
                modelId = engine.modelName();
                server = OpenAiServer.start(engine, ServerOptions.of("127.0.0.1", 0, modelId));
                url = server.baseUrl();
                err.println("in-process server " + url + " (" + engine.backendName() + ", max batch " + maxBatch
                        + (engine.hasDraft() ? ", draft " + engine.draftTokens() + " tokens" : "") + ")");
            }
            LoadGenerator gen = new LoadGenerator(url, modelId, prompts);
            gen.request(prompts.get(0), Math.min(8, maxTokens)); // warm-up (JIT, connections)
            List<Level> results = new ArrayList<>();
            out.println("streams  requests  tokens  seconds   tok/s   ×1-stream  TTFT p50/p99 (ms)   ITL p50/p99 (ms)");
            for (int c : levels) {
                Level l = gen.run(c, requests, maxTokens);
                results.add(l);
                double ratio = l.tokensPerSecond() / results.get(0).tokensPerSecond();
                out.println(String.format(Locale.ROOT, "%7d  %8d  %6d  %7.2f  %7.1f  %9.2f  %8.1f / %-8.1f  %7.1f / %-7.1f",
                        c, l.requests(), l.tokens(), l.seconds(), l.tokensPerSecond(), ratio, l.ttftP50() * 1e3,
                        l.ttftP99() * 1e3, l.itlP50() * 1e3, l.itlP99() * 1e3));
                out.flush();
            }
            if (a.containsKey("json")) {
                ArrayNode arr = JSON.createArrayNode();
                for (Level l : results) {
                    arr.add(JSON.valueToTree(l));
                }
                Files.writeString(Path.of(a.get("json")), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(arr));
            }
            return 0;
        } finally {
            if (server != null) {
                server.close();
            }
            if (engine != null) {
                engine.close();
            }
        }
    }
}
