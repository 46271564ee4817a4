package ai.k2j.cli;

import ai.k2j.engine.BatchEngine;
import ai.k2j.server.OpenAiServer;
import ai.k2j.server.ServerOptions;

import java.io.PrintStream;
import java.util.concurrent.CountDownLatch;

/**
 * {@code k2j serve}: an OpenAI-compatible HTTP server with continuous batching (see docs/server.md). Runs until
 * the process is stopped (Ctrl-C / SIGTERM close the server, then the engine).
 */
final class ServeCommand implements Command {

    @Override
    public String usage() {
        return """
                usage: k2j serve --model DIR [--draft DIR] [--port P] [--max-batch B] [--ctx N] [flags]
                  --host H             interface to bind (default 127.0.0.1; 0.0.0.0 for every interface)
                  --port P             TCP port (default 8000; 0 picks a free one)
                  --served-model-name NAME   model id clients send (default: the model directory's name)
                  --request-timeout S  a request's header and body must arrive within S seconds (default 30)
                  --idle-timeout S     close a connection that sends nothing for S seconds (default 60)
                  --max-connections N  connections open at once; more are closed on accept (default 512)
                  --special-tokens-in-messages  encode special tokens inside chat message text as control
                                       tokens, as HF does (default: as plain text)
                """ + ServingFlags.ENGINE_USAGE;
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
        ServingFlags flags = ServingFlags.read(args, 16);
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
            OpenAiServer server = OpenAiServer.start(engine, ServerOptions.of(host, port,
                    name == null ? engine.modelName() : name)
                    .withLimits(requestTimeout, idleTimeout, maxConnections)
                    .withSpecialTokensInMessages(specialTokensInMessages));
            err.println("k2j serve: " + (name == null ? engine.modelName() : name) + " on " + server.baseUrl()
                    + " (" + engine.backendName() + " backend, max batch " + engine.maxBatch() + ", context "
                    + engine.maxContext() + ", KV blocks " + engine.metrics().kvBlocksTotal()
                    + (engine.hasDraft() ? ", draft " + flags.draft + " k=" + engine.draftTokens() : "") + ")");
            return new Running(engine, server);
        } catch (RuntimeException e) {
            engine.close();
            throw e;
        }
    }
}
