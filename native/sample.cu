// Token sampling on the device (temperature, top-k, top-p in HF's order), so only token ids cross PCIe.
//
// Fast path, 1 <= topK <= 1024: topk_slices keeps the k best (value, index) pairs of every 4096-wide slice
// (bitonic sort in shared memory), repeated until at most 4096 candidates remain; sample_topk sorts those,
// keeps the top k, applies temperature and top-p (keep rank r while the mass ranked before it < topP), and
// draws one token. Exactly k tokens are kept; ties are ordered by lower index first.
// General path (topK <= 0 or > 1024): sample_full finds the top-k and top-p thresholds over the whole row by
// bitwise binary search on the float ordering (ties at a threshold are all kept) and draws by an index-order
// scan. The uniform variate of row r is splitmix64(seed + r * golden) >> 40, scaled to [0, 1).
#include "common.cuh"

#define SLICE 4096
#define SORT_THREADS 1024

__device__ __forceinline__ float uniform01(u64 seed, int row) {
    u64 z = seed + (u64) (row + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z = z ^ (z >> 31);
    return (float) (z >> 40) * (1.0f / 16777216.0f);
}

__device__ __forceinline__ float clean(float v) { return v != v ? neg_inf() : v; }  // NaN sorts last

__device__ __forceinline__ bool ranks_before(float va, int ia, float vb, int ib) {
    return va > vb || (va == vb && ia < ib);
}

// Sorts SLICE (value, index) pairs in shared memory by value descending, then index ascending.
__device__ void bitonic_sort_desc(float* v, int* idx) {
    for (int size = 2; size <= SLICE; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            __syncthreads();
            for (int p = threadIdx.x; p < SLICE / 2; p += blockDim.x) {
                const int i = 2 * p - (p & (stride - 1));
                const int j = i + stride;
                const bool up = (i & size) == 0;  // this sub-sequence ends in ranks_before order
                const bool swap = up ? ranks_before(v[j], idx[j], v[i], idx[i])
                                     : ranks_before(v[i], idx[i], v[j], idx[j]);
                if (swap) {
                    const float tv = v[i]; v[i] = v[j]; v[j] = tv;
                    const int ti = idx[i]; idx[i] = idx[j]; idx[j] = ti;
                }
            }
        }
    }
    __syncthreads();
}

__device__ __forceinline__ void load_slice(const float* __restrict__ vals, const int* __restrict__ idxs, int base,
                                           int count, float* v, int* idx) {
    for (int i = threadIdx.x; i < SLICE; i += blockDim.x) {
        const int src = base + i;
        if (src < count) {
            v[i] = clean(vals[src]);
            idx[i] = idxs != 0 ? idxs[src] : src;
        } else {
            v[i] = neg_inf();
            idx[i] = 0x7fffffff;
        }
    }
}

// grid (slices, rows): out row r, slice s gets the k best of in[r, s*SLICE .. (s+1)*SLICE).
extern "C" __global__ void __launch_bounds__(SORT_THREADS) topk_slices(
        const float* __restrict__ inVal, const int* __restrict__ inIdx, i64 inStride, int count, int k,
        float* __restrict__ outVal, int* __restrict__ outIdx, i64 outStride) {
    __shared__ float v[SLICE];
    __shared__ int idx[SLICE];
    const int row = blockIdx.y, s = blockIdx.x;
    load_slice(inVal + row * inStride, inIdx != 0 ? inIdx + row * inStride : 0, s * SLICE, count, v, idx);
    bitonic_sort_desc(v, idx);
    for (int j = threadIdx.x; j < k; j += blockDim.x) {
        outVal[row * outStride + (i64) s * k + j] = v[j];
        outIdx[row * outStride + (i64) s * k + j] = idx[j];
    }
}

// One block per row over <= SLICE candidates: top k, temperature, top-p, draw.
extern "C" __global__ void __launch_bounds__(SORT_THREADS) sample_topk(
        const float* __restrict__ inVal, const int* __restrict__ inIdx, i64 inStride, int count, int k,
        float invTemp, float topP, u64 seed, int* __restrict__ out) {
    __shared__ float v[SLICE];
    __shared__ int idx[SLICE];
    __shared__ float cum[1024];
    __shared__ int pick;
    const int row = blockIdx.x, tid = threadIdx.x;
    load_slice(inVal + row * inStride, inIdx != 0 ? inIdx + row * inStride : 0, 0, count, v, idx);
    bitonic_sort_desc(v, idx);
    const int kk = min(k, count);  // k <= 1024 = blockDim
    const float top = v[0];
    float p = 0.0f;
    if (tid < kk && v[tid] != neg_inf()) p = expf((v[tid] - top) * invTemp);
    if (tid < 1024) cum[tid] = p;
    if (tid == 0) pick = 0x7fffffff;
    __syncthreads();
    for (int off = 1; off < 1024; off <<= 1) {  // inclusive scan (Hillis-Steele)
        const float add = (tid < 1024 && tid >= off) ? cum[tid - off] : 0.0f;
        __syncthreads();
        if (tid < 1024) cum[tid] += add;
        __syncthreads();
    }
    const float total = cum[1023];
    // keep rank r while the probability mass ranked before it is < topP (HF TopP: the crossing token is kept)
    const float limit = topP * total;
    const float excl = tid == 0 ? 0.0f : cum[tid - 1];
    const bool kept = tid < kk && p > 0.0f && (topP >= 1.0f || excl < limit || tid == 0);
    // kept ranks are a prefix; its mass is cum[last kept]
    __shared__ int lastKept;
    if (tid == 0) lastKept = 0;
    __syncthreads();
    if (kept) atomicMax(&lastKept, tid);
    __syncthreads();
    const float mass = cum[lastKept];
    const float u = uniform01(seed, row) * mass;
    if (kept && cum[tid] > u && excl <= u) atomicMin(&pick, tid);
    __syncthreads();
    if (tid == 0) out[row] = idx[pick == 0x7fffffff ? lastKept : pick];
}

__device__ __forceinline__ u32 order_key(float f) {  // monotone: a < b  <=>  key(a) < key(b)
    const u32 u = __float_as_uint(clean(f));
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// General path; one block of 1024 threads per row; probs is scratch [rows, dim].
extern "C" __global__ void __launch_bounds__(1024) sample_full(
        const float* __restrict__ x, int dim, int topK, float invTemp, float topP, u64 seed,
        float* __restrict__ probs, int* __restrict__ out) {
    __shared__ float scratch[32];
    __shared__ float part[1024];
    __shared__ int pick, fallback;
    const int row = blockIdx.x, tid = threadIdx.x, nt = blockDim.x;
    const float* __restrict__ xr = x + (i64) row * dim;
    float* __restrict__ pr = probs + (i64) row * dim;

    float mx = neg_inf();
    for (int i = tid; i < dim; i += nt) mx = fmaxf(mx, clean(xr[i]));
    mx = block_max(mx, scratch);
    for (int i = tid; i < dim; i += nt) {
        const float c = clean(xr[i]);
        pr[i] = c == neg_inf() ? 0.0f : expf((c - mx) * invTemp);
    }
    __syncthreads();

    // top-k threshold: the largest key with count(key >= it) >= topK
    u32 kMin = 0;
    if (topK > 0 && topK < dim) {
        u32 kappa = 0;
        for (int bit = 31; bit >= 0; bit--) {
            const u32 cand = kappa | (1u << bit);
            float cnt = 0.0f;
            for (int i = tid; i < dim; i += nt) cnt += order_key(xr[i]) >= cand ? 1.0f : 0.0f;
            cnt = block_sum(cnt, scratch);
            if (cnt >= (float) topK) kappa = cand;
        }
        kMin = kappa;
    }
    float total = 0.0f;
    for (int i = tid; i < dim; i += nt) total += order_key(xr[i]) >= kMin ? pr[i] : 0.0f;
    total = block_sum(total, scratch);

    // top-p threshold: the largest key >= kMin whose kept mass is still >= topP * total
    u32 pMin = kMin;
    if (topP < 1.0f) {
        const float limit = topP * total;
        u32 kappa = 0;
        for (int bit = 31; bit >= 0; bit--) {
            const u32 cand = kappa | (1u << bit);
            const u32 thr = cand > kMin ? cand : kMin;
            float m = 0.0f;
            for (int i = tid; i < dim; i += nt) m += order_key(xr[i]) >= thr ? pr[i] : 0.0f;
            m = block_sum(m, scratch);
            if (m >= limit) kappa = cand;
        }
        pMin = kappa > kMin ? kappa : kMin;
    }

    // draw: contiguous chunk per thread, exclusive scan of chunk masses, the owning thread scans its chunk
    const int per = (dim + nt - 1) / nt;
    const int lo = min(dim, tid * per), hi = min(dim, lo + per);
    float local = 0.0f;
    int lastIdx = -1;
    for (int i = lo; i < hi; i++) {
        if (order_key(xr[i]) >= pMin && pr[i] > 0.0f) { local += pr[i]; lastIdx = i; }
    }
    part[tid] = local;
    if (tid == 0) { pick = 0x7fffffff; fallback = -1; }
    __syncthreads();
    for (int off = 1; off < nt; off <<= 1) {
        const float add = tid >= off ? part[tid - off] : 0.0f;
        __syncthreads();
        part[tid] += add;
        __syncthreads();
    }
    const float mass = part[nt - 1];
    const float u = uniform01(seed, row) * mass;
    const float before = part[tid] - local;
    if (local > 0.0f && before <= u && u < part[tid]) {
        float c = before;
        int chosen = lastIdx;
        for (int i = lo; i < hi; i++) {
            if (order_key(xr[i]) >= pMin && pr[i] > 0.0f) {
                c += pr[i];
                if (c > u) { chosen = i; break; }
            }
        }
        atomicMin(&pick, chosen);
    }
    if (lastIdx >= 0) atomicMax(&fallback, lastIdx);
    __syncthreads();
    if (tid == 0) out[row] = pick != 0x7fffffff ? pick : (fallback >= 0 ? fallback : 0);
}
