package ai.k2j.cli;

import ai.k2j.engine.LanguageModel;
import ai.k2j.engine.GenerationRequest;
import ai.k2j.engine.ModelOptions;
import ai.k2j.engine.SamplingParams;
import ai.k2j.kernels.KvPrecision;
import ai.k2j.loaders.WeightFormat;

import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * {@code k2j quant-accuracy}: how far a quantized model's next-token distributions are from the unquantized
 * model's on a fixed text. Both models read the same token ids (teacher forcing); at every position it takes
 * KL(P_ref ‖ P_quant) of the softmaxed logits, whether the argmaxes agree, and each model's negative
 * log-likelihood of the actual next token. Reports the mean KL, the top-1 agreement and both perplexities.
 *
 * <p>With {@code --kv-cache bf16|fp8} the candidate is the same checkpoint with its KV cache in that precision (the
 * reference keeps an exact float32 cache; weights are the checkpoint's in both), and with {@code --generate N} the
 * scored ids are the input followed by N tokens the reference generates greedily: a long trace whose later
 * positions attend over many cached keys. Then it also reports how many of those N tokens the candidate, decoding
 * greedily on its own from the same input, reproduces before its first different token (docs/kv-cache.md).
 */
final class QuantAccuracyCommand implements Command {

    static final int DEFAULT_MAX_TOKENS = 512;

    static final VerbSpec SPEC = new VerbSpec("quant-accuracy", "KL divergence vs the unquantized model",
            List.of(Flag.required("model", "DIR", "the reference checkpoint (its own dtype, e.g. BF16)"),
                    // exactly one of the three is required (checked in run; the usage line keeps to its width)
                    Flag.required("quant", "q8_0|q4_0", "compare with the same checkpoint quantized at load (one of"
                            + " --quant, --quantized, --kv-cache is required)").inGroup("other", false),
                    Flag.required("quantized", "DIR", "or with a checkpoint written by `k2j quantize`")
                            .inGroup("other", false),
                    Flag.required("kv-cache", "bf16|fp8", "or with the same checkpoint, its KV cache in this precision"
                            + " (the reference's is f32)").inGroup("other", false),
                    Flag.option("generate", "N", "0", "score the input followed by N tokens the reference generates"
                            + " greedily; also count how many of them the candidate reproduces"),
                    Flag.option("ctx", "N", "the model's, capped at 8192", "context length to allocate"),
                    Flag.required("text", "FILE", "text to score (needs the model's tokenizer.json)")
                            .inGroup("input", true),
                    Flag.required("tokens", "N", "instead of text, N pseudo-random token ids").inGroup("input", true),
                    Flag.option("seed", "S", "0", "seed of the --tokens ids"),
                    Flag.option("max-tokens", "N", String.valueOf(DEFAULT_MAX_TOKENS), "score at most the first N"
                            + " tokens of the text"),
                    Flag.option("threads", "N", "all processors", "CPU threads"),
                    Flag.toggle("json", "one JSON object instead of the text report")), null);

    @Override
    public VerbSpec spec() {
        return SPEC;
    }

    /** Accuracy of candidate logits against reference logits over {@code positions} positions. */
    record Result(int positions, double meanKl, double maxKl, double top1Agreement, double refPerplexity,
                  double quantPerplexity) {
    }

    @Override
    public int run(Args args, PrintStream out, PrintStream err) {
        Path dir = args.path("model");
        WeightFormat quant = Cli.quantFormat(args.string("quant", null), "--quant");
        Path quantized = args.has("quantized") ? args.path("quantized") : null;
        KvPrecision kvCache = args.has("kv-cache") ? Cli.kvPrecision(args) : null;
        if ((quant != null ? 1 : 0) + (quantized != null ? 1 : 0) + (kvCache != null ? 1 : 0) != 1) {
            throw new UsageException("give exactly one of --quant q8_0|q4_0, --quantized DIR or --kv-cache bf16|fp8");
        }
        int generate = Cli.intAtLeast(args, "generate", 0, 0);
        int ctx = Cli.intAtLeast(args, "ctx", 0, 1);
        Path text = args.has("text") ? args.path("text") : null;
        int randomTokens = Cli.intAtLeast(args, "tokens", 0, 2);
        long seed = args.longValue("seed", 0);
        if ((text == null) == (randomTokens == 0)) {
            throw new UsageException("give exactly one of --text FILE or --tokens N");
        }
        int maxTokens = Cli.intAtLeast(args, "max-tokens", DEFAULT_MAX_TOKENS, 2);
        int threads = Cli.intAtLeast(args, "threads", 0, 1);
        boolean json = args.flag("json");
        args.finish();
        Path modelDir = Cli.modelDir(args);

        // weight formats are compared over an exact cache; --kv-cache compares caches over the same weights
        ModelOptions options = ModelOptions.defaults().withThreads(threads).withMaxContext(ctx)
                .withKvCache(KvPrecision.F32);
        try (LanguageModel ref = LanguageModel.load(modelDir, options)) {
            int[] ids;
            if (text != null) {
                String s;
                try {
                    s = Files.readString(text);
                } catch (IOException e) {
                    throw new UncheckedIOException("cannot read " + text + ": " + e.getMessage(), e);
                }
                ids = ref.encode(s);
            } else {
                ids = new SplittableRandom(seed).ints(randomTokens, 0, ref.config().vocabSize()).toArray();
            }
            ids = Arrays.copyOf(ids, Math.min(Math.min(ids.length, maxTokens), ref.maxContext() - generate));
            if (ids.length < 2) {
                throw new IllegalArgumentException("the text encodes to " + ids.length + " token(s); need at least 2"
                        + (generate > 0 ? " besides the " + generate + " generated in a context of " + ref.maxContext()
                        : ""));
            }
            int[] input = ids;
            int[] refGenerated = new int[0];
            if (generate > 0) {
                refGenerated = ref.generate(new GenerationRequest(input, generate, SamplingParams.greedy(), List.of(),
                        true), null).ids();
                ids = Arrays.copyOf(input, input.length + refGenerated.length);
                System.arraycopy(refGenerated, 0, ids, input.length, refGenerated.length);
            }
            float[][] refLogits = ref.logits(ids);
            String candidateName;
            float[][] quantLogits;
            int reproduced = -1;
            if (kvCache != null) {
                candidateName = modelDir + " with a " + kvCache.flagName() + " KV cache";
                try (LanguageModel q = LanguageModel.load(modelDir, options.withKvCache(kvCache))) {
                    quantLogits = q.logits(ids);
                    if (generate > 0) {
                        int[] own = q.generate(new GenerationRequest(input, generate, SamplingParams.greedy(),
                                List.of(), true), null).ids();
                        reproduced = 0;
                        while (reproduced < Math.min(own.length, refGenerated.length)
                                && own[reproduced] == refGenerated[reproduced]) {
                            reproduced++;
                        }
                    }
                }
            } else if (quant != null) {
                candidateName = modelDir + " at --quant " + quant;
                try (LanguageModel q = LanguageModel.load(modelDir, options.withWeightFormat(quant))) {
                    quantLogits = q.logits(ids);
                }
            } else {
                candidateName = quantized.toString();
                if (!Files.isDirectory(quantized)) {
                    throw new IllegalArgumentException("model directory not found: " + quantized);
                }
                try (LanguageModel q = LanguageModel.load(quantized, options)) {
                    if (q.config().vocabSize() != ref.config().vocabSize()) {
                        throw new IllegalArgumentException(quantized + " has a vocabulary of " + q.config().vocabSize()
                                + ", " + modelDir + " of " + ref.config().vocabSize());
                    }
                    quantLogits = q.logits(ids);
                }
            }
            Result r = compare(refLogits, quantLogits, ids);
            if (json) {
                ObjectNode o = Cli.JSON.createObjectNode();
                o.put("reference", modelDir.toString());
                o.put("quantized", candidateName);
                o.put("positions", r.positions());
                o.put("mean_kl", r.meanKl());
                o.put("max_kl", r.maxKl());
                o.put("top1_agreement", r.top1Agreement());
                o.put("reference_perplexity", r.refPerplexity());
                o.put("quantized_perplexity", r.quantPerplexity());
                if (reproduced >= 0) {
                    o.put("generated", refGenerated.length);
                    o.put("greedy_reproduced", reproduced);
                }
                out.println(o.toString());
            } else {
                out.printf(Locale.ROOT, "reference  %s%nquantized  %s%npositions  %d%nmean KL    %.6f nats (max %.4f)%n"
                                + "top-1      %.2f%% agreement%nperplexity %.3f reference, %.3f quantized%n",
                        modelDir, candidateName, r.positions(), r.meanKl(), r.maxKl(), 100 * r.top1Agreement(),
                        r.refPerplexity(), r.quantPerplexity());
                if (reproduced >= 0) {
                    out.printf(Locale.ROOT, "greedy     %d of the reference's %d generated tokens reproduced before the"
                            + " first difference%n", reproduced, refGenerated.length);
                }
            }
            return 0;
        }
    }

    /**
     * Compares per-position logits rows (teacher-forced on {@code ids}): KL(softmax(ref) ‖ softmax(quant)) in
     * double precision, argmax agreement, and the perplexity of ids[i + 1] under row i for both (the last row has
     * no next token and counts only for KL and agreement).
     */
    static Result compare(float[][] ref, float[][] quant, int[] ids) {
        int n = ref.length;
        if (quant.length != n || ids.length != n) {
            throw new IllegalArgumentException("logit rows differ: " + n + " vs " + quant.length);
        }
        double klSum = 0;
        double klMax = 0;
        int agree = 0;
        double nllRef = 0;
        double nllQuant = 0;
        for (int i = 0; i < n; i++) {
            float[] p = ref[i];
            float[] q = quant[i];
            double lseP = logSumExp(p);
            double lseQ = logSumExp(q);
            double kl = 0;
            for (int v = 0; v < p.length; v++) {
                double lp = p[v] - lseP;
                double lq = q[v] - lseQ;
                kl += Math.exp(lp) * (lp - lq);
            }
            kl = Math.max(0, kl);
            klSum += kl;
            klMax = Math.max(klMax, kl);
            if (argmax(p) == argmax(q)) {
                agree++;
            }
            if (i + 1 < n) {
                nllRef -= p[ids[i + 1]] - lseP;
                nllQuant -= q[ids[i + 1]] - lseQ;
            }
        }
        return new Result(n, klSum / n, klMax, agree / (double) n, Math.exp(nllRef / (n - 1)),
                Math.exp(nllQuant / (n - 1)));
    }

    static double logSumExp(float[] x) {
        double max = Double.NEGATIVE_INFINITY;
        for (float v : x) {
            max = Math.max(max, v);
        }
        double s = 0;
        for (float v : x) {
            s += Math.exp(v - max);
        }
        return max + Math.log(s);
    }

    static int argmax(float[] x) {
        int best = 0;
        for (int i = 1; i < x.length; i++) {
            if (x[i] > x[best]) {
                best = i;
            }
        }
        return best;
    }
}
