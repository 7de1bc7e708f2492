/*
 * job.c — deterministic job inputs, one forward + backward run through darn's public API, digests.
 * See job.h for the contract of each function.
 */
#define _POSIX_C_SOURCE 200809L /* strtok_r */

#include "job.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "darn digests hash little-endian element bytes; add a byte swap for big-endian hosts"
#endif /* __BYTE_ORDER__ */

#define SENTINEL_BYTE 0xA5u /* fills output buffers and stride padding before a run */

static void set_msg(char *buf, size_t len, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif /* __GNUC__ */
    ;

static void set_msg(char *buf, size_t len, const char *fmt, ...)
{
    if (buf == NULL || len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/* ---- CPU memory ------------------------------------------------------------------------------------ */
static void *cpu_alloc(void *ctx, size_t bytes)
{
    (void)ctx;
    const size_t align = 64;
    if (bytes > SIZE_MAX - align) return NULL;
    const size_t rounded = bytes == 0 ? align : (bytes + align - 1) / align * align;
    return aligned_alloc(align, rounded);
}
static void cpu_release(void *ctx, void *ptr) { (void)ctx; free(ptr); }
static int cpu_copy(void *ctx, void *dst, const void *src, size_t bytes)
{
    (void)ctx;
    if (bytes > 0) memcpy(dst, src, bytes);
    return 0;
}
static int cpu_sync(void *ctx) { (void)ctx; return 0; }
static const char *cpu_error(void *ctx) { (void)ctx; return "out of host memory"; }

static const darn_mem k_mem_cpu = {
    .name = "cpu",
    .backend = DARN_BACKEND_CPU,
    .ctx = NULL,
    .stream = NULL,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .to_device = cpu_copy,
    .to_host = cpu_copy,
    .copy = cpu_copy,
    .sync = cpu_sync,
    .timer_start = NULL,
    .timer_stop = NULL,
    .error = cpu_error,
};

const darn_mem *darn_mem_cpu(void) { return &k_mem_cpu; }

const darn_mem *darn_mem_for(darn_backend backend)
{
    if (backend == DARN_BACKEND_CPU) return darn_mem_cpu();
#ifdef DARN_HAVE_GPU
    if (backend == DARN_BACKEND_GPU && darn_backend_available(DARN_BACKEND_GPU)) return darn_mem_gpu();
#endif /* DARN_HAVE_GPU */
    return NULL;
}

/* ---- timing --------------------------------------------------------------------------------------- */
static int timer_begin(const darn_mem *mem, double *t0)
{
    if (mem->timer_start != NULL) return mem->timer_start(mem->ctx);
    *t0 = darn_now_ms();
    return 0;
}

static int timer_end(const darn_mem *mem, double t0, double *ms)
{
    if (mem->timer_stop != NULL) return mem->timer_stop(mem->ctx, ms);
    if (mem->sync(mem->ctx) != 0) return -1;
    *ms = darn_now_ms() - t0;
    return 0;
}

double darn_mem_copy_ms(const darn_mem *mem, size_t bytes, int repeat)
{
    if (repeat < 1) repeat = 1;
    void *a = mem->alloc(mem->ctx, bytes), *b = mem->alloc(mem->ctx, bytes);
    double *t = malloc(sizeof(double) * (size_t)repeat);
    double med = -1.0;
    if (a == NULL || b == NULL || t == NULL) goto done;
    {
        /* Touch both buffers (first-touch page faults are not bandwidth), then one warm-up copy. */
        unsigned char *host = malloc(bytes > 0 ? bytes : 1);
        if (host == NULL) goto done;
        memset(host, 0x5A, bytes);
        const int bad = mem->to_device(mem->ctx, a, host, bytes) || mem->to_device(mem->ctx, b, host, bytes);
        free(host);
        if (bad || mem->copy(mem->ctx, b, a, bytes) || mem->sync(mem->ctx)) goto done;
    }
    for (int i = 0; i < repeat; ++i) {
        double t0 = 0.0;
        if (timer_begin(mem, &t0) || mem->copy(mem->ctx, b, a, bytes) || timer_end(mem, t0, &t[i])) goto done;
    }
    med = darn_median(t, repeat);
done:
    free(t);
    mem->release(mem->ctx, a);
    mem->release(mem->ctx, b);
    return med;
}

/* ---- names and config strings ---------------------------------------------------------------------- */
const char *darn_job_dtype_name(darn_dtype dtype)
{
    switch (dtype) {
    case DARN_F32: return "f32";
    case DARN_F16: return "f16";
    case DARN_BF16: return "bf16";
    case DARN_FP8_E4M3FN: return "e4m3fn";
    case DARN_FP8_E5M2: return "e5m2";
    case DARN_FP8_E4M3FNUZ: return "e4m3fnuz";
    case DARN_FP8_E5M2FNUZ: return "e5m2fnuz";
    case DARN_DTYPE_SAME_AS_OUT: break;
    }
    return "?";
}

int darn_job_dtype_parse(const char *text, darn_dtype *dtype)
{
    if (strcmp(text, "f32") == 0 || strcmp(text, "fp32") == 0 || strcmp(text, "float32") == 0) *dtype = DARN_F32;
    else if (strcmp(text, "f16") == 0 || strcmp(text, "fp16") == 0 || strcmp(text, "float16") == 0) *dtype = DARN_F16;
    else if (strcmp(text, "bf16") == 0 || strcmp(text, "bfloat16") == 0) *dtype = DARN_BF16;
    else if (strcmp(text, "e4m3fn") == 0 || strcmp(text, "fp8_e4m3fn") == 0) *dtype = DARN_FP8_E4M3FN;
    else if (strcmp(text, "e5m2") == 0 || strcmp(text, "fp8_e5m2") == 0) *dtype = DARN_FP8_E5M2;
    else if (strcmp(text, "e4m3fnuz") == 0 || strcmp(text, "fp8_e4m3fnuz") == 0) *dtype = DARN_FP8_E4M3FNUZ;
    else if (strcmp(text, "e5m2fnuz") == 0 || strcmp(text, "fp8_e5m2fnuz") == 0) *dtype = DARN_FP8_E5M2FNUZ;
    else return -1;
    return 0;
}

void darn_job_init(darn_job *job, darn_norm norm, int64_t rows, int64_t cols, darn_dtype dtype)
{
    darn_desc d;
    darn_desc_init(&d, norm, rows, cols, dtype);
    memset(job, 0, sizeof *job);
    job->norm = norm;
    job->rows = rows;
    job->cols = cols;
    job->x_dtype = job->residual_dtype = job->weight_dtype = job->bias_dtype = job->out_dtype = dtype;
    job->flags = 0;
    job->p = 0.0;
    job->eps = d.eps;
    job->seed = 0;
    job->offset = 0;
    job->dy_dtype = DARN_DTYPE_SAME_AS_OUT;
    job->scale = 1.0f;
}

static int is_fp8(darn_dtype d)
{
    return d == DARN_FP8_E4M3FN || d == DARN_FP8_E5M2 || d == DARN_FP8_E4M3FNUZ || d == DARN_FP8_E5M2FNUZ;
}

/* The dtype of the job's dy: dy_dtype, or out_dtype. */
static darn_dtype dy_dtype_of(const darn_job *job)
{
    return job->dy_dtype == DARN_DTYPE_SAME_AS_OUT ? job->out_dtype : job->dy_dtype;
}

void darn_job_desc(const darn_job *job, darn_desc *desc)
{
    darn_desc_init(desc, job->norm, job->rows, job->cols, job->x_dtype);
    desc->x_dtype = job->x_dtype;
    desc->residual_dtype = job->residual_dtype;
    desc->weight_dtype = job->weight_dtype;
    desc->bias_dtype = job->bias_dtype;
    desc->out_dtype = job->out_dtype;
    desc->flags = job->flags;
    desc->eps = job->eps;
    desc->dropout_p = job->p;
    desc->seed = job->seed;
    desc->offset = job->offset;
    desc->dy_dtype = job->dy_dtype;
    desc->out_scale = job->scale;
}

static darn_dtype resout_dtype(const darn_job *job)
{
    darn_desc d;
    darn_job_desc(job, &d);
    return darn_residual_out_dtype(&d);
}

int darn_job_h_is_x(const darn_job *job)
{
    return !(job->flags & (DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_ROWSCALE | DARN_FLAG_HAS_X1)) && job->p == 0.0 &&
           resout_dtype(job) == job->x_dtype;
}

static const struct {
    const char *name;
    uint32_t flag;
} k_flag_names[] = {
    {"res", DARN_FLAG_HAS_RESIDUAL},
    {"bias", DARN_FLAG_HAS_BIAS},
    {"rowscale", DARN_FLAG_HAS_ROWSCALE},
    {"zc", DARN_FLAG_ZERO_CENTERED_WEIGHT},
    {"rif32", DARN_FLAG_RESIDUAL_IN_FP32},
    /* parallel residual (contract 4): last, so that the flags of older configs print as they did */
    {"x1", DARN_FLAG_HAS_X1},
    {"w1", DARN_FLAG_HAS_WEIGHT1},
    {"b1", DARN_FLAG_HAS_BIAS1},
};
#define N_FLAG_NAMES (sizeof k_flag_names / sizeof k_flag_names[0])

/* Shortest "%.*g" that reads back to the same double (or float, with as_float). */
static void shortest_g(char *buf, size_t len, double v, int as_float)
{
    for (int prec = 1; prec <= 17; ++prec) {
        snprintf(buf, len, "%.*g", prec, v);
        if (as_float ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v) return;
    }
}

int darn_job_format(const darn_job *job, char *buf, size_t len)
{
    char flags[96] = "";
    for (size_t i = 0; i < N_FLAG_NAMES; ++i) {
        if (!(job->flags & k_flag_names[i].flag)) continue;
        if (flags[0] != '\0') strcat(flags, ",");
        strcat(flags, k_flag_names[i].name);
    }
    if (flags[0] == '\0') strcpy(flags, "-");
    char p[40], eps[40], scale[40], extra[96] = "";
    shortest_g(p, sizeof p, job->p, 0);
    shortest_g(eps, sizeof eps, (double)job->eps, 1);
    shortest_g(scale, sizeof scale, (double)job->scale, 1);
    /* keys added with fp8 outputs: only where they say something, so older lines keep their text */
    if (job->special) strcat(extra, " special=1");
    if (job->dy_dtype != DARN_DTYPE_SAME_AS_OUT)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " dy=%s", darn_job_dtype_name(job->dy_dtype));
    if (is_fp8(job->out_dtype)) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " scale=%s", scale);
    if (job->amax) strcat(extra, " amax=1");
    const int has_res = (job->flags & DARN_FLAG_HAS_RESIDUAL) != 0;
    const int has_bias = (job->flags & (DARN_FLAG_HAS_BIAS | DARN_FLAG_HAS_BIAS1)) != 0; /* b= is bias's and bias1's */
    const int n = snprintf(buf, len,
                           "%s M=%lld N=%lld x=%s res=%s w=%s b=%s out=%s flags=%s p=%s eps=%s seed=%llu "
                           "offset=%llu mask=%d dres=%d%s",
                           job->norm == DARN_LAYERNORM ? "layer" : "rms", (long long)job->rows,
                           (long long)job->cols, darn_job_dtype_name(job->x_dtype),
                           has_res ? darn_job_dtype_name(job->residual_dtype) : "-",
                           darn_job_dtype_name(job->weight_dtype),
                           has_bias ? darn_job_dtype_name(job->bias_dtype) : "-",
                           darn_job_dtype_name(job->out_dtype), flags, p, eps, (unsigned long long)job->seed,
                           (unsigned long long)job->offset, job->mask ? 1 : 0, job->dresidual_out ? 1 : 0, extra);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int parse_i64(const char *s, int64_t *v)
{
    if (*s == '\0' || isspace((unsigned char)*s)) return -1;
    char *end;
    errno = 0;
    const long long x = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0') return -1;
    *v = (int64_t)x;
    return 0;
}

static int parse_u64(const char *s, uint64_t *v)
{
    if (*s == '\0' || *s == '-' || *s == '+' || isspace((unsigned char)*s)) return -1;
    char *end;
    errno = 0;
    const unsigned long long x = strtoull(s, &end, 0);
    if (errno != 0 || *end != '\0') return -1;
    *v = (uint64_t)x;
    return 0;
}

static int parse_bool(const char *s, int *v)
{
    if (strcmp(s, "1") == 0) *v = 1;
    else if (strcmp(s, "0") == 0) *v = 0;
    else return -1;
    return 0;
}

int darn_job_parse(darn_job *job, const char *text, char *err, size_t err_len)
{
    char buf[1024];
    if (strlen(text) >= sizeof buf) {
        set_msg(err, err_len, "config string longer than %zu characters", sizeof buf - 1);
        return -1;
    }
    strcpy(buf, text);

    int norm = -1, have_m = 0, have_n = 0, have_eps = 0;
    int res_given = 0, bias_given = 0; /* res=/b= named a dtype (not "-") */
    darn_job j;
    darn_job_init(&j, DARN_RMSNORM, 0, 1, DARN_F32);
    float eps = 0.0f;

    for (char *save = NULL, *tok = strtok_r(buf, " \t\r\n", &save); tok != NULL;
         tok = strtok_r(NULL, " \t\r\n", &save)) {
        char *eq = strchr(tok, '=');
        if (eq == NULL) {
            if (strcmp(tok, "rms") == 0 || strcmp(tok, "layer") == 0) {
                if (norm >= 0) { set_msg(err, err_len, "norm given twice ('%s')", tok); return -1; }
                norm = strcmp(tok, "rms") == 0 ? DARN_RMSNORM : DARN_LAYERNORM;
                continue;
            }
            set_msg(err, err_len, "unknown word '%s' (expected rms, layer or key=value)", tok);
            return -1;
        }
        *eq = '\0';
        const char *key = tok, *val = eq + 1;
        int bad = 0;
        if (strcmp(key, "M") == 0) { bad = parse_i64(val, &j.rows) || j.rows < 0; have_m = 1; }
        else if (strcmp(key, "N") == 0) { bad = parse_i64(val, &j.cols) || j.cols < 1; have_n = 1; }
        else if (strcmp(key, "x") == 0) bad = darn_job_dtype_parse(val, &j.x_dtype);
        else if (strcmp(key, "w") == 0) bad = darn_job_dtype_parse(val, &j.weight_dtype);
        else if (strcmp(key, "out") == 0) bad = darn_job_dtype_parse(val, &j.out_dtype);
        else if (strcmp(key, "res") == 0) {
            res_given = strcmp(val, "-") != 0;
            bad = res_given && darn_job_dtype_parse(val, &j.residual_dtype);
        } else if (strcmp(key, "b") == 0) {
            bias_given = strcmp(val, "-") != 0;
            bad = bias_given && darn_job_dtype_parse(val, &j.bias_dtype);
        } else if (strcmp(key, "flags") == 0) {
            j.flags = 0;
            if (strcmp(val, "-") != 0 && strcmp(val, "none") != 0) {
                char fl[128];
                if (strlen(val) >= sizeof fl) bad = 1;
                else {
                    strcpy(fl, val);
                    for (char *s2 = NULL, *f = strtok_r(fl, ",", &s2); f != NULL && !bad; f = strtok_r(NULL, ",", &s2)) {
                        size_t i = 0;
                        while (i < N_FLAG_NAMES && strcmp(f, k_flag_names[i].name) != 0) ++i;
                        if (i == N_FLAG_NAMES) {
                            set_msg(err, err_len, "unknown flag '%s' (res, bias, rowscale, zc, rif32, x1, w1, b1)", f);
                            return -1;
                        }
                        j.flags |= k_flag_names[i].flag;
                    }
                }
            }
        } else if (strcmp(key, "p") == 0) {
            char *end;
            j.p = strtod(val, &end);
            bad = *val == '\0' || *end != '\0' || !(j.p >= 0.0 && j.p <= 1.0);
        } else if (strcmp(key, "eps") == 0) {
            char *end;
            eps = strtof(val, &end);
            bad = *val == '\0' || *end != '\0';
            have_eps = 1;
        } else if (strcmp(key, "seed") == 0) bad = parse_u64(val, &j.seed);
        else if (strcmp(key, "offset") == 0) bad = parse_u64(val, &j.offset);
        else if (strcmp(key, "mask") == 0) bad = parse_bool(val, &j.mask);
        else if (strcmp(key, "dres") == 0) bad = parse_bool(val, &j.dresidual_out);
        else if (strcmp(key, "special") == 0) bad = parse_bool(val, &j.special);
        else if (strcmp(key, "dy") == 0) bad = darn_job_dtype_parse(val, &j.dy_dtype);
        else if (strcmp(key, "amax") == 0) bad = parse_bool(val, &j.amax);
        else if (strcmp(key, "scale") == 0) {
            char *end;
            j.scale = strtof(val, &end);
            bad = *val == '\0' || *end != '\0';
        } else {
            set_msg(err, err_len, "unknown key '%s'", key);
            return -1;
        }
        if (bad) {
            set_msg(err, err_len, "bad value '%s' for key '%s'", val, key);
            return -1;
        }
    }
    if (norm < 0) { set_msg(err, err_len, "config names no norm (rms or layer)"); return -1; }
    if (!have_m || !have_n) { set_msg(err, err_len, "config needs M= and N="); return -1; }
    if (res_given != ((j.flags & DARN_FLAG_HAS_RESIDUAL) != 0)) {
        set_msg(err, err_len, "res=<dtype> must be given exactly when flags include res (else res=-)");
        return -1;
    }
    if (bias_given != ((j.flags & (DARN_FLAG_HAS_BIAS | DARN_FLAG_HAS_BIAS1)) != 0)) {
        set_msg(err, err_len, "b=<dtype> must be given exactly when flags include bias or b1 (else b=-)");
        return -1;
    }
    if (!res_given) j.residual_dtype = j.x_dtype;
    if (!bias_given) j.bias_dtype = j.weight_dtype;
    j.norm = (darn_norm)norm;
    if (have_eps) j.eps = eps;
    else {
        darn_desc d;
        darn_desc_init(&d, j.norm, 0, 1, DARN_F32);
        j.eps = d.eps;
    }
    *job = j;
    return 0;
}

/* ---- deterministic inputs -------------------------------------------------------------------------- */
enum { TAG_X = 1, TAG_RESIDUAL = 2, TAG_WEIGHT = 3, TAG_BIAS = 4, TAG_ROWSCALE = 5, TAG_DY = 6, TAG_DRESOUT = 7,
       /* parallel residual (contract 4): new tags, so every older tensor keeps its stream */
       TAG_X1 = 8, TAG_WEIGHT1 = 9, TAG_BIAS1 = 10, TAG_DY1 = 11 };

static uint64_t mix64(uint64_t z) /* SplitMix64's finalizer */
{
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Stream of tensor `tag` for `seed`: word i is mix64(base + (i + 1) * golden), i.e. SplitMix64 started
 * at `base`, addressable by index. The domain constant keeps these streams apart from anything else. */
static uint64_t stream_base(uint64_t seed, uint64_t tag)
{
    return mix64(seed ^ mix64(tag * UINT64_C(0x9E3779B97F4A7C15) + UINT64_C(0x6461726E2D6A6F62) /* "darn-job" */));
}
static uint64_t stream_word(uint64_t base, uint64_t i) { return mix64(base + (i + 1u) * UINT64_C(0x9E3779B97F4A7C15)); }

/* Exact maps from 64 random bits to floats: integers of at most 24 bits times a power of two. */
static float s24(uint64_t u, float scale) { return (float)((int32_t)(u >> 40) - (INT32_C(1) << 23)) * scale; }
static float s22(uint64_t u, float scale) { return (float)((int32_t)(u >> 42) - (INT32_C(1) << 21)) * scale; }
static float u23(uint64_t u, float scale) { return (float)(int32_t)(u >> 41) * scale; }

static void store_elem(void *buf, darn_dtype dt, size_t i, float v)
{
    switch (dt) {
    case DARN_F32: ((float *)buf)[i] = darn_canonical_f32(v); break;
    case DARN_F16: ((uint16_t *)buf)[i] = darn_f32_to_f16(v); break;
    case DARN_BF16: ((uint16_t *)buf)[i] = darn_f32_to_bf16(v); break;
    default: break; /* fp8 is never an input */
    }
}

/* Raw bit patterns for special=1, per dtype: +inf, -inf, NaN with sign and payload (not canonical: the
 * outputs must still be canonical), the largest finite, the smallest subnormal, -0. */
static void store_special(void *buf, darn_dtype dt, size_t i, unsigned which)
{
    static const uint32_t f32[6] = {0x7F800000u, 0xFF800000u, 0xFFC12345u, 0x7F7FFFFFu, 0x00000001u, 0x80000000u};
    static const uint16_t f16[6] = {0x7C00u, 0xFC00u, 0xFE2Bu, 0x7BFFu, 0x0001u, 0x8000u};
    static const uint16_t bf16[6] = {0x7F80u, 0xFF80u, 0xFFC3u, 0x7F7Fu, 0x0001u, 0x8000u};
    which %= 6u;
    switch (dt) {
    case DARN_F32: memcpy((char *)buf + 4 * i, &f32[which], 4); break;
    case DARN_F16: memcpy((char *)buf + 2 * i, &f16[which], 2); break;
    case DARN_BF16: memcpy((char *)buf + 2 * i, &bf16[which], 2); break;
    default: break; /* fp8 is never an input */
    }
}

typedef float (*value_fn)(uint64_t u);
static float val_pm2(uint64_t u) { return s24(u, 0x1p-22f); }          /* [-2, 2) */
static float val_pm1(uint64_t u) { return s24(u, 0x1p-23f); }          /* [-1, 1) */
static float val_half(uint64_t u) { return s24(u, 0x1p-24f); }         /* [-0.5, 0.5) */
static float val_w1(uint64_t u) { return 1.0f + s22(u, 0x1p-23f); }    /* [0.75, 1.25), exact */
static float val_w0(uint64_t u) { return s22(u, 0x1p-23f); }           /* [-0.25, 0.25) */
static float val_rowscale(uint64_t u) { return 0.5f + u23(u, 0x1p-23f); } /* [0.5, 1.5), exact */

static void fill(void *buf, darn_dtype dt, size_t n, uint64_t seed, uint64_t tag, value_fn f)
{
    const uint64_t base = stream_base(seed, tag);
    for (size_t i = 0; i < n; ++i) store_elem(buf, dt, i, f(stream_word(base, (uint64_t)i)));
}

static int checked_bytes(int64_t rows, int64_t cols, size_t elem, size_t *bytes)
{
    if (rows < 0 || cols < 0) return -1;
    const uint64_t r = (uint64_t)rows, c = (uint64_t)cols;
    if (c != 0 && r > SIZE_MAX / c) return -1;
    const size_t n = (size_t)(r * c);
    if (elem != 0 && n > SIZE_MAX / elem) return -1;
    *bytes = n * elem;
    return 0;
}

void darn_job_inputs_free(darn_job_inputs *in)
{
    free(in->x);
    free(in->residual);
    free(in->rowscale);
    free(in->weight);
    free(in->bias);
    free(in->dy);
    free(in->dresidual_out);
    free(in->x1);
    free(in->weight1);
    free(in->bias1);
    free(in->dy1);
    memset(in, 0, sizeof *in);
}

int darn_job_inputs_make(const darn_job *job, darn_job_inputs *in, char *err, size_t err_len)
{
    memset(in, 0, sizeof *in);
    const size_t m = (size_t)job->rows, n = (size_t)job->cols;
    size_t mn = 0, tmp = 0;
    if (job->rows < 0 || job->cols < 1 || checked_bytes(job->rows, job->cols, 4, &tmp)) {
        set_msg(err, err_len, "bad or too large shape M=%lld N=%lld", (long long)job->rows, (long long)job->cols);
        return -1;
    }
    mn = m * n;
    const darn_dtype rd = resout_dtype(job);
    in->x = malloc(mn * darn_dtype_size(job->x_dtype) + 1);
    in->weight = malloc(n * darn_dtype_size(job->weight_dtype) + 1);
    in->dy = malloc(mn * darn_dtype_size(dy_dtype_of(job)) + 1);
    int oom = in->x == NULL || in->weight == NULL || in->dy == NULL;
    if (job->flags & DARN_FLAG_HAS_RESIDUAL) oom |= (in->residual = malloc(mn * darn_dtype_size(job->residual_dtype) + 1)) == NULL;
    if (job->flags & DARN_FLAG_HAS_BIAS) oom |= (in->bias = malloc(n * darn_dtype_size(job->bias_dtype) + 1)) == NULL;
    if (job->flags & DARN_FLAG_HAS_ROWSCALE) oom |= (in->rowscale = malloc(m * sizeof(float) + 1)) == NULL;
    if (job->dresidual_out) oom |= (in->dresidual_out = malloc(mn * darn_dtype_size(rd) + 1)) == NULL;
    if (job->flags & DARN_FLAG_HAS_X1) oom |= (in->x1 = malloc(mn * darn_dtype_size(job->x_dtype) + 1)) == NULL;
    if (job->flags & DARN_FLAG_HAS_WEIGHT1) {
        oom |= (in->weight1 = malloc(n * darn_dtype_size(job->weight_dtype) + 1)) == NULL;
        oom |= (in->dy1 = malloc(mn * darn_dtype_size(dy_dtype_of(job)) + 1)) == NULL;
    }
    if (job->flags & DARN_FLAG_HAS_BIAS1) oom |= (in->bias1 = malloc(n * darn_dtype_size(job->bias_dtype) + 1)) == NULL;
    if (oom) {
        darn_job_inputs_free(in);
        set_msg(err, err_len, "out of host memory for the inputs (M=%lld N=%lld)", (long long)job->rows,
                (long long)job->cols);
        return -1;
    }
    fill(in->x, job->x_dtype, mn, job->seed, TAG_X, val_pm2);
    if (job->special) {
        /* Rows r % 3 == 1 get one special value at column (7r) % N. */
        for (size_t r = 1; r < m; r += 3) store_special(in->x, job->x_dtype, r * n + (7u * r) % n, (unsigned)(r / 3u));
    }
    if (in->residual) fill(in->residual, job->residual_dtype, mn, job->seed, TAG_RESIDUAL, val_pm2);
    fill(in->weight, job->weight_dtype, n, job->seed, TAG_WEIGHT,
         (job->flags & DARN_FLAG_ZERO_CENTERED_WEIGHT) ? val_w0 : val_w1);
    if (in->bias) fill(in->bias, job->bias_dtype, n, job->seed, TAG_BIAS, val_half);
    if (in->rowscale) fill(in->rowscale, DARN_F32, m, job->seed, TAG_ROWSCALE, val_rowscale);
    fill(in->dy, dy_dtype_of(job), mn, job->seed, TAG_DY, val_pm1);
    if (in->dresidual_out) fill(in->dresidual_out, rd, mn, job->seed, TAG_DRESOUT, val_half);
    /* parallel residual: x1 as x (special=1 touches x only), weight1 / bias1 / dy1 as weight / bias / dy */
    if (in->x1) fill(in->x1, job->x_dtype, mn, job->seed, TAG_X1, val_pm2);
    if (in->weight1)
        fill(in->weight1, job->weight_dtype, n, job->seed, TAG_WEIGHT1,
             (job->flags & DARN_FLAG_ZERO_CENTERED_WEIGHT) ? val_w0 : val_w1);
    if (in->bias1) fill(in->bias1, job->bias_dtype, n, job->seed, TAG_BIAS1, val_half);
    if (in->dy1) fill(in->dy1, dy_dtype_of(job), mn, job->seed, TAG_DY1, val_pm1);
    return 0;
}

/* ---- running a job ---------------------------------------------------------------------------------- */
/* One tensor on the device: `rows` rows of `row_bytes` payload at a pitch of `pitch` bytes. */
typedef struct dev_tensor {
    void *ptr;
    size_t rows, row_bytes, pitch, bytes;
} dev_tensor;

typedef struct run_state {
    const darn_job *job;
    const darn_mem *mem;
    darn_job_result *res;
    dev_tensor x, residual, rowscale, weight, bias, dy, dresout;           /* inputs */
    dev_tensor out, resout, mask, rstd, mean, dx, dres, dweight, dbias, amax; /* outputs */
    dev_tensor x1, weight1, bias1, dy1;                                    /* parallel residual: inputs */
    dev_tensor out1, mask1, dx1, dweight1, dbias1;                         /* parallel residual: outputs */
    void *ws_fwd, *ws_bwd;
    size_t ws_fwd_bytes, ws_bwd_bytes;
    darn_desc desc;
    darn_fwd_tensors ft;
    darn_bwd_tensors bt;
} run_state;

static int fail_mem(run_state *s, const char *what)
{
    s->res->status = DARN_OK;
    set_msg(s->res->error, sizeof s->res->error, "%s (%s memory): %s", what, s->mem->name, s->mem->error(s->mem->ctx));
    return -1;
}

static int fail_darn(run_state *s, darn_status st, const char *what)
{
    s->res->status = st;
    set_msg(s->res->error, sizeof s->res->error, "%s failed: %s (%s)", what, darn_status_string(st), darn_last_error());
    return -1;
}

/* Allocates a device tensor; with `host` (contiguous rows) copies it in, else fills it with the sentinel.
 * The padding between rows always holds the sentinel. */
static int dev_make(run_state *s, dev_tensor *t, size_t rows, size_t row_bytes, size_t pitch, const void *host)
{
    t->rows = rows;
    t->row_bytes = row_bytes;
    t->pitch = pitch;
    t->bytes = rows * pitch;
    t->ptr = s->mem->alloc(s->mem->ctx, t->bytes);
    if (t->ptr == NULL) return fail_mem(s, "allocating a tensor");
    unsigned char *stage = malloc(t->bytes > 0 ? t->bytes : 1);
    if (stage == NULL) return fail_mem(s, "allocating a staging buffer");
    memset(stage, (int)SENTINEL_BYTE, t->bytes);
    if (host != NULL)
        for (size_t r = 0; r < rows; ++r) memcpy(stage + r * pitch, (const unsigned char *)host + r * row_bytes, row_bytes);
    const int bad = s->mem->to_device(s->mem->ctx, t->ptr, stage, t->bytes);
    free(stage);
    return bad ? fail_mem(s, "copying to the device") : 0;
}

/* Copies an output back into res->out[k].host (contiguous), checking the padding kept the sentinel. */
static int dev_fetch(run_state *s, const dev_tensor *t, darn_job_tensor k)
{
    darn_job_output *o = &s->res->out[k];
    unsigned char *stage = malloc(t->bytes > 0 ? t->bytes : 1);
    o->host = malloc(o->bytes > 0 ? o->bytes : 1);
    if (stage == NULL || o->host == NULL) {
        free(stage);
        return fail_mem(s, "allocating an output copy");
    }
    if (s->mem->to_host(s->mem->ctx, stage, t->ptr, t->bytes) != 0) {
        free(stage);
        return fail_mem(s, "copying from the device");
    }
    for (size_t r = 0; r < t->rows; ++r) {
        const unsigned char *row = stage + r * t->pitch;
        memcpy((unsigned char *)o->host + r * t->row_bytes, row, t->row_bytes);
        for (size_t b = t->row_bytes; b < t->pitch; ++b) {
            if (row[b] != SENTINEL_BYTE) {
                set_msg(s->res->error, sizeof s->res->error, "%s: byte %zu of the stride padding of row %zu was written",
                        o->name, b - t->row_bytes, r);
                free(stage);
                return -1;
            }
        }
    }
    free(stage);
    return 0;
}

static void dev_free(const darn_mem *mem, dev_tensor *t)
{
    if (t->ptr != NULL) mem->release(mem->ctx, t->ptr);
    t->ptr = NULL;
}

static void set_output(darn_job_result *res, darn_job_tensor k, const char *type, int64_t rows, int64_t cols, size_t elem)
{
    static const char *const names[DARN_JOB_TENSORS] = {"y",  "residual_out", "rstd",    "mean",  "mask",
                                                        "dx", "dresidual",    "dweight", "dbias", "amax",
                                                        "y1", "mask1",        "dx1",     "dweight1", "dbias1"};
    darn_job_output *o = &res->out[k];
    o->name = names[k];
    o->produced = 1;
    o->type = type;
    o->rows = rows;
    o->cols = cols;
    o->bytes = (size_t)rows * (size_t)cols * elem;
}

/* "<name>:<type>:<rows>x<cols>\n" — the tag that starts a tensor's record. */
static int record_head(const darn_job_output *o, char *head, size_t len)
{
    return snprintf(head, len, "%s:%s:%lldx%lld\n", o->name, o->type, (long long)o->rows, (long long)o->cols);
}

static int run_fwd(run_state *s) { return (int)darn_fwd(&s->desc, &s->ft, s->ws_fwd, s->ws_fwd_bytes, s->mem->backend, s->mem->stream); }
static int run_bwd(run_state *s) { return (int)darn_bwd(&s->desc, &s->bt, s->ws_bwd, s->ws_bwd_bytes, s->mem->backend, s->mem->stream); }

static int timed(run_state *s, int (*fn)(run_state *), const char *what, double *ms_out)
{
    double *t = malloc(sizeof(double) * (size_t)s->res->repeat);
    if (t == NULL) return fail_mem(s, "allocating timings");
    for (int i = 0; i < s->res->repeat; ++i) {
        double t0 = 0.0;
        if (timer_begin(s->mem, &t0) != 0) { free(t); return fail_mem(s, "starting the timer"); }
        const darn_status st = (darn_status)fn(s);
        if (st != DARN_OK) { free(t); return fail_darn(s, st, what); }
        if (timer_end(s->mem, t0, &t[i]) != 0) { free(t); return fail_mem(s, "waiting for the device"); }
    }
    *ms_out = darn_median(t, s->res->repeat);
    free(t);
    return 0;
}

int darn_job_run(const darn_job *job, const darn_job_inputs *in, const darn_mem *mem, int repeat, darn_job_result *res)
{
    memset(res, 0, sizeof *res);
    res->status = DARN_OK;
    res->repeat = repeat > 0 ? repeat : 0;
    run_state s;
    memset(&s, 0, sizeof s);
    s.job = job;
    s.mem = mem;
    s.res = res;
    darn_job_desc(job, &s.desc);

    int rc = -1;
    size_t tmp;
    if (job->rows < 0 || job->cols < 1 || job->pad < 0 || checked_bytes(job->rows, job->cols + job->pad, 4, &tmp)) {
        set_msg(res->error, sizeof res->error, "bad or too large shape M=%lld N=%lld pad=%lld", (long long)job->rows,
                (long long)job->cols, (long long)job->pad);
        return -1;
    }
    const size_t m = (size_t)job->rows, n = (size_t)job->cols, stride = n + (size_t)job->pad;
    const int has_res = (job->flags & DARN_FLAG_HAS_RESIDUAL) != 0, has_bias = (job->flags & DARN_FLAG_HAS_BIAS) != 0;
    const int has_rs = (job->flags & DARN_FLAG_HAS_ROWSCALE) != 0, layer = job->norm == DARN_LAYERNORM;
    const int has_x1 = (job->flags & DARN_FLAG_HAS_X1) != 0, has_w1 = (job->flags & DARN_FLAG_HAS_WEIGHT1) != 0;
    const int has_b1 = (job->flags & DARN_FLAG_HAS_BIAS1) != 0;
    const darn_dtype rd = darn_residual_out_dtype(&s.desc);
    const size_t sx = darn_dtype_size(job->x_dtype), sr = darn_dtype_size(job->residual_dtype);
    const size_t sw = darn_dtype_size(job->weight_dtype), sb = darn_dtype_size(job->bias_dtype);
    const size_t so = darn_dtype_size(job->out_dtype), srd = darn_dtype_size(rd);
    const size_t sdy = darn_dtype_size(dy_dtype_of(job));
    const int h_is_x = darn_job_h_is_x(job);
    const int64_t mask_row = darn_mask_row_bytes(job->cols);
    if (sx == 0 || sr == 0 || sw == 0 || sb == 0 || so == 0 || sdy == 0 || mask_row <= 0) {
        set_msg(res->error, sizeof res->error, "bad dtype or column count in the job");
        return -1;
    }

    /* Which outputs this job produces, in digest order. */
    set_output(res, DARN_JOB_Y, darn_job_dtype_name(job->out_dtype), job->rows, job->cols, so);
    if (!h_is_x) set_output(res, DARN_JOB_RESIDUAL_OUT, darn_job_dtype_name(rd), job->rows, job->cols, srd);
    set_output(res, DARN_JOB_RSTD, "f32", 1, job->rows, 4);
    if (layer) set_output(res, DARN_JOB_MEAN, "f32", 1, job->rows, 4);
    if (job->mask) set_output(res, DARN_JOB_MASK, "u8", job->rows, mask_row, 1);
    set_output(res, DARN_JOB_DX, darn_job_dtype_name(job->x_dtype), job->rows, job->cols, sx);
    if (has_res) set_output(res, DARN_JOB_DRESIDUAL, darn_job_dtype_name(job->residual_dtype), job->rows, job->cols, sr);
    set_output(res, DARN_JOB_DWEIGHT, darn_job_dtype_name(job->weight_dtype), 1, job->cols, sw);
    if (has_bias) set_output(res, DARN_JOB_DBIAS, darn_job_dtype_name(job->bias_dtype), 1, job->cols, sb);
    if (job->amax) set_output(res, DARN_JOB_AMAX, "f32", 1, 1, 4);
    if (has_w1) set_output(res, DARN_JOB_Y1, darn_job_dtype_name(job->out_dtype), job->rows, job->cols, so);
    if (has_x1 && job->mask) set_output(res, DARN_JOB_MASK1, "u8", job->rows, mask_row, 1);
    if (has_x1) set_output(res, DARN_JOB_DX1, darn_job_dtype_name(job->x_dtype), job->rows, job->cols, sx);
    if (has_w1) set_output(res, DARN_JOB_DWEIGHT1, darn_job_dtype_name(job->weight_dtype), 1, job->cols, sw);
    if (has_b1) set_output(res, DARN_JOB_DBIAS1, darn_job_dtype_name(job->bias_dtype), 1, job->cols, sb);

    /* Minimal traffic: every byte a perfect kernel must read or write once. */
    const double mn = (double)m * (double)n;
    res->fwd_bytes = mn * (double)sx + (has_res ? mn * (double)sr : 0.0) + (has_rs ? 4.0 * (double)m : 0.0) +
                     (double)n * (double)sw + (has_bias ? (double)n * (double)sb : 0.0) + mn * (double)so +
                     (h_is_x ? 0.0 : mn * (double)srd) + (job->mask ? (double)m * (double)mask_row : 0.0) +
                     4.0 * (double)m * (layer ? 2.0 : 1.0) + (job->amax ? 4.0 : 0.0);
    res->bwd_bytes = mn * (double)sdy + mn * (double)(h_is_x ? sx : srd) + (double)n * (double)sw +
                     4.0 * (double)m * (layer ? 2.0 : 1.0) + (has_rs ? 4.0 * (double)m : 0.0) +
                     (job->dresidual_out ? mn * (double)srd : 0.0) + (job->mask ? (double)m * (double)mask_row : 0.0) +
                     mn * (double)sx + (has_res ? mn * (double)sr : 0.0) + (double)n * (double)sw +
                     (has_bias ? (double)n * (double)sb : 0.0);
    /* parallel residual: fwd reads x1, weight1, bias1 and writes y1, mask1; bwd reads dy1, weight1, mask1 and
     * writes dx1, dweight1, dbias1 */
    const double mask_bytes = job->mask ? (double)m * (double)mask_row : 0.0;
    res->fwd_bytes += (has_x1 ? mn * (double)sx + mask_bytes : 0.0) +
                      (has_w1 ? (double)n * (double)sw + mn * (double)so : 0.0) + (has_b1 ? (double)n * (double)sb : 0.0);
    res->bwd_bytes += (has_x1 ? mask_bytes + mn * (double)sx : 0.0) +
                      (has_w1 ? mn * (double)sdy + 2.0 * (double)n * (double)sw : 0.0) +
                      (has_b1 ? (double)n * (double)sb : 0.0);

    /* Device tensors: inputs copied in, outputs sentinel-filled. */
    if (dev_make(&s, &s.x, m, n * sx, stride * sx, in->x)) goto done;
    if (has_res && dev_make(&s, &s.residual, m, n * sr, stride * sr, in->residual)) goto done;
    if (has_rs && dev_make(&s, &s.rowscale, 1, m * 4, m * 4, in->rowscale)) goto done;
    if (dev_make(&s, &s.weight, 1, n * sw, n * sw, in->weight)) goto done;
    if (has_bias && dev_make(&s, &s.bias, 1, n * sb, n * sb, in->bias)) goto done;
    if (dev_make(&s, &s.dy, m, n * sdy, stride * sdy, in->dy)) goto done;
    if (job->dresidual_out && dev_make(&s, &s.dresout, m, n * srd, stride * srd, in->dresidual_out)) goto done;
    if (dev_make(&s, &s.out, m, n * so, stride * so, NULL)) goto done;
    if (!h_is_x && dev_make(&s, &s.resout, m, n * srd, stride * srd, NULL)) goto done;
    if (job->mask && dev_make(&s, &s.mask, m, (size_t)mask_row, (size_t)mask_row, NULL)) goto done;
    if (dev_make(&s, &s.rstd, 1, m * 4, m * 4, NULL)) goto done;
    if (layer && dev_make(&s, &s.mean, 1, m * 4, m * 4, NULL)) goto done;
    if (dev_make(&s, &s.dx, m, n * sx, stride * sx, NULL)) goto done;
    if (has_res && dev_make(&s, &s.dres, m, n * sr, stride * sr, NULL)) goto done;
    if (dev_make(&s, &s.dweight, 1, n * sw, n * sw, NULL)) goto done;
    if (has_bias && dev_make(&s, &s.dbias, 1, n * sb, n * sb, NULL)) goto done;
    if (job->amax && dev_make(&s, &s.amax, 1, 4, 4, NULL)) goto done;
    if (has_x1 && dev_make(&s, &s.x1, m, n * sx, stride * sx, in->x1)) goto done;
    if (has_w1 && dev_make(&s, &s.weight1, 1, n * sw, n * sw, in->weight1)) goto done;
    if (has_b1 && dev_make(&s, &s.bias1, 1, n * sb, n * sb, in->bias1)) goto done;
    if (has_w1 && dev_make(&s, &s.dy1, m, n * sdy, stride * sdy, in->dy1)) goto done;
    if (has_w1 && dev_make(&s, &s.out1, m, n * so, stride * so, NULL)) goto done;
    if (has_x1 && job->mask && dev_make(&s, &s.mask1, m, (size_t)mask_row, (size_t)mask_row, NULL)) goto done;
    if (has_x1 && dev_make(&s, &s.dx1, m, n * sx, stride * sx, NULL)) goto done;
    if (has_w1 && dev_make(&s, &s.dweight1, 1, n * sw, n * sw, NULL)) goto done;
    if (has_b1 && dev_make(&s, &s.dbias1, 1, n * sb, n * sb, NULL)) goto done;

    /* Workspace, as the API asks for it. */
    darn_status st = darn_fwd_workspace_size(&s.desc, mem->backend, &s.ws_fwd_bytes);
    if (st != DARN_OK) { fail_darn(&s, st, "darn_fwd_workspace_size"); goto done; }
    st = darn_bwd_workspace_size(&s.desc, mem->backend, &s.ws_bwd_bytes);
    if (st != DARN_OK) { fail_darn(&s, st, "darn_bwd_workspace_size"); goto done; }
    if (s.ws_fwd_bytes > 0 && (s.ws_fwd = mem->alloc(mem->ctx, s.ws_fwd_bytes)) == NULL) { fail_mem(&s, "allocating the forward workspace"); goto done; }
    if (s.ws_bwd_bytes > 0 && (s.ws_bwd = mem->alloc(mem->ctx, s.ws_bwd_bytes)) == NULL) { fail_mem(&s, "allocating the backward workspace"); goto done; }

    const int64_t st_el = (int64_t)stride;
    s.ft.x = s.x.ptr;                  s.ft.x_stride = st_el;
    s.ft.residual = s.residual.ptr;    s.ft.residual_stride = has_res ? st_el : 0;
    s.ft.rowscale = (const float *)s.rowscale.ptr;
    s.ft.weight = s.weight.ptr;
    s.ft.bias = s.bias.ptr;
    s.ft.out = s.out.ptr;              s.ft.out_stride = st_el;
    s.ft.residual_out = s.resout.ptr;  s.ft.residual_out_stride = h_is_x ? 0 : st_el;
    s.ft.mask = (uint8_t *)s.mask.ptr;
    s.ft.rstd = (float *)s.rstd.ptr;
    s.ft.mean = (float *)s.mean.ptr;
    s.ft.amax = (float *)s.amax.ptr;
    s.ft.x1 = s.x1.ptr;                s.ft.x1_stride = has_x1 ? st_el : 0;
    s.ft.weight1 = s.weight1.ptr;
    s.ft.bias1 = s.bias1.ptr;
    s.ft.out1 = s.out1.ptr;            s.ft.out1_stride = has_w1 ? st_el : 0;
    s.ft.mask1 = (uint8_t *)s.mask1.ptr;

    s.bt.dy = s.dy.ptr;                s.bt.dy_stride = st_el;
    s.bt.h = h_is_x ? s.x.ptr : s.resout.ptr; s.bt.h_stride = st_el;
    s.bt.weight = s.weight.ptr;
    s.bt.rstd = (const float *)s.rstd.ptr;
    s.bt.mean = (const float *)s.mean.ptr;
    s.bt.rowscale = (const float *)s.rowscale.ptr;
    s.bt.dresidual_out = s.dresout.ptr; s.bt.dresidual_out_stride = job->dresidual_out ? st_el : 0;
    s.bt.mask = (const uint8_t *)s.mask.ptr;
    s.bt.dx = s.dx.ptr;                s.bt.dx_stride = st_el;
    s.bt.dresidual = s.dres.ptr;       s.bt.dresidual_stride = has_res ? st_el : 0;
    s.bt.dweight = s.dweight.ptr;
    s.bt.dbias = s.dbias.ptr;
    s.bt.dy1 = s.dy1.ptr;              s.bt.dy1_stride = has_w1 ? st_el : 0;
    s.bt.weight1 = s.weight1.ptr;
    s.bt.mask1 = (const uint8_t *)s.mask1.ptr;
    s.bt.dx1 = s.dx1.ptr;              s.bt.dx1_stride = has_x1 ? st_el : 0;
    s.bt.dweight1 = s.dweight1.ptr;
    s.bt.dbias1 = s.dbias1.ptr;

    /* The run whose outputs are hashed, then the timed repetitions (same outputs again). */
    if ((st = (darn_status)run_fwd(&s)) != DARN_OK) { fail_darn(&s, st, "darn_fwd"); goto done; }
    if ((st = (darn_status)run_bwd(&s)) != DARN_OK) { fail_darn(&s, st, "darn_bwd"); goto done; }
    if (mem->sync(mem->ctx) != 0) { fail_mem(&s, "waiting for the device"); goto done; }
    if (res->repeat > 0) {
        if (timed(&s, run_fwd, "darn_fwd", &res->fwd_ms)) goto done;
        if (timed(&s, run_bwd, "darn_bwd", &res->bwd_ms)) goto done;
    }

    if (dev_fetch(&s, &s.out, DARN_JOB_Y)) goto done;
    if (!h_is_x && dev_fetch(&s, &s.resout, DARN_JOB_RESIDUAL_OUT)) goto done;
    if (dev_fetch(&s, &s.rstd, DARN_JOB_RSTD)) goto done;
    if (layer && dev_fetch(&s, &s.mean, DARN_JOB_MEAN)) goto done;
    if (job->mask && dev_fetch(&s, &s.mask, DARN_JOB_MASK)) goto done;
    if (dev_fetch(&s, &s.dx, DARN_JOB_DX)) goto done;
    if (has_res && dev_fetch(&s, &s.dres, DARN_JOB_DRESIDUAL)) goto done;
    if (dev_fetch(&s, &s.dweight, DARN_JOB_DWEIGHT)) goto done;
    if (has_bias && dev_fetch(&s, &s.dbias, DARN_JOB_DBIAS)) goto done;
    if (job->amax && dev_fetch(&s, &s.amax, DARN_JOB_AMAX)) goto done;
    if (has_w1 && dev_fetch(&s, &s.out1, DARN_JOB_Y1)) goto done;
    if (has_x1 && job->mask && dev_fetch(&s, &s.mask1, DARN_JOB_MASK1)) goto done;
    if (has_x1 && dev_fetch(&s, &s.dx1, DARN_JOB_DX1)) goto done;
    if (has_w1 && dev_fetch(&s, &s.dweight1, DARN_JOB_DWEIGHT1)) goto done;
    if (has_b1 && dev_fetch(&s, &s.dbias1, DARN_JOB_DBIAS1)) goto done;

    /* Each tensor's bytes are hashed once (its record digest); the job digest hashes the manifest. */
    darn_sha256_ctx all;
    darn_sha256_init(&all);
    for (int k = 0; k < DARN_JOB_TENSORS; ++k) {
        darn_job_output *o = &res->out[k];
        if (!o->produced) continue;
        char head[128], hex[DARN_SHA256_HEX];
        const int hl = record_head(o, head, sizeof head);
        darn_sha256_ctx one;
        darn_sha256_init(&one);
        darn_sha256_update(&one, head, (size_t)hl);
        darn_sha256_update(&one, o->host, o->bytes);
        darn_sha256_final(&one, o->digest);
        darn_sha256_hex(o->digest, DARN_SHA256_BYTES, hex);
        darn_sha256_update(&all, head, (size_t)hl - 1); /* without the newline */
        darn_sha256_update(&all, ":", 1);
        darn_sha256_update(&all, hex, 64);
        darn_sha256_update(&all, "\n", 1);
    }
    darn_sha256_final(&all, res->digest);
    rc = 0;

done:
    dev_free(mem, &s.x); dev_free(mem, &s.residual); dev_free(mem, &s.rowscale); dev_free(mem, &s.weight);
    dev_free(mem, &s.bias); dev_free(mem, &s.dy); dev_free(mem, &s.dresout); dev_free(mem, &s.out);
    dev_free(mem, &s.resout); dev_free(mem, &s.mask); dev_free(mem, &s.rstd); dev_free(mem, &s.mean);
    dev_free(mem, &s.dx); dev_free(mem, &s.dres); dev_free(mem, &s.dweight); dev_free(mem, &s.dbias);
    dev_free(mem, &s.amax);
    dev_free(mem, &s.x1); dev_free(mem, &s.weight1); dev_free(mem, &s.bias1); dev_free(mem, &s.dy1);
    dev_free(mem, &s.out1); dev_free(mem, &s.mask1); dev_free(mem, &s.dx1); dev_free(mem, &s.dweight1);
    dev_free(mem, &s.dbias1);
    if (s.ws_fwd != NULL) mem->release(mem->ctx, s.ws_fwd);
    if (s.ws_bwd != NULL) mem->release(mem->ctx, s.ws_bwd);
    return rc;
}

void darn_job_result_free(darn_job_result *res)
{
    for (int k = 0; k < DARN_JOB_TENSORS; ++k) {
        free(res->out[k].host);
        res->out[k].host = NULL;
    }
}

int darn_job_compare(const darn_job_result *a, const darn_job_result *b, char *msg, size_t msg_len)
{
    for (int k = 0; k < DARN_JOB_TENSORS; ++k) {
        const darn_job_output *x = &a->out[k], *y = &b->out[k];
        if (x->produced != y->produced || (x->produced && (x->bytes != y->bytes || strcmp(x->type, y->type) != 0))) {
            set_msg(msg, msg_len, "tensor %d (%s) is not produced alike by both runs", k, x->name ? x->name : y->name);
            return -1;
        }
        if (!x->produced || x->bytes == 0 || memcmp(x->host, y->host, x->bytes) == 0) continue;
        size_t i = 0;
        const unsigned char *p = x->host, *q = y->host;
        while (p[i] == q[i]) ++i;
        set_msg(msg, msg_len, "%s differs first at byte %zu (row %zu of %lld): 0x%02x vs 0x%02x", x->name, i,
                i / (x->bytes / (size_t)(x->rows > 0 ? x->rows : 1)), (long long)x->rows, p[i], q[i]);
        return -1;
    }
    return 0;
}

int darn_job_digest_config(const char *config, darn_backend backend, uint8_t digest[DARN_SHA256_BYTES], char *err,
                           size_t err_len)
{
    darn_job job;
    if (darn_job_parse(&job, config, err, err_len) != 0) return -1;
    const darn_mem *mem = darn_mem_for(backend);
    if (mem == NULL) {
        set_msg(err, err_len, "backend %d not available: %s", (int)backend,
                darn_status_string(DARN_ERR_BACKEND_UNAVAILABLE));
        return -1;
    }
    darn_job_inputs in;
    if (darn_job_inputs_make(&job, &in, err, err_len) != 0) return -1;
    darn_job_result res;
    const int rc = darn_job_run(&job, &in, mem, 0, &res);
    if (rc == 0) memcpy(digest, res.digest, DARN_SHA256_BYTES);
    else set_msg(err, err_len, "%s", res.error);
    darn_job_result_free(&res);
    darn_job_inputs_free(&in);
    return rc;
}

/* ---- golden files ----------------------------------------------------------------------------------- */
int darn_golden_load(const char *path, darn_golden_entry **entries, size_t *count, char *err, size_t err_len)
{
    *entries = NULL;
    *count = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        set_msg(err, err_len, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 0, n = 0;
    darn_golden_entry *v = NULL;
    char line[1024];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        ++lineno;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            set_msg(err, err_len, "%s:%d: line too long", path, lineno);
            rc = -1;
            break;
        }
        while (len > 0 && isspace((unsigned char)line[len - 1])) line[--len] = '\0';
        char *p = line;
        while (isspace((unsigned char)*p)) ++p;
        if (*p == '\0' || *p == '#') continue;
        char *last = strrchr(p, ' ');
        char *tab = strrchr(p, '\t');
        if (tab != NULL && (last == NULL || tab > last)) last = tab;
        if (last == NULL || strlen(last + 1) != 64 || strspn(last + 1, "0123456789abcdef") != 64) {
            set_msg(err, err_len, "%s:%d: expected '<config> <64 lower-case hex digits>'", path, lineno);
            rc = -1;
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            darn_golden_entry *nv = realloc(v, cap * sizeof *v);
            if (nv == NULL) {
                set_msg(err, err_len, "out of memory reading %s", path);
                rc = -1;
                break;
            }
            v = nv;
        }
        memcpy(v[n].hex, last + 1, 65);
        *last = '\0';
        while (last > p && isspace((unsigned char)last[-1])) *--last = '\0';
        if (strlen(p) >= sizeof v[n].config) {
            set_msg(err, err_len, "%s:%d: config too long", path, lineno);
            rc = -1;
            break;
        }
        strcpy(v[n].config, p);
        v[n].line = lineno;
        ++n;
    }
    fclose(f);
    if (rc != 0) {
        free(v);
        return -1;
    }
    *entries = v;
    *count = n;
    return 0;
}
