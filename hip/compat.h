/*
 * compat.h — every difference between AMD and NVIDIA that darn's kernels see, in one place.
 * The kernels are written once against these names (HIP's NVIDIA path maps hip* to CUDA).
 */
#ifndef DARN_HIP_COMPAT_H
#define DARN_HIP_COMPAT_H

#include <hip/hip_runtime.h>

#ifdef DARN_PHILOX_H
#error "hip/compat.h must come before darn/philox.h (it sets DARN_PHILOX_MULHILO)"
#endif /* DARN_PHILOX_H */

/* Philox's 32 x 32 -> 64 products (darn/philox.h). NVIDIA: nvcc (CUDA 11.8) turns the widened product into
 * 64-bit multiplies whose cross terms ptxas leaves as adds of zero, 27 more instructions per Philox block on
 * sm_90, where __umulhi and the low product become one IMAD.WIDE.U32 (cuobjdump, 2026-12-05). AMD's clang
 * makes one v_mad_u64_u32 of the widened form and two multiplies of __umulhi's, so it keeps the default. */
#if defined(__HIP_PLATFORM_NVIDIA__)
__host__ __device__ __forceinline__ void darn_mulhilo32(uint32_t a, uint32_t b, uint32_t &hi, uint32_t &lo)
{
#if defined(__CUDA_ARCH__)
    hi = __umulhi(a, b);
    lo = a * b;
#else
    const uint64_t p = (uint64_t)a * b;
    hi = (uint32_t)(p >> 32);
    lo = (uint32_t)p;
#endif /* __CUDA_ARCH__ */
}
#define DARN_PHILOX_MULHILO(a, b, hi, lo) darn_mulhilo32((a), (b), (hi), (lo))
#endif /* __HIP_PLATFORM_NVIDIA__ */

#include "contract.h"

/* Physical wave size as a compile-time constant of the device pass: 64 on gfx9 (MI-series, wave64),
 * 32 on gfx10+ (wave32) and NVIDIA. ROCm 7 made `warpSize` non-constexpr, so it is never used here.
 * The host pass sees 32; host code never sizes anything from it (reductions do not depend on it).
 * DARN_EMULATE_WAVE64 (a test build for NVIDIA, cmake -DDARN_EMULATE_WAVE64=ON) makes the kernels see
 * 64-wide waves whose upper exchange (distance 32) goes through shared memory, so that the wave64 code
 * paths of gfx9 run, bit for bit, on a GPU that exists here. */
#if defined(__GFX9__) || defined(DARN_EMULATE_WAVE64)
#define DARN_WAVE 64
#else
#define DARN_WAVE 32
#endif /* __GFX9__ || DARN_EMULATE_WAVE64 */

#if defined(DARN_EMULATE_WAVE64) && !defined(__HIP_PLATFORM_NVIDIA__)
#error "DARN_EMULATE_WAVE64 is a test build for NVIDIA GPUs"
#endif /* DARN_EMULATE_WAVE64 && !__HIP_PLATFORM_NVIDIA__ */

/* v of the lane `lane ^ d` of the same wave, d a power of two below DARN_WAVE. Every thread of the block
 * calls it with the same d (the emulated distance-32 exchange is a block barrier). */
__device__ __forceinline__ float darn_shfl_xor(float v, int d)
{
#if defined(__HIP_PLATFORM_NVIDIA__)
#if defined(DARN_EMULATE_WAVE64)
    if (d == 32) {
        __shared__ float xchg[1024];
        __syncthreads();
        xchg[threadIdx.x] = v;
        __syncthreads();
        return xchg[threadIdx.x ^ 32];
    }
#endif /* DARN_EMULATE_WAVE64 */
    return __shfl_xor_sync(0xFFFFFFFFu, v, d);
#else
    return __shfl_xor(v, d);
#endif /* __HIP_PLATFORM_NVIDIA__ */
}

/* Launch bound: threads per block, and for AMD the most waves per SIMD the compiler should aim at (it then
 * may use every VGPR that occupancy leaves; by default clang aimed at 4 waves and spilled: the re-read
 * backward had 10-12 VGPR spills on gfx90a, the K = 3 / 4 backward up to 98 on gfx942 with scratch,
 * tools/amd-resource-check, 2026-12-02). NVIDIA: the bound only. */
#if defined(__HIP_PLATFORM_NVIDIA__)
#define DARN_LAUNCH_BOUNDS(threads, amd_max_waves) __launch_bounds__(threads)
#else
#define DARN_LAUNCH_BOUNDS(threads, amd_max_waves) __launch_bounds__(threads) __attribute__((amdgpu_waves_per_eu(2, amd_max_waves)))
#endif /* __HIP_PLATFORM_NVIDIA__ */

/* Read-only loads through the non-coherent path where the vendor has one: only for data no thread of
 * the call writes before reading it (in-place outputs are written after their own last read). */
#if defined(__HIP_PLATFORM_NVIDIA__)
#define DARN_LDG(p) __ldg(p)
#else
#define DARN_LDG(p) (*(p))
#endif /* __HIP_PLATFORM_NVIDIA__ */

/* Streaming (evict-first) 16-byte load and store, for data used once: the L2 then keeps what a kernel
 * reads a second time (the re-read rows' h). NVIDIA: ld/st.global.cs; AMD: nontemporal (slc).
 * -DDARN_NO_STREAM_HINTS makes them plain, to measure what they give. */
#if defined(DARN_NO_STREAM_HINTS)
#define DARN_LD_STREAM(p) (*(p))
#define DARN_ST_STREAM(p, v) (*(p) = (v))
#elif defined(__HIP_PLATFORM_NVIDIA__)
#define DARN_LD_STREAM(p) __ldcs(p)
#define DARN_ST_STREAM(p, v) __stcs((p), (v))
#else
typedef unsigned int darn_u32x4 __attribute__((ext_vector_type(4)));
__device__ __forceinline__ uint4 darn_ld_stream(const uint4 *p)
{
    const darn_u32x4 v = __builtin_nontemporal_load((const darn_u32x4 *)p);
    return make_uint4(v.x, v.y, v.z, v.w);
}
__device__ __forceinline__ void darn_st_stream(uint4 *p, uint4 v)
{
    const darn_u32x4 w = {v.x, v.y, v.z, v.w};
    __builtin_nontemporal_store(w, (darn_u32x4 *)p);
}
#define DARN_LD_STREAM(p) darn_ld_stream(p)
#define DARN_ST_STREAM(p, v) darn_st_stream((p), (v))
#endif /* DARN_NO_STREAM_HINTS, __HIP_PLATFORM_NVIDIA__ */

/* fp32 -> 16-bit float conversions of the kernels, two at a time, packed (element 0 in the low half), and
 * the 16-bit -> fp32 widening of f16. The contract's conversions (src/contract.h: round to nearest even,
 * overflow to inf, subnormals kept, NaN -> the canonical NaN) are IEEE's, which NVIDIA's cvt.rn.bf16x2.f32 /
 * cvt.rn.f16x2.f32 / cvt.f32.f16 (sm_80+) compute in one instruction for every non-NaN input; NaN inputs
 * are set to the canonical NaN after it. Checked on the device against contract.h for all 2^32 / 2^16
 * inputs (darn_device_check_conversions, test gpu/conversions_exhaustive). The `_raw` forms leave a NaN's
 * bits to the hardware: for values that are widened again and never stored (§4's hn). AMD: contract.h's
 * integer code (no AMD GPU here to check the hardware's conversions against). */
#if defined(__HIP_PLATFORM_NVIDIA__) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define DARN_HW_CVT 1
#else
#define DARN_HW_CVT 0
#endif /* sm_80+ */

__device__ __forceinline__ uint32_t darn_pack_bf16x2_raw(float lo, float hi)
{
#if DARN_HW_CVT
    uint32_t r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo)); /* the first source goes high */
    return r;
#else
    return (uint32_t)darn_f32_to_bf16(lo) | (uint32_t)darn_f32_to_bf16(hi) << 16;
#endif /* DARN_HW_CVT */
}
__device__ __forceinline__ uint32_t darn_pack_f16x2_raw(float lo, float hi)
{
#if DARN_HW_CVT
    uint32_t r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
#else
    return (uint32_t)darn_f32_to_f16(lo) | (uint32_t)darn_f32_to_f16(hi) << 16;
#endif /* DARN_HW_CVT */
}
/* The halves of NaN inputs set to `nan` (the canonical 16-bit NaN). */
__device__ __forceinline__ uint32_t darn_fix_nan16x2(uint32_t r, float lo, float hi, uint32_t nan)
{
#if DARN_HW_CVT
    r = lo != lo ? (r & 0xFFFF0000u) | nan : r;
    r = hi != hi ? (r & 0x0000FFFFu) | nan << 16 : r;
#else
    (void)lo, (void)hi, (void)nan; /* contract.h's code stores canonical NaNs itself */
#endif /* DARN_HW_CVT */
    return r;
}
__device__ __forceinline__ uint32_t darn_pack_bf16x2(float lo, float hi)
{
    return darn_fix_nan16x2(darn_pack_bf16x2_raw(lo, hi), lo, hi, DARN_BF16_CANONICAL_NAN);
}
__device__ __forceinline__ uint32_t darn_pack_f16x2(float lo, float hi)
{
    return darn_fix_nan16x2(darn_pack_f16x2_raw(lo, hi), lo, hi, DARN_F16_CANONICAL_NAN);
}
/* f16 -> fp32 (exact; a NaN stays a NaN of another payload on NVIDIA, which no stored bit can see). */
__device__ __forceinline__ float darn_widen_f16(uint16_t h)
{
#if DARN_HW_CVT
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#else
    return darn_f16_to_f32(h);
#endif /* DARN_HW_CVT */
}

/* OCP fp8 stores through NVIDIA's cvt.rn.satfinite.{e4m3x2,e5m2x2}.f32 (sm_89 and later, PTX 7.8): two codes per
 * instruction instead of src/fp8.h's integer code. numerics.md §9 lets a kernel use a hardware conversion only once it
 * is checked equal to the contract's for all 2^32 inputs: darn_device_check_conversions checks these two (checks 5
 * and 6) on every sm_89+ device, and the kernels use them when DARN_FP8_HW_CVT is 1: the default since that check
 * passed on an H200 (sm_90, run 15, tests/device/RESULTS.md); -DDARN_FP8_HW_CVT=0 builds the integer code back.
 * satfinite clamps +-inf and values past max to +-max, as §9; NaN inputs are set to §9's canonical code afterwards (the instruction's NaN code is not the contract's concern).
 * darn_hw_fp8x2(lo, hi, e5m2) returns lo's code in bits 0-7, hi's in bits 8-15. */
#if defined(__HIP_PLATFORM_NVIDIA__) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
#define DARN_HAVE_HW_FP8 1
__device__ __forceinline__ uint32_t darn_hw_fp8x2(float lo, float hi, bool e5m2)
{
    unsigned short r;
    if (e5m2) asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
    else asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
    const uint32_t nan = e5m2 ? 0x7Eu : 0x7Fu;
    uint32_t c = r;
    if (lo != lo) c = (c & 0xFF00u) | nan;
    if (hi != hi) c = (c & 0x00FFu) | nan << 8;
    return c;
}
#else
#define DARN_HAVE_HW_FP8 0
#endif /* NVIDIA sm_89+ */
#ifndef DARN_FP8_HW_CVT
#define DARN_FP8_HW_CVT 1
#endif /* DARN_FP8_HW_CVT */

#endif /* DARN_HIP_COMPAT_H */
