package ai.k2j.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

class NpyAndStreamTest {

    /** A minimal .npy reader, independent of the writer: returns {rows, cols} and fills data. */
    static float[][] readNpy(Path file) throws Exception {
        byte[] all = Files.readAllBytes(file);
        ByteBuffer b = ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals((byte) 0x93, b.get());
        byte[] magic = new byte[5];
        b.get(magic);
        assertEquals("NUMPY", new String(magic, StandardCharsets.US_ASCII));
        assertEquals(1, b.get());
        assertEquals(0, b.get());
        int headerLen = Short.toUnsignedInt(b.getShort());
        String header = new String(all, 10, headerLen, StandardCharsets.US_ASCII);
        assertEquals(0, (10 + headerLen) % 64, "data is 64-byte aligned");
        assertEquals('\n', header.charAt(header.length() - 1));
        assertEquals(true, header.contains("'descr': '<f4'"), header);
        assertEquals(true, header.contains("'fortran_order': False"), header);
        var m = java.util.regex.Pattern.compile("'shape': \\((\\d+), (\\d+)\\)").matcher(header);
        assertEquals(true, m.find(), header);
        int rows = Integer.parseInt(m.group(1)), cols = Integer.parseInt(m.group(2));
        assertEquals(10L + headerLen + 4L * rows * cols, all.length, "file size matches the shape");
        b.position(10 + headerLen);
        float[][] out = new float[rows][cols];
        for (float[] r : out) {
            for (int j = 0; j < cols; j++) {
                r[j] = b.getFloat();
            }
        }
        return out;
    }

    @Test
    void npyRoundTrip(@TempDir Path tmp) throws Exception {
        float[][] x = {{1f, -2.5f, Float.MIN_VALUE}, {3e38f, 0f, -0f}};
        Path f = tmp.resolve("sub/x.npy");
        LogitsCommand.writeNpy(f, x);
        float[][] y = readNpy(f);
        assertEquals(2, y.length);
        for (int i = 0; i < x.length; i++) {
            assertArrayEquals(x[i], y[i]);
        }
        assertFalse(Files.exists(tmp.resolve("sub/x.npy.tmp")));
    }

    private static String stream(String stop, String finalText, String... pieces) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
        var p = new GenerateCommand.StreamPrinter(out, stop);
        for (String s : pieces) {
            p.push(s);
        }
        p.finish(finalText);
        return bytes.toString(StandardCharsets.UTF_8);
    }

    @Test
    void streamingWithoutStopPrintsEverythingPlusNewline() {
        assertEquals("héllo wörld\n", stream(null, "héllo wörld", "hé", "", "llo", " wörld"));
        assertEquals("line\n", stream(null, "line\n", "li", "ne\n"));
        assertEquals("", stream(null, "", new String[0]));
    }

    @Test
    void stopStringNeverReachesTheOutput() {
        // the stop string arrives split over tokens; what precedes it is printed, it is not
        assertEquals("abc\n", stream("\n\n", "abc", "ab", "c\n", "\nxyz"));
        // a partial match that turns out not to be the stop string is printed after all
        assertEquals("a<b<<c\n", stream("<<<", "a<b<<c", "a<", "b<<", "c"));
        assertEquals("x\n", stream("END", "x", "xE", "N", "D more"));
    }

    private static String hidden(String finalText, String... pieces) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
        var p = new GenerateCommand.StreamPrinter(out, null);
        var hider = new GenerateCommand.ThinkingHider(p);
        for (String s : pieces) {
            hider.push(s);
        }
        p.finish(GenerateCommand.ThinkingHider.answer(finalText));
        return bytes.toString(StandardCharsets.UTF_8);
    }

    @Test
    void thinkingHiddenPrintsOnlyTheAnswer() {
        String full = "<think>\nLet me see: 2+2.\n</think>\n\nIt is 4.";
        // the block's tags arrive split over tokens; nothing of the block, nor the newlines after it, is printed
        assertEquals("It is 4.\n", hidden(full, "<thi", "nk>\nLet me see", ": 2+2.\n</", "think>\n", "\nIt", " is 4."));
        assertEquals("It is 4.", GenerateCommand.ThinkingHider.answer(full));
        // no thinking block: everything is the answer
        assertEquals("Plain <b>answer</b>\n", hidden("Plain <b>answer</b>", "Plain <b>", "answer</b>"));
        // generation ended while still thinking: nothing to show
        assertEquals("", hidden("<think>\nhmm", "<think>", "\nhmm"));
    }
}
