package ai.k2j.plan;

import com.fasterxml.jackson.annotation.JsonInclude;

import java.util.List;
import java.util.Map;

/**
 * An execution plan: the model's partitions placed on one or more wafers (nodes, each a PE rectangle), the
 * activation streams between them (edges), the predicted performance and the constraint checks. This is the
 * {@code plan.json} document (schema {@value #SCHEMA}, documented field by field in docs/wafer-plan.md);
 * {@link PlanJson} writes and reads it.
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record Plan(
        String schema,
        ModelInfo model,
        ModelInfo draft,
        Request request,
        DeviceSpecInfo device,
        CalibrationInfo calibration,
        Shapes shapes,
        List<Wafer> wafers,
        List<Node> nodes,
        List<Edge> edges,
        Performance performance,
        List<Check> checks,
        List<String> warnings,
        Search search) {

    public static final String SCHEMA = "k2j.plan/1";

    /** The model's shape as planned. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record ModelInfo(String name, String architecture, int hidden, int intermediate, int layers, int heads,
                            int kvHeads, int headDim, int vocab, boolean tiedEmbeddings, boolean qkvBias,
                            long parameters, long weightBytes, Long kvBytesPerTokenPerLayer) {
    }

    /** What was asked for ({@code wafersRequested} is null when the planner chose the count). */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record Request(String target, Integer wafersRequested, int wafers, String dtype, int ctx, int batch,
                         String draft, Double acceptRate, Integer specK) {
    }

    /** The device's parameters with their sources, as used. */
    public record DeviceSpecInfo(String id, String name, Map<String, DeviceSpec.Param> parameters) {
    }

    public record CalibrationInfo(double stepCycles, double computeEfficiency, int partialSumBytes,
                                  int prefillChunkTokens, String stepCyclesSource) {
    }

    /**
     * The mapping ({@code layer-pipeline}: each layer its own block of PEs; {@code mesh}: WaferLLM's, every layer of a
     * wafer over one shared mesh) and the chosen shapes ({@code draft} null without a draft model, {@code mesh} null
     * for the layer pipeline). For the mesh mapping the block shapes give the mesh ({@code rows x width}).
     */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record Shapes(String mapping, BlockShape target, BlockShape draft, Mesh mesh) {
        /** Whether the plan uses a mesh mapping (not a bean getter: not written to plan.json). */
        public boolean usesMesh() {
            return "mesh".equals(mapping) || "tiled-mesh".equals(mapping);
        }
    }

    /**
     * The mesh mapping's shape: the target's layer mesh ({@code rows x cols}; a wafer holds {@code tilesDown x
     * tilesAcross} of them, 1 x 1 for WaferLLM's one mesh per wafer), the draft's
     * (stacked on wafer 0's), the wafers an MoE layer's experts span and the grid of expert sub-meshes.
     */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record Mesh(int rows, int cols, int tilesDown, int tilesAcross, Integer draftRows, Integer draftCols,
                       int expertSpan,
                       Integer expertGridRows, Integer expertGridCols) {
    }

    /** A layer block: rows x (1 + attnCols + kvCols + 1 + mlpCols), {@code blocksPerShelf} side by side. */
    public record BlockShape(int rows, int attnCols, int kvCols, int mlpCols, int width, int blocksPerShelf) {
    }

    /** One wafer: how much of it the plan uses. */
    public record Wafer(int index, long pes, long usedPes, double peUtilisation, long sramBytes, long usedSramBytes,
                        double sramUtilisation, String targetLayers, String draftLayers) {
    }

    /** A PE rectangle on a wafer: top-left {@code (row, col)}, {@code rows x cols} PEs. */
    public record Rect(int row, int col, int rows, int cols) {
        public long pes() {
            return (long) rows * cols;
        }

        public boolean overlaps(Rect o) {
            return row < o.row + o.rows && o.row < row + rows && col < o.col + o.cols && o.col < col + cols;
        }
    }

    /** SRAM of the most loaded PE of a partition, by use, and the partition's total. */
    public record Sram(long weightsPerPe, long kvPerPe, long activationsPerPe, long reservedPerPe, long totalPerPe,
                       long capacityPerPe) {
    }

    /** Cycles by cause (see docs/wafer-plan.md, "cost model"). */
    public record CycleBreakdown(double compute, double bandwidth, double hops, double steps, double interWafer,
                                 double total) {
        static CycleBreakdown of(CostModel.Cycles c) {
            return new CycleBreakdown(round(c.compute), round(c.bandwidth), round(c.hops), round(c.steps),
                    round(c.interWafer), round(c.total()));
        }
    }

    /**
     * A placed partition. {@code kind} is one of {@link NodeKind}; {@code layer} is null for the embedding and
     * head. {@code decode} is this partition's share of one decode token; {@code prefillCyclesPerToken} its
     * occupancy per prompt token in a pipelined prefill.
     */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record Node(String id, NodeKind kind, String model, Integer layer, Integer expert, int wafer, Rect rect,
                       long pes, Sram sram, long weightBytes, long kvBytes, double flopsPerToken,
                       double bytesMovedPerToken, CycleBreakdown decode, double prefillCyclesPerToken) {
    }

    /** A point of a route: PE {@code (row, col)} on a wafer. */
    public record Point(int wafer, int row, int col) {
    }

    /**
     * An activation stream from one partition to the next: bytes per token, the route (a Manhattan path, or two
     * paths joined by a wafer-to-wafer link when {@code interWafer}), its length in on-wafer hops and the number
     * of parallel links it uses.
     */
    public record Edge(String from, String to, double bytesPerToken, int links, int hops, boolean interWafer,
                       CycleBreakdown decode, List<Point> route) {
    }

    /** Speculative decoding with a draft model. */
    public record Speculative(String draftModel, int k, double acceptRate, double expectedTokensPerStep,
                              double draftCyclesPerToken, double verifyCycles, double exchangeCycles,
                              double tokensPerSecond, double speedupOverTarget) {
    }

    /** Predicted speeds and where the time goes. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record Performance(double decodeCyclesPerToken, double decodeLatencySeconds, double decodeTokensPerSecond,
                              CycleBreakdown decodeBreakdown, String decodeBottleneck,
                              double pipelineStageCycles, String pipelineBottleneck, int concurrentSequences,
                              double aggregateDecodeTokensPerSecond, double prefillTokensPerSecond,
                              int prefillChunkTokens, String prefillBottleneck, double timeToFirstTokenSeconds,
                              Speculative speculative, double effectiveTokensPerSecond) {
    }

    /** A constraint and whether the plan meets it. */
    public record Check(String name, boolean ok, String detail) {
    }

    /** How the plan was found, and the best plan of each mapping and wafer objective that was compared. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record Search(String objective, long candidatesEvaluated, List<Integer> waferCountsTried, String note,
                         List<Alternative> alternatives) {
    }

    /** A plan the search compared: its mapping, wafers and speed (tokens/s per request, speculative if drafted). */
    public record Alternative(String role, String mapping, int wafers, double tokensPerSecond, String detail) {
    }

    static double round(double v) {
        return Math.round(v * 10.0) / 10.0;
    }
}
