#define _GNU_SOURCE /* pthread_getattr_np */
/*
 * test_hardening.c — the bad inputs of issue 12 that a hostile probe found, each over one sentinel-filled
 * arena so that "a failing call writes nothing" is one byte-for-byte check of the whole arena:
 *   - rng_seed_ptr / rng_offset_ptr misaligned (DARN_ERR_MISALIGNED) or pointing into an output
 *     (DARN_ERR_ALIASING), in darn_fwd, darn_bwd and the workspace queries;
 *   - darn_residual_out_dtype(NULL) and darn_desc_init(NULL);
 *   - messages that print p and eps exactly as passed and name the function once;
 *   - overlap decided row by row: element-disjoint interleaved views pass, near misses (one element
 *     or one stride step off) fail, and a sweep compares the status with a brute-force row intersection.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <darn/darn.h>

#include "support.h"

#define M 5
#define N 40
#define REGION 2048

enum region {
    R_X, R_RES, R_ROWSCALE, R_W, R_B, R_OUT, R_RESOUT, R_MASK, R_RSTD, R_MEAN,
    R_DY, R_DRESOUT, R_DX, R_DRES, R_DW, R_DB, R_RNG, R_WS, R_COUNT
};
#define ARENA_BYTES ((size_t)R_COUNT * REGION)
#define ALL_FLAGS (DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS | DARN_FLAG_HAS_ROWSCALE)

typedef struct fx {
    darn_desc d;
    darn_fwd_tensors f;
    darn_bwd_tensors b;
    unsigned char *arena;
} fx;

static unsigned char *reg(const fx *F, int k) { return F->arena + (size_t)k * REGION; }
static void *ws(const fx *F) { return reg(F, R_WS); }

/* LayerNorm with residual, bias, rowscale, p = 0.25 and every optional tensor; the workspace is region R_WS. */
static void fx_init(fx *F, darn_dtype dt)
{
    memset(F, 0, sizeof *F);
    darn_desc_init(&F->d, DARN_LAYERNORM, M, N, dt);
    F->d.flags = ALL_FLAGS;
    F->d.dropout_p = 0.25;
    F->d.seed = 99;
    F->arena = sup_alloc(ARENA_BYTES, 64);
    F->f.x = reg(F, R_X);
    F->f.residual = reg(F, R_RES);
    F->f.rowscale = (const float *)(const void *)reg(F, R_ROWSCALE);
    F->f.weight = reg(F, R_W);
    F->f.bias = reg(F, R_B);
    F->f.out = reg(F, R_OUT);
    F->f.residual_out = reg(F, R_RESOUT);
    F->f.mask = reg(F, R_MASK);
    F->f.rstd = (float *)(void *)reg(F, R_RSTD);
    F->f.mean = (float *)(void *)reg(F, R_MEAN);
    F->b.dy = reg(F, R_DY);
    F->b.h = reg(F, R_RESOUT);
    F->b.weight = reg(F, R_W);
    F->b.rstd = F->f.rstd;
    F->b.mean = F->f.mean;
    F->b.rowscale = F->f.rowscale;
    F->b.dresidual_out = reg(F, R_DRESOUT);
    F->b.mask = reg(F, R_MASK);
    F->b.dx = reg(F, R_DX);
    F->b.dresidual = reg(F, R_DRES);
    F->b.dweight = reg(F, R_DW);
    F->b.dbias = reg(F, R_DB);
}

static void fx_free(fx *F) { sup_free(F->arena); }

static int is_ident_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* How often `id` occurs in msg as a whole identifier. */
static int count_ident(const char *msg, const char *id)
{
    const size_t n = strlen(id);
    int k = 0;
    for (const char *p = msg; (p = strstr(p, id)) != NULL; ++p)
        if ((p == msg || !is_ident_char(p[-1])) && !is_ident_char(p[n])) ++k;
    return k;
}

/* The arena is refilled with sentinels, the call runs, and it must fail with `want`, name `id` (and `id2`
 * when not NULL) and leave every arena byte (inputs, outputs, rng words, workspace) as it was. */
static void check_failure(const fx *F, darn_status got, darn_status want, const char *id, const char *id2,
                          const char *what)
{
    const char *msg = darn_last_error();
    cr_expect_eq(got, want, "%s: status %d (%s), want %s", what, (int)got, darn_status_string(got),
                 darn_status_string(want));
    cr_expect(msg[0] != '\0', "%s: darn_last_error() is empty", what);
    cr_expect(count_ident(msg, id) > 0, "%s: message \"%s\" does not name '%s'", what, msg, id);
    if (id2) cr_expect(count_ident(msg, id2) > 0, "%s: message \"%s\" does not name '%s'", what, msg, id2);
    const int64_t a = sup_first_touched(F->arena, ARENA_BYTES);
    cr_expect(a < 0, "%s: arena byte %lld (region %lld, offset %lld) was written", what, (long long)a,
              (long long)(a / REGION), (long long)(a % REGION));
}

static void expect_fwd_fail(fx *F, const darn_desc *d, const darn_fwd_tensors *t, darn_status want, const char *id,
                            const char *id2, const char *what)
{
    sup_sentinel_fill(F->arena, ARENA_BYTES);
    check_failure(F, darn_fwd(d, t, ws(F), REGION, DARN_BACKEND_CPU, NULL), want, id, id2, what);
}

static void expect_bwd_fail(fx *F, const darn_desc *d, const darn_bwd_tensors *t, darn_status want, const char *id,
                            const char *id2, const char *what)
{
    sup_sentinel_fill(F->arena, ARENA_BYTES);
    check_failure(F, darn_bwd(d, t, ws(F), REGION, DARN_BACKEND_CPU, NULL), want, id, id2, what);
}

/* ---- item 1: misaligned rng pointers ---------------------------------------------------------------- */

Test(hardening, rng_pointers_misaligned)
{
    fx F;
    fx_init(&F, DARN_F16);
    static const int offs[3] = {1, 2, 4};
    for (int which = 0; which < 2; ++which)
        for (int k = 0; k < 3; ++k) {
            const char *id = which ? "rng_offset_ptr" : "rng_seed_ptr";
            darn_desc d = F.d;
            d.rng_seed_ptr = (const uint64_t *)(const void *)(reg(&F, R_RNG) + (which ? 0 : offs[k]));
            d.rng_offset_ptr = (const uint64_t *)(const void *)(reg(&F, R_RNG) + 64 + (which ? offs[k] : 0));
            char what[96];
            snprintf(what, sizeof what, "fwd: %s misaligned by %d", id, offs[k]);
            expect_fwd_fail(&F, &d, &F.f, DARN_ERR_MISALIGNED, id, NULL, what);
            snprintf(what, sizeof what, "bwd: %s misaligned by %d", id, offs[k]);
            expect_bwd_fail(&F, &d, &F.b, DARN_ERR_MISALIGNED, id, NULL, what);
            /* the workspace queries validate the same descriptor */
            size_t bytes;
            memset(&bytes, (int)SUP_SENTINEL, sizeof bytes);
            cr_expect_eq(darn_fwd_workspace_size(&d, DARN_BACKEND_CPU, &bytes), DARN_ERR_MISALIGNED, "%s (fwd query)",
                         what);
            cr_expect_eq(darn_bwd_workspace_size(&d, DARN_BACKEND_CPU, &bytes), DARN_ERR_MISALIGNED, "%s (bwd query)",
                         what);
            cr_expect(count_ident(darn_last_error(), id) > 0, "%s: \"%s\"", what, darn_last_error());
            cr_expect(sup_first_touched(&bytes, sizeof bytes) < 0, "%s: *bytes written", what);
        }
    /* M = 0 and p = 0 change nothing: the descriptor itself is bad. */
    darn_desc d = F.d;
    d.rows = 0;
    d.dropout_p = 0.0;
    d.rng_seed_ptr = (const uint64_t *)(const void *)(reg(&F, R_RNG) + 4);
    d.rng_offset_ptr = (const uint64_t *)(const void *)(reg(&F, R_RNG) + 64);
    expect_fwd_fail(&F, &d, &F.f, DARN_ERR_MISALIGNED, "rng_seed_ptr", NULL, "fwd M = 0, p = 0");
    expect_bwd_fail(&F, &d, &F.b, DARN_ERR_MISALIGNED, "rng_seed_ptr", NULL, "bwd M = 0, p = 0");
    fx_free(&F);
}

/* ---- item 2: rng pointers in the overlap check ----------------------------------------------------- */

Test(hardening, rng_pointers_into_outputs)
{
    fx F;
    fx_init(&F, DARN_F32);
    static const struct { int region; const char *id; int bwd; } outs[] = {
        {R_OUT, "out", 0},   {R_RESOUT, "residual_out", 0}, {R_MASK, "mask", 0},   {R_RSTD, "rstd", 0},
        {R_MEAN, "mean", 0}, {R_DX, "dx", 1},               {R_DRES, "dresidual", 1}, {R_DW, "dweight", 1},
        {R_DB, "dbias", 1},  {R_WS, "workspace", 1}};
    for (size_t k = 0; k < sizeof outs / sizeof outs[0]; ++k)
        for (int which = 0; which < 2; ++which) {
            const char *id = which ? "rng_offset_ptr" : "rng_seed_ptr";
            const uint64_t *into = (const uint64_t *)(const void *)(reg(&F, outs[k].region) + 8);
            const uint64_t *own = (const uint64_t *)(const void *)(reg(&F, R_RNG) + 8 * which);
            darn_desc d = F.d;
            d.rng_seed_ptr = which ? own : into;
            d.rng_offset_ptr = which ? into : own;
            char what[96];
            snprintf(what, sizeof what, "%s into %s", id, outs[k].id);
            if (outs[k].bwd) expect_bwd_fail(&F, &d, &F.b, DARN_ERR_ALIASING, id, outs[k].id, what);
            else expect_fwd_fail(&F, &d, &F.f, DARN_ERR_ALIASING, id, outs[k].id, what);
        }
    /* the last 8 bytes of out (f32, 5 x 40): overlap; the 8 bytes right after it: none */
    darn_desc d = F.d;
    d.rng_seed_ptr = (const uint64_t *)(const void *)(reg(&F, R_OUT) + 4 * M * N - 8);
    d.rng_offset_ptr = (const uint64_t *)(const void *)(reg(&F, R_RNG));
    expect_fwd_fail(&F, &d, &F.f, DARN_ERR_ALIASING, "rng_seed_ptr", "out", "rng_seed_ptr on out's last 8 bytes");
    d.rng_seed_ptr = (const uint64_t *)(const void *)(reg(&F, R_OUT) + 4 * M * N);
    sup_sentinel_fill(F.arena, ARENA_BYTES);
    cr_expect_eq(darn_fwd(&d, &F.f, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_OK, "rng_seed_ptr right after out: %s",
                 darn_last_error());
    fx_free(&F);
}

/* An rng pointer into an input is fine: it reads the same words as a pointer to a copy of them. */
Test(hardening, rng_pointers_into_inputs)
{
    fx F;
    fx_init(&F, DARN_F32);
    sup_rng g = sup_rng_make(5);
    sup_fill_uniform(reg(&F, R_X), DARN_F32, M, N, 0, &g, -2.0f, 2.0f);
    sup_fill_uniform(reg(&F, R_RES), DARN_F32, M, N, 0, &g, -2.0f, 2.0f);
    sup_fill_uniform(reg(&F, R_W), DARN_F32, 1, N, 0, &g, 0.5f, 1.5f);
    uint64_t words[2];
    memcpy(words, reg(&F, R_X) + 16, sizeof words);
    darn_desc d = F.d;
    d.rng_seed_ptr = (const uint64_t *)(const void *)(reg(&F, R_X) + 16);
    d.rng_offset_ptr = (const uint64_t *)(const void *)(reg(&F, R_W) + 24);
    memcpy(&words[1], reg(&F, R_W) + 24, 8);
    cr_assert_eq(darn_fwd(&d, &F.f, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_OK, "%s", darn_last_error());
    unsigned char *ref = sup_alloc(ARENA_BYTES, 64);
    memcpy(ref, F.arena, ARENA_BYTES);
    d.rng_seed_ptr = &words[0];
    d.rng_offset_ptr = &words[1];
    sup_sentinel_fill(reg(&F, R_OUT), (size_t)(R_MEAN + 1 - R_OUT) * REGION);
    cr_assert_eq(darn_fwd(&d, &F.f, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_OK, "%s", darn_last_error());
    cr_expect_eq(memcmp(ref, F.arena, ARENA_BYTES), 0, "rng words read in place differ from a copy of them");
    sup_free(ref);
    fx_free(&F);
}

/* ---- item 4: NULL descriptors in the two helpers ---------------------------------------------------- */

Test(hardening, null_desc_helpers)
{
    darn_desc_init(NULL, DARN_RMSNORM, 4, 8, DARN_F32); /* documented no-op */
    const darn_dtype r = darn_residual_out_dtype(NULL);
    cr_expect_eq((int)r, -1, "darn_residual_out_dtype(NULL) = %d, documented -1", (int)r);
    cr_expect_eq(darn_dtype_size(r), 0, "darn_residual_out_dtype(NULL) is no dtype");
}

/* ---- item 5: messages ------------------------------------------------------------------------------ */

typedef darn_status (*call_fn)(const fx *F, const darn_desc *d);
static darn_status call_fwd(const fx *F, const darn_desc *d)
{
    return darn_fwd(d, &F->f, ws(F), REGION, DARN_BACKEND_CPU, NULL);
}
static darn_status call_bwd(const fx *F, const darn_desc *d)
{
    return darn_bwd(d, &F->b, ws(F), REGION, DARN_BACKEND_CPU, NULL);
}
static darn_status call_fwd_ws(const fx *F, const darn_desc *d)
{
    (void)F;
    size_t b;
    return darn_fwd_workspace_size(d, DARN_BACKEND_CPU, &b);
}
static darn_status call_bwd_ws(const fx *F, const darn_desc *d)
{
    (void)F;
    size_t b;
    return darn_bwd_workspace_size(d, DARN_BACKEND_CPU, &b);
}
static const struct { call_fn fn; const char *name; } calls[4] = {
    {call_fwd, "darn_fwd"}, {call_bwd, "darn_bwd"},
    {call_fwd_ws, "darn_fwd_workspace_size"}, {call_bwd_ws, "darn_bwd_workspace_size"}};

/* The text after "desc-><field> = " in msg, or NULL. */
static const char *value_after(const char *msg, const char *field)
{
    char key[64];
    snprintf(key, sizeof key, "desc->%s = ", field);
    const char *p = strstr(msg, key);
    return p ? p + strlen(key) : NULL;
}

Test(hardening, messages_print_p_as_passed_and_name_the_function_once)
{
    fx F;
    fx_init(&F, DARN_F16);
    const double bad[] = {1.0000000000000002, 1.0 + 0x1p-40, -5e-324, -0.1, -1e-300, 1e300, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i)
        for (int c = 0; c < 4; ++c) {
            darn_desc d = F.d;
            d.dropout_p = bad[i];
            sup_sentinel_fill(F.arena, ARENA_BYTES);
            cr_expect_eq(calls[c].fn(&F, &d), DARN_ERR_BAD_DROPOUT, "%s p = %a", calls[c].name, bad[i]);
            const char *msg = darn_last_error();
            cr_expect_eq(count_ident(msg, calls[c].name), 1, "%s p = %a: \"%s\" names the function %d times",
                         calls[c].name, bad[i], msg, count_ident(msg, calls[c].name));
            const char *v = value_after(msg, "dropout_p");
            cr_assert(v != NULL, "%s: \"%s\" lacks \"desc->dropout_p = \"", calls[c].name, msg);
            const double back = strtod(v, NULL);
            cr_expect(memcmp(&back, &bad[i], sizeof back) == 0, "%s: \"%s\" reads back as %a, passed %a",
                      calls[c].name, msg, back, bad[i]);
            cr_expect(sup_first_touched(F.arena, ARENA_BYTES) < 0, "%s p = %a wrote", calls[c].name, bad[i]);
        }
    darn_desc d = F.d;
    d.dropout_p = NAN;
    cr_expect_eq(call_fwd(&F, &d), DARN_ERR_BAD_DROPOUT);
    const char *v = value_after(darn_last_error(), "dropout_p");
    cr_expect(v && isnan(strtod(v, NULL)), "p = NaN: \"%s\"", darn_last_error());
    fx_free(&F);
}

Test(hardening, messages_print_eps_as_passed)
{
    fx F;
    fx_init(&F, DARN_BF16);
    const float bad[] = {-0.0f, -1.00000012e-5f, -0x1.fffffep+127f, -FLT_MIN / 3.0f, -0x1.000002p-20f, INFINITY,
                         -INFINITY, 0.0f};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i)
        for (int c = 0; c < 4; ++c) {
            darn_desc d = F.d;
            d.eps = bad[i];
            cr_expect_eq(calls[c].fn(&F, &d), DARN_ERR_BAD_EPS, "%s eps = %a", calls[c].name, (double)bad[i]);
            const char *msg = darn_last_error();
            cr_expect_eq(count_ident(msg, calls[c].name), 1, "%s: \"%s\" names the function %d times", calls[c].name,
                         msg, count_ident(msg, calls[c].name));
            const char *v = value_after(msg, "eps");
            cr_assert(v != NULL, "%s: \"%s\" lacks \"desc->eps = \"", calls[c].name, msg);
            const float back = strtof(v, NULL);
            cr_expect(memcmp(&back, &bad[i], sizeof back) == 0, "%s: \"%s\" reads back as %a, passed %a",
                      calls[c].name, msg, (double)back, (double)bad[i]);
        }
    fx_free(&F);
}

/* ---- item 7: overlap decided row by row ------------------------------------------------------------- */

/* Fills every input of `d`/`t` (logical elements only; gaps keep what they hold). */
static void fill_fwd_inputs(const darn_desc *d, const darn_fwd_tensors *t, uint64_t seed)
{
    sup_rng g = sup_rng_make(seed);
    sup_fill_uniform((void *)(uintptr_t)t->x, d->x_dtype, d->rows, d->cols, t->x_stride, &g, -2.0f, 2.0f);
    if (t->residual)
        sup_fill_uniform((void *)(uintptr_t)t->residual, d->residual_dtype, d->rows, d->cols, t->residual_stride, &g,
                         -2.0f, 2.0f);
    if (t->rowscale) sup_fill_f32((float *)(uintptr_t)t->rowscale, d->rows, &g, 0.5f, 1.5f);
    sup_fill_uniform((void *)(uintptr_t)t->weight, d->weight_dtype, 1, d->cols, 0, &g, 0.5f, 1.5f);
    if (t->bias) sup_fill_uniform((void *)(uintptr_t)t->bias, d->bias_dtype, 1, d->cols, 0, &g, -0.5f, 0.5f);
}

static void *dup_rows(const void *src, darn_dtype dt, int64_t rows, int64_t cols, int64_t stride)
{
    if (!src) return NULL;
    void *p = sup_alloc(sup_tensor_bytes(dt, rows, cols, 0), 64);
    sup_copy(p, 0, src, stride, dt, rows, cols);
    return p;
}

static void *dup_bytes(const void *src, size_t bytes)
{
    if (!src) return NULL;
    void *p = sup_alloc(bytes, 64);
    memcpy(p, src, bytes);
    return p;
}

static void *fresh(const void *like, size_t bytes) { return like ? sup_alloc(bytes, 64) : NULL; }

/* Runs t (whose inputs hold data) and the same call on separate contiguous copies; the outputs must match. */
static void expect_fwd_like_clean(const darn_desc *d, const darn_fwd_tensors *t, const char *what)
{
    const int64_t m = d->rows, n = d->cols;
    const darn_dtype ro = darn_residual_out_dtype(d);
    const size_t mb = (size_t)(m * darn_mask_row_bytes(n));
    darn_fwd_tensors c = {0};
    c.x = dup_rows(t->x, d->x_dtype, m, n, t->x_stride);
    c.residual = dup_rows(t->residual, d->residual_dtype, m, n, t->residual_stride);
    c.rowscale = dup_bytes(t->rowscale, (size_t)m * 4);
    c.weight = dup_rows(t->weight, d->weight_dtype, 1, n, 0);
    c.bias = dup_rows(t->bias, d->bias_dtype, 1, n, 0);
    c.out = fresh(t->out, sup_tensor_bytes(d->out_dtype, m, n, 0));
    c.residual_out = fresh(t->residual_out, sup_tensor_bytes(ro, m, n, 0));
    c.mask = fresh(t->mask, mb);
    c.rstd = fresh(t->rstd, (size_t)m * 4);
    c.mean = fresh(t->mean, (size_t)m * 4);
    cr_assert_eq(darn_fwd(d, &c, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_OK, "%s (clean): %s", what, darn_last_error());
    cr_assert_eq(darn_fwd(d, t, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_OK, "%s: %s", what, darn_last_error());
    cr_expect_lt(sup_compare(t->out, t->out_stride, c.out, 0, d->out_dtype, m, n, 0), 0, "%s: out differs", what);
    if (t->residual_out)
        cr_expect_lt(sup_compare(t->residual_out, t->residual_out_stride, c.residual_out, 0, ro, m, n, 0), 0,
                     "%s: residual_out differs", what);
    if (t->mask) cr_expect_eq(memcmp(t->mask, c.mask, mb), 0, "%s: mask differs", what);
    if (t->rstd) cr_expect_eq(memcmp(t->rstd, c.rstd, (size_t)m * 4), 0, "%s: rstd differs", what);
    if (t->mean) cr_expect_eq(memcmp(t->mean, c.mean, (size_t)m * 4), 0, "%s: mean differs", what);
    void *all[] = {(void *)(uintptr_t)c.x, (void *)(uintptr_t)c.residual, (void *)(uintptr_t)c.rowscale,
                   (void *)(uintptr_t)c.weight, (void *)(uintptr_t)c.bias, c.out, c.residual_out, c.mask, c.rstd,
                   c.mean};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i) sup_free(all[i]);
}

/* x = buf[:, :N] and out = buf[:, N:] (row stride 2N), and likewise residual / residual_out. */
Test(hardening, interleaved_views_forward)
{
    const darn_dtype dts[3] = {DARN_F32, DARN_F16, DARN_BF16};
    for (int k = 0; k < 3; ++k) {
        fx F;
        fx_init(&F, dts[k]);
        const size_t es = darn_dtype_size(dts[k]);
        darn_fwd_tensors t = F.f;
        t.x_stride = t.out_stride = 2 * N;
        t.out = reg(&F, R_X) + N * es;
        t.residual_stride = t.residual_out_stride = 2 * N;
        t.residual_out = reg(&F, R_RES) + N * es;
        fill_fwd_inputs(&F.d, &t, 10 + (uint64_t)k);
        char what[64];
        snprintf(what, sizeof what, "interleaved, dtype %d", (int)dts[k]);
        expect_fwd_like_clean(&F.d, &t, what);
        /* swapped halves: out = buf[:, :N], x = buf[:, N:] */
        t = F.f;
        t.x_stride = t.out_stride = 2 * N;
        t.x = reg(&F, R_X) + N * es;
        t.out = reg(&F, R_X);
        fill_fwd_inputs(&F.d, &t, 20 + (uint64_t)k);
        snprintf(what, sizeof what, "interleaved swapped, dtype %d", (int)dts[k]);
        expect_fwd_like_clean(&F.d, &t, what);
        fx_free(&F);
    }
    /* different dtypes and strides: x f16 with row stride 4N (8N bytes), out f32 at byte 2N with row stride 2N
     * (8N bytes), rstd (M floats) in the gap after out's first row. */
    fx F;
    fx_init(&F, DARN_F16);
    F.d.out_dtype = DARN_F32;
    darn_fwd_tensors t = F.f;
    t.x_stride = 4 * N;
    t.out = reg(&F, R_X) + 2 * N;
    t.out_stride = 2 * N;
    t.rstd = (float *)(void *)(reg(&F, R_X) + 6 * N);
    fill_fwd_inputs(&F.d, &t, 30);
    expect_fwd_like_clean(&F.d, &t, "x f16 / out f32 interleaved, rstd in a gap");
    fx_free(&F);
}

Test(hardening, interleaved_near_misses_forward)
{
    fx F;
    fx_init(&F, DARN_F16);
    const size_t es = 2;
    darn_fwd_tensors t;
    /* out one element into x's row */
    t = F.f;
    t.x_stride = t.out_stride = 2 * N;
    t.out = reg(&F, R_X) + (N - 1) * es;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "out", "x", "out = buf[:, N-1:]");
    /* x one element into out's row */
    t = F.f;
    t.x_stride = t.out_stride = 2 * N;
    t.out = reg(&F, R_X);
    t.x = reg(&F, R_X) + (N - 1) * es;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "out", "x", "x = buf[:, N-1:]");
    /* out's first row in x's first gap, one element too long: it reaches row 1 of x */
    t = F.f;
    t.x_stride = t.out_stride = 2 * N;
    t.out = reg(&F, R_X) + (N + 1) * es;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "out", "x", "out = buf[:, N+1:]");
    /* x's rows one element wider than the gap: stride 2N - 1 */
    t = F.f;
    t.x_stride = 2 * N - 1;
    t.out_stride = 2 * N;
    t.out = reg(&F, R_X) + N * es;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "out", "x", "x stride 2N - 1");
    /* out stride one more than x's: row 1 of out reaches row 2 of x */
    t = F.f;
    t.x_stride = 2 * N;
    t.out_stride = 2 * N + 1;
    t.out = reg(&F, R_X) + N * es;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "out", "x", "out stride 2N + 1");
    /* rstd in the gap after x's first row (bytes [2N, 4N)), one float too early and one too late */
    t = F.f;
    t.x_stride = 2 * N;
    t.rstd = (float *)(void *)(reg(&F, R_X) + N * es - 4);
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "rstd", "x", "rstd one float before the gap");
    t.rstd = (float *)(void *)(reg(&F, R_X) + 2 * N * es - 4 * M + 4);
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "rstd", "x", "rstd one float past the gap");
    t.rstd = (float *)(void *)(reg(&F, R_X) + 2 * N * es - 4 * M);
    fill_fwd_inputs(&F.d, &t, 40);
    expect_fwd_like_clean(&F.d, &t, "rstd fills the end of the gap");
    /* past the last row: out starts right after x's last element (x stride 2N, M rows) */
    t = F.f;
    t.x_stride = 2 * N;
    t.out = reg(&F, R_X) + ((M - 1) * 2 * N + N) * es;
    fill_fwd_inputs(&F.d, &t, 41);
    expect_fwd_like_clean(&F.d, &t, "out right after x's last row");
    t.out = reg(&F, R_X) + ((M - 1) * 2 * N + N - 1) * es;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "out", "x", "out on x's last element");
    /* the exact in-place pair is still allowed, and still only with equal strides */
    t = F.f;
    t.x_stride = t.out_stride = 2 * N;
    t.out = (void *)(uintptr_t)t.x;
    fill_fwd_inputs(&F.d, &t, 42);
    expect_fwd_like_clean(&F.d, &t, "out == x, stride 2N");
    t.out_stride = 2 * N + 1;
    expect_fwd_fail(&F, &F.d, &t, DARN_ERR_ALIASING, "out", "x", "out == x, strides 2N and 2N + 1");
    fx_free(&F);
}

Test(hardening, interleaved_views_backward)
{
    fx F;
    fx_init(&F, DARN_BF16);
    const size_t es = 2;
    sup_rng g = sup_rng_make(50);
    darn_bwd_tensors t = F.b;
    t.dy_stride = t.dx_stride = 2 * N;
    t.dx = (void *)(reg(&F, R_DY) + N * es);
    t.dresidual_out_stride = t.dresidual_stride = 2 * N;
    t.dresidual = (void *)(reg(&F, R_DRESOUT) + N * es);
    sup_fill_uniform((void *)(uintptr_t)t.dy, DARN_BF16, M, N, t.dy_stride, &g, -1.0f, 1.0f);
    sup_fill_uniform((void *)(uintptr_t)t.dresidual_out, DARN_BF16, M, N, t.dresidual_out_stride, &g, -1.0f, 1.0f);
    sup_fill_uniform((void *)(uintptr_t)t.h, DARN_BF16, M, N, 0, &g, -2.0f, 2.0f);
    sup_fill_uniform((void *)(uintptr_t)t.weight, DARN_BF16, 1, N, 0, &g, 0.5f, 1.5f);
    sup_fill_f32((float *)(uintptr_t)t.rstd, M, &g, 0.5f, 1.5f);
    sup_fill_f32((float *)(uintptr_t)t.mean, M, &g, -0.5f, 0.5f);
    sup_fill_f32((float *)(uintptr_t)t.rowscale, M, &g, 0.5f, 1.5f);
    /* the clean run: contiguous copies */
    darn_bwd_tensors c = F.b;
    void *cdy = dup_rows(t.dy, DARN_BF16, M, N, t.dy_stride), *cdro = dup_rows(t.dresidual_out, DARN_BF16, M, N,
                                                                               t.dresidual_out_stride);
    void *cdx = sup_alloc(2 * M * N, 64), *cdres = sup_alloc(2 * M * N, 64), *cdw = sup_alloc(2 * N, 64),
         *cdb = sup_alloc(2 * N, 64), *cws = sup_alloc(REGION, 64);
    c.dy = cdy;
    c.dresidual_out = cdro;
    c.dx = cdx;
    c.dresidual = cdres;
    c.dweight = cdw;
    c.dbias = cdb;
    cr_assert_eq(darn_bwd(&F.d, &c, cws, REGION, DARN_BACKEND_CPU, NULL), DARN_OK, "clean: %s", darn_last_error());
    cr_assert_eq(darn_bwd(&F.d, &t, ws(&F), REGION, DARN_BACKEND_CPU, NULL), DARN_OK, "interleaved: %s",
                 darn_last_error());
    cr_expect_lt(sup_compare(t.dx, t.dx_stride, cdx, 0, DARN_BF16, M, N, 0), 0, "dx differs");
    cr_expect_lt(sup_compare(t.dresidual, t.dresidual_stride, cdres, 0, DARN_BF16, M, N, 0), 0, "dresidual differs");
    cr_expect_eq(memcmp(t.dweight, cdw, 2 * N), 0, "dweight differs");
    cr_expect_eq(memcmp(t.dbias, cdb, 2 * N), 0, "dbias differs");
    void *all[] = {cdy, cdro, cdx, cdres, cdw, cdb, cws};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i) sup_free(all[i]);
    /* near misses */
    darn_bwd_tensors u = t;
    u.dx = (void *)(reg(&F, R_DY) + (N - 1) * es);
    expect_bwd_fail(&F, &F.d, &u, DARN_ERR_ALIASING, "dx", "dy", "dx = buf[:, N-1:]");
    u = t;
    u.dresidual_stride = 2 * N + 1;
    expect_bwd_fail(&F, &F.d, &u, DARN_ERR_ALIASING, "dresidual", "dresidual_out", "dresidual stride 2N + 1");
    /* the workspace in the gaps of dy is still one contiguous block: it overlaps */
    u = t;
    u.dx = reg(&F, R_DX);
    u.dx_stride = 0;
    sup_sentinel_fill(F.arena, ARENA_BYTES);
    check_failure(&F, darn_bwd(&F.d, &u, reg(&F, R_DY) + 2 * N * es - 16, REGION, DARN_BACKEND_CPU, NULL),
                  DARN_ERR_ALIASING, "workspace", "dy", "workspace from dy's first gap on");
    fx_free(&F);
}

/* Brute force: does row i of view A (start a + i*sa, width wa) meet row j of view B, for some i, j? */
static int rows_meet(int64_t a, int64_t ma, int64_t sa, int64_t wa, int64_t b, int64_t mb, int64_t sb, int64_t wb)
{
    for (int64_t i = 0; i < ma; ++i)
        for (int64_t j = 0; j < mb; ++j)
            if (a + i * sa < b + j * sb + wb && b + j * sb < a + i * sa + wa) return 1;
    return 0;
}

/* An offset that puts row `j` of a view (rows of `w` bytes every `s` bytes) against row `k` of x (rows of wx
 * bytes every sx bytes at ox): its start at x's row end, or its end at x's row start, moved by `delta` bytes. */
static int64_t against(sup_rng *g, int64_t ox, int64_t mx, int64_t sx, int64_t wx, int64_t m, int64_t s, int64_t w,
                       int64_t delta)
{
    const int64_t k = (int64_t)(sup_rng_u64(g) % (uint64_t)mx), j = (int64_t)(sup_rng_u64(g) % (uint64_t)m);
    const int64_t edge = sup_rng_u64(g) % 2 ? ox + k * sx + wx - j * s : ox + k * sx - (j * s + w);
    return edge + delta;
}

/* Random x, out, rstd and mask views in one 4 KiB region (dtypes, strides, offsets, shapes; often with a row
 * placed right against a row of x, or one element or one byte into it): the forward returns
 * DARN_ERR_ALIASING exactly when some row of one output meets some row of another view (the exact in-place
 * pair excepted), and otherwise equals the clean run and changes no byte outside its outputs' rows. */
Test(hardening, overlap_matches_brute_force)
{
    enum { BIG = 4096, LIMIT = 3000 };
    unsigned char *buf = sup_alloc(BIG, 64);
    fx F;
    fx_init(&F, DARN_F32);
    sup_rng g = sup_rng_make(2024);
    const darn_dtype dts[3] = {DARN_F32, DARN_F16, DARN_BF16};
    int n_alias = 0, n_ok = 0;
    for (int it = 0; it < 40000; ++it) {
        darn_desc d;
        const int64_t m = 1 + (int64_t)(sup_rng_u64(&g) % 6), n = 1 + (int64_t)(sup_rng_u64(&g) % 40);
        darn_desc_init(&d, DARN_RMSNORM, m, n, dts[sup_rng_u64(&g) % 3]);
        d.out_dtype = dts[sup_rng_u64(&g) % 3];
        const int64_t ex = (int64_t)darn_dtype_size(d.x_dtype), eo = (int64_t)darn_dtype_size(d.out_dtype);
        const int64_t sx = n + (int64_t)(sup_rng_u64(&g) % (uint64_t)(2 * n + 3));
        const int64_t so =
            sup_rng_u64(&g) % 4 == 0 ? sx * ex / eo : n + (int64_t)(sup_rng_u64(&g) % (uint64_t)(2 * n + 3));
        if (so < n) continue;
        const int64_t spx = ((m - 1) * sx + n) * ex, spo = ((m - 1) * so + n) * eo;
        const int64_t mb = m * darn_mask_row_bytes(n);
        const int64_t ox = 1024 + 4 * (int64_t)(sup_rng_u64(&g) % 64);
        /* out: anywhere near x, against one of x's rows, or exactly on x */
        int64_t oo;
        const uint64_t how = sup_rng_u64(&g) % 8;
        if (how < 3) oo = ox + ((int64_t)(sup_rng_u64(&g) % (uint64_t)(2 * spx + 1)) - spx) / eo * eo;
        else if (how < 7)
            oo = against(&g, ox, m, sx * ex, n * ex, m, so * eo, n * eo, eo * ((int64_t)(sup_rng_u64(&g) % 3) - 1));
        else oo = ox;
        /* rstd (4-byte aligned) and mask (any byte): far away, or against a row of x */
        const int64_t orst =
            sup_rng_u64(&g) % 3 ? 3600 : against(&g, ox, m, sx * ex, n * ex, 1, 4 * m, 4 * m, 0) / 4 * 4;
        const int64_t omask = sup_rng_u64(&g) % 3 ? 3700 : against(&g, ox, m, sx * ex, n * ex, 1, mb, mb,
                                                                  (int64_t)(sup_rng_u64(&g) % 3) - 1);
        if (oo < 0 || oo % eo || oo + spo > LIMIT || ox + spx > LIMIT || orst < 0 || orst + 4 * m > BIG ||
            omask < 0 || omask + mb > BIG)
            continue;
        darn_fwd_tensors t = {0};
        t.x = buf + ox;
        t.x_stride = sx;
        t.out = buf + oo;
        t.out_stride = so;
        t.rstd = (float *)(void *)(buf + orst);
        t.mask = buf + omask;
        t.weight = reg(&F, R_W);
        const int pair = oo == ox && d.x_dtype == d.out_dtype && so == sx;
        const int64_t wx = n * ex, wo = n * eo;
        const int meet = (!pair && rows_meet(oo, m, so * eo, wo, ox, m, sx * ex, wx)) ||
                         rows_meet(orst, 1, 4 * m, 4 * m, ox, m, sx * ex, wx) ||
                         rows_meet(orst, 1, 4 * m, 4 * m, oo, m, so * eo, wo) ||
                         rows_meet(omask, 1, mb, mb, ox, m, sx * ex, wx) ||
                         rows_meet(omask, 1, mb, mb, oo, m, so * eo, wo) ||
                         rows_meet(omask, 1, mb, mb, orst, 1, 4 * m, 4 * m);
        char what[192];
        snprintf(what, sizeof what,
                 "it %d: M %lld N %lld, x dt %d +%lld stride %lld, out dt %d +%lld stride %lld, rstd +%lld, "
                 "mask +%lld", it, (long long)m, (long long)n, (int)d.x_dtype, (long long)ox, (long long)sx,
                 (int)d.out_dtype, (long long)oo, (long long)so, (long long)orst, (long long)omask);
        if (meet) {
            ++n_alias;
            sup_sentinel_fill(buf, BIG);
            const darn_status st = darn_fwd(&d, &t, NULL, 0, DARN_BACKEND_CPU, NULL);
            cr_assert_eq(st, DARN_ERR_ALIASING, "%s: status %s, rows meet: want DARN_ERR_ALIASING (%s)", what,
                         darn_status_string(st), darn_last_error());
            cr_assert_lt(sup_first_touched(buf, BIG), 0, "%s: failing call wrote", what);
        } else {
            ++n_ok;
            sup_sentinel_fill(buf, BIG);
            fill_fwd_inputs(&d, &t, (uint64_t)it);
            unsigned char *before = dup_bytes(buf, BIG);
            expect_fwd_like_clean(&d, &t, what);
            for (int64_t i = 0; i < BIG; ++i) {
                const int in_out = i >= oo && (i - oo) / (so * eo) < m && (i - oo) % (so * eo) < wo;
                const int in_vec = (i >= orst && i < orst + 4 * m) || (i >= omask && i < omask + mb);
                if (!in_out && !in_vec && buf[i] != before[i])
                    cr_assert_fail("%s: byte %lld outside the outputs changed", what, (long long)i);
            }
            sup_free(before);
        }
    }
    cr_expect_gt(n_alias, 5000, "only %d overlapping cases (%d disjoint)", n_alias, n_ok);
    cr_expect_gt(n_ok, 3000, "only %d disjoint cases (%d overlapping)", n_ok, n_alias);
    sup_free(buf);
    fx_free(&F);
}

/* Many short rows with unequal strides (where rows of two views drift past each other): x and out with up
 * to 24 rows of N <= 3 elements, every dtype pair, out anywhere near x. Status only, against brute force. */
Test(hardening, overlap_of_many_rows_matches_brute_force)
{
    enum { BIG = 8192 };
    unsigned char *buf = sup_alloc(BIG, 64);
    fx F;
    fx_init(&F, DARN_F32);
    sup_rng g = sup_rng_make(77);
    const darn_dtype dts[3] = {DARN_F32, DARN_F16, DARN_BF16};
    int n_alias = 0, n_ok = 0;
    for (int it = 0; it < 30000; ++it) {
        darn_desc d;
        const int64_t m = 2 + (int64_t)(sup_rng_u64(&g) % 23), n = 1 + (int64_t)(sup_rng_u64(&g) % 3);
        darn_desc_init(&d, DARN_RMSNORM, m, n, dts[sup_rng_u64(&g) % 3]);
        d.out_dtype = dts[sup_rng_u64(&g) % 3];
        const int64_t ex = (int64_t)darn_dtype_size(d.x_dtype), eo = (int64_t)darn_dtype_size(d.out_dtype);
        const int64_t sx = n + (int64_t)(sup_rng_u64(&g) % (uint64_t)(3 * n + 4));
        const int64_t so = n + (int64_t)(sup_rng_u64(&g) % (uint64_t)(3 * n + 4));
        const int64_t spx = ((m - 1) * sx + n) * ex, spo = ((m - 1) * so + n) * eo;
        const int64_t ox = 2048;
        const int64_t oo = ox + ((int64_t)(sup_rng_u64(&g) % (uint64_t)(spx + spo + 1)) - spo) / eo * eo;
        darn_fwd_tensors t = {0};
        t.x = buf + ox;
        t.x_stride = sx;
        t.out = buf + oo;
        t.out_stride = so;
        t.weight = reg(&F, R_W);
        const int pair = oo == ox && d.x_dtype == d.out_dtype && so == sx;
        const int meet = !pair && rows_meet(oo, m, so * eo, n * eo, ox, m, sx * ex, n * ex);
        sup_sentinel_fill(buf, BIG);
        const darn_status st = darn_fwd(&d, &t, NULL, 0, DARN_BACKEND_CPU, NULL);
        cr_assert_eq(st, meet ? DARN_ERR_ALIASING : DARN_OK,
                     "it %d: M %lld N %lld, x dt %d stride %lld, out dt %d at x%+lld bytes stride %lld: %s (%s)", it,
                     (long long)m, (long long)n, (int)d.x_dtype, (long long)sx, (int)d.out_dtype,
                     (long long)(oo - ox), (long long)so, darn_status_string(st), darn_last_error());
        if (meet) cr_assert_lt(sup_first_touched(buf, BIG), 0, "it %d: failing call wrote", it);
        ++*(meet ? &n_alias : &n_ok);
    }
    cr_expect_gt(n_alias, 5000, "only %d overlapping cases (%d disjoint)", n_alias, n_ok);
    cr_expect_gt(n_ok, 3000, "only %d disjoint cases (%d overlapping)", n_ok, n_alias);
    sup_free(buf);
    fx_free(&F);
}

static uint32_t darn_f32_bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* ---- item 3: size helpers over the whole int64 domain ---------------------------------------------- */
Test(hardening, size_helpers_never_overflow)
{
    cr_expect_eq(darn_mask_row_bytes(INT64_MAX), 4 * (INT64_MAX / 32 + 1));
    cr_expect_eq(darn_mask_row_bytes(INT64_MAX - 31), 4 * (INT64_MAX / 32));
    cr_expect_eq(darn_mask_row_bytes(0), 0);
    cr_expect_eq(darn_mask_row_bytes(-1), 0);
    cr_expect_eq(darn_row_groups(INT64_MAX), INT64_MAX / 8 + 1);
    /* R = floor(M * N / 2^21) with M * N close to INT64_MAX, and G = ceil(M / R) */
    cr_expect_eq(darn_wgrad_chunk_rows(INT64_MAX, 1), INT64_MAX >> 21);
    cr_expect_eq(darn_wgrad_chunks(INT64_MAX, 1), INT64_MAX / (INT64_MAX >> 21) + 1);
    const int64_t m = INT64_MAX - (INT64_C(1) << 50);
    cr_expect_eq(darn_wgrad_chunk_rows(m, 1), m >> 21);
    cr_expect_eq(darn_wgrad_chunks(m, 1), (m + (m >> 21) - 1) / (m >> 21));
    cr_expect_eq(darn_wgrad_chunks(0, 5), 0);
    cr_expect_eq(darn_wgrad_chunks(5, 0), 0);
    cr_expect_eq(darn_wgrad_chunk_rows(-1, 5), 0);
    /* a plan for M = INT64_MAX / 4, N = 4 sizes its workspace without overflow (or says DARN_ERR_OVERFLOW) */
    darn_desc d;
    darn_desc_init(&d, DARN_RMSNORM, INT64_MAX / 4, 4, DARN_F32);
    size_t bytes = 0;
    const darn_status s = darn_bwd_workspace_size(&d, DARN_BACKEND_CPU, &bytes);
    cr_expect(s == DARN_OK || s == DARN_ERR_OVERFLOW, "%s", darn_last_error());
    if (s == DARN_OK) cr_expect_gt(bytes, 0);
}

/* ---- item 8: inputs that contradict the settings --------------------------------------------------- */
static float run_bwd_dx0(double p, uint8_t mask_byte, int give_mask)
{
    enum { n = 8 };
    float dy[n], h[n], w[n], rstd = 1.0f, dx[n], dw[n];
    for (int c = 0; c < n; c++) dy[c] = 1.0f + (float)c, h[c] = 0.5f * (float)(c + 1), w[c] = 1.0f;
    uint8_t mask[4] = {mask_byte, 0, 0, 0};
    darn_desc d;
    darn_desc_init(&d, DARN_RMSNORM, 1, n, DARN_F32);
    d.dropout_p = p;
    darn_bwd_tensors b = {.dy = dy, .h = h, .weight = w, .rstd = &rstd, .mask = give_mask ? mask : NULL, .dx = dx, .dweight = dw};
    size_t need = 0;
    cr_assert_eq(darn_bwd_workspace_size(&d, DARN_BACKEND_CPU, &need), DARN_OK);
    float ws[64];
    cr_assert(need <= sizeof ws);
    cr_assert_eq(darn_bwd(&d, &b, ws, sizeof ws, DARN_BACKEND_CPU, NULL), DARN_OK, "%s", darn_last_error());
    return dx[0];
}

Test(hardening, mask_is_read_only_for_0_lt_p_lt_1)
{
    /* p = 0: every element kept, a given mask (even all zeros) is not read */
    const float kept = run_bwd_dx0(0.0, 0x00, 1);
    cr_expect_eq(memcmp(&kept, &(float){run_bwd_dx0(0.0, 0x00, 0)}, 4), 0, "p = 0 with an all-zero mask changed dx");
    cr_expect_neq(kept, 0.0f);
    /* p = 1: every element dropped: dx = +0 exactly, whatever the mask says */
    const float dropped = run_bwd_dx0(1.0, 0xFF, 1);
    cr_expect_eq(darn_f32_bits_of(dropped), 0u, "p = 1 with set mask bits: dx[0] = %a, want +0", (double)dropped);
    /* 0 < p < 1: the mask decides */
    cr_expect_eq(darn_f32_bits_of(run_bwd_dx0(0.5, 0x00, 1)), 0u);
    cr_expect_neq(run_bwd_dx0(0.5, 0x01, 1), 0.0f);
}

Test(hardening, mean_with_rmsnorm_is_rejected_in_both_directions)
{
    fx F;
    fx_init(&F, DARN_F32);
    F.d.norm = DARN_RMSNORM;
    size_t need = 0;
    cr_assert_eq(darn_bwd_workspace_size(&F.d, DARN_BACKEND_CPU, &need), DARN_OK);
    unsigned char *snap = sup_alloc(ARENA_BYTES, 64);
    memcpy(snap, F.arena, ARENA_BYTES);
    cr_expect_eq(darn_fwd(&F.d, &F.f, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_ERR_UNSUPPORTED);
    cr_expect_eq(darn_bwd(&F.d, &F.b, ws(&F), need, DARN_BACKEND_CPU, NULL), DARN_ERR_UNSUPPORTED);
    cr_expect(strstr(darn_last_error(), "mean") != NULL, "%s", darn_last_error());
    cr_expect_eq(memcmp(snap, F.arena, ARENA_BYTES), 0, "a rejected call wrote");
    sup_free(snap);
    fx_free(&F);
}

/* ---- item 9: the CPU backend runs on a small thread stack ------------------------------------------ */
#include <pthread.h>

typedef struct stack_job {
    darn_status fwd, bwd;
} stack_job;

static void *small_stack_body(void *arg)
{
    stack_job *j = arg;
    enum { m = 4, n = 4096 };
    float *x = sup_alloc((size_t)m * n * 4, 64), *res = sup_alloc((size_t)m * n * 4, 64), *w = sup_alloc(n * 4, 64),
          *b = sup_alloc(n * 4, 64), *out = sup_alloc((size_t)m * n * 4, 64), *h = sup_alloc((size_t)m * n * 4, 64),
          *dy = sup_alloc((size_t)m * n * 4, 64), *dx = sup_alloc((size_t)m * n * 4, 64), *dres = sup_alloc((size_t)m * n * 4, 64),
          *dw = sup_alloc(n * 4, 64), *db = sup_alloc(n * 4, 64), rstd[m], mean[m];
    for (int i = 0; i < m * n; i++) x[i] = (float)(i % 13) - 6.0f, res[i] = 0.1f * (float)(i % 7), dy[i] = (float)(i % 5) - 2.0f;
    for (int c = 0; c < n; c++) w[c] = 1.0f, b[c] = 0.0f;
    uint8_t mask[m * 512];
    darn_desc d;
    darn_desc_init(&d, DARN_LAYERNORM, m, n, DARN_F32);
    d.flags = DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS;
    d.dropout_p = 0.1;
    darn_fwd_tensors f = {.x = x, .residual = res, .weight = w, .bias = b, .out = out, .residual_out = h, .mask = mask,
                          .rstd = rstd, .mean = mean};
    j->fwd = darn_fwd(&d, &f, NULL, 0, DARN_BACKEND_CPU, NULL);
    size_t need = 0;
    darn_bwd_workspace_size(&d, DARN_BACKEND_CPU, &need);
    void *ws = sup_alloc(need, 64);
    darn_bwd_tensors bt = {.dy = dy, .h = h, .weight = w, .rstd = rstd, .mean = mean, .mask = mask, .dx = dx,
                           .dresidual = dres, .dweight = dw, .dbias = db};
    j->bwd = darn_bwd(&d, &bt, ws, need, DARN_BACKEND_CPU, NULL);
    void *ps[] = {x, res, w, b, out, h, dy, dx, dres, dw, db, ws};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) sup_free(ps[i]);
    return NULL;
}

/* What a thread's stack holds above its first frame before any code of ours runs: the thread descriptor
 * and the static TLS of every loaded library (large with a GPU runtime linked in), measured on a probe
 * thread as the distance from the top of its stack to a local of its start routine. */
static void *probe_body(void *arg)
{
    pthread_attr_t a;
    void *base = NULL;
    size_t size = 0;
    volatile char here = 0;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getstack(&a, &base, &size);
        pthread_attr_destroy(&a);
    }
    *(size_t *)arg = base ? (size_t)((char *)base + size - (char *)&here) : 0;
    return NULL;
}

Test(hardening, cpu_backend_runs_on_a_32k_stack)
{
    /* darn.h promises about 12 KB of stack per call; 32 KB for our frames (the crash case at
     * N = 4096, LayerNorm, forward and backward, serial: M * N below the OpenMP threshold) must be enough,
     * on top of what the thread needs before our code runs (probe_body). */
    size_t overhead = 0;
    pthread_t probe;
    cr_assert_eq(pthread_create(&probe, NULL, probe_body, &overhead), 0);
    pthread_join(probe, NULL);
    cr_log_info("thread start overhead: %zu bytes", overhead);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    cr_assert_eq(pthread_attr_setstacksize(&attr, (overhead + 32 * 1024 + 4095) / 4096 * 4096), 0);
    stack_job j = {DARN_ERR_DEVICE, DARN_ERR_DEVICE};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, &attr, small_stack_body, &j), 0);
    pthread_join(th, NULL);
    pthread_attr_destroy(&attr);
    cr_expect_eq(j.fwd, DARN_OK);
    cr_expect_eq(j.bwd, DARN_OK);
}

/* ---- item 10: fp32 range of the sums (documented in docs/numerics.md §8) ------------------------- */
Test(hardening, sum_of_squares_overflow_is_as_documented)
{
    enum { n = 16 };
    float x[n], w[n], y[n], rstd, mean;
    for (int c = 0; c < n; c++) x[c] = 1e20f, w[c] = 1.0f;
    darn_desc d;
    darn_desc_init(&d, DARN_RMSNORM, 1, n, DARN_F32);
    darn_fwd_tensors f = {.x = x, .weight = w, .out = y, .rstd = &rstd};
    cr_assert_eq(darn_fwd(&d, &f, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_OK);
    cr_expect_eq(darn_f32_bits_of(rstd), 0u, "RMSNorm of 1e20: rstd = %a, §8 says 0 (the sum of squares is inf)", (double)rstd);
    cr_expect_eq(darn_f32_bits_of(y[0]), 0u, "RMSNorm of 1e20: y = %a, §8 says 0", (double)y[0]);
    for (int c = 0; c < n; c++) x[c] = 3e38f;
    darn_desc_init(&d, DARN_LAYERNORM, 1, n, DARN_F32);
    f.mean = &mean;
    cr_assert_eq(darn_fwd(&d, &f, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_OK);
    cr_expect_eq(darn_f32_bits_of(y[0]), 0x7FC00000u, "LayerNorm of a constant 3e38 row: y = %a, §8 says NaN", (double)y[0]);
}
