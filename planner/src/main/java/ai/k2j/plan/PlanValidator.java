package ai.k2j.plan;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * Checks a plan's legality from the plan document alone (it does not trust the planner): every partition
 * placed, rectangles inside the grid and disjoint, SRAM per PE within capacity, routes connected and within
 * link bandwidth and routing colors, and enough wafers for every weight to be resident.
 */
public final class PlanValidator {
    private PlanValidator() {
    }

    /** Checks a plan against the device recorded in it. */
    public static List<Plan.Check> check(Plan plan) {
        Plan.DeviceSpecInfo d = plan.device();
        return check(plan, new DeviceSpec(d.id(), d.name(), d.parameters()));
    }

    public static List<Plan.Check> check(Plan plan, DeviceSpec dev) {
        List<Plan.Check> out = new ArrayList<>();
        int n = plan.request().wafers();
        Map<String, Plan.Node> byId = new HashMap<>();
        for (Plan.Node node : plan.nodes()) {
            byId.put(node.id(), node);
        }
        out.add(waferCount(plan, n));
        out.add(partitionsPlaced(plan, byId));
        out.add(insideGrid(plan, dev, n));
        if (plan.shapes() != null && plan.shapes().usesMesh()) {
            out.add(stackedSram(plan, dev, n));
        } else {
            out.add(disjoint(plan, n));
            out.add(sram(plan, dev));
        }
        out.add(kvCache(plan));
        out.add(routesConnected(plan, byId, dev));
        out.add(bandwidth(plan, dev));
        out.add(colors(plan, dev));
        return out;
    }

    private static Plan.Check waferCount(Plan plan, int n) {
        boolean ok = n >= 1 && plan.wafers().size() == n
                && (plan.request().wafersRequested() == null || plan.request().wafersRequested() == n);
        for (Plan.Node node : plan.nodes()) {
            ok &= node.wafer() >= 0 && node.wafer() < n;
        }
        return new Plan.Check("wafer count", ok, n + " wafer(s); every partition on one of them");
    }

    /** Every layer's five partitions and both model ends exist, and the weights they hold are the model's. */
    private static Plan.Check partitionsPlaced(Plan plan, Map<String, Plan.Node> byId) {
        List<String> missing = new ArrayList<>();
        String detail = "";
        boolean ok = true;
        for (Plan.ModelInfo m : plan.draft() == null ? List.of(plan.model()) : List.of(plan.model(), plan.draft())) {
            String pre = m == plan.model() ? "" : "draft.";
            String role = m == plan.model() ? "target" : "draft";
            for (int l = 0; l < m.layers(); l++) {
                for (String part : List.of("norm1", "attn", "kv", "norm2", "mlp")) {
                    String id = pre + "L" + l + "." + part;
                    // an MoE layer has a router (and expert partitions) where a dense layer has its MLP
                    if (!byId.containsKey(id) && !(part.equals("mlp") && byId.containsKey(pre + "L" + l + ".router"))) {
                        missing.add(id);
                    }
                }
            }
            List<String> ends = m.tiedEmbeddings() ? List.of("embed_lm_head", "final_norm")
                    : List.of("embed", "final_norm", "lm_head");
            for (String e : ends) {
                if (!byId.containsKey(pre + e)) {
                    missing.add(pre + e);
                }
            }
            long weights = 0;
            long count = 0;
            for (Plan.Node node : plan.nodes()) {
                if (node.model().equals(role)) {
                    weights += node.weightBytes();
                    count++;
                }
            }
            long diff = Math.abs(weights - m.weightBytes());
            if (diff > count + 1) {
                ok = false;
                detail += String.format(Locale.ROOT, " %s: partitions hold %d weight bytes, model has %d;", m.name(),
                        weights, m.weightBytes());
            }
        }
        ok &= missing.isEmpty();
        if (!missing.isEmpty()) {
            detail += " missing " + (missing.size() > 5 ? missing.subList(0, 5) + "..." : missing);
        }
        return new Plan.Check("all weights resident", ok, ok
                ? "every layer's norm/attention/KV/MLP partitions and the embedding and head are placed; "
                + "their weights add up to the model's" : detail.trim());
    }

    private static Plan.Check insideGrid(Plan plan, DeviceSpec dev, int n) {
        for (Plan.Node node : plan.nodes()) {
            Plan.Rect r = node.rect();
            if (r.rows() < 1 || r.cols() < 1 || r.row() < 0 || r.col() < 0 || r.row() + r.rows() > dev.peRows()
                    || r.col() + r.cols() > dev.peCols() || node.pes() != r.pes()) {
                return new Plan.Check("rectangles inside the grid", false, node.id() + " at " + r + " on a "
                        + dev.peRows() + "x" + dev.peCols() + " grid");
            }
        }
        return new Plan.Check("rectangles inside the grid", true, "all within " + dev.peRows() + " x "
                + dev.peCols() + " PEs");
    }

    private static Plan.Check disjoint(Plan plan, int n) {
        List<List<Plan.Node>> perWafer = new ArrayList<>();
        for (int w = 0; w < n; w++) {
            perWafer.add(new ArrayList<>());
        }
        for (Plan.Node node : plan.nodes()) {
            if (node.wafer() >= 0 && node.wafer() < n) {
                perWafer.get(node.wafer()).add(node);
            }
        }
        for (List<Plan.Node> list : perWafer) {
            list.sort((a, b) -> Integer.compare(a.rect().row(), b.rect().row()));
            for (int i = 0; i < list.size(); i++) {
                Plan.Rect a = list.get(i).rect();
                for (int j = i + 1; j < list.size(); j++) {
                    Plan.Rect b = list.get(j).rect();
                    if (b.row() >= a.row() + a.rows()) {
                        break;
                    }
                    if (a.overlaps(b)) {
                        return new Plan.Check("rectangles disjoint", false, list.get(i).id() + " overlaps "
                                + list.get(j).id());
                    }
                }
            }
        }
        return new Plan.Check("rectangles disjoint", true, "no two partitions share a PE");
    }

    private static Plan.Check sram(Plan plan, DeviceSpec dev) {
        long worst = 0;
        String worstId = "";
        for (Plan.Node node : plan.nodes()) {
            Plan.Sram s = node.sram();
            long sum = s.reservedPerPe() + s.weightsPerPe() + s.kvPerPe() + s.activationsPerPe();
            if (sum != s.totalPerPe() || s.capacityPerPe() != dev.sramPerPeBytes()
                    || s.reservedPerPe() != dev.reservedBytesPerPe()) {
                return new Plan.Check("SRAM per PE", false, node.id() + ": SRAM parts do not add up or disagree "
                        + "with the device");
            }
            if (s.totalPerPe() > worst) {
                worst = s.totalPerPe();
                worstId = node.id();
            }
        }
        boolean ok = worst <= dev.sramPerPeBytes();
        return new Plan.Check("SRAM per PE", ok, String.format(Locale.ROOT,
                "fullest PE %,d B of %,d B (%s): weights + KV cache + activation buffers + %,d B reserved", worst,
                dev.sramPerPeBytes(), worstId, dev.reservedBytesPerPe()));
    }

    /**
     * The mesh mapping stacks every partition of a wafer on the same PEs (the layers run one after another), so the
     * fullest PE holds the weights and KV cache of all of them, one set of activation buffers (the largest) and the
     * reserved bytes. Counted per mesh: every partition whose rectangle overlaps it (tiles of one wafer are disjoint;
     * a draft's smaller mesh overlaps the first tile).
     */
    private static Plan.Check stackedSram(Plan plan, DeviceSpec dev, int n) {
        long worst = 0;
        int worstWafer = 0;
        for (Plan.Node node : plan.nodes()) {
            Plan.Sram s = node.sram();
            if (s.reservedPerPe() + s.weightsPerPe() + s.kvPerPe() + s.activationsPerPe() != s.totalPerPe()
                    || s.capacityPerPe() != dev.sramPerPeBytes() || s.reservedPerPe() != dev.reservedBytesPerPe()) {
                return new Plan.Check("SRAM per PE (stacked)", false, node.id() + ": SRAM parts do not add up "
                        + "or disagree with the device");
            }
        }
        Map<String, long[]> byRect = new HashMap<>();
        for (Plan.Node a : plan.nodes()) {
            String key = a.wafer() + ":" + a.rect();
            if (byRect.containsKey(key)) {
                continue;
            }
            long sum = dev.reservedBytesPerPe();
            long act = 0;
            for (Plan.Node b : plan.nodes()) {
                if (b.wafer() == a.wafer() && b.rect().overlaps(a.rect())) {
                    sum += b.sram().weightsPerPe() + b.sram().kvPerPe();
                    act = Math.max(act, b.sram().activationsPerPe());
                }
            }
            byRect.put(key, new long[] {sum + act});
            if (sum + act > worst) {
                worst = sum + act;
                worstWafer = a.wafer();
            }
        }
        return new Plan.Check("SRAM per PE (stacked)", worst <= dev.sramPerPeBytes(), String.format(Locale.ROOT,
                "fullest PE %,d B of %,d B (wafer %d): the weights and KV cache of every partition stacked on it, "
                        + "one set of activation buffers and %,d B reserved", worst, dev.sramPerPeBytes(), worstWafer,
                dev.reservedBytesPerPe()));
    }

    private static Plan.Check kvCache(Plan plan) {
        long want = 0;
        long have = 0;
        for (Plan.ModelInfo m : plan.draft() == null ? List.of(plan.model()) : List.of(plan.model(), plan.draft())) {
            long perToken = m.kvBytesPerTokenPerLayer() != null ? m.kvBytesPerTokenPerLayer()
                    : 2L * m.kvHeads() * m.headDim() * 2;
            want += (long) plan.request().batch() * plan.request().ctx() * perToken * m.layers();
        }
        for (Plan.Node node : plan.nodes()) {
            have += node.kvBytes();
        }
        return new Plan.Check("KV cache sized", want == have, String.format(Locale.ROOT,
                "%,d B for ctx %d x batch %d (needed %,d B)", have, plan.request().ctx(), plan.request().batch(),
                want));
    }

    private static boolean inside(Plan.Point p, Plan.Node node) {
        Plan.Rect r = node.rect();
        return p.wafer() == node.wafer() && p.row() >= r.row() && p.row() < r.row() + r.rows() && p.col() >= r.col()
                && p.col() < r.col() + r.cols();
    }

    private static Plan.Check routesConnected(Plan plan, Map<String, Plan.Node> byId, DeviceSpec dev) {
        for (Plan.Edge e : plan.edges()) {
            Plan.Node a = byId.get(e.from());
            Plan.Node b = byId.get(e.to());
            List<Plan.Point> route = e.route();
            if (a == null || b == null || route.isEmpty()) {
                return new Plan.Check("routes connected", false, e.from() + " -> " + e.to() + ": unknown endpoint "
                        + "or empty route");
            }
            if (!inside(route.get(0), a) || !inside(route.get(route.size() - 1), b)) {
                return new Plan.Check("routes connected", false, e.from() + " -> " + e.to()
                        + ": route does not start in the source and end in the destination");
            }
            int hops = 0;
            int jumps = 0;
            for (int i = 1; i < route.size(); i++) {
                Plan.Point p = route.get(i - 1);
                Plan.Point q = route.get(i);
                if (p.wafer() != q.wafer()) {
                    jumps++;
                    if (p.col() != dev.peCols() - 1 || q.col() != 0) {
                        return new Plan.Check("routes connected", false, e.from() + " -> " + e.to()
                                + ": wafer-to-wafer hop not between the east and west edges");
                    }
                    continue;
                }
                if (p.row() != q.row() && p.col() != q.col()) {
                    return new Plan.Check("routes connected", false, e.from() + " -> " + e.to()
                            + ": route segment is not along a row or column");
                }
                hops += Math.abs(p.row() - q.row()) + Math.abs(p.col() - q.col());
            }
            boolean interOk = e.interWafer() ? jumps == 1 && a.wafer() != b.wafer() : jumps == 0;
            if (!interOk || hops != e.hops()) {
                return new Plan.Check("routes connected", false, e.from() + " -> " + e.to() + ": route length "
                        + hops + " hops, edge says " + e.hops());
            }
        }
        return new Plan.Check("routes connected", true, plan.edges().size() + " streams, each a Manhattan route "
                + "from its source to its destination partition");
    }

    /** Every stream at the highest token rate of the plan (the prefill rate) fits its links. */
    private static Plan.Check bandwidth(Plan plan, DeviceSpec dev) {
        double tps = plan.performance().prefillTokensPerSecond();
        double worst = 0;
        String worstEdge = "";
        for (Plan.Edge e : plan.edges()) {
            double need = e.bytesPerToken() * tps;
            double have = e.interWafer() ? dev.interWaferBandwidthBytesPerSecond()
                    : (double) e.links() * dev.linkBytesPerCycle() * dev.clockHz();
            if (need / have > worst) {
                worst = need / have;
                worstEdge = e.from() + " -> " + e.to();
            }
        }
        return new Plan.Check("routes within fabric bandwidth", worst <= 1 + 1e-9, String.format(Locale.ROOT,
                "busiest stream %s at %.1f%% of its links at %.0f tokens/s", worstEdge, worst * 100, tps));
    }

    /** Streams that pass through or end at a PE each need a color of its router. */
    private static Plan.Check colors(Plan plan, DeviceSpec dev) {
        Map<Long, Integer> use = new HashMap<>();
        int limit = dev.routingColors() - dev.collectiveColors();
        int worst = 0;
        for (Plan.Edge e : plan.edges()) {
            Set<Long> seen = new HashSet<>();
            List<Plan.Point> route = e.route();
            for (int i = 1; i < route.size(); i++) {
                Plan.Point p = route.get(i - 1);
                Plan.Point q = route.get(i);
                if (p.wafer() != q.wafer()) {
                    continue;
                }
                int dr = Integer.signum(q.row() - p.row());
                int dc = Integer.signum(q.col() - p.col());
                int r = p.row();
                int c = p.col();
                while (true) {
                    seen.add(((long) p.wafer() << 42) | ((long) r << 21) | c);
                    if (r == q.row() && c == q.col()) {
                        break;
                    }
                    r += dr;
                    c += dc;
                }
            }
            for (Long k : seen) {
                worst = Math.max(worst, use.merge(k, 1, Integer::sum));
            }
        }
        return new Plan.Check("routing colors", worst <= limit, String.format(Locale.ROOT,
                "at most %d streams share a PE router (%d colors, %d kept for in-partition collectives)", worst,
                dev.routingColors(), dev.collectiveColors()));
    }
}
