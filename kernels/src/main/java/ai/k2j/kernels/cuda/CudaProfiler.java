package ai.k2j.kernels.cuda;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Per-op timing of an eager CudaBackend ({@link CudaBackend.Options#profile}, {@code -Dk2j.cuda.profile=true}; run with {@code -Dk2j.graphs=false}:
 * launches recorded into a graph are not timed). Every launch (and the batch-metadata upload) is bracketed by
 * two CUDA timing events and host {@code nanoTime} stamps, so one run tells, per op name:
 * device time (start→end event), GPU idle before it (previous op's end→its start: the stream starved because
 * the host had not submitted it yet), host time in {@code cuLaunchKernel}, and Java time since the previous
 * launch returned (argument checks, batch comparison, builders).
 *
 * <p>A <em>step</em> is the interval between two host reads of sampled ids / downloads (one decode token in
 * {@code DecodeLoop}): its wall time, device busy time (sum of op times) and the host-side remainder
 * (wall − busy). Medians over steps exclude the prefill step. Events come from a fixed pool; it is harvested
 * (synchronizing) when full and at every step end, so the profile itself allocates nothing per op.
 *
 * <p>Overhead: two event records and four {@code nanoTime} per launch (~2–4 µs), visible in the step wall
 * times; device times per op are unaffected.
 */
final class CudaProfiler {

    private static final int SLOTS = 8192;

    private final CudaDriver driver;
    private final long[] startEv = new long[SLOTS];
    private final long[] endEv = new long[SLOTS];
    private final Op[] slotOp = new Op[SLOTS];
    private final long[] javaNs = new long[SLOTS];
    private final long[] callNs = new long[SLOTS];
    private int used;
    private long lastReturn = -1;  // nanoTime when the previous launch returned (after its end event)
    private Op open;
    private long t0;
    private long t1;

    private final Map<String, Op> ops = new LinkedHashMap<>();

    private long stepStart = -1;
    private double stepBusyUs;
    private double stepIdleUs;
    private int stepLaunches;
    private double[] stepWall = new double[1024];
    private double[] stepBusy = new double[1024];
    private double[] stepIdle = new double[1024];
    private int[] stepOps = new int[1024];
    private int steps;

    static final class Op {
        final String name;
        long calls;
        double deviceUs;
        double idleBeforeUs;
        double launchUs;
        double javaUs;

        Op(String name) {
            this.name = name;
        }
    }

    CudaProfiler(CudaDriver driver) {
        this.driver = driver;
        for (int i = 0; i < SLOTS; i++) {
            startEv[i] = driver.eventCreate(true);
            endEv[i] = driver.eventCreate(true);
        }
    }

    /** Before submitting device work named {@code name}; pair with {@link #end()}. */
    void begin(String name) {
        if (used == SLOTS) {
            harvest();
        }
        Op op = ops.get(name);
        if (op == null) {
            op = new Op(name);
            ops.put(name, op);
        }
        open = op;
        t0 = System.nanoTime();
        driver.eventRecord(startEv[used]);
        t1 = System.nanoTime();
    }

    void end() {
        long t2 = System.nanoTime();
        driver.eventRecord(endEv[used]);
        slotOp[used] = open;
        javaNs[used] = lastReturn < 0 ? 0 : t0 - lastReturn;
        callNs[used] = t2 - t1;
        used++;
        lastReturn = System.nanoTime();
        open = null;
    }

    /** Waits for the recorded events and folds their times into the per-op totals. */
    void harvest() {
        if (used == 0) {
            return;
        }
        driver.eventSynchronize(endEv[used - 1]);
        for (int i = 0; i < used; i++) {
            Op op = slotOp[i];
            double dev = 1e3 * driver.elapsedMillis(startEv[i], endEv[i]);
            double idle = i == 0 ? 0 : Math.max(0, 1e3 * driver.elapsedMillis(endEv[i - 1], startEv[i]));
            op.calls++;
            op.deviceUs += dev;
            op.idleBeforeUs += idle;
            op.launchUs += callNs[i] / 1e3;
            op.javaUs += javaNs[i] / 1e3;
            stepBusyUs += dev;
            stepIdleUs += idle;
            stepLaunches++;
            slotOp[i] = null;
        }
        used = 0;
    }

    /** The host just read results back (ids or logits): closes the current step. */
    void stepEnd() {
        harvest();
        long now = System.nanoTime();
        if (stepStart >= 0) {
            if (steps == stepWall.length) {
                int n = 2 * steps;
                stepWall = Arrays.copyOf(stepWall, n);
                stepBusy = Arrays.copyOf(stepBusy, n);
                stepIdle = Arrays.copyOf(stepIdle, n);
                stepOps = Arrays.copyOf(stepOps, n);
            }
            stepWall[steps] = (now - stepStart) / 1e3;
            stepBusy[steps] = stepBusyUs;
            stepIdle[steps] = stepIdleUs;
            stepOps[steps] = stepLaunches;
            steps++;
        }
        stepStart = now;
        stepBusyUs = 0;
        stepIdleUs = 0;
        stepLaunches = 0;
        lastReturn = -1;
    }

    void reset() {
        harvest();
        ops.clear();
        steps = 0;
        stepStart = -1;
        stepBusyUs = 0;
        stepIdleUs = 0;
        stepLaunches = 0;
        lastReturn = -1;
    }

    boolean isEmpty() {
        return ops.isEmpty();
    }

    String report() {
        harvest();
        StringBuilder sb = new StringBuilder();
        double wallSum = 0;
        for (int i = 0; i < steps; i++) {
            wallSum += stepWall[i];
        }
        double devSum = 0;
        List<Op> list = new ArrayList<>(ops.values());
        for (Op op : list) {
            devSum += op.deviceUs;
        }
        list.sort((a, b) -> Double.compare(b.deviceUs, a.deviceUs));
        sb.append(String.format(Locale.ROOT, "k2j CUDA profile: %d steps (host reads), %.0f µs wall in steps, %.0f µs"
                + " device busy in all ops%n", steps, wallSum, devSum));
        sb.append(String.format(Locale.ROOT, "%-22s %8s %12s %9s %7s %7s %9s %9s %9s%n", "op", "calls", "device µs",
                "µs/call", "%dev", "%wall", "idle/call", "launch/c", "java/call"));
        for (Op op : list) {
            sb.append(String.format(Locale.ROOT, "%-22s %8d %12.0f %9.2f %6.1f%% %6.1f%% %9.2f %9.2f %9.2f%n",
                    op.name, op.calls, op.deviceUs, op.deviceUs / op.calls, 100 * op.deviceUs / Math.max(devSum, 1e-9),
                    100 * op.deviceUs / Math.max(wallSum, 1e-9), op.idleBeforeUs / op.calls, op.launchUs / op.calls,
                    op.javaUs / op.calls));
        }
        if (steps > 0) {
            double[] wall = Arrays.copyOf(stepWall, steps);
            double[] busy = Arrays.copyOf(stepBusy, steps);
            double[] idle = Arrays.copyOf(stepIdle, steps);
            double[] host = new double[steps];
            double[] launches = new double[steps];
            for (int i = 0; i < steps; i++) {
                host[i] = stepWall[i] - stepBusy[i];
                launches[i] = stepOps[i];
            }
            sb.append(String.format(Locale.ROOT, "per step (median over %d): wall %.1f µs, device busy %.1f µs, host-side"
                            + " (wall − busy) %.1f µs, GPU idle between ops %.1f µs, %.0f launches/step"
                            + " (step = one token: ops + id read-back + the engine's host work)%n", steps,
                    median(wall), median(busy), median(host), median(idle), median(launches)));
        }
        return sb.toString();
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        int n = s.length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }

    void close() {
        for (int i = 0; i < SLOTS; i++) {
            driver.eventDestroy(startEv[i]);
            driver.eventDestroy(endEv[i]);
        }
    }
}
