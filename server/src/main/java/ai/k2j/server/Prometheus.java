package ai.k2j.server;


import ai.k2j.engine.EngineMetrics;
import ai.k2j.engine.Histogram;
import java.util.Locale;
import java.util.Map;

/** The Prometheus text exposition format (version 0.0.4) of the engine's and the server's metrics. */
final class Prometheus {

    private Prometheus() {
    }

    static String render(EngineMetrics m, ServerMetrics s, String model) {
        StringBuilder b = new StringBuilder(4096);
        String label = "{model=\"" + escape(model) + "\"}";
        gauge(b, "k2j_queue_depth", "Requests waiting to be admitted to the batch.", label, m.waitingRequests());
        gauge(b, "k2j_running_sequences", "Sequences holding a batch slot (decoding, prefilling or preempted).",
                label, m.runningSequences());
        gauge(b, "k2j_kv_cache_blocks_free", "Free KV cache blocks.", label, m.kvBlocksFree());
        gauge(b, "k2j_kv_cache_blocks_total", "KV cache blocks.", label, m.kvBlocksTotal());
        gauge(b, "k2j_kv_cache_usage_ratio", "Fraction of KV cache blocks in use.", label,
                m.kvBlocksTotal() == 0 ? 0 : 1 - (double) m.kvBlocksFree() / m.kvBlocksTotal());
        gauge(b, "k2j_generation_tokens_per_second", "Generated tokens per second over the last "
                + EngineMetrics.RATE_WINDOW_SECONDS + " s.", label, m.tokensPerSecond());
        counter(b, "k2j_prompt_tokens_total", "Prompt tokens admitted (prefilled).", label, m.promptTokens());
        counter(b, "k2j_generation_tokens_total", "Tokens generated.", label, m.generatedTokens());
        counter(b, "k2j_engine_steps_total", "Batched forward steps of the model.", label, m.steps());
        counter(b, "k2j_engine_step_tokens_total", "Tokens processed by forward steps (prefill, decode, drafts).",
                label, m.stepTokens());
        counter(b, "k2j_preemptions_total", "Sequences evicted from a full KV cache (recomputed later).", label,
                m.preemptions());
        counter(b, "k2j_requests_finished_total", "Engine requests finished.", label, m.requestsFinished());
        counter(b, "k2j_requests_failed_total", "Engine requests failed.", label, m.requestsFailed());
        counter(b, "k2j_choices_cancelled_total", "Choices cancelled (client gone).", label, m.choicesCancelled());
        counter(b, "k2j_spec_draft_tokens_total", "Draft tokens proposed by speculative decoding.", label,
                m.draftTokensProposed());
        counter(b, "k2j_spec_accepted_tokens_total", "Draft tokens accepted by the target.", label,
                m.draftTokensAccepted());
        double rate = m.acceptanceRate();
        gauge(b, "k2j_spec_acceptance_rate", "Accepted / proposed draft tokens since start (NaN before any).", label,
                rate);
        histogram(b, "k2j_time_to_first_token_seconds", "Submission to first generated token.", model,
                m.timeToFirstToken());
        histogram(b, "k2j_inter_token_latency_seconds", "Time between consecutive tokens of a sequence.", model,
                m.interTokenLatency());
        histogram(b, "k2j_request_duration_seconds", "Submission to the end of the last choice.", model,
                m.requestLatency());
        b.append("# HELP k2j_http_requests_total HTTP requests by endpoint and status.\n");
        b.append("# TYPE k2j_http_requests_total counter\n");
        for (Map.Entry<String, Long> e : s.requestCounts().entrySet()) {
            String[] parts = e.getKey().split(" ", 2);
            b.append("k2j_http_requests_total{endpoint=\"").append(escape(parts[0])).append("\",status=\"")
                    .append(parts[1]).append("\"} ").append(e.getValue()).append('\n');
        }
        counter(b, "k2j_http_client_disconnects_total", "Streams whose client went away (sequence cancelled).", "",
                s.clientDisconnects());
        return b.toString();
    }

    private static void gauge(StringBuilder b, String name, String help, String labels, double value) {
        header(b, name, help, "gauge");
        b.append(name).append(labels).append(' ').append(number(value)).append('\n');
    }

    private static void counter(StringBuilder b, String name, String help, String labels, long value) {
        header(b, name, help, "counter");
        b.append(name).append(labels).append(' ').append(value).append('\n');
    }

    private static void histogram(StringBuilder b, String name, String help, String model, Histogram h) {
        header(b, name, help, "histogram");
        double[] bounds = h.bounds();
        long[] cumulative = h.cumulativeCounts();
        String m = "model=\"" + escape(model) + "\"";
        for (int i = 0; i < bounds.length; i++) {
            b.append(name).append("_bucket{").append(m).append(",le=\"").append(number(bounds[i])).append("\"} ")
                    .append(cumulative[i]).append('\n');
        }
        b.append(name).append("_bucket{").append(m).append(",le=\"+Inf\"} ").append(cumulative[bounds.length])
                .append('\n');
        b.append(name).append("_sum{").append(m).append("} ").append(number(h.sum())).append('\n');
        b.append(name).append("_count{").append(m).append("} ").append(h.count()).append('\n');
    }

    private static void header(StringBuilder b, String name, String help, String type) {
        b.append("# HELP ").append(name).append(' ').append(help).append('\n');
        b.append("# TYPE ").append(name).append(' ').append(type).append('\n');
    }

    private static String number(double v) {
        if (Double.isNaN(v)) {
            return "NaN";
        }
        if (Double.isInfinite(v)) {
            return v > 0 ? "+Inf" : "-Inf";
        }
        if (v == Math.rint(v) && Math.abs(v) < 1e15) {
            return Long.toString((long) v);
        }
        return String.format(Locale.ROOT, "%.6g", v);
    }

    private static String escape(String s) {
        return s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n");
    }
}
