// Tensor-core helpers of the prefill path (the backend's tensor-core mode, PrefillGemm.AUTO):
//
// flash_prefill_d{16,32,64,128}: causal GQA attention of a prefill batch over the paged KV cache on BF16 tensor
// cores (mma.sync m16n8k16, FP32 accumulation), flash-attention style: one block of 4 warps per (tile of 64 query
// rows, kv head, key split). The rows of a tile are the batch's (token, query head of this kv head) pairs
// flattened as token * G + g, so the G query heads sharing a kv head share every K/V tile a block loads. Keys go
// in tiles of 64: K and V are read from the FP32 cache, rounded to BF16 into shared memory (V row-major, fed to
// the P·V product through ldmatrix.trans), S = Q·Kᵀ per warp (16 rows × 64 keys), an online softmax in registers
// (base 2: q is pre-scaled by scale·log2 e), P rounded to BF16 straight from the S accumulators into the A
// fragments of O += P·V. Masking is per row: key p counts for row r iff it is in r's sequence and p <= r's
// position (causal, any positions), so a tile holding tokens of several sequences loops over its distinct
// sequences, each pass reading that sequence's keys only. Key splits (blockIdx.y / kvHeads) write (max, sum,
// unnormalized acc) per (token, head, split) in attention_combine's layout; with one split the output is final.
// Rounding: Q, K, V and P are BF16 (as in HF's BF16 SDPA); scores, softmax and sums are FP32.
//
// dequant_bf16: rows of an F16/Q8_0/Q4_0 matrix to BF16 (round to nearest even), for the BF16 tensor-core GEMM.
#include "common.cuh"

#define FA_BM 64       // query rows (token, head) per block: 16 per warp
#define FA_BN 64       // keys per tile
#define FA_THREADS 128
#define FA_LN2 0.6931471805599453f

struct alignas(8) FaU2 { u32 x, y; };

// BF16 mma.sync, cvt.rn.bf16x2 and ldmatrix need sm_80+; below that the kernels compile to a trap and the host
// never selects them (Attention.flashKernel checks the compute capability).
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define FA_SUPPORTED 1
#else
#define FA_SUPPORTED 0
#endif

// Two floats to packed bf16 (round to nearest even): lo in bits 0..15, hi in 16..31.
__device__ __forceinline__ u32 fa_pack_bf16(float lo, float hi) {
#if FA_SUPPORTED
    u32 r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
#else
    return (u32) f32_to_bf16(lo) | ((u32) f32_to_bf16(hi) << 16);
#endif
}

// d += a·b for a 16×16 (row) BF16 A fragment and a 16×8 (col) BF16 B fragment, FP32 accumulate.
__device__ __forceinline__ void fa_mma(float* d, const u32* a, u32 b0, u32 b1) {
#if FA_SUPPORTED
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
    __trap();
#endif
}

// Four 8×8 b16 matrices from shared memory, transposed; this lane gives the address of row (lane & 7) of matrix
// (lane >> 3).
__device__ __forceinline__ void fa_ldmatrix_x4_trans(u32* r, const void* rowAddress) {
#if FA_SUPPORTED
    u32 a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(rowAddress));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
#else
    __trap();
#endif
}

template <int D>
__device__ __forceinline__ void flash_prefill(
        const float* __restrict__ qkv, int rowStride, int n, int heads, int kvHeads, float scaleLog2,
        const float* __restrict__ kCache, const float* __restrict__ vCache, int kvDim,
        const int* __restrict__ positions, const int* __restrict__ seqOfToken, const int* __restrict__ blockTables,
        int maxBlocksPerSeq, int blockSize, int splitLen, int nSplits,
        float* __restrict__ out, float* __restrict__ pAcc, float* __restrict__ pMax, float* __restrict__ pSum) {
    static_assert(D % 16 == 0 && D <= 128, "head dim must be a multiple of 16, at most 128");
    constexpr int KS = D / 16;        // k steps of S = Q·Kᵀ
    constexpr int DT = D / 8;         // n tiles of O
    constexpr int NT = FA_BN / 8;     // n tiles of S
    constexpr int LD = D + 8;         // padded smem row (bf16): conflict-free fragment loads, 16-byte rows
    __shared__ alignas(16) u16 Ks[FA_BN * LD];
    __shared__ alignas(16) u16 Vs[FA_BN * LD];
    __shared__ int rowSeqS[FA_BM], rowPosS[FA_BM];
    __shared__ int ctl[3];

    const int G = heads / kvHeads, R = n * G;
    const int tile = blockIdx.x, kvh = blockIdx.y % kvHeads, s = blockIdx.y / kvHeads;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int gid = lane >> 2, tig = lane & 3;

    if (tid < FA_BM) {
        const int idx = tile * FA_BM + tid;
        const int t = idx / G;
        rowSeqS[tid] = idx < R ? seqOfToken[t] : -1;
        rowPosS[tid] = idx < R ? positions[t] : -1;
    }

    // this thread's two rows (fragment rows gid and gid + 8 of its warp's 16)
    const int lr0 = warp * 16 + gid, lr1 = lr0 + 8;
    const int idx0 = tile * FA_BM + lr0, idx1 = tile * FA_BM + lr1;

    // Q fragments, scaled, BF16: qa[ks] = rows (lr0, lr1) × dims [16 ks, 16 ks + 16)
    u32 qa[KS][4];
    {
        const float* q0 = idx0 < R ? qkv + (i64) (idx0 / G) * rowStride + (i64) (kvh * G + idx0 % G) * D : nullptr;
        const float* q1 = idx1 < R ? qkv + (i64) (idx1 / G) * rowStride + (i64) (kvh * G + idx1 % G) * D : nullptr;
#pragma unroll
        for (int ks = 0; ks < KS; ks++) {
            const int c = ks * 16 + tig * 2;
            qa[ks][0] = q0 ? fa_pack_bf16(q0[c] * scaleLog2, q0[c + 1] * scaleLog2) : 0u;
            qa[ks][1] = q1 ? fa_pack_bf16(q1[c] * scaleLog2, q1[c + 1] * scaleLog2) : 0u;
            qa[ks][2] = q0 ? fa_pack_bf16(q0[c + 8] * scaleLog2, q0[c + 9] * scaleLog2) : 0u;
            qa[ks][3] = q1 ? fa_pack_bf16(q1[c + 8] * scaleLog2, q1[c + 9] * scaleLog2) : 0u;
        }
    }

    float o[DT][4];
#pragma unroll
    for (int i = 0; i < DT; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m0 = neg_inf(), m1 = neg_inf(), l0 = 0.0f, l1 = 0.0f;  // running max (base 2) and this thread's sums

    int prevSeq = -1;
    for (;;) {
        __syncthreads();  // row info visible; the previous pass is done with ctl, Ks, Vs
        if (tid == 0) { ctl[0] = 0x7fffffff; ctl[1] = -1; ctl[2] = 0x7fffffff; }
        __syncthreads();
        if (tid < FA_BM && rowSeqS[tid] > prevSeq) atomicMin(&ctl[0], rowSeqS[tid]);
        __syncthreads();
        const int seq = ctl[0];
        if (seq == 0x7fffffff) break;  // block-uniform
        if (tid < FA_BM && rowSeqS[tid] == seq) atomicMax(&ctl[1], rowPosS[tid]);
        __syncthreads();
        const int maxPos = ctl[1];
        prevSeq = seq;

        const int kStart = s * splitLen;
        const int kEnd = min(kStart + splitLen, maxPos + 1);
        // last key each of this thread's rows may see in this pass (-1: none)
        const int lim0 = rowSeqS[lr0] == seq ? min(rowPosS[lr0], kEnd - 1) : -1;
        const int lim1 = rowSeqS[lr1] == seq ? min(rowPosS[lr1], kEnd - 1) : -1;
        const int* __restrict__ table = blockTables + (i64) seq * maxBlocksPerSeq;

        for (int k0 = kStart; k0 < kEnd; k0 += FA_BN) {
            __syncthreads();  // the previous tile's readers are done
#pragma unroll 4
            for (int i = tid; i < FA_BN * (D / 4); i += FA_THREADS) {  // unrolled: several rows' loads in flight
                const int kk = i / (D / 4), d4 = i - kk * (D / 4);
                const int p = k0 + kk;
                F4 kv = {0.0f, 0.0f, 0.0f, 0.0f}, vv = {0.0f, 0.0f, 0.0f, 0.0f};  // keys past kEnd: zeros
                if (p < kEnd) {
                    const i64 off = ((i64) table[p / blockSize] * blockSize + p % blockSize) * kvDim
                            + (i64) kvh * D + d4 * 4;
                    kv = *reinterpret_cast<const F4*>(kCache + off);
                    vv = *reinterpret_cast<const F4*>(vCache + off);
                }
                FaU2 kb, vb;
                kb.x = fa_pack_bf16(kv.x, kv.y);
                kb.y = fa_pack_bf16(kv.z, kv.w);
                vb.x = fa_pack_bf16(vv.x, vv.y);
                vb.y = fa_pack_bf16(vv.z, vv.w);
                *reinterpret_cast<FaU2*>(Ks + kk * LD + d4 * 4) = kb;
                *reinterpret_cast<FaU2*>(Vs + kk * LD + d4 * 4) = vb;
            }
            __syncthreads();

            // S = Q·Kᵀ: B fragment (k = dim, n = key) = two consecutive dims of key row (8 nt + gid)
            float sc[NT][4];
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.0f;
#pragma unroll
                for (int ks = 0; ks < KS; ks++) {
                    const u16* kr = Ks + (nt * 8 + gid) * LD + ks * 16 + tig * 2;
                    fa_mma(sc[nt], qa[ks], *reinterpret_cast<const u32*>(kr), *reinterpret_cast<const u32*>(kr + 8));
                }
            }
            // mask: key k0 + 8 nt + 2 tig (+1) against each row's limit, only where a limit falls in this tile
            if (k0 + FA_BN - 1 > min(lim0, lim1)) {
#pragma unroll
                for (int nt = 0; nt < NT; nt++) {
                    const int p = k0 + nt * 8 + tig * 2;
                    if (p > lim0) sc[nt][0] = neg_inf();
                    if (p + 1 > lim0) sc[nt][1] = neg_inf();
                    if (p > lim1) sc[nt][2] = neg_inf();
                    if (p + 1 > lim1) sc[nt][3] = neg_inf();
                }
            }
            // online softmax; the four lanes of a quad share a row
            float mx0 = neg_inf(), mx1 = neg_inf();
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                mx0 = fmaxf(mx0, fmaxf(sc[nt][0], sc[nt][1]));
                mx1 = fmaxf(mx1, fmaxf(sc[nt][2], sc[nt][3]));
            }
            mx0 = fmaxf(mx0, __shfl_xor_sync(FULL_MASK, mx0, 1));
            mx0 = fmaxf(mx0, __shfl_xor_sync(FULL_MASK, mx0, 2));
            mx1 = fmaxf(mx1, __shfl_xor_sync(FULL_MASK, mx1, 1));
            mx1 = fmaxf(mx1, __shfl_xor_sync(FULL_MASK, mx1, 2));
            const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
            // a row with no key yet keeps max -inf: subtract 0 instead (every exp2 below is then 0, not NaN)
            const float mu0 = mn0 == neg_inf() ? 0.0f : mn0, mu1 = mn1 == neg_inf() ? 0.0f : mn1;
            const float al0 = exp2f(m0 - mu0), al1 = exp2f(m1 - mu1);
            m0 = mn0;
            m1 = mn1;
            float rs0 = 0.0f, rs1 = 0.0f;
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                sc[nt][0] = exp2f(sc[nt][0] - mu0);
                sc[nt][1] = exp2f(sc[nt][1] - mu0);
                sc[nt][2] = exp2f(sc[nt][2] - mu1);
                sc[nt][3] = exp2f(sc[nt][3] - mu1);
                rs0 += sc[nt][0] + sc[nt][1];
                rs1 += sc[nt][2] + sc[nt][3];
            }
            l0 = l0 * al0 + rs0;
            l1 = l1 * al1 + rs1;
#pragma unroll
            for (int dt = 0; dt < DT; dt++) {
                o[dt][0] *= al0;
                o[dt][1] *= al0;
                o[dt][2] *= al1;
                o[dt][3] *= al1;
            }
            // O += P·V: the S accumulators of key tiles 2j, 2j + 1 are the A fragment of k step j; B from V
            // (k = key, n = dim) by ldmatrix.trans: matrices (keys +0/+8) × (dims +0/+8)
#pragma unroll
            for (int j = 0; j < FA_BN / 16; j++) {
                u32 pa[4];
                pa[0] = fa_pack_bf16(sc[2 * j][0], sc[2 * j][1]);
                pa[1] = fa_pack_bf16(sc[2 * j][2], sc[2 * j][3]);
                pa[2] = fa_pack_bf16(sc[2 * j + 1][0], sc[2 * j + 1][1]);
                pa[3] = fa_pack_bf16(sc[2 * j + 1][2], sc[2 * j + 1][3]);
                const u16* vrow = Vs + (16 * j + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + (lane >> 4) * 8;
#pragma unroll
                for (int q = 0; q < D / 16; q++) {
                    u32 b[4];
                    fa_ldmatrix_x4_trans(b, vrow + q * 16);
                    fa_mma(o[2 * q], pa, b[0], b[1]);
                    fa_mma(o[2 * q + 1], pa, b[2], b[3]);
                }
            }
        }
    }

    l0 += __shfl_xor_sync(FULL_MASK, l0, 1);
    l0 += __shfl_xor_sync(FULL_MASK, l0, 2);
    l1 += __shfl_xor_sync(FULL_MASK, l1, 1);
    l1 += __shfl_xor_sync(FULL_MASK, l1, 2);
#pragma unroll
    for (int half = 0; half < 2; half++) {
        const int idx = half == 0 ? idx0 : idx1;
        if (idx >= R) continue;
        const float l = half == 0 ? l0 : l1, m = half == 0 ? m0 : m1;
        const int t = idx / G, h = kvh * G + idx % G;
        const i64 th = (i64) t * heads + h;
        if (nSplits == 1) {
            const float inv = 1.0f / l;  // every row sees at least key 0 of its own sequence
            float* op = out + th * D;
#pragma unroll
            for (int dt = 0; dt < DT; dt++) {
                op[dt * 8 + tig * 2] = o[dt][2 * half] * inv;
                op[dt * 8 + tig * 2 + 1] = o[dt][2 * half + 1] * inv;
            }
        } else {
            const i64 ps = th * nSplits + s;
            float* ap = pAcc + ps * D;
#pragma unroll
            for (int dt = 0; dt < DT; dt++) {
                ap[dt * 8 + tig * 2] = o[dt][2 * half];
                ap[dt * 8 + tig * 2 + 1] = o[dt][2 * half + 1];
            }
            if (tig == 0) {
                pMax[ps] = l > 0.0f ? m * FA_LN2 : neg_inf();  // attention_combine works in base e
                pSum[ps] = l;
            }
        }
    }
}

#define FA_ARGS const float* __restrict__ qkv, int rowStride, int n, int heads, int kvHeads, float scaleLog2, \
    const float* __restrict__ kCache, const float* __restrict__ vCache, int kvDim, \
    const int* __restrict__ positions, const int* __restrict__ seqOfToken, const int* __restrict__ blockTables, \
    int maxBlocksPerSeq, int blockSize, int splitLen, int nSplits, float* __restrict__ out, \
    float* __restrict__ pAcc, float* __restrict__ pMax, float* __restrict__ pSum
#define FA_PASS qkv, rowStride, n, heads, kvHeads, scaleLog2, kCache, vCache, kvDim, positions, seqOfToken, \
    blockTables, maxBlocksPerSeq, blockSize, splitLen, nSplits, out, pAcc, pMax, pSum

extern "C" __global__ void __launch_bounds__(FA_THREADS) flash_prefill_d16(FA_ARGS) { flash_prefill<16>(FA_PASS); }
extern "C" __global__ void __launch_bounds__(FA_THREADS) flash_prefill_d32(FA_ARGS) { flash_prefill<32>(FA_PASS); }
extern "C" __global__ void __launch_bounds__(FA_THREADS) flash_prefill_d64(FA_ARGS) { flash_prefill<64>(FA_PASS); }
extern "C" __global__ void __launch_bounds__(FA_THREADS) flash_prefill_d128(FA_ARGS) { flash_prefill<128>(FA_PASS); }

// Rows [rowStart, rowStart + nRows) of an F16/Q8_0/Q4_0 (or any) weight matrix to BF16, round to nearest even.
extern "C" __global__ void dequant_bf16(const u8* __restrict__ w, const u16* __restrict__ scales, int dtype,
                                        int rowStart, int nRows, int cols, u16* __restrict__ out) {
    const i64 total = (i64) nRows * cols;
    for (i64 i = blockIdx.x * (i64) blockDim.x + threadIdx.x; i < total; i += (i64) gridDim.x * blockDim.x) {
        const int r = (int) (i / cols), k = (int) (i % cols);
        out[i] = f32_to_bf16(weight_at(w, scales, dtype, (i64) rowStart + r, k, cols));
    }
}
