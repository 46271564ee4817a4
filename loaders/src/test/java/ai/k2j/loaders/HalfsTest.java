package ai.k2j.loaders;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.math.BigDecimal;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class HalfsTest {

    @Test
    void bf16RoundTripsEveryNonNanPattern() {
        for (int bits = 0; bits < 0x10000; bits++) {
            float f = Halfs.bf16ToFloat((short) bits);
            if (!Float.isNaN(f)) {
                assertEquals((short) bits, Halfs.floatToBf16(f), "bf16 bits 0x" + Integer.toHexString(bits));
            } else {
                assertEquals((short) 0x7FC0, Halfs.floatToBf16(f), "NaN becomes the canonical bf16 NaN");
            }
        }
    }

    @Test
    void f16RoundTripsEveryNonNanPattern() {
        for (int bits = 0; bits < 0x10000; bits++) {
            float f = Halfs.f16ToFloat((short) bits);
            if (!Float.isNaN(f)) {
                assertEquals((short) bits, Halfs.floatToF16(f), "f16 bits 0x" + Integer.toHexString(bits));
            } else {
                assertTrue(Float.isNaN(Halfs.f16ToFloat(Halfs.floatToF16(f))));
            }
        }
    }

    @Test
    void bf16KnownValuesAndTies() {
        assertEquals((short) 0x3F80, Halfs.floatToBf16(1.0f));
        assertEquals((short) 0xBF80, Halfs.floatToBf16(-1.0f));
        assertEquals((short) 0x8000, Halfs.floatToBf16(-0.0f));
        // 1 + 2^-8 lies exactly between 0x3F80 (1.0) and 0x3F81: ties go to the even 0x3F80
        assertEquals((short) 0x3F80, Halfs.floatToBf16(1.00390625f));
        // 1 + 3*2^-8 lies between 0x3F81 and 0x3F82: ties go to the even 0x3F82
        assertEquals((short) 0x3F82, Halfs.floatToBf16(1.01171875f));
        // just above the tie rounds up
        assertEquals((short) 0x3F81, Halfs.floatToBf16(Math.nextUp(1.00390625f)));
        assertEquals((short) 0x7F80, Halfs.floatToBf16(Float.POSITIVE_INFINITY));
        assertEquals((short) 0xFF80, Halfs.floatToBf16(Float.NEGATIVE_INFINITY));
        assertEquals((short) 0x7F80, Halfs.floatToBf16(Float.MAX_VALUE), "past the largest bf16 rounds to infinity");
        assertEquals((short) 0x7FC0, Halfs.floatToBf16(Float.NaN));
        assertEquals((short) 0x7FC0, Halfs.floatToBf16(Float.intBitsToFloat(0xFFFF_FFFF)));
        assertEquals((short) 0x0000, Halfs.floatToBf16(Float.MIN_VALUE), "the smallest subnormal rounds to zero");
    }

    /** Against an exact reference: the nearest bf16 by BigDecimal distance, ties to the even pattern. */
    @Test
    void bf16IsRoundToNearestEvenOnRandomFloats() {
        SplittableRandom rnd = new SplittableRandom(42);
        for (int i = 0; i < 50_000; i++) {
            float f = Float.intBitsToFloat(rnd.nextInt());
            if (Float.isNaN(f) || Float.isInfinite(f)) {
                continue;
            }
            int bits = Float.floatToRawIntBits(f);
            int down = bits >>> 16;          // truncation: toward zero in magnitude
            int up = down + 1;               // next pattern away from zero (may be infinity)
            BigDecimal x = new BigDecimal(f);
            BigDecimal dDown = x.subtract(new BigDecimal(Halfs.bf16ToFloat((short) down))).abs();
            float upValue = Halfs.bf16ToFloat((short) up);
            int expected;
            if (Float.isInfinite(upValue)) {
                // beyond max bf16: round-to-nearest treats infinity as the next step of the same size
                BigDecimal maxBf16 = new BigDecimal(Halfs.bf16ToFloat((short) down));
                BigDecimal step = new BigDecimal(Math.ulp(Halfs.bf16ToFloat((short) down))).multiply(BigDecimal.valueOf(65536));
                int cmp = x.abs().subtract(maxBf16.abs()).compareTo(step.divide(BigDecimal.valueOf(2)));
                expected = cmp < 0 || (cmp == 0 && (down & 1) == 0) ? down : up;
            } else {
                BigDecimal dUp = x.subtract(new BigDecimal(upValue)).abs();
                int cmp = dDown.compareTo(dUp);
                expected = cmp < 0 || (cmp == 0 && (down & 1) == 0) ? down : up;
            }
            assertEquals((short) expected, Halfs.floatToBf16(f), "float bits 0x" + Integer.toHexString(bits));
        }
    }

    @Test
    void f16KnownValues() {
        assertEquals((short) 0x3C00, Halfs.floatToF16(1f));
        assertEquals((short) 0x7BFF, Halfs.floatToF16(65504f));
        assertEquals((short) 0x7C00, Halfs.floatToF16(65520f), "65520 is the tie between 65504 and infinity: rounds up");
        assertEquals((short) 0x7BFF, Halfs.floatToF16(65519f));
        assertEquals((short) 0x0001, Halfs.floatToF16(5.9604645e-8f), "smallest f16 subnormal");
        assertEquals((short) 0x3555, Halfs.floatToF16(1f / 3f));
    }

    @Test
    void segmentAccessIsLittleEndian() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(12);
            Halfs.setFloat(s, DType.F32, 0, 1.0f);
            assertArrayEquals(new byte[] {0, 0, (byte) 0x80, 0x3F}, s.asSlice(0, 4).toArray(ValueLayout.JAVA_BYTE));
            Halfs.setFloat(s.asSlice(4), DType.BF16, 0, -2.0f); // 0xC000
            assertArrayEquals(new byte[] {0, (byte) 0xC0}, s.asSlice(4, 2).toArray(ValueLayout.JAVA_BYTE));
            Halfs.setFloat(s.asSlice(7), DType.F16, 0, 0.5f); // unaligned on purpose: 0x3800
            assertArrayEquals(new byte[] {0, 0x38}, s.asSlice(7, 2).toArray(ValueLayout.JAVA_BYTE));
            assertEquals(-2.0f, Halfs.getFloat(s.asSlice(4), DType.BF16, 0));
            assertEquals(0.5f, Halfs.getFloat(s.asSlice(7), DType.F16, 0));
            assertEquals(1.0f, Halfs.getFloat(s, DType.F32, 0));
            assertThrows(IllegalArgumentException.class, () -> Halfs.getFloat(s, DType.Q8_0, 0));
        }
    }
}
