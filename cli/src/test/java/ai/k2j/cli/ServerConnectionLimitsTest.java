package ai.k2j.cli;

import ai.k2j.testing.TestCheckpoints;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 14, item 6: slow and silent clients are closed after the request / idle timeouts, connections past the
 * cap are closed on accept, and a normal request is served meanwhile. The JDK server takes these limits once per
 * JVM, so this runs {@code k2j serve} with its flags in a child JVM (which also tests the flags).
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ServerConnectionLimitsTest {

    // generous enough that a starved child JVM on a loaded machine still reads a normal request in time
    static final int TIMEOUT_S = 5;
    static final int MAX_CONNECTIONS = 6;

    @Test
    void slowAndSilentClientsAreClosedAndTheCapHoldsWhileNormalRequestsAreServed() throws Exception {
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        List<String> cmd = new ArrayList<>(List.of(java.toString(), "--add-modules", "jdk.incubator.vector",
                "--enable-native-access=ALL-UNNAMED", "--add-opens", "jdk.httpserver/sun.net.httpserver=ALL-UNNAMED",
                "-Xmx512m", "-cp", System.getProperty("java.class.path"), Main.class.getName(), "serve",
                "--model", TestCheckpoints.demoDraft().toString(), "--backend", "reference", "--threads", "1",
                "--max-batch", "2", "--ctx", "256", "--port", "0",
                "--request-timeout", String.valueOf(TIMEOUT_S), "--idle-timeout", String.valueOf(TIMEOUT_S),
                "--max-connections", String.valueOf(MAX_CONNECTIONS)));
        Process serve = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        try {
            int port = awaitPort(serve);
            warmUp(port);
            Thread.sleep(300); // the warm-up's connections are gone on the server too, before five more are held

            long t0 = System.nanoTime();
            List<Socket> held = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                held.add(new Socket("127.0.0.1", port)); // silent
            }
            List<Thread> drippers = new ArrayList<>();
            for (int i = 0; i < 2; i++) {
                Socket s = new Socket("127.0.0.1", port);
                held.add(s);
                drippers.add(Thread.ofVirtual().start(() -> drip(s)));
            }
            // five slow connections open: a normal request on a sixth is served meanwhile
            assertEquals(200, request(port, "POST /v1/completions"));
            assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(TIMEOUT_S), "served while they were held");

            Thread.sleep(300); // the normal request's connection is gone on the server too
            Socket sixth = new Socket("127.0.0.1", port);
            held.add(sixth);
            Thread.sleep(100);
            try (Socket seventh = new Socket("127.0.0.1", port)) {
                long closedIn = closedWithin(seventh, 2000);
                assertTrue(closedIn >= 0 && closedIn < 3000, "the connection past the cap is closed at once: "
                        + closedIn + " ms");
            }
            // every held connection is closed by the server: the silent ones by the idle timeout, the dripping
            // ones by the request timeout (the request never completes)
            for (Socket s : held) {
                long ms = closedWithin(s, (TIMEOUT_S + 4) * 1000);
                assertTrue(ms >= 0, "a slow connection was closed by the server");
                s.close();
            }
            long heldFor = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
            assertTrue(heldFor >= (TIMEOUT_S - 1) * 1000L, "closed by the timeouts, not at once: " + heldFor + " ms");
            for (Thread d : drippers) {
                d.join(5000);
            }
            assertEquals(200, request(port, "POST /v1/completions"), "served afterwards");
        } finally {
            serve.destroy();
            if (!serve.waitFor(10, TimeUnit.SECONDS)) {
                serve.destroyForcibly();
            }
        }
    }

    /** The first requests of a fresh JVM (class loading, JIT) may miss a short timeout: try a few times. */
    static void warmUp(int port) throws Exception {
        for (int attempt = 1; ; attempt++) {
            try {
                assertEquals(200, request(port, "GET /health"));
                assertEquals(200, request(port, "POST /v1/completions"));
                return;
            } catch (IOException e) {
                if (attempt == 3) {
                    throw e;
                }
            }
        }
    }

    /** Waits for the serve line on the child's output; returns the port. */
    static int awaitPort(Process serve) throws IOException {
        BufferedReader out = new BufferedReader(new InputStreamReader(serve.getInputStream(), StandardCharsets.UTF_8));
        Pattern p = Pattern.compile("http://127\\.0\\.0\\.1:(\\d+)");
        StringBuilder log = new StringBuilder();
        String line;
        while ((line = out.readLine()) != null) {
            log.append(line).append('\n');
            Matcher m = p.matcher(line);
            if (m.find()) {
                Thread.ofVirtual().start(() -> drain(out));
                return Integer.parseInt(m.group(1));
            }
        }
        throw new AssertionError("k2j serve exited before listening:\n" + log);
    }

    static void drain(BufferedReader out) {
        try {
            while (out.readLine() != null) {
                // keep the child's pipe from filling
            }
        } catch (IOException ignored) {
            // the child ended
        }
    }

    /** Sends a request header one byte every 200 ms, never finishing it, until the server closes. */
    static void drip(Socket s) {
        byte[] head = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\nX-Slow: "
                .getBytes(StandardCharsets.US_ASCII);
        try {
            for (int i = 0; ; i++) {
                s.getOutputStream().write(i < head.length ? head[i] : 'a');
                s.getOutputStream().flush();
                Thread.sleep(200);
            }
        } catch (IOException | InterruptedException closed) {
            // the server closed it: what the test waits for
        }
    }

    /** Milliseconds until the server closed the socket (EOF or reset), or -1 if it stayed open past the limit. */
    static long closedWithin(Socket s, int limitMs) throws IOException {
        long start = System.nanoTime();
        long deadline = start + TimeUnit.MILLISECONDS.toNanos(limitMs);
        while (System.nanoTime() < deadline) {
            s.setSoTimeout((int) Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime())));
            try {
                if (s.getInputStream().read() < 0) {
                    return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
                }
            } catch (SocketTimeoutException e) {
                return -1;
            } catch (IOException reset) {
                return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            }
        }
        return -1;
    }

    /** One request with Connection: close; the status. */
    static int request(int port, String requestLine) throws IOException {
        String body = requestLine.startsWith("POST")
                ? "{\"prompt\": \"def f():\", \"max_tokens\": 4, \"temperature\": 0}" : "";
        try (Socket s = new Socket("127.0.0.1", port)) {
            s.setSoTimeout(30_000);
            s.getOutputStream().write((requestLine + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                    + "Content-Type: application/json\r\nContent-Length: " + body.length() + "\r\n\r\n" + body)
                    .getBytes(StandardCharsets.UTF_8));
            String status = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8))
                    .readLine();
            assertNotNull(status, "an answer");
            return Integer.parseInt(status.split(" ")[1]);
        }
    }
}
