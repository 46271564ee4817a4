package ai.k2j.engine;

import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.RopeScaling;
import ai.k2j.loaders.Tensor;

import java.util.Map;

/**
 * An independent, dumb Qwen2 in double precision straight from the tensors (no Backend, no KV cache): full
 * causal attention over the whole token list, RoPE frequencies from the formulas in double. The oracle the
 * engine's forward pass is checked against.
 */
final class NaiveQwen2 {

    private NaiveQwen2() {
    }

    /** Logits [tokens.length][vocab] for every position. */
    static double[][] logits(ModelConfig c, Map<String, Tensor> w, int[] tokens) {
        int n = tokens.length;
        int h = c.hiddenSize();
        int hd = c.headDim();
        int heads = c.numHeads();
        int kvHeads = c.numKvHeads();
        float[][] embed = TestModels.read(w.get("model.embed_tokens.weight"));
        double[][] x = new double[n][h];
        for (int t = 0; t < n; t++) {
            for (int i = 0; i < h; i++) {
                x[t][i] = embed[tokens[t]][i];
            }
        }
        double[] invFreq = invFreq(c);
        double attnScaling = attentionScaling(c);

        for (int l = 0; l < c.numLayers(); l++) {
            String p = "model.layers." + l + ".";
            double[][] xn = rmsNorm(x, vec(w, p + "input_layernorm.weight"), c.rmsNormEps());
            double[][] q = linear(xn, mat(w, p + "self_attn.q_proj.weight"), vec(w, p + "self_attn.q_proj.bias"));
            double[][] k = linear(xn, mat(w, p + "self_attn.k_proj.weight"), vec(w, p + "self_attn.k_proj.bias"));
            double[][] v = linear(xn, mat(w, p + "self_attn.v_proj.weight"), vec(w, p + "self_attn.v_proj.bias"));
            for (int t = 0; t < n; t++) {
                rope(q[t], heads, hd, t, invFreq, attnScaling);
                rope(k[t], kvHeads, hd, t, invFreq, attnScaling);
            }
            double[][] att = new double[n][heads * hd];
            for (int t = 0; t < n; t++) {
                for (int head = 0; head < heads; head++) {
                    int kvh = head / (heads / kvHeads);
                    double[] s = new double[t + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= t; j++) {
                        double dot = 0;
                        for (int i = 0; i < hd; i++) {
                            dot += q[t][head * hd + i] * k[j][kvh * hd + i];
                        }
                        s[j] = dot / Math.sqrt(hd);
                        max = Math.max(max, s[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= t; j++) {
                        s[j] = Math.exp(s[j] - max);
                        sum += s[j];
                    }
                    for (int j = 0; j <= t; j++) {
                        for (int i = 0; i < hd; i++) {
                            att[t][head * hd + i] += s[j] / sum * v[j][kvh * hd + i];
                        }
                    }
                }
            }
            addInPlace(x, linear(att, mat(w, p + "self_attn.o_proj.weight"), null));
            double[][] xn2 = rmsNorm(x, vec(w, p + "post_attention_layernorm.weight"), c.rmsNormEps());
            double[][] gate = linear(xn2, mat(w, p + "mlp.gate_proj.weight"), null);
            double[][] up = linear(xn2, mat(w, p + "mlp.up_proj.weight"), null);
            for (int t = 0; t < n; t++) {
                for (int i = 0; i < gate[t].length; i++) {
                    double g = gate[t][i];
                    gate[t][i] = g / (1 + Math.exp(-g)) * up[t][i];
                }
            }
            addInPlace(x, linear(gate, mat(w, p + "mlp.down_proj.weight"), null));
        }
        double[][] xf = rmsNorm(x, vec(w, "model.norm.weight"), c.rmsNormEps());
        String head = c.tieWordEmbeddings() ? "model.embed_tokens.weight" : "lm_head.weight";
        return linear(xf, mat(w, head), null);
    }

    static double[] invFreq(ModelConfig c) {
        int dim = c.headDim();
        double base = c.ropeTheta();
        RopeScaling s = c.ropeScaling();
        double[] inv = new double[dim / 2];
        for (int i = 0; i < inv.length; i++) {
            double posFreq = Math.pow(base, 2.0 * i / dim);
            inv[i] = 1 / posFreq;
            if (s.type().equals("linear")) {
                inv[i] /= s.factor();
            } else if (s.isYarn()) {
                int orig = s.originalMaxPositionEmbeddings() > 0 ? s.originalMaxPositionEmbeddings()
                        : c.maxPositionEmbeddings();
                // YaRN (Peng et al.), with HF's defaults beta_fast = 32, beta_slow = 1
                double low = Math.max(Math.floor(dim * Math.log(orig / (32 * 2 * Math.PI)) / (2 * Math.log(base))), 0);
                double high = Math.min(Math.ceil(dim * Math.log(orig / (2 * Math.PI)) / (2 * Math.log(base))), dim - 1);
                if (low == high) {
                    high += 0.001;
                }
                double ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
                // ramp 0: keep the original frequency (extrapolate); ramp 1: divide it by the factor
                inv[i] = (1 - ramp) / posFreq + ramp / (s.factor() * posFreq);
            }
        }
        return inv;
    }

    static double attentionScaling(ModelConfig c) {
        RopeScaling s = c.ropeScaling();
        return s.isYarn() ? 0.1 * Math.log(s.factor()) + 1 : 1;
    }

    private static void rope(double[] v, int heads, int hd, int pos, double[] invFreq, double scaling) {
        int half = hd / 2;
        for (int head = 0; head < heads; head++) {
            for (int i = 0; i < half; i++) {
                double angle = pos * invFreq[i];
                double cos = Math.cos(angle) * scaling;
                double sin = Math.sin(angle) * scaling;
                double a = v[head * hd + i];
                double b = v[head * hd + half + i];
                v[head * hd + i] = a * cos - b * sin;
                v[head * hd + half + i] = b * cos + a * sin;
            }
        }
    }

    private static double[][] rmsNorm(double[][] x, float[] g, double eps) {
        double[][] out = new double[x.length][];
        for (int t = 0; t < x.length; t++) {
            double ss = 0;
            for (double v : x[t]) {
                ss += v * v;
            }
            double inv = 1 / Math.sqrt(ss / x[t].length + eps);
            out[t] = new double[x[t].length];
            for (int i = 0; i < x[t].length; i++) {
                out[t][i] = x[t][i] * inv * g[i];
            }
        }
        return out;
    }

    private static double[][] linear(double[][] x, float[][] wt, float[] bias) {
        double[][] out = new double[x.length][wt.length];
        for (int t = 0; t < x.length; t++) {
            for (int r = 0; r < wt.length; r++) {
                double s = bias == null ? 0 : bias[r];
                for (int c = 0; c < wt[r].length; c++) {
                    s += x[t][c] * wt[r][c];
                }
                out[t][r] = s;
            }
        }
        return out;
    }

    private static void addInPlace(double[][] x, double[][] y) {
        for (int t = 0; t < x.length; t++) {
            for (int i = 0; i < x[t].length; i++) {
                x[t][i] += y[t][i];
            }
        }
    }

    private static float[][] mat(Map<String, Tensor> w, String name) {
        return TestModels.read(w.get(name));
    }

    private static float[] vec(Map<String, Tensor> w, String name) {
        return TestModels.read(w.get(name))[0];
    }
}
