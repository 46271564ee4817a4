package ai.k2j.server;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * A seeded mutation fuzzer over the {@link ParserTargets} (what Jazzer would do with coverage, done blind but
 * structure-aware): each input is a committed corpus file ({@code ParserFuzzTestInputs/<target>/}) mutated by
 * byte flips, JSON-significant bytes, extreme numbers, deleted/duplicated ranges and splices. The default run is
 * bounded ({@value #DEFAULT_RUNS} inputs per target, the same seed each time); {@code -Dk2j.fuzz.seconds=S} runs
 * each target for S seconds from a random seed (printed), for longer runs. A failing input is written to
 * {@code target/fuzz-findings/} and its exception fails the test.
 */
@Timeout(value = 30, unit = TimeUnit.MINUTES)
class ParserMutationFuzzTest {

    static final int DEFAULT_RUNS = 1500;
    static final Path CORPUS = Path.of("src/test/resources/ai/k2j/server/ParserFuzzTestInputs");

    static final String[] TOKENS = {"\"", "{", "}", "[", "]", ",", ":", "-", "0", "-1", "1e309", "-0", "null",
            "true", "1000000000", "2147483648", "9223372036854775808", "18446744073709551616", "1.5", "NaN", "\\u0000",
            "\\ud800", "\"\":", "<|im_start|>", "<|im_end|>", "\u00ff", "\uD83D\uDE00", "\n", " ", "\"F32\"",
            "\"BF16\"", "\"Q8_0\"", "\"data_offsets\"", "\"shape\"", "\"merges\"", "\"vocab\"", "\"added_tokens\"",
            "\"id\"", "\"type\"", "\"messages\"", "\"content\"", "\"stop\"", "\"max_tokens\"", "\"n\"", "\"prompt\"",
            "[[]]", "{}", "\"\"", "\"a\"", "[1,2,3]", "Split", "\"Regex\"", "\"(?i)\"", "\"\\\\p{L}+\"", "\"[\"",
            "\"(\"", "\"*+\""};

    @Test
    void safetensors() throws IOException {
        fuzz("safetensors", ParserTargets::safetensors);
    }

    @Test
    void configJson() throws IOException {
        fuzz("configJson", ParserTargets::configJson);
    }

    @Test
    void tokenizerJson() throws IOException {
        fuzz("tokenizerJson", ParserTargets::tokenizerJson);
    }

    @Test
    void requestJson() throws IOException {
        fuzz("requestJson", ParserTargets::requestJson);
    }

    static void fuzz(String name, ParserTargets.Target target) throws IOException {
        List<byte[]> seeds = new ArrayList<>();
        try (Stream<Path> files = Files.list(CORPUS.resolve(name)).sorted()) {
            for (Path f : (Iterable<Path>) files::iterator) {
                seeds.add(Files.readAllBytes(f));
            }
        }
        for (byte[] seed : seeds) {
            check(name, target, seed); // the corpus itself replays
        }
        long seconds = Long.getLong("k2j.fuzz.seconds", 0);
        long rngSeed = seconds > 0 ? System.nanoTime() : 14;
        SplittableRandom rnd = new SplittableRandom(rngSeed);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        long runs = 0;
        while (seconds > 0 ? System.nanoTime() < deadline : runs < DEFAULT_RUNS) {
            byte[] input = seeds.get(rnd.nextInt(seeds.size()));
            for (int k = 1 + rnd.nextInt(4); k > 0; k--) {
                input = mutate(input, seeds, rnd);
            }
            check(name, target, input);
            runs++;
        }
        if (seconds > 0) {
            System.out.printf("fuzz %s: %d inputs in %d s (seed %d), no finding%n", name, runs, seconds, rngSeed);
        }
    }

    static void check(String name, ParserTargets.Target target, byte[] input) throws IOException {
        try {
            target.run(input);
        } catch (Throwable t) {
            Path dir = Files.createDirectories(Path.of("target/fuzz-findings"));
            Path file = dir.resolve(name + "-" + Integer.toHexString(java.util.Arrays.hashCode(input)));
            Files.write(file, input);
            StringWriter trace = new StringWriter();
            t.printStackTrace(new PrintWriter(trace));
            fail(name + ": " + t + " on the input saved as " + file.toAbsolutePath() + "\n" + trace);
        }
    }

    static byte[] mutate(byte[] in, List<byte[]> seeds, SplittableRandom rnd) {
        int n = in.length;
        int at = n == 0 ? 0 : rnd.nextInt(n + 1);
        return switch (rnd.nextInt(8)) {
            case 0 -> { // flip a bit
                if (n == 0) {
                    yield in;
                }
                byte[] out = in.clone();
                int i = rnd.nextInt(n);
                out[i] ^= (byte) (1 << rnd.nextInt(8));
                yield out;
            }
            case 1 -> { // a random byte
                if (n == 0) {
                    yield new byte[] {(byte) rnd.nextInt(256)};
                }
                byte[] out = in.clone();
                out[rnd.nextInt(n)] = (byte) rnd.nextInt(256);
                yield out;
            }
            case 2, 3 -> splice(in, at, at, TOKENS[rnd.nextInt(TOKENS.length)].getBytes(StandardCharsets.UTF_8));
            case 4 -> { // replace a run of digits (a number) by a token
                int s = indexOfDigit(in, at);
                if (s < 0) {
                    yield in;
                }
                int e = s;
                while (e < n && (Character.isDigit(in[e]) || in[e] == '.' || in[e] == 'e' || in[e] == '-')) {
                    e++;
                }
                yield splice(in, s, e, TOKENS[rnd.nextInt(TOKENS.length)].getBytes(StandardCharsets.UTF_8));
            }
            case 5 -> { // delete a range
                int len = n == at ? 0 : 1 + rnd.nextInt(Math.min(64, n - at));
                yield splice(in, at, at + len, new byte[0]);
            }
            case 6 -> { // duplicate a range
                int len = n == at ? 0 : 1 + rnd.nextInt(Math.min(256, n - at));
                byte[] piece = java.util.Arrays.copyOfRange(in, at, at + len);
                yield splice(in, at, at, piece);
            }
            default -> { // splice in a piece of another seed
                byte[] other = seeds.get(rnd.nextInt(seeds.size()));
                if (other.length == 0) {
                    yield in;
                }
                int s = rnd.nextInt(other.length);
                int e = s + rnd.nextInt(Math.min(128, other.length - s) + 1);
                yield splice(in, at, at, java.util.Arrays.copyOfRange(other, s, e));
            }
        };
    }

    static int indexOfDigit(byte[] in, int from) {
        for (int i = 0; i < in.length; i++) {
            int j = (from + i) % in.length;
            if (Character.isDigit(in[j])) {
                return j;
            }
        }
        return -1;
    }

    static byte[] splice(byte[] in, int from, int to, byte[] insert) {
        byte[] out = new byte[in.length - (to - from) + insert.length];
        System.arraycopy(in, 0, out, 0, from);
        System.arraycopy(insert, 0, out, from, insert.length);
        System.arraycopy(in, to, out, from + insert.length, in.length - to);
        return out;
    }
}
