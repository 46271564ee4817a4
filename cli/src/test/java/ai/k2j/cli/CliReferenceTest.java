package ai.k2j.cli;

import ai.k2j.testing.TestCheckpoints;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The verbs' flag declarations ({@link VerbSpec}) against the README's CLI reference, {@code k2j --help} and each
 * {@code k2j VERB --help}. In the README, each {@code ### verb[, verb...]} section's plain code block is exactly
 * the generated synopses of its verbs; every {@code --flag} in the section's prose and {@code ./k2j} examples is a
 * declared flag of one of them. {@code -Dk2j.updateReadme=true} rewrites those blocks from the declarations
 * (then review the diff).
 */
class CliReferenceTest {

    private static final Pattern FLAG = Pattern.compile("(?<![\\w-])--([a-z][a-z0-9-]*)");

    private static Path readme() {
        return TestCheckpoints.repoRoot().resolve("README.md");
    }

    /** One {@code ###} section of the README's CLI reference. */
    private record Section(String heading, List<String> verbs, String body, int bodyStart) {
    }

    private static List<Section> sections(String readme) {
        int start = readme.indexOf("\n## CLI reference\n");
        assertTrue(start >= 0, "README has a '## CLI reference' section");
        int end = readme.indexOf("\n## ", start + 1);
        String ref = readme.substring(0, end < 0 ? readme.length() : end);
        List<Section> out = new ArrayList<>();
        Matcher h = Pattern.compile("\n### ([^\n]+)\n").matcher(ref);
        List<int[]> spans = new ArrayList<>();
        List<String> headings = new ArrayList<>();
        while (h.find(start)) {
            spans.add(new int[] {h.start(), h.end()});
            headings.add(h.group(1).strip());
            start = h.end();
        }
        for (int i = 0; i < spans.size(); i++) {
            int bodyStart = spans.get(i)[1];
            int bodyEnd = i + 1 < spans.size() ? spans.get(i + 1)[0] : ref.length();
            List<String> verbs = new ArrayList<>();
            for (String part : headings.get(i).split(",")) {
                if (Main.VERBS.containsKey(part.strip())) {
                    verbs.add(part.strip());
                }
            }
            out.add(new Section(headings.get(i), verbs, ref.substring(bodyStart, bodyEnd), bodyStart));
        }
        return out;
    }

    private static String expectedBlock(Section s) {
        StringBuilder b = new StringBuilder();
        for (String verb : s.verbs()) {
            b.append(spec(verb).synopsis());
        }
        return b.toString();
    }

    private static VerbSpec spec(String verb) {
        return Main.VERBS.get(verb).get().spec();
    }

    /** The plain (no language) fenced blocks of a section body: [start of content, end of content]. */
    private static List<int[]> plainBlocks(String body) {
        List<int[]> out = new ArrayList<>();
        Matcher m = Pattern.compile("(?m)^```\n(.*?)^```$", Pattern.DOTALL).matcher(body);
        while (m.find()) {
            out.add(new int[] {m.start(1), m.end(1)});
        }
        return out;
    }

    /** Rewrites each verb section's first plain block with the generated synopses. */
    private static String regenerated(String readme) {
        StringBuilder b = new StringBuilder(readme);
        List<Section> secs = sections(readme);
        for (int i = secs.size() - 1; i >= 0; i--) {
            Section s = secs.get(i);
            List<int[]> blocks = plainBlocks(s.body());
            if (s.verbs().isEmpty() || blocks.isEmpty()) {
                continue;
            }
            int[] blk = blocks.getFirst();
            b.replace(s.bodyStart() + blk[0], s.bodyStart() + blk[1], expectedBlock(s));
        }
        return b.toString();
    }

    @Test
    void readmeUsageBlocksAreTheGeneratedSynopses() throws IOException {
        String readme = Files.readString(readme(), StandardCharsets.UTF_8);
        if (Boolean.getBoolean("k2j.updateReadme")) {
            readme = regenerated(readme);
            Files.writeString(readme(), readme, StandardCharsets.UTF_8);
        }
        Set<String> documented = new HashSet<>();
        for (Section s : sections(readme)) {
            if (s.verbs().isEmpty()) {
                continue;
            }
            for (String v : s.verbs()) {
                assertTrue(documented.add(v), "k2j " + v + " has two README sections");
            }
            List<int[]> blocks = plainBlocks(s.body());
            assertEquals(1, blocks.size(), "'### " + s.heading() + "' has one plain ``` block (the usage)");
            String actual = s.body().substring(blocks.getFirst()[0], blocks.getFirst()[1]);
            assertEquals(expectedBlock(s), actual, "README '### " + s.heading() + "': the usage block differs from"
                    + " the verbs' declarations; rerun with -Dk2j.updateReadme=true to regenerate it");
        }
        assertEquals(Main.VERBS.keySet(), documented, "every verb has a README section and no other verb does");
    }

    @Test
    void everyFlagTheReadmeMentionsIsDeclared() throws IOException {
        String readme = Files.readString(readme(), StandardCharsets.UTF_8);
        Set<String> anyVerb = new HashSet<>();
        Main.VERBS.keySet().forEach(v -> spec(v).flags().forEach(f -> anyVerb.add(f.name())));
        for (Section s : sections(readme)) {
            Set<String> allowed = new HashSet<>();
            s.verbs().forEach(v -> spec(v).flags().forEach(f -> allowed.add(f.name())));
            if (s.verbs().isEmpty()) {
                allowed.addAll(anyVerb);
            }
            // prose: outside fenced blocks
            String prose = s.body().replaceAll("(?ms)^```.*?^```$", "");
            Matcher m = FLAG.matcher(prose);
            while (m.find()) {
                assertTrue(allowed.contains(m.group(1)), "README '### " + s.heading() + "' mentions --" + m.group(1)
                        + ", which " + (s.verbs().isEmpty() ? "no verb" : String.join("/", s.verbs()))
                        + " declares");
            }
            // examples: ./k2j VERB ... lines in any block
            for (String line : s.body().split("\n")) {
                Matcher k = Pattern.compile("\\./k2j ([a-z-]+)(.*)").matcher(line);
                if (k.find() && Main.VERBS.containsKey(k.group(1))) {
                    VerbSpec v = spec(k.group(1));
                    Matcher f = FLAG.matcher(k.group(2));
                    while (f.find()) {
                        assertNotNull(v.flag(f.group(1)), "README example '" + line.strip() + "': k2j " + v.verb()
                                + " does not declare --" + f.group(1));
                    }
                }
            }
        }
    }

    @Test
    void helpAndTopLevelUsageComeFromTheDeclarations() {
        CliRunner top = CliRunner.run("--help");
        assertEquals(0, top.code(), top.toString());
        for (var e : Main.VERBS.entrySet()) {
            VerbSpec v = e.getValue().get().spec();
            assertEquals(e.getKey(), v.verb());
            assertTrue(top.out().contains("  " + v.verb() + " ") && top.out().contains(v.shortSynopsis()),
                    "k2j --help lists " + v.verb() + " with " + v.shortSynopsis());
            CliRunner help = CliRunner.run(v.verb(), "--help");
            assertEquals(0, help.code(), help.toString());
            assertEquals(v.help(), help.out());
            for (Flag f : v.flags()) {
                assertTrue(help.out().contains("  " + f.form()), v.verb() + " --help shows " + f.form());
                if (f.defaultValue() != null) {
                    assertTrue(help.out().replaceAll("\\s+", " ").contains("(default: " + f.defaultValue() + ")"),
                            v.verb() + " --help shows the default of --" + f.name());
                }
            }
            for (String line : help.out().split("\n")) {
                assertTrue(line.length() <= VerbSpec.WIDTH, "wrapped: " + line);
            }
        }
    }

    @Test
    void synopsisGroupsAlternativesAndBracketsOptionalFlags() {
        VerbSpec v = new VerbSpec("x", "test", List.of(Flag.required("a", "A", "a"),
                Flag.required("b", "B", "b").inGroup("g", true), Flag.toggle("c", "c").inGroup("g", true),
                Flag.option("d", "N", "3", "d"), Flag.toggle("e", "e")), "notes");
        assertEquals("./k2j x --a A (--b B | --c) [--d N] [--e]\n", v.synopsis());
        assertEquals("--a A (--b B | --c) [flags]", v.shortSynopsis());
        assertTrue(v.help().contains("  --d N  d (default: 3)\n"), v.help());
        assertTrue(v.help().endsWith("notes\n"), v.help());
        assertThrows(IllegalStateException.class, () -> new VerbSpec("y", "dup", List.of(Flag.toggle("a", "1"),
                Flag.toggle("a", "2")), null));
    }

    @Test
    void readingAnUndeclaredFlagOrTheWrongFormIsAProgrammingError() {
        VerbSpec v = new VerbSpec("x", "test", List.of(Flag.option("n", "N", "1", "n"), Flag.toggle("s", "s")), null);
        Args a = Args.parse(new String[] {"--n", "2", "--s"}).declare(v);
        assertEquals(2, a.integer("n", 1));
        assertTrue(a.flag("s"));
        assertThrows(IllegalStateException.class, () -> a.has("undeclared"));
        assertThrows(IllegalStateException.class, () -> a.flag("n"));
        assertThrows(IllegalStateException.class, () -> a.string("s", null));
        // a default the code falls back to must be the declared one (plain values only)
        VerbSpec d = new VerbSpec("x", "test", List.of(Flag.option("k", "K", "3", "k"), Flag.option("b", "B", "cpu",
                "b"), Flag.option("t", "N", "all processors", "t")), null);
        assertThrows(IllegalStateException.class, () -> Args.parse(new String[0]).declare(d).integer("k", 4));
        assertEquals(3, Args.parse(new String[0]).declare(d).integer("k", 3));
        assertEquals(9, Args.parse(new String[] {"--k", "9"}).declare(d).integer("k", 4), "given: no default used");
        assertThrows(IllegalStateException.class, () -> Args.parse(new String[0]).declare(d).string("b", "cuda"));
        assertEquals("cpu", Args.parse(new String[0]).declare(d).string("b", "cpu"));
        assertEquals(0, Args.parse(new String[0]).declare(d).integer("t", 0), "descriptive defaults are not compared");
        // what the user gives that the verb does not declare stays a usage error (exit 2)
        CliRunner r = CliRunner.run("info", "--model", "m", "--modle", "x");
        assertEquals(2, r.code(), r.toString());
        assertTrue(r.err().contains("unknown flag --modle"), r.toString());
    }
}
