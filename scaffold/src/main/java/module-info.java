/** The test-time scaffold: plan-before-you-think, best-of-N with verifiers, pass@1 evaluation. */
module k2j.scaffold {
    requires transitive k2j.engine;
    requires com.fasterxml.jackson.databind;

    exports ai.k2j.scaffold;
}
