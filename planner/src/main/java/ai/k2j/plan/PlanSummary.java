package ai.k2j.plan;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** The human-readable summary {@code k2j plan} prints: per-layer PEs and SRAM, utilisation, speeds, bottleneck. */
public final class PlanSummary {
    private PlanSummary() {
    }

    public static String text(Plan plan) {
        StringBuilder sb = new StringBuilder();
        Plan.Request r = plan.request();
        sb.append(PlanDraw.title(plan)).append('\n');
        sb.append(String.format(Locale.ROOT, "device  %s (%s)%n", plan.device().name(), plan.device().id()));
        sb.append(String.format(Locale.ROOT, "model   %s: %,d parameters, %.2f GB of %s weights%s%n",
                plan.model().architecture(), plan.model().parameters(), plan.model().weightBytes() / 1e9, r.dtype(),
                plan.draft() == null ? "" : String.format(Locale.ROOT, "; draft %s %.2f GB", plan.draft().name(),
                        plan.draft().weightBytes() / 1e9)));
        sb.append(String.format(Locale.ROOT, "wafers  %d %s%n", r.wafers(), r.wafersRequested() == null
                ? (plan.shapes().usesMesh() ? "(chosen" : "(chosen: the fewest that hold every weight in SRAM")
                + (plan.search().note() == null ? ")"
                : "; " + plan.search().note() + ")") : "(requested)"));
        if (plan.shapes().usesMesh()) {
            Plan.Mesh m = plan.shapes().mesh();
            sb.append(String.format(Locale.ROOT, "mapping %s: each layer a %d x %d mesh of PEs (MeshGEMV, K-tree "
                            + "all-reduce, shift-based KV cache), %d x %d meshes per wafer, a mesh's layers stacked in "
                            + "its PEs%s%s%n", plan.shapes().mapping(), m.rows(), m.cols(), m.tilesDown(),
                    m.tilesAcross(), m.expertGridRows() == null ? ""
                            : m.expertGridRows() * m.expertGridCols() == 1 ? "; experts stacked (each expert spread "
                            + "over the whole layer mesh, no dispatch or combine)" : String.format(Locale.ROOT,
                            "; experts on %d x %d sub-meshes, a layer's experts over %d wafer(s)", m.expertGridRows(),
                            m.expertGridCols(), m.expertSpan()),
                    m.draftRows() == null ? "" : String.format(Locale.ROOT, "; draft on a %d x %d mesh of wafer 0",
                            m.draftRows(), m.draftCols())));
        } else {
            sb.append("mapping layer-pipeline: each layer its own block of PEs\n");
            block(sb, "block  ", plan.shapes().target());
            if (plan.shapes().draft() != null) {
                block(sb, "draft  ", plan.shapes().draft());
            }
        }
        sb.append('\n');
        layerTable(sb, plan);
        sb.append('\n');
        sb.append(String.format(Locale.ROOT, "%-6s %12s %10s %14s %10s  %s%n", "wafer", "PEs used", "PE util",
                "SRAM used", "SRAM util", "layers"));
        for (Plan.Wafer w : plan.wafers()) {
            sb.append(String.format(Locale.ROOT, "%-6d %,12d %9.1f%% %11.2f GB %9.1f%%  %s%s%n", w.index(),
                    w.usedPes(), 100 * w.peUtilisation(), w.usedSramBytes() / 1e9, 100 * w.sramUtilisation(),
                    w.targetLayers().isEmpty() ? "-" : "L" + w.targetLayers(),
                    w.draftLayers().isEmpty() ? "" : ", draft L" + w.draftLayers()));
        }
        Plan.Performance p = plan.performance();
        sb.append('\n');
        sb.append(String.format(Locale.ROOT, "decode   %.0f tok/s per sequence (%.1f us/token, %,.0f cycles)%n",
                p.decodeTokensPerSecond(), p.decodeLatencySeconds() * 1e6, p.decodeCyclesPerToken()));
        Plan.CycleBreakdown b = p.decodeBreakdown();
        sb.append(String.format(Locale.ROOT, "         compute %.0f%%, link bandwidth %.0f%%, hops %.0f%%, steps %.0f%%, "
                        + "wafer-to-wafer %.0f%%%n", pct(b.compute(), b.total()), pct(b.bandwidth(), b.total()),
                pct(b.hops(), b.total()), pct(b.steps(), b.total()), pct(b.interWafer(), b.total())));
        if (r.batch() > 1) {
            sb.append(String.format(Locale.ROOT, "         batch %d: %.0f tok/s aggregate (pipeline stage %,.0f cycles, "
                    + "%s)%n", r.batch(), p.aggregateDecodeTokensPerSecond(), p.pipelineStageCycles(),
                    p.pipelineBottleneck()));
        }
        if (p.speculative() != null) {
            Plan.Speculative s = p.speculative();
            sb.append(String.format(Locale.ROOT, "spec     %.0f tok/s with draft %s: k=%d, accept %.2f -> %.2f tokens per "
                            + "step; draft %,.0f cycles/token, verify %,.0f cycles (x%.2f over the target alone)%n",
                    s.tokensPerSecond(), s.draftModel(), s.k(), s.acceptRate(), s.expectedTokensPerStep(),
                    s.draftCyclesPerToken(), s.verifyCycles(), s.speedupOverTarget()));
        }
        sb.append(String.format(Locale.ROOT, "prefill  %.0f tok/s (chunks of %d; limited by %s); time to first token "
                        + "for a %d-token prompt %.1f ms%n", p.prefillTokensPerSecond(), p.prefillChunkTokens(),
                p.prefillBottleneck(), r.ctx(), p.timeToFirstTokenSeconds() * 1e3));
        sb.append("bottleneck  ").append(p.decodeBottleneck()).append('\n');
        sb.append('\n');
        if (plan.search().alternatives() != null) {
            sb.append("compared (tok/s per request):\n");
            for (Plan.Alternative a : plan.search().alternatives()) {
                sb.append(a.wafers() == 0 ? String.format(Locale.ROOT, "  %-22s %s%n", a.role(), a.detail())
                        : String.format(Locale.ROOT, "  %-22s %-15s %3d wafer(s) %8.0f  %s%n", a.role(), a.mapping(),
                        a.wafers(), a.tokensPerSecond(), a.detail()));
            }
            sb.append('\n');
        }
        for (Plan.Check c : plan.checks()) {
            sb.append(String.format(Locale.ROOT, "%-4s %-30s %s%n", c.ok() ? "ok" : "FAIL", c.name(), c.detail()));
        }
        for (String w : plan.warnings()) {
            sb.append("warning: ").append(w).append('\n');
        }
        return sb.toString();
    }

    /** One line: mapping, wafers and speed. */
    public static String oneLine(Plan plan) {
        return String.format(Locale.ROOT, "%s on %d wafer(s), %.0f tok/s per request", plan.shapes().mapping(),
                plan.request().wafers(), plan.performance().effectiveTokensPerSecond());
    }

    private static void block(StringBuilder sb, String label, Plan.BlockShape s) {
        sb.append(String.format(Locale.ROOT, "%s %d rows x %d cols = [norm 1 | attention %d | KV %d | norm 1 | MLP %d], "
                + "%d per shelf%n", label, s.rows(), s.width(), s.attnCols(), s.kvCols(), s.mlpCols(), s.blocksPerShelf()));
    }

    private static double pct(double a, double total) {
        return total == 0 ? 0 : 100 * a / total;
    }

    /** One row per layer, consecutive identical layers (same wafer and numbers) folded into a range. */
    private static void layerTable(StringBuilder sb, Plan plan) {
        sb.append(String.format(Locale.ROOT, "%-22s %5s %9s %10s %9s %9s %9s %11s%n", "partition", "wafer", "PEs",
                "SRAM MB", "KB/PE", "weights", "KV", "cycles/tok"));
        Map<String, List<Plan.Node>> layers = new LinkedHashMap<>();
        List<Plan.Node> others = new ArrayList<>();
        for (Plan.Node n : plan.nodes()) {
            if (n.layer() == null) {
                others.add(n);
            } else {
                layers.computeIfAbsent((n.model().equals("draft") ? "draft." : "") + "L" + n.layer(),
                        k -> new ArrayList<>()).add(n);
            }
        }
        for (Plan.Node n : others) {
            if (n.model().equals("target") && n.kind() != NodeKind.FINAL_NORM && n.kind() != NodeKind.LM_HEAD) {
                row(sb, n.id(), List.of(n), 1);
            }
        }
        String prevKey = null;
        String first = null;
        String last = null;
        List<Plan.Node> prevNodes = null;
        int run = 0;
        for (Map.Entry<String, List<Plan.Node>> e : layers.entrySet()) {
            String key = signature(e.getValue());
            if (key.equals(prevKey)) {
                run++;
                last = e.getKey();
                continue;
            }
            if (prevNodes != null) {
                row(sb, range(first, last, run), prevNodes, run);
            }
            prevKey = key;
            prevNodes = e.getValue();
            first = last = e.getKey();
            run = 1;
        }
        if (prevNodes != null) {
            row(sb, range(first, last, run), prevNodes, run);
        }
        for (Plan.Node n : others) {
            if (!(n.model().equals("target") && n.kind() != NodeKind.FINAL_NORM && n.kind() != NodeKind.LM_HEAD)) {
                row(sb, n.id(), List.of(n), 1);
            }
        }
    }

    private static String range(String first, String last, int run) {
        if (run == 1) {
            return first;
        }
        String lastNum = last.substring(last.lastIndexOf('L') + 1);
        return first + "-" + lastNum + " (each)";
    }

    private static String signature(List<Plan.Node> nodes) {
        StringBuilder sb = new StringBuilder();
        for (Plan.Node n : nodes) {
            sb.append(n.wafer()).append(':').append(n.pes()).append(':').append(n.sram().totalPerPe()).append(':')
                    .append(n.weightBytes()).append(':').append(n.kvBytes()).append(':').append(n.decode().total())
                    .append(';');
        }
        return sb.toString();
    }

    private static void row(StringBuilder sb, String name, List<Plan.Node> nodes, int run) {
        long pes = 0;
        long sram = 0;
        long maxPe = 0;
        long weights = 0;
        long kv = 0;
        double cycles = 0;
        boolean stacked = nodes.size() > 1 && nodes.stream().allMatch(n -> n.rect().equals(nodes.get(0).rect()));
        for (Plan.Node n : nodes) {
            pes = stacked ? Math.max(pes, n.pes()) : pes + n.pes();   // stacked partitions share their PEs
            sram += n.pes() * n.sram().totalPerPe();
            maxPe = Math.max(maxPe, n.sram().totalPerPe());
            weights += n.weightBytes();
            kv += n.kvBytes();
            cycles += n.decode().total();
        }
        sb.append(String.format(Locale.ROOT, "%-22s %5d %,9d %10.1f %9.1f %8.0fM %8.1fM %,11.0f%n", name,
                nodes.get(0).wafer(), pes, sram / 1e6, maxPe / 1024.0, weights / 1e6, kv / 1e6, cycles));
    }
}
