package ai.k2j.server;

import ai.k2j.engine.BatchEngine;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * An OpenAI-compatible HTTP server over a {@link BatchEngine}: {@code POST /v1/chat/completions} and
 * {@code /v1/completions} (SSE streaming or not), {@code GET /v1/models}, {@code /health} and a Prometheus
 * {@code /metrics}. Concurrent requests decode together in the engine's batch.
 *
 * <p>HTTP stack: the JDK's {@code com.sun.net.httpserver} with one virtual thread per exchange. It is part of
 * the JDK (maintained with it, no dependency to track), speaks HTTP/1.1 with keep-alive and chunked streaming,
 * and a virtual thread per request makes the simple blocking style (wait for tokens, write them) cheap at any
 * concurrency the engine can serve — the model, not the HTTP layer, is the bottleneck at tens of streams. What
 * it lacks: HTTP/2, TLS termination worth exposing (put a proxy in front), and a notice when an idle client
 * disconnects — so streams send an SSE comment heartbeat while they wait, and a non-streaming request learns
 * of a gone client only when its response is written (its sequence runs to completion, bounded by max_tokens).
 */
public final class OpenAiServer implements AutoCloseable {

    private final BatchEngine engine;
    private final ServerOptions options;
    private final HttpServer http;
    private final ExecutorService executor;
    private final ServerMetrics metrics = new ServerMetrics();
    private final Completions completions;
    private final long created = System.currentTimeMillis() / 1000;

    private OpenAiServer(BatchEngine engine, ServerOptions options) throws IOException {
        this.engine = engine;
        this.options = options;
        this.completions = new Completions(engine, options, metrics);
        applyConnectionLimits(options);
        this.http = HttpServer.create(new InetSocketAddress(options.host(), options.port()), 128);
        this.executor = Executors.newVirtualThreadPerTaskExecutor();
        http.setExecutor(executor);
        http.createContext("/", this::handle);
        http.start();
    }

    /** Binds and starts serving; the engine stays the caller's to close (after this server). */
    public static OpenAiServer start(BatchEngine engine, ServerOptions options) {
        try {
            return new OpenAiServer(engine, options);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot listen on " + options.host() + ":" + options.port() + ": "
                    + e.getMessage(), e);
        }
    }

    /** The bound port (useful with port 0). */
    public int port() {
        return http.getAddress().getPort();
    }

    public String baseUrl() {
        return "http://" + options.host() + ":" + port();
    }

    /** Stops accepting, gives open exchanges a second to end, and stops the request threads. */
    @Override
    public void close() {
        http.stop(1);
        executor.shutdownNow();
    }

    // ------------------------------------------------------------------------------------------------

    /** The limits the JDK server of this JVM runs with (set by the first server started). */
    private static ServerOptions appliedLimits;

    /**
     * The JDK server reads its timeouts and connection cap from system properties once, when its first
     * instance starts, for the whole JVM: the first server's options apply; a later server asking for other
     * limits gets a warning naming those in effect.
     */
    private static synchronized void applyConnectionLimits(ServerOptions o) {
        if (appliedLimits == null) {
            // header and body of a request: measured from its first byte until the body is read
            System.setProperty("sun.net.httpserver.maxReqTime", String.valueOf(o.requestTimeoutSeconds()));
            // a connection with no request yet, or idle between kept-alive requests
            System.setProperty("sun.net.httpserver.idleInterval", String.valueOf(o.idleTimeoutSeconds()));
            // how often idle connections are looked at (the JDK's default, 10 s, would stretch a 1 s timeout)
            System.setProperty("sun.net.httpserver.clockTick", "1000");
            System.setProperty("jdk.httpserver.maxConnections", String.valueOf(o.maxConnections()));
            appliedLimits = o;
        } else if (appliedLimits.requestTimeoutSeconds() != o.requestTimeoutSeconds()
                || appliedLimits.idleTimeoutSeconds() != o.idleTimeoutSeconds()
                || appliedLimits.maxConnections() != o.maxConnections()) {
            System.getLogger(OpenAiServer.class.getName()).log(System.Logger.Level.WARNING,
                    "connection limits are per JVM; those of the first server stay in effect: request timeout "
                            + appliedLimits.requestTimeoutSeconds() + " s, idle timeout "
                            + appliedLimits.idleTimeoutSeconds() + " s, max connections "
                            + appliedLimits.maxConnections());
        }
    }

    private void handle(HttpExchange exchange) {
        String path = exchange.getRequestURI().getPath();
        String method = exchange.getRequestMethod();
        String endpoint = endpointOf(path);
        int status;
        try (exchange) {
            try {
                status = route(exchange, path, method);
            } catch (ApiException e) {
                status = e.status;
                sendError(exchange, e);
            } catch (IllegalArgumentException e) {
                status = 400;
                sendError(exchange, ApiException.invalid(null, e.getMessage()));
            } catch (IllegalStateException e) {
                boolean down = !engine.isRunning(); // closed: 503; a failure inside a running engine: 500
                status = down ? 503 : 500;
                sendError(exchange, new ApiException(status, "server_error", null, down ? "unavailable" : null,
                        e.getMessage()));
            } catch (UncheckedIOException e) {
                status = 499; // the client went away mid-response
            } catch (RuntimeException e) {
                status = 500;
                System.getLogger(OpenAiServer.class.getName()).log(System.Logger.Level.ERROR,
                        "internal error on " + method + " " + path, e);
                sendError(exchange, new ApiException(500, "server_error", null, null, "internal error: " + e));
            }
        }
        metrics.request(endpoint, status);
    }

    private int route(HttpExchange exchange, String path, String method) {
        switch (path) {
            case "/v1/chat/completions", "/v1/completions" -> {
                requireMethod(method, "POST");
                byte[] body = readBody(exchange);
                JsonNode root = RequestParser.parseBody(body);
                return completions.serve(exchange, root, path.equals("/v1/chat/completions"));
            }
            case "/v1/models" -> {
                requireMethod(method, "GET");
                ObjectNode list = RequestParser.JSON.createObjectNode();
                list.put("object", "list");
                list.putArray("data").add(modelCard());
                return sendJson(exchange, 200, list);
            }
            case "/health" -> {
                requireMethod(method, "GET");
                ObjectNode h = RequestParser.JSON.createObjectNode();
                boolean up = engine.isRunning();
                h.put("status", up ? "ok" : "unavailable");
                h.put("model", options.modelId());
                return sendJson(exchange, up ? 200 : 503, h);
            }
            case "/metrics" -> {
                requireMethod(method, "GET");
                byte[] text = Prometheus.render(engine.metrics(), metrics, options.modelId())
                        .getBytes(StandardCharsets.UTF_8);
                exchange.getResponseHeaders().set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
                return send(exchange, 200, text);
            }
            default -> {
                if (path.startsWith("/v1/models/")) {
                    requireMethod(method, "GET");
                    String id = path.substring("/v1/models/".length());
                    if (!id.equals(options.modelId())) {
                        throw new ApiException(404, "invalid_request_error", "model", "model_not_found",
                                "the model '" + id + "' does not exist");
                    }
                    return sendJson(exchange, 200, modelCard());
                }
                throw new ApiException(404, "invalid_request_error", null, "not_found", "no route " + method + " "
                        + path + " (k2j serves /v1/chat/completions, /v1/completions, /v1/models, /health,"
                        + " /metrics)");
            }
        }
    }

    private ObjectNode modelCard() {
        ObjectNode m = RequestParser.JSON.createObjectNode();
        m.put("id", options.modelId());
        m.put("object", "model");
        m.put("created", created);
        m.put("owned_by", "k2j");
        m.put("max_model_len", engine.maxContext());
        return m;
    }

    private static String endpointOf(String path) {
        return switch (path) {
            case "/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics" -> path;
            default -> path.startsWith("/v1/models/") ? "/v1/models/{id}" : "other";
        };
    }

    private static void requireMethod(String method, String expected) {
        if (!method.equals(expected)) {
            throw new ApiException(405, "invalid_request_error", null, "method_not_allowed", method
                    + " is not allowed here; use " + expected);
        }
    }

    private byte[] readBody(HttpExchange exchange) {
        String length = exchange.getRequestHeaders().getFirst("Content-Length");
        if (length != null) {
            try {
                long declared = Long.parseLong(length.trim());
                if (declared > options.maxBodyBytes()) {
                    // Read (and drop) a body of sane size first: answering while the client is still writing
                    // races it into a broken pipe, and it never sees the 413.
                    discard(exchange, declared);
                    throw tooLarge();
                }
            } catch (NumberFormatException e) {
                throw ApiException.invalid(null, "invalid Content-Length '" + length + "'");
            }
        }
        try (InputStream in = exchange.getRequestBody()) {
            byte[] body = in.readNBytes(options.maxBodyBytes() + 1);
            if (body.length > options.maxBodyBytes()) {
                throw tooLarge();
            }
            return body;
        } catch (IOException | IndexOutOfBoundsException | IllegalStateException e) {
            // A chunk size that is not hex, too long, or larger than what follows, or a body cut short: the JDK's
            // decoder fails here (a size past int range surfaces as an index error). The client may still be
            // listening, and the rest of the connection cannot be parsed: answer 400 and close it.
            exchange.getResponseHeaders().set("Connection", "close");
            String chunked = exchange.getRequestHeaders().getFirst("Transfer-Encoding");
            throw ApiException.invalid(null, "invalid_body", "cannot read the request body"
                    + (chunked != null ? " (chunked transfer encoding)" : "") + ": "
                    + (e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage()));
        }
    }

    /** Bodies past this are not drained: the connection is closed on the client instead. */
    private static final long MAX_DISCARD_BYTES = 64L << 20;

    private static void discard(HttpExchange exchange, long declared) {
        if (declared > MAX_DISCARD_BYTES) {
            return;
        }
        try (InputStream in = exchange.getRequestBody()) {
            in.transferTo(OutputStream.nullOutputStream());
        } catch (IOException e) {
            // the client went away; the 413 is still attempted
        }
    }

    private ApiException tooLarge() {
        return new ApiException(413, "invalid_request_error", null, "request_too_large", "the request body exceeds "
                + options.maxBodyBytes() + " bytes");
    }

    static int sendJson(HttpExchange exchange, int status, JsonNode body) {
        exchange.getResponseHeaders().set("Content-Type", "application/json");
        try {
            return send(exchange, status, RequestParser.JSON.writeValueAsBytes(body));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException("cannot serialize a response", e);
        }
    }

    static int send(HttpExchange exchange, int status, byte[] body) {
        try {
            exchange.sendResponseHeaders(status, body.length == 0 ? -1 : body.length);
            if (body.length > 0) {
                try (OutputStream out = exchange.getResponseBody()) {
                    out.write(body);
                }
            }
            return status;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static ObjectNode errorBody(ApiException e) {
        ObjectNode root = RequestParser.JSON.createObjectNode();
        ObjectNode error = root.putObject("error");
        error.put("message", e.getMessage());
        error.put("type", e.type);
        if (e.param == null) {
            error.putNull("param");
        } else {
            error.put("param", e.param);
        }
        if (e.code == null) {
            error.putNull("code");
        } else {
            error.put("code", e.code);
        }
        return root;
    }

    private static void sendError(HttpExchange exchange, ApiException e) {
        if (exchange.getResponseCode() != -1) {
            return; // headers already sent (a stream): nothing more can be said in HTTP terms
        }
        if (e.status == 405) {
            exchange.getResponseHeaders().set("Allow", e.getMessage().endsWith("POST") ? "POST" : "GET");
        }
        try {
            sendJson(exchange, e.status, errorBody(e));
        } catch (UncheckedIOException ignored) {
            // the client is gone
        }
    }

    static ArrayNode array() {
        return RequestParser.JSON.createArrayNode();
    }
}
