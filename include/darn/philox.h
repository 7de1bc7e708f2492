/*
 * darn/philox.h — Philox4x32-10, the counter-based RNG behind darn's dropout masks.
 *
 * One header for C11, host C++ and HIP/CUDA device code, so the CPU reference, both GPU vendors and
 * the tests produce the same 32-bit words. The functions are small, pure and take plain structs by
 * value (as Random123's philox.h does): no hidden state, nothing depends on the thread layout.
 *
 * Constants are Random123's (and cuRAND's / rocRAND's): the stream equals
 * curand_init(seed, subsequence = offset, offset = i) / hiprand_init(...) followed by curand()/hiprand(),
 * see darn_philox_word() and docs/numerics.md §3.
 */
#ifndef DARN_PHILOX_H
#define DARN_PHILOX_H

#include <stdint.h>

#if defined(__CUDACC__) || defined(__HIPCC__) || defined(__HIP__)
#if !defined(__CUDACC__)
#include <hip/hip_runtime.h> /* __host__ / __device__ (nvcc predefines them) */
#endif /* !__CUDACC__ */
#define DARN_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DARN_HOST_DEVICE static inline
#endif /* __CUDACC__ || __HIPCC__ || __HIP__ */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct darn_philox_ctr { uint32_t v[4]; } darn_philox_ctr;
typedef struct darn_philox_key { uint32_t v[2]; } darn_philox_key;

#define DARN_PHILOX_M0 0xD2511F53u /* multipliers */
#define DARN_PHILOX_M1 0xCD9E8D57u
#define DARN_PHILOX_W0 0x9E3779B9u /* Weyl key increments: golden ratio, sqrt(3) - 1 */
#define DARN_PHILOX_W1 0xBB67AE85u

/* The high and low words of the 32 x 32 -> 64-bit product a * b. A device compiler whose best spelling of it
 * differs defines DARN_PHILOX_MULHILO(a, b, hi, lo) before including this header (hip/compat.h does for
 * NVIDIA); every spelling gives the same bits. */
#ifndef DARN_PHILOX_MULHILO
#define DARN_PHILOX_MULHILO(a, b, hi, lo)                    \
    do {                                                     \
        const uint64_t darn_p_ = (uint64_t)(a) * (uint64_t)(b); \
        (hi) = (uint32_t)(darn_p_ >> 32);                    \
        (lo) = (uint32_t)darn_p_;                            \
    } while (0)
#endif /* DARN_PHILOX_MULHILO */

/* One Philox round: two 32x32->64 multiplies, then the S-box permutation and key xor. */
DARN_HOST_DEVICE darn_philox_ctr darn_philox_round(darn_philox_ctr c, darn_philox_key k)
{
    uint32_t hi0, lo0, hi1, lo1;
    DARN_PHILOX_MULHILO(DARN_PHILOX_M0, c.v[0], hi0, lo0);
    DARN_PHILOX_MULHILO(DARN_PHILOX_M1, c.v[2], hi1, lo1);
    darn_philox_ctr r;
    r.v[0] = hi1 ^ c.v[1] ^ k.v[0];
    r.v[1] = lo1;
    r.v[2] = hi0 ^ c.v[3] ^ k.v[1];
    r.v[3] = lo0;
    return r;
}

DARN_HOST_DEVICE darn_philox_key darn_philox_bump(darn_philox_key k)
{
    k.v[0] += DARN_PHILOX_W0;
    k.v[1] += DARN_PHILOX_W1;
    return k;
}

/* Philox4x32 with 10 rounds: round, bump, round, ..., round (9 bumps). */
DARN_HOST_DEVICE darn_philox_ctr darn_philox4x32_10(darn_philox_ctr c, darn_philox_key k)
{
    c = darn_philox_round(c, k);
    k = darn_philox_bump(k); c = darn_philox_round(c, k);
    k = darn_philox_bump(k); c = darn_philox_round(c, k);
    k = darn_philox_bump(k); c = darn_philox_round(c, k);
    k = darn_philox_bump(k); c = darn_philox_round(c, k);
    k = darn_philox_bump(k); c = darn_philox_round(c, k);
    k = darn_philox_bump(k); c = darn_philox_round(c, k);
    k = darn_philox_bump(k); c = darn_philox_round(c, k);
    k = darn_philox_bump(k); c = darn_philox_round(c, k);
    k = darn_philox_bump(k); c = darn_philox_round(c, k);
    return c;
}

/* The four words of block `i4` (= element index / 4) of stream (seed, offset). */
DARN_HOST_DEVICE darn_philox_ctr darn_philox_block(uint64_t seed, uint64_t offset, uint64_t i4)
{
    darn_philox_ctr c;
    darn_philox_key k;
    c.v[0] = (uint32_t)i4;
    c.v[1] = (uint32_t)(i4 >> 32);
    c.v[2] = (uint32_t)offset;
    c.v[3] = (uint32_t)(offset >> 32);
    k.v[0] = (uint32_t)seed;
    k.v[1] = (uint32_t)(seed >> 32);
    return darn_philox4x32_10(c, k);
}

/* Word of element i (i = row * N + col): word i % 4 of block i / 4. Equal to the i-th 32-bit value of
 * curand_init(seed, offset, 0) / hiprand_init(seed, offset, 0), i.e. what curand_init(seed, offset, i)
 * followed by one curand() returns. */
DARN_HOST_DEVICE uint32_t darn_philox_word(uint64_t seed, uint64_t offset, uint64_t i)
{
    return darn_philox_block(seed, offset, i >> 2).v[i & 3];
}

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DARN_PHILOX_H */
