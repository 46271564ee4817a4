package ai.k2j.server;

import com.sun.net.httpserver.HttpExchange;

import java.io.IOException;
import java.lang.reflect.Field;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.util.concurrent.CompletableFuture;

/**
 * Notices that the client of a non-streaming request closed its connection while the answer is generated, so
 * the request can be cancelled (a stream notices through its writes). The JDK server does not expose the
 * socket; it is reached through its internals, which needs
 * {@code --add-opens jdk.httpserver/sun.net.httpserver=ALL-UNNAMED} (the {@code k2j} launcher and the tests pass
 * it). Without it the old behaviour remains: the request runs to completion and its result is dropped.
 */
final class ClientWatch {
    private static final Field EXCHANGE_IMPL;
    private static final Field CONNECTION;
    private static final Field CHANNEL;

    static {
        Field impl = null;
        Field connection = null;
        Field channel = null;
        try {
            impl = Class.forName("sun.net.httpserver.HttpExchangeImpl").getDeclaredField("impl");
            connection = Class.forName("sun.net.httpserver.ExchangeImpl").getDeclaredField("connection");
            channel = Class.forName("sun.net.httpserver.HttpConnection").getDeclaredField("chan");
            impl.setAccessible(true);
            connection.setAccessible(true);
            channel.setAccessible(true);
        } catch (ReflectiveOperationException | RuntimeException e) {
            System.getLogger(ClientWatch.class.getName()).log(System.Logger.Level.INFO, "non-streaming requests"
                    + " of a client that disconnects run to completion (the JVM lacks --add-opens"
                    + " jdk.httpserver/sun.net.httpserver=ALL-UNNAMED): " + e);
            impl = null;
        }
        EXCHANGE_IMPL = impl;
        CONNECTION = connection;
        CHANNEL = channel;
    }

    private ClientWatch() {
    }

    /** Whether closed connections can be noticed in this JVM. */
    static boolean available() {
        return EXCHANGE_IMPL != null;
    }

    private static SocketChannel channelOf(HttpExchange exchange) {
        if (EXCHANGE_IMPL == null || !EXCHANGE_IMPL.getDeclaringClass().isInstance(exchange)) {
            return null;
        }
        try {
            return (SocketChannel) CHANNEL.get(CONNECTION.get(EXCHANGE_IMPL.get(exchange)));
        } catch (ReflectiveOperationException | RuntimeException e) {
            return null;
        }
    }

    /**
     * Waits until {@code done} completes; returns early with true when the client closed (or reset) the
     * connection first. The request was read whole, so a well-behaved client sends nothing more; should it send
     * bytes anyway (a pipelined request), they are dropped and the response closes the connection.
     */
    static boolean clientClosedBefore(HttpExchange exchange, CompletableFuture<?> done) {
        SocketChannel channel = channelOf(exchange);
        if (channel == null) {
            return false;
        }
        try (Selector selector = Selector.open()) {
            try {
                channel.configureBlocking(false);
                SelectionKey key = channel.register(selector, SelectionKey.OP_READ);
                done.whenComplete((r, e) -> selector.wakeup());
                ByteBuffer scratch = ByteBuffer.allocate(256);
                while (!done.isDone()) {
                    selector.select(1000);
                    if (!selector.selectedKeys().remove(key)) {
                        continue;
                    }
                    scratch.clear();
                    try {
                        if (channel.read(scratch) < 0) {
                            return true;
                        }
                    } catch (IOException reset) {
                        return true; // connection reset by the client
                    }
                    if (scratch.position() > 0) {
                        exchange.getResponseHeaders().set("Connection", "close");
                        key.cancel();
                        return false;
                    }
                }
                return false;
            } finally {
                selector.close(); // deregisters the channel, so it can block again for the JDK's writes
                channel.configureBlocking(true);
            }
        } catch (IOException e) {
            return false; // cannot watch: the response's write will tell
        }
    }
}
