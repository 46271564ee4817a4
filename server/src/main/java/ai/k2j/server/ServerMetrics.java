package ai.k2j.server;

import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

/** HTTP-level counters: requests by endpoint and status, client disconnects. Thread-safe. */
final class ServerMetrics {
    private final ConcurrentHashMap<String, LongAdder> requests = new ConcurrentHashMap<>();
    private final LongAdder disconnects = new LongAdder();

    void request(String endpoint, int status) {
        requests.computeIfAbsent(endpoint + " " + status, k -> new LongAdder()).increment();
    }

    void clientDisconnected() {
        disconnects.increment();
    }

    /** "endpoint status" → count, sorted. */
    Map<String, Long> requestCounts() {
        Map<String, Long> out = new TreeMap<>();
        requests.forEach((k, v) -> out.put(k, v.sum()));
        return out;
    }

    long clientDisconnects() {
        return disconnects.sum();
    }
}
