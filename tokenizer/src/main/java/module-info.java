/** HF-exact byte-level BPE tokenization (tokenizer.json) and chat templates. */
module k2j.tokenizer {
    requires com.fasterxml.jackson.databind;

    exports ai.k2j.tokenizer;
}
