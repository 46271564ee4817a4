package ai.k2j.tokenizer;

import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * HF's BPE model: a word's characters become initial symbols, then the adjacent pair with the lowest
 * merge rank (leftmost on ties) is merged until no pair has a merge, exactly as HF's
 * {@code Word::merge_all} does it (priority queue, stale entries dropped by their new id).
 * Results are cached per word; the cache is thread-safe and cleared when it grows past its bound.
 */
final class Bpe {
    private static final int CACHE_CAPACITY = 1 << 16;
    private static final int MAX_CACHED_WORD = 256;

    private final Map<String, Integer> vocab;
    private final MergeMap merges;
    private final int unkId;            // -1 when no unk_token
    private final boolean fuseUnk;
    private final boolean byteFallback;
    private final boolean ignoreMerges;
    private final String continuingSubwordPrefix; // null or non-empty
    private final String endOfWordSuffix;         // null or non-empty
    private final int[] singleCharIds;  // id of each single-char token for chars < 512, -1 if none
    private final int[] byteFallbackIds; // id of "<0xHH>" per byte, -1 if none
    private final ConcurrentHashMap<String, int[]> cache = new ConcurrentHashMap<>();

    Bpe(Map<String, Integer> vocab, MergeMap merges, int unkId, boolean fuseUnk, boolean byteFallback,
        boolean ignoreMerges, String continuingSubwordPrefix, String endOfWordSuffix) {
        this.vocab = vocab;
        this.merges = merges;
        this.unkId = unkId;
        this.fuseUnk = fuseUnk;
        this.byteFallback = byteFallback;
        this.ignoreMerges = ignoreMerges;
        this.continuingSubwordPrefix = continuingSubwordPrefix == null || continuingSubwordPrefix.isEmpty() ? null : continuingSubwordPrefix;
        this.endOfWordSuffix = endOfWordSuffix == null || endOfWordSuffix.isEmpty() ? null : endOfWordSuffix;
        this.singleCharIds = new int[512];
        for (int c = 0; c < singleCharIds.length; c++) {
            Integer id = vocab.get(String.valueOf((char) c));
            singleCharIds[c] = id == null ? -1 : id;
        }
        this.byteFallbackIds = new int[256];
        for (int b = 0; b < 256; b++) {
            Integer id = vocab.get(String.format("<0x%02X>", b));
            byteFallbackIds[b] = id == null ? -1 : id;
        }
    }

    /** Token ids for one pre-tokenized word (in the model's alphabet). */
    int[] tokenize(String word) {
        if (word.isEmpty()) {
            return new int[0];
        }
        int[] hit = cache.get(word);
        if (hit != null) {
            return hit;
        }
        int[] ids;
        Integer whole = ignoreMerges ? vocab.get(word) : null;
        if (whole != null) {
            ids = new int[] {whole};
        } else {
            ids = mergeWord(word);
        }
        if (word.length() <= MAX_CACHED_WORD) {
            if (cache.size() >= CACHE_CAPACITY) {
                cache.clear();
            }
            cache.put(word, ids);
        }
        return ids;
    }

    private int initialId(String word, int start, int end) {
        boolean plain = continuingSubwordPrefix == null && endOfWordSuffix == null;
        if (plain && end - start == 1 && word.charAt(start) < singleCharIds.length) {
            return singleCharIds[word.charAt(start)];
        }
        String s = word.substring(start, end);
        if (continuingSubwordPrefix != null && start > 0) {
            s = continuingSubwordPrefix + s;
        }
        if (endOfWordSuffix != null && end == word.length()) {
            s = s + endOfWordSuffix;
        }
        Integer id = vocab.get(s);
        return id == null ? -1 : id;
    }

    private int[] mergeWord(String word) {
        int n = word.length();
        int[] sym = new int[n];   // symbol ids (capacity: one per char, byte fallback may grow it)
        int count = 0;
        int unk = -1;             // pending unk symbol (HF fuses consecutive unknowns when fuse_unk)
        for (int i = 0; i < n; ) {
            int end = i + Character.charCount(word.codePointAt(i));
            int id = initialId(word, i, end);
            if (id >= 0) {
                if (unk >= 0) {
                    sym = push(sym, count++, unk);
                    unk = -1;
                }
                sym = push(sym, count++, id);
            } else {
                boolean handled = false;
                if (byteFallback) {
                    String s = word.substring(i, end);
                    if (continuingSubwordPrefix != null && i > 0) s = continuingSubwordPrefix + s;
                    if (endOfWordSuffix != null && end == n) s = s + endOfWordSuffix;
                    byte[] bytes = Utf8.encode(s);
                    boolean all = true;
                    for (byte b : bytes) {
                        all &= byteFallbackIds[b & 0xFF] >= 0;
                    }
                    if (all) {
                        // HF adds these without flushing a pending unk first
                        for (byte b : bytes) {
                            sym = push(sym, count++, byteFallbackIds[b & 0xFF]);
                        }
                        handled = true;
                    }
                }
                if (!handled && unkId >= 0) {
                    if (unk >= 0 && !fuseUnk) {
                        sym = push(sym, count++, unk);
                    }
                    unk = unkId;
                }
            }
            i = end;
        }
        if (unk >= 0) {
            sym = push(sym, count++, unk);
        }
        return mergeAll(sym, count);
    }

    private static int[] push(int[] a, int at, int v) {
        if (at == a.length) {
            a = Arrays.copyOf(a, a.length * 2 + 1);
        }
        a[at] = v;
        return a;
    }

    /** HF Word::merge_all over symbols {@code c[0..n)}. */
    private int[] mergeAll(int[] c, int n) {
        if (n <= 1) {
            return Arrays.copyOf(c, n);
        }
        int[] prev = new int[n];
        int[] next = new int[n];
        boolean[] removed = new boolean[n];
        for (int i = 0; i < n; i++) {
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }
        Heap heap = new Heap(n);
        for (int i = 0; i + 1 < n; i++) {
            long m = merges.get(c[i], c[i + 1]);
            if (m != MergeMap.NONE) {
                heap.push(MergeMap.rank(m), i, MergeMap.newId(m));
            }
        }
        int remaining = n;
        while (heap.size > 0) {
            long top = heap.popKey();
            int newId = heap.lastVal;
            int pos = (int) top;
            if (removed[pos] || next[pos] == -1) {
                continue;
            }
            int right = next[pos];
            long cur = merges.get(c[pos], c[right]);
            if (cur == MergeMap.NONE || MergeMap.newId(cur) != newId) {
                continue; // stale entry
            }
            c[pos] = newId;
            removed[right] = true;
            remaining--;
            next[pos] = next[right];
            if (next[right] >= 0) {
                prev[next[right]] = pos;
            }
            if (prev[pos] >= 0) {
                long m = merges.get(c[prev[pos]], c[pos]);
                if (m != MergeMap.NONE) {
                    heap.push(MergeMap.rank(m), prev[pos], MergeMap.newId(m));
                }
            }
            if (next[pos] >= 0) {
                long m = merges.get(c[pos], c[next[pos]]);
                if (m != MergeMap.NONE) {
                    heap.push(MergeMap.rank(m), pos, MergeMap.newId(m));
                }
            }
        }
        int[] out = new int[remaining];
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (!removed[i]) {
                out[k++] = c[i];
            }
        }
        return out;
    }

    /** Min-heap on (rank, pos) with an int payload. */
    private static final class Heap {
        long[] keys;
        int[] vals;
        int size;
        int lastVal;

        Heap(int cap) {
            keys = new long[Math.max(4, cap)];
            vals = new int[keys.length];
        }

        void push(int rank, int pos, int val) {
            if (size == keys.length) {
                keys = Arrays.copyOf(keys, size * 2);
                vals = Arrays.copyOf(vals, size * 2);
            }
            long key = ((long) rank << 32) | (pos & 0xFFFFFFFFL);
            int i = size++;
            while (i > 0) {
                int p = (i - 1) >>> 1;
                if (keys[p] <= key) {
                    break;
                }
                keys[i] = keys[p];
                vals[i] = vals[p];
                i = p;
            }
            keys[i] = key;
            vals[i] = val;
        }

        long popKey() {
            long top = keys[0];
            lastVal = vals[0];
            size--;
            if (size > 0) {
                long key = keys[size];
                int val = vals[size];
                int i = 0;
                while (true) {
                    int l = 2 * i + 1;
                    if (l >= size) {
                        break;
                    }
                    int m = (l + 1 < size && keys[l + 1] < keys[l]) ? l + 1 : l;
                    if (key <= keys[m]) {
                        break;
                    }
                    keys[i] = keys[m];
                    vals[i] = vals[m];
                    i = m;
                }
                keys[i] = key;
                vals[i] = val;
            }
            return top;
        }
    }

    /** Open-addressing map from an id pair to (rank, new id). */
    static final class MergeMap {
        static final long NONE = -1L;
        private final long[] keys;
        private final long[] values;
        private final int mask;

        MergeMap(int expected) {
            int cap = Integer.highestOneBit(Math.max(16, expected * 2 - 1)) << 1;
            keys = new long[cap];
            values = new long[cap];
            Arrays.fill(keys, -1L);
            mask = cap - 1;
        }

        static int rank(long v) {
            return (int) (v >>> 32);
        }

        static int newId(long v) {
            return (int) v;
        }

        private static int slot(long key) {
            long h = key * 0x9E3779B97F4A7C15L;
            return (int) (h ^ (h >>> 29));
        }

        /** Inserts or overwrites (HF keeps the last duplicate merge). */
        void put(int a, int b, int rank, int newId) {
            long key = ((long) a << 32) | (b & 0xFFFFFFFFL);
            int i = slot(key) & mask;
            while (keys[i] != -1L && keys[i] != key) {
                i = (i + 1) & mask;
            }
            keys[i] = key;
            values[i] = ((long) rank << 32) | (newId & 0xFFFFFFFFL);
        }

        long get(int a, int b) {
            long key = ((long) a << 32) | (b & 0xFFFFFFFFL);
            int i = slot(key) & mask;
            while (true) {
                long k = keys[i];
                if (k == key) {
                    return values[i];
                }
                if (k == -1L) {
                    return NONE;
                }
                i = (i + 1) & mask;
            }
        }
    }
}
