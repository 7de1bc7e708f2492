/*
 * gpu_case.h — one forward + backward case run on the CPU backend and on the GPU backend with the same
 * inputs, every output compared bit for bit (tests/test_gpu*.c). Skips cleanly without a GPU.
 */
#ifndef DARN_TESTS_GPU_CASE_H
#define DARN_TESTS_GPU_CASE_H

#include <stdbool.h>
#include <stdint.h>

#include <darn/darn.h>

typedef struct gpu_case {
    darn_desc desc;
    int64_t stride_pad; /* row stride = N + stride_pad for every [M, N] tensor (0: contiguous) */
    int misalign;       /* shift every device base pointer by this many elements (breaks 16-byte alignment) */
    bool mask;          /* forward writes the packed mask, backward reads it */
    bool dresout;       /* backward gets a dresidual_out gradient */
    bool check_repeat;  /* run the GPU twice and require identical bits */
    bool fwd_no_resout; /* forward only, without residual_out (the kernels recompute h where they re-read rows) */
    int want_fwd_entry; /* dispatch-table entries the GPU must run (darn_debug_*_kernel), -1: any */
    int want_bwd_entry;
} gpu_case;

/* Runs the case; returns 0 when every GPU output equals the CPU output bit for bit, else 1 with a
 * description of the first difference in `why`. */
int gpu_case_run(const gpu_case *c, char *why, size_t why_bytes);

/* The default-initialised case of a norm, shape and dtype (contiguous, no options, any kernel). */
gpu_case gpu_case_make(darn_norm norm, int64_t m, int64_t n, darn_dtype dtype);

/* The dispatch-table entries (forward, backward) the GPU backend runs for the case, without a device;
 * 0, or 1 when the case does not validate. */
int gpu_case_entries(const gpu_case *c, int *fwd_entry, int *bwd_entry);
/* A case whose call runs entry `entry` of the forward (backward = 0) or backward table, with `rows` rows
 * (0: a few); 0 when found, 1 when no candidate case reaches it. */
int gpu_case_for_entry(int backward, int entry, int64_t rows, gpu_case *c);

#endif /* DARN_TESTS_GPU_CASE_H */
