/*
 * darn_demo.c — darn-demo: run one fused dropout-add-norm layer forward + backward, check it bit for bit
 * against the CPU reference, time it, and print the cross-machine digest of every output.
 *
 *   darn-demo                      the default train-like shape on the GPU if present, else the CPU
 *   darn-demo --rows 37 --cols 1000 --norm layer --bias --p 0.5 --verbose
 *   darn-demo --golden tests/golden/digests.txt    recompute and compare the golden digests
 *
 * Exit status: 0 success, 1 failure (darn error, mismatch, failed check), 2 usage error.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <darn/darn.h>

#include "contract.h"
#include "job.h"

#define EXIT_USAGE 2

typedef enum backend_choice { CHOICE_AUTO, CHOICE_CPU, CHOICE_GPU } backend_choice;

typedef struct options {
    darn_job job;
    int norm_set, eps_set, dtype_all_set;
    darn_dtype dtype_all;
    int dt_set[5];    /* x, residual, weight, bias, out given individually */
    darn_dtype dt[5];
    int job_flags_used; /* any option that shapes the job (conflicts with --config) */
    const char *config;
    backend_choice backend;
    int repeat;
    int verbose;
    const char *golden;
    int regenerate;
} options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: darn-demo [options]\n"
            "Runs y = norm(dropout(x * rowscale) + residual) * w' (+ b) forward and backward with darn, checks\n"
            "it bit for bit against the CPU reference, times it and prints the digest of all outputs.\n"
            "\n"
            "Shape and numerics (default: RMSNorm, M = N = 4096, x bf16, residual f32 with --residual-in-fp32,\n"
            "weight bf16, out bf16, p = 0.1, seed 1234, offset 0):\n"
            "  --rows M, --cols N          problem shape (M >= 0, N >= 1)\n"
            "  --norm rms|layer            RMSNorm or LayerNorm\n"
            "  --dtype T                   every dtype at once (T = f32, f16 or bf16)\n"
            "  --x-dtype T, --residual-dtype T, --weight-dtype T, --bias-dtype T, --out-dtype T\n"
            "                              (--out-dtype also e4m3fn, e5m2, e4m3fnuz, e5m2fnuz: fp8, CPU only)\n"
            "  --dy-dtype T                dy's dtype (default: out's; needed with an fp8 out)\n"
            "  --scale S, --amax           fp8 out: y8 = fp8(y * S) (default 1); write amax\n"
            "  --no-residual               no residual input (and no dresidual)\n"
            "  --residual-in-fp32          store h (residual_out) in fp32 (default with a residual)\n"
            "  --no-residual-in-fp32       store h in the residual's dtype\n"
            "  --bias, --rowscale, --zero-centered\n"
            "  --x1, --weight1, --bias1    flash-attn's parallel residual: h += dropout1(x1) (own keep bits, mask1);\n"
            "                              a second output y1 = norm(h) * w1' (+ b1) with dy1, dweight1 (dbias1)\n"
            "  --p P                       dropout probability in [0, 1]\n"
            "  --seed S, --offset O        Philox stream of the dropout mask (also seeds the inputs)\n"
            "  --eps E                     default 1e-6 (rms) / 1e-5 (layer)\n"
            "  --mask                      forward writes the dropout mask, backward reads it\n"
            "  --dresidual-out             backward adds a gradient flowing into residual_out\n"
            "  --special                   put inf, NaN, subnormal, -0 and max values into some x elements\n"
            "  --pad P                     row stride N + P for every [M, N] tensor (never changes a bit)\n"
            "  --config STRING             the whole job as a config string (as in tests/golden/digests.txt)\n"
            "Running:\n"
            "  --backend cpu|gpu|auto      default auto: the GPU when available, else the CPU\n"
            "  --repeat K                  timed repetitions, median reported (default 5)\n"
            "  --verbose                   config string and per-tensor digests\n"
            "  --golden FILE               recompute every digest in FILE and compare (exit 1 on mismatch)\n"
            "  --regenerate                with --golden: print FILE with freshly computed digests instead\n"
            "  --help                      this text\n");
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "darn-demo: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    usage(stderr);
    return EXIT_USAGE;
}

static int parse_i64_arg(const char *s, int64_t *v)
{
    char *end;
    errno = 0;
    const long long x = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0) return -1;
    *v = (int64_t)x;
    return 0;
}

static int parse_u64_arg(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    if (*s == '-' || *s == '+') return -1;
    const unsigned long long x = strtoull(s, &end, 0);
    if (*s == '\0' || *end != '\0' || errno != 0) return -1;
    *v = (uint64_t)x;
    return 0;
}

static int parse_double_arg(const char *s, double *v)
{
    char *end;
    errno = 0;
    const double x = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno == ERANGE) return -1;
    *v = x;
    return 0;
}

/* Returns 0, EXIT_USAGE after printing the usage message, or -1 for --help. */
static int parse_options(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    darn_job_init(&o->job, DARN_RMSNORM, 4096, 4096, DARN_BF16);
    o->job.residual_dtype = DARN_F32;
    o->job.flags = DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_RESIDUAL_IN_FP32;
    o->job.p = 0.1;
    o->job.seed = 1234;
    o->backend = CHOICE_AUTO;
    o->repeat = 5;

    static const char *const dt_opts[5] = {"--x-dtype", "--residual-dtype", "--weight-dtype", "--bias-dtype", "--out-dtype"};
    for (int i = 1; i < argc; ++i) {
        char name[64];
        const char *arg = argv[i], *val = NULL;
        const char *eq = strchr(arg, '=');
        if (strncmp(arg, "--", 2) != 0) return usage_error("unexpected argument '%s'", arg);
        if (eq != NULL) {
            if ((size_t)(eq - arg) >= sizeof name) return usage_error("unknown option '%s'", arg);
            memcpy(name, arg, (size_t)(eq - arg));
            name[eq - arg] = '\0';
            val = eq + 1;
        } else {
            if (strlen(arg) >= sizeof name) return usage_error("unknown option '%s'", arg);
            strcpy(name, arg);
        }

        /* Options without a value. */
        static const char *const bare[] = {"--help", "--no-residual", "--residual-in-fp32", "--no-residual-in-fp32",
                                           "--bias", "--rowscale", "--zero-centered", "--mask", "--dresidual-out",
                                           "--special", "--verbose", "--regenerate", "--amax", "--x1", "--weight1",
                                           "--bias1"};
        int is_bare = 0;
        for (size_t k = 0; k < sizeof bare / sizeof bare[0]; ++k) is_bare |= strcmp(name, bare[k]) == 0;
        if (is_bare) {
            if (val != NULL) return usage_error("option '%s' takes no value", name);
            if (strcmp(name, "--help") == 0) return -1;
            if (strcmp(name, "--verbose") == 0) { o->verbose = 1; continue; }
            if (strcmp(name, "--regenerate") == 0) { o->regenerate = 1; continue; }
            o->job_flags_used = 1;
            if (strcmp(name, "--no-residual") == 0) o->job.flags &= ~(uint32_t)DARN_FLAG_HAS_RESIDUAL;
            else if (strcmp(name, "--residual-in-fp32") == 0) o->job.flags |= DARN_FLAG_RESIDUAL_IN_FP32;
            else if (strcmp(name, "--no-residual-in-fp32") == 0) o->job.flags &= ~(uint32_t)DARN_FLAG_RESIDUAL_IN_FP32;
            else if (strcmp(name, "--bias") == 0) o->job.flags |= DARN_FLAG_HAS_BIAS;
            else if (strcmp(name, "--rowscale") == 0) o->job.flags |= DARN_FLAG_HAS_ROWSCALE;
            else if (strcmp(name, "--zero-centered") == 0) o->job.flags |= DARN_FLAG_ZERO_CENTERED_WEIGHT;
            else if (strcmp(name, "--mask") == 0) o->job.mask = 1;
            else if (strcmp(name, "--dresidual-out") == 0) o->job.dresidual_out = 1;
            else if (strcmp(name, "--special") == 0) o->job.special = 1;
            else if (strcmp(name, "--amax") == 0) o->job.amax = 1;
            else if (strcmp(name, "--x1") == 0) o->job.flags |= DARN_FLAG_HAS_X1;
            else if (strcmp(name, "--weight1") == 0) o->job.flags |= DARN_FLAG_HAS_WEIGHT1;
            else if (strcmp(name, "--bias1") == 0) o->job.flags |= DARN_FLAG_HAS_BIAS1;
            continue;
        }

        /* Options with a value: --name=value or --name value. */
        static const char *const valued[] = {"--rows", "--cols", "--norm", "--dtype", "--x-dtype", "--residual-dtype",
                                             "--weight-dtype", "--bias-dtype", "--out-dtype", "--p", "--seed",
                                             "--offset", "--eps", "--backend", "--repeat", "--golden", "--config",
                                             "--pad", "--dy-dtype", "--scale"};
        int known = 0;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; ++k) known |= strcmp(name, valued[k]) == 0;
        if (!known) return usage_error("unknown option '%s'", name);
        if (val == NULL) {
            if (i + 1 >= argc) return usage_error("option '%s' needs a value", name);
            val = argv[++i];
        }

        int bad = 0;
        if (strcmp(name, "--backend") == 0) {
            if (strcmp(val, "cpu") == 0) o->backend = CHOICE_CPU;
            else if (strcmp(val, "gpu") == 0) o->backend = CHOICE_GPU;
            else if (strcmp(val, "auto") == 0) o->backend = CHOICE_AUTO;
            else bad = 1;
        } else if (strcmp(name, "--repeat") == 0) {
            int64_t k;
            bad = parse_i64_arg(val, &k) || k < 1 || k > 100000;
            if (!bad) o->repeat = (int)k;
        } else if (strcmp(name, "--golden") == 0) {
            o->golden = val;
        } else if (strcmp(name, "--config") == 0) {
            o->config = val;
        } else {
            o->job_flags_used = 1;
            if (strcmp(name, "--rows") == 0) bad = parse_i64_arg(val, &o->job.rows);
            else if (strcmp(name, "--cols") == 0) bad = parse_i64_arg(val, &o->job.cols);
            else if (strcmp(name, "--pad") == 0) bad = parse_i64_arg(val, &o->job.pad) || o->job.pad < 0 || o->job.pad > (1 << 20);
            else if (strcmp(name, "--seed") == 0) bad = parse_u64_arg(val, &o->job.seed);
            else if (strcmp(name, "--offset") == 0) bad = parse_u64_arg(val, &o->job.offset);
            else if (strcmp(name, "--p") == 0) bad = parse_double_arg(val, &o->job.p);
            else if (strcmp(name, "--dy-dtype") == 0) bad = darn_job_dtype_parse(val, &o->job.dy_dtype);
            else if (strcmp(name, "--scale") == 0) {
                double sc;
                bad = parse_double_arg(val, &sc);
                if (!bad) o->job.scale = (float)sc;
            }
            else if (strcmp(name, "--eps") == 0) {
                double e;
                bad = parse_double_arg(val, &e);
                if (!bad) {
                    o->job.eps = (float)e;
                    o->eps_set = 1;
                }
            } else if (strcmp(name, "--norm") == 0) {
                if (strcmp(val, "rms") == 0) o->job.norm = DARN_RMSNORM;
                else if (strcmp(val, "layer") == 0) o->job.norm = DARN_LAYERNORM;
                else bad = 1;
                o->norm_set = 1;
            } else if (strcmp(name, "--dtype") == 0) {
                bad = darn_job_dtype_parse(val, &o->dtype_all);
                o->dtype_all_set = 1;
            } else {
                for (int k = 0; k < 5; ++k) {
                    if (strcmp(name, dt_opts[k]) != 0) continue;
                    bad = darn_job_dtype_parse(val, &o->dt[k]);
                    o->dt_set[k] = 1;
                }
            }
        }
        if (bad) {
            fprintf(stderr, "darn-demo: bad value '%s' for option %s\n", val, name);
            usage(stderr);
            return EXIT_USAGE;
        }
    }

    if (o->config != NULL && o->job_flags_used)
        return usage_error("%s cannot be combined with options that shape the job", "--config");
    if (o->golden != NULL && (o->config != NULL || o->job_flags_used))
        return usage_error("%s takes its jobs from the file; drop the job options", "--golden");
    if (o->regenerate && o->golden == NULL) return usage_error("%s needs --golden FILE", "--regenerate");

    if (o->config != NULL) {
        char err[256];
        if (darn_job_parse(&o->job, o->config, err, sizeof err) != 0) {
            fprintf(stderr, "darn-demo: bad --config: %s\n", err);
            usage(stderr);
            return EXIT_USAGE;
        }
        return 0;
    }
    darn_dtype *fields[5] = {&o->job.x_dtype, &o->job.residual_dtype, &o->job.weight_dtype, &o->job.bias_dtype,
                             &o->job.out_dtype};
    for (int k = 0; k < 5; ++k) {
        if (o->dt_set[k]) *fields[k] = o->dt[k];
        else if (o->dtype_all_set) *fields[k] = o->dtype_all;
    }
    if (!o->eps_set) {
        darn_desc d;
        darn_desc_init(&d, o->job.norm, 0, 1, DARN_F32);
        o->job.eps = d.eps;
    }
    return 0;
}

/* ---- backends ------------------------------------------------------------------------------------- */
static const darn_mem *pick_backend(backend_choice c)
{
    if (c == CHOICE_CPU) return darn_mem_cpu();
    const darn_mem *gpu = darn_mem_for(DARN_BACKEND_GPU);
    if (gpu != NULL || c == CHOICE_GPU) return gpu;
    return darn_mem_cpu();
}

static const char *gpu_note(void)
{
    if (!darn_backend_available(DARN_BACKEND_GPU)) return "gpu not available: library built without one or no device";
#ifndef DARN_HAVE_GPU
    return "gpu available in the library, but darn-demo was built without DARN_HAVE_GPU";
#else
    return "gpu available";
#endif /* DARN_HAVE_GPU */
}

/* ---- fp64 oracle for a few rows ------------------------------------------------------------------- */
static double load(const void *buf, darn_dtype dt, size_t i)
{
    switch (dt) {
    case DARN_F32: return (double)((const float *)buf)[i];
    case DARN_F16: return (double)darn_f16_to_f32(((const uint16_t *)buf)[i]);
    case DARN_BF16: return (double)darn_bf16_to_f32(((const uint16_t *)buf)[i]);
    case DARN_FP8_E4M3FN: return (double)darn_e4m3fn_to_f32(((const uint8_t *)buf)[i]);
    case DARN_FP8_E5M2: return (double)darn_e5m2_to_f32(((const uint8_t *)buf)[i]);
    case DARN_FP8_E4M3FNUZ: return (double)darn_e4m3fnuz_to_f32(((const uint8_t *)buf)[i]);
    case DARN_FP8_E5M2FNUZ: return (double)darn_e5m2fnuz_to_f32(((const uint8_t *)buf)[i]);
    case DARN_DTYPE_SAME_AS_OUT: break;
    }
    return NAN;
}

/* The largest finite value of an fp8 dtype (docs/numerics.md §9), 0 for the others. */
static double fp8_max(darn_dtype dt)
{
    return dt == DARN_FP8_E4M3FN ? 448.0 : dt == DARN_FP8_E4M3FNUZ ? 240.0
           : (dt == DARN_FP8_E5M2 || dt == DARN_FP8_E5M2FNUZ) ? 57344.0 : 0.0;
}

static double tol_for(darn_dtype dt)
{
    const double u = dt == DARN_BF16 ? 0x1p-8 : dt == DARN_F16 ? 0x1p-11 : dt == DARN_F32 ? 0x1p-24
                     : (dt == DARN_FP8_E4M3FN || dt == DARN_FP8_E4M3FNUZ) ? 0x1p-4 : 0x1p-3; /* unit roundoff */
    return 2.0 * u + 1e-5;
}

typedef struct oracle_report {
    double h, y, rstd, dx;  /* max relative error (|a - b| / max(|b|, row rms of b)) */
    double y1, dx1;         /* parallel residual: the second output and x1's gradient (0 without them) */
    int rows, skipped, mask_bad;
} oracle_report;

/* Max over the row of |got - want| / max(|want|, rms(want)). */
static double row_err(const double *got, const double *want, size_t n)
{
    double ss = 0.0, worst = 0.0;
    for (size_t c = 0; c < n; ++c) ss += want[c] * want[c];
    const double rms = sqrt(ss / (double)n);
    for (size_t c = 0; c < n; ++c) {
        double den = fabs(want[c]) > rms ? fabs(want[c]) : rms;
        if (den == 0.0) den = 1e-300;
        const double e = fabs(got[c] - want[c]) / den;
        if (e > worst || isnan(e)) worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}

static int oracle_check(const darn_job *job, const darn_job_inputs *in, const darn_job_result *res, oracle_report *rep)
{
    memset(rep, 0, sizeof *rep);
    const size_t m = (size_t)job->rows, n = (size_t)job->cols;
    if (m == 0) return 0;
    darn_desc desc;
    darn_job_desc(job, &desc);
    const darn_dtype rd = darn_residual_out_dtype(&desc);
    const int layer = job->norm == DARN_LAYERNORM, h_is_x = darn_job_h_is_x(job);
    const uint64_t thr = job->p >= 1.0 ? (UINT64_C(1) << 32) : (uint64_t)ldexp(job->p, 32);
    const double scale = job->p < 1.0 ? 1.0 / (1.0 - job->p) : 0.0;
    double *buf = malloc(sizeof(double) * n * 10);
    if (buf == NULL) return -1;
    double *hd = buf, *hl = buf + n, *got = buf + 2 * n, *want = buf + 3 * n, *wp = buf + 4 * n, *xhat = buf + 5 * n;
    double *g = buf + 6 * n, *keep = buf + 7 * n, *wp1 = buf + 8 * n, *keep1 = buf + 9 * n;
    const int zc = (job->flags & DARN_FLAG_ZERO_CENTERED_WEIGHT) != 0;
    for (size_t c = 0; c < n; ++c) {
        wp[c] = load(in->weight, job->weight_dtype, c) + (zc ? 1.0 : 0.0);
        wp1[c] = in->weight1 ? load(in->weight1, job->weight_dtype, c) + (zc ? 1.0 : 0.0) : 0.0;
    }
    const darn_dtype dyt = job->dy_dtype == DARN_DTYPE_SAME_AS_OUT ? job->out_dtype : job->dy_dtype;
    size_t rows[4] = {0, m / 3, 2 * m / 3, m - 1};
    for (int k = 0; k < 4; ++k) {
        const size_t r = rows[k];
        int dup = 0;
        for (int j = 0; j < k; ++j) dup |= rows[j] == r;
        if (dup) continue;
        const double rs = in->rowscale ? (double)in->rowscale[r] : 1.0;
        int finite = 1;
        for (size_t c = 0; c < n; ++c) {
            const size_t i = r * n + c;
            keep[c] = darn_keep(darn_philox_word(job->seed, job->offset, (uint64_t)i), thr) ? 1.0 : 0.0;
            /* x1's keep bit: element index i + 2^63 (docs/numerics.md §3) */
            keep1[c] = darn_keep(darn_philox_word(job->seed, job->offset, (uint64_t)i + DARN_X1_INDEX), thr) ? 1.0 : 0.0;
            if (res->out[DARN_JOB_MASK].produced) {
                const uint8_t *mrow = (const uint8_t *)res->out[DARN_JOB_MASK].host + r * (size_t)res->out[DARN_JOB_MASK].cols;
                if (((mrow[c / 8] >> (c % 8)) & 1u) != (unsigned)keep[c]) rep->mask_bad++;
            }
            if (res->out[DARN_JOB_MASK1].produced) {
                const uint8_t *mrow = (const uint8_t *)res->out[DARN_JOB_MASK1].host + r * (size_t)res->out[DARN_JOB_MASK1].cols;
                if (((mrow[c / 8] >> (c % 8)) & 1u) != (unsigned)keep1[c]) rep->mask_bad++;
            }
            const double x = load(in->x, job->x_dtype, i);
            hd[c] = keep[c] != 0.0 ? x * rs * scale : 0.0;
            if (in->x1) hd[c] += keep1[c] != 0.0 ? load(in->x1, job->x_dtype, i) * scale : 0.0;
            if (in->residual) hd[c] += load(in->residual, job->residual_dtype, i);
            hl[c] = h_is_x ? x : load(res->out[DARN_JOB_RESIDUAL_OUT].host, rd, i);
            finite &= isfinite(hd[c]) && isfinite(hl[c]);
        }
        if (!finite) {
            rep->skipped++;
            continue;
        }
        rep->rows++;
        double e = row_err(hl, hd, n);
        if (e > rep->h) rep->h = e;

        double mu = 0.0, ss = 0.0;
        if (layer) {
            for (size_t c = 0; c < n; ++c) mu += hl[c];
            mu /= (double)n;
        }
        for (size_t c = 0; c < n; ++c) ss += (hl[c] - mu) * (hl[c] - mu);
        const double rstd = 1.0 / sqrt(ss / (double)n + (double)job->eps);
        const double got_rstd = (double)((const float *)res->out[DARN_JOB_RSTD].host)[r];
        e = fabs(got_rstd - rstd) / rstd;
        if (e > rep->rstd || isnan(e)) rep->rstd = isnan(e) ? INFINITY : e;

        for (size_t c = 0; c < n; ++c) {
            xhat[c] = (hl[c] - mu) * rstd;
            want[c] = xhat[c] * wp[c] + (in->bias ? load(in->bias, job->bias_dtype, c) : 0.0);
            got[c] = load(res->out[DARN_JOB_Y].host, job->out_dtype, r * n + c); /* fp8: y * scale, saturated */
            const double fmax = fp8_max(job->out_dtype);
            if (fmax > 0.0) {
                const double ws = want[c] * (double)job->scale;
                want[c] = (ws > fmax ? fmax : ws < -fmax ? -fmax : ws) / (double)job->scale;
                got[c] /= (double)job->scale;
            }
        }
        e = row_err(got, want, n);
        if (e > rep->y) rep->y = e;
        if (in->weight1) { /* y1 = xhat * w1' (+ b1); the second output is never fp8 */
            for (size_t c = 0; c < n; ++c) {
                want[c] = xhat[c] * wp1[c] + (in->bias1 ? load(in->bias1, job->bias_dtype, c) : 0.0);
                got[c] = load(res->out[DARN_JOB_Y1].host, job->out_dtype, r * n + c);
            }
            e = row_err(got, want, n);
            if (e > rep->y1) rep->y1 = e;
        }

        double c1 = 0.0, c2 = 0.0;
        for (size_t c = 0; c < n; ++c) {
            g[c] = load(in->dy, dyt, r * n + c) * wp[c];
            if (in->dy1) g[c] += load(in->dy1, dyt, r * n + c) * wp1[c];
            c1 += xhat[c] * g[c];
            c2 += g[c];
        }
        c1 /= (double)n;
        c2 = layer ? c2 / (double)n : 0.0;
        double *dh = hd; /* hd is no longer needed: dh of the row */
        for (size_t c = 0; c < n; ++c) {
            dh[c] = (g[c] - (xhat[c] * c1 + c2)) * rstd;
            if (in->dresidual_out) dh[c] += load(in->dresidual_out, rd, r * n + c);
            want[c] = keep[c] != 0.0 ? dh[c] * scale * rs : 0.0;
            got[c] = load(res->out[DARN_JOB_DX].host, job->x_dtype, r * n + c);
        }
        e = row_err(got, want, n);
        if (e > rep->dx) rep->dx = e;
        if (in->x1) { /* dx1 = dropout1(dh): x1's keep bits, no rowscale */
            for (size_t c = 0; c < n; ++c) {
                want[c] = keep1[c] != 0.0 ? dh[c] * scale : 0.0;
                got[c] = load(res->out[DARN_JOB_DX1].host, job->x_dtype, r * n + c);
            }
            e = row_err(got, want, n);
            if (e > rep->dx1) rep->dx1 = e;
        }
    }
    free(buf);
    return 0;
}

/* ---- printing ------------------------------------------------------------------------------------ */
static void print_digest_line(const uint8_t d[DARN_SHA256_BYTES])
{
    char hex[DARN_SHA256_HEX];
    darn_sha256_hex(d, DARN_SHA256_BYTES, hex);
    printf("digest %s\n", hex);
}

static void print_tensors(const darn_job_result *res)
{
    for (int k = 0; k < DARN_JOB_TENSORS; ++k) {
        const darn_job_output *o = &res->out[k];
        if (!o->produced) continue;
        char hex[17], shape[48];
        darn_sha256_hex(o->digest, 8, hex);
        snprintf(shape, sizeof shape, "[%lld, %lld]", (long long)o->rows, (long long)o->cols);
        printf("  %-13s %-4s %-14s %12zu bytes  %s\n", o->name, o->type, shape, o->bytes, hex);
    }
}

static void print_timing(const char *what, double ms, double bytes, double copy_gbps, int repeat)
{
    const double gbps = ms > 0.0 ? bytes / ms / 1e6 : 0.0;
    printf("%-9s %10.3f ms  (median of %d)  %8.2f GB/s", what, ms, repeat, gbps);
    if (copy_gbps > 0.0) printf("  %5.1f %% of copy", 100.0 * gbps / copy_gbps);
    printf("  [%.1f MB moved]\n", bytes / 1e6);
}

/* ---- modes --------------------------------------------------------------------------------------- */
static int validate_desc(const darn_job *job, darn_backend backend)
{
    darn_desc d;
    darn_job_desc(job, &d);
    size_t bytes;
    darn_status st = darn_fwd_workspace_size(&d, backend, &bytes);
    if (st == DARN_OK) st = darn_bwd_workspace_size(&d, backend, &bytes);
    if (st != DARN_OK) {
        fprintf(stderr, "darn-demo: darn error: %s: %s\n", darn_status_string(st), darn_last_error());
        return 1;
    }
    return 0;
}

static int report_run_error(const darn_job_result *res)
{
    if (res->status != DARN_OK) fprintf(stderr, "darn-demo: darn error: %s\n", res->error);
    else fprintf(stderr, "darn-demo: %s\n", res->error);
    return 1;
}

static int run_demo(const options *o)
{
    const darn_job *job = &o->job;
    const darn_mem *mem = pick_backend(o->backend);
    if (mem == NULL) {
        fprintf(stderr, "darn-demo: --backend gpu: %s (%s)\n", darn_status_string(DARN_ERR_BACKEND_UNAVAILABLE), gpu_note());
        return 1;
    }
    if (validate_desc(job, mem->backend)) return 1;

    char config[512];
    darn_job_format(job, config, sizeof config);
    darn_desc desc;
    darn_job_desc(job, &desc);
    printf("darn-demo  darn %s, contract %d\n", darn_version_string(), darn_contract_version());
    printf("shape     %s M=%lld N=%lld (%lld groups of 8, %lld wgrad chunks)\n",
           job->norm == DARN_LAYERNORM ? "LayerNorm" : "RMSNorm", (long long)job->rows, (long long)job->cols,
           (long long)darn_row_groups(job->cols), (long long)darn_wgrad_chunks(job->rows, job->cols));
    printf("dtypes    x %s, residual %s, weight %s, bias %s, out %s, h %s\n", darn_job_dtype_name(job->x_dtype),
           (job->flags & DARN_FLAG_HAS_RESIDUAL) ? darn_job_dtype_name(job->residual_dtype) : "-",
           darn_job_dtype_name(job->weight_dtype),
           (job->flags & DARN_FLAG_HAS_BIAS) ? darn_job_dtype_name(job->bias_dtype) : "-",
           darn_job_dtype_name(job->out_dtype), darn_job_dtype_name(darn_residual_out_dtype(&desc)));
    if (job->flags & (DARN_FLAG_HAS_X1 | DARN_FLAG_HAS_WEIGHT1 | DARN_FLAG_HAS_BIAS1))
        printf("parallel  x1 %s, weight1 %s, bias1 %s (flash-attn's parallel residual)\n",
               (job->flags & DARN_FLAG_HAS_X1) ? darn_job_dtype_name(job->x_dtype) : "-",
               (job->flags & DARN_FLAG_HAS_WEIGHT1) ? darn_job_dtype_name(job->weight_dtype) : "-",
               (job->flags & DARN_FLAG_HAS_BIAS1) ? darn_job_dtype_name(job->bias_dtype) : "-");
    printf("backend   %s (%s)\n", mem->name, mem->backend == DARN_BACKEND_GPU ? "gpu" : gpu_note());
    if (o->verbose) printf("config    %s%s\n", config, job->pad ? "   (with row padding)" : "");

    char err[512];
    darn_job_inputs in;
    if (darn_job_inputs_make(job, &in, err, sizeof err) != 0) {
        fprintf(stderr, "darn-demo: %s\n", err);
        return 1;
    }
    darn_job_result res, ref;
    memset(&ref, 0, sizeof ref);
    int rc = 1;
    if (darn_job_run(job, &in, mem, o->repeat, &res) != 0) {
        report_run_error(&res);
        goto out;
    }

    /* Bandwidth reference: a device-to-device copy moving about as many bytes as the forward. */
    size_t copy_bytes = (size_t)(res.fwd_bytes / 2.0);
    if (copy_bytes < ((size_t)1 << 20)) copy_bytes = (size_t)1 << 20;
    const double copy_ms = darn_mem_copy_ms(mem, copy_bytes, o->repeat);
    const double copy_gbps = copy_ms > 0.0 ? 2.0 * (double)copy_bytes / copy_ms / 1e6 : 0.0;
    print_timing("forward", res.fwd_ms, res.fwd_bytes, copy_gbps, o->repeat);
    print_timing("backward", res.bwd_ms, res.bwd_bytes, copy_gbps, o->repeat);
    if (copy_ms > 0.0)
        printf("copy      %10.3f ms  (%s copy of %.1f MB)  %8.2f GB/s\n", copy_ms,
               mem->backend == DARN_BACKEND_GPU ? "device-to-device" : "memcpy", (double)copy_bytes / 1e6, copy_gbps);

    /* Bit-exact check against the CPU reference (on the CPU: a second, independent run). */
    if (darn_job_run(job, &in, darn_mem_cpu(), 0, &ref) != 0) {
        report_run_error(&ref);
        goto out;
    }
    size_t total = 0;
    int ntensors = 0;
    for (int k = 0; k < DARN_JOB_TENSORS; ++k)
        if (res.out[k].produced) total += res.out[k].bytes, ++ntensors;
    const int same = darn_job_compare(&res, &ref, err, sizeof err) == 0;
    printf("check     %s vs %s: %s (%d tensors, %zu bytes compared)\n", mem->name,
           mem->backend == DARN_BACKEND_GPU ? "the CPU reference" : "a second CPU run",
           same ? "bit-identical" : "MISMATCH", ntensors, total);
    if (!same) printf("          %s\n", err);

    oracle_report rep;
    int oracle_ok = 1;
    if (oracle_check(job, &in, &res, &rep) != 0) {
        fprintf(stderr, "darn-demo: out of memory in the fp64 check\n");
        goto out;
    }
    if (rep.rows > 0 || rep.skipped > 0) {
        const darn_dtype rd = darn_residual_out_dtype(&desc);
        const double th = tol_for(rd), ty = tol_for(job->out_dtype), tdx = tol_for(job->x_dtype), tr = 1e-5;
        oracle_ok = rep.h <= th && rep.y <= ty && rep.rstd <= tr && rep.dx <= tdx && rep.mask_bad == 0 &&
                    rep.y1 <= ty && rep.dx1 <= tdx;
        char extra[96] = "";
        if (job->flags & DARN_FLAG_HAS_WEIGHT1) snprintf(extra, sizeof extra, ", y1 %.2e", rep.y1);
        if (job->flags & DARN_FLAG_HAS_X1) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ", dx1 %.2e", rep.dx1);
        const int masks = res.out[DARN_JOB_MASK].produced || res.out[DARN_JOB_MASK1].produced;
        printf("fp64      %d rows: max rel err h %.2e (tol %.1e), rstd %.2e (tol %.1e), y %.2e (tol %.1e), dx %.2e "
               "(tol %.1e)%s%s: %s\n",
               rep.rows, rep.h, th, rep.rstd, tr, rep.y, ty, rep.dx, tdx, extra,
               masks ? (rep.mask_bad ? ", MASK BITS WRONG" : ", mask bits ok") : "", oracle_ok ? "ok" : "FAIL");
        if (rep.skipped) printf("          (%d rows with inf/NaN skipped)\n", rep.skipped);
    }
    if (o->verbose) print_tensors(&res);
    print_digest_line(res.digest);
    rc = same && oracle_ok ? 0 : 1;

out:
    darn_job_result_free(&res);
    darn_job_result_free(&ref);
    darn_job_inputs_free(&in);
    return rc;
}

/* Splits a golden line into config and (optional) trailing 64-hex digest. */
static void split_golden_line(char *line, char **config, const char **hex)
{
    size_t len = strlen(line);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        line[--len] = '\0';
    *config = line;
    *hex = NULL;
    char *sp = strrchr(line, ' '), *tab = strrchr(line, '\t');
    if (tab != NULL && (sp == NULL || tab > sp)) sp = tab;
    if (sp != NULL && strlen(sp + 1) == 64 && strspn(sp + 1, "0123456789abcdef") == 64) {
        *hex = sp + 1;
        *sp = '\0';
    }
}

static int run_golden(const options *o)
{
    const darn_mem *mem = pick_backend(o->backend);
    if (mem == NULL) {
        fprintf(stderr, "darn-demo: --backend gpu: %s (%s)\n", darn_status_string(DARN_ERR_BACKEND_UNAVAILABLE), gpu_note());
        return 1;
    }
    char err[512];
    if (o->regenerate) {
        /* Echo comments and blank lines, recompute every config line (with or without a digest). */
        FILE *f = fopen(o->golden, "r");
        if (f == NULL) {
            fprintf(stderr, "darn-demo: cannot open %s: %s\n", o->golden, strerror(errno));
            return 1;
        }
        char line[1024];
        int rc = 0;
        while (fgets(line, sizeof line, f) != NULL) {
            char *p = line;
            while (*p == ' ' || *p == '\t') ++p;
            if (*p == '\0' || *p == '\n' || *p == '\r' || *p == '#') {
                fputs(line, stdout);
                continue;
            }
            char *config;
            const char *old;
            split_golden_line(p, &config, &old);
            darn_job job;
            uint8_t d[DARN_SHA256_BYTES];
            char canon[512], hex[DARN_SHA256_HEX];
            if (darn_job_parse(&job, config, err, sizeof err) != 0 || darn_job_format(&job, canon, sizeof canon) != 0 ||
                darn_job_digest_config(canon, mem->backend, d, err, sizeof err) != 0) {
                fprintf(stderr, "darn-demo: %s: '%s': %s\n", o->golden, config, err);
                rc = 1;
                break;
            }
            darn_sha256_hex(d, DARN_SHA256_BYTES, hex);
            printf("%s %s\n", canon, hex);
        }
        fclose(f);
        return rc;
    }

    darn_golden_entry *e;
    size_t n;
    if (darn_golden_load(o->golden, &e, &n, err, sizeof err) != 0) {
        fprintf(stderr, "darn-demo: %s\n", err);
        return 1;
    }
    size_t bad = 0;
    for (size_t i = 0; i < n; ++i) {
        uint8_t d[DARN_SHA256_BYTES];
        char hex[DARN_SHA256_HEX];
        if (darn_job_digest_config(e[i].config, mem->backend, d, err, sizeof err) != 0) {
            printf("ERROR    line %d: %s: %s\n", e[i].line, e[i].config, err);
            ++bad;
            continue;
        }
        darn_sha256_hex(d, DARN_SHA256_BYTES, hex);
        const int ok = strcmp(hex, e[i].hex) == 0;
        bad += !ok;
        printf("%-8s %s\n", ok ? "ok" : "MISMATCH", e[i].config);
        if (!ok || o->verbose) printf("         got  %s\n         want %s\n", hex, e[i].hex);
    }
    printf("golden    %zu of %zu digests match on %s (contract %d)\n", n - bad, n, mem->name, darn_contract_version());
    free(e);
    return bad == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    options o;
    const int prc = parse_options(argc, argv, &o);
    if (prc < 0) {
        usage(stdout);
        return 0;
    }
    if (prc != 0) return prc;
    return o.golden != NULL ? run_golden(&o) : run_demo(&o);
}
