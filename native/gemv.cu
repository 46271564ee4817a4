// Matrix-vector products for decode and small batches: out[t, r] = sum_k x[t, k] * W[r, k] (+ bias[r]),
// t < N <= 8 tokens, W in F32/F16/BF16/Q8_0/Q4_0. Memory-bound: every weight byte is read once per launch.
//
// Fast path (cols a multiple of the chunk): one warp per row (gemv_*_N) or per 4 rows (gemv_*_r4_N: each
// activation load serves 4 rows; the default for Q8_0/Q4_0, whose few weight bytes per activation float made the
// one-row kernel activation-bound); each lane reads 16-byte chunks of the row (4 F32 / 8 F16|BF16 / 16 Q8_0 /
// 32 Q4_0 values) past L1, several chunks in flight, and FMAs them against the N activation rows (float4 loads,
// L1-resident). Lanes are reduced with warp shuffles.
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
__device__ __forceinline__ float s8(u32 v, int byte) { return (float) (((int) (v << (24 - 8 * byte))) >> 24); }

// Decodes one 16-byte chunk into E floats (quantized types: the raw integer values, scale applied by the caller).
template <int DT> __device__ __forceinline__ void decode(const U4& c, float* v);

template <> __device__ __forceinline__ void decode<DT_F32>(const U4& c, float* v) {
    v[0] = __uint_as_float(c.x); v[1] = __uint_as_float(c.y); v[2] = __uint_as_float(c.z); v[3] = __uint_as_float(c.w);
}
template <> __device__ __forceinline__ void decode<DT_BF16>(const U4& c, float* v) {
    v[0] = lo_bf16(c.x); v[1] = hi_bf16(c.x); v[2] = lo_bf16(c.y); v[3] = hi_bf16(c.y);
    v[4] = lo_bf16(c.z); v[5] = hi_bf16(c.z); v[6] = lo_bf16(c.w); v[7] = hi_bf16(c.w);
}
template <> __device__ __forceinline__ void decode<DT_F16>(const U4& c, float* v) {
    v[0] = lo_f16(c.x); v[1] = hi_f16(c.x); v[2] = lo_f16(c.y); v[3] = hi_f16(c.y);
    v[4] = lo_f16(c.z); v[5] = hi_f16(c.z); v[6] = lo_f16(c.w); v[7] = hi_f16(c.w);
}
template <> __device__ __forceinline__ void decode<DT_Q8_0>(const U4& c, float* v) {
#pragma unroll
    for (int b = 0; b < 4; b++) {
        v[b] = s8(c.x, b); v[4 + b] = s8(c.y, b); v[8 + b] = s8(c.z, b); v[12 + b] = s8(c.w, b);
    }
}
template <> __device__ __forceinline__ void decode<DT_Q4_0>(const U4& c, float* v) {
    const u32 words[4] = {c.x, c.y, c.z, c.w};
#pragma unroll
    for (int k = 0; k < 4; k++) {
#pragma unroll
        for (int b = 0; b < 4; b++) {
            const u32 byte = (words[k] >> (8 * b)) & 0xffu;
            v[4 * k + b] = (float) ((int) (byte & 15u) - 8);      // element j = 4k+b     (low nibble)
            v[16 + 4 * k + b] = (float) ((int) (byte >> 4) - 8);  // element j + 16       (high nibble)
        }
    }
}

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

template <int DT, int N>
__device__ __forceinline__ void gemv_fast(const u8* __restrict__ w, const u16* __restrict__ scales,
                                          const float* __restrict__ x, const float* __restrict__ bias,
                                          float* __restrict__ out, int rows, int cols) {
    constexpr int E = Chunk<DT>::E;
    constexpr int UNROLL = (DT == DT_Q4_0) ? 2 : 4;
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= rows) return;
    const int chunks = cols / E;
    const i64 rowBytes = (i64) cols * Chunk<DT>::ROW_BYTES_NUM / Chunk<DT>::ROW_BYTES_DEN;
    const U4* __restrict__ wrow = (const U4*) (w + (i64) row * rowBytes);
    const u16* __restrict__ srow = scales + (i64) row * (cols >> 5);

    float acc[N];
#pragma unroll
    for (int t = 0; t < N; t++) acc[t] = 0.0f;

    for (int c0 = lane; c0 < chunks; c0 += 32 * UNROLL) {
        U4 raw[UNROLL];
        float d[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int c = c0 + 32 * u;
            if (c < chunks) {
                raw[u] = ld_stream(wrow + c);
                d[u] = chunk_scale<DT>(srow, c);
            }
        }
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int c = c0 + 32 * u;
            if (c < chunks) {
                float v[E];
                decode<DT>(raw[u], v);
#pragma unroll
                for (int t = 0; t < N; t++) {
                    const F4* __restrict__ xp = (const F4*) (x + (i64) t * cols + (i64) c * E);
                    float s = 0.0f;
#pragma unroll
                    for (int k = 0; k < E / 4; k++) {
                        const F4 xv = xp[k];
                        s = fmaf(v[4 * k], xv.x, s);
                        s = fmaf(v[4 * k + 1], xv.y, s);
                        s = fmaf(v[4 * k + 2], xv.z, s);
                        s = fmaf(v[4 * k + 3], xv.w, s);
                    }
                    acc[t] = fmaf(d[u], s, acc[t]);
                }
            }
        }
    }
#pragma unroll
    for (int t = 0; t < N; t++) acc[t] = warp_sum(acc[t]);
    if (lane == 0) {
        const float b = bias != 0 ? bias[row] : 0.0f;
#pragma unroll
        for (int t = 0; t < N; t++) out[(i64) t * rows + row] = acc[t] + b;
    }
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
template <> __device__ __forceinline__ void decode4<DT_Q8_0>(const U4& c, int k, float* v) {
    const u32 a = word(c, k);
    v[0] = s8(a, 0); v[1] = s8(a, 1); v[2] = s8(a, 2); v[3] = s8(a, 3);
}
template <> __device__ __forceinline__ void decode4<DT_Q4_0>(const U4& c, int k, float* v) {
    const u32 a = word(c, k & 3) >> (k >= 4 ? 4 : 0);
#pragma unroll
    for (int b = 0; b < 4; b++) v[b] = (float) ((int) ((a >> (8 * b)) & 15u) - 8);
}

// R rows per warp: each activation float4 is loaded once for R rows, and R x UNROLL weight chunks are in flight
// per lane. Same per-row summation order as gemv_fast within a chunk (sub-chunks in order), so results agree
// with it to float rounding of the chunk partial sums.
template <int DT, int N, int R>
__device__ __forceinline__ void gemv_rows(const u8* __restrict__ w, const u16* __restrict__ scales,
                                          const float* __restrict__ x, const float* __restrict__ bias,
                                          float* __restrict__ out, int rows, int cols) {
    constexpr int E = Chunk<DT>::E;
    constexpr int UNROLL = 2;
    const int row0 = (blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5)) * R;
    const int lane = threadIdx.x & 31;
    if (row0 >= rows) return;
    const int chunks = cols / E;
    const i64 rowBytes = (i64) cols * Chunk<DT>::ROW_BYTES_NUM / Chunk<DT>::ROW_BYTES_DEN;
    const U4* __restrict__ wrow[R];
    const u16* __restrict__ srow[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        const int row = min(row0 + r, rows - 1);  // past the end: re-read the last row, never stored
        wrow[r] = (const U4*) (w + (i64) row * rowBytes);
        srow[r] = scales + (i64) row * (cols >> 5);
    }
    float acc[R][N];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < N; t++) acc[r][t] = 0.0f;

    for (int c0 = lane; c0 < chunks; c0 += 32 * UNROLL) {
        U4 raw[UNROLL][R];
        float d[UNROLL][R];
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int c = c0 + 32 * u;
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
            const int c = c0 + 32 * u;
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
    if (lane == 0) {
#pragma unroll
        for (int r = 0; r < R; r++) {
            const int row = row0 + r;
            if (row < rows) {
                const float b = bias != 0 ? bias[row] : 0.0f;
#pragma unroll
                for (int t = 0; t < N; t++) out[(i64) t * rows + row] = acc[r][t] + b;
            }
        }
    }
}

#define GEMV_ARGS const u8* __restrict__ w, const u16* __restrict__ scales, const float* __restrict__ x, \
                  const float* __restrict__ bias, float* __restrict__ out, int rows, int cols
#define GEMV_KERNEL(NAME, DT, N) \
    extern "C" __global__ void __launch_bounds__(128) NAME(GEMV_ARGS) { gemv_fast<DT, N>(w, scales, x, bias, out, rows, cols); }
#define GEMV_ALL_N(PREFIX, DT) \
    GEMV_KERNEL(PREFIX##_1, DT, 1) GEMV_KERNEL(PREFIX##_2, DT, 2) GEMV_KERNEL(PREFIX##_3, DT, 3) \
    GEMV_KERNEL(PREFIX##_4, DT, 4) GEMV_KERNEL(PREFIX##_5, DT, 5) GEMV_KERNEL(PREFIX##_6, DT, 6) \
    GEMV_KERNEL(PREFIX##_7, DT, 7) GEMV_KERNEL(PREFIX##_8, DT, 8)

#define GEMV_R4_KERNEL(NAME, DT, N) \
    extern "C" __global__ void __launch_bounds__(128) NAME(GEMV_ARGS) { gemv_rows<DT, N, 4>(w, scales, x, bias, out, rows, cols); }
#define GEMV_R4_ALL_N(PREFIX, DT) \
    GEMV_R4_KERNEL(PREFIX##_r4_1, DT, 1) GEMV_R4_KERNEL(PREFIX##_r4_2, DT, 2) GEMV_R4_KERNEL(PREFIX##_r4_3, DT, 3) \
    GEMV_R4_KERNEL(PREFIX##_r4_4, DT, 4) GEMV_R4_KERNEL(PREFIX##_r4_5, DT, 5) GEMV_R4_KERNEL(PREFIX##_r4_6, DT, 6) \
    GEMV_R4_KERNEL(PREFIX##_r4_7, DT, 7) GEMV_R4_KERNEL(PREFIX##_r4_8, DT, 8)

GEMV_R4_ALL_N(gemv_f32, DT_F32)
GEMV_R4_ALL_N(gemv_f16, DT_F16)
GEMV_R4_ALL_N(gemv_bf16, DT_BF16)
GEMV_R4_ALL_N(gemv_q8_0, DT_Q8_0)
GEMV_R4_ALL_N(gemv_q4_0, DT_Q4_0)

GEMV_ALL_N(gemv_f32, DT_F32)
GEMV_ALL_N(gemv_f16, DT_F16)
GEMV_ALL_N(gemv_bf16, DT_BF16)
GEMV_ALL_N(gemv_q8_0, DT_Q8_0)
GEMV_ALL_N(gemv_q4_0, DT_Q4_0)

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
