package ai.k2j.cli;

import ai.k2j.engine.BatchEngine;
import ai.k2j.server.OpenAiServer;
import ai.k2j.server.ServerOptions;

import java.io.PrintStream;
import java.util.List;
import java.util.concurrent.CountDownLatch;

/**
 * {@code k2j serve}: an OpenAI-compatible HTTP server with continuous batching (see docs/server.md). Runs until
 * the process is stopped (Ctrl-C / SIGTERM close the server, then the engine).
 */
final class ServeCommand implements Command {

    static final VerbSpec SPEC = new VerbSpec("serve", "OpenAI-compatible server", VerbSpec.join(
            ServingFlags.SERVE_ENGINE_FLAGS.subList(0, 1),
            List.of(Flag.option("host", "H", "127.0.0.1", "interface to bind; 0.0.0.0 for every interface"),
                    Flag.option("port", "P", "8000", "TCP port; 0 picks a free one"),
                    Flag.option("served-model-name", "NAME", "the model directory's name; "
                            + ServingFlags.DEMO_MODEL_ID + " for the demo", "model id clients send"),
                    Flag.option("request-timeout", "S", String.valueOf(ServerOptions.DEFAULT_REQUEST_TIMEOUT_SECONDS),
                            "a request's header and body must arrive within S seconds"),
                    Flag.option("idle-timeout", "S", String.valueOf(ServerOptions.DEFAULT_IDLE_TIMEOUT_SECONDS),
                            "close a connection that sends nothing for S seconds"),
                    Flag.option("max-connections", "N", String.valueOf(ServerOptions.DEFAULT_MAX_CONNECTIONS),
                            "connections open at once; more are closed on accept"),
                    Flag.toggle("special-tokens-in-messages", "encode special tokens inside chat message text as"
                            + " control tokens, as HF does (default: as plain text)")),
            ServingFlags.SERVE_ENGINE_FLAGS.subList(1, ServingFlags.SERVE_ENGINE_FLAGS.size())), null);

    @Override
    public VerbSpec spec() {
        return SPEC;
    }

    /** A started server and its engine. */
    record Running(BatchEngine engine, OpenAiServer server) implements AutoCloseable {
        @Override
        public void close() {
            try {
                server.close();
            } finally {
                engine.close();
            }
        }
    }

    @Override
    public int run(Args args, PrintStream out, PrintStream err) {
        Running running = start(args, err);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            err.println("k2j serve: shutting down");
            running.close();
            stopped.countDown();
        }));
        try {
            stopped.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            running.close();
        }
        return 0;
    }

    /** Validates the flags, loads the engine and starts the server (tests use this directly). */
    Running start(Args args, PrintStream err) {
        ServingFlags flags = ServingFlags.read(args, 16, true);
        String host = args.string("host", "127.0.0.1");
        int port = args.integer("port", 8000);
        if (port < 0 || port > 65535) {
            throw new UsageException("--port must be in [0, 65535], got " + port);
        }
        String name = args.string("served-model-name", null);
        int requestTimeout = ServingFlags.atLeast(args, "request-timeout",
                ServerOptions.DEFAULT_REQUEST_TIMEOUT_SECONDS, 1);
        int idleTimeout = ServingFlags.atLeast(args, "idle-timeout", ServerOptions.DEFAULT_IDLE_TIMEOUT_SECONDS, 1);
        int maxConnections = ServingFlags.atLeast(args, "max-connections", ServerOptions.DEFAULT_MAX_CONNECTIONS, 1);
        boolean specialTokensInMessages = args.flag("special-tokens-in-messages");
        args.finish();
        BatchEngine engine = flags.load();
        try {
            String id = name != null ? name : flags.demo() ? ServingFlags.DEMO_MODEL_ID : engine.modelName();
            OpenAiServer server = OpenAiServer.start(engine, ServerOptions.of(host, port, id)
                    .withLimits(requestTimeout, idleTimeout, maxConnections)
                    .withSpecialTokensInMessages(specialTokensInMessages));
            err.println("k2j serve: " + id + " on " + server.baseUrl()
                    + " (" + (flags.demo() ? "the demo model " + SpeculationFlags.shortPath(flags.model()) + ", " : "")
                    + engine.backendName() + " backend, max batch " + engine.maxBatch() + ", context "
                    + engine.maxContext() + ", KV blocks " + engine.metrics().kvBlocksTotal()
                    + (engine.hasDraft() ? ", draft " + SpeculationFlags.shortPath(flags.draft()) + " k="
                    + engine.draftTokens() : "") + ")");
            return new Running(engine, server);
        } catch (RuntimeException e) {
            engine.close();
            throw e;
        }
    }
}
