package ai.k2j.cli;

import ai.k2j.engine.LanguageModel;
import ai.k2j.engine.ModelOptions;
import ai.k2j.engine.Npy;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** {@code k2j logits}: one prefill over the prompt ids; writes float32 logits [tokens, vocab] as .npy. */
final class LogitsCommand implements Command {

    static final VerbSpec SPEC = new VerbSpec("logits", "prompt logits as .npy", List.of(
            Flag.required("model", "DIR", "HF-style model directory"),
            Flag.required("prompt-ids", "1,2,3", "comma-separated token ids"),
            Flag.required("out", "FILE.npy", ".npy file to write: float32, shape [tokens, vocab], little-endian"),
            Flag.option("backend", "cpu|cuda|reference", "cpu", "compute backend")), null);

    @Override
    public VerbSpec spec() {
        return SPEC;
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
        String backend = args.string("backend", "cpu");
        args.finish();

        Path dir = Cli.modelDir(args);
        long t0 = System.nanoTime();
        try (LanguageModel model = LanguageModel.load(dir, ModelOptions.defaults().withBackend(backend))) {
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

    /** Writes float32 [rows, cols] as .npy through the engine's {@link Npy}, creating missing parent directories. */
    static void writeNpy(Path file, float[][] rows) {
        Path parent = file.toAbsolutePath().getParent();
        try {
            if (parent != null) {
                Files.createDirectories(parent);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create " + parent + ": " + e.getMessage(), e);
        }
        Npy.writeFloat32(file, rows);
    }
}
