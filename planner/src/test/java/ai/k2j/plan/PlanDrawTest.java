package ai.k2j.plan;

import org.junit.jupiter.api.Test;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;

import javax.xml.parsers.DocumentBuilderFactory;
import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PlanDrawTest {
    static final Plan PLAN = Planner.plan(PlanRequest.of(Presets.get("qwen2.5-7b"), DeviceSpec.builtIn("wse3"))
            .withCtx(4096).withWafers(2).withMapping("layer-pipeline"));

    @Test
    void svgIsWellFormedWithOneRegionPerPartitionRoutesAndALegend() throws Exception {
        String svg = PlanDraw.svg(PLAN);
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);
        Document doc = f.newDocumentBuilder().parse(new ByteArrayInputStream(svg.getBytes(StandardCharsets.UTF_8)));
        Element root = doc.getDocumentElement();
        assertEquals("svg", root.getLocalName());
        assertEquals("http://www.w3.org/2000/svg", root.getNamespaceURI());
        NodeList rects = doc.getElementsByTagNameNS("*", "rect");
        Set<String> drawn = new HashSet<>();
        for (int i = 0; i < rects.getLength(); i++) {
            Element r = (Element) rects.item(i);
            NodeList titles = r.getElementsByTagNameNS("*", "title");
            if (titles.getLength() == 1) {
                String t = titles.item(0).getTextContent();
                String id = t.substring(0, t.indexOf(' '));
                if (id.endsWith(":")) {
                    continue;   // a span of the token timeline ("L3: hops ...")
                }
                drawn.add(id);
                assertTrue(Double.parseDouble(r.getAttribute("width")) > 0);
                assertTrue(r.getAttribute("fill").matches("#[0-9a-f]{6}"));
            }
        }
        for (Plan.Node n : PLAN.nodes()) {
            assertTrue(drawn.contains(n.id()), "no region for " + n.id());
        }
        assertEquals(PLAN.nodes().size(), drawn.size());
        assertTrue(doc.getElementsByTagNameNS("*", "polyline").getLength() > PLAN.model().layers(), "routes");
        assertTrue(doc.getElementById("legend") != null || svg.contains("id=\"legend\""));
        assertTrue(svg.contains("wafer 1:") && svg.contains("wafer-to-wafer link"));
        for (NodeKind k : new NodeKind[] {NodeKind.ATTENTION, NodeKind.KV_CACHE, NodeKind.MLP, NodeKind.NORM}) {
            assertTrue(svg.contains(PlanDraw.describe(k)), "legend lacks " + k);
        }
    }

    @Test
    void dotHasEveryNodeAndEdgeInOneClusterPerWafer() {
        String dot = PlanDraw.dot(PLAN);
        assertTrue(dot.contains("digraph plan {") && dot.trim().endsWith("}"));
        assertEquals(dot.chars().filter(c -> c == '{').count(), dot.chars().filter(c -> c == '}').count());
        for (Plan.Node n : PLAN.nodes()) {
            assertTrue(dot.contains("\"" + n.id() + "\" [label="), n.id());
        }
        assertEquals(PLAN.edges().size(), dot.split(" -> ", -1).length - 1);
        assertTrue(dot.contains("subgraph cluster_wafer0") && dot.contains("subgraph cluster_wafer1"));
        assertTrue(dot.contains("style=bold"), "the wafer-to-wafer stream is marked");
    }

    @Test
    void summaryListsLayersUtilisationSpeedsAndChecks() {
        String s = PlanSummary.text(PLAN);
        assertTrue(s.contains("L0-"), s);
        assertTrue(s.contains("decode") && s.contains("tok/s per sequence") && s.contains("prefill"));
        assertTrue(s.contains("bottleneck") && s.contains("PE util") && s.contains("SRAM util"));
        assertTrue(s.contains("ok   SRAM per PE"));
        assertTrue(!s.contains("FAIL"));
    }

    /** A mesh plan: one region per layer mesh (stacked partitions), routes between meshes, and the token timeline. */
    @Test
    void meshSvgDrawsEachMeshOnceAndATimelineThatAddsUpToTheToken() throws Exception {
        Plan mesh = Planner.plan(PlanRequest.of(Presets.get("qwen2.5-7b"), DeviceSpec.builtIn("wse3")).withCtx(4096)
                .withWafers(2).withMapping("tiled-mesh"));
        String svg = PlanDraw.svg(mesh);
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);
        Document doc = f.newDocumentBuilder().parse(new ByteArrayInputStream(svg.getBytes(StandardCharsets.UTF_8)));
        Set<String> meshes = new HashSet<>();
        for (Plan.Node n : mesh.nodes()) {
            meshes.add(n.wafer() + ":" + n.rect());
        }
        NodeList rects = doc.getElementsByTagNameNS("*", "rect");
        int meshRegions = 0;
        double timelineCycles = 0;
        for (int i = 0; i < rects.getLength(); i++) {
            Element r = (Element) rects.item(i);
            NodeList titles = r.getElementsByTagNameNS("*", "title");
            if (titles.getLength() != 1) {
                continue;
            }
            String t = titles.item(0).getTextContent();
            if (t.contains(" mesh ") && t.contains("stacked")) {
                meshRegions++;
            }
            java.util.regex.Matcher m = java.util.regex.Pattern.compile(": [a-z -]+ ([0-9,]+) cycles$").matcher(t);
            if (m.find()) {
                timelineCycles += Double.parseDouble(m.group(1).replace(",", ""));
            }
        }
        assertEquals(meshes.size(), meshRegions, "one region per layer mesh");
        assertEquals(mesh.performance().decodeCyclesPerToken(), timelineCycles,
                mesh.performance().decodeCyclesPerToken() * 1e-3, "the timeline's spans add up to the token");
        assertTrue(svg.contains("id=\"timeline\"") && svg.contains("collective steps") && svg.contains(" us<"));
        assertTrue(svg.contains("wafer-to-wafer link"), "the hand-off between the two wafers is drawn");
    }
}
