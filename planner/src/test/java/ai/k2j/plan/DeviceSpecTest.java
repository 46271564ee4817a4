package ai.k2j.plan;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DeviceSpecTest {

    static String resource(String name) throws IOException {
        try (InputStream in = DeviceSpec.class.getResourceAsStream(name)) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    @Test
    void builtInDevicesLoadWithASourceAndKindForEveryNumber() {
        for (String id : DeviceSpec.BUILT_IN) {
            DeviceSpec d = DeviceSpec.builtIn(id);
            assertEquals(id, d.id());
            for (String key : DeviceSpec.REQUIRED) {
                DeviceSpec.Param p = d.params().get(key);
                assertTrue(p != null, id + " lacks " + key);
                assertFalse(p.source().isBlank(), id + "." + key + " has no source");
                assertTrue(p.kind().equals("spec") || p.kind().equals("derived") || p.kind().equals("published-model")
                        || p.kind().equals("assumption"), id + "." + key + " kind " + p.kind());
                if (p.kind().equals("assumption")) {
                    assertTrue(p.source().startsWith("ASSUMPTION"), id + "." + key + " must say it is an assumption");
                }
            }
        }
    }

    @Test
    void wse3NumbersAreThePublishedOnes() {
        DeviceSpec d = DeviceSpec.builtIn("wse3");
        assertEquals(762, d.peCols());
        assertEquals(1172, d.peRows());
        assertEquals(49152, d.sramPerPeBytes());
        assertEquals(1.1e9, d.clockHz());
        assertEquals(8, d.fmacPerCycle16());
        assertEquals(1.5e11, d.waferIoBytesPerSecond());
        // 900,000 cores and 44 GB within 1%
        assertEquals(900_000, d.pesPerWafer(), 9_000);
        assertEquals(44e9, d.pesPerWafer() * (double) d.sramPerPeBytes(), 0.44e9);
        DeviceSpec w2 = DeviceSpec.builtIn("wse2");
        assertEquals(4, w2.fmacPerCycle16());
        assertEquals(757L * 996, w2.pesPerWafer());
    }

    @Test
    void aParameterThatContradictsThePublishedFiguresIsRejected() throws IOException {
        String json = resource("devices/wse3.json").replace("\"value\": 49152", "\"value\": 4915");
        PlanException e = assertThrows(PlanException.class, () -> DeviceSpec.parse(json, "edited.json"));
        assertTrue(e.getMessage().contains("edited.json") && e.getMessage().contains("sramBytes"), e.getMessage());
    }

    @Test
    void aNumberWithoutASourceIsRejected() throws IOException {
        String json = resource("devices/wse3.json").replaceFirst(
                "\"source\": \"Same compile line as peCols \\(fabric-dims=width,height = 762,1172\\).\"", "\"source\": \"\"");
        PlanException e = assertThrows(PlanException.class, () -> DeviceSpec.parse(json, "nosource.json"));
        assertTrue(e.getMessage().contains("peRows") && e.getMessage().contains("source"), e.getMessage());
    }

    @Test
    void badFilesGiveClearErrors(@org.junit.jupiter.api.io.TempDir Path dir) throws IOException {
        PlanException unknown = assertThrows(PlanException.class, () -> DeviceSpec.resolve("wse9"));
        assertTrue(unknown.getMessage().contains("wse9") && unknown.getMessage().contains("wse3"));
        Path missing = dir.resolve("none.json");
        assertTrue(assertThrows(PlanException.class, () -> DeviceSpec.resolve(missing.toString())).getMessage()
                .contains("not found"));
        Path bad = dir.resolve("bad.json");
        Files.writeString(bad, "{\"schema\": \"k2j.device/1\", \"id\": \"x\", \"name\": \"x\", \"parameters\": {}}");
        assertTrue(assertThrows(PlanException.class, () -> DeviceSpec.resolve(bad.toString())).getMessage()
                .contains("missing parameter 'peCols'"));
        Path garbage = dir.resolve("garbage.json");
        Files.writeString(garbage, "{not json");
        assertTrue(assertThrows(PlanException.class, () -> DeviceSpec.read(garbage)).getMessage().contains("invalid JSON"));
        // a user device file with the built-in's content loads
        Path copy = dir.resolve("mine.json");
        Files.writeString(copy, resource("devices/wse2.json"));
        assertEquals("wse2", DeviceSpec.resolve(copy.toString()).id());
    }
}
