/*
 * test_dispatch.c — the GPU dispatch table (src/dispatch.c, docs/numerics.md §7), checked without a GPU:
 * every entry of both directions is reached by some call, the launch shapes obey the kernels' limits,
 * and the debug queries answer for every build. tests/test_gpu.c runs each entry on a device.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include <darn/darn.h>

#include "gpu_case.h"

Test(dispatch, every_entry_is_reachable)
{
    for (int bwd = 0; bwd < 2; bwd++) {
        const int count = darn_debug_kernel_count(bwd);
        cr_assert_gt(count, 0);
        for (int e = 0; e < count; e++) {
            darn_kernel_info info;
            cr_assert_eq(darn_debug_kernel_entry(bwd, e, &info), DARN_OK);
            gpu_case c;
            cr_expect_eq(gpu_case_for_entry(bwd, e, 0, &c), 0, "%s entry %d (%s): no call reaches it",
                         bwd ? "backward" : "forward", e, info.name);
        }
    }
}

Test(dispatch, names_are_unique)
{
    for (int bwd = 0; bwd < 2; bwd++) {
        const int count = darn_debug_kernel_count(bwd);
        for (int a = 0; a < count; a++)
            for (int b = a + 1; b < count; b++) {
                darn_kernel_info ia, ib;
                cr_assert_eq(darn_debug_kernel_entry(bwd, a, &ia), DARN_OK);
                cr_assert_eq(darn_debug_kernel_entry(bwd, b, &ib), DARN_OK);
                cr_expect_neq(strcmp(ia.name, ib.name), 0, "entries %d and %d share the name %s", a, b, ia.name);
            }
    }
    darn_kernel_info info;
    cr_expect_eq(darn_debug_kernel_entry(0, -1, &info), DARN_ERR_BAD_ENUM);
    cr_expect_eq(darn_debug_kernel_entry(1, darn_debug_kernel_count(1), &info), DARN_ERR_BAD_ENUM);
    cr_expect_eq(darn_debug_kernel_entry(0, 0, NULL), DARN_ERR_NULL_POINTER);
}

/* The shape of every N from 1 to 70000 (and a few huge ones): P a power of two within the block limit,
 * K groups per thread covering the row, blocks of at most 512 threads, a row per block beyond 256 threads. */
Test(dispatch, launch_shapes)
{
    static const int64_t big[] = {INT64_C(1) << 20, INT64_C(1) << 31, INT64_C(123456789)};
    for (int64_t i = 1; i <= 70000 + 3; i++) {
        const int64_t n = i <= 70000 ? i : big[i - 70001];
        gpu_case c = gpu_case_make(DARN_RMSNORM, 5, n, DARN_F32);
        void *p = (void *)((uintptr_t)1 << 40);
        darn_fwd_tensors t = {.x = p, .weight = (char *)p + ((uintptr_t)1 << 38), .out = (char *)p + ((uintptr_t)2 << 38)};
        darn_kernel_info info;
        cr_assert_eq(darn_debug_fwd_kernel(&c.desc, &t, &info), DARN_OK, "N = %lld: %s", (long long)n, darn_last_error());
        const int64_t groups = darn_row_groups(n), P = info.threads_per_row;
        cr_assert(P >= 1 && P <= 512 && (P & (P - 1)) == 0, "N = %lld: P = %lld", (long long)n, (long long)P);
        cr_assert(info.block_threads == P * info.rows_per_block && info.block_threads <= 512, "N = %lld", (long long)n);
        cr_assert(P >= 256 ? info.rows_per_block == 1 : info.block_threads == 256, "N = %lld", (long long)n);
        cr_assert((int64_t)info.groups_per_thread * P >= groups || info.groups_per_thread == 2147483647, "N = %lld: K * P < groups",
                  (long long)n);
        if (strstr(info.name, "re-read") == NULL) {
            cr_assert(info.groups_per_thread >= 1 && info.groups_per_thread <= 4, "N = %lld", (long long)n);
            cr_assert((int64_t)(info.groups_per_thread - 1) * P < groups, "N = %lld: a whole column of groups idle", (long long)n);
        }
    }
}

/* M = 0 launches no row kernel; a bad call is rejected as darn_fwd would. */
Test(dispatch, queries_validate_like_the_calls)
{
    gpu_case c = gpu_case_make(DARN_RMSNORM, 0, 64, DARN_F32);
    darn_fwd_tensors t = {0};
    darn_kernel_info info;
    cr_expect_eq(darn_debug_fwd_kernel(&c.desc, &t, &info), DARN_OK, "%s", darn_last_error());
    cr_expect_eq(info.entry, -1);
    c.desc.rows = 4;
    cr_expect_eq(darn_debug_fwd_kernel(&c.desc, &t, &info), DARN_ERR_NULL_POINTER);
    cr_expect_eq(darn_debug_fwd_kernel(&c.desc, &t, NULL), DARN_ERR_NULL_POINTER);
    darn_bwd_tensors b = {0};
    cr_expect_eq(darn_debug_bwd_kernel(&c.desc, &b, &info), DARN_ERR_NULL_POINTER);
}
