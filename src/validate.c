/* validate.c — every check a darn call makes before it touches memory (see validate.h). */
#include "validate.h"

#include "dispatch.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

/* ---- error message ------------------------------------------------------------------------------- */
static _Thread_local char last_error[384];

darn_status darn_fail(darn_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

void darn_clear_error(void) { last_error[0] = '\0'; }

const char *darn_last_error(void) { return last_error; }

/* ---- descriptor ---------------------------------------------------------------------------------- */
static bool dtype_ok(darn_dtype d) { return d == DARN_F32 || d == DARN_F16 || d == DARN_BF16; }
bool darn_dtype_is_fp8(darn_dtype d)
{
    return d == DARN_FP8_E4M3FN || d == DARN_FP8_E5M2 || d == DARN_FP8_E4M3FNUZ || d == DARN_FP8_E5M2FNUZ;
}

const char *darn_dtype_name(darn_dtype d)
{
    switch (d) {
    case DARN_F32: return "f32";
    case DARN_F16: return "f16";
    case DARN_BF16: return "bf16";
    case DARN_FP8_E4M3FN: return "fp8_e4m3fn";
    case DARN_FP8_E5M2: return "fp8_e5m2";
    case DARN_FP8_E4M3FNUZ: return "fp8_e4m3fnuz";
    case DARN_FP8_E5M2FNUZ: return "fp8_e5m2fnuz";
    case DARN_DTYPE_SAME_AS_OUT: return "DARN_DTYPE_SAME_AS_OUT";
    }
    return "?";
}

darn_status darn_plan_init(darn_plan *plan, const darn_desc *d, const char *fn)
{
    if (!d) return darn_fail(DARN_ERR_NULL_POINTER, "%s: desc is NULL", fn);
    if (d->norm != DARN_RMSNORM && d->norm != DARN_LAYERNORM)
        return darn_fail(DARN_ERR_BAD_ENUM, "%s: desc->norm = %d is not a darn_norm", fn, (int)d->norm);
    const struct { const char *name; darn_dtype v; } dts[] = {
        {"x_dtype", d->x_dtype}, {"residual_dtype", d->residual_dtype}, {"weight_dtype", d->weight_dtype},
        {"bias_dtype", d->bias_dtype}, {"out_dtype", d->out_dtype}};
    for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
        const bool out = i == sizeof dts / sizeof dts[0] - 1;
        if (dtype_ok(dts[i].v) || (out && darn_dtype_is_fp8(dts[i].v))) continue;
        if (darn_dtype_is_fp8(dts[i].v))
            return darn_fail(DARN_ERR_UNSUPPORTED, "%s: desc->%s = %s: fp8 dtypes are for out_dtype only", fn,
                             dts[i].name, darn_dtype_name(dts[i].v));
        return darn_fail(DARN_ERR_BAD_ENUM, "%s: desc->%s = %d is not a darn_dtype", fn, dts[i].name, (int)dts[i].v);
    }
    if (d->dy_dtype != DARN_DTYPE_SAME_AS_OUT && !dtype_ok(d->dy_dtype)) {
        if (darn_dtype_is_fp8(d->dy_dtype))
            return darn_fail(DARN_ERR_UNSUPPORTED, "%s: desc->dy_dtype = %s: dy must be f32, f16 or bf16 (fp8 dtypes are "
                             "for out_dtype only)", fn, darn_dtype_name(d->dy_dtype));
        return darn_fail(DARN_ERR_BAD_ENUM, "%s: desc->dy_dtype = %d is neither a darn_dtype nor DARN_DTYPE_SAME_AS_OUT",
                         fn, (int)d->dy_dtype);
    }
    if (d->flags & ~DARN_FLAGS_ALL)
        return darn_fail(DARN_ERR_BAD_ENUM, "%s: desc->flags has unknown bits 0x%x", fn, d->flags & ~DARN_FLAGS_ALL);
    if ((d->flags & DARN_FLAG_HAS_BIAS1) && !(d->flags & DARN_FLAG_HAS_WEIGHT1))
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: desc->flags has DARN_FLAG_HAS_BIAS1 without DARN_FLAG_HAS_WEIGHT1 "
                         "(bias1 is the second output's bias)", fn);
    if ((d->flags & DARN_FLAG_HAS_WEIGHT1) && darn_dtype_is_fp8(d->out_dtype))
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: desc->out_dtype = %s with DARN_FLAG_HAS_WEIGHT1: a second output is not "
                         "supported with an fp8 out_dtype", fn, darn_dtype_name(d->out_dtype));
    if (d->cols < 1)
        return darn_fail(DARN_ERR_BAD_SHAPE, "%s: desc->cols (N) = %lld, must be >= 1", fn, (long long)d->cols);
    if (d->rows < 0)
        return darn_fail(DARN_ERR_BAD_SHAPE, "%s: desc->rows (M) = %lld, must be >= 0", fn, (long long)d->rows);
    if (d->rows > 0 && d->cols > INT64_MAX / d->rows)
        return darn_fail(DARN_ERR_OVERFLOW, "%s: desc->rows * desc->cols (%lld * %lld) overflows int64", fn,
                         (long long)d->rows, (long long)d->cols);
    if (!(d->eps > 0.0f) || !isfinite(d->eps))
        return darn_fail(DARN_ERR_BAD_EPS, "%s: desc->eps = %.9g, must be finite and > 0", fn, (double)d->eps);
    if (!(d->dropout_p >= 0.0 && d->dropout_p <= 1.0)) /* also catches NaN */
        return darn_fail(DARN_ERR_BAD_DROPOUT, "%s: desc->dropout_p = %.17g, must be in [0, 1]", fn, d->dropout_p);
    if ((d->rng_seed_ptr == NULL) != (d->rng_offset_ptr == NULL))
        return darn_fail(DARN_ERR_NULL_POINTER, "%s: desc->%s is NULL but desc->%s is set (both or neither)", fn,
                         d->rng_seed_ptr ? "rng_offset_ptr" : "rng_seed_ptr",
                         d->rng_seed_ptr ? "rng_seed_ptr" : "rng_offset_ptr");
    /* 8-byte loads on every backend (a GPU faults on a misaligned one), whatever M and p. */
    if ((uintptr_t)d->rng_seed_ptr % 8)
        return darn_fail(DARN_ERR_MISALIGNED, "%s: desc->rng_seed_ptr = %p is not 8-byte aligned", fn,
                         (const void *)d->rng_seed_ptr);
    if ((uintptr_t)d->rng_offset_ptr % 8)
        return darn_fail(DARN_ERR_MISALIGNED, "%s: desc->rng_offset_ptr = %p is not 8-byte aligned", fn,
                         (const void *)d->rng_offset_ptr);

    /* fp8 output scale (§9): the pointer is checked like the rng pointers (whatever M); the value only when it
     * is used (fp8 out, no pointer). */
    const bool fp8_out = darn_dtype_is_fp8(d->out_dtype);
    if (d->out_scale_ptr && !fp8_out)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: desc->out_scale_ptr is set but desc->out_dtype = %s is not an fp8 dtype",
                         fn, darn_dtype_name(d->out_dtype));
    if ((uintptr_t)d->out_scale_ptr % 4)
        return darn_fail(DARN_ERR_MISALIGNED, "%s: desc->out_scale_ptr = %p is not 4-byte aligned", fn,
                         (const void *)d->out_scale_ptr);
    if (fp8_out && !d->out_scale_ptr && !(d->out_scale > 0.0f && isfinite(d->out_scale)))
        return darn_fail(DARN_ERR_BAD_SCALE, "%s: desc->out_scale = %.9g, must be finite and > 0 (out_dtype = %s)", fn,
                         (double)d->out_scale, darn_dtype_name(d->out_dtype));

    *plan = (darn_plan){0};
    plan->desc = *d;
    plan->fp8_out = fp8_out;
    plan->dy_dtype = d->dy_dtype == DARN_DTYPE_SAME_AS_OUT ? d->out_dtype : d->dy_dtype;
    plan->m = d->rows;
    plan->n = d->cols;
    plan->layer = d->norm == DARN_LAYERNORM;
    plan->has_res = (d->flags & DARN_FLAG_HAS_RESIDUAL) != 0;
    plan->has_bias = (d->flags & DARN_FLAG_HAS_BIAS) != 0;
    plan->has_rowscale = (d->flags & DARN_FLAG_HAS_ROWSCALE) != 0;
    plan->has_x1 = (d->flags & DARN_FLAG_HAS_X1) != 0;
    plan->has_w1 = (d->flags & DARN_FLAG_HAS_WEIGHT1) != 0;
    plan->has_b1 = (d->flags & DARN_FLAG_HAS_BIAS1) != 0;
    plan->zero_centered = (d->flags & DARN_FLAG_ZERO_CENTERED_WEIGHT) != 0;
    plan->resout_dtype = darn_residual_out_dtype(d);
    plan->dropout = d->dropout_p > 0.0;
    /* floor(p * 2^32) is exact: p * 2^32 only changes the exponent. */
    plan->drop.threshold = (uint64_t)floor(d->dropout_p * 4294967296.0);
    plan->drop.scale = d->dropout_p < 1.0 ? (float)(1.0 / (1.0 - d->dropout_p)) : 0.0f;
    plan->opt = (plan->layer ? DARN_OPT_LAYER : 0u) | (plan->zero_centered ? DARN_OPT_ZC : 0u) |
                (plan->has_rowscale ? DARN_OPT_ROWSCALE : 0u) | (plan->dropout ? DARN_OPT_DROPOUT : 0u) |
                (plan->has_res ? DARN_OPT_RESIDUAL : 0u) | (plan->has_bias ? DARN_OPT_BIAS : 0u) |
                (plan->has_x1 ? DARN_OPT_X1 : 0u) | (plan->has_w1 ? DARN_OPT_Y1 : 0u) |
                (plan->has_b1 ? DARN_OPT_BIAS1 : 0u);
    plan->groups = darn_groups_for(plan->n);
    plan->wgrad_rows = darn_wgrad_chunk_rows_for(plan->m, plan->n);
    plan->wgrad_chunks = darn_wgrad_chunks_for(plan->m, plan->n);
    plan->row_n = plan->n;
    return DARN_OK;
}

/* A column slice's place in its row, and the whole row's dweight chunks (§6: they depend on (M, N)). */
static void plan_set_slice(darn_plan *pl, const darn_slice_bufs *slice)
{
    if (!slice) return;
    pl->col0 = slice->col0;
    pl->row_n = slice->row_n;
    pl->wgrad_rows = darn_wgrad_chunk_rows_for(pl->m, slice->row_n);
    pl->wgrad_chunks = darn_wgrad_chunks_for(pl->m, slice->row_n);
}

/* ---- buffers: presence, stride, span, alignment, overlap ---------------------------------------- */
typedef struct buf {
    const char *name;
    const void *p;
    uint64_t bytes; /* span in bytes; 0 = absent */
    bool output;
    int64_t stride; /* resolved, for [M, N] tensors; 0 for vectors */
    darn_dtype dtype;
    int pair;       /* index of the one input this output may equal exactly, or -1 */
    /* the bytes touched: rows [p + k * step, p + k * step + width) for 0 <= k < rows (a vector is one row) */
    int64_t rows, step, width;
} buf;

typedef struct bufs {
    buf b[28]; /* the most a call lists: 24 (darn_bwd_cols: 21 tensors and 3 exchange buffers) */
    int n;
    const char *fn;
} bufs;

/* The slice's exchange buffers join the overlap check. */
static darn_status add_slice_bufs(bufs *L, const darn_slice_bufs *slice);

/* Resolve a row stride (0 = N), check it and the span of an [M, N] tensor; add it to the list. */
static darn_status add_matrix(bufs *L, const darn_plan *pl, const char *name, const void *p, int64_t stride,
                              darn_dtype dt, bool output, int64_t *resolved)
{
    const int64_t m = pl->m, n = pl->n;
    if (stride == 0) stride = n;
    if (stride < n)
        return darn_fail(DARN_ERR_BAD_STRIDE, "%s: %s row stride %lld: must be 0 (contiguous) or >= N = %lld", L->fn,
                         name, (long long)stride, (long long)n);
    *resolved = stride;
    if (!p) return DARN_OK;
    const uint64_t es = darn_dtype_size(dt);
    /* span = ((M - 1) * stride + N) * es, each step checked */
    if (m > 1 && stride > (INT64_MAX - n) / (m - 1))
        return darn_fail(DARN_ERR_OVERFLOW, "%s: %s: (M - 1) * stride + N overflows int64", L->fn, name);
    const uint64_t elems = (uint64_t)((m > 0 ? m - 1 : 0) * stride + n);
    if (elems > (uint64_t)INT64_MAX / es)
        return darn_fail(DARN_ERR_OVERFLOW, "%s: %s: byte size overflows", L->fn, name);
    if ((uintptr_t)p % es)
        return darn_fail(DARN_ERR_MISALIGNED, "%s: %s = %p is not aligned to its %u-byte elements", L->fn, name, p,
                         (unsigned)es);
    const uint64_t bytes = m > 0 ? elems * es : 0;
    if ((uintptr_t)p + bytes < (uintptr_t)p)
        return darn_fail(DARN_ERR_OVERFLOW, "%s: %s: address range wraps around", L->fn, name);
    /* one row: the stride is never used (and stride * es may not fit) */
    const int64_t step = m > 1 ? stride * (int64_t)es : n * (int64_t)es;
    L->b[L->n++] = (buf){name, p, bytes, output, stride, dt, -1, m, step, n * (int64_t)es};
    return DARN_OK;
}

/* A vector of `count` elements of `es` bytes (weight, bias, rstd, rowscale, mask rows, ...). */
static darn_status add_vector(bufs *L, const char *name, const void *p, uint64_t count, uint64_t es, bool output)
{
    if (!p) return DARN_OK;
    if ((uintptr_t)p % es)
        return darn_fail(DARN_ERR_MISALIGNED, "%s: %s = %p is not aligned to its %u-byte elements", L->fn, name, p,
                         (unsigned)es);
    if (count > (uint64_t)INT64_MAX / es)
        return darn_fail(DARN_ERR_OVERFLOW, "%s: %s: byte size overflows", L->fn, name);
    if ((uintptr_t)p + count * es < (uintptr_t)p)
        return darn_fail(DARN_ERR_OVERFLOW, "%s: %s: address range wraps around", L->fn, name);
    const int64_t bytes = (int64_t)(count * es);
    L->b[L->n++] = (buf){name, p, (uint64_t)bytes, output, 0, DARN_F32, -1, 1, bytes, bytes};
    return DARN_OK;
}

/* Allow output `out` to be exactly input `in` (same pointer, dtype, stride and span). */
static void allow_in_place(bufs *L, const void *out, const void *in)
{
    if (!out || out != in) return;
    int o = -1, i = -1;
    for (int k = 0; k < L->n; k++)
        if (L->b[k].p == out) *(L->b[k].output ? &o : &i) = k;
    if (o >= 0 && i >= 0 && L->b[o].dtype == L->b[i].dtype && L->b[o].stride == L->b[i].stride &&
        L->b[o].bytes == L->b[i].bytes)
        L->b[o].pair = i;
}

/* ---- exact overlap of two row sets ----------------------------------------------------------------
 * Row i of A meets row j of B iff their byte ranges intersect. Deciding "some i, some j" is a question
 * about i*sa - j*sb in an interval; it is answered with O(log) arithmetic (no loop over rows) in a type
 * wide enough that nothing overflows: every operand is below 2^63 (spans are checked to fit int64), so
 * products stay below 2^126. Without a 128-bit type, views whose spans reach 2^31 are treated as
 * overlapping (the old, conservative rule), and every product stays below 2^62. */
#if defined(__SIZEOF_INT128__)
__extension__ typedef __int128 ov_int;
__extension__ typedef unsigned __int128 ov_uint;
#define OV_EXACT_MAX INT64_MAX
#else
typedef int64_t ov_int;
typedef uint64_t ov_uint;
#define OV_EXACT_MAX INT32_MAX
#endif /* __SIZEOF_INT128__ */

/* a * b for results known to fit (done unsigned: no sanitizer runtime call for a 128-bit multiply). */
static ov_int ov_mul(ov_int a, ov_int b) { return (ov_int)((ov_uint)a * (ov_uint)b); }
static ov_int ov_floor_div(ov_int a, ov_int b) { return a / b - (a % b < 0); } /* b > 0 */
static ov_int ov_ceil_div(ov_int a, ov_int b) { return a / b + (a % b > 0); }  /* b > 0 */
static ov_int ov_mod(ov_int a, ov_int b) { return a % b + (a % b < 0 ? b : 0); } /* b > 0 */

/* The least t >= 0 with (a * t) mod m in [lo, hi], or -1 when there is none (0 <= a < m, 0 <= lo <= hi < m).
 * The answer, when there is one, is below m. Euclid's steps: the moduli go m, a, m mod a, ... */
static ov_int first_hit(ov_int a, ov_int m, ov_int lo, ov_int hi)
{
    if (lo == 0) return 0;
    if (a == 0) return -1;
    const ov_int t = ov_ceil_div(lo, a);
    if (ov_mul(a, t) <= hi) return t; /* reached before the first wrap */
    /* No multiple of a lies in [lo, hi], so lo mod a <= hi mod a. A hit after q wraps needs a multiple of a in
     * [lo + q m, hi + q m]: (q * (m mod a)) mod a in [a - hi mod a, a - lo mod a]. The least such q (< a)
     * gives the least t. */
    const ov_int q = first_hit(m % a, a, a - hi % a, a - lo % a);
    return q < 0 ? -1 : ov_ceil_div(lo + ov_mul(q, m), a);
}

/* The rows i in [0, rows) with lo <= d + i * step <= hi, as [*i0, *i1]; false when there are none. */
static bool rows_in(ov_int d, ov_int step, ov_int rows, ov_int lo, ov_int hi, ov_int *i0, ov_int *i1)
{
    *i0 = ov_ceil_div(lo - d, step);
    *i1 = ov_floor_div(hi - d, step);
    if (*i0 < 0) *i0 = 0;
    if (*i1 > rows - 1) *i1 = rows - 1;
    return *i0 <= *i1;
}

static bool rows_meet(const buf *A, const buf *B)
{
    const uintptr_t pa = (uintptr_t)A->p, pb = (uintptr_t)B->p;
    if (!(pa < pb + B->bytes && pb < pa + A->bytes)) return false; /* the spans are apart */
    if (A->bytes > OV_EXACT_MAX || B->bytes > OV_EXACT_MAX) return true;
    /* In B's frame, row i of A starts at x_i = d + i * sa; |d| < the larger span. */
    const ov_int d = pa >= pb ? (ov_int)(pa - pb) : -(ov_int)(pb - pa);
    const ov_int sa = A->step, wa = A->width, ma = A->rows, sb = B->step, wb = B->width, mb = B->rows;
    ov_int i0, i1;
    /* x_i in [1 - wa, wb - 1]: row i meets B's row 0. */
    if (rows_in(d, sa, ma, 1 - wa, wb - 1, &i0, &i1)) return true;
    /* x_i in [wb, (mb - 1) * sb + wb - 1]: the first row of B that ends after x_i is j = floor((x_i - wb) / sb)
     * + 1 <= mb - 1; row i meets it (and so B) iff it starts before x_i + wa, i.e. iff
     * (x_i - wb) mod sb >= sb - wa - wb + 1. Beyond that range row i is past B's last row. */
    if (mb < 2 || !rows_in(d, sa, ma, wb, ov_mul(mb - 1, sb) + wb - 1, &i0, &i1)) return false;
    if (wa + wb > sb) return true; /* no gap of B holds a row of A */
    const ov_int c = ov_mod(d + ov_mul(i0, sa) - wb, sb), lo = sb - wa - wb + 1;
    if (c >= lo) return true;
    /* some k in [0, i1 - i0] with (c + k * sa) mod sb in [lo, sb - 1] */
    const ov_int k = first_hit(sa % sb, sb, lo - c, sb - 1 - c);
    return k >= 0 && k <= i1 - i0;
}

static darn_status check_overlaps(const bufs *L)
{
    for (int a = 0; a < L->n; a++) {
        const buf *A = &L->b[a];
        if (!A->output || A->bytes == 0) continue;
        for (int b = 0; b < L->n; b++) {
            const buf *B = &L->b[b];
            if (b == a || B->bytes == 0 || (B->output && b < a)) continue;
            const uintptr_t pa = (uintptr_t)A->p, pb = (uintptr_t)B->p;
            if (A->pair == b) continue; /* allowed exact in-place pair */
            if (!rows_meet(A, B)) continue;
            return darn_fail(DARN_ERR_ALIASING, "%s: output %s overlaps %s %s%s", L->fn, A->name,
                             B->output ? "output" : "input", B->name,
                             (pa == pb && !B->output) ? " (in place is allowed only for the documented pairs with "
                                                        "equal dtype and stride)"
                                                      : "");
        }
    }
    return DARN_OK;
}

#define REQUIRE(ptr, what)                                                                                      \
    do {                                                                                                          \
        if (!(ptr)) return darn_fail(DARN_ERR_NULL_POINTER, "%s: %s is NULL%s", fn, #ptr, what);                  \
    } while (0)
#define TRY(expr)                                                                                                \
    do {                                                                                                          \
        darn_status s_ = (expr);                                                                                  \
        if (s_ != DARN_OK) return s_;                                                                             \
    } while (0)

static darn_status validate_fwd(darn_plan *pl, const darn_desc *desc, const darn_fwd_tensors *t,
                                const darn_slice_bufs *slice, const char *fn)
{
    TRY(darn_plan_init(pl, desc, fn));
    plan_set_slice(pl, slice);
    if (!t) return darn_fail(DARN_ERR_NULL_POINTER, "%s: tensors is NULL", fn);
    if (t->mean && !pl->layer)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: t->mean is set but RMSNorm has no mean output", fn);
    if (t->residual && !pl->has_res)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: t->residual is set but desc->flags lacks DARN_FLAG_HAS_RESIDUAL", fn);
    if (t->bias && !pl->has_bias)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: t->bias is set but desc->flags lacks DARN_FLAG_HAS_BIAS", fn);
    if (t->rowscale && !pl->has_rowscale)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: t->rowscale is set but desc->flags lacks DARN_FLAG_HAS_ROWSCALE", fn);
    if (t->amax && !pl->fp8_out)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: t->amax is set but desc->out_dtype = %s is not an fp8 dtype (amax is an "
                         "output of fp8 forwards only)", fn, darn_dtype_name(desc->out_dtype));
    if (t->x1 && !pl->has_x1)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: t->x1 is set but desc->flags lacks DARN_FLAG_HAS_X1", fn);
    if (t->mask1 && !pl->has_x1)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: t->mask1 is set but desc->flags lacks DARN_FLAG_HAS_X1", fn);
    if (t->weight1 && !pl->has_w1)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: t->weight1 is set but desc->flags lacks DARN_FLAG_HAS_WEIGHT1", fn);
    if (t->out1 && !pl->has_w1)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: t->out1 is set but desc->flags lacks DARN_FLAG_HAS_WEIGHT1", fn);
    if (t->bias1 && !pl->has_b1)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: t->bias1 is set but desc->flags lacks DARN_FLAG_HAS_BIAS1", fn);
    const darn_desc *d = desc;
    bufs L = {.n = 0, .fn = fn};
    /* Strides are checked even for M = 0; data pointers are required only when rows exist. */
    TRY(add_matrix(&L, pl, "t->x", t->x, t->x_stride, d->x_dtype, false, &pl->s_x));
    TRY(add_matrix(&L, pl, "t->x1", t->x1, t->x1_stride, d->x_dtype, false, &pl->s_x1));
    TRY(add_matrix(&L, pl, "t->out1", t->out1, t->out1_stride, d->out_dtype, true, &pl->s_out1));
    TRY(add_matrix(&L, pl, "t->residual", t->residual, t->residual_stride, d->residual_dtype, false, &pl->s_res));
    TRY(add_matrix(&L, pl, "t->out", t->out, t->out_stride, d->out_dtype, true, &pl->s_out));
    TRY(add_matrix(&L, pl, "t->residual_out", t->residual_out, t->residual_out_stride, pl->resout_dtype, true,
                   &pl->s_resout));
    if (pl->m == 0) { /* nothing is read; only amax is written (+0) */
        if (!t->amax) return DARN_OK;
        L.n = 0;
        TRY(add_vector(&L, "t->amax", t->amax, 1, 4, true));
        TRY(add_vector(&L, "desc->out_scale_ptr", d->out_scale_ptr, 1, 4, false));
        return check_overlaps(&L);
    }
    REQUIRE(t->x, "");
    REQUIRE(t->weight, "");
    REQUIRE(t->out, "");
    if (pl->has_res) REQUIRE(t->residual, " but desc->flags has DARN_FLAG_HAS_RESIDUAL");
    if (pl->has_bias) REQUIRE(t->bias, " but desc->flags has DARN_FLAG_HAS_BIAS");
    if (pl->has_rowscale) REQUIRE(t->rowscale, " but desc->flags has DARN_FLAG_HAS_ROWSCALE");
    if (pl->has_x1) REQUIRE(t->x1, " but desc->flags has DARN_FLAG_HAS_X1");
    if (pl->has_w1) REQUIRE(t->weight1, " but desc->flags has DARN_FLAG_HAS_WEIGHT1");
    if (pl->has_w1) REQUIRE(t->out1, " but desc->flags has DARN_FLAG_HAS_WEIGHT1");
    if (pl->has_b1) REQUIRE(t->bias1, " but desc->flags has DARN_FLAG_HAS_BIAS1");
    const uint64_t m = (uint64_t)pl->m, n = (uint64_t)pl->n;
    TRY(add_vector(&L, "t->weight", t->weight, n, darn_dtype_size(d->weight_dtype), false));
    TRY(add_vector(&L, "t->bias", t->bias, n, darn_dtype_size(d->bias_dtype), false));
    TRY(add_vector(&L, "t->weight1", t->weight1, n, darn_dtype_size(d->weight_dtype), false));
    TRY(add_vector(&L, "t->bias1", t->bias1, n, darn_dtype_size(d->bias_dtype), false));
    TRY(add_vector(&L, "t->rowscale", t->rowscale, m, 4, false));
    TRY(add_vector(&L, "t->rstd", t->rstd, m, 4, true));
    TRY(add_vector(&L, "t->mean", t->mean, m, 4, true));
    if (t->mask) {
        const uint64_t rb = (uint64_t)darn_mask_row_bytes(pl->n);
        if (m > (uint64_t)INT64_MAX / rb) return darn_fail(DARN_ERR_OVERFLOW, "%s: t->mask: byte size overflows", fn);
        TRY(add_vector(&L, "t->mask", t->mask, m * rb, 1, true));
        TRY(add_vector(&L, "t->mask1", t->mask1, m * rb, 1, true));
    } else if (t->mask1) {
        const uint64_t rb = (uint64_t)darn_mask_row_bytes(pl->n);
        if (m > (uint64_t)INT64_MAX / rb) return darn_fail(DARN_ERR_OVERFLOW, "%s: t->mask1: byte size overflows", fn);
        TRY(add_vector(&L, "t->mask1", t->mask1, m * rb, 1, true));
    }
    TRY(add_vector(&L, "desc->rng_seed_ptr", d->rng_seed_ptr, 1, 8, false));
    TRY(add_vector(&L, "desc->rng_offset_ptr", d->rng_offset_ptr, 1, 8, false));
    TRY(add_vector(&L, "t->amax", t->amax, 1, 4, true));
    TRY(add_vector(&L, "desc->out_scale_ptr", d->out_scale_ptr, 1, 4, false));
    TRY(add_slice_bufs(&L, slice));
    allow_in_place(&L, t->out, t->x);
    allow_in_place(&L, t->residual_out, t->residual);
    return check_overlaps(&L);
}

darn_status darn_validate_fwd(darn_plan *pl, const darn_desc *desc, const darn_fwd_tensors *t)
{
    return validate_fwd(pl, desc, t, NULL, "darn_fwd");
}

darn_status darn_validate_fwd_slice(darn_plan *pl, const darn_desc *slice_desc, const darn_fwd_tensors *t,
                                    const darn_slice_bufs *slice, const char *fn)
{
    return validate_fwd(pl, slice_desc, t, slice, fn);
}

/* partials: darn_bwd_partials' [chunks, N] fp32 buffers in place of dweight / dbias (NULL for darn_bwd). */
typedef struct bwd_partials {
    const float *w, *b;
    int64_t chunks;
} bwd_partials;

static darn_status validate_bwd(darn_plan *pl, const darn_desc *desc, const darn_bwd_tensors *t,
                                const void *workspace, int gpu, const bwd_partials *part,
                                const darn_slice_bufs *slice, const char *fn)
{
    TRY(darn_plan_init(pl, desc, fn));
    plan_set_slice(pl, slice);
    if (!t) return darn_fail(DARN_ERR_NULL_POINTER, "%s: tensors is NULL", fn);
    if (t->dresidual && !pl->has_res)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: t->dresidual is set but desc->flags lacks DARN_FLAG_HAS_RESIDUAL",
                         fn);
    if (t->dbias && !pl->has_bias)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: t->dbias is set but desc->flags lacks DARN_FLAG_HAS_BIAS", fn);
    if (t->rowscale && !pl->has_rowscale)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: t->rowscale is set but desc->flags lacks DARN_FLAG_HAS_ROWSCALE", fn);
    if (t->mean && !pl->layer)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: t->mean is set but RMSNorm has no mean", fn);
    if (t->dx1 && !pl->has_x1)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: t->dx1 is set but desc->flags lacks DARN_FLAG_HAS_X1", fn);
    if (t->mask1 && !pl->has_x1)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: t->mask1 is set but desc->flags lacks DARN_FLAG_HAS_X1", fn);
    if (t->dy1 && !pl->has_w1)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: t->dy1 is set but desc->flags lacks DARN_FLAG_HAS_WEIGHT1", fn);
    if (t->weight1 && !pl->has_w1)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: t->weight1 is set but desc->flags lacks DARN_FLAG_HAS_WEIGHT1", fn);
    if (t->dweight1 && !pl->has_w1)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: t->dweight1 is set but desc->flags lacks DARN_FLAG_HAS_WEIGHT1", fn);
    if (t->dbias1 && !pl->has_b1)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: t->dbias1 is set but desc->flags lacks DARN_FLAG_HAS_BIAS1", fn);
    if (part && pl->has_w1)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: desc->flags has DARN_FLAG_HAS_WEIGHT1: the row-block backward returns "
                         "the partials of one weight (and bias) only", fn);
    if (pl->fp8_out && desc->dy_dtype == DARN_DTYPE_SAME_AS_OUT)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: desc->out_dtype = %s and desc->dy_dtype = DARN_DTYPE_SAME_AS_OUT: dy "
                         "cannot be fp8; set desc->dy_dtype to DARN_F32, DARN_F16 or DARN_BF16", fn,
                         darn_dtype_name(desc->out_dtype));
    /* The mask is read only where it can say something: at p = 0 every element is kept, at p = 1 none. */
    pl->mask_read = t->mask != NULL && pl->dropout && pl->drop.threshold < (UINT64_C(1) << 32);
    pl->mask1_read = t->mask1 != NULL && pl->dropout && pl->drop.threshold < (UINT64_C(1) << 32);
    const darn_desc *d = desc;
    bufs L = {.n = 0, .fn = fn};
    TRY(add_matrix(&L, pl, "t->dy", t->dy, t->dy_stride, pl->dy_dtype, false, &pl->s_dy));
    TRY(add_matrix(&L, pl, "t->h", t->h, t->h_stride, pl->resout_dtype, false, &pl->s_h));
    TRY(add_matrix(&L, pl, "t->dresidual_out", t->dresidual_out, t->dresidual_out_stride, pl->resout_dtype, false,
                   &pl->s_dresout));
    TRY(add_matrix(&L, pl, "t->dx", t->dx, t->dx_stride, d->x_dtype, true, &pl->s_dx));
    TRY(add_matrix(&L, pl, "t->dresidual", t->dresidual, t->dresidual_stride, d->residual_dtype, true, &pl->s_dres));
    TRY(add_matrix(&L, pl, "t->dy1", t->dy1, t->dy1_stride, pl->dy_dtype, false, &pl->s_dy1));
    TRY(add_matrix(&L, pl, "t->dx1", t->dx1, t->dx1_stride, d->x_dtype, true, &pl->s_dx1));
    if (part) {
        if (t->dweight || t->dbias)
            return darn_fail(DARN_ERR_UNSUPPORTED, "%s: t->%s is set: this call returns the chunk partials (reduce "
                             "them with darn_wgrad_reduce), so t->dweight and t->dbias must be NULL", fn,
                             t->dweight ? "dweight" : "dbias");
        if (part->b && !pl->has_bias)
            return darn_fail(DARN_ERR_UNSUPPORTED, "%s: dbias_partials is set but desc->flags lacks DARN_FLAG_HAS_BIAS",
                             fn);
        if (part->chunks > 0) {
            if (!part->w) return darn_fail(DARN_ERR_NULL_POINTER, "%s: dweight_partials is NULL", fn);
            if (pl->has_bias && !part->b)
                return darn_fail(DARN_ERR_NULL_POINTER, "%s: dbias_partials is NULL but desc->flags has "
                                 "DARN_FLAG_HAS_BIAS", fn);
        }
    } else { /* dweight / dbias are written even for M = 0 (set to +0). */
        REQUIRE(t->dweight, "");
        if (pl->has_bias) REQUIRE(t->dbias, " but desc->flags has DARN_FLAG_HAS_BIAS");
        if (pl->has_w1) REQUIRE(t->dweight1, " but desc->flags has DARN_FLAG_HAS_WEIGHT1");
        if (pl->has_b1) REQUIRE(t->dbias1, " but desc->flags has DARN_FLAG_HAS_BIAS1");
    }
    const uint64_t m = (uint64_t)pl->m, n = (uint64_t)pl->n;
    if (pl->m > 0) {
        REQUIRE(t->dy, "");
        REQUIRE(t->h, "");
        REQUIRE(t->weight, "");
        REQUIRE(t->rstd, "");
        if (pl->layer) REQUIRE(t->mean, " (LayerNorm backward needs the forward's mean)");
        REQUIRE(t->dx, "");
        if (pl->has_rowscale) REQUIRE(t->rowscale, " but desc->flags has DARN_FLAG_HAS_ROWSCALE");
        if (pl->has_x1) REQUIRE(t->dx1, " but desc->flags has DARN_FLAG_HAS_X1");
        if (pl->has_w1) REQUIRE(t->dy1, " but desc->flags has DARN_FLAG_HAS_WEIGHT1");
        if (pl->has_w1) REQUIRE(t->weight1, " but desc->flags has DARN_FLAG_HAS_WEIGHT1");
        TRY(add_vector(&L, "t->weight", t->weight, n, darn_dtype_size(d->weight_dtype), false));
        TRY(add_vector(&L, "t->weight1", t->weight1, n, darn_dtype_size(d->weight_dtype), false));
        TRY(add_vector(&L, "t->rstd", t->rstd, m, 4, false));
        TRY(add_vector(&L, "t->mean", t->mean, m, 4, false));
        TRY(add_vector(&L, "t->rowscale", t->rowscale, m, 4, false));
        if (pl->mask_read) {
            const uint64_t rb = (uint64_t)darn_mask_row_bytes(pl->n);
            if (m > (uint64_t)INT64_MAX / rb)
                return darn_fail(DARN_ERR_OVERFLOW, "%s: t->mask: byte size overflows", fn);
            TRY(add_vector(&L, "t->mask", t->mask, m * rb, 1, false));
        }
        if (pl->mask1_read) {
            const uint64_t rb = (uint64_t)darn_mask_row_bytes(pl->n);
            if (m > (uint64_t)INT64_MAX / rb)
                return darn_fail(DARN_ERR_OVERFLOW, "%s: t->mask1: byte size overflows", fn);
            TRY(add_vector(&L, "t->mask1", t->mask1, m * rb, 1, false));
        }
        TRY(add_vector(&L, "desc->rng_seed_ptr", d->rng_seed_ptr, 1, 8, false));
        TRY(add_vector(&L, "desc->rng_offset_ptr", d->rng_offset_ptr, 1, 8, false));
    } else {
        L.n = 0; /* M = 0: only dweight / dbias are touched */
    }
    if (part) {
        if (part->chunks > 0) {
            if (n > (uint64_t)INT64_MAX / 4 / (uint64_t)part->chunks)
                return darn_fail(DARN_ERR_OVERFLOW, "%s: chunks * N * 4 bytes of the partials overflow", fn);
            /* 16 bytes: the GPU kernels store them as float4 (as the workspace they replace) */
            for (int k = 0; k < 2; k++) {
                const float *q = k ? part->b : part->w;
                if (q && (uintptr_t)q % 16)
                    return darn_fail(DARN_ERR_MISALIGNED, "%s: %s = %p must be 16-byte aligned", fn,
                                     k ? "dbias_partials" : "dweight_partials", (const void *)q);
            }
            TRY(add_vector(&L, "dweight_partials", part->w, (uint64_t)part->chunks * n, 4, true));
            TRY(add_vector(&L, "dbias_partials", part->b, (uint64_t)part->chunks * n, 4, true));
        }
        const size_t ws_need = gpu ? darn_gpu_bwd_rowsum_bytes(pl) : 0;
        if (workspace && ws_need) TRY(add_vector(&L, "workspace", workspace, ws_need, 1, true));
    } else {
        TRY(add_vector(&L, "t->dweight", t->dweight, n, darn_dtype_size(d->weight_dtype), true));
        TRY(add_vector(&L, "t->dbias", t->dbias, n, darn_dtype_size(d->bias_dtype), true));
        TRY(add_vector(&L, "t->dweight1", t->dweight1, n, darn_dtype_size(d->weight_dtype), true));
        TRY(add_vector(&L, "t->dbias1", t->dbias1, n, darn_dtype_size(d->bias_dtype), true));
        size_t at = 0, ws_need = 0;
        TRY(darn_bwd_workspace_layout(pl, gpu, &at, &ws_need));
        if (workspace && ws_need) TRY(add_vector(&L, "workspace", workspace, ws_need, 1, true));
    }
    TRY(add_slice_bufs(&L, slice));
    allow_in_place(&L, t->dx, t->dy);
    allow_in_place(&L, t->dresidual, t->dresidual_out);
    return check_overlaps(&L);
}

darn_status darn_validate_bwd(darn_plan *pl, const darn_desc *desc, const darn_bwd_tensors *t, const void *workspace,
                              int gpu)
{
    return validate_bwd(pl, desc, t, workspace, gpu, NULL, NULL, "darn_bwd");
}

darn_status darn_validate_bwd_partials(darn_plan *pl, const darn_desc *block_desc, const darn_bwd_tensors *t,
                                       const float *dweight_partials, const float *dbias_partials, int64_t chunks,
                                       const void *workspace, int gpu, const char *fn)
{
    const bwd_partials part = {dweight_partials, dbias_partials, chunks};
    return validate_bwd(pl, block_desc, t, workspace, gpu, &part, NULL, fn);
}

darn_status darn_validate_bwd_slice(darn_plan *pl, const darn_desc *slice_desc, const darn_bwd_tensors *t,
                                    const void *workspace, const darn_slice_bufs *slice, const char *fn)
{
    return validate_bwd(pl, slice_desc, t, workspace, 0, NULL, slice, fn);
}

static darn_status add_slice_bufs(bufs *L, const darn_slice_bufs *slice)
{
    if (!slice) return DARN_OK;
    for (int k = 0; k < 3; k++)
        if (slice->b[k].p && slice->b[k].bytes)
            TRY(add_vector(L, slice->b[k].name, slice->b[k].p, slice->b[k].bytes / 4, 4, slice->b[k].output));
    return DARN_OK;
}

darn_status darn_bwd_partials_workspace(const darn_plan *pl, size_t *bytes)
{
    const uint64_t g = (uint64_t)pl->wgrad_chunks, n = (uint64_t)pl->n, parts = (uint64_t)darn_wgrad_parts(pl);
    if (g != 0 && n > (uint64_t)SIZE_MAX / 4 / parts / g)
        return darn_fail(DARN_ERR_OVERFLOW, "darn_bwd_workspace_size: G * N * 4 bytes overflows size_t");
    *bytes = (size_t)(g * n * 4 * parts);
    return DARN_OK;
}

bool darn_wgrad_has(const darn_plan *pl, int k)
{
    return k == 0 || (k == 1 && pl->has_bias) || (k == 2 && pl->has_w1) || (k == 3 && pl->has_b1);
}

int darn_wgrad_parts(const darn_plan *pl)
{
    int parts = 0;
    for (int k = 0; k < 4; k++) parts += darn_wgrad_has(pl, k);
    return parts;
}

void darn_wgrad_sets(const darn_plan *pl, void *workspace, float *q[4])
{
    float *at = (float *)workspace;
    for (int k = 0; k < 4; k++) {
        q[k] = darn_wgrad_has(pl, k) && at ? at : NULL;
        if (q[k]) at += pl->wgrad_chunks * pl->n;
    }
}
