package ai.k2j.cli;

import ai.k2j.engine.ModelOptions;
import ai.k2j.kernels.KvPrecision;
import ai.k2j.loaders.WeightFormat;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/** Small helpers shared by the verbs. */
final class Cli {

    static final ObjectMapper JSON = new ObjectMapper();

    private Cli() {
    }

    /** A model directory that exists; otherwise a failure naming it (exit 1). */
    static Path modelDir(Args args) {
        Path dir = args.path("model");
        if (!isModel(dir)) {
            throw new IllegalArgumentException("model directory (or GGUF file) not found: " + dir);
        }
        return dir;
    }

    /** {@code --kv-cache}: bf16 (the default), fp8 or f32. */
    static KvPrecision kvPrecision(Args args) {
        String value = args.string("kv-cache", ModelOptions.DEFAULT_KV_CACHE.flagName());
        try {
            return KvPrecision.parse(value);
        } catch (IllegalArgumentException e) {
            throw new UsageException("--kv-cache must be bf16, fp8 or f32, got '" + value + "'");
        }
    }

    /** A model is a checkpoint directory or a GGUF file. */
    static boolean isModel(Path path) {
        return Files.isDirectory(path) || (Files.isRegularFile(path) && ai.k2j.loaders.GgufFile.isGguf(path));
    }

    /** A {@code --quant}-style flag's value: null (not given) or a block format, q8_0 or q4_0. */
    static WeightFormat quantFormat(String value, String flag) {
        if (value == null) {
            return null;
        }
        WeightFormat f;
        try {
            f = WeightFormat.parse(value);
        } catch (IllegalArgumentException e) {
            throw new UsageException(flag + " must be q8_0 or q4_0, got '" + value + "'");
        }
        if (f != WeightFormat.Q8_0 && f != WeightFormat.Q4_0) {
            throw new UsageException(flag + " must be q8_0 or q4_0, got '" + value + "'");
        }
        return f;
    }

    /** An optional integer flag that must be at least {@code min} when given. */
    static int intAtLeast(Args args, String key, int dflt, int min) {
        int v = args.integer(key, dflt);
        if (args.has(key) && v < min) {
            throw new UsageException("--" + key + " must be >= " + min + ", got " + v);
        }
        return v;
    }

    /** Turns {@code \n}, {@code \t}, {@code \r} and {@code \\} written on a command line into the characters. */
    static String unescape(String s) {
        StringBuilder b = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\' && i + 1 < s.length()) {
                char n = s.charAt(i + 1);
                switch (n) {
                    case 'n' -> { b.append('\n'); i++; }
                    case 't' -> { b.append('\t'); i++; }
                    case 'r' -> { b.append('\r'); i++; }
                    case '\\' -> { b.append('\\'); i++; }
                    default -> b.append(c);
                }
            } else {
                b.append(c);
            }
        }
        return b.toString();
    }

    /** 1536 → "1.5 KiB"; binary units, as `ls -h` prints them. */
    static String bytes(long n) {
        if (n < 1024) {
            return n + " B";
        }
        String[] units = {"KiB", "MiB", "GiB", "TiB"};
        double v = n;
        int u = -1;
        while (v >= 1024 && u < units.length - 1) {
            v /= 1024;
            u++;
        }
        return String.format(Locale.ROOT, "%.2f %s", v, units[u]);
    }

    /** 7615616512 → "7.62 B". */
    static String count(long n) {
        if (n >= 1_000_000_000L) {
            return String.format(Locale.ROOT, "%.2f B", n / 1e9);
        }
        if (n >= 1_000_000L) {
            return String.format(Locale.ROOT, "%.2f M", n / 1e6);
        }
        if (n >= 1_000L) {
            return String.format(Locale.ROOT, "%.2f K", n / 1e3);
        }
        return Long.toString(n);
    }
}
