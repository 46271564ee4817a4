/** The k2j command-line application ({@code ai.k2j.cli.Main}); it exports nothing. */
module k2j.cli {
    requires k2j.engine;
    requires k2j.server;
    requires k2j.scaffold;
    requires k2j.planner;
    requires com.fasterxml.jackson.databind;
    // k2j bench: allocation per token and the CPU's vector width
    requires jdk.management;
    requires jdk.incubator.vector;
}
