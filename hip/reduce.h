/*
 * reduce.h — the row sums of docs/numerics.md §5 on the GPU (§7): a thread owns groups t, t + P, …;
 * the butterfly over the P threads of a row turns each column k of groups [kP, (k + 1)P) into its
 * subtree sum, and a thread then adds its columns' sums with the pairwise tree over k.
 */
#ifndef DARN_HIP_REDUCE_H
#define DARN_HIP_REDUCE_H

#include "group8.h"

/* Xor-butterfly over distances 1, 2, …, width / 2 (width a power of two <= DARN_WAVE): afterwards each
 * lane holds the pairwise tree (§5) of its aligned run of `width` lanes, for each of the NV values. Every
 * thread of the block calls it with the same width. */
template <int NV> __device__ __forceinline__ void darn_butterfly(float (&v)[NV], int width)
{
#pragma unroll
    for (int d = 1; d < DARN_WAVE; d *= 2) { /* unrolled; `d < width` is the same in every thread */
        if (d < width) {
#pragma unroll
            for (int i = 0; i < NV; i++) v[i] = v[i] + darn_shfl_xor(v[i], d);
        }
    }
}

/* Sum over the P threads of each row of the block (rows are consecutive runs of P threads), NV values:
 * the butterfly inside the wave, then, for rows wider than a wave, the same butterfly over the row's
 * nw = P / DARN_WAVE wave totals read from shared memory (lane l of each of the row's waves reads total
 * l % nw, so each aligned run of nw lanes holds all of them). Every thread ends with the tree of its row.
 * Every thread of the block calls it, equally often. smem holds 2 * NV * 32 floats (a block has at most 32
 * waves): calls alternate between its two halves (`phase`, the same in every thread), so one barrier per
 * call suffices — a thread that writes a half again has passed the barrier of the call in between, which
 * every thread reaches only after its reads of that half. */
template <int NV> __device__ __forceinline__ void darn_row_allreduce(float (&v)[NV], int p, float *smem, int &phase)
{
    darn_butterfly<NV>(v, p < DARN_WAVE ? p : DARN_WAVE);
    if (p > DARN_WAVE) {
        /* p is a power of two (src/dispatch.c), so is nw: masks, not a division, per row */
        const int nw = p / DARN_WAVE, wave = (int)threadIdx.x / DARN_WAVE, lane = (int)threadIdx.x % DARN_WAVE;
        const int first = wave & ~(nw - 1); /* the row's first wave in the block */
        float *const half = smem + phase * (NV * 32);
        phase ^= 1;
        if (lane == 0) {
#pragma unroll
            for (int i = 0; i < NV; i++) half[i * 32 + wave] = v[i];
        }
        __syncthreads();
#pragma unroll
        for (int i = 0; i < NV; i++) v[i] = half[i * 32 + first + (lane & (nw - 1))];
        darn_butterfly<NV>(v, nw);
    }
}

/* The pairwise tree over v[0 … K) (K compile-time), level by level in place; a missing right partner
 * passes through. */
template <int K> __device__ __forceinline__ float darn_tree_k(float (&v)[K])
{
#pragma unroll
    for (int d = 1; d < K; d *= 2) {
#pragma unroll
        for (int i = 0; i + d < K; i += 2 * d) v[i] = v[i] + v[i + d];
    }
    return v[0];
}

/* The row sum of a thread's K column sums: butterfly, then the tree over the columns. acc holds the
 * thread's K group sums (−0.0 for groups past the row). */
template <int K> __device__ __forceinline__ float darn_row_sum(float (&acc)[K], int p, float *smem, int &phase)
{
    darn_row_allreduce<K>(acc, p, smem, phase);
    return darn_tree_k<K>(acc);
}

/* The tree over a run-time number of column sums that arrive one at a time in increasing k (the re-read
 * rows, one row per block): s[l] holds the pending left subtree of 2^l columns; column k closes one
 * subtree per trailing 1 bit of k. Every thread of the row holds the same column sums after the
 * all-reduce, so one thread keeps the stack, in shared memory. */
#define DARN_STREAM_LEVELS 64
__device__ __forceinline__ void darn_stream_push(float *s, int64_t k, float v)
{
    int l = 0;
    for (; (k >> l) & 1; l++) v = s[l] + v; /* left subtree + right subtree */
    s[l] = v;
}
/* The tree over all `count` columns pushed: the open subtrees added right to left (smallest first). */
__device__ __forceinline__ float darn_stream_total(const float *s, int64_t count)
{
    float v = -0.0f;
    for (int l = 0; l < DARN_STREAM_LEVELS; l++)
        if ((count >> l) & 1) v = s[l] + v;
    return v;
}

#endif /* DARN_HIP_REDUCE_H */
