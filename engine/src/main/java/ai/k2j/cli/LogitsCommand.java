package ai.k2j.cli;

import ai.k2j.engine.LanguageModel;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.io.PrintStream;

/** {@code k2j logits}: one prefill over the prompt ids; writes float32 logits [tokens, vocab] as .npy. */
final class LogitsCommand implements Command {

    @Override
    public String usage() {
        return """
                usage: k2j logits --model DIR --prompt-ids 1,2,3 --out FILE.npy
                  --model DIR        HF-style model directory
                  --prompt-ids IDS   comma-separated token ids
                  --out FILE         .npy file to write: float32, shape [tokens, vocab], little-endian
                """;
    }

    @Override
    public int run(Args args, PrintStream out, PrintStream err) {
        args.path("model");
        int[] ids = args.ints("prompt-ids");
        for (int id : ids) {
            if (id < 0) {
                throw new UsageException("--prompt-ids must be non-negative token ids, got " + id);
            }
        }
        Path file = args.path("out");
        args.finish();

        Path dir = Cli.modelDir(args);
        long t0 = System.nanoTime();
        try (LanguageModel model = LanguageModel.load(dir)) {
            int vocab = model.config().vocabSize();
            for (int id : ids) {
                if (id >= vocab) {
                    throw new IllegalArgumentException("prompt id " + id + " is outside the vocabulary (size "
                            + vocab + ") of " + dir);
                }
            }
            float[][] logits = model.logits(ids);
            writeNpy(file, logits);
            err.printf(java.util.Locale.ROOT, "[k2j] wrote %s: float32 [%d, %d] in %.2f s%n", file, logits.length,
                    logits.length == 0 ? 0 : logits[0].length, (System.nanoTime() - t0) / 1e9);
        }
        return 0;
    }

    /**
     * Writes a float32 C-order .npy (format version 1.0). Streams row by row; writes to a temporary name and
     * renames so a failed run never leaves a truncated file. (A private writer until the engine's Npy lands.)
     */
    static void writeNpy(Path file, float[][] rows) {
        int cols = rows.length == 0 ? 0 : rows[0].length;
        for (float[] r : rows) {
            if (r.length != cols) {
                throw new IllegalArgumentException("ragged logits: rows of " + cols + " and " + r.length);
            }
        }
        String dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + rows.length + ", " + cols + "), }";
        // magic(6) + version(2) + header length(2) + dict + padding + '\n' is a multiple of 64, as numpy writes.
        int unpadded = 10 + dict.length() + 1;
        int total = (unpadded + 63) / 64 * 64;
        String header = dict + " ".repeat(total - unpadded) + "\n";
        try {
            Path parent = file.toAbsolutePath().getParent();
            if (parent != null) {
                Files.createDirectories(parent);
            }
            Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING)) {
                ByteBuffer head = ByteBuffer.allocate(total).order(ByteOrder.LITTLE_ENDIAN);
                head.put((byte) 0x93).put("NUMPY".getBytes(StandardCharsets.US_ASCII)).put((byte) 1).put((byte) 0);
                head.putShort((short) (total - 10)).put(header.getBytes(StandardCharsets.US_ASCII)).flip();
                writeFully(ch, head);
                ByteBuffer row = ByteBuffer.allocate(cols * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
                for (float[] r : rows) {
                    row.clear();
                    row.asFloatBuffer().put(r);
                    row.position(0).limit(cols * Float.BYTES);
                    writeFully(ch, row);
                }
            }
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
    }

    private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }
}
