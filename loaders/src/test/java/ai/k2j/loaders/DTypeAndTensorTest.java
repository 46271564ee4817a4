package ai.k2j.loaders;

import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DTypeAndTensorTest {

    @Test
    void byteSizes() {
        assertEquals(16, DType.F32.bytesFor(4));
        assertEquals(8, DType.BF16.bytesFor(4));
        assertEquals(34 * 3, DType.Q8_0.bytesFor(96));
        assertEquals(18 * 2, DType.Q4_0.bytesFor(64));
        assertThrows(IllegalArgumentException.class, () -> DType.Q8_0.bytesFor(33));
        assertThrows(ArithmeticException.class, () -> DType.F64.bytesFor(Long.MAX_VALUE / 4));
    }

    @Test
    void safetensorsNamesAreExact() {
        for (DType d : DType.values()) {
            assertSame(d, DType.fromSafetensors(d.safetensorsName(), "x"));
        }
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> DType.fromSafetensors("f32", "file.st"));
        assertEquals("file.st: unknown dtype 'f32'", e.getMessage());
    }

    @Test
    void tensorShapeChecks() {
        Tensor t = new Tensor("w", DType.F32, new long[] {2, 3}, MemorySegment.ofArray(new float[6]));
        assertEquals(6, t.elements());
        assertEquals(24, t.byteSize());
        assertSame(t, t.expectShape(2, 3));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> t.expectShape(3, 2));
        assertTrue(e.getMessage().contains("tensor 'w' has shape [2, 3], expected [3, 2]"), e.getMessage());
        t.shape()[0] = 99;
        assertEquals(2, t.dim(0), "shape must be defensively copied");
    }
}
