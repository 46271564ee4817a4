// k2j CUDA kernels: shared helpers. Compiled by NVRTC at backend start (CudaKernels pastes this file in place of
// the #include line), and checked offline with `nvcc -arch=sm_90 -c`. It includes no header on purpose: NVRTC has
// no system headers, so everything used here is a compiler builtin (threadIdx, __shfl_xor_sync, expf, ...).
#ifndef K2J_COMMON_CUH
#define K2J_COMMON_CUH

typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;
typedef long long i64;
typedef unsigned long long u64;

// Own 16-byte vector types (float4/uint4 come from headers NVRTC may not have); alignas makes loads 128-bit.
struct alignas(16) F4 { float x, y, z, w; };
struct alignas(16) U4 { u32 x, y, z, w; };

// Weight element types; the numbers are shared with CudaKernels.java (keep in sync).
#define DT_F32 0
#define DT_F16 1
#define DT_BF16 2
#define DT_Q8_0 3
#define DT_Q4_0 4

#define FULL_MASK 0xffffffffu

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

__device__ __forceinline__ float bf16_to_f32(u32 h) { return __uint_as_float((h & 0xffffu) << 16); }

__device__ __forceinline__ float f16_to_f32(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

// Round-to-nearest-even float -> bf16 bits (NaN stays NaN); the same rule as HostCodec.f32ToBf16.
__device__ __forceinline__ u16 f32_to_bf16(float f) {
    u32 u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u16) ((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (u16) (u >> 16);
}

// KV cache element types; the numbers are shared with CudaKernels.kvCode (keep in sync). FP8 is E4M3 (OCP "fn": no
// infinities, max 448) with one float scale per (slot, kv head) in a separate array (KvCodec in Java is the spec).
#define KV_F32 0
#define KV_BF16 1
#define KV_FP8 2
#define FP8_MAX 448.0f

// E4M3 bits -> float: the sign, exponent and mantissa moved into a float's fields (exponent bias 7 vs 127) and
// rescaled by 2^120, which also turns an E4M3 subnormal (a float subnormal here) into its exact value.
__device__ __forceinline__ float fp8_to_f32(u32 b) {
    return __uint_as_float(((b & 0x80u) << 24) | ((b & 0x7fu) << 20)) * __uint_as_float(0x7b800000u);
}

// float -> E4M3 bits, round to nearest even, saturating at +-448 (the caller has scaled x into range; NaN -> 0x7f).
// Below 2^-6 the E4M3 subnormals are multiples of 2^-9; above, the float's mantissa is rounded to 3 bits.
__device__ __forceinline__ u32 f32_to_fp8(float x) {
    const u32 u = __float_as_uint(x);
    const u32 sign = (u >> 24) & 0x80u;
    const float a = fabsf(x);
    if (a != a) return sign | 0x7fu;
    if (a >= FP8_MAX) return sign | 0x7eu;
    if (a < 0.015625f) return sign | (u32) __float2int_rn(a * 512.0f);  // multiples of 2^-9 (8 becomes 2^-6: 0x08)
    u32 r = __float_as_uint(a);
    r += 0x7ffffu + ((r >> 20) & 1u);
    const u32 bits = ((((r >> 23) & 0xffu) - 120u) << 3) | ((r >> 20) & 7u);
    return sign | min(bits, 0x7eu);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// `scratch` is 32 floats of shared memory; safe to call repeatedly (syncs before reuse).
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float t = lane < warps ? scratch[lane] : 0.0f;
    return warp_sum(t);
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float t = lane < warps ? scratch[lane] : neg_inf();
    return warp_max(t);
}

// One element of a weight matrix [rows, cols] in k2j's device layout: dense types row-major; Q8_0/Q4_0 keep the
// quantized values row-major (Q4_0: 16 bytes per block of 32, byte j = element j (low nibble) | element j+16
// (high nibble)) and the f16 block scales in a separate array `scales` [rows * cols / 32].
__device__ __forceinline__ float weight_at(const u8* __restrict__ w, const u16* __restrict__ scales, int dtype,
                                          i64 row, int col, int cols) {
    const i64 i = row * cols + col;
    switch (dtype) {
        case DT_F32: return ((const float*) w)[i];
        case DT_F16: return f16_to_f32(((const u16*) w)[i]);
        case DT_BF16: return bf16_to_f32(((const u16*) w)[i]);
        case DT_Q8_0: return (float) ((const signed char*) w)[i] * f16_to_f32(scales[i >> 5]);
        default: {  // DT_Q4_0
            const i64 block = i >> 5;
            const int j = (int) (i & 31);
            const u32 b = w[block * 16 + (j & 15)];
            const int q = (int) (j < 16 ? (b & 15u) : (b >> 4)) - 8;
            return (float) q * f16_to_f32(scales[block]);
        }
    }
}

#endif
