package ai.k2j.plan;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A wafer-scale device (one wafer, and the link between wafers of a multi-wafer system), read from a data
 * file such as {@code devices/wse3.json}. Every number carries its public source and its kind
 * ({@link Param#kind()}); the loader refuses a parameter without one, and checks the parameters against the
 * file's published headline figures ({@code crossChecks}) so a typo cannot pass silently.
 */
public record DeviceSpec(String id, String name, Map<String, Param> params) {

    /** A number with its unit, kind ({@code spec}, {@code derived}, {@code published-model}, {@code assumption}) and source. */
    public record Param(double value, String unit, String kind, String source) {
    }

    /** The devices shipped with k2j ({@code --target NAME}). */
    public static final List<String> BUILT_IN = List.of("wse3", "wse2");

    static final List<String> REQUIRED = List.of("peCols", "peRows", "sramPerPeBytes", "reservedBytesPerPe",
            "clockHz", "fmacPerCycle16", "fmacPerCycle8", "linkBytesPerCycle", "hopLatencyCycles",
            "routingColors", "collectiveColors", "waferIoBytesPerSecond", "interWaferBandwidthBytesPerSecond",
            "interWaferLatencySeconds");
    private static final Set<String> KINDS = Set.of("spec", "derived", "published-model", "assumption");
    private static final ObjectMapper JSON = new ObjectMapper();

    public DeviceSpec {
        params = Collections.unmodifiableMap(new LinkedHashMap<>(params));
    }

    public int peCols() {
        return (int) params.get("peCols").value();
    }

    public int peRows() {
        return (int) params.get("peRows").value();
    }

    public long pesPerWafer() {
        return (long) peCols() * peRows();
    }

    public long sramPerPeBytes() {
        return (long) params.get("sramPerPeBytes").value();
    }

    public long reservedBytesPerPe() {
        return (long) params.get("reservedBytesPerPe").value();
    }

    public double clockHz() {
        return params.get("clockHz").value();
    }

    /** FMACs per cycle per PE for 16-bit operands (BF16/FP16), the rate k2j's W16A16 and W8A16 plans run at. */
    public int fmacPerCycle16() {
        return (int) params.get("fmacPerCycle16").value();
    }

    public int linkBytesPerCycle() {
        return (int) params.get("linkBytesPerCycle").value();
    }

    public int hopLatencyCycles() {
        return (int) params.get("hopLatencyCycles").value();
    }

    public int routingColors() {
        return (int) params.get("routingColors").value();
    }

    public int collectiveColors() {
        return (int) params.get("collectiveColors").value();
    }

    public double waferIoBytesPerSecond() {
        return params.get("waferIoBytesPerSecond").value();
    }

    public double interWaferBandwidthBytesPerSecond() {
        return params.get("interWaferBandwidthBytesPerSecond").value();
    }

    public double interWaferLatencySeconds() {
        return params.get("interWaferLatencySeconds").value();
    }

    /** A built-in device by name ({@link #BUILT_IN}). */
    public static DeviceSpec builtIn(String id) {
        String res = "devices/" + id + ".json";
        try (InputStream in = DeviceSpec.class.getResourceAsStream(res)) {
            if (in == null) {
                throw new PlanException("unknown target '" + id + "' (built in: " + String.join(", ", BUILT_IN)
                        + "; or pass a device file path)");
            }
            return parse(new String(in.readAllBytes(), StandardCharsets.UTF_8), "built-in device " + res);
        } catch (IOException e) {
            throw new PlanException("cannot read built-in device " + res + ": " + e);
        }
    }

    /** A device file ({@code --target path/to/device.json}). */
    public static DeviceSpec read(Path file) {
        try {
            return parse(Files.readString(file), file.toString());
        } catch (NoSuchFileException e) {
            throw new PlanException(file + ": device file not found");
        } catch (IOException e) {
            throw new PlanException(file + ": cannot read: " + e);
        }
    }

    /** {@code NAME} of a built-in device, or a path to a device file. */
    public static DeviceSpec resolve(String target) {
        if (BUILT_IN.contains(target)) {
            return builtIn(target);
        }
        if (target.endsWith(".json") || target.contains("/")) {
            return read(Path.of(target));
        }
        return builtIn(target);
    }

    static DeviceSpec parse(String text, String source) {
        JsonNode root;
        try {
            root = JSON.readTree(text);
        } catch (JsonProcessingException e) {
            throw new PlanException(source + ": invalid JSON: " + e.getOriginalMessage());
        }
        if (root == null || !root.isObject()) {
            throw new PlanException(source + ": expected a JSON object");
        }
        if (!"k2j.device/1".equals(root.path("schema").asText())) {
            throw new PlanException(source + ": 'schema' must be \"k2j.device/1\", got " + root.get("schema"));
        }
        String id = text(root, "id", source);
        String name = text(root, "name", source);
        JsonNode ps = root.get("parameters");
        if (ps == null || !ps.isObject()) {
            throw new PlanException(source + ": missing object 'parameters'");
        }
        Map<String, Param> params = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : ps.properties()) {
            params.put(e.getKey(), param(e.getKey(), e.getValue(), source));
        }
        for (String k : REQUIRED) {
            if (!params.containsKey(k)) {
                throw new PlanException(source + ": missing parameter '" + k + "'");
            }
        }
        DeviceSpec d = new DeviceSpec(id, name, params);
        d.checkRanges(source);
        JsonNode checks = root.get("crossChecks");
        if (checks != null && checks.isObject()) {
            for (Map.Entry<String, JsonNode> e : checks.properties()) {
                d.crossCheck(e.getKey(), e.getValue(), source);
            }
        }
        return d;
    }

    private static Param param(String key, JsonNode n, String source) {
        if (!n.isObject() || !n.path("value").isNumber()) {
            throw new PlanException(source + ": parameter '" + key + "' must be {\"value\": number, ...}");
        }
        String kind = n.path("kind").asText("");
        if (!KINDS.contains(kind)) {
            throw new PlanException(source + ": parameter '" + key + "' needs a 'kind' in " + KINDS + ", got '"
                    + kind + "'");
        }
        String src = n.path("source").asText("");
        if (src.isBlank()) {
            throw new PlanException(source + ": parameter '" + key + "' has no 'source': every number must cite one");
        }
        double v = n.get("value").asDouble();
        if (!Double.isFinite(v)) {
            throw new PlanException(source + ": parameter '" + key + "' is not finite");
        }
        return new Param(v, n.path("unit").asText(""), kind, src);
    }

    private void checkRanges(String source) {
        positive(source, "peCols", 1);
        positive(source, "peRows", 1);
        positive(source, "clockHz", 1);
        positive(source, "fmacPerCycle16", 1);
        positive(source, "linkBytesPerCycle", 1);
        positive(source, "waferIoBytesPerSecond", 1);
        positive(source, "interWaferBandwidthBytesPerSecond", 1);
        if (params.get("hopLatencyCycles").value() < 0 || params.get("interWaferLatencySeconds").value() < 0) {
            throw new PlanException(source + ": latencies must be >= 0");
        }
        if (reservedBytesPerPe() < 0 || reservedBytesPerPe() >= sramPerPeBytes()) {
            throw new PlanException(source + ": reservedBytesPerPe must be in [0, sramPerPeBytes)");
        }
        if (collectiveColors() < 0 || collectiveColors() >= routingColors()) {
            throw new PlanException(source + ": collectiveColors must be in [0, routingColors)");
        }
    }

    private void positive(String source, String key, double min) {
        if (params.get(key).value() < min) {
            throw new PlanException(source + ": parameter '" + key + "' must be >= " + min);
        }
    }

    /** Recomputes a published headline figure from the parameters; fails if it is off by more than the tolerance. */
    private void crossCheck(String key, JsonNode n, String source) {
        double published = n.path("value").asDouble(Double.NaN);
        double tol = n.path("tolerance").asDouble(Double.NaN);
        if (!(published > 0) || !(tol >= 0)) {
            throw new PlanException(source + ": crossChecks." + key + " needs a positive 'value' and a 'tolerance'");
        }
        if (n.path("source").asText("").isBlank()) {
            throw new PlanException(source + ": crossChecks." + key + " has no 'source'");
        }
        double pes = pesPerWafer();
        double model = switch (key) {
            case "cores" -> pes;
            case "sramBytes" -> pes * sramPerPeBytes();
            case "memoryBandwidthBytesPerSecond" -> pes * 24 * clockHz();
            case "fabricBandwidthBitsPerSecond" -> pes * 4 * 2 * linkBytesPerCycle() * 8 * clockHz();
            case "publishedPeakAiFlops" -> pes * 2 * fmacPerCycle16() * clockHz() * 8;
            default -> throw new PlanException(source + ": unknown crossChecks entry '" + key + "'");
        };
        double rel = Math.abs(model - published) / published;
        if (rel > tol) {
            throw new PlanException(String.format(java.util.Locale.ROOT,
                    "%s: parameters give %s = %.4g but the published figure is %.4g (off by %.1f%%, tolerance %.1f%%)",
                    source, key, model, published, rel * 100, tol * 100));
        }
    }

    private static String text(JsonNode root, String field, String source) {
        JsonNode n = root.get(field);
        if (n == null || !n.isTextual() || n.asText().isBlank()) {
            throw new PlanException(source + ": missing string field '" + field + "'");
        }
        return n.asText();
    }
}
