package ai.k2j.kernels.cpu;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.lang.classfile.ClassFile;
import java.lang.classfile.ClassModel;
import java.lang.classfile.MethodModel;
import java.lang.classfile.attribute.CodeAttribute;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Guards the inlining discipline of {@link MatmulKernels}: the 4-way kernels and the tile must be compiled as their own
 * C2 compilation units, which HotSpot guarantees for hot callees whose bytecode exceeds FreqInlineSize (325
 * bytes on x86-64). A kernel that shrinks below it gets inlined into its driver, where the combined graph can
 * exceed C2's node budget and box vectors. If this fails after an edit, run CpuAllocationTest and restructure.
 */
class KernelShapeTest {

    private static final int FREQ_INLINE_SIZE = 325;

    @Test
    void fourWayKernelsAreTooBigToInline() throws IOException {
        ClassModel model;
        try (InputStream in = MatmulKernels.class.getResourceAsStream("MatmulKernels.class")) {
            model = ClassFile.of().parse(in.readAllBytes());
        }
        List<String> kernels = new ArrayList<>();
        for (MethodModel m : model.methods()) {
            String name = m.methodName().stringValue();
            if (!name.matches("dot[148]Rows.*") && !name.startsWith("tile")) {
                continue;
            }
            int size = m.findAttribute(java.lang.classfile.Attributes.code()).map(CodeAttribute::codeLength).orElse(0);
            kernels.add(name);
            assertTrue(size > FREQ_INLINE_SIZE, name + " has " + size + " bytes of bytecode; C2 would inline it");
        }
        // dot4Rows for F32, BF16, Q8_0 and Q4_0 (converting, and by lookup) segments and for float[] rows (F16,
        // fallbacks); decode's one-row-at-a-time BF16 and eight-row Q8_0 kernels; the prefill tile and its BF16
        // register-decoding twin for verification; the 4x4 prefill tile of 16-lane machines.
        assertEquals(11, kernels.size(), "kernels found: " + kernels);
    }
}
