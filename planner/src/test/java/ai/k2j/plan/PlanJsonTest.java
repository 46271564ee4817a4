package ai.k2j.plan;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PlanJsonTest {

    @Test
    void planRoundTripsThroughJson(@TempDir Path dir) throws IOException {
        Plan p = Planner.plan(PlanRequest.of(Presets.get("qwen2.5-1.5b"), DeviceSpec.builtIn("wse3")).withCtx(4096)
                .withDraft(Presets.get("qwen2.5-0.5b"), 0.7, 0));
        Path f = dir.resolve("plan.json");
        PlanJson.write(p, f);
        Plan back = PlanJson.read(f);
        assertEquals(p, back);
        assertEquals(PlanJson.write(p), PlanJson.write(back));
        // a plan without a draft omits the draft fields rather than writing nulls
        Plan solo = Planner.plan(PlanRequest.of(Presets.get("tiny"), DeviceSpec.builtIn("wse2")));
        String json = PlanJson.write(solo);
        assertTrue(!json.contains("\"draft\"") && !json.contains("null"), "nulls in plan.json");
        Plan soloBack = PlanJson.read(json, "solo");
        assertNull(soloBack.draft());
        assertEquals(solo, soloBack);
    }

    @Test
    void theSchemaIsChecked() {
        Plan p = Planner.plan(PlanRequest.of(Presets.get("tiny"), DeviceSpec.builtIn("wse3")));
        String json = PlanJson.write(p);
        PlanException wrong = assertThrows(PlanException.class,
                () -> PlanJson.read(json.replace("k2j.plan/1", "k2j.plan/0"), "old.json"));
        assertTrue(wrong.getMessage().contains("old.json") && wrong.getMessage().contains("k2j.plan/1"));
        PlanException unknown = assertThrows(PlanException.class,
                () -> PlanJson.read(json.replaceFirst("\"schema\"", "\"surprise\" : 1,\n  \"schema\""), "extra.json"));
        assertTrue(unknown.getMessage().contains("extra.json"), unknown.getMessage());
        assertThrows(PlanException.class, () -> PlanJson.read("[]", "array.json"));
    }

    @Test
    void topLevelFieldsAreInTheDocumentedOrder() {
        String json = PlanJson.write(Planner.plan(PlanRequest.of(Presets.get("tiny"), DeviceSpec.builtIn("wse3"))));
        String[] order = {"\"schema\"", "\"model\"", "\"request\"", "\"device\"", "\"calibration\"", "\"shapes\"",
                "\"wafers\"", "\"nodes\"", "\"edges\"", "\"performance\"", "\"checks\"", "\"warnings\"", "\"search\""};
        int at = -1;
        for (String key : order) {
            int i = json.indexOf("\n  " + key);
            assertTrue(i > at, key + " out of order");
            at = i;
        }
    }
}
