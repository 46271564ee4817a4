package ai.k2j.loaders;

import com.fasterxml.jackson.databind.JsonNode;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Objects;

/**
 * HF {@code generation_config.json}: end-of-sequence ids and sampling defaults. Absent file → {@link #DEFAULT}.
 * Absent numbers: temperature 1.0, topP 1.0, topK 0 (off), repetitionPenalty 1.0.
 */
public record GenerationConfig(int[] eosTokenIds, int bosTokenId, int padTokenId, boolean doSample,
                               double temperature, double topP, int topK, double repetitionPenalty) {

    public static final GenerationConfig DEFAULT = new GenerationConfig(new int[0], -1, -1, false, 1.0, 1.0, 0, 1.0);

    public GenerationConfig {
        eosTokenIds = eosTokenIds == null ? new int[0] : eosTokenIds.clone();
    }

    @Override
    public int[] eosTokenIds() {
        return eosTokenIds.clone();
    }

    /** Reads the file; a missing file gives {@link #DEFAULT}; malformed JSON a {@link ModelFormatException}. */
    public static GenerationConfig read(Path file) {
        if (!ModelFiles.present(file)) {
            return DEFAULT;
        }
        return parse(Json.readFile(file), file.toString());
    }

    /** Parses generation_config.json text; {@code source} names it in errors. */
    public static GenerationConfig parse(String json, String source) {
        JsonNode root = Json.parseObject(json, source);
        int[] eos = Json.optIds(root, "eos_token_id", source);
        int bos = Json.optInt(root, "bos_token_id", -1, source);
        int pad = padTokenId(root, source);
        boolean doSample = Json.optBoolean(root, "do_sample", false, source);
        double temperature = Json.optDouble(root, "temperature", 1.0, source);
        double topP = Json.optDouble(root, "top_p", 1.0, source);
        int topK = Json.optInt(root, "top_k", 0, source);
        double repetitionPenalty = Json.optDouble(root, "repetition_penalty", 1.0, source);
        if (!(temperature >= 0) || Double.isInfinite(temperature)) {
            throw new ModelFormatException(source + ": temperature must be a finite number >= 0, got " + temperature);
        }
        if (!(topP >= 0 && topP <= 1)) {
            throw new ModelFormatException(source + ": top_p must be in [0, 1], got " + topP);
        }
        if (topK < 0) {
            throw new ModelFormatException(source + ": top_k must be >= 0, got " + topK);
        }
        if (!(repetitionPenalty > 0) || Double.isInfinite(repetitionPenalty)) {
            throw new ModelFormatException(source + ": repetition_penalty must be a finite number > 0, got "
                    + repetitionPenalty);
        }
        return new GenerationConfig(eos, bos, pad, doSample, temperature, topP, topK, repetitionPenalty);
    }

    /** HF allows a list for pad_token_id too; the first id is the one used for padding. */
    private static int padTokenId(JsonNode root, String source) {
        int[] ids = Json.optIds(root, "pad_token_id", source);
        return ids.length == 0 ? -1 : ids[0];
    }

    /** True when {@code tokenId} ends generation. */
    public boolean isEos(int tokenId) {
        for (int id : eosTokenIds) {
            if (id == tokenId) {
                return true;
            }
        }
        return false;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof GenerationConfig g
                && Arrays.equals(eosTokenIds, g.eosTokenIds)
                && bosTokenId == g.bosTokenId
                && padTokenId == g.padTokenId
                && doSample == g.doSample
                && Double.compare(temperature, g.temperature) == 0
                && Double.compare(topP, g.topP) == 0
                && topK == g.topK
                && Double.compare(repetitionPenalty, g.repetitionPenalty) == 0;
    }

    @Override
    public int hashCode() {
        return Objects.hash(Arrays.hashCode(eosTokenIds), bosTokenId, padTokenId, doSample, temperature, topP, topK,
                repetitionPenalty);
    }

    @Override
    public String toString() {
        return "GenerationConfig[eosTokenIds=" + Arrays.toString(eosTokenIds) + ", bosTokenId=" + bosTokenId
                + ", padTokenId=" + padTokenId + ", doSample=" + doSample + ", temperature=" + temperature
                + ", topP=" + topP + ", topK=" + topK + ", repetitionPenalty=" + repetitionPenalty + "]";
    }
}
