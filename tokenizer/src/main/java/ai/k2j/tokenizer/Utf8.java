package ai.k2j.tokenizer;

/**
 * UTF-8 helpers with Rust's semantics: decoding replaces each maximal ill-formed subpart with one
 * U+FFFD (as {@code String::from_utf8_lossy}); encoding writes lone surrogates as U+FFFD (Rust strings
 * cannot hold them).
 */
final class Utf8 {
    private Utf8() {}

    static final char REPLACEMENT = '\uFFFD';

    /** Returns the text with every unpaired surrogate replaced by U+FFFD (the same string if none). */
    static String replaceLoneSurrogates(String s) {
        int n = s.length();
        int i = 0;
        for (; i < n; i++) {
            char c = s.charAt(i);
            if (Character.isSurrogate(c)) {
                if (Character.isHighSurrogate(c) && i + 1 < n && Character.isLowSurrogate(s.charAt(i + 1))) {
                    i++;
                    continue;
                }
                break;
            }
        }
        if (i == n) {
            return s;
        }
        StringBuilder sb = new StringBuilder(n);
        sb.append(s, 0, i);
        for (; i < n; i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < n && Character.isLowSurrogate(s.charAt(i + 1))) {
                sb.append(c).append(s.charAt(++i));
            } else if (Character.isSurrogate(c)) {
                sb.append(REPLACEMENT);
            } else {
                sb.append(c);
            }
        }
        return sb.toString();
    }

    /** Number of bytes a well-formed sequence starting with lead byte {@code b} has, or 0 if {@code b} cannot start one. */
    static int sequenceLength(int b) {
        b &= 0xFF;
        if (b < 0x80) return 1;
        if (b < 0xC2) return 0;
        if (b < 0xE0) return 2;
        if (b < 0xF0) return 3;
        if (b < 0xF5) return 4;
        return 0;
    }

    /** Whether {@code b} is allowed as the second byte after lead byte {@code lead} (Unicode Table 3-7). */
    static boolean validSecond(int lead, int b) {
        lead &= 0xFF;
        b &= 0xFF;
        return switch (lead) {
            case 0xE0 -> b >= 0xA0 && b <= 0xBF;
            case 0xED -> b >= 0x80 && b <= 0x9F;
            case 0xF0 -> b >= 0x90 && b <= 0xBF;
            case 0xF4 -> b >= 0x80 && b <= 0x8F;
            default -> b >= 0x80 && b <= 0xBF;
        };
    }

    static boolean isContinuation(int b) {
        return (b & 0xC0) == 0x80;
    }

    /**
     * Length of the trailing bytes of {@code buf[0..len)} that form a proper prefix of a well-formed
     * sequence (a character still waiting for bytes), or 0. Everything before it decodes independently.
     */
    static int incompleteTail(byte[] buf, int len) {
        for (int back = 1; back <= 3 && back <= len; back++) {
            int lead = buf[len - back] & 0xFF;
            if (isContinuation(lead)) {
                continue;
            }
            int need = sequenceLength(lead);
            if (need <= back) {
                return 0; // ASCII, invalid lead, or complete
            }
            if (back >= 2 && !validSecond(lead, buf[len - back + 1])) {
                return 0;
            }
            return back; // continuation bytes after the second were checked by the loop
        }
        return 0;
    }

    /**
     * Decodes {@code buf[off..off+len)} into {@code out} (which needs {@code len} chars) and returns the
     * number of chars written; ill-formed input becomes U+FFFD per maximal subpart.
     */
    static int decodeLossy(byte[] buf, int off, int len, char[] out) {
        int end = off + len;
        int o = 0;
        int i = off;
        while (i < end) {
            int b0 = buf[i] & 0xFF;
            if (b0 < 0x80) {
                out[o++] = (char) b0;
                i++;
                continue;
            }
            int need = sequenceLength(b0);
            if (need == 0) {
                out[o++] = REPLACEMENT;
                i++;
                continue;
            }
            if (i + 1 >= end || !validSecond(b0, buf[i + 1])) {
                out[o++] = REPLACEMENT;
                i++;
                continue;
            }
            if (need == 2) {
                out[o++] = (char) (((b0 & 0x1F) << 6) | (buf[i + 1] & 0x3F));
                i += 2;
                continue;
            }
            if (i + 2 >= end || !isContinuation(buf[i + 2])) {
                out[o++] = REPLACEMENT;
                i += 2;
                continue;
            }
            if (need == 3) {
                out[o++] = (char) (((b0 & 0x0F) << 12) | ((buf[i + 1] & 0x3F) << 6) | (buf[i + 2] & 0x3F));
                i += 3;
                continue;
            }
            if (i + 3 >= end || !isContinuation(buf[i + 3])) {
                out[o++] = REPLACEMENT;
                i += 3;
                continue;
            }
            int cp = ((b0 & 0x07) << 18) | ((buf[i + 1] & 0x3F) << 12) | ((buf[i + 2] & 0x3F) << 6) | (buf[i + 3] & 0x3F);
            out[o++] = Character.highSurrogate(cp);
            out[o++] = Character.lowSurrogate(cp);
            i += 4;
        }
        return o;
    }

    static String decodeLossy(byte[] buf, int off, int len) {
        char[] out = new char[len];
        return new String(out, 0, decodeLossy(buf, off, len, out));
    }

    /** UTF-8 bytes of {@code s} (which must hold no lone surrogates). */
    static byte[] encode(String s) {
        return s.getBytes(java.nio.charset.StandardCharsets.UTF_8);
    }
}
