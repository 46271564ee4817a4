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
 */
public record ServerOptions(String host, int port, String modelId, int maxBodyBytes, int heartbeatMillis) {

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
    }

    public static ServerOptions of(String host, int port, String modelId) {
        return new ServerOptions(host, port, modelId, 8 << 20, 1000);
    }

    public ServerOptions withHeartbeatMillis(int ms) {
        return new ServerOptions(host, port, modelId, maxBodyBytes, ms);
    }
}
