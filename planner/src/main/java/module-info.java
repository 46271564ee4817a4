/**
 * The wafer-scale execution-plan compiler: reads model configs, writes placed plans and their predicted speed, and
 * runs a plan on the CPU as placed ({@code PlanExecutor}, over the engine's RoPE).
 */
module k2j.planner {
    requires k2j.engine;
    requires com.fasterxml.jackson.databind;

    exports ai.k2j.plan;
}
