/*
 * test_overlap_exact.c — rows_meet() of src/validate.c (the exact overlap of two row sets) against brute
 * force, on every small case (byte-wide rows included, which no darn tensor has) and on random large ones.
 * The public-API tests (test_hardening.c) cover darn-shaped views; this one reaches the function itself.
 *
 * validate.c is compiled into this test; its external functions are renamed so they cannot clash with
 * libdarn's (static builds).
 */
#define darn_fail unit_darn_fail
#define darn_clear_error unit_darn_clear_error
#define darn_last_error unit_darn_last_error
#define darn_plan_init unit_darn_plan_init
#define darn_validate_fwd unit_darn_validate_fwd
#define darn_validate_bwd unit_darn_validate_bwd
#define darn_bwd_partials_workspace unit_darn_bwd_partials_workspace
#define darn_wgrad_parts unit_darn_wgrad_parts
#define darn_wgrad_has unit_darn_wgrad_has
#define darn_wgrad_sets unit_darn_wgrad_sets
/* validate.c sizes the backward's workspace with dispatch.c's functions (internal to libdarn): this copy too */
#define darn_static_config_dtypes unit_darn_static_config_dtypes
#define darn_row_geometry unit_darn_row_geometry
#define darn_fwd_kmax unit_darn_fwd_kmax
#define darn_fwd_entry unit_darn_fwd_entry
#define darn_bwd_cfg_fwd unit_darn_bwd_cfg_fwd
#define darn_cfg_is_parallel unit_darn_cfg_is_parallel
#define darn_choose_fwd unit_darn_choose_fwd
#define darn_choose_bwd unit_darn_choose_bwd
#define darn_entry_choice unit_darn_entry_choice
#define darn_entry_name unit_darn_entry_name
#define darn_bwd_rereads unit_darn_bwd_rereads
#define darn_gpu_bwd_rowsum_bytes unit_darn_gpu_bwd_rowsum_bytes
#define darn_bwd_workspace_layout unit_darn_bwd_workspace_layout
#include "validate.c"
#include "dispatch.c"

#include <criterion/criterion.h>

static bool brute(int64_t a, int64_t ma, int64_t sa, int64_t wa, int64_t b, int64_t mb, int64_t sb, int64_t wb)
{
    for (int64_t i = 0; i < ma; ++i)
        for (int64_t j = 0; j < mb; ++j)
            if (a + i * sa < b + j * sb + wb && b + j * sb < a + i * sa + wa) return true;
    return false;
}

/* Row set at base + d: rows of width w every s bytes. */
static buf rowset(uintptr_t at, int64_t rows, int64_t s, int64_t w)
{
    buf b = {0};
    b.p = (const void *)at;
    b.rows = rows;
    b.step = s;
    b.width = w;
    b.bytes = (uint64_t)((rows - 1) * s + w);
    return b;
}

Test(overlap_exact, every_small_case)
{
    const uintptr_t base = (uintptr_t)1 << 40;
    long n = 0, hits = 0;
    for (int64_t ma = 1; ma <= 4; ++ma)
        for (int64_t mb = 1; mb <= 4; ++mb)
            for (int64_t wa = 1; wa <= 6; ++wa)
                for (int64_t sa = wa; sa <= 11; ++sa)
                    for (int64_t wb = 1; wb <= 6; ++wb)
                        for (int64_t sb = wb; sb <= 11; ++sb)
                            for (int64_t d = -45; d <= 45; ++d) {
                                const buf A = rowset(base + (uintptr_t)d, ma, sa, wa), B = rowset(base, mb, sb, wb);
                                const bool want = brute(d, ma, sa, wa, 0, mb, sb, wb);
                                const bool got = rows_meet(&A, &B);
                                ++n;
                                hits += want;
                                if (got != want)
                                    cr_assert_fail("A: %lld rows of %lld every %lld at %+lld; B: %lld rows of %lld "
                                                   "every %lld at 0: rows_meet %d, brute force %d",
                                                   (long long)ma, (long long)wa, (long long)sa, (long long)d,
                                                   (long long)mb, (long long)wb, (long long)sb, got, want);
                            }
    cr_expect(hits > n / 10 && hits < n - n / 10, "%ld of %ld cases overlap", hits, n);
}

Test(overlap_exact, random_large_cases)
{
    const uintptr_t base = (uintptr_t)1 << 40;
    uint64_t s = 99;
    for (int it = 0; it < 300000; ++it) {
        uint64_t r[8];
        for (int k = 0; k < 8; ++k) {
            uint64_t z = (s += UINT64_C(0x9E3779B97F4A7C15));
            z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
            z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
            r[k] = z ^ (z >> 31);
        }
        const int64_t ma = 1 + (int64_t)(r[0] % 40), mb = 1 + (int64_t)(r[1] % 40);
        const int64_t wa = 1 + (int64_t)(r[2] % 600), wb = 1 + (int64_t)(r[3] % 600);
        const int64_t sa = wa + (int64_t)(r[4] % 2000);
        const int64_t sb = r[5] % 4 == 0 ? sa : wb + (int64_t)(r[5] % 2000);
        const int64_t d = (int64_t)(r[6] % 120001) - 60000;
        const buf A = rowset(base + (uintptr_t)d, ma, sa, wa), B = rowset(base, mb, sb, wb);
        const bool want = brute(d, ma, sa, wa, 0, mb, sb, wb), got = rows_meet(&A, &B);
        if (got != want)
            cr_assert_fail("A: %lld rows of %lld every %lld at %+lld; B: %lld rows of %lld every %lld at 0: "
                           "rows_meet %d, brute force %d", (long long)ma, (long long)wa, (long long)sa, (long long)d,
                           (long long)mb, (long long)wb, (long long)sb, got, want);
    }
}

/* Strides and spans near 2^62: no overflow (UBSan in the asan stage), and sane answers. */
Test(overlap_exact, huge_strides)
{
    const uintptr_t base = (uintptr_t)1 << 20;
    const int64_t S = INT64_C(1) << 61;
    buf A = rowset(base, 3, S, 8), B = rowset(base + 8, 2, S + 3, 8);
    cr_expect(!rows_meet(&A, &B) && !rows_meet(&B, &A), "rows 8 bytes apart, drifting by 3 per row");
    B = rowset(base, 2, S + 3, 8);
    cr_expect(rows_meet(&A, &B) && rows_meet(&B, &A), "same start");
    B = rowset(base + (uintptr_t)S - 3, 1, 16, 8);
    cr_expect(rows_meet(&A, &B), "a vector across the start of A's row 1");
    B = rowset(base + (uintptr_t)S + 8, 1, 16, 16);
    cr_expect(!rows_meet(&A, &B), "a vector right after A's row 1");
    A = rowset(base, 2, INT64_MAX / 2 - 7, 8);
    B = rowset(base + 30, 2, INT64_MAX / 2 - 11, 8);
    cr_expect(!rows_meet(&A, &B) && !rows_meet(&B, &A), "rows of huge views that just miss");
}
