package ai.k2j.plan;

/**
 * The analytic per-token cost of the operations a partition runs, in PE clock cycles, after WaferLLM's mesh
 * GEMV (OSDI'25) and Luczynski et al.'s wafer-scale collective model (HPDC'24). docs/wafer-plan.md derives
 * each formula; in short, with {@code s} the calibrated cost of a dependent step, {@code h} cycles per hop and
 * {@code m} the payload in 32-bit wavelets:
 * <ul>
 *   <li>K-tree reduce over a line of n PEs: {@code min over K of K*m + (n-1)*h + K*(n^(1/K) - 1)*s}</li>
 *   <li>broadcast (fabric multicast): {@code m + (n-1)*h + s}</li>
 *   <li>local GEMV tile: {@code ceil(K/kSplit) * ceil(N/nSplit) * tokens / (fmac * efficiency)}</li>
 *   <li>stream between partitions: {@code m / links + hops*h + s}</li>
 * </ul>
 */
final class CostModel {
    static final int WAVELET_BYTES = 4;
    static final int ACT_BYTES = 2;

    final DeviceSpec device;
    final Calibration cal;
    final double fmac;      // sustained FMAC per cycle per PE
    final double hop;       // cycles per hop
    final double step;      // cycles per dependent step

    CostModel(DeviceSpec device, Calibration cal) {
        this.device = device;
        this.cal = cal;
        this.fmac = device.fmacPerCycle16() * cal.computeEfficiency();
        this.hop = device.hopLatencyCycles();
        this.step = cal.stepCycles();
    }

    /** Cycles split by cause, so the plan can say where the time goes. */
    static final class Cycles {
        double compute;    // SIMD work on local SRAM
        double bandwidth;  // wavelets serialised on fabric links
        double hops;       // distance travelled
        double steps;      // dependent steps (router turn-around, task activation, synchronisation)
        double interWafer; // wafer-to-wafer transfers (latency + bytes / bandwidth), in cycles
        double streaming;  // weights streamed in from outside the wafer, in cycles

        double total() {
            return compute + bandwidth + hops + steps + interWafer + streaming;
        }

        Cycles add(Cycles o) {
            compute += o.compute;
            bandwidth += o.bandwidth;
            hops += o.hops;
            steps += o.steps;
            interWafer += o.interWafer;
            streaming += o.streaming;
            return this;
        }

        Cycles scale(double f) {
            compute *= f;
            bandwidth *= f;
            hops *= f;
            steps *= f;
            interWafer *= f;
            streaming *= f;
            return this;
        }

        Cycles copy() {
            return new Cycles().add(this);
        }
    }

    static long ceilDiv(long a, long b) {
        return (a + b - 1) / b;
    }

    /** Wavelets to carry {@code elements} values of {@code bytes} each. */
    static double wavelets(double elements, int bytes) {
        return Math.ceil(elements * bytes / WAVELET_BYTES);
    }

    /**
     * The K-tree that reduces m wavelets over a line of n PEs fastest: {@code {K, g}}, K levels of groups of g
     * consecutive PEs (the last level takes what is left). {@link PlanExecutor} sums partials in this order.
     */
    static int[] bestTree(int n, double m, double hop, double step) {
        double best = Double.MAX_VALUE;
        int bestK = 1;
        int bestG = n;
        for (int k = 1; k <= 4; k++) {
            double g = Math.ceil(Math.pow(n, 1.0 / k) - 1e-9);
            double t = k * m + (n - 1) * hop + k * (g - 1) * step;
            if (t < best - 1e-9) {
                best = t;
                bestK = k;
                bestG = (int) g;
            }
        }
        return new int[] {bestK, bestG};
    }

    /** Reduce a vector of m wavelets held by each of n PEs in a line onto one end, by the best K-tree. */
    void reduce(Cycles c, int n, double m) {
        if (n <= 1) {
            return;
        }
        int[] tree = bestTree(n, m, hop, step);
        c.bandwidth += tree[0] * m;
        c.hops += (n - 1) * hop;
        c.steps += tree[0] * (tree[1] - 1) * step;
    }

    /** Multicast m wavelets from one end of a line of n PEs to all of them. */
    void broadcast(Cycles c, int n, double m) {
        if (n <= 1) {
            return;
        }
        c.bandwidth += m;
        c.hops += (n - 1) * hop;
        c.steps += step;
    }

    void allreduce(Cycles c, int n, double m) {
        reduce(c, n, m);
        broadcast(c, n, m);
    }

    /** Element-wise work of {@code elements} values per PE. */
    void elementwise(Cycles c, double elements) {
        c.compute += elements / fmac;
    }

    /**
     * Mesh GEMV of a K x N matrix whose K dimension is split over {@code kSplit} PEs and N over {@code nSplit},
     * for {@code tokens} input vectors. With {@code multicastInput} the input slice first streams along the
     * N-split dimension (overlapping the local compute); the partial sums are then reduced (or all-reduced)
     * along the K-split dimension.
     */
    void gemv(Cycles c, long k, long n, int kSplit, int nSplit, int tokens, boolean multicastInput,
              boolean allreduce) {
        double kSlice = ceilDiv(k, kSplit);
        double nSlice = ceilDiv(n, nSplit);
        double local = kSlice * nSlice * tokens / fmac;
        c.compute += local;
        if (multicastInput && nSplit > 1) {
            double m = wavelets(kSlice * tokens, ACT_BYTES);
            c.bandwidth += Math.max(0, m - local);
            c.hops += (nSplit - 1) * hop;
            c.steps += step;
        }
        double m = wavelets(nSlice * tokens, cal.partialSumBytes());
        if (allreduce) {
            allreduce(c, kSplit, m);
        } else {
            reduce(c, kSplit, m);
        }
    }

    /**
     * Qwen3's per-head RMSNorm of q and k after the q/k/v MeshGEMV, whose {@code q + 2 kv} outputs are split over
     * {@code nSplit} PEs: squares, scale and gain locally, and an all-reduce of each head's sum of squares over
     * the PEs its {@code headDim} values span.
     */
    void qkNorm(Cycles c, long q, long kv, int headDim, int nSplit, int tokens) {
        long perPe = ceilDiv(q + 2 * kv, nSplit);
        elementwise(c, 3.0 * ceilDiv(q + kv, nSplit) * tokens);
        int span = (int) Math.max(1, Math.min(nSplit, ceilDiv(headDim, Math.max(1, perPe))));
        if (span > 1) {
            allreduce(c, span, wavelets(Math.max(1.0, Math.ceil((double) perPe / headDim)) * tokens, 4));
        }
    }

    /** An activation stream of {@code bytes} between partitions over {@code links} parallel links, {@code hops} long. */
    void stream(Cycles c, double bytes, int links, int hops) {
        c.bandwidth += Math.ceil(wavelets(bytes / ACT_BYTES, ACT_BYTES) / Math.max(1, links));
        c.hops += hops * hop;
        c.steps += step;
    }

    /** A wafer-to-wafer transfer: the link's latency plus bytes over its bandwidth, in cycles. */
    void interWafer(Cycles c, double bytes) {
        double seconds = device.interWaferLatencySeconds() + bytes / device.interWaferBandwidthBytesPerSecond();
        c.interWafer += seconds * device.clockHz();
    }
}
