/* bwd_terms.h — the per-group terms of the backward (docs/numerics.md §6) shared by the fast kernels
 * (bwd_fast.hip, bwd_wide.hip). */
#ifndef DARN_HIP_BWD_TERMS_H
#define DARN_HIP_BWD_TERMS_H

#include "vec8.h"

/* xhat, gy and g = gy * w' of group j from the raw h and dy; `gy` may alias `g` when only g is wanted. */
template <class C>
__device__ __forceinline__ void darn_bwd_terms(const void *w_base, bool layer, bool zc, const darn_raw8<C::RO> &rh,
                                               const darn_raw8<C::O> &rdy, int64_t j, float mean, float rstd,
                                               float (&xhat)[8], float (&gy)[8], float (&g)[8])
{
    darn_raw8<C::W> rw;
    darn_load8(rw, w_base, j);
    float w[8];
    darn_cvt8(xhat, rh);
    darn_cvt8(gy, rdy);
    darn_cvt8(w, rw);
#pragma unroll
    for (int e = 0; e < 8; e++) {
        const float d = layer ? xhat[e] - mean : xhat[e];
        xhat[e] = d * rstd;
        const float wv = zc ? w[e] + 1.0f : w[e];
        g[e] = gy[e] * wv;
    }
}

#endif /* DARN_HIP_BWD_TERMS_H */
