/** The OpenAI-compatible HTTP server over the batching engine. */
module k2j.server {
    requires transitive k2j.engine;
    requires k2j.scaffold;
    requires jdk.httpserver;
    requires com.fasterxml.jackson.databind;

    exports ai.k2j.server;
}
