package ai.k2j.server;

/**
 * Where and how the server listens.
 *
 * @param host            interface to bind ("127.0.0.1" for local use only, "0.0.0.0" for all)
 * @param port            TCP port; 0 picks a free one ({@link OpenAiServer#port()} tells which)
 * @param modelId         the model id clients name (and /v1/models lists)
 * @param maxBodyBytes    larger request bodies get 413
 * @param heartbeatMillis while a stream waits for tokens, an SSE comment is sent this often, so a client that
 *                        went away is noticed (and its sequence cancelled) even while the request is queued
 * @param requestTimeoutSeconds a request's header and body must arrive within this time of its first byte, else
 *                        the connection is closed (slow clients must not hold connections forever)
 * @param idleTimeoutSeconds a connection that sends nothing (a new one, or a kept-alive one between requests)
 *                        is closed after this long
 * @param maxConnections  connections open at once; one more is closed as soon as it is accepted
 * @param specialTokensInMessages false (the default): special tokens written inside chat message text are
 *                        encoded as plain text, so a user cannot close their turn or open a system turn; true:
 *                        HF's behaviour (the rendered prompt is encoded as a whole)
 */
public record ServerOptions(String host, int port, String modelId, int maxBodyBytes, int heartbeatMillis,
                            int requestTimeoutSeconds, int idleTimeoutSeconds, int maxConnections,
                            boolean specialTokensInMessages) {

    public static final int DEFAULT_REQUEST_TIMEOUT_SECONDS = 30;
    public static final int DEFAULT_IDLE_TIMEOUT_SECONDS = 60;
    public static final int DEFAULT_MAX_CONNECTIONS = 512;

    public ServerOptions {
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("port must be in [0, 65535], got " + port);
        }
        if (modelId == null || modelId.isBlank()) {
            throw new IllegalArgumentException("model id must not be blank");
        }
        if (maxBodyBytes < 1024) {
            throw new IllegalArgumentException("maxBodyBytes must be at least 1024, got " + maxBodyBytes);
        }
        if (heartbeatMillis < 10) {
            throw new IllegalArgumentException("heartbeatMillis must be at least 10, got " + heartbeatMillis);
        }
        if (requestTimeoutSeconds < 1) {
            throw new IllegalArgumentException("request timeout must be at least 1 s, got " + requestTimeoutSeconds);
        }
        if (idleTimeoutSeconds < 1) {
            throw new IllegalArgumentException("idle timeout must be at least 1 s, got " + idleTimeoutSeconds);
        }
        if (maxConnections < 1) {
            throw new IllegalArgumentException("max connections must be at least 1, got " + maxConnections);
        }
    }

    public static ServerOptions of(String host, int port, String modelId) {
        return new ServerOptions(host, port, modelId, 8 << 20, 1000, DEFAULT_REQUEST_TIMEOUT_SECONDS,
                DEFAULT_IDLE_TIMEOUT_SECONDS, DEFAULT_MAX_CONNECTIONS, false);
    }

    public ServerOptions withHeartbeatMillis(int ms) {
        return new ServerOptions(host, port, modelId, maxBodyBytes, ms, requestTimeoutSeconds, idleTimeoutSeconds,
                maxConnections, specialTokensInMessages);
    }

    public ServerOptions withLimits(int requestTimeoutSeconds, int idleTimeoutSeconds, int maxConnections) {
        return new ServerOptions(host, port, modelId, maxBodyBytes, heartbeatMillis, requestTimeoutSeconds,
                idleTimeoutSeconds, maxConnections, specialTokensInMessages);
    }

    public ServerOptions withSpecialTokensInMessages(boolean allow) {
        return new ServerOptions(host, port, modelId, maxBodyBytes, heartbeatMillis, requestTimeoutSeconds,
                idleTimeoutSeconds, maxConnections, allow);
    }
}
