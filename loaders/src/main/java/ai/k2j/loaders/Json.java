package ai.k2j.loaders;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Strict JSON reading shared by the loaders: duplicate keys and trailing garbage are errors (a model file
 * that says two things is malformed), and every type mismatch is a {@link ModelFormatException} naming the
 * file and the field.
 */
final class Json {

    static final ObjectMapper MAPPER = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build();

    private Json() {
    }

    /** The file's text; a missing file or read error is a {@link ModelFormatException}. */
    static String readFile(Path file) {
        ModelFiles.requireRegularFile(file);
        try {
            return Files.readString(file);
        } catch (NoSuchFileException e) {
            throw new ModelFormatException(file + ": file not found");
        } catch (IOException e) {
            throw new ModelFormatException(file + ": cannot read: " + e, e);
        }
    }

    /** Parses text that must be one JSON object. */
    static JsonNode parseObject(String text, String source) {
        JsonNode root;
        try {
            root = MAPPER.readTree(text);
        } catch (JacksonException e) {
            throw new ModelFormatException(source + ": invalid JSON: " + e.getOriginalMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new ModelFormatException(source + ": expected a JSON object at the top level, got "
                    + (root == null || root.isMissingNode() ? "nothing" : root.getNodeType().toString().toLowerCase()));
        }
        return root;
    }

    static boolean absent(JsonNode n) {
        return n == null || n.isNull() || n.isMissingNode();
    }

    static int requireInt(JsonNode obj, String field, String source) {
        JsonNode n = obj.get(field);
        if (absent(n)) {
            throw new ModelFormatException(source + ": required field '" + field + "' is missing");
        }
        return toInt(n, field, source);
    }

    static int optInt(JsonNode obj, String field, int dflt, String source) {
        JsonNode n = obj.get(field);
        return absent(n) ? dflt : toInt(n, field, source);
    }

    static int toInt(JsonNode n, String field, String source) {
        if (!n.isIntegralNumber() || !n.canConvertToInt()) {
            throw new ModelFormatException(source + ": field '" + field + "' must be an integer (32-bit), got " + n);
        }
        return n.intValue();
    }

    /** A non-negative integer that fits a long (sizes, offsets). */
    static long toNonNegativeLong(JsonNode n, String what, String source) {
        if (n == null || !n.isIntegralNumber() || !n.canConvertToLong() || n.longValue() < 0) {
            throw new ModelFormatException(source + ": " + what + " must be a non-negative integer, got " + n);
        }
        return n.longValue();
    }

    static double optDouble(JsonNode obj, String field, double dflt, String source) {
        JsonNode n = obj.get(field);
        if (absent(n)) {
            return dflt;
        }
        if (!n.isNumber()) {
            throw new ModelFormatException(source + ": field '" + field + "' must be a number, got " + n);
        }
        return n.doubleValue();
    }

    static boolean optBoolean(JsonNode obj, String field, boolean dflt, String source) {
        JsonNode n = obj.get(field);
        if (absent(n)) {
            return dflt;
        }
        if (!n.isBoolean()) {
            throw new ModelFormatException(source + ": field '" + field + "' must be true or false, got " + n);
        }
        return n.booleanValue();
    }

    static String optString(JsonNode obj, String field, String dflt, String source) {
        JsonNode n = obj.get(field);
        if (absent(n)) {
            return dflt;
        }
        if (!n.isTextual()) {
            throw new ModelFormatException(source + ": field '" + field + "' must be a string, got " + n);
        }
        return n.textValue();
    }

    /** A token id field that HF allows to be one int or a list of ints (eos_token_id); absent → empty. */
    static int[] optIds(JsonNode obj, String field, String source) {
        JsonNode n = obj.get(field);
        if (absent(n)) {
            return new int[0];
        }
        if (n.isArray()) {
            int[] ids = new int[n.size()];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = toInt(n.get(i), field + "[" + i + "]", source);
            }
            return ids;
        }
        if (n.isIntegralNumber()) {
            return new int[] {toInt(n, field, source)};
        }
        throw new ModelFormatException(source + ": field '" + field + "' must be an integer or a list of integers, got " + n);
    }

    /** A JSON object whose values are all strings (safetensors {@code __metadata__}, weight_map). */
    static Map<String, String> stringMap(JsonNode n, String what, String source) {
        if (n == null || !n.isObject()) {
            throw new ModelFormatException(source + ": " + what + " must be a JSON object of strings, got " + n);
        }
        Map<String, String> out = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : n.properties()) {
            if (!e.getValue().isTextual()) {
                throw new ModelFormatException(source + ": " + what + " entry '" + e.getKey()
                        + "' must be a string, got " + e.getValue());
            }
            out.put(e.getKey(), e.getValue().textValue());
        }
        return out;
    }
}
