/** The wafer-scale execution-plan compiler: reads model configs, writes placed plans and their predicted speed. */
module k2j.planner {
    requires k2j.loaders;
    requires com.fasterxml.jackson.databind;

    exports ai.k2j.plan;
}
