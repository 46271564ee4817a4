// Matrix-vector products for decode and small batches: out[t, r] = sum_k x[t, k] * W[r, k] (+ bias[r]),
// t < N <= 8 tokens, W in F32/F16/BF16/Q8_0/Q4_0. Memory-bound: every weight byte is read once per launch.
//
// Fast path (cols a multiple of the chunk, gemv_multi below): 1 or 4 rows per group of 1 or 4 warps; each lane
// reads 16-byte chunks of the row (4 F32 / 8 F16|BF16 / 16 Q8_0 / 32 Q4_0 values) past L1, several chunks in
// flight, and FMAs them against the N activation rows (float4 loads, L1-resident). Lanes are reduced with warp
// shuffles, the warps of a group through shared memory.
// Generic path (any cols, dense types): same shape, scalar loads.
#include "common.cuh"

template <int DT> struct Chunk;
template <> struct Chunk<DT_F32>  { static constexpr int E = 4;  static constexpr int ROW_BYTES_NUM = 4, ROW_BYTES_DEN = 1; };
template <> struct Chunk<DT_F16>  { static constexpr int E = 8;  static constexpr int ROW_BYTES_NUM = 2, ROW_BYTES_DEN = 1; };
template <> struct Chunk<DT_BF16> { static constexpr int E = 8;  static constexpr int ROW_BYTES_NUM = 2, ROW_BYTES_DEN = 1; };
template <> struct Chunk<DT_Q8_0> { static constexpr int E = 16; static constexpr int ROW_BYTES_NUM = 1, ROW_BYTES_DEN = 1; };
template <> struct Chunk<DT_Q4_0> { static constexpr int E = 32; static constexpr int ROW_BYTES_NUM = 1, ROW_BYTES_DEN = 2; };

__device__ __forceinline__ float lo_bf16(u32 v) { return __uint_as_float(v << 16); }
__device__ __forceinline__ float hi_bf16(u32 v) { return __uint_as_float(v & 0xffff0000u); }
__device__ __forceinline__ float lo_f16(u32 v) { return f16_to_f32((u16) (v & 0xffffu)); }
__device__ __forceinline__ float hi_f16(u32 v) { return f16_to_f32((u16) (v >> 16)); }

// Weights are read once per launch: load them past L1 (L1::no_allocate) so the activations, which every row
// re-reads, stay L1-resident instead of being evicted by the weight stream and refetched from L2.
__device__ __forceinline__ U4 ld_stream(const U4* p) {
    U4 r;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
    return r;
}

template <int DT> __device__ __forceinline__ float chunk_scale(const u16* __restrict__ srow, int c) {
    if (DT == DT_Q8_0) return f16_to_f32(srow[c >> 1]);
    if (DT == DT_Q4_0) return f16_to_f32(srow[c]);
    return 1.0f;
}

// Sub-chunk k (4 consecutive elements at offset 4k of the chunk) of a 16-byte chunk, k in [0, E/4). Q4_0 chunks
// are one block: byte j holds element j (low nibble) and j + 16 (high nibble), so sub-chunk k < 4 is the low
// nibbles of word k and k >= 4 the high nibbles of word k - 4.
template <int DT> __device__ __forceinline__ void decode4(const U4& c, int k, float* v);

__device__ __forceinline__ u32 word(const U4& c, int i) { return i == 0 ? c.x : i == 1 ? c.y : i == 2 ? c.z : c.w; }

template <> __device__ __forceinline__ void decode4<DT_F32>(const U4& c, int k, float* v) {
    v[0] = __uint_as_float(c.x); v[1] = __uint_as_float(c.y); v[2] = __uint_as_float(c.z); v[3] = __uint_as_float(c.w);
}
template <> __device__ __forceinline__ void decode4<DT_BF16>(const U4& c, int k, float* v) {
    const u32 a = word(c, 2 * k), b = word(c, 2 * k + 1);
    v[0] = lo_bf16(a); v[1] = hi_bf16(a); v[2] = lo_bf16(b); v[3] = hi_bf16(b);
}
template <> __device__ __forceinline__ void decode4<DT_F16>(const U4& c, int k, float* v) {
    const u32 a = word(c, 2 * k), b = word(c, 2 * k + 1);
    v[0] = lo_f16(a); v[1] = hi_f16(a); v[2] = lo_f16(b); v[3] = hi_f16(b);
}
// Byte b of a as the low byte of the float 2^23 + byte (exponent bits 0x4B): one byte permute instead of an
// integer-to-float conversion (a quarter-rate instruction that made the quantized GEMVs compute-bound).
__device__ __forceinline__ float byte_as_2p23(u32 a, int b) {
    u32 r;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(0x4B000000u), "r"(0x7440u | (u32) b));
    return __uint_as_float(r);
}

template <> __device__ __forceinline__ void decode4<DT_Q8_0>(const U4& c, int k, float* v) {
    const u32 a = word(c, k) ^ 0x80808080u;  // signed q -> q + 128 in 0..255
#pragma unroll
    for (int b = 0; b < 4; b++) v[b] = byte_as_2p23(a, b) - 8388736.0f;  // (2^23 + q + 128) - (2^23 + 128), exact
}
template <> __device__ __forceinline__ void decode4<DT_Q4_0>(const U4& c, int k, float* v) {
    const u32 a = (word(c, k & 3) >> (k >= 4 ? 4 : 0)) & 0x0F0F0F0Fu;
#pragma unroll
    for (int b = 0; b < 4; b++) v[b] = byte_as_2p23(a, b) - 8388616.0f;  // (2^23 + q) - (2^23 + 8), exact
}

// The fast GEMV: R rows per warp group and WPR warps per group. Each activation float4 is loaded once for the
// R rows (R = 4 for Q8_0/Q4_0, whose few weight bytes per activation float made one row per warp
// activation-bound); the WPR warps of a group split the row's chunks (warp w takes chunks w*32 + lane, then
// every 32*WPR-th), which multiplies the loads in flight for matrices with few rows (Qwen2.5-0.5B's down
// projection has 896) and shortens each warp's serial chain; their partial sums are added in warp order through
// shared memory. SILU: the matrix is [gate; up] (rows = 2 * dim); the group computes gate row r and up row
// r + dim (R = 2), writes both to out[t, 2 * dim] like the plain product, and silu(gate) * up to act[t, dim]
// (the arithmetic of silu_mul). Per-row sums are deterministic (fixed chunk order per lane, fixed trees).
template <int DT, int N, int R, int WPR, bool SILU>
__device__ __forceinline__ void gemv_multi(const u8* __restrict__ w, const u16* __restrict__ scales,
                                           const float* __restrict__ x, const float* __restrict__ bias,
                                           float* __restrict__ out, int rows, int cols, float* __restrict__ act) {
    constexpr int E = Chunk<DT>::E;
    constexpr int UNROLL = (R == 1 && DT != DT_Q4_0) ? 4 : 2;
    constexpr int GROUPS = 4 / WPR;  // row groups per 128-thread block
    __shared__ float red[WPR > 1 ? 4 * R * N : 1];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int sub = warp % WPR;
    const int group = blockIdx.x * GROUPS + warp / WPR;
    const int half = rows >> 1;
    const int nGroups = SILU ? half : (rows + R - 1) / R;
    const bool active = group < nGroups;
    const int chunks = cols / E;
    const i64 rowBytes = (i64) cols * Chunk<DT>::ROW_BYTES_NUM / Chunk<DT>::ROW_BYTES_DEN;
    const U4* __restrict__ wrow[R];
    const u16* __restrict__ srow[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        // past the end: re-read a valid row, never stored
        const int row = !active ? 0 : SILU ? group + r * half : min(group * R + r, rows - 1);
        wrow[r] = (const U4*) (w + (i64) row * rowBytes);
        srow[r] = scales + (i64) row * (cols >> 5);
    }
    float acc[R][N];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < N; t++) acc[r][t] = 0.0f;

    for (int c0 = sub * 32 + lane; active && c0 < chunks; c0 += 32 * WPR * UNROLL) {
        U4 raw[UNROLL][R];
        float d[UNROLL][R];
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int c = c0 + 32 * WPR * u;
#pragma unroll
            for (int r = 0; r < R; r++) {
                if (c < chunks) {
                    raw[u][r] = ld_stream(wrow[r] + c);
                    d[u][r] = chunk_scale<DT>(srow[r], c);
                }
            }
        }
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int c = c0 + 32 * WPR * u;
            if (c < chunks) {
#pragma unroll
                for (int t = 0; t < N; t++) {
                    const F4* __restrict__ xp = (const F4*) (x + (i64) t * cols + (i64) c * E);
                    float s[R];
#pragma unroll
                    for (int r = 0; r < R; r++) s[r] = 0.0f;
#pragma unroll
                    for (int k = 0; k < E / 4; k++) {
                        const F4 xv = xp[k];
#pragma unroll
                        for (int r = 0; r < R; r++) {
                            float v[4];
                            decode4<DT>(raw[u][r], k, v);
                            s[r] = fmaf(v[0], xv.x, s[r]);
                            s[r] = fmaf(v[1], xv.y, s[r]);
                            s[r] = fmaf(v[2], xv.z, s[r]);
                            s[r] = fmaf(v[3], xv.w, s[r]);
                        }
                    }
#pragma unroll
                    for (int r = 0; r < R; r++) acc[r][t] = fmaf(d[u][r], s[r], acc[r][t]);
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++) {
#pragma unroll
        for (int t = 0; t < N; t++) acc[r][t] = warp_sum(acc[r][t]);
    }
    if (WPR > 1) {
        if (lane == 0) {
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int t = 0; t < N; t++) red[(warp * R + r) * N + t] = acc[r][t];
        }
        __syncthreads();
        if (sub != 0) return;
        if (lane == 0) {
#pragma unroll
            for (int r = 0; r < R; r++) {
#pragma unroll
                for (int t = 0; t < N; t++) {
                    float a = 0.0f;
#pragma unroll
                    for (int k = 0; k < WPR; k++) a += red[((warp + k) * R + r) * N + t];
                    acc[r][t] = a;
                }
            }
        }
    }
    if (lane == 0 && active) {
        if (SILU) {
            const int rg = group, ru = group + half;
            const float bg = bias != 0 ? bias[rg] : 0.0f, bu = bias != 0 ? bias[ru] : 0.0f;
#pragma unroll
            for (int t = 0; t < N; t++) {
                const float g = acc[0][t] + bg, u = acc[R - 1][t] + bu;
                out[(i64) t * rows + rg] = g;
                out[(i64) t * rows + ru] = u;
                act[(i64) t * half + rg] = g / (1.0f + expf(-g)) * u;
            }
        } else {
#pragma unroll
            for (int r = 0; r < R; r++) {
                const int row = group * R + r;
                if (row < rows) {
                    const float b = bias != 0 ? bias[row] : 0.0f;
#pragma unroll
                    for (int t = 0; t < N; t++) out[(i64) t * rows + row] = acc[r][t] + b;
                }
            }
        }
    }
}

#define GEMV_ARGS const u8* __restrict__ w, const u16* __restrict__ scales, const float* __restrict__ x, \
                  const float* __restrict__ bias, float* __restrict__ out, int rows, int cols
#define GEMV_KERNEL(NAME, DT, N, R, WPR) extern "C" __global__ void __launch_bounds__(128) \
    NAME(GEMV_ARGS) { gemv_multi<DT, N, R, WPR, false>(w, scales, x, bias, out, rows, cols, 0); }
#define GEMV_SILU_KERNEL(NAME, DT, N, WPR) extern "C" __global__ void __launch_bounds__(128) \
    NAME(GEMV_ARGS, float* __restrict__ act) { gemv_multi<DT, N, 2, WPR, true>(w, scales, x, bias, out, rows, cols, act); }
#define GEMV_ALL_N(PREFIX, DT, R, WPR) \
    GEMV_KERNEL(PREFIX##_1, DT, 1, R, WPR) GEMV_KERNEL(PREFIX##_2, DT, 2, R, WPR) GEMV_KERNEL(PREFIX##_3, DT, 3, R, WPR) \
    GEMV_KERNEL(PREFIX##_4, DT, 4, R, WPR) GEMV_KERNEL(PREFIX##_5, DT, 5, R, WPR) GEMV_KERNEL(PREFIX##_6, DT, 6, R, WPR) \
    GEMV_KERNEL(PREFIX##_7, DT, 7, R, WPR) GEMV_KERNEL(PREFIX##_8, DT, 8, R, WPR)
#define GEMV_SILU_ALL_N(PREFIX, DT, WPR) \
    GEMV_SILU_KERNEL(PREFIX##_1, DT, 1, WPR) GEMV_SILU_KERNEL(PREFIX##_2, DT, 2, WPR) \
    GEMV_SILU_KERNEL(PREFIX##_3, DT, 3, WPR) GEMV_SILU_KERNEL(PREFIX##_4, DT, 4, WPR) \
    GEMV_SILU_KERNEL(PREFIX##_5, DT, 5, WPR) GEMV_SILU_KERNEL(PREFIX##_6, DT, 6, WPR) \
    GEMV_SILU_KERNEL(PREFIX##_7, DT, 7, WPR) GEMV_SILU_KERNEL(PREFIX##_8, DT, 8, WPR)
// gemv_<dt>[_r4]_w<WPR>_<N>: rows per group 1 ([_r4]: 4), WPR warps per group, N tokens
#define GEMV_DTYPE(PREFIX, DT) \
    GEMV_ALL_N(PREFIX##_w1, DT, 1, 1) GEMV_ALL_N(PREFIX##_w4, DT, 1, 4) \
    GEMV_ALL_N(PREFIX##_r4_w1, DT, 4, 1) GEMV_ALL_N(PREFIX##_r4_w4, DT, 4, 4) \
    GEMV_SILU_ALL_N(PREFIX##_silu_w1, DT, 1) GEMV_SILU_ALL_N(PREFIX##_silu_w4, DT, 4)

GEMV_DTYPE(gemv_f32, DT_F32)
GEMV_DTYPE(gemv_f16, DT_F16)
GEMV_DTYPE(gemv_bf16, DT_BF16)
GEMV_DTYPE(gemv_q8_0, DT_Q8_0)
GEMV_DTYPE(gemv_q4_0, DT_Q4_0)

// Any cols, any dtype, n <= 8 tokens: one warp per row, scalar loads (coalesced across the warp).
extern "C" __global__ void __launch_bounds__(128) gemv_generic(GEMV_ARGS, int dtype, int n) {
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= rows) return;
    float acc[8];
#pragma unroll
    for (int t = 0; t < 8; t++) acc[t] = 0.0f;
    for (int k = lane; k < cols; k += 32) {
        const float wv = weight_at(w, scales, dtype, row, k, cols);
#pragma unroll
        for (int t = 0; t < 8; t++) {
            if (t < n) acc[t] = fmaf(wv, x[(i64) t * cols + k], acc[t]);
        }
    }
#pragma unroll
    for (int t = 0; t < 8; t++) acc[t] = warp_sum(acc[t]);
    if (lane == 0) {
        const float b = bias != 0 ? bias[row] : 0.0f;
#pragma unroll
        for (int t = 0; t < 8; t++) {
            if (t < n) out[(i64) t * rows + row] = acc[t] + b;
        }
    }
}

// ---------------------------------------------------------------- helpers of the cuBLAS (prefill) path

// out[r - rowStart, k] = W[r, k] as float32 for rows [rowStart, rowStart + nRows): feeds SGEMM.
extern "C" __global__ void dequant_f32(const u8* __restrict__ w, const u16* __restrict__ scales, int dtype,
                                       int rowStart, int nRows, int cols, float* __restrict__ out) {
    const i64 total = (i64) nRows * cols;
    for (i64 i = blockIdx.x * (i64) blockDim.x + threadIdx.x; i < total; i += (i64) gridDim.x * blockDim.x) {
        const int r = (int) (i / cols), k = (int) (i % cols);
        out[i] = weight_at(w, scales, dtype, (i64) rowStart + r, k, cols);
    }
}

// Activations to bf16 (round to nearest even) for the BF16 tensor-core GEMM.
extern "C" __global__ void f32_to_bf16_kernel(const float* __restrict__ x, u16* __restrict__ out, i64 count) {
    for (i64 i = blockIdx.x * (i64) blockDim.x + threadIdx.x; i < count; i += (i64) gridDim.x * blockDim.x) {
        out[i] = f32_to_bf16(x[i]);
    }
}

// out[t, r] += bias[r]
extern "C" __global__ void add_bias(float* __restrict__ out, const float* __restrict__ bias, int n, int rows) {
    const i64 total = (i64) n * rows;
    for (i64 i = blockIdx.x * (i64) blockDim.x + threadIdx.x; i < total; i += (i64) gridDim.x * blockDim.x) {
        out[i] += bias[i % rows];
    }
}
