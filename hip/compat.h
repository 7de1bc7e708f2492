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

/* Launch bound plus an occupancy floor, so the compiler keeps registers within what that occupancy
 * allows. The second argument of __launch_bounds__ differs: CUDA takes resident blocks per SM, HIP-Clang
 * takes waves per execution unit (SIMD). `waves` is the AMD floor in waves per SIMD. */
#if defined(__HIP_PLATFORM_NVIDIA__)
#define DARN_LAUNCH_BOUNDS_OCC(threads, nv_blocks, amd_waves) __launch_bounds__(threads, nv_blocks)
#else
#define DARN_LAUNCH_BOUNDS_OCC(threads, nv_blocks, amd_waves) __launch_bounds__(threads, amd_waves)
#endif /* __HIP_PLATFORM_NVIDIA__ */

#endif /* DARN_HIP_COMPAT_H */
