package ai.k2j.engine;

/**
 * How the next token is chosen. temperature &lt;= 0 means greedy (argmax). topK &lt;= 0 and topP &gt;= 1 and
 * minP &lt;= 0 disable those filters. The same seed and parameters give the same tokens.
 */
public record SamplingParams(double temperature, double topP, int topK, double minP, long seed) {

    public SamplingParams {
        if (Double.isNaN(temperature) || temperature < 0) {
            throw new IllegalArgumentException("temperature must be >= 0, got " + temperature);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("top_p must be in (0, 1], got " + topP);
        }
        if (!(minP >= 0 && minP <= 1)) {
            throw new IllegalArgumentException("min_p must be in [0, 1], got " + minP);
        }
    }

    public static SamplingParams greedy() {
        return new SamplingParams(0, 1, 0, 0, 0);
    }

    public static SamplingParams of(double temperature, double topP, int topK, long seed) {
        return new SamplingParams(temperature, topP, topK, 0, seed);
    }

    public boolean isGreedy() {
        return temperature <= 0;
    }
}
