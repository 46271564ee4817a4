package ai.k2j.plan;

import ai.k2j.plan.CostModel.Cycles;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CostModelTest {
    static final DeviceSpec WSE3 = DeviceSpec.builtIn("wse3");

    static CostModel model(double step) {
        return new CostModel(WSE3, Calibration.builtIn().withStepCycles(step));
    }

    @Test
    void withoutStepCostAChainReduceIsPayloadPlusDistance() {
        Cycles c = new Cycles();
        model(0).reduce(c, 100, 50);
        assertEquals(50 + 99, c.total(), 1e-9);  // K = 1: one pass of the payload, 99 hops
    }

    @Test
    void kTreeTradesPayloadPassesForFewerDependentSteps() {
        // n = 64 PEs, m = 10 wavelets, s = 100: K=1 costs 10 + 63 + 63*100; K=2 (g=8) 20 + 63 + 2*7*100;
        // K=3 (g=4) 30 + 63 + 3*3*100; K=4 (g=3) 40 + 63 + 4*2*100 = 903, the minimum
        Cycles c = new Cycles();
        model(100).reduce(c, 64, 10);
        assertEquals(40 + 63 + 800, c.total(), 1e-9);
        assertEquals(40, c.bandwidth, 1e-9);
        assertEquals(800, c.steps, 1e-9);
        // a long payload prefers fewer levels: m = 1000 -> K = 1 would be 1000 + 63 + 6300; K = 2: 2000 + 63 + 1400
        Cycles d = new Cycles();
        model(100).reduce(d, 64, 1000);
        assertEquals(2000 + 63 + 1400, d.total(), 1e-9);
    }

    @Test
    void allreduceIsReducePlusMulticast() {
        Cycles r = new Cycles();
        model(100).reduce(r, 30, 7);
        Cycles a = new Cycles();
        model(100).allreduce(a, 30, 7);
        assertEquals(r.total() + 7 + 29 + 100, a.total(), 1e-9);
        Cycles one = new Cycles();
        model(100).allreduce(one, 1, 7);
        assertEquals(0, one.total());
    }

    @Test
    void gemvComputeIsTheLocalTileOverTheSimdRate() {
        Cycles c = new Cycles();
        CostModel m = model(0);
        // 4096 x 4096 on 64 x 64 PEs: 64 x 64 tile = 4096 FMAC at 8 per cycle
        m.gemv(c, 4096, 4096, 64, 64, 1, false, false);
        assertEquals(512, c.compute, 1e-9);
        // the reduce of 64 fp32 partials (64 wavelets) over 64 PEs, K = 1 without step cost
        assertEquals(64 + 63, c.bandwidth + c.hops, 1e-9);
        // more PEs, less compute per PE; longer reductions
        Cycles wide = new Cycles();
        m.gemv(wide, 4096, 4096, 128, 128, 1, false, false);
        assertTrue(wide.compute < c.compute && wide.hops > c.hops);
        // tokens multiply the work: a 4-token pass is 4x the compute
        Cycles four = new Cycles();
        m.gemv(four, 4096, 4096, 64, 64, 4, false, false);
        assertEquals(4 * c.compute, four.compute, 1e-9);
    }

    @Test
    void interWaferTransferIsLatencyPlusBytesOverBandwidth() {
        Cycles c = new Cycles();
        model(0).interWafer(c, 16384);
        double seconds = WSE3.interWaferLatencySeconds() + 16384 / WSE3.interWaferBandwidthBytesPerSecond();
        assertEquals(seconds * WSE3.clockHz(), c.interWafer, 1e-6);
    }

    @Test
    void layerCostGrowsWithContextAndShrinksWithKvColumns() {
        LayerModel lm = new LayerModel(Presets.get("llama-3.1-8b"), model(120), WeightDType.BF16);
        LayerShape s = new LayerShape(64, 100, 40, 200);
        double short_ = lm.cycles(s, LayerModel.Part.KV, 1, 1024).total();
        double long_ = lm.cycles(s, LayerModel.Part.KV, 1, 8192).total();
        assertTrue(long_ > short_);
        double wider = lm.cycles(new LayerShape(64, 100, 80, 200), LayerModel.Part.KV, 1, 8192).total();
        assertTrue(wider < long_);
        // FP8 halves the MLP weights per PE
        LayerModel fp8 = new LayerModel(Presets.get("llama-3.1-8b"), model(120), WeightDType.FP8);
        assertEquals(lm.weightsPerPe(s, LayerModel.Part.MLP) / 2, fp8.weightsPerPe(s, LayerModel.Part.MLP), 1e-9);
    }

    @Test
    void speculativeExpectationMatchesTheClosedForm() {
        assertEquals(1.0, Planner.expectedTokens(0.5, 0), 1e-12);
        assertEquals(1 + 0.5, Planner.expectedTokens(0.5, 1), 1e-12);
        assertEquals(1 + 0.8 + 0.64 + 0.512, Planner.expectedTokens(0.8, 3), 1e-12);
    }
}
