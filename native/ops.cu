// Element-wise and row-wise ops of the Qwen2 forward pass. Batch metadata (tokens, positions, block tables)
// is read from device memory so that a captured CUDA graph replays correctly for new positions.
#include "common.cuh"

#define GRID_STRIDE(i, total) \
    for (i64 i = blockIdx.x * (i64) blockDim.x + threadIdx.x; i < (total); i += (i64) gridDim.x * blockDim.x)

// out[t, :] = table[tokens[t], :] for t < n
extern "C" __global__ void embed(const u8* __restrict__ w, const u16* __restrict__ scales, int dtype,
                                 const int* __restrict__ tokens, int n, int cols, float* __restrict__ out) {
    GRID_STRIDE(i, (i64) n * cols) {
        const int t = (int) (i / cols), k = (int) (i % cols);
        out[i] = weight_at(w, scales, dtype, tokens[t], k, cols);
    }
}

// out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * gamma; one block per row; out may equal x.
extern "C" __global__ void rmsnorm(const float* __restrict__ x, const float* __restrict__ gamma, float eps, int dim,
                                   float* out) {
    __shared__ float scratch[32];
    const float* xr = x + (i64) blockIdx.x * dim;
    float ss = 0.0f;
    for (int k = threadIdx.x; k < dim; k += blockDim.x) {
        const float v = xr[k];
        ss = fmaf(v, v, ss);
    }
    ss = block_sum(ss, scratch);
    const float inv = 1.0f / sqrtf(ss / (float) dim + eps);
    float* orow = out + (i64) blockIdx.x * dim;
    for (int k = threadIdx.x; k < dim; k += blockDim.x) orow[k] = xr[k] * inv * gamma[k];
}

// Fused residual add and RMSNorm: x[t] += y[t], then out[t] = rmsnorm(x[t]) * gamma; one block per row. Bit-equal
// to add_inplace then rmsnorm: x[t] is summed first and read back per element. out may equal x or y (every read of
// the row precedes block_sum's barrier, every write of out follows it).
#define ARN_REG 16  // row elements per thread kept in registers (dim <= 16 * blockDim.x: one pass of loads)
extern "C" __global__ void add_rmsnorm(float* x, const float* y, const float* __restrict__ gamma,
                                       float eps, int dim, float* out) {
    __shared__ float scratch[32];
    float* xr = x + (i64) blockIdx.x * dim;
    const float* yr = y + (i64) blockIdx.x * dim;
    const int nt = blockDim.x;
    // all of a thread's x, y and gamma loads are issued before any store (x and y may alias, so the compiler
    // would otherwise serialize load-add-store per element); the sums run in the same order as rmsnorm's
    float xv[ARN_REG], yv[ARN_REG], gv[ARN_REG];
#pragma unroll
    for (int j = 0; j < ARN_REG; j++) {
        const int k = threadIdx.x + j * nt;
        if (k < dim) { xv[j] = xr[k]; yv[j] = yr[k]; gv[j] = gamma[k]; }
    }
    float ss = 0.0f;
#pragma unroll
    for (int j = 0; j < ARN_REG; j++) {
        const int k = threadIdx.x + j * nt;
        if (k < dim) {
            const float v = xv[j] + yv[j];
            xv[j] = v;
            xr[k] = v;
            ss = fmaf(v, v, ss);
        }
    }
    for (int k = threadIdx.x + ARN_REG * nt; k < dim; k += nt) {
        const float v = xr[k] + yr[k];
        xr[k] = v;
        ss = fmaf(v, v, ss);
    }
    ss = block_sum(ss, scratch);
    const float inv = 1.0f / sqrtf(ss / (float) dim + eps);
    float* orow = out + (i64) blockIdx.x * dim;
#pragma unroll
    for (int j = 0; j < ARN_REG; j++) {
        const int k = threadIdx.x + j * nt;
        if (k < dim) orow[k] = xv[j] * inv * gv[j];
    }
    for (int k = threadIdx.x + ARN_REG * nt; k < dim; k += nt) orow[k] = xr[k] * inv * gamma[k];
}

// (x0, x1) rotated by the angle whose cosine and sine are c and s. No FMA contraction (__fmul_rn), so bit-equal
// to the CPU's order; rope and rope_store_kv both use it.
__device__ __forceinline__ void rotate(float x0, float x1, float c, float s, float* y0, float* y1) {
    *y0 = __fmul_rn(x0, c) - __fmul_rn(x1, s);
    *y1 = __fmul_rn(x1, c) + __fmul_rn(x0, s);
}

// Rotate-half RoPE in place: heads of headDim starting at colOffset in rows of rowStride; cos/sin tables are
// [maxPositions, half] (already multiplied by the attention scaling).
extern "C" __global__ void rope(float* x, int n, int rowStride, int colOffset, int heads, int half,
                                const int* __restrict__ positions, const float* __restrict__ cosT,
                                const float* __restrict__ sinT) {
    GRID_STRIDE(i, (i64) n * heads * half) {
        const int j = (int) (i % half);
        const i64 th = i / half;
        const int h = (int) (th % heads), t = (int) (th / heads);
        const i64 p = positions[t];
        const float c = cosT[p * half + j], s = sinT[p * half + j];
        float* xh = x + (i64) t * rowStride + colOffset + (i64) h * 2 * half;
        rotate(xh[j], xh[j + half], c, s, &xh[j], &xh[j + half]);
    }
}

// out[t, k] = silu(gu[t, k]) * gu[t, dim + k]
extern "C" __global__ void silu_mul(const float* __restrict__ gu, int n, int dim, float* __restrict__ out) {
    GRID_STRIDE(i, (i64) n * dim) {
        const i64 t = i / dim, k = i % dim;
        const float g = gu[t * 2 * dim + k], u = gu[t * 2 * dim + dim + k];
        out[i] = g / (1.0f + expf(-g)) * u;
    }
}

// x += y
extern "C" __global__ void add_inplace(float* __restrict__ x, const float* __restrict__ y, i64 count) {
    GRID_STRIDE(i, count) { x[i] += y[i]; }
}

// out[i, :] = x[rows[i], :] for i < nRows
extern "C" __global__ void gather_rows(const float* __restrict__ x, int dim, const int* __restrict__ rowIds,
                                       int nRows, float* __restrict__ out) {
    GRID_STRIDE(i, (i64) nRows * dim) {
        const i64 r = i / dim, k = i % dim;
        out[i] = x[(i64) rowIds[r] * dim + k];
    }
}

__device__ __forceinline__ i64 slot_of(int t, const int* __restrict__ positions, const int* __restrict__ seqOfToken,
                                       const int* __restrict__ blockTables, int maxBlocksPerSeq, int blockSize) {
    const int p = positions[t];
    const int block = blockTables[seqOfToken[t] * maxBlocksPerSeq + p / blockSize];
    return (i64) block * blockSize + p % blockSize;
}

// kCache[slot(t), :] = qkv[t, kOff..kOff+kvDim), vCache likewise; caches are [numBlocks * blockSize, kvDim].
extern "C" __global__ void store_kv(const float* __restrict__ qkv, int rowStride, int kOff, int vOff, int kvDim, int n,
                                    const int* __restrict__ positions, const int* __restrict__ seqOfToken,
                                    const int* __restrict__ blockTables, int maxBlocksPerSeq, int blockSize,
                                    float* __restrict__ kCache, float* __restrict__ vCache) {
    GRID_STRIDE(i, (i64) n * kvDim) {
        const int t = (int) (i / kvDim), j = (int) (i % kvDim);
        const i64 slot = slot_of(t, positions, seqOfToken, blockTables, maxBlocksPerSeq, blockSize);
        const float* row = qkv + (i64) t * rowStride;
        kCache[slot * kvDim + j] = row[kOff + j];
        vCache[slot * kvDim + j] = row[vOff + j];
    }
}

// Argmax with ties to the lowest index (NaNs never win; an all-NaN row gives 0). take_if_better is the one
// comparison; block_argmax reduces each thread's (best, index) over the block; thread 0 gets the result.
__device__ __forceinline__ void take_if_better(float v, int i, float& best, int& bi) {
    if (v > best || (v == best && i < bi)) { best = v; bi = i; }
}

__device__ __forceinline__ void block_argmax(float& best, int& bi) {
    __shared__ float sv[32];
    __shared__ int si[32];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        take_if_better(__shfl_xor_sync(FULL_MASK, best, o), __shfl_xor_sync(FULL_MASK, bi, o), best, bi);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { sv[warp] = best; si[warp] = bi; }
    __syncthreads();
    if (warp == 0) {
        const int warps = blockDim.x >> 5;
        best = lane < warps ? sv[lane] : neg_inf();
        bi = lane < warps ? si[lane] : 0x7fffffff;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            take_if_better(__shfl_xor_sync(FULL_MASK, best, o), __shfl_xor_sync(FULL_MASK, bi, o), best, bi);
        }
    }
}

// out[row] = argmax of x[row, 0..dim); one block (any multiple of 32 threads) per row.
extern "C" __global__ void argmax_rows(const float* __restrict__ x, int dim, int* __restrict__ out) {
    const float* xr = x + (i64) blockIdx.x * dim;
    float best = neg_inf();
    int bi = 0x7fffffff;
#pragma unroll 8
    for (int k = threadIdx.x; k < dim; k += blockDim.x) {  // unrolled: loads in flight, compares in index order
        take_if_better(xr[k], k, best, bi);
    }
    block_argmax(best, bi);
    if (threadIdx.x == 0) out[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;
}

// Long rows (a vocabulary) in two launches instead of one block streaming the whole row: argmax_slices writes the
// (value, index) of each ARGMAX_SLICE-wide slice (grid slices x rows), argmax_merge picks per row among them.
#define ARGMAX_SLICE 4096
extern "C" __global__ void argmax_slices(const float* __restrict__ x, int dim, int slices, float* __restrict__ pv,
                                         int* __restrict__ pi) {
    const float* xr = x + (i64) blockIdx.y * dim;
    const int start = blockIdx.x * ARGMAX_SLICE, end = min(start + ARGMAX_SLICE, dim);
    float best = neg_inf();
    int bi = 0x7fffffff;
#pragma unroll 4
    for (int k = start + threadIdx.x; k < end; k += blockDim.x) {
        take_if_better(xr[k], k, best, bi);
    }
    block_argmax(best, bi);
    if (threadIdx.x == 0) {
        pv[(i64) blockIdx.y * slices + blockIdx.x] = best;
        pi[(i64) blockIdx.y * slices + blockIdx.x] = bi;
    }
}

extern "C" __global__ void argmax_merge(const float* __restrict__ pv, const int* __restrict__ pi, int slices,
                                        int* __restrict__ out) {
    float best = neg_inf();
    int bi = 0x7fffffff;
    for (int s = threadIdx.x; s < slices; s += blockDim.x) {
        take_if_better(pv[(i64) blockIdx.x * slices + s], pi[(i64) blockIdx.x * slices + s], best, bi);
    }
    block_argmax(best, bi);
    if (threadIdx.x == 0) out[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;
}

// rope (as above, on heads [colOffset, colOffset + heads * 2 * half) of each row) and store_kv in one launch: the
// key columns [kOff, kOff + kvDim) must lie inside the rotated heads and the value columns outside them. The
// rotated values are written back to x exactly as rope writes them, and the key columns also to kCache; values
// are copied to vCache. Same arithmetic as rope then store_kv, so bit-equal to the two launches.
extern "C" __global__ void rope_store_kv(float* x, int n, int rowStride, int colOffset, int heads, int half,
                                         const int* __restrict__ positions, const float* __restrict__ cosT,
                                         const float* __restrict__ sinT, int kOff, int vOff, int kvDim,
                                         const int* __restrict__ seqOfToken, const int* __restrict__ blockTables,
                                         int maxBlocksPerSeq, int blockSize, float* __restrict__ kCache,
                                         float* __restrict__ vCache) {
    const i64 ropeWork = (i64) n * heads * half;
    GRID_STRIDE(i, ropeWork + (i64) n * kvDim) {
        if (i < ropeWork) {
            const int j = (int) (i % half);
            const i64 th = i / half;
            const int h = (int) (th % heads), t = (int) (th / heads);
            const i64 p = positions[t];
            const float c = cosT[p * half + j], s = sinT[p * half + j];
            const int col = colOffset + h * 2 * half + j;
            float* xh = x + (i64) t * rowStride + col;
            float y0, y1;
            rotate(xh[0], xh[half], c, s, &y0, &y1);
            xh[0] = y0;
            xh[half] = y1;
            if (col >= kOff && col < kOff + kvDim) {  // a key head: both halves are key columns
                const i64 slot = slot_of(t, positions, seqOfToken, blockTables, maxBlocksPerSeq, blockSize);
                kCache[slot * kvDim + (col - kOff)] = y0;
                kCache[slot * kvDim + (col - kOff) + half] = y1;
            }
        } else {
            const i64 r = i - ropeWork;
            const int t = (int) (r / kvDim), j = (int) (r % kvDim);
            const i64 slot = slot_of(t, positions, seqOfToken, blockTables, maxBlocksPerSeq, blockSize);
            vCache[slot * kvDim + j] = x[(i64) t * rowStride + vOff + j];
        }
    }
}

// ---------------------------------------------------------------- reduced-precision KV caches
// store_kv_bf16 / rope_store_kv_bf16: store_kv and rope_store_kv for a BF16 cache (each element rounded to nearest
// even, as KvCodec.bf16). The rotated keys written back to x stay float32, as in the F32 kernels.
extern "C" __global__ void store_kv_bf16(const float* __restrict__ qkv, int rowStride, int kOff, int vOff, int kvDim,
                                         int n, const int* __restrict__ positions, const int* __restrict__ seqOfToken,
                                         const int* __restrict__ blockTables, int maxBlocksPerSeq, int blockSize,
                                         u16* __restrict__ kCache, u16* __restrict__ vCache) {
    GRID_STRIDE(i, (i64) n * kvDim) {
        const int t = (int) (i / kvDim), j = (int) (i % kvDim);
        const i64 slot = slot_of(t, positions, seqOfToken, blockTables, maxBlocksPerSeq, blockSize);
        const float* row = qkv + (i64) t * rowStride;
        kCache[slot * kvDim + j] = f32_to_bf16(row[kOff + j]);
        vCache[slot * kvDim + j] = f32_to_bf16(row[vOff + j]);
    }
}

extern "C" __global__ void rope_store_kv_bf16(float* x, int n, int rowStride, int colOffset, int heads, int half,
                                              const int* __restrict__ positions, const float* __restrict__ cosT,
                                              const float* __restrict__ sinT, int kOff, int vOff, int kvDim,
                                              const int* __restrict__ seqOfToken, const int* __restrict__ blockTables,
                                              int maxBlocksPerSeq, int blockSize, u16* __restrict__ kCache,
                                              u16* __restrict__ vCache) {
    const i64 ropeWork = (i64) n * heads * half;
    GRID_STRIDE(i, ropeWork + (i64) n * kvDim) {
        if (i < ropeWork) {
            const int j = (int) (i % half);
            const i64 th = i / half;
            const int h = (int) (th % heads), t = (int) (th / heads);
            const i64 p = positions[t];
            const float c = cosT[p * half + j], s = sinT[p * half + j];
            const int col = colOffset + h * 2 * half + j;
            float* xh = x + (i64) t * rowStride + col;
            float y0, y1;
            rotate(xh[0], xh[half], c, s, &y0, &y1);
            xh[0] = y0;
            xh[half] = y1;
            if (col >= kOff && col < kOff + kvDim) {
                const i64 slot = slot_of(t, positions, seqOfToken, blockTables, maxBlocksPerSeq, blockSize);
                kCache[slot * kvDim + (col - kOff)] = f32_to_bf16(y0);
                kCache[slot * kvDim + (col - kOff) + half] = f32_to_bf16(y1);
            }
        } else {
            const i64 r = i - ropeWork;
            const int t = (int) (r / kvDim), j = (int) (r % kvDim);
            const i64 slot = slot_of(t, positions, seqOfToken, blockTables, maxBlocksPerSeq, blockSize);
            vCache[slot * kvDim + j] = f32_to_bf16(x[(i64) t * rowStride + vOff + j]);
        }
    }
}

// FP8 E4M3 store: one warp per (token, kv head, key or value) — warp w of the grid: t = w / (2 kvHeads), then the
// head, then key (0) or value (1). The head's scale is amax / 448 (1 for an all-zero head), stored in
// scales[slot * kvHeads + head]; each element is f32_to_fp8(x / scale). Same rule as KvCodec.quantizeHeadFp8.
extern "C" __global__ void store_kv_fp8(const float* __restrict__ qkv, int rowStride, int kOff, int vOff, int kvHeads,
                                        int headDim, int n, const int* __restrict__ positions,
                                        const int* __restrict__ seqOfToken, const int* __restrict__ blockTables,
                                        int maxBlocksPerSeq, int blockSize, u8* __restrict__ kCache,
                                        u8* __restrict__ vCache, float* __restrict__ kScale,
                                        float* __restrict__ vScale) {
    const i64 warps = (i64) n * kvHeads * 2;
    const int lane = threadIdx.x & 31;
    for (i64 w = ((i64) blockIdx.x * blockDim.x + threadIdx.x) >> 5; w < warps;
         w += ((i64) gridDim.x * blockDim.x) >> 5) {
        const int isValue = (int) (w & 1);
        const int kvh = (int) ((w >> 1) % kvHeads);
        const int t = (int) ((w >> 1) / kvHeads);
        const i64 slot = slot_of(t, positions, seqOfToken, blockTables, maxBlocksPerSeq, blockSize);
        const float* src = qkv + (i64) t * rowStride + (isValue ? vOff : kOff) + (i64) kvh * headDim;
        float amax = 0.0f;
        for (int d = lane; d < headDim; d += 32) amax = fmaxf(amax, fabsf(src[d]));
        amax = warp_max(amax);
        const float sc = amax > 0.0f ? amax / FP8_MAX : 1.0f;
        u8* dst = (isValue ? vCache : kCache) + slot * ((i64) kvHeads * headDim) + (i64) kvh * headDim;
        for (int d = lane; d < headDim; d += 32) dst[d] = (u8) f32_to_fp8(src[d] / sc);
        if (lane == 0) (isValue ? vScale : kScale)[slot * kvHeads + kvh] = sc;
    }
}

// Per-head RMSNorm in place (Qwen3's q_norm/k_norm): block (t, h) normalizes head h of row t, the head_dim floats at
// x + t * stride + offset + h * head_dim, times gamma[head_dim]. Same arithmetic as rmsnorm.
extern "C" __global__ void rmsnorm_heads(float* x, int stride, int offset, int head_dim, const float* __restrict__ gamma,
                                         float eps) {
    __shared__ float scratch[32];
    float* xr = x + (i64) blockIdx.x * stride + offset + (i64) blockIdx.y * head_dim;
    float ss = 0.0f;
    for (int k = threadIdx.x; k < head_dim; k += blockDim.x) {
        const float v = xr[k];
        ss = fmaf(v, v, ss);
    }
    ss = block_sum(ss, scratch);  // its barrier orders every read before any write
    const float inv = 1.0f / sqrtf(ss / (float) head_dim + eps);
    for (int k = threadIdx.x; k < head_dim; k += blockDim.x) xr[k] = xr[k] * inv * gamma[k];
}

// Mixture of experts (rows: host-chosen token rows of one expert, uploaded per call).
// out[i, :] = x[rows[i], :] for i < count.
extern "C" __global__ void gather_rows_idx(const float* __restrict__ x, int dim, const int* __restrict__ rows,
                                           int count, float* __restrict__ out) {
    GRID_STRIDE(i, (i64) count * dim) {
        const int r = (int) (i / dim), k = (int) (i % dim);
        out[i] = x[(i64) rows[r] * dim + k];
    }
}

// dst[rows[i], :] += scales[i] * src[i, :]; the rows of one call are distinct (one expert's tokens), so no races.
// Rounded multiply then add, as the CPU backend computes it (no fused multiply-add).
extern "C" __global__ void scatter_add_rows(const float* __restrict__ src, int dim, const int* __restrict__ rows,
                                            const float* __restrict__ scales, int count, float* dst) {
    GRID_STRIDE(i, (i64) count * dim) {
        const int r = (int) (i / dim), k = (int) (i % dim);
        float* d = dst + (i64) rows[r] * dim + k;
        *d = __fadd_rn(*d, __fmul_rn(scales[r], src[i]));
    }
}

// ------------------------------------------------------------------ multi-head latent attention (DeepSeek-V3's MLA)

// A different small matmul per head: out[t, r] = sum_i w[r, i] * x[t * xStride + xOff + (r / perHead) * cols + i]
// for w [rows, cols]. One warp per output element (t, r); lanes stride over the columns, then a warp sum.
extern "C" __global__ void head_matmul(const u8* __restrict__ w, const u16* __restrict__ scales, int dtype, int rows,
                                       int cols, int perHead, const float* __restrict__ x, int xStride, int xOff,
                                       int n, float* __restrict__ out) {
    const i64 warp = ((i64) blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (warp >= (i64) n * rows) return;
    const int t = (int) (warp / rows), r = (int) (warp % rows);
    const float* xr = x + (i64) t * xStride + xOff + (i64) (r / perHead) * cols;
    float s = 0.0f;
    for (int i = lane; i < cols; i += 32) s = fmaf(weight_at(w, scales, dtype, r, i, cols), xr[i], s);
    s = warp_sum(s);
    if (lane == 0) out[(i64) t * rows + r] = s;
}

// Attention in MLA's latent space. The cache row of a token is [c (latentDim) | r (ropeDim)] = 2 * kvDim floats,
// the first kvDim in the token's key slot, the rest in its value slot (slot-major regions kc / vc of one layer).
// One block per (token t, head h): score_p = (qLatent[t, h] . c_p + qRope[t, h] . r_p) * scale for the positions
// p <= positions[t] of t's sequence, softmax, out[t, h] = sum_p softmax_p * c_p. `scores` holds maxLen floats per
// block (global scratch).
extern "C" __global__ void latent_attention(const float* __restrict__ ql, int qlStride, int qlOff,
                                            const float* __restrict__ qr, int qrStride, int qrOff, int heads,
                                            int latentDim, int ropeDim, float scale, const float* __restrict__ kc,
                                            const float* __restrict__ vc, int kvDim, const int* __restrict__ positions,
                                            const int* __restrict__ seqOfToken, const int* __restrict__ blockTables,
                                            int maxBlocks, int blockSize, float* __restrict__ scores, int maxLen,
                                            float* __restrict__ out) {
    __shared__ float red[32];
    const int t = blockIdx.x / heads, h = blockIdx.x % heads;
    const int len = positions[t] + 1;
    const int* table = blockTables + (i64) seqOfToken[t] * maxBlocks;
    const float* qlh = ql + (i64) t * qlStride + qlOff + (i64) h * latentDim;
    const float* qrh = qr + (i64) t * qrStride + qrOff + (i64) h * ropeDim;
    float* sc = scores + (i64) blockIdx.x * maxLen;
    float mx = neg_inf();
    for (int p = threadIdx.x; p < len; p += blockDim.x) {
        const i64 slot = (i64) table[p / blockSize] * blockSize + p % blockSize;
        const float* k = kc + slot * kvDim;
        const float* v = vc + slot * kvDim;
        float s = 0.0f;
        for (int i = 0; i < 2 * kvDim; i++) {
            const float q = i < latentDim ? qlh[i] : qrh[i - latentDim];
            s = fmaf(q, i < kvDim ? k[i] : v[i - kvDim], s);
        }
        s *= scale;
        sc[p] = s;
        mx = fmaxf(mx, s);
    }
    mx = block_max(mx, red);
    float sum = 0.0f;
    for (int p = threadIdx.x; p < len; p += blockDim.x) {
        const float e = expf(sc[p] - mx);
        sc[p] = e;
        sum += e;
    }
    sum = block_sum(sum, red);  // syncs: every score is written before the weighted sums read them
    const float inv = 1.0f / sum;
    for (int i = threadIdx.x; i < latentDim; i += blockDim.x) {
        float acc = 0.0f;
        for (int p = 0; p < len; p++) {
            const i64 slot = (i64) table[p / blockSize] * blockSize + p % blockSize;
            acc = fmaf(sc[p], i < kvDim ? kc[slot * kvDim + i] : vc[slot * kvDim + i - kvDim], acc);
        }
        out[((i64) t * heads + h) * latentDim + i] = acc * inv;
    }
}
