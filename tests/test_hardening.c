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
