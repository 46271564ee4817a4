package ai.k2j.loaders;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;

/**
 * Every model file is opened through {@link #requireRegularFile}: reading a FIFO blocks forever and reading
 * {@code /dev/zero} never ends, so anything that is not a regular file (after following symlinks) is refused
 * with a message saying what it is, before it is opened.
 */
public final class ModelFiles {
    private ModelFiles() {
    }

    /** True when something (a file, a link, even a dangling one) is at {@code path}. */
    public static boolean present(Path path) {
        return Files.exists(path, LinkOption.NOFOLLOW_LINKS);
    }

    /**
     * Returns {@code file} when it is a regular file after symlinks; otherwise a {@link ModelFormatException}
     * naming the file and what it is instead (missing, a dangling link, a directory, a FIFO, a device, a socket).
     */
    public static Path requireRegularFile(Path file) {
        String problem = problem(file);
        if (problem != null) {
            throw new ModelFormatException(file + ": " + problem);
        }
        return file;
    }

    /** Null for a regular file, else what is wrong with it, in words. */
    public static String problem(Path file) {
        BasicFileAttributes attrs;
        try {
            attrs = Files.readAttributes(file, BasicFileAttributes.class);
        } catch (NoSuchFileException e) {
            if (Files.isSymbolicLink(file)) {
                return "is a symbolic link to " + linkTarget(file) + ", which does not exist";
            }
            return "file not found";
        } catch (IOException e) {
            return "cannot read its attributes: " + e;
        }
        if (attrs.isRegularFile()) {
            return null;
        }
        String what = attrs.isDirectory() ? "a directory" : kindOfOther(file);
        String via = Files.isSymbolicLink(file) ? " (a symbolic link to " + linkTarget(file) + ")" : "";
        return "is " + what + via + ", not a regular file";
    }

    private static String kindOfOther(Path file) {
        try {
            int mode = (Integer) Files.getAttribute(file, "unix:mode");
            return switch (mode & 0170000) {
                case 0010000 -> "a FIFO (named pipe)";
                case 0020000 -> "a character device";
                case 0060000 -> "a block device";
                case 0140000 -> "a socket";
                default -> "a special file";
            };
        } catch (IOException | UnsupportedOperationException | IllegalArgumentException | ClassCastException e) {
            return "a special file (a device, pipe or socket)";
        }
    }

    private static String linkTarget(Path link) {
        try {
            return Files.readSymbolicLink(link).toString();
        } catch (IOException e) {
            return "an unreadable target";
        }
    }
}
