/** Checkpoint formats: safetensors (mmapped, zero-copy), config.json, generation_config.json, dtypes. */
module k2j.loaders {
    requires transitive com.fasterxml.jackson.databind;

    exports ai.k2j.loaders;
}
