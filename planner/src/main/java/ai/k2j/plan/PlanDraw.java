package ai.k2j.plan;

import java.util.EnumMap;
import java.util.EnumSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * Renders a plan as Graphviz DOT (the partition graph, one cluster per wafer) and as a standalone SVG (each wafer
 * drawn to scale as its PE grid, one coloured rectangle per partition, the stream routes, and a legend). Both are
 * plain text written directly, with no external tools.
 */
public final class PlanDraw {
    private PlanDraw() {
    }

    private static final Map<NodeKind, String> COLOR = new EnumMap<>(NodeKind.class);

    static {
        COLOR.put(NodeKind.EMBEDDING, "#1b9e77");
        COLOR.put(NodeKind.EMBEDDING_LM_HEAD, "#1b9e77");
        COLOR.put(NodeKind.NORM, "#e6ab02");
        COLOR.put(NodeKind.ATTENTION, "#377eb8");
        COLOR.put(NodeKind.KV_CACHE, "#e41a1c");
        COLOR.put(NodeKind.MLP, "#4daf4a");
        COLOR.put(NodeKind.ROUTER, "#ff7f00");
        COLOR.put(NodeKind.EXPERT, "#984ea3");
        COLOR.put(NodeKind.FINAL_NORM, "#a6761d");
        COLOR.put(NodeKind.LM_HEAD, "#e7298a");
    }

    static String color(NodeKind k) {
        return COLOR.get(k);
    }

    // ---- DOT ----

    public static String dot(Plan plan) {
        StringBuilder sb = new StringBuilder();
        sb.append("// k2j plan: ").append(plan.model().name()).append(" on ").append(plan.request().wafers())
                .append(" x ").append(plan.device().id()).append("\n");
        sb.append("digraph plan {\n  graph [rankdir=LR, fontname=\"Helvetica\", label=\"")
                .append(esc(title(plan))).append("\", labelloc=t];\n");
        sb.append("  node [shape=box, style=\"filled\", fontname=\"Helvetica\", fontsize=10];\n");
        sb.append("  edge [fontname=\"Helvetica\", fontsize=8];\n");
        for (int w = 0; w < plan.request().wafers(); w++) {
            Plan.Wafer wf = plan.wafers().get(w);
            sb.append(String.format(Locale.ROOT, "  subgraph cluster_wafer%d {\n    label=\"wafer %d: %.1f%% of PEs, "
                    + "%.1f%% of SRAM\";\n    style=rounded; color=\"#555555\";\n", w, w, 100 * wf.peUtilisation(),
                    100 * wf.sramUtilisation()));
            for (Plan.Node n : plan.nodes()) {
                if (n.wafer() != w) {
                    continue;
                }
                sb.append(String.format(Locale.ROOT, "    \"%s\" [label=\"%s\\n%dx%d PEs\\n%.1f KB/PE, %.0f cyc\", "
                                + "fillcolor=\"%s\"%s];\n", esc(n.id()), esc(n.id()), n.rect().rows(), n.rect().cols(),
                        n.sram().totalPerPe() / 1024.0, n.decode().total(), fill(n), n.model().equals("draft")
                                ? ", style=\"filled,dashed\"" : ""));
            }
            sb.append("  }\n");
        }
        for (Plan.Edge e : plan.edges()) {
            sb.append(String.format(Locale.ROOT, "  \"%s\" -> \"%s\" [label=\"%s, %d hop%s\"%s];\n", esc(e.from()),
                    esc(e.to()), bytes(e.bytesPerToken()), e.hops(), e.hops() == 1 ? "" : "s",
                    e.interWafer() ? ", style=bold, color=\"#d95f02\"" : ""));
        }
        sb.append("}\n");
        return sb.toString();
    }

    private static String fill(Plan.Node n) {
        return n.model().equals("draft") ? lighten(color(n.kind()), 0.45) : lighten(color(n.kind()), 0.25);
    }

    // ---- SVG ----

    private static final double WAFER_WIDTH_PX = 560;
    private static final double GAP_PX = 90;
    private static final double TOP_PX = 96;
    private static final double LEGEND_PX = 150;
    private static final double MIN_WIDTH_PX = 1040; // room for the title and the legend
    private static final double TIMELINE_PX = 150;

    public static String svg(Plan plan) {
        int cols = (int) plan.device().parameters().get("peCols").value();
        int rows = (int) plan.device().parameters().get("peRows").value();
        int n = plan.request().wafers();
        double s = WAFER_WIDTH_PX / cols;
        double waferH = rows * s;
        double width = Math.max(MIN_WIDTH_PX, 40 + n * WAFER_WIDTH_PX + (n - 1) * GAP_PX + 40);
        double height = TOP_PX + waferH + 60 + LEGEND_PX + TIMELINE_PX;
        StringBuilder sb = new StringBuilder();
        sb.append("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        sb.append(String.format(Locale.ROOT, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                + "viewBox=\"0 0 %.0f %.0f\" font-family=\"Helvetica, Arial, sans-serif\">\n", width, height, width,
                height));
        sb.append("  <title>").append(xml(title(plan))).append("</title>\n");
        sb.append("  <rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
        sb.append("  <text x=\"40\" y=\"30\" font-size=\"18\" font-weight=\"bold\">").append(xml(title(plan)))
                .append("</text>\n");
        Plan.Performance p = plan.performance();
        String shape = plan.shapes().usesMesh()
                ? String.format(Locale.ROOT, "%s: %dx%d-PE layer meshes, %d per wafer (layers stacked in a mesh)",
                plan.shapes().mapping(), plan.shapes().mesh().rows(), plan.shapes().mesh().cols(),
                plan.shapes().mesh().tilesDown() * plan.shapes().mesh().tilesAcross())
                : String.format(Locale.ROOT, "layer pipeline: block %dx%d PEs (attn %d | kv %d | mlp %d cols)",
                plan.shapes().target().rows(), plan.shapes().target().width(), plan.shapes().target().attnCols(),
                plan.shapes().target().kvCols(), plan.shapes().target().mlpCols());
        String line2 = String.format(Locale.ROOT, "decode %.0f tok/s per sequence%s, prefill %.0f tok/s; %s",
                p.decodeTokensPerSecond(), p.speculative() == null ? "" : String.format(Locale.ROOT,
                        " (%.0f with %s, k=%d)", p.speculative().tokensPerSecond(), p.speculative().draftModel(),
                        p.speculative().k()), p.prefillTokensPerSecond(), shape);
        sb.append("  <text x=\"40\" y=\"54\" font-size=\"13\">").append(xml(line2)).append("</text>\n");
        sb.append("  <text x=\"40\" y=\"74\" font-size=\"12\" fill=\"#444444\">")
                .append(xml("bottleneck: " + p.decodeBottleneck())).append("</text>\n");
        for (int w = 0; w < n; w++) {
            double x0 = 40 + w * (WAFER_WIDTH_PX + GAP_PX);
            Plan.Wafer wf = plan.wafers().get(w);
            sb.append(String.format(Locale.ROOT, "  <g id=\"wafer%d\">\n", w));
            sb.append(String.format(Locale.ROOT, "    <text x=\"%.1f\" y=\"%.1f\" font-size=\"12\">wafer %d: %d x %d PEs, "
                            + "%.1f%% used, SRAM %.1f%%</text>\n", x0, TOP_PX - 6, w, rows, cols,
                    100 * wf.peUtilisation(), 100 * wf.sramUtilisation()));
            sb.append(String.format(Locale.ROOT, "    <rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                    + "fill=\"#f4f4f4\" stroke=\"#333333\" stroke-width=\"1\"/>\n", x0, TOP_PX, WAFER_WIDTH_PX, waferH));
            Map<String, List<Plan.Node>> stacks = new java.util.LinkedHashMap<>();
            for (Plan.Node node : plan.nodes()) {
                if (node.wafer() == w && plan.shapes().usesMesh()) {
                    stacks.computeIfAbsent(node.model() + ":" + node.rect(), k -> new java.util.ArrayList<>()).add(node);
                }
            }
            for (List<Plan.Node> stack : stacks.values()) {
                stackedRect(sb, stack, x0, s);
            }
            for (Plan.Node node : plan.nodes()) {
                if (node.wafer() != w || plan.shapes().usesMesh()) {
                    continue;
                }
                Plan.Rect r = node.rect();
                String fillColor = node.layer() != null && node.layer() % 2 == 1
                        ? lighten(color(node.kind()), node.model().equals("draft") ? 0.55 : 0.3)
                        : lighten(color(node.kind()), node.model().equals("draft") ? 0.45 : 0.1);
                sb.append(String.format(Locale.ROOT, "    <rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                                + "fill=\"%s\" stroke=\"#222222\" stroke-width=\"0.3\"%s><title>%s</title></rect>\n",
                        x0 + r.col() * s, TOP_PX + r.row() * s, r.cols() * s, r.rows() * s, fillColor,
                        node.model().equals("draft") ? " stroke-dasharray=\"2,1\"" : "", xml(tooltip(node))));
                String label = label(node);
                double fontPx = Math.min(9, r.rows() * s * 0.6);
                if (r.cols() * s > label.length() * fontPx * 0.6 && fontPx >= 4) {
                    sb.append(String.format(Locale.ROOT, "    <text x=\"%.2f\" y=\"%.2f\" font-size=\"%.1f\" "
                                    + "text-anchor=\"middle\" dominant-baseline=\"middle\" fill=\"#111111\">%s</text>\n",
                            x0 + (r.col() + r.cols() / 2.0) * s, TOP_PX + (r.row() + r.rows() / 2.0) * s, fontPx,
                            xml(label)));
                }
            }
            sb.append("  </g>\n");
        }
        sb.append("  <g id=\"routes\" fill=\"none\">\n");
        for (Plan.Edge e : plan.edges()) {
            List<Plan.Point> route = e.route();
            StringBuilder pts = new StringBuilder();
            for (int i = 0; i < route.size(); i++) {
                Plan.Point pt = route.get(i);
                double x = 40 + pt.wafer() * (WAFER_WIDTH_PX + GAP_PX) + (pt.col() + 0.5) * s;
                double y = TOP_PX + (pt.row() + 0.5) * s;
                if (i > 0 && route.get(i - 1).wafer() != pt.wafer()) {
                    sb.append(String.format(Locale.ROOT, "    <polyline points=\"%s\" stroke=\"#333333\" "
                            + "stroke-width=\"0.8\" stroke-opacity=\"0.7\"/>\n", pts.toString().trim()));
                    Plan.Point prev = route.get(i - 1);
                    double px = 40 + prev.wafer() * (WAFER_WIDTH_PX + GAP_PX) + (prev.col() + 0.5) * s;
                    double py = TOP_PX + (prev.row() + 0.5) * s;
                    String d;
                    if (pt.wafer() > prev.wafer()) {   // forward: arc over the gap between the wafers
                        d = String.format(Locale.ROOT, "M %.1f %.1f C %.1f %.1f, %.1f %.1f, %.1f %.1f", px, py,
                                px + GAP_PX * 0.6, py, x - GAP_PX * 0.6, y, x, y);
                    } else {                           // back to an earlier wafer: loop under the wafers
                        double below = TOP_PX + waferH + 18;
                        d = String.format(Locale.ROOT, "M %.1f %.1f C %.1f %.1f, %.1f %.1f, %.1f %.1f", px, py,
                                px + GAP_PX * 0.5, below + 40, x - GAP_PX * 0.5, below + 40, x, y);
                    }
                    sb.append(String.format(Locale.ROOT, "    <path d=\"%s\" stroke=\"#d95f02\" stroke-width=\"2\" "
                            + "stroke-dasharray=\"6,3\"><title>%s</title></path>%n", d, xml(e.from() + " -> " + e.to()
                            + ": " + bytes(e.bytesPerToken()) + "/token over the wafer-to-wafer link")));
                    pts.setLength(0);
                }
                pts.append(String.format(Locale.ROOT, "%.1f,%.1f ", x, y));
            }
            if (route.size() > 1 && pts.toString().trim().contains(" ")) {
                sb.append(String.format(Locale.ROOT, "    <polyline points=\"%s\" stroke=\"#333333\" "
                        + "stroke-width=\"0.8\" stroke-opacity=\"0.7\"><title>%s</title></polyline>\n",
                        pts.toString().trim(), xml(e.from() + " -> " + e.to() + ": " + bytes(e.bytesPerToken())
                                + "/token, " + e.hops() + " hops, " + e.links() + " links")));
            }
        }
        sb.append("  </g>\n");
        legend(sb, plan, TOP_PX + waferH + 60);
        timeline(sb, plan, TOP_PX + waferH + 60 + LEGEND_PX, width - 80);
        sb.append("</svg>\n");
        return sb.toString();
    }

    private static void legend(StringBuilder sb, Plan plan, double y0) {
        Set<NodeKind> present = EnumSet.noneOf(NodeKind.class);
        boolean draft = false;
        for (Plan.Node n : plan.nodes()) {
            present.add(n.kind());
            draft |= n.model().equals("draft");
        }
        sb.append("  <g id=\"legend\" font-size=\"12\">\n");
        sb.append(String.format(Locale.ROOT, "    <text x=\"40\" y=\"%.1f\" font-weight=\"bold\">legend</text>\n", y0));
        int i = 0;
        for (NodeKind k : present) {
            double x = 40 + (i % 4) * 230;
            double y = y0 + 18 + (i / 4) * 22;
            sb.append(String.format(Locale.ROOT, "    <rect x=\"%.1f\" y=\"%.1f\" width=\"16\" height=\"12\" fill=\"%s\" "
                    + "stroke=\"#222222\" stroke-width=\"0.5\"/>\n", x, y - 10, lighten(color(k), 0.1)));
            sb.append(String.format(Locale.ROOT, "    <text x=\"%.1f\" y=\"%.1f\">%s</text>\n", x + 22, y,
                    xml(describe(k))));
            i++;
        }
        double y = y0 + 18 + ((i + 3) / 4) * 22;
        sb.append(String.format(Locale.ROOT, "    <line x1=\"40\" y1=\"%.1f\" x2=\"60\" y2=\"%.1f\" stroke=\"#333333\"/>"
                + "<text x=\"66\" y=\"%.1f\">activation stream (route)</text>\n", y - 4, y - 4, y));
        sb.append(String.format(Locale.ROOT, "    <line x1=\"270\" y1=\"%.1f\" x2=\"290\" y2=\"%.1f\" stroke=\"#d95f02\" "
                + "stroke-width=\"2\" stroke-dasharray=\"6,3\"/><text x=\"296\" y=\"%.1f\">wafer-to-wafer link</text>\n",
                y - 4, y - 4, y));
        sb.append(String.format(Locale.ROOT, "    <text x=\"500\" y=\"%.1f\">lighter shade: odd layers%s</text>\n", y,
                draft ? "; dashed outline, pale: draft model" : ""));
        sb.append("  </g>\n");
    }

    /**
     * One mesh (a rectangle holding several stacked partitions): drawn once, its title listing what it holds. Colour:
     * attention's for target layer meshes, the kind's for meshes that hold one kind of partition.
     */
    private static void stackedRect(StringBuilder sb, List<Plan.Node> stack, double x0, double s) {
        Plan.Rect r = stack.get(0).rect();
        boolean draft = stack.get(0).model().equals("draft");
        int lo = Integer.MAX_VALUE;
        int hi = -1;
        Set<NodeKind> kinds = EnumSet.noneOf(NodeKind.class);
        long weights = 0;
        long kv = 0;
        double cycles = 0;
        for (Plan.Node n : stack) {
            kinds.add(n.kind());
            if (n.layer() != null) {
                lo = Math.min(lo, n.layer());
                hi = Math.max(hi, n.layer());
            }
            weights += n.sram().weightsPerPe();
            kv += n.sram().kvPerPe();
            cycles += n.decode().total();
        }
        NodeKind main = kinds.contains(NodeKind.ATTENTION) ? NodeKind.ATTENTION : kinds.iterator().next();
        String layers = hi < 0 ? "" : lo == hi ? "L" + lo : "L" + lo + "-" + hi;
        String title = String.format(Locale.ROOT, "%s%s mesh %dx%d PEs at (%d,%d): %s stacked (%s); %.1f KB/PE of "
                        + "weights, %.1f KB/PE of KV cache; %.0f decode cycles/token", draft ? "draft " : "", layers,
                r.rows(), r.cols(), r.row(), r.col(), stack.size() + " partitions", kindsText(kinds),
                weights / 1024.0, kv / 1024.0, cycles);
        sb.append(String.format(Locale.ROOT, "    <rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                        + "fill=\"%s\" fill-opacity=\"%s\" stroke=\"#222222\" stroke-width=\"0.6\"%s><title>%s</title>"
                        + "</rect>\n", x0 + r.col() * s, TOP_PX + r.row() * s, r.cols() * s, r.rows() * s,
                lighten(color(main), draft ? 0.5 : (lo % 2 == 1 ? 0.3 : 0.1)), draft ? "0.7" : "1",
                draft ? " stroke-dasharray=\"3,2\"" : "", xml(title)));
        String label = (draft ? "draft " : "") + (layers.isEmpty() ? kindsText(kinds) : layers);
        double fontPx = Math.min(11, r.rows() * s * 0.3);
        if (fontPx >= 4 && r.cols() * s > label.length() * fontPx * 0.6) {
            sb.append(String.format(Locale.ROOT, "    <text x=\"%.2f\" y=\"%.2f\" font-size=\"%.1f\" "
                            + "text-anchor=\"middle\" dominant-baseline=\"middle\" fill=\"#111111\">%s</text>\n",
                    x0 + (r.col() + r.cols() / 2.0) * s, TOP_PX + (r.row() + (draft ? 0.75 : 0.5) * r.rows()) * s,
                    fontPx, xml(label)));
        }
    }

    private static String kindsText(Set<NodeKind> kinds) {
        StringBuilder sb = new StringBuilder();
        for (NodeKind k : kinds) {
            sb.append(sb.length() == 0 ? "" : ", ").append(describe(k));
        }
        return sb.toString();
    }

    static final String[] CAUSES = {"compute", "link bandwidth", "hops", "collective steps", "wafer-to-wafer"};
    static final String[] CAUSE_COLORS = {"#4daf4a", "#377eb8", "#ff7f00", "#984ea3", "#d95f02"};

    /**
     * A decode token's timeline: the target's partitions and streams in the order the token visits them, grouped
     * by layer, each group a span of its cycles split by cause (compute, link bandwidth, hops, collective steps,
     * wafer-to-wafer), with a cycle axis in microseconds.
     */
    private static void timeline(StringBuilder sb, Plan plan, double y0, double width) {
        Map<String, Plan.Node> byId = new java.util.HashMap<>();
        for (Plan.Node n : plan.nodes()) {
            byId.put(n.id(), n);
        }
        Map<String, double[]> groups = new java.util.LinkedHashMap<>();
        Set<String> seen = new java.util.HashSet<>();
        for (Plan.Edge e : plan.edges()) {
            if (e.from().startsWith("draft.")) {
                continue;
            }
            for (String id : new String[] {e.from(), e.to()}) {
                Plan.Node n = byId.get(id);
                if (n != null && seen.add(id)) {
                    add(groups, group(n), n.decode());
                }
            }
            Plan.Node from = byId.get(e.from());
            add(groups, from == null ? "streams" : group(from), e.decode());
        }
        double total = 0;
        double[] byCause = new double[CAUSES.length];
        for (double[] g : groups.values()) {
            for (int i = 0; i < byCause.length; i++) {
                byCause[i] += g[i];
                total += g[i];
            }
        }
        if (total <= 0) {
            return;
        }
        double clock = plan.device().parameters().get("clockHz").value();
        sb.append("  <g id=\"timeline\" font-size=\"11\">\n");
        StringBuilder head = new StringBuilder(String.format(Locale.ROOT,
                "per-token timeline: %,.0f cycles = %.1f us; ", total, total / clock * 1e6));
        for (int i = 0; i < CAUSES.length; i++) {
            head.append(String.format(Locale.ROOT, "%s%s %.0f%%", i == 0 ? "" : ", ", CAUSES[i],
                    100 * byCause[i] / total));
        }
        sb.append(String.format(Locale.ROOT, "    <text x=\"40\" y=\"%.1f\" font-weight=\"bold\">%s</text>\n", y0,
                xml(head.toString())));
        double barY = y0 + 14;
        double barH = 34;
        double x = 40;
        double scale = width / total;
        int k = 0;
        for (Map.Entry<String, double[]> g : groups.entrySet()) {
            double[] v = g.getValue();
            double span = 0;
            for (double c : v) {
                span += c;
            }
            double gx = x;
            for (int i = 0; i < CAUSES.length; i++) {
                if (v[i] <= 0) {
                    continue;
                }
                sb.append(String.format(Locale.ROOT, "    <rect x=\"%.2f\" y=\"%.1f\" width=\"%.3f\" height=\"%.1f\" "
                        + "fill=\"%s\"><title>%s</title></rect>\n", gx, barY, v[i] * scale, barH, CAUSE_COLORS[i],
                        xml(String.format(Locale.ROOT, "%s: %s %,.0f cycles", g.getKey(), CAUSES[i], v[i]))));
                gx += v[i] * scale;
            }
            // group boundary and, where there is room, its name
            sb.append(String.format(Locale.ROOT, "    <line x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\" "
                    + "stroke=\"#ffffff\" stroke-width=\"0.6\"/>\n", x, barY, x, barY + barH));
            if (span * scale > 7 * g.getKey().length() || (k == 0 && span * scale > 20)) {
                sb.append(String.format(Locale.ROOT, "    <text x=\"%.2f\" y=\"%.1f\" font-size=\"9\">%s</text>\n",
                        x + 1, barY + barH + 11, xml(g.getKey())));
            }
            x += span * scale;
            k++;
        }
        for (int t = 0; t <= 4; t++) {
            double cx = 40 + width * t / 4;
            sb.append(String.format(Locale.ROOT, "    <line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                    + "stroke=\"#333333\"/><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.1f us</text>\n",
                    cx, barY + barH + 14, cx, barY + barH + 20, cx, barY + barH + 32, total * t / 4 / clock * 1e6));
        }
        for (int i = 0; i < CAUSES.length; i++) {
            double lx = 40 + i * 170;
            sb.append(String.format(Locale.ROOT, "    <rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"10\" "
                    + "fill=\"%s\"/><text x=\"%.1f\" y=\"%.1f\">%s</text>\n", lx, barY + barH + 44,
                    CAUSE_COLORS[i], lx + 18, barY + barH + 53, xml(CAUSES[i])));
        }
        sb.append("  </g>\n");
    }

    private static String group(Plan.Node n) {
        return n.layer() != null ? "L" + n.layer() : n.kind() == NodeKind.FINAL_NORM || n.kind() == NodeKind.LM_HEAD
                ? "head" : "embed";
    }

    private static void add(Map<String, double[]> groups, String key, Plan.CycleBreakdown c) {
        double[] g = groups.computeIfAbsent(key, x -> new double[CAUSES.length]);
        g[0] += c.compute();
        g[1] += c.bandwidth();
        g[2] += c.hops();
        g[3] += c.steps();
        g[4] += c.interWafer();
    }

    static String describe(NodeKind k) {
        return switch (k) {
            case EMBEDDING -> "embedding table";
            case EMBEDDING_LM_HEAD -> "tied embedding + output head";
            case NORM -> "RMSNorm strip";
            case ATTENTION -> "attention q/k/v/o";
            case KV_CACHE -> "KV cache + attention scores";
            case MLP -> "MLP gate/up/down";
            case ROUTER -> "MoE router";
            case EXPERT -> "MoE expert";
            case FINAL_NORM -> "final RMSNorm";
            case LM_HEAD -> "output head (logits, argmax)";
        };
    }

    private static String label(Plan.Node n) {
        String id = n.id().startsWith("draft.") ? "d." + n.id().substring(6) : n.id();
        return switch (n.kind()) {
            case NORM -> "";
            default -> id;
        };
    }

    private static String tooltip(Plan.Node n) {
        return String.format(Locale.ROOT, "%s (%s): %dx%d PEs at (%d,%d); %.1f KB/PE (weights %.1f, KV %.1f); "
                        + "%.0f decode cycles/token", n.id(), describe(n.kind()), n.rect().rows(), n.rect().cols(),
                n.rect().row(), n.rect().col(), n.sram().totalPerPe() / 1024.0, n.sram().weightsPerPe() / 1024.0,
                n.sram().kvPerPe() / 1024.0, n.decode().total());
    }

    static String title(Plan plan) {
        return String.format(Locale.ROOT, "%s%s on %d x %s, %s, ctx %d, batch %d", plan.model().name(),
                plan.draft() == null ? "" : " + draft " + plan.draft().name(), plan.request().wafers(),
                plan.device().id(), plan.request().dtype(), plan.request().ctx(), plan.request().batch());
    }

    static String bytes(double b) {
        if (b >= 1 << 20) {
            return String.format(Locale.ROOT, "%.1f MiB", b / (1 << 20));
        }
        if (b >= 1024) {
            return String.format(Locale.ROOT, "%.1f KiB", b / 1024);
        }
        return String.format(Locale.ROOT, "%.0f B", b);
    }

    private static String lighten(String hex, double f) {
        int r = Integer.parseInt(hex.substring(1, 3), 16);
        int g = Integer.parseInt(hex.substring(3, 5), 16);
        int b = Integer.parseInt(hex.substring(5, 7), 16);
        r = (int) Math.round(r + (255 - r) * f);
        g = (int) Math.round(g + (255 - g) * f);
        b = (int) Math.round(b + (255 - b) * f);
        return String.format(Locale.ROOT, "#%02x%02x%02x", r, g, b);
    }

    private static String esc(String s) {
        return s.replace("\\", "\\\\").replace("\"", "\\\"");
    }

    private static String xml(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }
}
