package ai.k2j.kernels.cuda;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Where the CUDA libraries are: the driver (libcuda), NVRTC and its builtins, and cuBLAS (optional).
 *
 * <p>Each is taken, in order, from a system property, an environment variable, or standard locations:
 * <ul>
 *   <li>driver: {@code -Dorg.lwjgl.cuda.libname}, {@code -Dk2j.cuda.libcuda}, {@code K2J_CUDA_LIBCUDA}, then
 *       /usr/lib/x86_64-linux-gnu, /usr/lib64, /usr/lib, /usr/lib/wsl/lib ({@code libcuda.so.1});</li>
 *   <li>toolkit library folder: {@code -Dk2j.cuda.toolkitLib}, {@code K2J_CUDA_TOOLKIT_LIB}, then
 *       {@code $CUDA_HOME}, {@code $CUDA_PATH}, /usr/local/cuda, /usr/local/cuda-* (newest first), each as
 *       {@code targets/x86_64-linux/lib} or {@code lib64}, then /usr/lib/x86_64-linux-gnu;</li>
 *   <li>NVRTC: {@code -Dorg.lwjgl.cuda.nvrtc.libname}, {@code -Dk2j.cuda.nvrtc}, {@code K2J_CUDA_NVRTC}, else the
 *       newest {@code libnvrtc.so.N} of the toolkit folder; its builtins likewise
 *       ({@code ...nvrtc-builtins.libname}, {@code k2j.cuda.nvrtcBuiltins}, {@code K2J_CUDA_NVRTC_BUILTINS}), else
 *       the fully versioned {@code libnvrtc-builtins.so.N.M.P} next to NVRTC (LWJGL needs an absolute path);</li>
 *   <li>cuBLAS: {@code -Dk2j.cuda.cublas}, {@code K2J_CUDA_CUBLAS}, else {@code libcublas.so.N} next to NVRTC.</li>
 * </ul>
 */
record CudaLibraries(Path libcuda, Path nvrtc, Path nvrtcBuiltins, Path cublas) {

    private static final List<String> DRIVER_DIRS = List.of(
            "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/lib/wsl/lib");

    /** Finds the driver library; throws {@link CudaException.Unavailable} naming every place looked at. */
    static Path locateDriver() {
        List<String> tried = new ArrayList<>();
        Path p = explicit("org.lwjgl.cuda.libname", null, tried);
        if (p == null) {
            p = explicit("k2j.cuda.libcuda", "K2J_CUDA_LIBCUDA", tried);
        }
        if (p != null) {
            return p;
        }
        for (String dir : DRIVER_DIRS) {
            Path c = Path.of(dir, "libcuda.so.1");
            tried.add(c.toString());
            if (Files.isRegularFile(c)) {
                return c;
            }
        }
        throw new CudaException.Unavailable("CUDA driver library libcuda.so.1 not found (no NVIDIA driver?); looked at "
                + String.join(", ", tried) + ". Set -Dk2j.cuda.libcuda=/abs/path/libcuda.so.1 or K2J_CUDA_LIBCUDA.");
    }

    /** Finds everything; the driver must exist (else Unavailable), NVRTC must exist (else CudaException). */
    static CudaLibraries locate() {
        Path libcuda = locateDriver();
        List<String> tried = new ArrayList<>();
        Path nvrtc = explicit("org.lwjgl.cuda.nvrtc.libname", null, tried);
        if (nvrtc == null) {
            nvrtc = explicit("k2j.cuda.nvrtc", "K2J_CUDA_NVRTC", tried);
        }
        List<Path> dirs = toolkitDirs();
        if (nvrtc == null) {
            for (Path dir : dirs) {
                tried.add(dir + "/libnvrtc.so.*");
                Path found = newest(dir, Pattern.compile("libnvrtc\\.so\\.(\\d+)"));
                if (found != null) {
                    nvrtc = found;
                    break;
                }
            }
        }
        if (nvrtc == null) {
            throw new CudaException("NVRTC (libnvrtc.so.N) not found; looked at " + String.join(", ", tried)
                    + ". Set -Dk2j.cuda.nvrtc=/abs/path/libnvrtc.so.13 (or K2J_CUDA_NVRTC), or K2J_CUDA_TOOLKIT_LIB to"
                    + " the folder holding it.", -1);
        }
        Path nvrtcDir = nvrtc.toAbsolutePath().getParent();
        String major = majorOf(nvrtc.getFileName().toString());

        List<String> triedB = new ArrayList<>();
        Path builtins = explicit("org.lwjgl.cuda.nvrtc-builtins.libname", null, triedB);
        if (builtins == null) {
            builtins = explicit("k2j.cuda.nvrtcBuiltins", "K2J_CUDA_NVRTC_BUILTINS", triedB);
        }
        if (builtins == null) {
            triedB.add(nvrtcDir + "/libnvrtc-builtins.so." + (major == null ? "*" : major + ".*"));
            builtins = mostVersioned(nvrtcDir, "libnvrtc-builtins.so.", major);
        }
        if (builtins == null) {
            throw new CudaException("NVRTC builtins (libnvrtc-builtins.so.N.M.P) not found; looked at "
                    + String.join(", ", triedB) + ". Set -Dk2j.cuda.nvrtcBuiltins=/abs/path/libnvrtc-builtins.so.13.0.88"
                    + " (or K2J_CUDA_NVRTC_BUILTINS).", -1);
        }

        Path cublas = explicit("k2j.cuda.cublas", "K2J_CUDA_CUBLAS", new ArrayList<>());
        if (cublas == null) {
            cublas = newest(nvrtcDir, Pattern.compile("libcublas\\.so\\.(\\d+)"));
        }
        if (cublas == null) {
            for (Path dir : dirs) {
                cublas = newest(dir, Pattern.compile("libcublas\\.so\\.(\\d+)"));
                if (cublas != null) {
                    break;
                }
            }
        }
        return new CudaLibraries(libcuda, nvrtc.toAbsolutePath(), builtins.toAbsolutePath(),
                cublas == null ? null : cublas.toAbsolutePath());
    }

    @Override
    public String toString() {
        return "libcuda=" + libcuda + ", nvrtc=" + nvrtc + ", nvrtc-builtins=" + nvrtcBuiltins + ", cublas="
                + (cublas == null ? "(not found)" : cublas);
    }

    // ------------------------------------------------------------------------------------------------ helpers

    /** A path from a system property or environment variable; a set-but-missing file is an error. */
    private static Path explicit(String property, String env, List<String> tried) {
        String v = System.getProperty(property);
        String source = "-D" + property;
        if ((v == null || v.isBlank()) && env != null) {
            v = System.getenv(env);
            source = "$" + env;
        }
        if (v == null || v.isBlank()) {
            return null;
        }
        Path p = Path.of(v.trim());
        tried.add(source + "=" + v);
        if (!p.isAbsolute()) {
            throw new CudaException(source + "=" + v + " must be an absolute path (LWJGL resolves relative names"
                    + " differently)", -1);
        }
        if (!Files.isRegularFile(p)) {
            throw new CudaException(source + "=" + v + ": no such file", -1);
        }
        return p;
    }

    private static List<Path> toolkitDirs() {
        List<Path> roots = new ArrayList<>();
        String lib = firstSet(System.getProperty("k2j.cuda.toolkitLib"), System.getenv("K2J_CUDA_TOOLKIT_LIB"));
        List<Path> dirs = new ArrayList<>();
        if (lib != null) {
            dirs.add(Path.of(lib));
        }
        for (String env : new String[] {System.getenv("CUDA_HOME"), System.getenv("CUDA_PATH")}) {
            if (env != null && !env.isBlank()) {
                roots.add(Path.of(env));
            }
        }
        roots.add(Path.of("/usr/local/cuda"));
        try (Stream<Path> s = Files.list(Path.of("/usr/local"))) {
            s.filter(p -> p.getFileName().toString().matches("cuda-\\d+(\\.\\d+)*"))
                    .sorted(Comparator.comparing((Path p) -> versionKey(p.getFileName().toString().substring(5)))
                            .reversed())
                    .forEach(roots::add);
        } catch (IOException | RuntimeException ignored) {
            // no /usr/local: nothing to add
        }
        for (Path r : roots) {
            dirs.add(r.resolve("targets/x86_64-linux/lib"));
            dirs.add(r.resolve("lib64"));
        }
        dirs.add(Path.of("/usr/lib/x86_64-linux-gnu"));
        return dirs;
    }

    private static String firstSet(String a, String b) {
        if (a != null && !a.isBlank()) {
            return a.trim();
        }
        return b != null && !b.isBlank() ? b.trim() : null;
    }

    /** The file in dir matching pattern (group 1 = major version) with the highest major. */
    private static Path newest(Path dir, Pattern pattern) {
        if (!Files.isDirectory(dir)) {
            return null;
        }
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> pattern.matcher(p.getFileName().toString()).matches())
                    .filter(Files::isRegularFile)
                    .max(Comparator.comparingInt(p -> {
                        Matcher m = pattern.matcher(p.getFileName().toString());
                        return m.matches() ? Integer.parseInt(m.group(1)) : -1;
                    }))
                    .orElse(null);
        } catch (IOException e) {
            return null;
        }
    }

    /** prefix + "N.M.P": the name with the most version parts (the real file, not a symlink name), major first. */
    private static Path mostVersioned(Path dir, String prefix, String major) {
        if (!Files.isDirectory(dir)) {
            return null;
        }
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> {
                        String n = p.getFileName().toString();
                        return n.startsWith(prefix) && n.substring(prefix.length()).matches("\\d+(\\.\\d+)*")
                                && (major == null || n.substring(prefix.length()).split("\\.")[0].equals(major));
                    })
                    .filter(Files::isRegularFile)
                    .max(Comparator.comparing(p -> versionKey(p.getFileName().toString().substring(prefix.length()))))
                    .orElse(null);
        } catch (IOException e) {
            return null;
        }
    }

    private static String majorOf(String soName) {
        Matcher m = Pattern.compile(".*\\.so\\.(\\d+).*").matcher(soName);
        return m.matches() ? m.group(1) : null;
    }

    /** "13.0.88" -> sortable key: more parts and higher numbers win. */
    private static String versionKey(String v) {
        StringBuilder sb = new StringBuilder();
        String[] parts = v.split("\\.");
        for (String part : parts) {
            try {
                sb.append(String.format("%08d", Integer.parseInt(part)));
            } catch (NumberFormatException e) {
                sb.append("00000000");
            }
        }
        return sb.toString();
    }
}
