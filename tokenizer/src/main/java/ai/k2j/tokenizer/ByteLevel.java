package ai.k2j.tokenizer;

/**
 * GPT-2's reversible byte-to-character alphabet: printable Latin-1 bytes map to themselves, the other
 * 68 bytes to U+0100.. in byte order, so every byte string becomes a printable string.
 */
final class ByteLevel {
    private ByteLevel() {}

    /** Character for each byte value. */
    static final char[] BYTE_TO_CHAR = new char[256];
    /** Byte for each alphabet character (index = char), -1 where the char is not in the alphabet. */
    static final short[] CHAR_TO_BYTE = new short[324];

    static {
        java.util.Arrays.fill(CHAR_TO_BYTE, (short) -1);
        int n = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            char c = printable ? (char) b : (char) (256 + n++);
            BYTE_TO_CHAR[b] = c;
            CHAR_TO_BYTE[c] = (short) b;
        }
    }

    /** Appends the byte-level form of the UTF-8 encoding of {@code s[from, to)} (lone surrogates as U+FFFD). */
    static void appendMapped(CharSequence s, int from, int to, StringBuilder out) {
        int n = to;
        for (int i = from; i < n; i++) {
            char c = s.charAt(i);
            if (c < 0x80) {
                out.append(BYTE_TO_CHAR[c]);
            } else if (c < 0x800) {
                out.append(BYTE_TO_CHAR[0xC0 | (c >> 6)]).append(BYTE_TO_CHAR[0x80 | (c & 0x3F)]);
            } else if (Character.isHighSurrogate(c) && i + 1 < n && Character.isLowSurrogate(s.charAt(i + 1))) {
                int cp = Character.toCodePoint(c, s.charAt(++i));
                out.append(BYTE_TO_CHAR[0xF0 | (cp >> 18)])
                        .append(BYTE_TO_CHAR[0x80 | ((cp >> 12) & 0x3F)])
                        .append(BYTE_TO_CHAR[0x80 | ((cp >> 6) & 0x3F)])
                        .append(BYTE_TO_CHAR[0x80 | (cp & 0x3F)]);
            } else {
                if (Character.isSurrogate(c)) {
                    c = Utf8.REPLACEMENT;
                }
                out.append(BYTE_TO_CHAR[0xE0 | (c >> 12)])
                        .append(BYTE_TO_CHAR[0x80 | ((c >> 6) & 0x3F)])
                        .append(BYTE_TO_CHAR[0x80 | (c & 0x3F)]);
            }
        }
    }

    /** The bytes a token string stands for, or null if some char is outside the alphabet. */
    static byte[] unmap(String token) {
        byte[] out = new byte[token.length()];
        for (int i = 0; i < token.length(); i++) {
            char c = token.charAt(i);
            if (c >= CHAR_TO_BYTE.length || CHAR_TO_BYTE[c] < 0) {
                return null;
            }
            out[i] = (byte) CHAR_TO_BYTE[c];
        }
        return out;
    }
}
