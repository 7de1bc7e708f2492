/*
 * compat.h — every difference between AMD and NVIDIA that darn's kernels see, in one place.
 * The kernels are written once against these names (HIP's NVIDIA path maps hip* to CUDA).
 */
#ifndef DARN_HIP_COMPAT_H
#define DARN_HIP_COMPAT_H

#include <hip/hip_runtime.h>

/* Physical wave size as a compile-time constant of the device pass: 64 on gfx9 (MI-series, wave64),
 * 32 on gfx10+ (wave32) and NVIDIA. ROCm 7 made `warpSize` non-constexpr, so it is never used here.
 * The host pass sees 32; host code never sizes anything from it (reductions do not depend on it). */
#if defined(__GFX9__)
#define DARN_WAVE 64
#else
#define DARN_WAVE 32
#endif /* __GFX9__ */

/* Butterfly exchange inside a wave. All lanes of the wave must take part. */
#if defined(__HIP_PLATFORM_NVIDIA__)
#define DARN_SHFL_XOR(v, lane_mask) __shfl_xor_sync(0xFFFFFFFFu, (v), (lane_mask))
#else
#define DARN_SHFL_XOR(v, lane_mask) __shfl_xor((v), (lane_mask))
#endif /* __HIP_PLATFORM_NVIDIA__ */

/* Read-only loads through the non-coherent path where the vendor has one. */
#if defined(__HIP_PLATFORM_NVIDIA__)
#define DARN_LDG(p) __ldg(p)
#else
#define DARN_LDG(p) (*(p))
#endif /* __HIP_PLATFORM_NVIDIA__ */

#define DARN_LAUNCH_BOUNDS(threads) __launch_bounds__(threads)

/* Makes the compiler forget what it knows about a 32-bit value and move it to a vector register
 * (AMD), so that nothing derived from it is hoisted out of the loop it sits in or kept in SGPRs. AMD
 * keeps hoisted wave-uniform values in SGPRs (about 100 of them); a row loop that regenerates dropout
 * bits would hold the 20 Philox round keys and the uniform halves of the first rounds there and spill.
 * With the seed in a VGPR per row, the key schedule runs on the vector unit: two adds per round.
 * NVIDIA has no such split: nothing to do. */
#if defined(__HIP_PLATFORM_NVIDIA__)
#define DARN_TO_VGPR(v) ((void)0)
#else
#define DARN_TO_VGPR(v) asm volatile("" : "+v"(v))
#endif /* __HIP_PLATFORM_NVIDIA__ */

/* DARN_TO_VGPR of a 64-bit value (row index, Philox seed or offset), one 32-bit half at a time. */
__device__ __forceinline__ uint64_t darn_to_vgpr64(uint64_t v)
{
    uint32_t lo = (uint32_t)v, hi = (uint32_t)(v >> 32);
    DARN_TO_VGPR(lo);
    DARN_TO_VGPR(hi);
    return (uint64_t)hi << 32 | lo;
}

/* Launch bound plus an occupancy floor, so the compiler keeps registers within what that occupancy
 * allows. The second argument of __launch_bounds__ differs: CUDA takes resident blocks per SM, HIP-Clang
 * takes waves per execution unit (SIMD). `waves` is the AMD floor in waves per SIMD. */
#if defined(__HIP_PLATFORM_NVIDIA__)
#define DARN_LAUNCH_BOUNDS_OCC(threads, nv_blocks, amd_waves) __launch_bounds__(threads, nv_blocks)
#else
#define DARN_LAUNCH_BOUNDS_OCC(threads, nv_blocks, amd_waves) __launch_bounds__(threads, amd_waves)
#endif /* __HIP_PLATFORM_NVIDIA__ */

/* Makes the compiler forget a wave-uniform value but keep it in scalar registers (AMD): whatever is
 * loaded through it is loaded again where it is used. For the pointer to the kernel arguments
 * (darn_args_again in device_common.h); a value the compiler holds in a VGPR does not compile ("illegal
 * SGPR to VGPR copy"). NVIDIA: nothing to do. */
#if defined(__HIP_PLATFORM_NVIDIA__)
#define DARN_TO_SGPR(v) ((void)0)
#else
#define DARN_TO_SGPR(v) asm volatile("" : "+s"(v))
#endif /* __HIP_PLATFORM_NVIDIA__ */

/* The same pointer, marked as pointing to global memory (AMD), so that loads and stores through it are
 * global_* rather than flat_* instructions. The compiler knows this of pointers read from the kernel's
 * parameter itself, not of those read through darn_args_again (device_common.h). DARN_GLOBAL_UNIFORM is
 * for a pointer that is the same in every lane of the wave (it stays in SGPRs). NVIDIA: the pointer. */
#if defined(__HIP_PLATFORM_NVIDIA__)
#define DARN_GLOBAL(p) (p)
#define DARN_GLOBAL_UNIFORM(p) (p)
#else
template <bool UNIFORM, class T> __device__ __forceinline__ T *darn_global_ptr(T *p)
{
    __attribute__((address_space(1))) T *g = (__attribute__((address_space(1))) T *)p;
    /* Opaque to the optimizer, or it folds the two casts away before it uses the address space. */
    if constexpr (UNIFORM) asm("" : "+s"(g));
    else asm("" : "+v"(g));
    return (T *)g;
}
#define DARN_GLOBAL(p) darn_global_ptr<false>(p)
#define DARN_GLOBAL_UNIFORM(p) darn_global_ptr<true>(p)
#endif /* __HIP_PLATFORM_NVIDIA__ */

/* Streaming (evict-first) 16-byte load and store, for data used once: the L2 then keeps what a kernel
 * reads a second time (the wide kernels' h). NVIDIA: ld/st.global.cs; AMD: nontemporal (slc).
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
#endif /* __HIP_PLATFORM_NVIDIA__ */

#endif /* DARN_HIP_COMPAT_H */
