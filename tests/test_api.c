/*
 * test_api.c — the API surface: versions, status text, sizes and formulas, and every bad input of
 * darn_fwd / darn_bwd / the workspace queries: its status, a message naming the argument, and not one
 * output byte written. Also the allowed in-place pairs and M = 0.
 *
 * Every buffer of a call lives in one sentinel-filled arena, so "nothing written" is one byte-for-byte
 * check of the whole arena (inputs included) and of the workspace.
 */
#include <criterion/criterion.h>

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <darn/darn.h>

#include "support.h"

#define M 5
#define N 40 /* not a multiple of 32: the mask has padding bits */
#define REGION 2048
#define WS_BYTES 65536

enum region {
    R_X, R_RES, R_ROWSCALE, R_W, R_B, R_OUT, R_RESOUT, R_MASK, R_RSTD, R_MEAN,
    R_DY, R_DRESOUT, R_DX, R_DRES, R_DW, R_DB, R_COUNT
};
#define ARENA_BYTES ((size_t)R_COUNT * REGION)

typedef struct fx {
    darn_desc d;
    darn_fwd_tensors f;
    darn_bwd_tensors b;
    unsigned char *arena;
    unsigned char *ws;
    size_t ws_bytes;
} fx;

static unsigned char *reg(const fx *F, int k) { return F->arena + (size_t)k * REGION; }

/* A full problem: every optional input and output present, as the flags allow. */
static void fx_init(fx *F, darn_norm norm, darn_dtype dt, uint32_t flags)
{
    memset(F, 0, sizeof *F);
    darn_desc_init(&F->d, norm, M, N, dt);
    F->d.flags = flags;
    F->d.dropout_p = 0.25;
    F->d.seed = 1234;
    F->d.offset = 7;
    F->arena = sup_alloc(ARENA_BYTES, 64);
    F->ws = sup_alloc(WS_BYTES, 64);
    F->ws_bytes = WS_BYTES;
    const int res = (flags & DARN_FLAG_HAS_RESIDUAL) != 0, bias = (flags & DARN_FLAG_HAS_BIAS) != 0;
    const int rs = (flags & DARN_FLAG_HAS_ROWSCALE) != 0, ln = norm == DARN_LAYERNORM;
    F->f.x = reg(F, R_X);
    F->f.residual = res ? reg(F, R_RES) : NULL;
    F->f.rowscale = rs ? (const float *)(const void *)reg(F, R_ROWSCALE) : NULL;
    F->f.weight = reg(F, R_W);
    F->f.bias = bias ? reg(F, R_B) : NULL;
    F->f.out = reg(F, R_OUT);
    F->f.residual_out = reg(F, R_RESOUT);
    F->f.mask = reg(F, R_MASK);
    F->f.rstd = (float *)(void *)reg(F, R_RSTD);
    F->f.mean = ln ? (float *)(void *)reg(F, R_MEAN) : NULL;
    F->b.dy = reg(F, R_DY);
    F->b.h = reg(F, R_RESOUT);
    F->b.weight = reg(F, R_W);
    F->b.rstd = (const float *)(const void *)reg(F, R_RSTD);
    F->b.mean = ln ? (const float *)(const void *)reg(F, R_MEAN) : NULL;
    F->b.rowscale = F->f.rowscale;
    F->b.dresidual_out = reg(F, R_DRESOUT);
    F->b.mask = reg(F, R_MASK);
    F->b.dx = reg(F, R_DX);
    F->b.dresidual = res ? reg(F, R_DRES) : NULL;
    F->b.dweight = reg(F, R_DW);
    F->b.dbias = bias ? reg(F, R_DB) : NULL;
}

static void fx_free(fx *F)
{
    sup_free(F->arena);
    sup_free(F->ws);
}

/* Real data in every input region (for calls that must succeed). */
static void fx_fill(fx *F, uint64_t seed)
{
    sup_rng g = sup_rng_make(seed);
    const darn_desc *d = &F->d;
    const darn_dtype ro = darn_residual_out_dtype(d);
    sup_fill_uniform(reg(F, R_X), d->x_dtype, M, N, 0, &g, -2.0f, 2.0f);
    sup_fill_uniform(reg(F, R_RES), d->residual_dtype, M, N, 0, &g, -2.0f, 2.0f);
    sup_fill_f32((float *)(void *)reg(F, R_ROWSCALE), M, &g, 0.5f, 1.5f);
    sup_fill_uniform(reg(F, R_W), d->weight_dtype, 1, N, 0, &g, 0.5f, 1.5f);
    sup_fill_uniform(reg(F, R_B), d->bias_dtype, 1, N, 0, &g, -0.5f, 0.5f);
    sup_fill_uniform(reg(F, R_DY), d->out_dtype, M, N, 0, &g, -1.0f, 1.0f);
    sup_fill_uniform(reg(F, R_DRESOUT), ro, M, N, 0, &g, -1.0f, 1.0f);
}

static int is_ident_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* msg mentions `id` as a whole identifier (not as part of a longer name). */
static int names(const char *msg, const char *id)
{
    const size_t n = strlen(id);
    for (const char *p = msg; (p = strstr(p, id)) != NULL; ++p)
        if ((p == msg || !is_ident_char(p[-1])) && !is_ident_char(p[n])) return 1;
    return 0;
}

static void check_failure(const fx *F, darn_status got, darn_status want, const char *id, const char *what)
{
    const char *msg = darn_last_error();
    cr_expect_eq(got, want, "%s: status %d (%s), want %d (%s)", what, (int)got, darn_status_string(got), (int)want,
                 darn_status_string(want));
    cr_expect(msg != NULL && msg[0] != '\0', "%s: darn_last_error() is empty", what);
    if (msg && id) cr_expect(names(msg, id), "%s: message \"%s\" does not name '%s'", what, msg, id);
    const int64_t a = sup_first_touched(F->arena, ARENA_BYTES);
    cr_expect(a < 0, "%s: arena byte %lld (region %lld, offset %lld) was written", what, (long long)a,
              (long long)(a / REGION), (long long)(a % REGION));
    const int64_t w = sup_first_touched(F->ws, WS_BYTES);
    cr_expect(w < 0, "%s: workspace byte %lld was written", what, (long long)w);
}

static void fx_reset(fx *F)
{
    sup_sentinel_fill(F->arena, ARENA_BYTES);
    sup_sentinel_fill(F->ws, WS_BYTES);
}

static void expect_fwd_fail(fx *F, const darn_desc *d, const darn_fwd_tensors *t, darn_status want, const char *id,
                            const char *what)
{
    fx_reset(F);
    const darn_status s = darn_fwd(d, t, F->ws, F->ws_bytes, DARN_BACKEND_CPU, NULL);
    check_failure(F, s, want, id, what);
}

static void expect_bwd_fail(fx *F, const darn_desc *d, const darn_bwd_tensors *t, darn_status want, const char *id,
                            const char *what)
{
    fx_reset(F);
    const darn_status s = darn_bwd(d, t, F->ws, F->ws_bytes, DARN_BACKEND_CPU, NULL);
    check_failure(F, s, want, id, what);
}

/* ---- versions, status, small functions ----------------------------------------------------------- */

Test(api, versions)
{
    cr_expect_eq(darn_version(), DARN_VERSION_NUMBER);
    cr_expect_eq(DARN_VERSION_NUMBER, DARN_VERSION_MAJOR * 10000 + DARN_VERSION_MINOR * 100 + DARN_VERSION_PATCH);
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", DARN_VERSION_MAJOR, DARN_VERSION_MINOR, DARN_VERSION_PATCH);
    cr_expect_str_eq(darn_version_string(), want);
    cr_expect_eq(darn_contract_version(), DARN_CONTRACT_VERSION);
}

Test(api, status_strings_distinct_and_nonempty)
{
    static const struct { darn_status s; int v; const char *text; } all[] = {
#define X(name, value, text) {name, value, text},
        DARN_STATUS_LIST(X)
#undef X
    };
    const size_t n = sizeof all / sizeof all[0];
    cr_expect_eq(n, 18, "status list has %zu entries", n);
    for (size_t i = 0; i < n; ++i) {
        cr_expect_eq((int)all[i].s, all[i].v, "status %zu value", i);
        cr_expect_eq(all[i].v, (int)i, "status values are 0..17 in order (stable values)");
        const char *s = darn_status_string(all[i].s);
        cr_assert(s != NULL && s[0] != '\0', "status %d has an empty string", all[i].v);
        cr_expect(strstr(s, all[i].text) != NULL, "status %d string \"%s\" lacks its text \"%s\"", all[i].v, s,
                  all[i].text);
        for (size_t j = 0; j < i; ++j)
            cr_expect(strcmp(s, darn_status_string(all[j].s)) != 0, "statuses %d and %d share \"%s\"", all[i].v,
                      all[j].v, s);
    }
    const char *u = darn_status_string((darn_status)99);
    cr_expect(u != NULL && u[0] != '\0', "unknown status has no string");
    for (size_t i = 0; i < n; ++i)
        cr_expect(strcmp(u, darn_status_string(all[i].s)) != 0, "status 99 reads like status %d", all[i].v);
}

Test(api, dtype_size_and_backend)
{
    cr_expect_eq(darn_dtype_size(DARN_F32), 4);
    cr_expect_eq(darn_dtype_size(DARN_F16), 2);
    cr_expect_eq(darn_dtype_size(DARN_BF16), 2);
    cr_expect_eq(darn_dtype_size(DARN_FP8_E4M3FN), 1);
    cr_expect_eq(darn_dtype_size(DARN_FP8_E5M2), 1);
    cr_expect_eq(darn_dtype_size(DARN_FP8_E4M3FNUZ), 1);
    cr_expect_eq(darn_dtype_size(DARN_FP8_E5M2FNUZ), 1);
    cr_expect_eq(darn_dtype_size(DARN_DTYPE_SAME_AS_OUT), 0);
    cr_expect_eq(darn_dtype_size((darn_dtype)7), 0);
    cr_expect_eq(darn_dtype_size((darn_dtype)-1), 0);
    cr_expect_eq(darn_backend_available(DARN_BACKEND_CPU), 1);
    cr_expect_eq(darn_backend_available((darn_backend)7), 0);
}

Test(api, desc_init_defaults_and_residual_out_dtype)
{
    darn_desc d;
    memset(&d, 0xCD, sizeof d);
    darn_desc_init(&d, DARN_LAYERNORM, 3, 9, DARN_BF16);
    cr_expect_eq(d.norm, DARN_LAYERNORM);
    cr_expect_eq(d.rows, 3);
    cr_expect_eq(d.cols, 9);
    cr_expect(d.x_dtype == DARN_BF16 && d.residual_dtype == DARN_BF16 && d.weight_dtype == DARN_BF16 &&
              d.bias_dtype == DARN_BF16 && d.out_dtype == DARN_BF16, "dtypes not all bf16");
    cr_expect_eq(d.flags, 0u);
    cr_expect_eq(d.eps, 1e-5f);
    cr_expect_eq(d.dropout_p, 0.0);
    cr_expect(d.seed == 0 && d.offset == 0 && d.rng_seed_ptr == NULL && d.rng_offset_ptr == NULL);
    darn_desc_init(&d, DARN_RMSNORM, 3, 9, DARN_F16);
    cr_expect_eq(d.eps, 1e-6f);

    d.x_dtype = DARN_F16;
    d.residual_dtype = DARN_BF16;
    cr_expect_eq(darn_residual_out_dtype(&d), DARN_F16, "no residual: x dtype");
    d.flags = DARN_FLAG_HAS_RESIDUAL;
    cr_expect_eq(darn_residual_out_dtype(&d), DARN_BF16, "residual: residual dtype");
    d.flags = DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_RESIDUAL_IN_FP32;
    cr_expect_eq(darn_residual_out_dtype(&d), DARN_F32, "fp32 flag with residual");
    d.flags = DARN_FLAG_RESIDUAL_IN_FP32;
    cr_expect_eq(darn_residual_out_dtype(&d), DARN_F32, "fp32 flag without residual");
}

Test(api, mask_row_bytes)
{
    for (int64_t n = 1; n <= 1000; ++n) {
        const int64_t want = 4 * ((n + 31) / 32);
        cr_expect_eq(darn_mask_row_bytes(n), want, "N = %lld", (long long)n);
    }
    cr_expect_eq(darn_mask_row_bytes(32), 4);
    cr_expect_eq(darn_mask_row_bytes(33), 8);
    cr_expect_eq(darn_mask_row_bytes(INT64_C(1) << 40), INT64_C(1) << 37);
}

/* §5: the row sum's tree has ceil(N / 8) leaves. */
Test(api, row_groups_formula)
{
    for (int64_t n = 1; n <= 70000; ++n)
        cr_assert_eq(darn_row_groups(n), n / 8 + (n % 8 != 0), "groups(%lld)", (long long)n);
    cr_expect_eq(darn_row_groups(INT64_MAX), INT64_MAX / 8 + 1);
    cr_expect_eq(darn_row_groups(0), 0);
    cr_expect_eq(darn_row_groups(-5), 0);
}

/* §6: R = max(1, floor(M * N / 2^21)), G = ceil(M / R); 0 for M = 0. Recomputed from the text in
 * 128-bit arithmetic (no overflow anywhere in the domain M * N <= INT64_MAX). */
static int64_t doc_chunk_rows(int64_t m, int64_t n)
{
    const unsigned __int128 r = (unsigned __int128)m * (unsigned __int128)n >> 21;
    return r < 1 ? 1 : (int64_t)r;
}
static int64_t doc_chunks(int64_t m, int64_t n)
{
    if (m == 0) return 0;
    const int64_t r = doc_chunk_rows(m, n);
    return m / r + (m % r != 0);
}

Test(api, wgrad_chunks_formula)
{
    static const int64_t ns[] = {1, 7, 40, 511, 512, 513, 1024, 4096, 8192, 16383, 16384, 16385, 65536, 100000,
                                 1 << 21, (1 << 21) + 1};
    static const int64_t ms[] = {0, 1, 2, 3, 127, 128, 129, 255, 256, 1000, 4095, 4096, 4097, 8191, 8192, 8193,
                                 12345, 100000, 1000003, INT64_C(1) << 33};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; ++i)
        for (size_t j = 0; j < sizeof ms / sizeof ms[0]; ++j) {
            const int64_t m = ms[j], n = ns[i];
            const int64_t g = darn_wgrad_chunks(m, n), want = doc_chunks(m, n);
            cr_expect_eq(g, want, "G(M=%lld, N=%lld) = %lld, doc says %lld", (long long)m, (long long)n,
                         (long long)g, (long long)want);
            if (m > 0)
                cr_expect_eq(darn_wgrad_chunk_rows(m, n), doc_chunk_rows(m, n), "R(M=%lld, N=%lld)", (long long)m,
                             (long long)n);
            /* §6's promise: every chunk has work, and G * ceil(N / 8) >= 2^18 once M * N >= 2^21 */
            cr_expect(g <= m, "G(M=%lld, N=%lld) = %lld > M", (long long)m, (long long)n, (long long)g);
            if ((unsigned __int128)m * n >= (1u << 21))
                cr_expect((unsigned __int128)g * (unsigned __int128)darn_row_groups(n) >= (1u << 18),
                          "G(M=%lld, N=%lld) = %lld: too few chunk columns", (long long)m, (long long)n, (long long)g);
        }
    for (int64_t m = 0; m <= 9000; ++m)
        cr_assert_eq(darn_wgrad_chunks(m, 1024), doc_chunks(m, 1024), "G(M=%lld, N=1024)", (long long)m);
    /* the whole int64 domain: M * N close to INT64_MAX (issue 12, item 3) */
    static const int64_t big[][2] = {{INT64_MAX, 1}, {INT64_MAX - (INT64_C(1) << 50), 1}, {INT64_C(1) << 40, 1 << 22},
                                     {3, INT64_MAX / 3}, {INT64_MAX / 65536, 65536}};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; ++i) {
        const int64_t m = big[i][0], n = big[i][1];
        cr_expect_eq(darn_wgrad_chunk_rows(m, n), doc_chunk_rows(m, n), "R(M=%lld, N=%lld)", (long long)m, (long long)n);
        cr_expect_eq(darn_wgrad_chunks(m, n), doc_chunks(m, n), "G(M=%lld, N=%lld)", (long long)m, (long long)n);
    }
}

/* ---- workspace queries --------------------------------------------------------------------------- */

Test(api, workspace_sizes)
{
    darn_desc d;
    darn_desc_init(&d, DARN_LAYERNORM, 1000, 300, DARN_F16);
    size_t bytes = 12345;
    cr_assert_eq(darn_fwd_workspace_size(&d, DARN_BACKEND_CPU, &bytes), DARN_OK);
    cr_expect_str_eq(darn_last_error(), "");
    bytes = 12345;
    cr_assert_eq(darn_bwd_workspace_size(&d, DARN_BACKEND_CPU, &bytes), DARN_OK);
    cr_expect_eq(bytes, (size_t)(4 * doc_chunks(1000, 300) * 300), "CPU bwd workspace = 4 G N");
    d.flags = DARN_FLAG_HAS_BIAS;
    cr_assert_eq(darn_bwd_workspace_size(&d, DARN_BACKEND_CPU, &bytes), DARN_OK);
    cr_expect_eq(bytes, (size_t)(8 * doc_chunks(1000, 300) * 300), "CPU bwd workspace with bias = 8 G N");
    d.rows = 0;
    cr_assert_eq(darn_bwd_workspace_size(&d, DARN_BACKEND_CPU, &bytes), DARN_OK);
    cr_expect_eq(bytes, 0, "M = 0 needs no workspace");
}

/* The GPU's backward workspace (numerics.md §6): the CPU's partials, then, for rows it re-reads (N > 2 * 512
 * groups), 8 bytes per row from the next 16-byte boundary; darn_bwd_partials_workspace_size: those 8 bytes per
 * row of the block only. (On a machine with a device: the GPU test runs.) */
Test(api, gpu_workspace_sizes)
{
    if (!darn_backend_available(DARN_BACKEND_GPU)) return;
    static const struct { int64_t m, n; int bias, reread; } c[] = {
        {1000, 300, 0, 0}, {1000, 8192, 1, 0}, {5461, 12288, 0, 1}, {1023, 65536, 1, 1}, {7, 8193, 0, 1}, {0, 65536, 0, 1}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        darn_desc d;
        darn_desc_init(&d, DARN_RMSNORM, c[i].m, c[i].n, DARN_BF16);
        if (c[i].bias) d.flags = DARN_FLAG_HAS_BIAS;
        size_t cpu = 0, gpu = 0, part = 99;
        cr_assert_eq(darn_bwd_workspace_size(&d, DARN_BACKEND_CPU, &cpu), DARN_OK, "%s", darn_last_error());
        cr_assert_eq(darn_bwd_workspace_size(&d, DARN_BACKEND_GPU, &gpu), DARN_OK, "%s", darn_last_error());
        const size_t rows = c[i].reread && c[i].m > 0 ? ((size_t)c[i].m * 8 + 15) / 16 * 16 : 0;
        const size_t want = rows ? (cpu + 15) / 16 * 16 + rows : cpu;
        cr_expect_eq(gpu, want, "M = %lld, N = %lld: GPU workspace %zu, want %zu", (long long)c[i].m,
                     (long long)c[i].n, gpu, want);
        cr_assert_eq(darn_bwd_partials_workspace_size(&d, 0, c[i].m, DARN_BACKEND_GPU, &part), DARN_OK, "%s",
                     darn_last_error());
        cr_expect_eq(part, rows, "M = %lld, N = %lld: darn_bwd_partials workspace %zu, want %zu", (long long)c[i].m,
                     (long long)c[i].n, part, rows);
    }
}

typedef darn_status (*ws_fn)(const darn_desc *, darn_backend, size_t *);

static void expect_ws_fail(ws_fn fn, const char *fname, const darn_desc *d, darn_backend be, darn_status want,
                           const char *id, const char *what)
{
    size_t bytes;
    memset(&bytes, (int)SUP_SENTINEL, sizeof bytes);
    const darn_status s = fn(d, be, &bytes);
    cr_expect_eq(s, want, "%s %s: status %d (%s), want %d", fname, what, (int)s, darn_status_string(s), (int)want);
    const char *msg = darn_last_error();
    cr_expect(msg[0] != '\0', "%s %s: empty message", fname, what);
    cr_expect(names(msg, id), "%s %s: message \"%s\" does not name '%s'", fname, what, msg, id);
    cr_expect(sup_first_touched(&bytes, sizeof bytes) < 0, "%s %s: *bytes written on failure", fname, what);
}

Test(api, workspace_query_bad_inputs)
{
    const ws_fn fns[2] = {darn_fwd_workspace_size, darn_bwd_workspace_size};
    const char *names_[2] = {"fwd_workspace_size", "bwd_workspace_size"};
    for (int k = 0; k < 2; ++k) {
        darn_desc good, d;
        darn_desc_init(&good, DARN_RMSNORM, 16, 64, DARN_F16);
        expect_ws_fail(fns[k], names_[k], NULL, DARN_BACKEND_CPU, DARN_ERR_NULL_POINTER, "desc", "NULL desc");
        cr_expect_eq(fns[k](&good, DARN_BACKEND_CPU, NULL), DARN_ERR_NULL_POINTER, "%s NULL bytes", names_[k]);
        cr_expect(names(darn_last_error(), "bytes"), "%s: message \"%s\" does not name bytes", names_[k],
                  darn_last_error());
        d = good; d.cols = 0;
        expect_ws_fail(fns[k], names_[k], &d, DARN_BACKEND_CPU, DARN_ERR_BAD_SHAPE, "cols", "N = 0");
        d = good; d.rows = -1;
        expect_ws_fail(fns[k], names_[k], &d, DARN_BACKEND_CPU, DARN_ERR_BAD_SHAPE, "rows", "M < 0");
        d = good; d.rows = INT64_C(1) << 40; d.cols = INT64_C(1) << 30;
        expect_ws_fail(fns[k], names_[k], &d, DARN_BACKEND_CPU, DARN_ERR_OVERFLOW, "rows", "M*N overflow");
        d = good; d.eps = 0.0f;
        expect_ws_fail(fns[k], names_[k], &d, DARN_BACKEND_CPU, DARN_ERR_BAD_EPS, "eps", "eps = 0");
        d = good; d.dropout_p = 2.0;
        expect_ws_fail(fns[k], names_[k], &d, DARN_BACKEND_CPU, DARN_ERR_BAD_DROPOUT, "dropout_p", "p = 2");
        d = good; d.x_dtype = (darn_dtype)7;
        expect_ws_fail(fns[k], names_[k], &d, DARN_BACKEND_CPU, DARN_ERR_BAD_ENUM, "x_dtype", "bad x dtype");
        d = good; d.norm = (darn_norm)2;
        expect_ws_fail(fns[k], names_[k], &d, DARN_BACKEND_CPU, DARN_ERR_BAD_ENUM, "norm", "bad norm");
        d = good; d.flags = 1u << 8;
        expect_ws_fail(fns[k], names_[k], &d, DARN_BACKEND_CPU, DARN_ERR_BAD_ENUM, "flags", "bad flag");
        expect_ws_fail(fns[k], names_[k], &good, (darn_backend)7, DARN_ERR_BAD_ENUM, "backend", "bad backend");
        if (!darn_backend_available(DARN_BACKEND_GPU))
            expect_ws_fail(fns[k], names_[k], &good, DARN_BACKEND_GPU, DARN_ERR_BACKEND_UNAVAILABLE, "GPU",
                           "GPU backend");
    }
}

/* ---- forward: every bad input --------------------------------------------------------------------- */

#define ALL_FLAGS (DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS | DARN_FLAG_HAS_ROWSCALE)

Test(fwd_errors, null_pointers)
{
    fx F;
    fx_init(&F, DARN_LAYERNORM, DARN_F16, ALL_FLAGS);
    darn_fwd_tensors t;
    expect_fwd_fail(&F, NULL, &F.f, DARN_ERR_NULL_POINTER, "desc", "NULL desc");
    expect_fwd_fail(&F, &F.d, NULL, DARN_ERR_NULL_POINTER, "tensors", "NULL tensors");
    t = F.f; t.x = NULL;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_NULL_POINTER, "x", "NULL x");
    t = F.f; t.weight = NULL;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_NULL_POINTER, "weight", "NULL weight");
    t = F.f; t.out = NULL;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_NULL_POINTER, "out", "NULL out");
    t = F.f; t.residual = NULL;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_NULL_POINTER, "residual", "NULL residual with HAS_RESIDUAL");
    t = F.f; t.bias = NULL;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_NULL_POINTER, "bias", "NULL bias with HAS_BIAS");
    t = F.f; t.rowscale = NULL;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_NULL_POINTER, "rowscale", "NULL rowscale with HAS_ROWSCALE");
    darn_desc d = F.d;
    const uint64_t s = 5;
    d.rng_seed_ptr = &s;
    expect_fwd_fail(&F, &d, &F.f, DARN_ERR_NULL_POINTER, "rng_offset_ptr", "rng_seed_ptr without rng_offset_ptr");
    d = F.d;
    d.rng_offset_ptr = &s;
    expect_fwd_fail(&F, &d, &F.f, DARN_ERR_NULL_POINTER, "rng_seed_ptr", "rng_offset_ptr without rng_seed_ptr");
    fx_free(&F);
}

Test(fwd_errors, shapes_and_strides)
{
    fx F;
    fx_init(&F, DARN_RMSNORM, DARN_F16, ALL_FLAGS);
    darn_desc d;
    darn_fwd_tensors t;
    d = F.d; d.cols = 0;
    expect_fwd_fail(&F, &d, &F.f, DARN_ERR_BAD_SHAPE, "cols", "N = 0");
    d = F.d; d.cols = -3;
    expect_fwd_fail(&F, &d, &F.f, DARN_ERR_BAD_SHAPE, "cols", "N < 0");
    d = F.d; d.rows = -1;
    expect_fwd_fail(&F, &d, &F.f, DARN_ERR_BAD_SHAPE, "rows", "M < 0");
    d = F.d; d.rows = INT64_C(1) << 40; d.cols = INT64_C(1) << 30;
    expect_fwd_fail(&F, &d, &F.f, DARN_ERR_OVERFLOW, "rows", "M * N overflows");
    d = F.d; d.rows = INT64_MAX; d.cols = 2;
    expect_fwd_fail(&F, &d, &F.f, DARN_ERR_OVERFLOW, "rows", "M * N overflows (INT64_MAX * 2)");

    static const char *ids[4] = {"x", "residual", "out", "residual_out"};
    for (int k = 0; k < 4; ++k) {
        const int64_t bad[3] = {N - 1, -1, -N};
        for (int j = 0; j < 3; ++j) {
            char what[96];
            snprintf(what, sizeof what, "%s stride %lld", ids[k], (long long)bad[j]);
            t = F.f;
            int64_t *sp = k == 0 ? &t.x_stride : k == 1 ? &t.residual_stride : k == 2 ? &t.out_stride
                                                                                   : &t.residual_out_stride;
            *sp = bad[j];
            expect_fwd_fail(&F, &F.d, &t, DARN_ERR_BAD_STRIDE, ids[k], what);
        }
        /* (M - 1) * stride + N overflows int64 while M * N does not */
        d = F.d; d.rows = INT64_C(1) << 20; d.cols = 8;
        t = F.f;
        int64_t *sp = k == 0 ? &t.x_stride : k == 1 ? &t.residual_stride : k == 2 ? &t.out_stride
                                                                               : &t.residual_out_stride;
        *sp = INT64_C(1) << 50;
        char what[96];
        snprintf(what, sizeof what, "%s (M-1)*stride+N overflow", ids[k]);
        expect_fwd_fail(&F, &d, &t, DARN_ERR_OVERFLOW, ids[k], what);
    }
    fx_free(&F);
}

Test(fwd_errors, scalars_and_enums)
{
    fx F;
    fx_init(&F, DARN_LAYERNORM, DARN_BF16, ALL_FLAGS);
    darn_desc d;
    const double bad_p[] = {-1e-9, -1.0, NAN, 1.0000001, 2.0, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad_p / sizeof bad_p[0]; ++i) {
        char what[64];
        snprintf(what, sizeof what, "p = %g", bad_p[i]);
        d = F.d; d.dropout_p = bad_p[i];
        expect_fwd_fail(&F, &d, &F.f, DARN_ERR_BAD_DROPOUT, "dropout_p", what);
    }
    const float bad_eps[] = {0.0f, -0.0f, -1e-6f, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad_eps / sizeof bad_eps[0]; ++i) {
        char what[64];
        snprintf(what, sizeof what, "eps = %g", (double)bad_eps[i]);
        d = F.d; d.eps = bad_eps[i];
        expect_fwd_fail(&F, &d, &F.f, DARN_ERR_BAD_EPS, "eps", what);
    }
    d = F.d; d.norm = (darn_norm)2;
    expect_fwd_fail(&F, &d, &F.f, DARN_ERR_BAD_ENUM, "norm", "norm = 2");
    d = F.d; d.norm = (darn_norm)-1;
    expect_fwd_fail(&F, &d, &F.f, DARN_ERR_BAD_ENUM, "norm", "norm = -1");
    static const char *dt_ids[5] = {"x_dtype", "residual_dtype", "weight_dtype", "bias_dtype", "out_dtype"};
    for (int k = 0; k < 5; ++k) {
        d = F.d;
        darn_dtype *p = k == 0 ? &d.x_dtype : k == 1 ? &d.residual_dtype : k == 2 ? &d.weight_dtype
                                 : k == 3 ? &d.bias_dtype : &d.out_dtype;
        *p = (darn_dtype)7; /* 3 ... 6 are the fp8 dtypes, 255 DARN_DTYPE_SAME_AS_OUT */
        expect_fwd_fail(&F, &d, &F.f, DARN_ERR_BAD_ENUM, dt_ids[k], dt_ids[k]);
        *p = DARN_DTYPE_SAME_AS_OUT;
        expect_fwd_fail(&F, &d, &F.f, DARN_ERR_BAD_ENUM, dt_ids[k], dt_ids[k]);
    }
    const uint32_t bad_flags[] = {1u << 8, 1u << 31, DARN_FLAGS_ALL + 1};
    for (size_t i = 0; i < 3; ++i) {
        d = F.d; d.flags |= bad_flags[i];
        char what[64];
        snprintf(what, sizeof what, "flags 0x%x", d.flags);
        expect_fwd_fail(&F, &d, &F.f, DARN_ERR_BAD_ENUM, "flags", what);
    }
    fx_reset(&F);
    const darn_status s = darn_fwd(&F.d, &F.f, F.ws, F.ws_bytes, (darn_backend)9, NULL);
    check_failure(&F, s, DARN_ERR_BAD_ENUM, "backend", "backend 9");
    if (!darn_backend_available(DARN_BACKEND_GPU)) {
        fx_reset(&F);
        const darn_status g = darn_fwd(&F.d, &F.f, F.ws, F.ws_bytes, DARN_BACKEND_GPU, NULL);
        check_failure(&F, g, DARN_ERR_BACKEND_UNAVAILABLE, "GPU", "GPU backend not built");
    }
    fx_free(&F);
}

/* Optional inputs/outputs that do not fit the descriptor. The header says mean is LayerNorm only; the
 * library rejects it for RMSNorm with DARN_ERR_UNSUPPORTED (as for a residual/bias/rowscale pointer
 * given without its flag). */
Test(fwd_errors, pointers_without_their_option)
{
    fx F;
    fx_init(&F, DARN_RMSNORM, DARN_F16, 0);
    darn_fwd_tensors t;
    t = F.f; t.mean = (float *)(void *)reg(&F, R_MEAN);
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_UNSUPPORTED, "mean", "mean requested for RMSNorm");
    t = F.f; t.residual = reg(&F, R_RES);
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_UNSUPPORTED, "residual", "residual without HAS_RESIDUAL");
    t = F.f; t.bias = reg(&F, R_B);
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_UNSUPPORTED, "bias", "bias without HAS_BIAS");
    t = F.f; t.rowscale = (const float *)(const void *)reg(&F, R_ROWSCALE);
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_UNSUPPORTED, "rowscale", "rowscale without HAS_ROWSCALE");
    fx_free(&F);
}

Test(fwd_errors, aliasing)
{
    fx F;
    fx_init(&F, DARN_LAYERNORM, DARN_F16, ALL_FLAGS);
    darn_fwd_tensors t;
    t = F.f; t.out = reg(&F, R_RES) + 2; /* partial overlap with the residual, element aligned */
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "out", "out overlaps residual partially");
    t = F.f; t.out = reg(&F, R_X) + 2 * N; /* x shifted by one row */
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "out", "out overlaps x shifted by a row");
    t = F.f; t.rstd = (float *)(void *)(reg(&F, R_OUT) + 8);
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "rstd", "rstd overlaps out");
    t = F.f; t.mean = t.rstd + 1;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "mean", "mean overlaps rstd");
    t = F.f; t.mask = reg(&F, R_RESOUT) + 2 * N * (M - 1);
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "mask", "mask overlaps residual_out's last row");
    t = F.f; t.residual_out = reg(&F, R_OUT);
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "residual_out", "residual_out == out");
    t = F.f; t.out = (void *)(uintptr_t)t.weight;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "out", "out overlaps weight");
    t = F.f; t.rstd = (float *)(uintptr_t)t.rowscale;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "rstd", "rstd == rowscale");
    t = F.f; t.residual_out = (void *)(uintptr_t)t.x;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "residual_out", "residual_out == x (not an allowed pair)");
    t = F.f; t.out = (void *)(uintptr_t)t.residual;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "out", "out == residual (not an allowed pair)");
    /* in place with a different stride */
    t = F.f; t.out = (void *)(uintptr_t)t.x; t.x_stride = N; t.out_stride = N + 2;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "out", "out == x, different stride");
    t = F.f; t.residual_out = (void *)(uintptr_t)t.residual; t.residual_out_stride = N + 8;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "residual_out", "residual_out == residual, different stride");
    /* in place with a different dtype */
    darn_desc d = F.d;
    d.out_dtype = DARN_F32;
    t = F.f; t.out = (void *)(uintptr_t)t.x;
    expect_fwd_fail(&F, &d, &t, DARN_ERR_ALIASING, "out", "out == x, f32 out over f16 x");
    d = F.d;
    d.flags |= DARN_FLAG_RESIDUAL_IN_FP32;
    t = F.f; t.residual_out = (void *)(uintptr_t)t.residual;
    expect_fwd_fail(&F, &d, &t, DARN_ERR_ALIASING, "residual_out", "residual_out (f32) == residual (f16)");
    fx_free(&F);
}

Test(fwd_errors, misaligned)
{
    fx F;
    fx_init(&F, DARN_LAYERNORM, DARN_F16, ALL_FLAGS);
    darn_fwd_tensors t;
    t = F.f; t.x = reg(&F, R_X) + 1;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_MISALIGNED, "x", "odd f16 x");
    t = F.f; t.residual = reg(&F, R_RES) + 1;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_MISALIGNED, "residual", "odd f16 residual");
    t = F.f; t.out = reg(&F, R_OUT) + 1;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_MISALIGNED, "out", "odd f16 out");
    t = F.f; t.weight = reg(&F, R_W) + 1;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_MISALIGNED, "weight", "odd f16 weight");
    t = F.f; t.bias = reg(&F, R_B) + 3;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_MISALIGNED, "bias", "odd f16 bias");
    t = F.f; t.rstd = (float *)(void *)(reg(&F, R_RSTD) + 2);
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_MISALIGNED, "rstd", "rstd % 4 == 2");
    t = F.f; t.mean = (float *)(void *)(reg(&F, R_MEAN) + 1);
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_MISALIGNED, "mean", "mean % 4 == 1");
    t = F.f; t.rowscale = (const float *)(const void *)(reg(&F, R_ROWSCALE) + 2);
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_MISALIGNED, "rowscale", "rowscale % 4 == 2");
    darn_desc d = F.d;
    d.out_dtype = DARN_F32;
    t = F.f; t.out = reg(&F, R_OUT) + 2;
    expect_fwd_fail(&F, &d, &t, DARN_ERR_MISALIGNED, "out", "f32 out % 4 == 2");
    d = F.d;
    d.flags |= DARN_FLAG_RESIDUAL_IN_FP32;
    t = F.f; t.residual_out = reg(&F, R_RESOUT) + 6;
    expect_fwd_fail(&F, &d, &t, DARN_ERR_MISALIGNED, "residual_out", "f32 residual_out % 4 == 2");
    fx_free(&F);
}

/* ---- forward: what succeeds ------------------------------------------------------------------------ */

static darn_status run_fwd(fx *F, const darn_desc *d, const darn_fwd_tensors *t)
{
    return darn_fwd(d, t, F->ws, F->ws_bytes, DARN_BACKEND_CPU, NULL);
}

Test(fwd_ok, m_zero_is_a_noop)
{
    fx F;
    fx_init(&F, DARN_LAYERNORM, DARN_F16, ALL_FLAGS);
    fx_reset(&F);
    darn_desc d = F.d;
    d.rows = 0;
    cr_assert_eq(run_fwd(&F, &d, &F.f), DARN_OK, "M = 0: %s", darn_last_error());
    cr_expect_str_eq(darn_last_error(), "");
    cr_expect_lt(sup_first_touched(F.arena, ARENA_BYTES), 0, "M = 0 forward wrote a byte");
    cr_expect_lt(sup_first_touched(F.ws, WS_BYTES), 0, "M = 0 forward wrote workspace");
    fx_free(&F);
}

Test(fwd_ok, last_error_cleared_by_success)
{
    fx F;
    fx_init(&F, DARN_RMSNORM, DARN_F32, 0);
    fx_reset(&F);
    fx_fill(&F, 11);
    cr_assert_neq(darn_fwd(NULL, &F.f, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_OK);
    cr_assert_neq(darn_last_error()[0], '\0');
    cr_assert_eq(run_fwd(&F, &F.d, &F.f), DARN_OK, "%s", darn_last_error());
    cr_expect_str_eq(darn_last_error(), "", "last error not cleared after a successful darn_fwd");
    cr_assert_neq(darn_bwd(&F.d, NULL, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_OK);
    size_t need;
    cr_assert_eq(darn_bwd_workspace_size(&F.d, DARN_BACKEND_CPU, &need), DARN_OK);
    cr_expect_str_eq(darn_last_error(), "", "last error not cleared after a successful workspace query");
    fx_free(&F);
}

/* Runs the forward out of place into *_ref copies, then in place, and compares all outputs. */
static void check_fwd_in_place(darn_dtype dt, uint32_t flags, int which, const char *what)
{
    fx F;
    fx_init(&F, DARN_LAYERNORM, dt, flags);
    fx_reset(&F);
    fx_fill(&F, 77 + (uint64_t)which);
    const darn_dtype ro = darn_residual_out_dtype(&F.d);
    cr_assert_eq(run_fwd(&F, &F.d, &F.f), DARN_OK, "%s out of place: %s", what, darn_last_error());
    /* keep the reference results */
    unsigned char *ref = sup_alloc(ARENA_BYTES, 64);
    memcpy(ref, F.arena, ARENA_BYTES);
    darn_fwd_tensors t = F.f;
    if (which == 0) { /* out == x: copy x into the out region and point x there */
        memcpy(reg(&F, R_OUT), reg(&F, R_X), REGION);
        t.x = t.out;
        t.x_stride = 0;   /* 0 means N: the same stride as out's explicit N */
        t.out_stride = N;
    } else { /* residual_out == residual */
        memcpy(reg(&F, R_RESOUT), reg(&F, R_RES), REGION);
        t.residual = t.residual_out;
    }
    sup_sentinel_fill(reg(&F, R_MASK), REGION);
    sup_sentinel_fill(reg(&F, R_RSTD), REGION);
    sup_sentinel_fill(reg(&F, R_MEAN), REGION);
    if (which == 0) sup_sentinel_fill(reg(&F, R_RESOUT), REGION);
    else sup_sentinel_fill(reg(&F, R_OUT), REGION);
    cr_assert_eq(run_fwd(&F, &F.d, &t), DARN_OK, "%s in place: %s", what, darn_last_error());
    cr_expect_lt(sup_compare(reg(&F, R_OUT), 0, ref + (size_t)R_OUT * REGION, 0, F.d.out_dtype, M, N, 0), 0,
                 "%s: out differs from out-of-place", what);
    cr_expect_lt(sup_compare(reg(&F, R_RESOUT), 0, ref + (size_t)R_RESOUT * REGION, 0, ro, M, N, 0), 0,
                 "%s: residual_out differs from out-of-place", what);
    cr_expect_eq(memcmp(reg(&F, R_MASK), ref + (size_t)R_MASK * REGION, (size_t)(M * darn_mask_row_bytes(N))), 0,
                 "%s: mask differs", what);
    cr_expect_eq(memcmp(reg(&F, R_RSTD), ref + (size_t)R_RSTD * REGION, M * 4), 0, "%s: rstd differs", what);
    cr_expect_eq(memcmp(reg(&F, R_MEAN), ref + (size_t)R_MEAN * REGION, M * 4), 0, "%s: mean differs", what);
    sup_free(ref);
    fx_free(&F);
}

Test(fwd_ok, in_place_pairs_match_out_of_place)
{
    const darn_dtype dts[3] = {DARN_F32, DARN_F16, DARN_BF16};
    for (int k = 0; k < 3; ++k) {
        char what[64];
        snprintf(what, sizeof what, "out == x, dtype %d", (int)dts[k]);
        check_fwd_in_place(dts[k], ALL_FLAGS, 0, what);
        snprintf(what, sizeof what, "out == x, no residual, dtype %d", (int)dts[k]);
        check_fwd_in_place(dts[k], DARN_FLAG_HAS_BIAS, 0, what);
        snprintf(what, sizeof what, "residual_out == residual, dtype %d", (int)dts[k]);
        check_fwd_in_place(dts[k], ALL_FLAGS, 1, what);
    }
}

/* ---- backward ------------------------------------------------------------------------------------ */

static void fx_forward_for_bwd(fx *F, uint64_t seed)
{
    fx_reset(F);
    fx_fill(F, seed);
    cr_assert_eq(run_fwd(F, &F->d, &F->f), DARN_OK, "forward for the backward: %s", darn_last_error());
}

Test(bwd_errors, null_pointers_and_options)
{
    fx F;
    fx_init(&F, DARN_LAYERNORM, DARN_F16, ALL_FLAGS);
    darn_bwd_tensors t;
    expect_bwd_fail(&F, NULL, &F.b, DARN_ERR_NULL_POINTER, "desc", "NULL desc");
    expect_bwd_fail(&F, &F.d, NULL, DARN_ERR_NULL_POINTER, "tensors", "NULL tensors");
    static const char *ids[] = {"dy", "h", "weight", "rstd", "mean", "dx", "dweight", "dbias", "rowscale"};
    for (int k = 0; k < 9; ++k) {
        t = F.b;
        switch (k) {
        case 0: t.dy = NULL; break;
        case 1: t.h = NULL; break;
        case 2: t.weight = NULL; break;
        case 3: t.rstd = NULL; break;
        case 4: t.mean = NULL; break; /* LayerNorm */
        case 5: t.dx = NULL; break;
        case 6: t.dweight = NULL; break;
        case 7: t.dbias = NULL; break; /* HAS_BIAS */
        default: t.rowscale = NULL; break; /* HAS_ROWSCALE */
        }
        char what[64];
        snprintf(what, sizeof what, "NULL %s", ids[k]);
        expect_bwd_fail(&F, &F.d, &t, DARN_ERR_NULL_POINTER, ids[k], what);
    }
    darn_desc d = F.d;
    const uint64_t s = 1;
    d.rng_seed_ptr = &s;
    expect_bwd_fail(&F, &d, &F.b, DARN_ERR_NULL_POINTER, "rng_offset_ptr", "rng_seed_ptr alone");
    fx_free(&F);

    fx_init(&F, DARN_RMSNORM, DARN_F16, 0);
    t = F.b; t.dresidual = reg(&F, R_DRES);
    expect_bwd_fail(&F, &F.d, &t, DARN_ERR_UNSUPPORTED, "dresidual", "dresidual without HAS_RESIDUAL");
    t = F.b; t.dbias = reg(&F, R_DB);
    expect_bwd_fail(&F, &F.d, &t, DARN_ERR_UNSUPPORTED, "dbias", "dbias without HAS_BIAS");
    t = F.b; t.rowscale = (const float *)(const void *)reg(&F, R_ROWSCALE);
    expect_bwd_fail(&F, &F.d, &t, DARN_ERR_UNSUPPORTED, "rowscale", "rowscale without HAS_ROWSCALE");
    fx_free(&F);
}

Test(bwd_errors, shapes_scalars_enums)
{
    fx F;
    fx_init(&F, DARN_RMSNORM, DARN_BF16, ALL_FLAGS);
    darn_desc d;
    darn_bwd_tensors t;
    d = F.d; d.cols = 0;
    expect_bwd_fail(&F, &d, &F.b, DARN_ERR_BAD_SHAPE, "cols", "N = 0");
    d = F.d; d.cols = -1;
    expect_bwd_fail(&F, &d, &F.b, DARN_ERR_BAD_SHAPE, "cols", "N < 0");
    d = F.d; d.rows = -5;
    expect_bwd_fail(&F, &d, &F.b, DARN_ERR_BAD_SHAPE, "rows", "M < 0");
    d = F.d; d.rows = INT64_C(1) << 40; d.cols = INT64_C(1) << 30;
    expect_bwd_fail(&F, &d, &F.b, DARN_ERR_OVERFLOW, "rows", "M * N overflows");
    d = F.d; d.dropout_p = NAN;
    expect_bwd_fail(&F, &d, &F.b, DARN_ERR_BAD_DROPOUT, "dropout_p", "p NaN");
    d = F.d; d.dropout_p = -0.5;
    expect_bwd_fail(&F, &d, &F.b, DARN_ERR_BAD_DROPOUT, "dropout_p", "p < 0");
    d = F.d; d.dropout_p = 1.5;
    expect_bwd_fail(&F, &d, &F.b, DARN_ERR_BAD_DROPOUT, "dropout_p", "p > 1");
    d = F.d; d.eps = NAN;
    expect_bwd_fail(&F, &d, &F.b, DARN_ERR_BAD_EPS, "eps", "eps NaN");
    d = F.d; d.eps = INFINITY;
    expect_bwd_fail(&F, &d, &F.b, DARN_ERR_BAD_EPS, "eps", "eps inf");
    d = F.d; d.eps = -1.0f;
    expect_bwd_fail(&F, &d, &F.b, DARN_ERR_BAD_EPS, "eps", "eps < 0");
    d = F.d; d.out_dtype = (darn_dtype)7;
    expect_bwd_fail(&F, &d, &F.b, DARN_ERR_BAD_ENUM, "out_dtype", "bad out dtype");
    d = F.d; d.norm = (darn_norm)5;
    expect_bwd_fail(&F, &d, &F.b, DARN_ERR_BAD_ENUM, "norm", "bad norm");
    d = F.d; d.flags |= 1u << 9;
    expect_bwd_fail(&F, &d, &F.b, DARN_ERR_BAD_ENUM, "flags", "bad flag");
    static const char *ids[5] = {"dy", "h", "dresidual_out", "dx", "dresidual"};
    for (int k = 0; k < 5; ++k) {
        int64_t *sp;
        const int64_t bad[2] = {N - 1, -N};
        for (int j = 0; j < 2; ++j) {
            t = F.b;
            sp = k == 0 ? &t.dy_stride : k == 1 ? &t.h_stride : k == 2 ? &t.dresidual_out_stride
                                     : k == 3 ? &t.dx_stride : &t.dresidual_stride;
            *sp = bad[j];
            char what[64];
            snprintf(what, sizeof what, "%s stride %lld", ids[k], (long long)bad[j]);
            expect_bwd_fail(&F, &F.d, &t, DARN_ERR_BAD_STRIDE, ids[k], what);
        }
        d = F.d; d.rows = INT64_C(1) << 20; d.cols = 8;
        t = F.b;
        sp = k == 0 ? &t.dy_stride : k == 1 ? &t.h_stride : k == 2 ? &t.dresidual_out_stride
                                 : k == 3 ? &t.dx_stride : &t.dresidual_stride;
        *sp = INT64_C(1) << 50;
        char what[64];
        snprintf(what, sizeof what, "%s (M-1)*stride+N overflow", ids[k]);
        expect_bwd_fail(&F, &d, &t, DARN_ERR_OVERFLOW, ids[k], what);
    }
    fx_reset(&F);
    check_failure(&F, darn_bwd(&F.d, &F.b, F.ws, F.ws_bytes, (darn_backend)3, NULL), DARN_ERR_BAD_ENUM, "backend",
                  "backend 3");
    if (!darn_backend_available(DARN_BACKEND_GPU)) {
        fx_reset(&F);
        check_failure(&F, darn_bwd(&F.d, &F.b, F.ws, F.ws_bytes, DARN_BACKEND_GPU, NULL),
                      DARN_ERR_BACKEND_UNAVAILABLE, "GPU", "GPU backend not built");
    }
    fx_free(&F);
}

Test(bwd_errors, aliasing_and_alignment)
{
    fx F;
    fx_init(&F, DARN_LAYERNORM, DARN_F16, ALL_FLAGS);
    darn_bwd_tensors t;
    t = F.b; t.dx = (void *)(uintptr_t)t.h;
    expect_bwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "dx", "dx == h");
    t = F.b; t.dx = reg(&F, R_DY) + 2;
    expect_bwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "dx", "dx overlaps dy partially");
    t = F.b; t.dresidual = reg(&F, R_DX) + 2 * N;
    expect_bwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "dresidual", "dresidual overlaps dx");
    t = F.b; t.dbias = reg(&F, R_DW) + 2;
    expect_bwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "dbias", "dbias overlaps dweight");
    t = F.b; t.dweight = (void *)(uintptr_t)t.weight;
    expect_bwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "dweight", "dweight == weight");
    t = F.b; t.dweight = (void *)(uintptr_t)t.rstd;
    expect_bwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "dweight", "dweight overlaps rstd");
    t = F.b; t.dx = (void *)(uintptr_t)t.mask;
    expect_bwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "dx", "dx overlaps mask");
    t = F.b; t.dx = (void *)(uintptr_t)t.dy; t.dx_stride = N + 1;
    expect_bwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "dx", "dx == dy, different stride");
    darn_desc d = F.d;
    d.x_dtype = DARN_F32;
    t = F.b; t.dx = (void *)(uintptr_t)t.dy;
    expect_bwd_fail(&F, &d, &t, DARN_ERR_ALIASING, "dx", "dx (f32) == dy (f16)");
    d = F.d;
    d.flags |= DARN_FLAG_RESIDUAL_IN_FP32;
    t = F.b; t.dresidual = (void *)(uintptr_t)t.dresidual_out;
    expect_bwd_fail(&F, &d, &t, DARN_ERR_ALIASING, "dresidual", "dresidual (f16) == dresidual_out (f32)");

    t = F.b; t.dy = reg(&F, R_DY) + 1;
    expect_bwd_fail(&F, &F.d, &t, DARN_ERR_MISALIGNED, "dy", "odd dy");
    t = F.b; t.h = reg(&F, R_RESOUT) + 1;
    expect_bwd_fail(&F, &F.d, &t, DARN_ERR_MISALIGNED, "h", "odd h");
    t = F.b; t.dx = reg(&F, R_DX) + 1;
    expect_bwd_fail(&F, &F.d, &t, DARN_ERR_MISALIGNED, "dx", "odd dx");
    t = F.b; t.dweight = reg(&F, R_DW) + 1;
    expect_bwd_fail(&F, &F.d, &t, DARN_ERR_MISALIGNED, "dweight", "odd dweight");
    t = F.b; t.rstd = (const float *)(const void *)(reg(&F, R_RSTD) + 2);
    expect_bwd_fail(&F, &F.d, &t, DARN_ERR_MISALIGNED, "rstd", "rstd % 4 == 2");
    t = F.b; t.mean = (const float *)(const void *)(reg(&F, R_MEAN) + 2);
    expect_bwd_fail(&F, &F.d, &t, DARN_ERR_MISALIGNED, "mean", "mean % 4 == 2");
    fx_free(&F);
}

Test(bwd_errors, workspace)
{
    fx F;
    fx_init(&F, DARN_LAYERNORM, DARN_F16, ALL_FLAGS);
    size_t need = 0;
    cr_assert_eq(darn_bwd_workspace_size(&F.d, DARN_BACKEND_CPU, &need), DARN_OK);
    cr_assert_gt(need, 0, "the CPU backward needs workspace");
    cr_assert_leq(need, WS_BYTES);
    fx_reset(&F);
    check_failure(&F, darn_bwd(&F.d, &F.b, NULL, need, DARN_BACKEND_CPU, NULL), DARN_ERR_WORKSPACE, "workspace",
                  "NULL workspace");
    fx_reset(&F);
    check_failure(&F, darn_bwd(&F.d, &F.b, F.ws, need - 1, DARN_BACKEND_CPU, NULL), DARN_ERR_WORKSPACE,
                  "workspace_bytes", "workspace one byte short");
    fx_reset(&F);
    check_failure(&F, darn_bwd(&F.d, &F.b, F.ws, 0, DARN_BACKEND_CPU, NULL), DARN_ERR_WORKSPACE, "workspace_bytes",
                  "workspace_bytes 0");
    fx_free(&F);
}

Test(bwd_ok, m_zero_zeroes_dweight_and_dbias)
{
    const darn_dtype dts[3] = {DARN_F32, DARN_F16, DARN_BF16};
    for (int k = 0; k < 3; ++k) {
        fx F;
        fx_init(&F, DARN_LAYERNORM, dts[k], ALL_FLAGS);
        fx_reset(&F);
        darn_desc d = F.d;
        d.rows = 0;
        cr_assert_eq(darn_bwd(&d, &F.b, F.ws, F.ws_bytes, DARN_BACKEND_CPU, NULL), DARN_OK, "dtype %d: %s",
                     (int)dts[k], darn_last_error());
        cr_expect_str_eq(darn_last_error(), "");
        const size_t wb = (size_t)N * darn_dtype_size(dts[k]);
        for (size_t i = 0; i < wb; ++i) {
            cr_assert_eq(reg(&F, R_DW)[i], 0, "dtype %d: dweight byte %zu not +0", (int)dts[k], i);
            cr_assert_eq(reg(&F, R_DB)[i], 0, "dtype %d: dbias byte %zu not +0", (int)dts[k], i);
        }
        /* nothing else: clear the two vectors back to sentinel and check the arena */
        sup_sentinel_fill(reg(&F, R_DW), wb);
        sup_sentinel_fill(reg(&F, R_DB), wb);
        cr_expect_lt(sup_first_touched(F.arena, ARENA_BYTES), 0, "dtype %d: M = 0 backward wrote more", (int)dts[k]);
        fx_free(&F);
    }
}

/* dx == dy and dresidual == dresidual_out give the bits of the out-of-place call. */
Test(bwd_ok, in_place_pairs_match_out_of_place)
{
    const darn_dtype dts[3] = {DARN_F32, DARN_F16, DARN_BF16};
    for (int k = 0; k < 3; ++k)
        for (int which = 0; which < 2; ++which) {
            fx F;
            fx_init(&F, DARN_LAYERNORM, dts[k], ALL_FLAGS);
            fx_forward_for_bwd(&F, 300 + (uint64_t)k);
            cr_assert_eq(darn_bwd(&F.d, &F.b, F.ws, F.ws_bytes, DARN_BACKEND_CPU, NULL), DARN_OK, "%s",
                         darn_last_error());
            unsigned char *ref = sup_alloc(ARENA_BYTES, 64);
            memcpy(ref, F.arena, ARENA_BYTES);
            darn_bwd_tensors t = F.b;
            if (which == 0) {
                memcpy(reg(&F, R_DX), reg(&F, R_DY), REGION);
                t.dy = t.dx;
                sup_sentinel_fill(reg(&F, R_DRES), REGION);
            } else {
                memcpy(reg(&F, R_DRES), reg(&F, R_DRESOUT), REGION);
                t.dresidual_out = t.dresidual;
                sup_sentinel_fill(reg(&F, R_DX), REGION);
            }
            sup_sentinel_fill(reg(&F, R_DW), REGION);
            sup_sentinel_fill(reg(&F, R_DB), REGION);
            cr_assert_eq(darn_bwd(&F.d, &t, F.ws, F.ws_bytes, DARN_BACKEND_CPU, NULL), DARN_OK,
                         "dtype %d pair %d: %s", (int)dts[k], which, darn_last_error());
            cr_expect_lt(sup_compare(reg(&F, R_DX), 0, ref + (size_t)R_DX * REGION, 0, F.d.x_dtype, M, N, 0), 0,
                         "dtype %d pair %d: dx differs", (int)dts[k], which);
            cr_expect_lt(sup_compare(reg(&F, R_DRES), 0, ref + (size_t)R_DRES * REGION, 0, F.d.residual_dtype, M, N,
                                     0),
                         0, "dtype %d pair %d: dresidual differs", (int)dts[k], which);
            cr_expect_lt(sup_compare(reg(&F, R_DW), 0, ref + (size_t)R_DW * REGION, 0, F.d.weight_dtype, 1, N, 0), 0,
                         "dtype %d pair %d: dweight differs", (int)dts[k], which);
            cr_expect_lt(sup_compare(reg(&F, R_DB), 0, ref + (size_t)R_DB * REGION, 0, F.d.bias_dtype, 1, N, 0), 0,
                         "dtype %d pair %d: dbias differs", (int)dts[k], which);
            sup_free(ref);
            fx_free(&F);
        }
}
