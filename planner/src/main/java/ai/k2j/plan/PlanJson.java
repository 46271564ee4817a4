package ai.k2j.plan;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.json.JsonMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/** Writes and reads {@code plan.json} (schema {@value Plan#SCHEMA}); the output is byte-for-byte deterministic. */
public final class PlanJson {
    private static final ObjectMapper JSON = JsonMapper.builder()
            .enable(SerializationFeature.INDENT_OUTPUT)
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
            .defaultPropertyInclusion(JsonInclude.Value.construct(JsonInclude.Include.NON_NULL,
                    JsonInclude.Include.NON_NULL))
            .build();

    private PlanJson() {
    }

    public static String write(Plan plan) {
        try {
            return JSON.writeValueAsString(plan) + "\n";
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot serialise plan: " + e.getOriginalMessage(), e);
        }
    }

    public static void write(Plan plan, Path file) throws IOException {
        Files.writeString(file, write(plan));
    }

    /** Parses a plan document; a wrong schema or a malformed field is a {@link PlanException} naming the source. */
    public static Plan read(String json, String source) {
        Plan p;
        try {
            p = JSON.readValue(json, Plan.class);
        } catch (JsonProcessingException e) {
            throw new PlanException(source + ": not a k2j plan: " + e.getOriginalMessage());
        }
        if (p == null || !Plan.SCHEMA.equals(p.schema())) {
            throw new PlanException(source + ": schema must be \"" + Plan.SCHEMA + "\", got "
                    + (p == null ? "nothing" : "\"" + p.schema() + "\""));
        }
        return p;
    }

    public static Plan read(Path file) {
        try {
            return read(Files.readString(file), file.toString());
        } catch (NoSuchFileException e) {
            throw new PlanException(file + ": not found");
        } catch (IOException e) {
            throw new PlanException(file + ": cannot read: " + e);
        }
    }
}
