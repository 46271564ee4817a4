package ai.k2j.server;

import ai.k2j.engine.BatchEngine;
import ai.k2j.engine.ChoiceResult;
import ai.k2j.engine.EngineRequest;
import ai.k2j.engine.GenerationObserver;
import ai.k2j.engine.RequestHandle;
import ai.k2j.engine.GenerationRequest;
import ai.k2j.engine.SamplingParams;
import ai.k2j.scaffold.Candidate;
import ai.k2j.scaffold.EngineGenerator;
import ai.k2j.scaffold.Scaffold;
import ai.k2j.scaffold.ThinkResult;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;

import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

/**
 * Serves /v1/chat/completions and /v1/completions: validates, submits to the engine, and answers in one JSON body
 * or as a server-sent-event stream of chunks. Each exchange has its own observer and queue: engine events of one
 * request can only reach that request's response.
 */
final class Completions {

    private final BatchEngine engine;
    private final ServerOptions options;
    private final ServerMetrics metrics;
    private final RequestParser parser;

    Completions(BatchEngine engine, ServerOptions options, ServerMetrics metrics) {
        this.engine = engine;
        this.options = options;
        this.metrics = metrics;
        this.parser = new RequestParser(engine, options.modelId(), options.specialTokensInMessages());
    }

    /** Engine events for one request, handed from the engine thread to the exchange's thread. */
    private sealed interface Event {
        record Token(int choice, String text) implements Event {
        }

        record Finish(int choice, ChoiceResult result) implements Event {
        }

        record Failure(RuntimeException error) implements Event {
        }
    }

    private static final class QueueObserver implements GenerationObserver {
        final LinkedBlockingQueue<Event> queue = new LinkedBlockingQueue<>();

        @Override
        public void onToken(int choice, int tokenId, String text) {
            if (!text.isEmpty()) {
                queue.add(new Event.Token(choice, text));
            }
        }

        @Override
        public void onFinish(int choice, ChoiceResult result) {
            queue.add(new Event.Finish(choice, result));
        }

        @Override
        public void onError(RuntimeException error) {
            queue.add(new Event.Failure(error));
        }
    }

    int serve(HttpExchange exchange, JsonNode root, boolean chat) {
        ParsedRequest p = parser.parse(root, chat);
        String id = (chat ? "chatcmpl-" : "cmpl-") + HexFormat.of().formatHex(randomBytes());
        long created = System.currentTimeMillis() / 1000;
        if (p.scaffold() != null) {
            return scaffold(exchange, p, id, created);
        }
        SamplingParams sampling = new SamplingParams(p.temperature(), p.topP(), p.topK() < 0 ? 0 : p.topK(), p.minP(),
                p.seed());
        EngineRequest request = new EngineRequest(new GenerationRequest(p.promptIds(), p.maxTokens(), sampling,
                p.stop(), p.ignoreEos()), p.n(), p.speculative());
        if (!p.stream()) {
            RequestHandle handle = engine.submit(request, GenerationObserver.NONE);
            if (ClientWatch.clientClosedBefore(exchange, handle.future())) {
                handle.cancel(); // nobody will read the answer: free its sequence now
                metrics.clientDisconnected();
                throw new UncheckedIOException(new java.io.IOException("the client closed the connection"));
            }
            List<ChoiceResult> results = handle.await();
            return OpenAiServer.sendJson(exchange, 200, response(p, id, created, results));
        }
        QueueObserver observer = new QueueObserver();
        RequestHandle handle = engine.submit(request, observer);
        try {
            stream(exchange, p, id, created, observer, handle);
        } catch (UncheckedIOException e) {
            handle.cancel(); // the client went away: free its sequence now
            metrics.clientDisconnected();
            throw e;
        }
        return 200;
    }

    // ---------------------------------------------------------------- one JSON body

    private ObjectNode response(ParsedRequest p, String id, long created, List<ChoiceResult> results) {
        ObjectNode root = RequestParser.JSON.createObjectNode();
        root.put("id", id);
        root.put("object", p.chat() ? "chat.completion" : "text_completion");
        root.put("created", created);
        root.put("model", options.modelId());
        ArrayNode choices = root.putArray("choices");
        int completionTokens = 0;
        for (ChoiceResult r : results) {
            ObjectNode c = choices.addObject();
            c.put("index", r.index());
            if (p.chat()) {
                ObjectNode message = c.putObject("message");
                message.put("role", "assistant");
                message.put("content", r.text());
            } else {
                c.put("text", r.text());
            }
            c.putNull("logprobs");
            c.put("finish_reason", r.finishReason().openAiName());
            completionTokens += r.completionTokens();
        }
        root.set("usage", usage(p.promptIds().length, completionTokens, results));
        return root;
    }

    private ObjectNode usage(int promptTokens, int completionTokens, List<ChoiceResult> results) {
        ObjectNode u = RequestParser.JSON.createObjectNode();
        u.put("prompt_tokens", promptTokens);
        u.put("completion_tokens", completionTokens);
        u.put("total_tokens", promptTokens + completionTokens);
        int proposed = 0;
        int accepted = 0;
        for (ChoiceResult r : results) {
            proposed += r.draftProposed();
            accepted += r.draftAccepted();
        }
        if (proposed > 0) {
            u.put("draft_tokens_proposed", proposed); // k2j extension: speculative decoding
            u.put("draft_tokens_accepted", accepted);
        }
        return u;
    }

    // ---------------------------------------------------------------- server-sent events

    private void stream(HttpExchange exchange, ParsedRequest p, String id, long created, QueueObserver observer,
                        RequestHandle handle) {
        exchange.getResponseHeaders().set("Content-Type", "text/event-stream; charset=utf-8");
        exchange.getResponseHeaders().set("Cache-Control", "no-cache");
        try {
            exchange.sendResponseHeaders(200, 0);
            OutputStream out = exchange.getResponseBody();
            if (p.chat()) {
                for (int c = 0; c < p.n(); c++) {
                    ObjectNode delta = RequestParser.JSON.createObjectNode();
                    delta.put("role", "assistant");
                    delta.put("content", "");
                    write(out, chunk(p, id, created, c, delta, null, null));
                }
                out.flush();
            }
            int finished = 0;
            int completionTokens = 0;
            ChoiceResult[] results = new ChoiceResult[p.n()];
            while (finished < p.n()) {
                Event e = observer.queue.poll(options.heartbeatMillis(), TimeUnit.MILLISECONDS);
                if (e == null) {
                    out.write(": keep-alive\n\n".getBytes(StandardCharsets.UTF_8)); // a comment: clients skip it
                    out.flush();
                    continue;
                }
                while (e != null) { // everything already queued goes out in one flush
                    switch (e) {
                        case Event.Token t -> write(out, chunk(p, id, created, t.choice(), text(p, t.text()), null,
                                null));
                        case Event.Finish f -> {
                            write(out, chunk(p, id, created, f.choice(), p.chat()
                                    ? RequestParser.JSON.createObjectNode() : text(p, ""),
                                    f.result().finishReason().openAiName(), null));
                            results[f.choice()] = f.result();
                            completionTokens += f.result().completionTokens();
                            finished++;
                        }
                        case Event.Failure f -> {
                            ApiException api = new ApiException(500, "server_error", null, null, f.error().getMessage());
                            write(out, OpenAiServer.errorBody(api));
                            out.write("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
                            out.close();
                            return;
                        }
                    }
                    e = finished < p.n() ? observer.queue.poll() : null;
                }
                out.flush();
            }
            if (p.includeUsage()) {
                ObjectNode last = chunkBase(p, id, created);
                last.putArray("choices");
                last.set("usage", usage(p.promptIds().length, completionTokens, List.of(results)));
                write(out, last);
            }
            out.write("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
            out.close();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            handle.cancel();
            throw new UncheckedIOException(new IOException("interrupted while streaming"));
        }
    }

    private ObjectNode chunkBase(ParsedRequest p, String id, long created) {
        ObjectNode root = RequestParser.JSON.createObjectNode();
        root.put("id", id);
        root.put("object", p.chat() ? "chat.completion.chunk" : "text_completion");
        root.put("created", created);
        root.put("model", options.modelId());
        return root;
    }

    private ObjectNode chunk(ParsedRequest p, String id, long created, int choice, ObjectNode delta, String finish,
                             ObjectNode usage) {
        ObjectNode root = chunkBase(p, id, created);
        ObjectNode c = root.putArray("choices").addObject();
        c.put("index", choice);
        if (p.chat()) {
            c.set("delta", delta);
        } else {
            c.put("text", delta.path("text").asText(""));
        }
        c.putNull("logprobs");
        if (finish == null) {
            c.putNull("finish_reason");
        } else {
            c.put("finish_reason", finish);
        }
        if (p.includeUsage()) {
            root.putNull("usage");
        }
        return root;
    }

    private static ObjectNode text(ParsedRequest p, String text) {
        ObjectNode delta = RequestParser.JSON.createObjectNode();
        delta.put(p.chat() ? "content" : "text", text);
        return delta;
    }

    private static void write(OutputStream out, JsonNode node) throws IOException {
        out.write("data: ".getBytes(StandardCharsets.UTF_8));
        out.write(RequestParser.JSON.writeValueAsBytes(node));
        out.write("\n\n".getBytes(StandardCharsets.UTF_8));
    }

    // ---------------------------------------------------------------- scaffold

    private int scaffold(HttpExchange exchange, ParsedRequest p, String id, long created) {
        String question = p.messages().getLast().content();
        if (!p.messages().getLast().role().equals("user")) {
            throw ApiException.invalid("messages", "with the scaffold the last message must be the user's question");
        }
        Scaffold scaffold = new Scaffold(new EngineGenerator(engine, p.speculative()), p.scaffold());
        SamplingParams sampling = new SamplingParams(p.temperature(), p.topP(), Math.max(0, p.topK()), p.minP(),
                p.seed());
        ThinkResult r = scaffold.think(question, sampling, p.maxTokens());
        ObjectNode root = RequestParser.JSON.createObjectNode();
        root.put("id", id);
        root.put("object", "chat.completion");
        root.put("created", created);
        root.put("model", options.modelId());
        Candidate chosen = r.chosen();
        ObjectNode c = root.putArray("choices").addObject();
        c.put("index", 0);
        ObjectNode message = c.putObject("message");
        message.put("role", "assistant");
        message.put("content", chosen.text());
        c.putNull("logprobs");
        c.put("finish_reason", chosen.finishReason());
        ObjectNode usage = root.putObject("usage");
        usage.put("prompt_tokens", p.promptIds().length);
        usage.put("completion_tokens", r.totalTokens()); // everything generated for this answer
        usage.put("total_tokens", p.promptIds().length + r.totalTokens());
        ObjectNode s = root.putObject("k2j_scaffold");
        if (r.plan() == null) {
            s.putNull("plan");
        } else {
            s.put("plan", r.plan());
        }
        s.put("plan_tokens", r.planTokens());
        s.put("verifier", r.verifier());
        s.put("chosen", r.verdict().chosen());
        s.put("reason", r.verdict().reason());
        s.put("verifier_tokens", r.verdict().tokens());
        ArrayNode candidates = s.putArray("candidates");
        for (Candidate cand : r.candidates()) {
            ObjectNode o = candidates.addObject();
            o.put("index", cand.index());
            o.put("text", cand.text());
            o.put("completion_tokens", cand.tokens());
            o.put("finish_reason", cand.finishReason());
            if (cand.answer() == null) {
                o.putNull("answer");
            } else {
                o.put("answer", cand.answer());
            }
            o.put("score", r.verdict().scores().get(cand.index()));
        }
        return OpenAiServer.sendJson(exchange, 200, root);
    }

    private static byte[] randomBytes() {
        byte[] b = new byte[12];
        ThreadLocalRandom.current().nextBytes(b);
        return b;
    }
}
