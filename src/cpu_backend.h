/* cpu_backend.h — the CPU reference backend: docs/numerics.md, bit for bit. Arguments are validated. */
#ifndef DARN_CPU_BACKEND_H
#define DARN_CPU_BACKEND_H

#include <math.h>

#include "validate.h"

darn_status darn_cpu_fwd(const darn_plan *plan, const darn_fwd_tensors *t);
/* workspace: darn_bwd_partials_workspace(plan) bytes, 4-byte aligned. */
darn_status darn_cpu_bwd(const darn_plan *plan, const darn_bwd_tensors *t, void *workspace);

#endif /* DARN_CPU_BACKEND_H */
