// Causal GQA attention over the paged KV cache, flash-decoding style.
//
// attention_g{1,2,4,8,16}: one block per (token t, kv head, split s). The block serves all G = heads / kvHeads
// query heads that share the kv head (each key/value is read once per group), over the key positions
// [s * L, min((s + 1) * L, len)), len = positions[t] + 1, L = ceil(len / nSplits) rounded up to splitQuantum:
// the split length follows each token's own length (read from device memory), so a graph captured with splits
// for the full context spreads a short sequence over all its blocks too, and splits past len exit at once.
// Keys go in chunks of ATT_CHUNK with an online softmax; scores take one thread per key (many K rows in flight),
// the V accumulation one thread per (head, dim) element.
// With one split it writes the normalized output; otherwise it writes (max, sum, unnormalized acc) per split and
// attention_combine merges the splits. The template argument is the smallest power of two >= G.
//
// Everything that varies per step (positions, sequences, block tables) is read from device memory, and the
// number of splits may exceed what a step needs (empty splits write max = -inf), so a captured graph replays
// correctly at any position.
#include "common.cuh"

#define ATT_THREADS 128
#define ATT_CHUNK 128
#define ATT_MAX_QD 2048  // G * headDim limit (q of the whole group is staged in shared memory)
#define ATT_EPT (ATT_MAX_QD / ATT_THREADS)
#define ATT_MAX_SPLITS 1024
#define ATT_KB 16  // float4 loads of a K row in flight per thread in the scores loop
#define ATT_VB 8   // V loads (keys) in flight per thread in the per-dimension V loop

// Split s of token t's keys, [*start, *end): each token's split length is ceil(len / nSplits) rounded up to the
// quantum, from its own length, so a graph captured with splits for the whole context spreads a short sequence over
// the splits. Returns false for an empty split (start >= len), after marking it (max = -inf, sum = 0) for
// attention_combine, which reads only the live prefix. Both attention kernels use it; the caller returns at once
// (block-uniform: no barrier is skipped by part of the block).
__device__ __forceinline__ bool split_keys(int len, int s, int nSplits, int quantum, i64 tok_head0, int G,
                                           float* __restrict__ pMax, float* __restrict__ pSum, int* start, int* end) {
    const int sl = ((len + nSplits - 1) / nSplits + quantum - 1) / quantum * quantum;
    *start = s * sl;
    *end = min(*start + sl, len);
    if (*start < len) return true;
    if (nSplits > 1 && threadIdx.x < G) {
        const i64 idx = (tok_head0 + threadIdx.x) * nSplits + s;
        pMax[idx] = neg_inf();
        pSum[idx] = 0.0f;
    }
    return false;
}

// Element idx of a cache region of KV type (F32, BF16 or FP8 E4M3; an FP8 element still needs its slot's scale).
template <int KV> __device__ __forceinline__ float kv_at(const void* __restrict__ base, i64 idx) {
    if constexpr (KV == KV_F32) return static_cast<const float*>(base)[idx];
    else if constexpr (KV == KV_BF16) return bf16_to_f32(static_cast<const u16*>(base)[idx]);
    else return fp8_to_f32(static_cast<const u8*>(base)[idx]);
}

// The FP8 scale of (slot, kv head) in a scale array [slots, kvHeads]; 1 for the other types (never read).
template <int KV> __device__ __forceinline__ float kv_scale(const float* __restrict__ scales, i64 slot, int kvHeads,
                                                            int kvh) {
    if constexpr (KV == KV_FP8) return scales[slot * kvHeads + kvh];
    else return 1.0f;
}

template <int KV, int MAXG>
__device__ __forceinline__ void attention_split(
        const float* __restrict__ qkv, int rowStride, int heads, int kvHeads, int headDim, float scale,
        const void* __restrict__ kCache, const void* __restrict__ vCache, int kvDim,
        const int* __restrict__ positions, const int* __restrict__ seqOfToken, const int* __restrict__ blockTables,
        int maxBlocksPerSeq, int blockSize, int splitLen, int nSplits,
        float* __restrict__ out, float* __restrict__ pAcc, float* __restrict__ pMax, float* __restrict__ pSum,
        const float* __restrict__ kScale, const float* __restrict__ vScale) {
    __shared__ F4 qs4[ATT_MAX_QD / 4];  // q of the group, scaled; F4 for 16-byte alignment
    float* qs = reinterpret_cast<float*>(qs4);
    __shared__ float sc[MAXG * ATT_CHUNK];
    __shared__ i64 slots[ATT_CHUNK];
    __shared__ float mS[MAXG], lS[MAXG], alphaS[MAXG];

    const int G = heads / kvHeads, D = headDim, GD = G * D;
    const int t = blockIdx.x / kvHeads, kvh = blockIdx.x % kvHeads, s = blockIdx.y;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nWarps = blockDim.x >> 5;
    int start, end;
    if (!split_keys(positions[t] + 1, s, nSplits, splitLen, (i64) t * heads + kvh * G, G, pMax, pSum, &start, &end)) {
        return;  // empty split (a graph sized for the full context)
    }
    const int seq = seqOfToken[t];
    const int* __restrict__ table = blockTables + (i64) seq * maxBlocksPerSeq;
    const i64 headOff = (i64) kvh * D;
    // K rows as float4 when every row start is 16-byte aligned (D and kvDim multiples of 4, aligned base)
    const bool vec4 = KV == KV_F32 && (D & 3) == 0 && (kvDim & 3) == 0 && (reinterpret_cast<unsigned long long>(kCache) & 15) == 0;
    // V per dimension when D divides the block (D = 32, 64, 128): thread (vr, vd), vR key lanes
    const bool perDim = ATT_THREADS % D == 0 && blockDim.x == ATT_THREADS;
    const int vR = perDim ? ATT_THREADS / D : 1, vr = perDim ? tid / D : 0, vd = perDim ? tid % D : 0;


    const float* __restrict__ q = qkv + (i64) t * rowStride + (i64) kvh * G * D;
    for (int e = tid; e < GD; e += blockDim.x) qs[e] = q[e] * scale;
    if (tid < MAXG) { mS[tid] = neg_inf(); lS[tid] = 0.0f; alphaS[tid] = 1.0f; }

    float acc[ATT_EPT];
#pragma unroll
    for (int k = 0; k < ATT_EPT; k++) acc[k] = 0.0f;

    for (int c0 = start; c0 < end; c0 += ATT_CHUNK) {
        const int cl = min(ATT_CHUNK, end - c0);
        __syncthreads();  // previous chunk's readers of slots/sc are done; qs/mS visible on the first pass
        if (tid < cl) {
            const int p = c0 + tid;
            slots[tid] = (i64) table[p / blockSize] * blockSize + p % blockSize;
        }
        __syncthreads();

        // scores: one thread per key (keys are independent, so up to ATT_THREADS K rows are in flight at once,
        // each thread issuing ATT_KB 16-byte loads before its FMAs); q is read from shared memory as a broadcast.
        // Each dot product sums its dimensions in order d = 0, 1, ..., D - 1 (deterministic).
        for (int pi = tid; pi < cl; pi += blockDim.x) {
            const i64 kIdx = slots[pi] * kvDim + headOff;
            const float* __restrict__ kp = static_cast<const float*>(kCache) + kIdx;  // F32 only
            float part[MAXG];
#pragma unroll
            for (int g = 0; g < MAXG; g++) part[g] = 0.0f;
            if (vec4) {
                const F4* __restrict__ kp4 = reinterpret_cast<const F4*>(kp);
                const F4* __restrict__ q4 = qs4;
                const int D4 = D >> 2;
                for (int b0 = 0; b0 < D4; b0 += ATT_KB) {
                    F4 kv[ATT_KB];
#pragma unroll
                    for (int u = 0; u < ATT_KB; u++) {
                        if (b0 + u < D4) kv[u] = kp4[b0 + u];
                    }
#pragma unroll
                    for (int u = 0; u < ATT_KB; u++) {
                        if (b0 + u < D4) {
#pragma unroll
                            for (int g = 0; g < MAXG; g++) {
                                if (g < G) {
                                    const F4 qv = q4[g * D4 + b0 + u];
                                    float a = part[g];
                                    a = fmaf(qv.x, kv[u].x, a);
                                    a = fmaf(qv.y, kv[u].y, a);
                                    a = fmaf(qv.z, kv[u].z, a);
                                    a = fmaf(qv.w, kv[u].w, a);
                                    part[g] = a;
                                }
                            }
                        }
                    }
                }
            } else {
                for (int d = 0; d < D; d++) {
                    const float kv = kv_at<KV>(kCache, kIdx + d);
#pragma unroll
                    for (int g = 0; g < MAXG; g++) {
                        if (g < G) part[g] = fmaf(qs[g * D + d], kv, part[g]);
                    }
                }
            }
            const float ks = kv_scale<KV>(kScale, slots[pi], kvHeads, kvh);
#pragma unroll
            for (int g = 0; g < MAXG; g++) {
                if (g < G) sc[g * ATT_CHUNK + pi] = KV == KV_FP8 ? part[g] * ks : part[g];
            }
        }
        __syncthreads();

        // online softmax update, one warp per query head
        for (int g = warp; g < G; g += nWarps) {
            float mx = neg_inf();
            for (int pi = lane; pi < cl; pi += 32) mx = fmaxf(mx, sc[g * ATT_CHUNK + pi]);
            mx = warp_max(mx);
            const float mOld = mS[g];
            const float mNew = fmaxf(mOld, mx);
            float sum = 0.0f;
            for (int pi = lane; pi < cl; pi += 32) {
                const float e = expf(sc[g * ATT_CHUNK + pi] - mNew);
                sc[g * ATT_CHUNK + pi] = e;
                sum += e;
            }
            sum = warp_sum(sum);
            if (lane == 0) {
                const float a = expf(mOld - mNew);  // 0 on the first chunk (mOld = -inf)
                alphaS[g] = a;
                lS[g] = lS[g] * a + sum;
                mS[g] = mNew;
            }
        }
        __syncthreads();

        if (perDim) {
            // thread (r, d) accumulates dimension d of every group head over the chunk's keys r, r + R, ...:
            // one load of V[p, d] serves all G heads, ATT_VB keys' loads in flight before the FMAs (key order kept)
#pragma unroll
            for (int g = 0; g < MAXG; g++) {
                if (g < G) acc[g] *= alphaS[g];
            }
            for (int p0 = vr; p0 < cl; p0 += vR * ATT_VB) {
                float vv[ATT_VB];
#pragma unroll
                for (int u = 0; u < ATT_VB; u++) {
                    const int p = p0 + u * vR;
                    if (p < cl) {
                        vv[u] = kv_at<KV>(vCache, slots[p] * kvDim + headOff + vd);
                        if (KV == KV_FP8) vv[u] *= kv_scale<KV>(vScale, slots[p], kvHeads, kvh);
                    }
                }
#pragma unroll
                for (int u = 0; u < ATT_VB; u++) {
                    const int p = p0 + u * vR;
                    if (p < cl) {
#pragma unroll
                        for (int g = 0; g < MAXG; g++) {
                            if (g < G) acc[g] = fmaf(sc[g * ATT_CHUNK + p], vv[u], acc[g]);
                        }
                    }
                }
            }
        } else {
            // acc[g, d] = acc * alpha[g] + sum_p w[g, p] * V[p, d]; thread owns elements e = tid + k * blockDim.
            // Keys in groups of 4: every owned element's 4 loads are issued before the FMAs (up to 4 * ATT_EPT loads
            // in flight instead of one dependent chain per element); the FMAs keep key order, so the sum is unchanged.
#pragma unroll
            for (int k = 0; k < ATT_EPT; k++) {
                const int e = tid + k * ATT_THREADS;
                if (e < GD) acc[k] *= alphaS[e / D];
            }
            for (int p0 = 0; p0 < cl; p0 += 4) {
                const int m = min(4, cl - p0);
                i64 off[4];
                float vsc[4];
#pragma unroll
                for (int u = 0; u < 4; u++) {
                    off[u] = slots[p0 + (u < m ? u : 0)] * kvDim + headOff;
                    vsc[u] = kv_scale<KV>(vScale, slots[p0 + (u < m ? u : 0)], kvHeads, kvh);
                }
                float vv[ATT_EPT][4];
#pragma unroll
                for (int k = 0; k < ATT_EPT; k++) {
                    const int e = tid + k * ATT_THREADS;
                    if (e < GD) {
                        const int d = e % D;
#pragma unroll
                        for (int u = 0; u < 4; u++) {
                            vv[k][u] = kv_at<KV>(vCache, off[u] + d);
                            if (KV == KV_FP8) vv[k][u] *= vsc[u];
                        }
                    }
                }
#pragma unroll
                for (int k = 0; k < ATT_EPT; k++) {
                    const int e = tid + k * ATT_THREADS;
                    if (e < GD) {
                        const float* __restrict__ w = sc + (e / D) * ATT_CHUNK + p0;
                        float a = acc[k];
#pragma unroll
                        for (int u = 0; u < 4; u++) {
                            if (u < m) a = fmaf(w[u], vv[k][u], a);
                        }
                        acc[k] = a;
                    }
                }
            }
        }
    }
    __syncthreads();  // mS/lS final; every thread is done reading sc

    if (perDim) {
        // sum the vR key-lane partials of each (head, dim) in order r = 0, 1, ... (sc reused: vR * MAXG * D floats)
#pragma unroll
        for (int g = 0; g < MAXG; g++) {
            if (g < G) sc[(vr * MAXG + g) * D + vd] = acc[g];
        }
        __syncthreads();
        for (int e = tid; e < GD; e += blockDim.x) {
            const int g = e / D, d = e - g * D;
            const int h = kvh * G + g;
            float a = 0.0f;
            for (int r = 0; r < vR; r++) a += sc[(r * MAXG + g) * D + d];
            if (nSplits == 1) {
                out[((i64) t * heads + h) * D + d] = a / lS[g];
            } else {
                const i64 idx = ((i64) t * heads + h) * nSplits + s;
                pAcc[idx * D + d] = a;
                if (d == 0) { pMax[idx] = mS[g]; pSum[idx] = lS[g]; }
            }
        }
        return;
    }

#pragma unroll
    for (int k = 0; k < ATT_EPT; k++) {
        const int e = tid + k * ATT_THREADS;
        if (e < GD) {
            const int g = e / D, d = e - g * D;
            const int h = kvh * G + g;
            if (nSplits == 1) {
                out[((i64) t * heads + h) * D + d] = acc[k] / lS[g];
            } else {
                const i64 idx = ((i64) t * heads + h) * nSplits + s;
                pAcc[idx * D + d] = acc[k];
                if (d == 0) { pMax[idx] = mS[g]; pSum[idx] = lS[g]; }
            }
        }
    }
}

// kScale/vScale: the FP8 caches' scale arrays [slots, kvHeads] (unused, may be 0, for F32 and BF16)
#define ATT_ARGS const float* __restrict__ qkv, int rowStride, int heads, int kvHeads, int headDim, float scale, \
    const void* __restrict__ kCache, const void* __restrict__ vCache, int kvDim, const int* __restrict__ positions, \
    const int* __restrict__ seqOfToken, const int* __restrict__ blockTables, int maxBlocksPerSeq, int blockSize, \
    int splitLen, int nSplits, float* __restrict__ out, float* __restrict__ pAcc, float* __restrict__ pMax, \
    float* __restrict__ pSum, const float* __restrict__ kScale, const float* __restrict__ vScale
#define ATT_PASS qkv, rowStride, heads, kvHeads, headDim, scale, kCache, vCache, kvDim, positions, seqOfToken, \
    blockTables, maxBlocksPerSeq, blockSize, splitLen, nSplits, out, pAcc, pMax, pSum, kScale, vScale
// attention_g{G} reads an F32 cache, attention_g{G}_bf16 and _fp8 the other types
#define ATT_KERNEL(G) \
    extern "C" __global__ void __launch_bounds__(ATT_THREADS) attention_g##G(ATT_ARGS) { \
        attention_split<KV_F32, G>(ATT_PASS); } \
    extern "C" __global__ void __launch_bounds__(ATT_THREADS) attention_g##G##_bf16(ATT_ARGS) { \
        attention_split<KV_BF16, G>(ATT_PASS); } \
    extern "C" __global__ void __launch_bounds__(ATT_THREADS) attention_g##G##_fp8(ATT_ARGS) { \
        attention_split<KV_FP8, G>(ATT_PASS); }
ATT_KERNEL(1) ATT_KERNEL(2) ATT_KERNEL(4) ATT_KERNEL(8) ATT_KERNEL(16)

// out[t, h, :] = sum_s exp(m_s - M) acc_s / sum_s exp(m_s - M) l_s; one block per (t, h).
extern "C" __global__ void attention_combine(const float* __restrict__ pAcc, const float* __restrict__ pMax,
                                             const float* __restrict__ pSum, int nSplits, int headDim,
                                             float* __restrict__ out) {
    __shared__ float wS[ATT_MAX_SPLITS];
    __shared__ float scratch[32];
    const i64 th = blockIdx.x;  // t * heads + h
    const float* __restrict__ m = pMax + th * nSplits;
    const float* __restrict__ l = pSum + th * nSplits;
    // splits at or past the first empty one (start >= len: pMax = -inf, pAcc not written) are skipped; the
    // live ones are a prefix, since splits cover increasing key ranges
    float mx = neg_inf();
    int live = 0;
    for (int s = threadIdx.x; s < nSplits; s += blockDim.x) {
        mx = fmaxf(mx, m[s]);
        if (m[s] != neg_inf()) live = s + 1;
    }
    mx = block_max(mx, scratch);
    live = (int) block_max((float) live, scratch);
    float total = 0.0f;
    for (int s = threadIdx.x; s < live; s += blockDim.x) {
        const float w = m[s] == neg_inf() ? 0.0f : expf(m[s] - mx);
        wS[s] = w;
        total += w * l[s];
    }
    total = block_sum(total, scratch);  // syncs, so wS is visible below
    const float inv = 1.0f / total;
    const float* __restrict__ a = pAcc + th * nSplits * headDim;
    for (int d = threadIdx.x; d < headDim; d += blockDim.x) {
        float o = 0.0f;
        for (int s = 0; s < live; s++) o = fmaf(wS[s], a[(i64) s * headDim + d], o);
        out[th * headDim + d] = o * inv;
    }
}

// ---------------------------------------------------------------- decode attention (n <= 8 tokens per launch)
// attention_dec_g{MAXG}_d{DL}: the same blocks, splits and outputs as attention_g* (one block per token, kv head
// and split; split lengths re-derived from each token's own length; empty splits only mark themselves), laid out
// for short splits: lane l of each warp owns dimensions [l * DL, l * DL + DL) of the group's query heads (kept in
// registers) and of every K/V row, so a key's row is one coalesced load across the warp. Each warp takes
// DEC_KPW consecutive keys at a time and issues all their K and V loads before any arithmetic (one memory round
// trip per 32 keys of the block), reduces each score over the warp with shuffles (every lane gets every score),
// and keeps its own online softmax; the four warps merge in warp order at the end. No barrier inside the key
// loop. Deterministic: fixed key order per warp, fixed reduction trees, fixed merge order.
#define DEC_WARPS 4
#define DEC_KPW 8

struct alignas(8) F2 { float x, y; };

template <int DL> __device__ __forceinline__ void load_dl(const float* __restrict__ p, float* v) {
    if (DL == 8) {
        const F4 a = reinterpret_cast<const F4*>(p)[0], b = reinterpret_cast<const F4*>(p)[1];
        v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w; v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
    } else if (DL == 4) {
        const F4 a = *reinterpret_cast<const F4*>(p);
        v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
    } else if (DL == 2) {
        const F2 a = *reinterpret_cast<const F2*>(p);
        v[0] = a.x; v[1] = a.y;
    } else {
        v[0] = p[0];
    }
}

struct alignas(8) U2 { u32 x, y; };

// DL consecutive cache elements of type KV from element idx (idx a multiple of DL: the loads are aligned) as floats;
// BF16 and FP8 rows are 2 and 4 times narrower, so a lane's slice is one load of DL * 2 or DL bytes.
template <int KV, int DL> __device__ __forceinline__ void load_kv_dl(const void* __restrict__ base, i64 idx,
                                                                     float* v) {
    if constexpr (KV == KV_F32) {
        load_dl<DL>(static_cast<const float*>(base) + idx, v);
    } else if constexpr (KV == KV_BF16) {
        const u16* p = static_cast<const u16*>(base) + idx;
        if constexpr (DL == 8) {
            const U4 a = *reinterpret_cast<const U4*>(p);
            const u32 w[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
            for (int i = 0; i < 4; i++) { v[2 * i] = __uint_as_float(w[i] << 16); v[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u); }
        } else if constexpr (DL == 4) {
            const U2 a = *reinterpret_cast<const U2*>(p);
            v[0] = __uint_as_float(a.x << 16); v[1] = __uint_as_float(a.x & 0xffff0000u);
            v[2] = __uint_as_float(a.y << 16); v[3] = __uint_as_float(a.y & 0xffff0000u);
        } else if constexpr (DL == 2) {
            const u32 a = *reinterpret_cast<const u32*>(p);
            v[0] = __uint_as_float(a << 16); v[1] = __uint_as_float(a & 0xffff0000u);
        } else {
            v[0] = bf16_to_f32(p[0]);
        }
    } else {
        const u8* p = static_cast<const u8*>(base) + idx;
        if constexpr (DL == 8) {
            const U2 a = *reinterpret_cast<const U2*>(p);
#pragma unroll
            for (int i = 0; i < 4; i++) { v[i] = fp8_to_f32(a.x >> (8 * i)); v[4 + i] = fp8_to_f32(a.y >> (8 * i)); }
        } else if constexpr (DL == 4) {
            const u32 a = *reinterpret_cast<const u32*>(p);
#pragma unroll
            for (int i = 0; i < 4; i++) v[i] = fp8_to_f32(a >> (8 * i));
        } else if constexpr (DL == 2) {
            const u32 a = *reinterpret_cast<const u16*>(p);
            v[0] = fp8_to_f32(a); v[1] = fp8_to_f32(a >> 8);
        } else {
            v[0] = fp8_to_f32(p[0]);
        }
    }
}

template <int KV, int MAXG, int DL>
__device__ __forceinline__ void attention_dec(
        const float* __restrict__ qkv, int rowStride, int heads, int kvHeads, float scale,
        const void* __restrict__ kCache, const void* __restrict__ vCache, int kvDim,
        const int* __restrict__ positions, const int* __restrict__ seqOfToken, const int* __restrict__ blockTables,
        int maxBlocksPerSeq, int blockSize, int splitLen, int nSplits,
        float* __restrict__ out, float* __restrict__ pAcc, float* __restrict__ pMax, float* __restrict__ pSum,
        const float* __restrict__ kScale, const float* __restrict__ vScale) {
    constexpr int D = 32 * DL;
    __shared__ float wm[DEC_WARPS][MAXG], wl[DEC_WARPS][MAXG];
    __shared__ float wacc[DEC_WARPS][MAXG * D];

    const int G = heads / kvHeads;
    const int t = blockIdx.x / kvHeads, kvh = blockIdx.x % kvHeads, s = blockIdx.y;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    int start, end;
    if (!split_keys(positions[t] + 1, s, nSplits, splitLen, (i64) t * heads + kvh * G, G, pMax, pSum, &start, &end)) {
        return;  // empty split
    }
    const int* __restrict__ table = blockTables + (i64) seqOfToken[t] * maxBlocksPerSeq;
    const i64 laneOff = (i64) kvh * D + lane * DL;

    float q[MAXG][DL];
    const float* __restrict__ qp = qkv + (i64) t * rowStride + (i64) kvh * G * D + lane * DL;
#pragma unroll
    for (int g = 0; g < MAXG; g++) {
        if (g < G) {
            load_dl<DL>(qp + (i64) g * D, q[g]);
#pragma unroll
            for (int e = 0; e < DL; e++) q[g][e] *= scale;
        } else {
#pragma unroll
            for (int e = 0; e < DL; e++) q[g][e] = 0.0f;
        }
    }
    float m[MAXG], l[MAXG], acc[MAXG][DL];
#pragma unroll
    for (int g = 0; g < MAXG; g++) {
        m[g] = neg_inf();
        l[g] = 0.0f;
#pragma unroll
        for (int e = 0; e < DL; e++) acc[g][e] = 0.0f;
    }

    for (int c0 = start + warp * DEC_KPW; c0 < end; c0 += DEC_WARPS * DEC_KPW) {
        const int cnt = min(DEC_KPW, end - c0);
        i64 mySlot = 0;
        if (lane < cnt) {
            const int p = c0 + lane;
            mySlot = (i64) table[p / blockSize] * blockSize + p % blockSize;
        }
        float kr[DEC_KPW][DL], vr[DEC_KPW][DL];
        float ksc[DEC_KPW], vsc[DEC_KPW];  // FP8 scales of the keys' slots (1 otherwise)
#pragma unroll
        for (int j = 0; j < DEC_KPW; j++) {
            const i64 sj = __shfl_sync(FULL_MASK, mySlot, j);
            ksc[j] = 1.0f;
            vsc[j] = 1.0f;
            if (j < cnt) {
                load_kv_dl<KV, DL>(kCache, sj * kvDim + laneOff, kr[j]);
                load_kv_dl<KV, DL>(vCache, sj * kvDim + laneOff, vr[j]);
                ksc[j] = kv_scale<KV>(kScale, sj, kvHeads, kvh);
                vsc[j] = kv_scale<KV>(vScale, sj, kvHeads, kvh);
            } else {
#pragma unroll
                for (int e = 0; e < DL; e++) { kr[j][e] = 0.0f; vr[j][e] = 0.0f; }
            }
        }
#pragma unroll
        for (int g = 0; g < MAXG; g++) {
            if (g < G) {
                float sc[DEC_KPW];
#pragma unroll
                for (int j = 0; j < DEC_KPW; j++) {
                    float a = 0.0f;
#pragma unroll
                    for (int e = 0; e < DL; e++) a = fmaf(q[g][e], kr[j][e], a);
                    sc[j] = KV == KV_FP8 ? warp_sum(a) * ksc[j] : warp_sum(a);
                }
                float mx = m[g];
#pragma unroll
                for (int j = 0; j < DEC_KPW; j++) {
                    if (j < cnt) mx = fmaxf(mx, sc[j]);
                }
                const float alpha = expf(m[g] - mx);  // 0 on the first keys (m = -inf)
                float lg = l[g] * alpha;
#pragma unroll
                for (int e = 0; e < DL; e++) acc[g][e] *= alpha;
#pragma unroll
                for (int j = 0; j < DEC_KPW; j++) {
                    if (j < cnt) {
                        const float p = expf(sc[j] - mx);
                        lg += p;
                        const float pv = KV == KV_FP8 ? p * vsc[j] : p;
#pragma unroll
                        for (int e = 0; e < DL; e++) acc[g][e] = fmaf(pv, vr[j][e], acc[g][e]);
                    }
                }
                l[g] = lg;
                m[g] = mx;
            }
        }
    }

    // merge the warps (a warp without keys has m = -inf, l = 0, acc = 0)
#pragma unroll
    for (int g = 0; g < MAXG; g++) {
        if (g < G) {
            if (lane == 0) { wm[warp][g] = m[g]; wl[warp][g] = l[g]; }
#pragma unroll
            for (int e = 0; e < DL; e++) wacc[warp][g * D + lane * DL + e] = acc[g][e];
        }
    }
    __syncthreads();
    for (int e = tid; e < G * D; e += blockDim.x) {
        const int g = e / D, d = e - g * D;
        float mx = neg_inf();
#pragma unroll
        for (int w = 0; w < DEC_WARPS; w++) mx = fmaxf(mx, wm[w][g]);
        float L = 0.0f, A = 0.0f;
#pragma unroll
        for (int w = 0; w < DEC_WARPS; w++) {
            const float ew = wm[w][g] == neg_inf() ? 0.0f : expf(wm[w][g] - mx);
            L = fmaf(ew, wl[w][g], L);
            A = fmaf(ew, wacc[w][e], A);
        }
        const int h = kvh * G + g;
        if (nSplits == 1) {
            out[((i64) t * heads + h) * D + d] = A / L;
        } else {
            const i64 idx = ((i64) t * heads + h) * nSplits + s;
            pAcc[idx * D + d] = A;
            if (d == 0) { pMax[idx] = mx; pSum[idx] = L; }
        }
    }
}

#define DEC_ARGS const float* __restrict__ qkv, int rowStride, int heads, int kvHeads, float scale, \
    const void* __restrict__ kCache, const void* __restrict__ vCache, int kvDim, const int* __restrict__ positions, \
    const int* __restrict__ seqOfToken, const int* __restrict__ blockTables, int maxBlocksPerSeq, int blockSize, \
    int splitLen, int nSplits, float* __restrict__ out, float* __restrict__ pAcc, float* __restrict__ pMax, \
    float* __restrict__ pSum, const float* __restrict__ kScale, const float* __restrict__ vScale
#define DEC_PASS qkv, rowStride, heads, kvHeads, scale, kCache, vCache, kvDim, positions, seqOfToken, \
    blockTables, maxBlocksPerSeq, blockSize, splitLen, nSplits, out, pAcc, pMax, pSum, kScale, vScale
// attention_dec_g{G}_d{DL} reads an F32 cache, the _bf16 and _fp8 variants the other types
#define DEC_KERNEL(G, DL) \
    extern "C" __global__ void __launch_bounds__(32 * DEC_WARPS) attention_dec_g##G##_d##DL(DEC_ARGS) { \
        attention_dec<KV_F32, G, DL>(DEC_PASS); } \
    extern "C" __global__ void __launch_bounds__(32 * DEC_WARPS) attention_dec_g##G##_d##DL##_bf16(DEC_ARGS) { \
        attention_dec<KV_BF16, G, DL>(DEC_PASS); } \
    extern "C" __global__ void __launch_bounds__(32 * DEC_WARPS) attention_dec_g##G##_d##DL##_fp8(DEC_ARGS) { \
        attention_dec<KV_FP8, G, DL>(DEC_PASS); }

// MAXG * DL <= 32 (q and acc in registers): head dims 32 and 64 with groups up to 16, 128 up to 8, 256 up to 4
DEC_KERNEL(1, 1) DEC_KERNEL(2, 1) DEC_KERNEL(4, 1) DEC_KERNEL(8, 1) DEC_KERNEL(16, 1)
DEC_KERNEL(1, 2) DEC_KERNEL(2, 2) DEC_KERNEL(4, 2) DEC_KERNEL(8, 2) DEC_KERNEL(16, 2)
DEC_KERNEL(1, 4) DEC_KERNEL(2, 4) DEC_KERNEL(4, 4) DEC_KERNEL(8, 4)
DEC_KERNEL(1, 8) DEC_KERNEL(2, 8) DEC_KERNEL(4, 8)

// Draft-tree verification (Batch.tree): token t attends to cache indices [0, prefix) of its sequence, prefix =
// min(kvPositions[t] + 1, treeBase[seq]), then to treeBase[seq] + j for each set bit j of treeMask[t] (its tree
// ancestors and itself), in that order. One block of TREE_THREADS per (token, query head); the keys go in chunks
// of TREE_THREADS (a thread scores one key), with an online softmax across chunks; the output dims are split over
// the threads. Simple rather than fast: a tree step is a few tokens once per speculative round.
#define TREE_THREADS 128
extern "C" __global__ void __launch_bounds__(TREE_THREADS) attention_tree(
        const float* __restrict__ qkv, int rowStride, int heads, int kvHeads, int headDim, float scale,
        const float* __restrict__ kCache, const float* __restrict__ vCache, int kvDim,
        const int* __restrict__ kvPositions, const int* __restrict__ seqOfToken, const int* __restrict__ blockTables,
        int maxBlocksPerSeq, int blockSize, const i64* __restrict__ treeMask, const int* __restrict__ treeBase,
        float* __restrict__ out) {
    __shared__ float sc[TREE_THREADS];
    __shared__ i64 slots[TREE_THREADS];
    __shared__ float red[TREE_THREADS];
    __shared__ float mS, lS, alphaS;
    const int t = blockIdx.x / heads, h = blockIdx.x % heads, tid = threadIdx.x;
    const int D = headDim, G = heads / kvHeads;
    const int seq = seqOfToken[t];
    const int* __restrict__ table = blockTables + (i64) seq * maxBlocksPerSeq;
    const int own = kvPositions[t];
    const int base = treeBase[seq];
    const int prefix = min(own + 1, base);
    const u64 mask = (u64) treeMask[t];
    const int count = prefix + __popcll(mask);
    const float* __restrict__ q = qkv + (i64) t * rowStride + (i64) h * D;
    const i64 headOff = (i64) (h / G) * D;
    float acc[4] = {0.f, 0.f, 0.f, 0.f};  // dims tid, tid + 128, ... (headDim <= 512)
    if (tid == 0) { mS = __int_as_float(0xff800000); lS = 0.f; }
    __syncthreads();
    for (int c0 = 0; c0 < count; c0 += TREE_THREADS) {
        const int i = c0 + tid;
        float s = __int_as_float(0xff800000);  // -inf
        if (i < count) {
            int pos;
            if (i < prefix) {
                pos = i;
            } else {  // the (i - prefix)-th set bit of the mask
                u64 m = mask;
                for (int k = 0; k < i - prefix; k++) m &= m - 1;
                pos = base + __ffsll((long long) m) - 1;
            }
            const i64 slot = (i64) table[pos / blockSize] * blockSize + pos % blockSize;
            slots[tid] = slot;
            const float* __restrict__ k = kCache + slot * kvDim + headOff;
            float dot = 0.f;
            for (int d = 0; d < D; d++) dot = fmaf(q[d], k[d], dot);
            s = dot * scale;
        }
        sc[tid] = s;
        red[tid] = s;
        __syncthreads();
        for (int w = TREE_THREADS / 2; w > 0; w >>= 1) {
            if (tid < w) red[tid] = fmaxf(red[tid], red[tid + w]);
            __syncthreads();
        }
        if (tid == 0) {
            const float mNew = fmaxf(mS, red[0]);
            alphaS = expf(mS - mNew);  // exp(-inf) = 0 on the first chunk
            mS = mNew;
        }
        __syncthreads();
        const float e = i < count ? expf(sc[tid] - mS) : 0.f;
        sc[tid] = e;
        red[tid] = e;
        __syncthreads();
        for (int w = TREE_THREADS / 2; w > 0; w >>= 1) {
            if (tid < w) red[tid] += red[tid + w];
            __syncthreads();
        }
        if (tid == 0) lS = lS * alphaS + red[0];
        const int live = min(TREE_THREADS, count - c0);
        for (int r = 0; r < 4; r++) {
            const int d = tid + r * TREE_THREADS;
            if (d < D) {
                float a = acc[r] * alphaS;
                for (int j = 0; j < live; j++) a = fmaf(sc[j], vCache[slots[j] * kvDim + headOff + d], a);
                acc[r] = a;
            }
        }
        __syncthreads();
    }
    const float inv = 1.f / lS;
    for (int r = 0; r < 4; r++) {
        const int d = tid + r * TREE_THREADS;
        if (d < D) out[(i64) t * heads * D + (i64) h * D + d] = acc[r] * inv;
    }
}
