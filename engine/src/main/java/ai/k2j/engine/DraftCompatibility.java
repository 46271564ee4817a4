package ai.k2j.engine;

import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.ModelFormatException;
import ai.k2j.tokenizer.Tokenizer;

import java.util.Arrays;
import java.util.Objects;

/**
 * Checks that a draft model can propose tokens for a target: token ids must mean the same thing in both, so
 * the vocabulary sizes must be equal and, when both directories have a tokenizer.json, every token (special
 * ones included) must have the same id and the same special flag. Without the draft's tokenizer the check
 * falls back to config.json's bos/eos ids. Any Qwen2-family pair sharing a tokenizer passes (Qwen2.5 0.5B and
 * 1.5B, the demo pair); differing vocabularies fail with a {@link ModelFormatException} naming the difference.
 * One exception: a draft whose vocab_size is the target's less padding rows (Qwen2.5 0.5B–7B have 151,936 ids,
 * 14B–72B 152,064; one tokenizer of 151,665 tokens) pairs when both tokenizers fit in the draft's ids; the
 * decoders pad its distributions with zeros (logits −inf) to the target's width.
 */
final class DraftCompatibility {

    private DraftCompatibility() {
    }

    /**
     * @param targetTokenizer null when the target directory has none (then only sizes and config ids are checked)
     * @param draftTokenizer  null when the draft directory has none
     */
    public static void check(String targetSource, ModelConfig target, Tokenizer targetTokenizer,
                             String draftSource, ModelConfig draft, Tokenizer draftTokenizer) {
        String pair = "draft " + draftSource + " cannot draft for target " + targetSource + ": ";
        if (draft.vocabSize() > target.vocabSize()) {
            throw new ModelFormatException(pair + "vocab_size " + draft.vocabSize() + " exceeds the target's "
                    + target.vocabSize() + " (speculative decoding needs one shared vocabulary)");
        }
        if (draft.vocabSize() < target.vocabSize()) {
            // Qwen2.5: 151,936 ids up to 7B, 152,064 from 14B, one tokenizer of 151,665 tokens; the rest is padding
            if (targetTokenizer == null || draftTokenizer == null) {
                throw new ModelFormatException(pair + "vocab_size " + draft.vocabSize() + " differs from the target's "
                        + target.vocabSize() + ", and without both tokenizer.json files the extra ids cannot be shown"
                        + " to be padding");
            }
            int tokens = Math.max(targetTokenizer.vocabSize(), draftTokenizer.vocabSize());
            if (tokens > draft.vocabSize()) {
                throw new ModelFormatException(pair + "its vocab_size " + draft.vocabSize() + " is smaller than the "
                        + tokens + " tokens of the tokenizers (only padding ids may be missing)");
            }
        }
        if (targetTokenizer != null && draftTokenizer != null) {
            if (targetTokenizer.vocabSize() != draftTokenizer.vocabSize()) {
                throw new ModelFormatException(pair + "its tokenizer has " + draftTokenizer.vocabSize()
                        + " tokens, the target's " + targetTokenizer.vocabSize());
            }
            int[] targetSpecial = targetTokenizer.specialIds();
            int[] draftSpecial = draftTokenizer.specialIds();
            if (!Arrays.equals(targetSpecial, draftSpecial)) {
                throw new ModelFormatException(pair + "special-token ids differ: draft " + describe(draftTokenizer)
                        + ", target " + describe(targetTokenizer));
            }
            for (int id = 0; id < targetTokenizer.vocabSize(); id++) {
                if (!Objects.equals(targetTokenizer.token(id), draftTokenizer.token(id))) {
                    throw new ModelFormatException(pair + "token id " + id + " is '" + draftTokenizer.token(id)
                            + "' in the draft's tokenizer but '" + targetTokenizer.token(id) + "' in the target's");
                }
            }
        } else {
            if (target.bosTokenId() >= 0 && draft.bosTokenId() >= 0 && target.bosTokenId() != draft.bosTokenId()) {
                throw new ModelFormatException(pair + "bos_token_id " + draft.bosTokenId()
                        + " differs from the target's " + target.bosTokenId());
            }
            int[] te = sorted(target.eosTokenIds());
            int[] de = sorted(draft.eosTokenIds());
            if (te.length > 0 && de.length > 0 && !Arrays.equals(te, de)) {
                throw new ModelFormatException(pair + "eos_token_id " + Arrays.toString(de)
                        + " differs from the target's " + Arrays.toString(te));
            }
        }
    }

    private static String describe(Tokenizer t) {
        StringBuilder sb = new StringBuilder("{");
        for (int id : t.specialIds()) {
            if (sb.length() > 1) {
                sb.append(", ");
            }
            sb.append(t.token(id)).append('=').append(id);
        }
        return sb.append('}').toString();
    }

    private static int[] sorted(int[] ids) {
        int[] s = ids.clone();
        Arrays.sort(s);
        return s;
    }
}
