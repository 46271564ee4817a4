package ai.k2j.loaders;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 14: a model file that is not a regular file (a FIFO would block reads forever, /dev/zero never ends) is
 * refused with a message saying what it is, on copies of models/demo/target. The timeout is the hang check.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class ModelFilesTest {

    @TempDir
    Path tmp;

    static Path demoTarget() {
        return Path.of("").toAbsolutePath().getParent().resolve("models/demo/target");
    }

    /** A copy of the demo target with {@code name} replaced by what {@code replace} puts there. */
    private Path copyWith(String name, Replacement replace) throws Exception {
        Path dir = Files.createDirectories(tmp.resolve(name + "-" + System.nanoTime()));
        try (Stream<Path> files = Files.list(demoTarget())) {
            for (Path f : (Iterable<Path>) files::iterator) {
                if (!f.getFileName().toString().equals(name)) {
                    Files.copy(f, dir.resolve(f.getFileName()));
                }
            }
        }
        replace.at(dir.resolve(name));
        return dir;
    }

    interface Replacement {
        void at(Path file) throws Exception;
    }

    static void fifo(Path file) throws IOException, InterruptedException {
        assertEquals(0, new ProcessBuilder("mkfifo", file.toString()).start().waitFor());
    }

    static void devZero(Path file) throws IOException {
        Files.createSymbolicLink(file, Path.of("/dev/zero"));
    }

    private String failure(Path dir) {
        return assertThrows(ModelFormatException.class, () -> Checkpoint.open(dir).close()).getMessage();
    }

    @Test
    void theCopiedDemoOpens() {
        Checkpoint.open(demoTarget()).close();
    }

    @Test
    void aFifoConfigJsonIsNamedNotRead() throws Exception {
        String m = failure(copyWith("config.json", ModelFilesTest::fifo));
        assertTrue(m.contains("config.json") && m.contains("FIFO (named pipe)"), m);
    }

    @Test
    void aConfigJsonLinkedToDevZeroSaysWhatItIs() throws Exception {
        String m = failure(copyWith("config.json", ModelFilesTest::devZero));
        assertTrue(m.contains("config.json") && m.contains("character device") && m.contains("/dev/zero"), m);
    }

    @Test
    void aFifoGenerationConfigIsNamed() throws Exception {
        String m = failure(copyWith("generation_config.json", ModelFilesTest::fifo));
        assertTrue(m.contains("generation_config.json") && m.contains("FIFO"), m);
    }

    @Test
    void aFifoIndexIsNamed() throws Exception {
        String m = failure(copyWith("model.safetensors.index.json", ModelFilesTest::fifo));
        assertTrue(m.contains("model.safetensors.index.json") && m.contains("FIFO"), m);
    }

    @Test
    void aShardLinkedToDevZeroOrADirectoryIsNamed() throws Exception {
        String m = failure(copyWith("model-00001-of-00002.safetensors", ModelFilesTest::devZero));
        assertTrue(m.contains("model-00001-of-00002.safetensors") && m.contains("character device"), m);
        m = failure(copyWith("model-00002-of-00002.safetensors", Files::createDirectory));
        assertTrue(m.contains("model-00002-of-00002.safetensors") && m.contains("a directory"), m);
    }

    @Test
    void aDanglingSymlinkIsNotCalledMissing() throws Exception {
        String m = failure(copyWith("config.json", f -> Files.createSymbolicLink(f, f.resolveSibling("gone.json"))));
        assertTrue(m.contains("symbolic link") && m.contains("gone.json") && m.contains("does not exist"), m);
    }

    @Test
    void aSingleFileCheckpointLinkedToDevZeroIsNamed() throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("single"));
        Files.copy(demoTarget().resolve("config.json"), dir.resolve("config.json"));
        devZero(dir.resolve("model.safetensors"));
        String m = failure(dir);
        assertTrue(m.contains("model.safetensors") && m.contains("character device"), m);
        assertTrue(ModelFiles.problem(dir.resolve("config.json")) == null);
    }
}
