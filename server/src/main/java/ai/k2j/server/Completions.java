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
        /** @param logprob the token's log-probabilities when the request asked for them, else null */
        record Token(int choice, int tokenId, String text, ai.k2j.engine.TokenLogprob logprob) implements Event {
        }

        record Finish(int choice, ChoiceResult result) implements Event {
        }

        record Failure(RuntimeException error) implements Event {
        }
    }

    private static final class QueueObserver implements GenerationObserver {
        final LinkedBlockingQueue<Event> queue = new LinkedBlockingQueue<>();
        /** per choice: the log-probabilities announced for the next token (engine thread only) */
        final ai.k2j.engine.TokenLogprob[] pendingLogprob;
        /** whether every token must reach the stream (tool calls are recognized by token id; logprobs per token) */
        final boolean everyToken;

        QueueObserver(int n, boolean everyToken) {
            this.pendingLogprob = new ai.k2j.engine.TokenLogprob[n];
            this.everyToken = everyToken;
        }

        @Override
        public void onLogprob(int choice, ai.k2j.engine.TokenLogprob logprob) {
            pendingLogprob[choice] = logprob;
        }

        @Override
        public void onToken(int choice, int tokenId, String text) {
            ai.k2j.engine.TokenLogprob lp = pendingLogprob[choice];
            pendingLogprob[choice] = null;
            if (!text.isEmpty() || everyToken) {
                queue.add(new Event.Token(choice, tokenId, text, lp));
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
        JsonGrammar.Node grammar = p.agent().grammar();
        java.util.function.Supplier<ai.k2j.engine.TokenConstraint> constraint = null;
        if (grammar != null) {
            GrammarConstraint.Vocabulary vocab = vocabulary(p.agent().format());
            int[] eos = engine.eosIds();
            constraint = () -> new GrammarConstraint(grammar, vocab, eos);
        }
        EngineRequest request = new EngineRequest(new GenerationRequest(p.promptIds(), p.maxTokens(), sampling,
                p.stop(), p.ignoreEos()), p.n(), p.speculative(), constraint, p.topLogprobs());
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
        QueueObserver observer = new QueueObserver(p.n(), p.topLogprobs() >= 0 || p.agent().parsesToolCalls());
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
            String finish = r.finishReason().openAiName();
            if (p.chat()) {
                ObjectNode message = c.putObject("message");
                message.put("role", "assistant");
                ToolCalls.Parsed calls = toolCalls(p, r);
                if (calls != null && !calls.calls().isEmpty()) {
                    if (calls.content() == null) {
                        message.putNull("content");
                    } else {
                        message.put("content", calls.content());
                    }
                    ArrayNode tc = message.putArray("tool_calls");
                    for (ToolCalls.Call call : calls.calls()) {
                        toolCallJson(tc.addObject(), call);
                    }
                    finish = "tool_calls";
                } else {
                    message.put("content", r.text());
                }
                message.putNull("refusal");
            } else {
                c.put("text", r.text());
            }
            if (p.topLogprobs() >= 0 && r.logprobs() != null) {
                c.set("logprobs", p.chat() ? chatLogprobs(r.logprobs(), p.topLogprobs())
                        : completionLogprobs(r.logprobs(), p.topLogprobs()));
            } else {
                c.putNull("logprobs");
            }
            c.put("finish_reason", finish);
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
            ToolStream[] tools = new ToolStream[p.n()];
            if (p.chat() && p.agent().parsesToolCalls()) {
                for (int c = 0; c < tools.length; c++) {
                    tools[c] = new ToolStream();
                }
            }
            while (finished < p.n()) {
                Event e = observer.queue.poll(options.heartbeatMillis(), TimeUnit.MILLISECONDS);
                if (e == null) {
                    out.write(": keep-alive\n\n".getBytes(StandardCharsets.UTF_8)); // a comment: clients skip it
                    out.flush();
                    continue;
                }
                while (e != null) { // everything already queued goes out in one flush
                    switch (e) {
                        case Event.Token t -> {
                            ToolStream ts = tools[t.choice()];
                            String visible = ts == null ? t.text() : ts.accept(t, p.agent().format(), kimiSection());
                            if (ts != null && ts.holding && t.logprob() != null) {
                                ts.heldLogprobs.add(t.logprob());
                            } else if (!visible.isEmpty() || t.logprob() != null) {
                                ObjectNode c = chunk(p, id, created, t.choice(), text(p, visible), null, null);
                                if (t.logprob() != null) {
                                    tokenLogprobs(p, c, List.of(t.logprob()));
                                }
                                write(out, c);
                            }
                        }
                        case Event.Finish f -> {
                            String finish = f.result().finishReason().openAiName();
                            ToolStream ts = tools[f.choice()];
                            if (ts != null) {
                                ToolCalls.Parsed parsed = toolCalls(p, f.result());
                                ObjectNode delta = RequestParser.JSON.createObjectNode();
                                if (!parsed.calls().isEmpty()) {
                                    ArrayNode tc = delta.putArray("tool_calls");
                                    for (int k = 0; k < parsed.calls().size(); k++) {
                                        ObjectNode call = tc.addObject();
                                        call.put("index", k);
                                        toolCallJson(call, parsed.calls().get(k));
                                    }
                                    finish = "tool_calls";
                                } else {
                                    delta.put("content", ts.rest()); // not a call after all: the held text is content
                                }
                                ObjectNode c = chunk(p, id, created, f.choice(), delta, null, null);
                                if (!ts.heldLogprobs.isEmpty()) {
                                    tokenLogprobs(p, c, ts.heldLogprobs);
                                }
                                write(out, c);
                            }
                            write(out, chunk(p, id, created, f.choice(), p.chat()
                                    ? RequestParser.JSON.createObjectNode() : text(p, ""), finish, null));
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

    /**
     * One choice's text while its tool calls are recognized: text streams as content until the format's opener
     * ({@code <tool_call>}, or Kimi's section token) appears; from there it is held, and at the finish it becomes
     * tool_calls, or content after all when it does not parse. A tail that could be the start of the opener is held
     * until the next token decides.
     */
    private static final class ToolStream {
        final StringBuilder text = new StringBuilder();
        int sent;
        boolean holding;
        final List<ai.k2j.engine.TokenLogprob> heldLogprobs = new java.util.ArrayList<>();

        /** Appends the token's text; returns the text that may go out now. */
        String accept(Event.Token t, ToolCalls.Format format, int kimiSectionId) {
            if (holding) {
                text.append(t.text());
                return "";
            }
            if (format == ToolCalls.Format.KIMI && t.tokenId() == kimiSectionId) {
                holding = true;
            }
            text.append(t.text());
            if (holding) {
                return "";
            }
            String opener = ToolCalls.opener(format);
            int at = text.indexOf(opener, Math.max(0, sent - opener.length()));
            int upTo;
            if (at >= 0) {
                holding = true;
                upTo = at;
            } else {
                upTo = text.length();
                for (int k = Math.min(opener.length() - 1, text.length()); k > 0; k--) {
                    if (text.substring(text.length() - k).equals(opener.substring(0, k))) {
                        upTo = text.length() - k;
                        break;
                    }
                }
            }
            String out = text.substring(sent, Math.max(sent, upTo));
            sent = Math.max(sent, upTo);
            return out;
        }

        String rest() {
            String r = text.substring(sent);
            sent = text.length();
            return r;
        }
    }

    private int kimiSection() {
        return engine.hasTokenizer() ? engine.tokenizer().id(ToolCalls.KIMI_SECTION_BEGIN).orElse(-1) : -1;
    }

    /** Puts the tokens' log-probabilities into a stream chunk's choice, in the endpoint's shape. */
    private void tokenLogprobs(ParsedRequest p, ObjectNode chunk, List<ai.k2j.engine.TokenLogprob> lps) {
        ObjectNode choice = (ObjectNode) chunk.get("choices").get(0);
        choice.set("logprobs", p.chat() ? chatLogprobs(lps, p.topLogprobs())
                : completionLogprobs(lps, p.topLogprobs()));
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

    // ---------------------------------------------------------------- tool calls, grammars, logprobs

    private final java.util.concurrent.ConcurrentHashMap<ToolCalls.Format, GrammarConstraint.Vocabulary> vocabularies
            = new java.util.concurrent.ConcurrentHashMap<>();

    /** The vocabulary sorted for grammar masking, built on first use (per tool-call format: the specials it spells). */
    private GrammarConstraint.Vocabulary vocabulary(ToolCalls.Format format) {
        if (!engine.hasTokenizer()) {
            throw ApiException.invalid("response_format", "constrained output needs a tokenizer, and this model has"
                    + " none");
        }
        return vocabularies.computeIfAbsent(format, f -> new GrammarConstraint.Vocabulary(engine.tokenizer(),
                engine.vocabSize(), ToolCalls.spelledSpecials(f)));
    }

    /** The choice's output read as tool calls, or null when the request has no tools to call. */
    private ToolCalls.Parsed toolCalls(ParsedRequest p, ChoiceResult r) {
        if (!p.chat() || !p.agent().parsesToolCalls()) {
            return null;
        }
        String text = r.text();
        if (p.agent().format() == ToolCalls.Format.KIMI) { // its markers are special tokens, absent from the text
            int[] ids = r.ids();
            int end = ids.length;
            int[] eos = engine.eosIds();
            while (end > 0 && isEos(eos, ids[end - 1])) {
                end--;
            }
            text = engine.tokenizer().decode(java.util.Arrays.copyOf(ids, end), false);
        }
        return ToolCalls.parse(text, p.agent().format(), p.agent().toolNames());
    }

    private static boolean isEos(int[] eos, int id) {
        for (int e : eos) {
            if (e == id) {
                return true;
            }
        }
        return false;
    }

    private static void toolCallJson(ObjectNode o, ToolCalls.Call call) {
        o.put("id", call.id());
        o.put("type", "function");
        ObjectNode fn = o.putObject("function");
        fn.put("name", call.name());
        fn.put("arguments", call.arguments());
    }

    private ObjectNode chatLogprobs(List<ai.k2j.engine.TokenLogprob> lps, int top) {
        ObjectNode o = RequestParser.JSON.createObjectNode();
        ArrayNode content = o.putArray("content");
        for (ai.k2j.engine.TokenLogprob lp : lps) {
            content.add(chatLogprob(lp, top));
        }
        o.putNull("refusal");
        return o;
    }

    private ObjectNode chatLogprob(ai.k2j.engine.TokenLogprob lp, int top) {
        ObjectNode e = tokenEntry(lp.id(), lp.logprob());
        ArrayNode alts = e.putArray("top_logprobs");
        for (int i = 0; i < Math.min(top, lp.topIds().length); i++) {
            alts.add(tokenEntry(lp.topIds()[i], lp.topLogprobs()[i]));
        }
        return e;
    }

    private ObjectNode tokenEntry(int id, float logprob) {
        ObjectNode e = RequestParser.JSON.createObjectNode();
        e.put("token", tokenText(id));
        e.put("logprob", logprob);
        ArrayNode bytes = e.putArray("bytes");
        if (engine.hasTokenizer()) {
            for (byte b : engine.tokenizer().tokenBytes(id)) {
                bytes.add(b & 0xFF);
            }
        }
        return e;
    }

    private String tokenText(int id) {
        return engine.hasTokenizer() ? engine.tokenizer().decode(new int[] {id}, false) : "token_id:" + id;
    }

    /** The legacy completions shape: tokens, token_logprobs, top_logprobs (token → logprob), text_offset. */
    private ObjectNode completionLogprobs(List<ai.k2j.engine.TokenLogprob> lps, int top) {
        ObjectNode o = RequestParser.JSON.createObjectNode();
        ArrayNode tokens = o.putArray("tokens");
        ArrayNode values = o.putArray("token_logprobs");
        ArrayNode tops = o.putArray("top_logprobs");
        ArrayNode offsets = o.putArray("text_offset");
        int offset = 0;
        for (ai.k2j.engine.TokenLogprob lp : lps) {
            String t = tokenText(lp.id());
            tokens.add(t);
            values.add(lp.logprob());
            ObjectNode alts = tops.addObject();
            for (int i = 0; i < Math.min(top, lp.topIds().length); i++) {
                alts.put(tokenText(lp.topIds()[i]), lp.topLogprobs()[i]);
            }
            offsets.add(offset);
            offset += t.length();
        }
        return o;
    }

    private static byte[] randomBytes() {
        byte[] b = new byte[12];
        ThreadLocalRandom.current().nextBytes(b);
        return b;
    }
}
