/*
 * fuzz_darn.c — libFuzzer harness over darn's CPU backend (issue 12).
 *
 * Each input is decoded into one call: darn_fwd, darn_bwd, darn_fwd_workspace_size or
 * darn_bwd_workspace_size, with a descriptor (enums, flags, M and N <= 64 or a shape the library must
 * reject, eps, p, seed, offset, rng pointers), row strides, and for every pointer a choice: its own
 * buffer, NULL, an alias into another tensor's buffer at an offset, its in-place partner, or misaligned.
 * All buffers, the rng words and the workspace live in one arena. The tensors of the parallel residual
 * (contract 4: x1, weight1, bias1, out1, mask1; dy1, weight1, mask1, dx1, dweight1, dbias1) are decoded
 * after the workspace byte, so that inputs written for the older format decode as they did (their
 * missing bytes read as 0: own buffer, contiguous, absent unless the flag asks). The invariant:
 *
 *   - a failing call returns a known status, leaves a message, and changes no byte of the arena;
 *   - a successful call clears the message, changes no arena byte outside the rows of its declared
 *     outputs (and the workspace it asked for), and its outputs equal, bit for bit, those of the same call
 *     on separate, contiguous, freshly allocated buffers (inputs copied from the arena as it was).
 *
 * The invariant does not depend on output values, so it holds across numerics contracts. Only views the
 * library can read and write without leaving the arena are valid calls: huge shapes and strides are
 * chosen only where the library must reject them (or where M <= 1 makes the stride irrelevant).
 *
 * Build and run: README.md, "Fuzzing"; tools/test-all fuzz.
 */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <darn/darn.h>

/* ---- the arena ----------------------------------------------------------------------------------- */
/* Slots 0 .. NSLOT - 3 hold one tensor each; the last two, the workspace (the backward's reaches 4 parts of
 * [M, N] fp32 partials, 64 KiB, since contract 4). Two spare slots after them: an alias (or a workspace) put
 * anywhere in the last slot may run past it by up to 64 KiB. */
enum { SLOT = 36 * 1024, NSLOT = 22, ARENA = (NSLOT + 2) * SLOT };
enum { MAXN = 64, MAXM = 64, MAXSTRIDE_EXTRA = 16 };                /* span <= (63 * 128 + 64) * 4 < SLOT */
_Static_assert(4 * MAXM * MAXN * 4 + 12 <= 2 * SLOT, "the largest CPU backward workspace fits its two slots");

static unsigned char *arena, *pristine[2];

/* DARN_FUZZ_STATS=1: at exit, how many calls of each kind failed and succeeded (is the fuzzer reaching
 * successful calls with interesting layouts, or only bad input?). DARN_FUZZ_TRACE=1: one line per call,
 * its status and message (to see what a corpus file does: darn_fuzz FILE...). */
enum { ST_FWD, ST_BWD, ST_QUERY, ST_KINDS };
static long stats[ST_KINDS][3], stats_status[DARN_ERR_CHUNK_SPLIT + 2]; /* every status, then unknown */
/* successful darn_fwd / darn_bwd calls with M > 0 and a parallel-residual flag: with x1, with a second
 * output (weight1), with both */
static long stats_par[2][3];
static bool trace;
static void print_stats(void)
{
    static const char *kind[ST_KINDS] = {"darn_fwd", "darn_bwd", "workspace queries"};
    for (int k = 0; k < ST_KINDS; ++k)
        fprintf(stderr, "fuzz_darn: %-17s %8ld ok (%ld with M > 0) %8ld failed\n", kind[k], stats[k][0],
                stats[k][2], stats[k][1]);
    for (int k = 0; k < 2; ++k)
        fprintf(stderr, "fuzz_darn: %-17s %8ld ok parallel (M > 0): %ld with x1, %ld with weight1, %ld with both\n",
                kind[k], stats_par[k][0] + stats_par[k][1] - stats_par[k][2], stats_par[k][0], stats_par[k][1],
                stats_par[k][2]);
    for (int s = 1; s <= DARN_ERR_CHUNK_SPLIT; ++s)
        if (stats_status[s])
            fprintf(stderr, "fuzz_darn:   %8ld %s\n", stats_status[s], darn_status_string((darn_status)s));
}
static void count(int kind, darn_status s, const darn_desc *d)
{
    const int64_t m = d->rows;
    stats[kind][s != DARN_OK]++;
    if (s == DARN_OK && m > 0) stats[kind][2]++;
    if (s == DARN_OK && m > 0 && kind != ST_QUERY) {
        const bool x1 = d->flags & DARN_FLAG_HAS_X1, w1 = d->flags & DARN_FLAG_HAS_WEIGHT1;
        stats_par[kind][0] += x1;
        stats_par[kind][1] += w1;
        stats_par[kind][2] += x1 && w1;
    }
    if (trace)
        fprintf(stderr, "fuzz_darn: %s M = %lld flags 0x%x: %s %s\n",
                kind == ST_FWD ? "darn_fwd" : kind == ST_BWD ? "darn_bwd" : "query", (long long)m, d->flags,
                darn_status_string(s), darn_last_error());
    stats_status[(unsigned)s <= DARN_ERR_CHUNK_SPLIT ? (unsigned)s : DARN_ERR_CHUNK_SPLIT + 1]++;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_darn: INVARIANT BROKEN: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    arena = aligned_alloc(64, ARENA);
    /* pristine[0]: random bits (NaN, inf, subnormals of every dtype). pristine[1]: every 16-bit half is
     * +-[1, 2) as f16 and about +-0.01 as bf16 and (as the high half) as f32: moderate values. */
    for (int k = 0; k < 2; ++k) {
        pristine[k] = aligned_alloc(64, ARENA);
        uint64_t s = 12 + (uint64_t)k;
        for (size_t i = 0; i < ARENA; i += 8) {
            uint64_t v = splitmix(&s);
            if (k == 1) v = (v & UINT64_C(0x83FF83FF83FF83FF)) | UINT64_C(0x3C003C003C003C00);
            memcpy(pristine[k] + i, &v, 8);
        }
    }
    if (!arena || !pristine[0] || !pristine[1]) abort();
    const char *st = getenv("DARN_FUZZ_STATS");
    if (st && st[0] == '1') atexit(print_stats);
    const char *tr = getenv("DARN_FUZZ_TRACE");
    trace = tr && tr[0] == '1';
    return 0;
}

/* ---- input decoding ------------------------------------------------------------------------------ */
typedef struct rd {
    const uint8_t *p;
    size_t n;
} rd;

static uint8_t u8(rd *r)
{
    if (r->n == 0) return 0;
    r->n--;
    return *r->p++;
}
/* Little-endian; each read its own statement (the order of two calls in one expression is unspecified). */
static uint16_t u16(rd *r)
{
    const unsigned lo = u8(r);
    return (uint16_t)(lo | (unsigned)u8(r) << 8);
}
static uint32_t u32(rd *r)
{
    const uint32_t lo = u16(r);
    return lo | (uint32_t)u16(r) << 16;
}
static uint64_t u64(rd *r)
{
    const uint64_t lo = u32(r);
    return lo | (uint64_t)u32(r) << 32;
}
/* A position in the arena: a slot, then a byte offset in it rounded down to a multiple of `align`. */
static unsigned char *at(rd *r, size_t align)
{
    const int k = u8(r) % NSLOT;
    return arena + (size_t)k * SLOT + (u16(r) % SLOT) / align * align;
}

static unsigned char *slot(int k) { return arena + (size_t)k * SLOT; }

static darn_dtype pick_dtype(rd *r)
{
    const uint8_t b = u8(r);
    return b < 250 ? (darn_dtype)(b % 3) : (darn_dtype)(b - 250 + 3); /* 3..6: fp8 (out only), 7, 8: not a dtype */
}

/* A float: mostly one of the table's (edge values), else any 32 bits. */
static float pick_float(rd *r, const float *t, size_t count)
{
    const uint8_t b = u8(r);
    if (b < 200) return t[b % count];
    const uint32_t bits = u32(r);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
static float pick_eps(rd *r)
{
    static const float t[] = {1e-5f, 1e-6f, 1.0f, 1e-30f, FLT_MIN, 0x1p-149f, FLT_MAX, 0.0f, -0.0f, -1e-6f, NAN,
                              INFINITY, -INFINITY, 1e-12f};
    return pick_float(r, t, sizeof t / sizeof t[0]);
}
static float pick_scale(rd *r)
{
    static const float t[] = {1.0f, 0.5f, 448.0f, 57344.0f, 0x1p-20f, 0.0f, -0.0f, -1.0f, NAN, INFINITY, FLT_MIN,
                              0x1p-149f, FLT_MAX, 3.0f};
    return pick_float(r, t, sizeof t / sizeof t[0]);
}
static double pick_p(rd *r)
{
    static const double t[] = {0.0, 0.1, 0.5, 0.9, 1.0, 1.0 - 0x1p-53, 0x1p-32, 0x1p-33, 1e-300, -0.0, -1e-300,
                               1.0000000000000002, NAN, INFINITY, 0.25, 0.999};
    const uint8_t b = u8(r);
    if (b < 200) return t[b % (sizeof t / sizeof t[0])];
    const uint64_t bits = u64(r);
    double p;
    memcpy(&p, &bits, 8);
    return p;
}

/* M and N: mostly valid and small; sometimes a shape every call must reject before touching memory. */
static void pick_shape(rd *r, int64_t *m, int64_t *n)
{
    const uint8_t a = u8(r), b = u8(r);
    *m = a % (MAXM + 1);
    *n = 1 + b % MAXN;
    if (a < 248) return;
    switch (a - 248) {
    case 0: *m = -1; break;
    case 1: *m = INT64_MIN; break;
    case 2: *n = 0; break;
    case 3: *n = -1; break;
    case 4: *n = INT64_MIN; break;
    case 5: *m = INT64_C(1) << 40; *n = INT64_C(1) << 30; break; /* M * N overflows */
    case 6: *m = INT64_MAX; *n = 2 + b % MAXN; break;            /* M * N overflows */
    default: *m = 3; *n = INT64_MAX; break;                      /* M * N overflows */
    }
}

/* A row stride: 0 (contiguous), N, N + small, 2N or 4N (interleaving, also of dtypes of different sizes),
 * bad (< N), or huge (rejected as overflow unless M <= 1, where only row 0 is touched). */
static int64_t pick_stride(rd *r, int64_t n)
{
    const uint8_t b = u8(r);
    switch (b % 10) {
    case 0: case 1: case 2: return 0;
    case 3: return n;
    case 4: return n + (int64_t)(u8(r) % (MAXSTRIDE_EXTRA + 1));
    case 5: return 2 * n;
    case 6: return n <= MAXN / 2 ? 4 * n : 2 * n; /* at most 128, as 2N */
    case 7: return n > 1 ? n - 1 - (int64_t)(u8(r) % (uint8_t)(n - 1)) : -1; /* 0 < s < N, or -1 */
    case 8: return b & 0x80 ? -n : -1;
    default: return b & 0x80 ? INT64_MAX : INT64_MAX / 2 + 1;
    }
}

/* Where a pointer goes: its own slot (offset 0, or a small element-aligned offset), NULL, into another
 * slot at an offset, its in-place partner, or misaligned. `es` is the element size. */
static void *pick_ptr(rd *r, int own, size_t es, void *partner)
{
    const uint8_t b = u8(r);
    switch (b % 12) {
    case 0: case 1: case 2: case 3: case 4: return slot(own);
    case 5: return slot(own) + es * (u8(r) % 16);
    case 6: return NULL;
    case 7: case 8: return at(r, es); /* alias: another slot (or this one), element-aligned offset */
    case 9: return partner ? partner : slot(own);
    case 10: return es > 1 ? slot(own) + 1 + u8(r) % (es - 1) : slot(own);
    default: return at(r, 1); /* alias at a raw byte offset (often misaligned) */
    }
}

/* ---- views: which bytes a tensor covers ----------------------------------------------------------- */
typedef struct view {
    const void *p;
    int64_t rows, step, width; /* bytes: rows [p + k*step, p + k*step + width) */
} view;

static view mat(const void *p, int64_t m, int64_t n, int64_t stride, darn_dtype dt)
{
    const int64_t es = (int64_t)darn_dtype_size(dt);
    if (!p || m <= 0) return (view){NULL, 0, 1, 0}; /* absent: its stride may be anything >= N */
    /* with one row the stride is never used (it may be huge) */
    return (view){p, m, m > 1 ? (stride ? stride : n) * es : n * es, n * es};
}
static view vec(const void *p, int64_t bytes) { return (view){p, p && bytes > 0 ? 1 : 0, bytes, bytes}; }

static bool in_view(const view *v, const unsigned char *q)
{
    if (!v->p || v->rows == 0 || q < (const unsigned char *)v->p) return false;
    const uint64_t off = (uint64_t)(q - (const unsigned char *)v->p);
    return off / (uint64_t)v->step < (uint64_t)v->rows && off % (uint64_t)v->step < (uint64_t)v->width;
}

/* Copies a view's rows into a fresh contiguous buffer (NULL stays NULL). */
static void *dup_view(const view *v, const unsigned char *src_arena)
{
    if (!v->p) return NULL;
    const size_t bytes = (size_t)(v->rows * v->width);
    unsigned char *d = malloc(bytes ? bytes : 1);
    if (!d) abort();
    const unsigned char *s = src_arena + ((const unsigned char *)v->p - arena);
    for (int64_t k = 0; k < v->rows; ++k) memcpy(d + k * v->width, s + k * v->step, (size_t)v->width);
    return d;
}

static void *fresh(const void *like, size_t bytes)
{
    if (!like) return NULL;
    void *d = malloc(bytes ? bytes : 1);
    if (!d) abort();
    memset(d, 0x5A, bytes);
    return d;
}

/* The rows of output view v in the arena equal the contiguous buffer c. */
static void same_rows(const view *v, const void *c, const char *name)
{
    if (!v->p) return;
    for (int64_t k = 0; k < v->rows; ++k)
        if (memcmp((const unsigned char *)v->p + k * v->step, (const unsigned char *)c + k * v->width,
                   (size_t)v->width) != 0)
            die("a successful call differs from the clean run on separate buffers", name);
}

/* Every arena byte outside the output views equals the pristine arena. */
static void only_outputs_written(const unsigned char *pr, const view *outs, int nout)
{
    for (size_t i = 0; i < ARENA; i += 4096) {
        const size_t len = ARENA - i < 4096 ? ARENA - i : 4096;
        if (memcmp(arena + i, pr + i, len) == 0) continue;
        for (size_t j = i; j < i + len; ++j) {
            if (arena[j] == pr[j]) continue;
            bool ok = false;
            for (int k = 0; k < nout && !ok; ++k) ok = in_view(&outs[k], arena + j);
            if (!ok) {
                char where[64];
                snprintf(where, sizeof where, "arena byte %zu (slot %zu + %zu)", j, j / SLOT, j % SLOT);
                die("a successful call wrote outside its declared outputs", where);
            }
        }
    }
}

static void check_failed(darn_status s, const unsigned char *pr, const char *fn)
{
    if ((int)s < 1 || (int)s > DARN_ERR_CHUNK_SPLIT) die("unknown status", fn);
    if (darn_last_error()[0] == '\0') die("a failing call left no message", fn);
    if (memcmp(arena, pr, ARENA) != 0) die("a failing call changed a byte", darn_last_error());
}

/* rng words of the clean run: the values the arena held (the call succeeded, so they are aligned). */
static void clean_rng(darn_desc *c, const darn_desc *d, const unsigned char *pr, uint64_t w[2])
{
    if (!d->rng_seed_ptr) return;
    memcpy(&w[0], pr + ((const unsigned char *)d->rng_seed_ptr - arena), 8);
    memcpy(&w[1], pr + ((const unsigned char *)d->rng_offset_ptr - arena), 8);
    c->rng_seed_ptr = &w[0];
    c->rng_offset_ptr = &w[1];
}

/* ---- the calls ------------------------------------------------------------------------------------ */
enum { S_X, S_RES, S_ROWSCALE, S_W, S_B, S_OUT, S_RESOUT, S_MASK, S_RSTD, S_MEAN, S_RNG, S_SPARE /* 11: unused */,
       S_SCALE, S_AMAX, S_X1, S_W1, S_B1, S_OUT1, S_MASK1, S_WS = NSLOT - 2 /* and NSLOT - 1 */ };
enum { S_DY = 0, S_H = 1, S_DRESOUT = 2, S_DX = 5, S_DRES = 6, S_DW = 3, S_DB = 4, S_BMASK = 7, S_BRSTD = 8,
       S_BMEAN = 9, S_BROWSCALE = 12, S_BW = 13, S_DY1 = 14, S_BW1 = 15, S_BMASK1 = 16, S_DX1 = 17, S_DW1 = 18,
       S_DB1 = 19 };
_Static_assert(S_MASK1 < S_WS && S_DB1 < S_WS, "every tensor has a slot of its own");

static void *pick_ws(rd *r, size_t need, size_t *bytes)
{
    const uint8_t b = u8(r);
    switch (b % 8) {
    case 0: *bytes = need; return NULL;
    case 1: *bytes = need ? need - 1 : 0; return slot(S_WS);
    case 2: *bytes = need + u8(r); return slot(S_WS);
    case 3: *bytes = SIZE_MAX; return slot(S_WS);
    case 4: *bytes = need; return slot(S_WS) + 4 * (1 + u8(r) % 3); /* not 16-byte aligned */
    case 5: *bytes = need; return at(r, 16); /* may alias a tensor */
    default: *bytes = need; return slot(S_WS);
    }
}

static void run_fwd(rd *r, const darn_desc *d, darn_backend be, const unsigned char *pr)
{
    const int64_t m = d->rows, n = d->cols > 0 && d->cols <= MAXN ? d->cols : 1;
    const size_t ex = darn_dtype_size(d->x_dtype) ? darn_dtype_size(d->x_dtype) : 1;
    const size_t eo = darn_dtype_size(d->out_dtype) ? darn_dtype_size(d->out_dtype) : 1;
    const darn_dtype ro = darn_residual_out_dtype(d);
    const size_t er = darn_dtype_size(d->residual_dtype) ? darn_dtype_size(d->residual_dtype) : 1;
    const size_t ero = darn_dtype_size(ro) ? darn_dtype_size(ro) : 1;
    const size_t ew = darn_dtype_size(d->weight_dtype) ? darn_dtype_size(d->weight_dtype) : 1;
    const size_t eb = darn_dtype_size(d->bias_dtype) ? darn_dtype_size(d->bias_dtype) : 1;
    darn_fwd_tensors t = {0};
    t.x = pick_ptr(r, S_X, ex, NULL);
    t.x_stride = pick_stride(r, n);
    t.residual = pick_ptr(r, S_RES, er, NULL);
    t.residual_stride = pick_stride(r, n);
    t.rowscale = pick_ptr(r, S_ROWSCALE, 4, NULL);
    t.weight = pick_ptr(r, S_W, ew, NULL);
    t.bias = pick_ptr(r, S_B, eb, NULL);
    t.out = pick_ptr(r, S_OUT, eo, (void *)(uintptr_t)t.x);
    t.out_stride = u8(r) & 1 ? t.x_stride : pick_stride(r, n);
    t.residual_out = pick_ptr(r, S_RESOUT, ero, (void *)(uintptr_t)t.residual);
    t.residual_out_stride = u8(r) & 1 ? t.residual_stride : pick_stride(r, n);
    t.mask = pick_ptr(r, S_MASK, 1, NULL);
    t.rstd = pick_ptr(r, S_RSTD, 4, NULL);
    t.mean = pick_ptr(r, S_MEAN, 4, NULL);
    t.amax = pick_ptr(r, S_AMAX, 4, NULL);
    /* optional tensors are absent unless their flag asks for them, or the byte says keep (% 4 == 3) */
    if (!(d->flags & DARN_FLAG_HAS_RESIDUAL) && u8(r) % 4 != 3) t.residual = NULL;
    if (!(d->flags & DARN_FLAG_HAS_BIAS) && u8(r) % 4 != 3) t.bias = NULL;
    if (!(d->flags & DARN_FLAG_HAS_ROWSCALE) && u8(r) % 4 != 3) t.rowscale = NULL;
    if (d->norm != DARN_LAYERNORM && u8(r) % 4 != 3) t.mean = NULL;
    if (darn_dtype_size(d->out_dtype) != 1 && u8(r) % 4 != 3) t.amax = NULL; /* amax: fp8 outputs only */
    size_t need = 0;
    (void)darn_fwd_workspace_size(d, be, &need);
    size_t ws_bytes;
    void *ws = pick_ws(r, need, &ws_bytes);
    /* the parallel residual (after the workspace byte: see the header). out1's partner is x1 or x, but no
     * in-place pair exists for out1 (darn.h: only out == x and residual_out == residual), so either is
     * DARN_ERR_ALIASING for M > 0. */
    t.x1 = pick_ptr(r, S_X1, ex, NULL);
    t.x1_stride = pick_stride(r, n);
    t.weight1 = pick_ptr(r, S_W1, ew, NULL);
    t.bias1 = pick_ptr(r, S_B1, eb, NULL);
    const uint8_t ob = u8(r);
    t.out1 = pick_ptr(r, S_OUT1, eo, (void *)(uintptr_t)(ob & 1 ? t.x : t.x1));
    t.out1_stride = ob & 2 ? (ob & 1 ? t.x_stride : t.x1_stride) : pick_stride(r, n);
    t.mask1 = pick_ptr(r, S_MASK1, 1, NULL);
    if (!(d->flags & DARN_FLAG_HAS_X1) && u8(r) % 4 != 3) t.x1 = NULL;
    if (!(d->flags & DARN_FLAG_HAS_X1) && u8(r) % 4 != 3) t.mask1 = NULL;
    if (!(d->flags & DARN_FLAG_HAS_WEIGHT1) && u8(r) % 4 != 3) t.weight1 = NULL;
    if (!(d->flags & DARN_FLAG_HAS_WEIGHT1) && u8(r) % 4 != 3) t.out1 = NULL;
    if (!(d->flags & DARN_FLAG_HAS_BIAS1) && u8(r) % 4 != 3) t.bias1 = NULL;

    const darn_status s = darn_fwd(d, &t, ws, ws_bytes, be, NULL);
    count(ST_FWD, s, d);
    if (s != DARN_OK) return check_failed(s, pr, "darn_fwd");
    if (darn_last_error()[0] != '\0') die("a successful darn_fwd left a message", darn_last_error());
    const int64_t mrb = darn_mask_row_bytes(n);
    const int64_t wb = n * (int64_t)darn_dtype_size(d->weight_dtype), bb = n * (int64_t)darn_dtype_size(d->bias_dtype);
    view in[8] = {mat(t.x, m, n, t.x_stride, d->x_dtype), mat(t.residual, m, n, t.residual_stride, d->residual_dtype),
                  vec(t.rowscale, 4 * m), vec(t.weight, wb), vec(t.bias, bb),
                  mat(t.x1, m, n, t.x1_stride, d->x_dtype), vec(t.weight1, wb), vec(t.bias1, bb)};
    enum { NOUT = 8 };
    view out[NOUT] = {mat(t.out, m, n, t.out_stride, d->out_dtype),
                      mat(t.residual_out, m, n, t.residual_out_stride, ro), vec(t.mask, m * mrb),
                      vec(t.rstd, 4 * m), vec(t.mean, 4 * m), vec(t.amax, 4), /* amax: written at M = 0 too */
                      mat(t.out1, m, n, t.out1_stride, d->out_dtype), vec(t.mask1, m * mrb)};
    only_outputs_written(pr, out, NOUT);
    if (m == 0) return; /* nothing read; nothing written but amax */
    /* the clean run */
    darn_desc cd = *d;
    uint64_t w[2];
    float scale;
    clean_rng(&cd, d, pr, w);
    if (d->out_scale_ptr) { /* the value the arena held */
        memcpy(&scale, pr + ((const unsigned char *)d->out_scale_ptr - arena), 4);
        cd.out_scale_ptr = &scale;
    }
    darn_fwd_tensors c = {0};
    void *cin[8];
    for (int k = 0; k < 8; ++k) cin[k] = dup_view(&in[k], pr);
    c.x = cin[0];
    c.residual = cin[1];
    c.rowscale = cin[2];
    c.weight = cin[3];
    c.bias = cin[4];
    c.x1 = cin[5];
    c.weight1 = cin[6];
    c.bias1 = cin[7];
    void *cout[NOUT];
    for (int k = 0; k < NOUT; ++k) cout[k] = fresh(out[k].p, (size_t)(out[k].rows * out[k].width));
    c.out = cout[0];
    c.residual_out = cout[1];
    c.mask = cout[2];
    c.rstd = cout[3];
    c.mean = cout[4];
    c.amax = cout[5];
    c.out1 = cout[6];
    c.mask1 = cout[7];
    if (darn_fwd(&cd, &c, NULL, 0, DARN_BACKEND_CPU, NULL) != DARN_OK)
        die("the clean darn_fwd failed", darn_last_error());
    static const char *names[NOUT] = {"out", "residual_out", "mask", "rstd", "mean", "amax", "out1", "mask1"};
    for (int k = 0; k < NOUT; ++k) same_rows(&out[k], cout[k], names[k]);
    for (int k = 0; k < NOUT; ++k) free(cout[k]);
    for (int k = 0; k < 8; ++k) free(cin[k]);
}

static void run_bwd(rd *r, const darn_desc *d, darn_backend be, const unsigned char *pr)
{
    const int64_t m = d->rows, n = d->cols > 0 && d->cols <= MAXN ? d->cols : 1;
    const darn_dtype ro = darn_residual_out_dtype(d);
#define ES(dt) (darn_dtype_size(dt) ? darn_dtype_size(dt) : 1)
    darn_bwd_tensors t = {0};
    const darn_dtype dyt = d->dy_dtype == DARN_DTYPE_SAME_AS_OUT ? d->out_dtype : d->dy_dtype;
    t.dy = pick_ptr(r, S_DY, ES(dyt), NULL);
    t.dy_stride = pick_stride(r, n);
    t.h = pick_ptr(r, S_H, ES(ro), NULL);
    t.h_stride = pick_stride(r, n);
    t.weight = pick_ptr(r, S_BW, ES(d->weight_dtype), NULL);
    t.rstd = pick_ptr(r, S_BRSTD, 4, NULL);
    t.mean = pick_ptr(r, S_BMEAN, 4, NULL);
    t.rowscale = pick_ptr(r, S_BROWSCALE, 4, NULL);
    t.dresidual_out = pick_ptr(r, S_DRESOUT, ES(ro), NULL);
    t.dresidual_out_stride = pick_stride(r, n);
    t.mask = pick_ptr(r, S_BMASK, 1, NULL);
    t.dx = pick_ptr(r, S_DX, ES(d->x_dtype), (void *)(uintptr_t)t.dy);
    t.dx_stride = u8(r) & 1 ? t.dy_stride : pick_stride(r, n);
    t.dresidual = pick_ptr(r, S_DRES, ES(d->residual_dtype), (void *)(uintptr_t)t.dresidual_out);
    t.dresidual_stride = u8(r) & 1 ? t.dresidual_out_stride : pick_stride(r, n);
    t.dweight = pick_ptr(r, S_DW, ES(d->weight_dtype), NULL);
    t.dbias = pick_ptr(r, S_DB, ES(d->bias_dtype), NULL);
#undef ES
    if (!(d->flags & DARN_FLAG_HAS_RESIDUAL) && u8(r) % 4 != 3) t.dresidual = NULL;
    if (!(d->flags & DARN_FLAG_HAS_BIAS) && u8(r) % 4 != 3) t.dbias = NULL;
    if (!(d->flags & DARN_FLAG_HAS_ROWSCALE) && u8(r) % 4 != 3) t.rowscale = NULL;
    if (u8(r) % 2) t.dresidual_out = NULL;
    if (u8(r) % 2) t.mask = NULL;
    size_t need = 0;
    (void)darn_bwd_workspace_size(d, be, &need);
    size_t ws_bytes;
    void *ws = pick_ws(r, need, &ws_bytes);
    /* the parallel residual (after the workspace byte: see the header). dx1's partner is dy1 or dy, but no
     * in-place pair exists for dx1 (darn.h: only dx == dy and dresidual == dresidual_out), so either is
     * DARN_ERR_ALIASING for M > 0. */
#define ES(dt) (darn_dtype_size(dt) ? darn_dtype_size(dt) : 1)
    t.dy1 = pick_ptr(r, S_DY1, ES(dyt), NULL);
    t.dy1_stride = pick_stride(r, n);
    t.weight1 = pick_ptr(r, S_BW1, ES(d->weight_dtype), NULL);
    t.mask1 = pick_ptr(r, S_BMASK1, 1, NULL);
    const uint8_t xb = u8(r);
    t.dx1 = pick_ptr(r, S_DX1, ES(d->x_dtype), (void *)(uintptr_t)(xb & 1 ? t.dy : t.dy1));
    t.dx1_stride = xb & 2 ? (xb & 1 ? t.dy_stride : t.dy1_stride) : pick_stride(r, n);
    t.dweight1 = pick_ptr(r, S_DW1, ES(d->weight_dtype), NULL);
    t.dbias1 = pick_ptr(r, S_DB1, ES(d->bias_dtype), NULL);
#undef ES
    if (!(d->flags & DARN_FLAG_HAS_X1) && u8(r) % 4 != 3) t.dx1 = NULL;
    if (d->flags & DARN_FLAG_HAS_X1 ? u8(r) % 2 : u8(r) % 4 != 3) t.mask1 = NULL; /* optional, like mask */
    if (!(d->flags & DARN_FLAG_HAS_WEIGHT1) && u8(r) % 4 != 3) t.dy1 = NULL;
    if (!(d->flags & DARN_FLAG_HAS_WEIGHT1) && u8(r) % 4 != 3) t.weight1 = NULL;
    if (!(d->flags & DARN_FLAG_HAS_WEIGHT1) && u8(r) % 4 != 3) t.dweight1 = NULL;
    if (!(d->flags & DARN_FLAG_HAS_BIAS1) && u8(r) % 4 != 3) t.dbias1 = NULL;
    /* RMSNorm has no mean (DARN_ERR_UNSUPPORTED): absent unless the byte says keep, as in the forward */
    if (d->norm != DARN_LAYERNORM && u8(r) % 4 != 3) t.mean = NULL;

    const darn_status s = darn_bwd(d, &t, ws, ws_bytes, be, NULL);
    count(ST_BWD, s, d);
    if (s != DARN_OK) return check_failed(s, pr, "darn_bwd");
    if (darn_last_error()[0] != '\0') die("a successful darn_bwd left a message", darn_last_error());
    const int64_t ew = (int64_t)darn_dtype_size(d->weight_dtype), eb = (int64_t)darn_dtype_size(d->bias_dtype);
    const int64_t mm = m > 0 ? m : 0; /* M = 0: only dweight / dbias */
    enum { NIN = 11, NOUT = 7 };
    view in[NIN] = {mat(mm ? t.dy : NULL, m, n, t.dy_stride, dyt), mat(mm ? t.h : NULL, m, n, t.h_stride, ro),
                    vec(mm ? t.weight : NULL, n * ew), vec(mm ? t.rstd : NULL, 4 * m),
                    vec(mm ? t.mean : NULL, 4 * m), vec(mm ? t.rowscale : NULL, 4 * m),
                    mat(mm ? t.dresidual_out : NULL, m, n, t.dresidual_out_stride, ro),
                    vec(mm ? t.mask : NULL, m * darn_mask_row_bytes(n)),
                    mat(mm ? t.dy1 : NULL, m, n, t.dy1_stride, dyt), vec(mm ? t.weight1 : NULL, n * ew),
                    vec(mm ? t.mask1 : NULL, m * darn_mask_row_bytes(n))};
    view out[NOUT + 1] = {mat(t.dx, m, n, t.dx_stride, d->x_dtype),
                          mat(t.dresidual, m, n, t.dresidual_stride, d->residual_dtype), vec(t.dweight, n * ew),
                          vec(t.dbias, n * eb), mat(t.dx1, m, n, t.dx1_stride, d->x_dtype),
                          vec(t.dweight1, n * ew), vec(t.dbias1, n * eb),
                          vec(ws, (int64_t)need)}; /* the workspace: may be written, not compared */
    only_outputs_written(pr, out, NOUT + 1);
    /* the clean run */
    darn_desc cd = *d;
    uint64_t w[2];
    clean_rng(&cd, d, pr, w);
    darn_bwd_tensors c = {0};
    void *cin[NIN];
    for (int k = 0; k < NIN; ++k) cin[k] = dup_view(&in[k], pr);
    c.dy = cin[0];
    c.h = cin[1];
    c.weight = cin[2];
    c.rstd = cin[3];
    c.mean = cin[4];
    c.rowscale = cin[5];
    c.dresidual_out = cin[6];
    c.mask = cin[7];
    c.dy1 = cin[8];
    c.weight1 = cin[9];
    c.mask1 = cin[10];
    void *cout[NOUT];
    for (int k = 0; k < NOUT; ++k) cout[k] = fresh(out[k].p, (size_t)(out[k].rows * out[k].width));
    c.dx = cout[0];
    c.dresidual = cout[1];
    c.dweight = cout[2];
    c.dbias = cout[3];
    c.dx1 = cout[4];
    c.dweight1 = cout[5];
    c.dbias1 = cout[6];
    void *cws = fresh(&c, need);
    if (darn_bwd(&cd, &c, cws, need, DARN_BACKEND_CPU, NULL) != DARN_OK)
        die("the clean darn_bwd failed", darn_last_error());
    static const char *names[NOUT] = {"dx", "dresidual", "dweight", "dbias", "dx1", "dweight1", "dbias1"};
    for (int k = 0; k < NOUT; ++k) same_rows(&out[k], cout[k], names[k]);
    for (int k = 0; k < NIN; ++k) free(cin[k]);
    for (int k = 0; k < NOUT; ++k) free(cout[k]);
    free(cws);
}

static void run_query(rd *r, const darn_desc *d, darn_backend be, bool bwd, const unsigned char *pr)
{
    size_t bytes, before;
    memset(&bytes, 0xA5, sizeof bytes);
    before = bytes;
    size_t *bp = u8(r) % 16 ? &bytes : NULL;
    const darn_status s = bwd ? darn_bwd_workspace_size(d, be, bp) : darn_fwd_workspace_size(d, be, bp);
    const char *fn = bwd ? "darn_bwd_workspace_size" : "darn_fwd_workspace_size";
    count(ST_QUERY, s, d);
    if (s != DARN_OK) {
        check_failed(s, pr, fn);
        if (bytes != before) die("a failing workspace query wrote *bytes", fn);
        return;
    }
    if (!bp) die("a workspace query with bytes = NULL succeeded", fn);
    if (darn_last_error()[0] != '\0') die("a successful workspace query left a message", fn);
    if (memcmp(arena, pr, ARENA) != 0) die("a workspace query changed an arena byte", fn);
    if (!bwd && be == DARN_BACKEND_CPU && bytes != 0) die("the CPU forward asks for workspace", fn);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd r = {data, size};
    const uint8_t op = u8(&r);
    const unsigned char *pr = pristine[(op >> 4) & 1];
    memcpy(arena, pr, ARENA);

    darn_desc d;
    const uint8_t nb = u8(&r);
    const darn_norm norm = nb < 250 ? (darn_norm)(nb % 2) : (darn_norm)((int)nb - 252); /* -2..3 */
    int64_t m, n;
    pick_shape(&r, &m, &n);
    darn_desc_init(&d, norm, m, n, pick_dtype(&r));
    if (u8(&r) % 2) {
        d.residual_dtype = pick_dtype(&r);
        d.weight_dtype = pick_dtype(&r);
        d.bias_dtype = pick_dtype(&r);
        d.out_dtype = pick_dtype(&r);
    }
    const uint8_t fb = u8(&r);
    d.flags = fb & DARN_FLAGS_ALL;
    /* an unknown bit (above DARN_FLAGS_ALL) for fb = 101xxxxx: HAS_X1 | HAS_BIAS1 without HAS_WEIGHT1, which
     * validation rejects anyway (BIAS1 without WEIGHT1 alone, fb = 100xxxxx, still reaches that check) */
    _Static_assert(((DARN_FLAGS_ALL + 1u) & DARN_FLAGS_ALL) == 0 && (DARN_FLAGS_ALL + 1u) << 3 != 0,
                   "DARN_FLAGS_ALL is a contiguous low mask with room above it");
    if ((fb & 0xE0) == 0xA0) d.flags |= (DARN_FLAGS_ALL + 1u) << (fb & 3);
    if (u8(&r) % 4 == 0) d.eps = pick_eps(&r);
    d.dropout_p = pick_p(&r);
    d.seed = u8(&r) % 2 ? u64(&r) : 0;
    d.offset = u8(&r) % 2 ? u64(&r) : 0;
    /* rng pointers: none, both in their own slot, misaligned, into some slot (an output, maybe), or only one */
    const uint8_t rb = u8(&r);
    const unsigned char *rs = NULL, *ro = NULL;
    switch (rb % 8) {
    case 4: rs = slot(S_RNG); ro = slot(S_RNG) + 8 * (1 + u8(&r) % 4); break;
    case 5: rs = slot(S_RNG) + u8(&r) % 8; ro = slot(S_RNG) + 64 + u8(&r) % 8; break;
    case 6: rs = at(&r, 8); ro = at(&r, 8); break;
    case 7: *(rb & 0x80 ? &rs : &ro) = slot(S_RNG); break;
    default: break;
    }
    d.rng_seed_ptr = (const uint64_t *)(const void *)rs;
    d.rng_offset_ptr = (const uint64_t *)(const void *)ro;
    /* fp8 output scale (a value; or a pointer: its slot, misaligned, or into another slot) and dy's dtype */
    const uint8_t sb = u8(&r);
    if (sb % 4 == 1) d.out_scale = pick_scale(&r);
    if (sb % 8 == 2) d.out_scale_ptr = (const float *)(const void *)slot(S_SCALE);
    if (sb % 8 == 6) d.out_scale_ptr = (const float *)(const void *)at(&r, sb & 0x80 ? 1 : 4);
    if (sb >= 0xC0) d.dy_dtype = pick_dtype(&r);
    const uint8_t bb = u8(&r);
    const darn_backend be = bb < 250 ? DARN_BACKEND_CPU : bb < 253 ? DARN_BACKEND_GPU : (darn_backend)(bb - 250);

    switch (op % 4) {
    case 0: run_fwd(&r, &d, be, pr); break;
    case 1: run_bwd(&r, &d, be, pr); break;
    case 2: run_query(&r, &d, be, false, pr); break;
    default: run_query(&r, &d, be, true, pr); break;
    }
    return 0;
}
