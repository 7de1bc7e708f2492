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

#endif /* DARN_CPU_BACKEND_H */
