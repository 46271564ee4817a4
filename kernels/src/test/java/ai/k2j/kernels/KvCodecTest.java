package ai.k2j.kernels;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The KV cache's rounding rules against independent definitions (E4M3 from its fields, BF16 by truncation). */
class KvCodecTest {

    /** E4M3 value from the OCP definition: bias 7, subnormals at exponent 0, 0x7f/0xff NaN. */
    private static double e4m3(int b) {
        int sign = (b >> 7) & 1;
        int exp = (b >> 3) & 15;
        int mant = b & 7;
        double v = exp == 0 ? mant / 8.0 * Math.pow(2, -6) : (1 + mant / 8.0) * Math.pow(2, exp - 7);
        return sign == 1 ? -v : v;
    }

    @Test
    void fp8DecodesEveryCodeAsTheFormatDefines() {
        for (int b = 0; b < 256; b++) {
            if ((b & 0x7f) == 0x7f) {
                continue; // NaN codes are never written
            }
            assertEquals(e4m3(b), KvCodec.fp8Value(b), 0.0, "code 0x" + Integer.toHexString(b));
        }
        assertEquals(448.0, KvCodec.fp8Value(0x7e), 0.0);
        assertEquals(Math.pow(2, -9), KvCodec.fp8Value(0x01), 0.0);
    }

    @Test
    void fp8EncodesToTheNearestCodeTiesToEven() {
        // every representable value encodes to itself
        for (int b = 0; b < 256; b++) {
            if ((b & 0x7f) == 0x7f || b == 0x80) {
                continue; // NaN; -0 encodes as 0x80 too but compare values
            }
            assertEquals(b, KvCodec.fp8Bits(KvCodec.fp8Value(b)) & 0xff, "round trip 0x" + Integer.toHexString(b));
        }
        // brute force: the encoded value is a nearest representable value, ties to the even code
        Random rnd = new Random(7);
        for (int i = 0; i < 200_000; i++) {
            float x = (float) ((rnd.nextDouble() * 2 - 1) * Math.pow(2, rnd.nextInt(20) - 12));
            if (Math.abs(x) >= 448) {
                continue;
            }
            int got = KvCodec.fp8Bits(x) & 0xff;
            double best = Double.MAX_VALUE;
            for (int b = 0; b < 256; b++) {
                if ((b & 0x7f) != 0x7f) {
                    best = Math.min(best, Math.abs(e4m3(b) - x));
                }
            }
            assertEquals(best, Math.abs(e4m3(got) - x), 0.0, "x = " + x);
        }
        // ties: 1 + 1/16 lies halfway between 1 (mantissa 0, even) and 1.125 (mantissa 1)
        assertEquals(1.0f, KvCodec.fp8Value(KvCodec.fp8Bits(1.0625f)));
        assertEquals(1.25f, KvCodec.fp8Value(KvCodec.fp8Bits(1.1875f)));
        // subnormal tie: 1.5 · 2^-9 rounds to 2 · 2^-9
        assertEquals(2 * 0x1p-9f, KvCodec.fp8Value(KvCodec.fp8Bits(1.5f * 0x1p-9f)));
        // saturation instead of infinity
        assertEquals(448f, KvCodec.fp8Value(KvCodec.fp8Bits(1e6f)));
        assertEquals(-448f, KvCodec.fp8Value(KvCodec.fp8Bits(-460f)));
    }

    @Test
    void bf16RoundsToNearestEven() {
        Random rnd = new Random(3);
        for (int i = 0; i < 100_000; i++) {
            float x = (float) (rnd.nextGaussian() * Math.pow(2, rnd.nextInt(40) - 20));
            int bits = Float.floatToRawIntBits(x);
            float down = Float.intBitsToFloat(bits & 0xffff0000);
            float up = Float.intBitsToFloat((bits & 0xffff0000) + 0x10000);
            float got = KvCodec.bf16(x);
            double dd = Math.abs((double) x - down);
            double du = Math.abs((double) up - x);
            float expected = dd < du ? down : du < dd ? up : (((bits >>> 16) & 1) == 0 ? down : up);
            assertEquals(expected, got, "x = " + x);
        }
    }

    @Test
    void fp8HeadScaleUsesTheWholeRange() {
        float[] head = {0.5f, -3f, 1.25f, 0f};
        byte[] q = new byte[4];
        float scale = KvCodec.quantizeHeadFp8(head, 0, 4, q, 0);
        assertEquals(3f / 448, scale);
        assertEquals(-448f, KvCodec.fp8Value(q[1]));
        float[] rounded = head.clone();
        KvCodec.roundInPlace(KvPrecision.FP8_E4M3, rounded, 0, 4, 4);
        for (int i = 0; i < 4; i++) {
            assertEquals(KvCodec.fp8Value(q[i]) * scale, rounded[i]);
            assertTrue(Math.abs(rounded[i] - head[i]) <= Math.abs(head[i]) / 16 + 1e-6, "element " + i);
        }
        float[] zeros = new float[8];
        KvCodec.roundInPlace(KvPrecision.FP8_E4M3, zeros, 0, 8, 4);
        assertEquals(0f, zeros[3]);
    }

    @Test
    void precisionsParseAndCountBytes() {
        assertEquals(KvPrecision.BF16, KvPrecision.parse("BF16"));
        assertEquals(KvPrecision.FP8_E4M3, KvPrecision.parse("fp8"));
        assertEquals(KvPrecision.F32, KvPrecision.parse("f32"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> KvPrecision.parse("int4"));
        assertTrue(e.getMessage().contains("int4"));
        // Qwen2.5-32B: 64 layers, 8 kv heads of 128
        assertEquals(64L * 2 * 1024 * 2, KvPrecision.BF16.bytesPerToken(64, 1024, 128));
        assertEquals(64L * (2 * 1024 + 2 * 4 * 8), KvPrecision.FP8_E4M3.bytesPerToken(64, 1024, 128));
    }
}
