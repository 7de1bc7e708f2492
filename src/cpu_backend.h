/* cpu_backend.h — the CPU reference backend: docs/numerics.md, bit for bit. Arguments are validated. */
#ifndef DARN_CPU_BACKEND_H
#define DARN_CPU_BACKEND_H

#include <math.h>

#include "validate.h"

darn_status darn_cpu_fwd(const darn_plan *plan, const darn_fwd_tensors *t);
/* workspace: darn_bwd_partials_workspace(plan) bytes, 4-byte aligned. */
darn_status darn_cpu_bwd(const darn_plan *plan, const darn_bwd_tensors *t, void *workspace);
/* The two halves of darn_cpu_bwd. chunks: dx, dresidual (dx1) and the [pl->wgrad_chunks, N] chunk partials of
 * rows 0 … M-1 of the plan into q[0 … 3] = dweight, dbias, dweight1, dbias1 (NULL where absent). reduce: the
 * tree over the plan's chunk partials of one weight (in place) into dweight / dbias; +0 for M = 0. */
void darn_cpu_bwd_chunks(const darn_plan *plan, const darn_bwd_tensors *t, float *const q[4]);
void darn_cpu_wgrad_reduce(const darn_plan *plan, float *qw, float *qb, void *dweight, void *dbias);

/* A column slice (cols.c; docs/numerics.md §5, "Column slices"). fwd sums: pass 0 (h, residual_out, masks) or 1
 * (LayerNorm, given pass 0's gathered nodes) into nodes [M, 1, slots]; fwd: y, y1, rstd, mean, amax of the slice
 * from the gathered nodes of pass 0 (and 1). bwd sums: nodes [M, 1 + layer, slots]; the backward itself is
 * darn_cpu_bwd with the gathered nodes. */
void darn_cpu_fwd_cols_sums(const darn_plan *plan, const darn_fwd_tensors *t, const darn_cols_plan *cp, int pass,
                            const float *gathered, float *nodes);
void darn_cpu_fwd_cols(const darn_plan *plan, const darn_fwd_tensors *t, const darn_cols_plan *cp,
                       const float *gathered0, const float *gathered1);
void darn_cpu_bwd_cols_sums(const darn_plan *plan, const darn_bwd_tensors *t, const darn_cols_plan *cp, float *nodes);
void darn_cpu_bwd_cols(const darn_plan *plan, const darn_bwd_tensors *t, const darn_cols_plan *cp,
                       const float *gathered, void *workspace);

#endif /* DARN_CPU_BACKEND_H */
