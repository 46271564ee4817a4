package ai.k2j.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The Jinja interpreter: Python Jinja2 semantics (expected outputs in golden/jinja-semantics.json were rendered by
 * Jinja2 3.1.6 in HF's environment: trim_blocks, lstrip_blocks, loopcontrols, json.dumps tojson), the sandbox
 * bounds, and clear errors for bad templates.
 */
class JinjaTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    private static String render(String template, Map<String, Object> ctx) {
        return Jinja.parse(template).render(ctx, JinjaFilters.globals(Clock.fixed(Instant.parse("2024-07-26T10:00:00Z"),
                ZoneOffset.UTC)));
    }

    @Test
    @SuppressWarnings("unchecked")
    void rendersAsPythonJinja2Does() throws IOException {
        JsonNode cases = JSON.readTree(Path.of("src/test/resources/golden/jinja-semantics.json").toFile());
        assertTrue(cases.size() >= 15);
        for (JsonNode c : cases) {
            Map<String, Object> ctx = JSON.convertValue(c.get("context"), Map.class);
            assertEquals(c.get("expected").asText(), render(c.get("template").asText(), ctx), c.get("template").asText());
        }
    }

    @Test
    void globalsOfHuggingFace() {
        assertEquals("26 Jul 2024", render("{{ strftime_now('%d %b %Y') }}", Map.of()));
        ChatTemplateException e = assertThrows(ChatTemplateException.class,
                () -> render("{% if messages|length > 1 %}{{ raise_exception('Only one message!') }}{% endif %}",
                        Map.of("messages", List.of(1, 2))));
        assertEquals("the chat template raised: Only one message!", e.getMessage());
    }

    @Test
    @Timeout(20)
    void sandboxBoundsTimeOutputAndDepth() {
        ChatTemplateException range = assertThrows(ChatTemplateException.class,
                () -> render("{% for i in range(1000000000) %}x{% endfor %}", Map.of()));
        assertTrue(range.getMessage().contains("range()"), range.getMessage());
        ChatTemplateException steps = assertThrows(ChatTemplateException.class,
                () -> render("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}", Map.of()));
        assertTrue(steps.getMessage().contains("steps"), steps.getMessage());
        ChatTemplateException output = assertThrows(ChatTemplateException.class,
                () -> render("{% for i in range(99999) %}{{ 'x' * 100000 }}{% endfor %}", Map.of()));
        assertTrue(output.getMessage().contains("characters"), output.getMessage());
        ChatTemplateException depth = assertThrows(ChatTemplateException.class,
                () -> render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", Map.of()));
        assertTrue(depth.getMessage().contains("nested"), depth.getMessage());
        ChatTemplateException deep = assertThrows(ChatTemplateException.class,
                () -> Jinja.parse("{% if 1 %}".repeat(100_000)));
        assertTrue(deep.getMessage().contains("nested") || deep.getMessage().contains("missing"), deep.getMessage());
    }

    @Test
    void noWayOutToJavaOrFiles() {
        // only the interpreter's own value kinds exist: no Java methods, classes, imports or includes
        assertEquals("", render("{{ ''.getClass }}{{ x.class }}{{ x.__class__ }}", Map.of("x", Map.of())));
        assertThrows(ChatTemplateException.class, () -> render("{{ ''.getClass() }}", Map.of()));
        assertThrows(ChatTemplateException.class, () -> render("{% include '/etc/passwd' %}", Map.of()));
        assertThrows(ChatTemplateException.class, () -> render("{% import 'x' as y %}", Map.of()));
        // lists are immutable, as in HF's ImmutableSandboxedEnvironment
        assertThrows(ChatTemplateException.class, () -> render("{% set l = [] %}{{ l.append(1) }}", Map.of()));
    }

    @Test
    void badTemplatesNameTheLineAndProblem() {
        ChatTemplateException unclosed = assertThrows(ChatTemplateException.class,
                () -> Jinja.parse("line one\n{% for m in messages %}{{ m }}"));
        assertTrue(unclosed.getMessage().contains("endfor"), unclosed.getMessage());
        ChatTemplateException filter = assertThrows(ChatTemplateException.class,
                () -> render("\n\n{{ x | nosuchfilter }}", Map.of("x", 1)));
        assertTrue(filter.getMessage().contains("line 3") && filter.getMessage().contains("nosuchfilter"),
                filter.getMessage());
        ChatTemplateException type = assertThrows(ChatTemplateException.class, () -> render("{{ 'a' + 1 }}", Map.of()));
        assertTrue(type.getMessage().contains("str") && type.getMessage().contains("int"), type.getMessage());
        assertThrows(ChatTemplateException.class, () -> Jinja.parse("{{ 'unterminated }}"));
        assertThrows(ChatTemplateException.class, () -> Jinja.parse("{% frobnicate %}"));
    }
}
