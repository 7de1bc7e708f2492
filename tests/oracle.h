/*
 * tests/oracle.h — an independent fp64 oracle for darn's forward and backward, its error model, and a
 * harness that runs darn (CPU backend) on generated data and checks every output against the oracle.
 *
 * The oracle computes the *math* of darn.h, not the fp32 order of docs/numerics.md:
 *   - inputs are widened to double by its own decoders (not src/contract.h's), read through the strided
 *     typed layout;
 *   - the dropout keep bit is Philox word >= floor(p * 2^32), the threshold recomputed here;
 *   - h is formed per element exactly as the contract does (a few fp32 operations, then rounded to the
 *     residual-out dtype by the oracle's own round-to-nearest-even), because the library stores and
 *     normalizes that rounded h; with ORACLE_H_EXACT the whole chain is in double instead (gradcheck);
 *   - every reduction (mean, variance, rms, dweight, dbias, the backward's row terms) is in double, and
 *     the backward is the analytic derivative in double.
 * Alongside each value the oracle computes a rigorous first-order bound on the error an fp32
 * implementation of the contract may make (lane sums of length L(N), chunked dweight sums, ...); the
 * checks add the rounding of the output dtype to it. Ratios err / bound stay < 1 for a correct library;
 * a wrong formula, a missing eps, a dropped element or a misplaced lane gives ratios far above 1.
 */
#ifndef DARN_TESTS_ORACLE_H
#define DARN_TESTS_ORACLE_H

#include <stddef.h>
#include <stdint.h>

#include <darn/darn.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- independent scalar conversions -------------------------------------------------------------- */
/* Exact value of the bits of one element of `dtype` (16-bit dtypes in the low half). */
double oracle_decode(darn_dtype dtype, uint32_t bits);
/* v rounded to `dtype` (round to nearest even, overflow to inf, subnormals exact); NaN stays NaN. */
double oracle_round(darn_dtype dtype, double v);
/* Bits of v, which must be representable in `dtype` (or NaN: the canonical NaN). */
uint32_t oracle_encode(darn_dtype dtype, double v);
/* Unit roundoff of a store to `dtype` (2^-24, 2^-11, 2^-8) and half its smallest subnormal. */
double oracle_unit_roundoff(darn_dtype dtype);
double oracle_half_tiny(darn_dtype dtype);
/* Element (r, c) of a typed strided buffer (stride in elements, already resolved), exactly. */
double oracle_get(const void *buf, darn_dtype dtype, int64_t stride, int64_t r, int64_t c);

/* ---- the problem in fp64 ------------------------------------------------------------------------- */
typedef struct oracle_problem {
    darn_desc desc;
    int64_t m, n;
    darn_dtype h_dtype;  /* residual-out dtype, derived here from the flags */
    uint64_t seed, offset; /* resolved (rng pointers folded in) */
    double *x;           /* [m*n] */
    double *residual;    /* [m*n] or NULL */
    double *rowscale;    /* [m] or NULL */
    double *weight;      /* [n] as stored (w, not w') */
    double *bias;        /* [n] or NULL */
    uint8_t *keep;       /* [m*n] keep bits */
    double drop_scale;   /* (float)(1 / (1 - p)) as a double; 0 for p = 1 */
    /* Mutation for the tests' self-checks: column skipped by every oracle reduction (-1 = none). */
    int64_t mutate_skip_col;
    /* Parallel residual (DARN_FLAG_HAS_X1 / _WEIGHT1 / _BIAS1); NULL where the flag is absent. */
    double *x1;          /* [m*n]: h += dropout1(x1) */
    uint8_t *keep1;      /* [m*n] x1's keep bits: Philox word of element index r*N + c + 2^63 */
    double *weight1;     /* [n] as stored: y1 = xhat * w1' (+ b1) */
    double *bias1;       /* [n] */
    /* The parallel-residual mutation in force (ORACLE_MUT_NO_X1 … ORACLE_MUT_NO_DY1), 0 = none. */
    int mutate_parallel;
} oracle_problem;

/* Loads the inputs of a forward call (strides 0 = N). */
void oracle_load(oracle_problem *p, const darn_desc *desc, const darn_fwd_tensors *t);
void oracle_free(oracle_problem *p);
/* w'_c in double (1 + w for zero-centered weights). */
double oracle_wprime(const oracle_problem *p, int64_t c);
/* w1'_c likewise (the second output's weight; p->weight1 must be set). */
double oracle_wprime1(const oracle_problem *p, int64_t c);

typedef enum oracle_h_mode {
    ORACLE_H_CONTRACT = 0, /* h per element as the contract forms it, rounded to the residual-out dtype */
    ORACLE_H_EXACT = 1     /* h = keep * x * rs * s [+ keep1 * x1 * s] + res in double, not rounded */
} oracle_h_mode;

typedef struct oracle_fwd {
    int64_t m, n;
    double *h;     /* [m*n] */
    double *y;     /* [m*n] exact y (before the store to the out dtype) */
    double *y_err; /* [m*n] bound on the fp32 error of y before the store */
    double *y1, *y1_err; /* [m*n] the second output y1 and its bound (computed when p->weight1 is set) */
    double *mean, *rstd;         /* [m] (mean = 0 for RMSNorm) */
    double *mean_err, *rstd_err; /* [m] bounds on the fp32 error */
} oracle_fwd;

/* Rows [r0, r1) of the forward (f must come from oracle_fwd_alloc). */
void oracle_fwd_alloc(oracle_fwd *f, int64_t m, int64_t n);
void oracle_fwd_free(oracle_fwd *f);
void oracle_forward_rows(const oracle_problem *p, oracle_h_mode mode, int64_t r0, int64_t r1, oracle_fwd *f);
void oracle_forward(const oracle_problem *p, oracle_h_mode mode, oracle_fwd *f);

/* Loss of the gradcheck over rows [r0, r1): sum(y * gy) + sum(h * gh) (gh may be NULL). */
double oracle_loss(const oracle_fwd *f, const double *gy, const double *gh, int64_t r0, int64_t r1);

typedef struct oracle_bwd {
    int64_t m, n;
    double *dh;        /* [m*n] gradient w.r.t. h (after adding dresidual_out) = dresidual */
    double *dx;        /* [m*n] */
    double *dweight;   /* [n] */
    double *dbias;     /* [n] */
    double *dh_err;    /* [m*n] fp32 error bounds */
    double *dx_err;    /* [m*n] */
    double *dw_err;    /* [n] */
    double *db_err;    /* [n] */
    /* parallel residual: computed when p->x1 / p->weight1 / p->bias1 are set (else NULL) */
    double *dx1, *dx1_err;          /* [m*n] */
    double *dweight1, *dw1_err;     /* [n] */
    double *dbias1, *db1_err;       /* [n] */
} oracle_bwd;

/* Analytic backward in double from h (the tensor the library is given), dy and optional dresidual_out,
 * all [m*n] contiguous doubles. Statistics are recomputed from h in double. */
void oracle_backward(const oracle_problem *p, const double *h, const double *dy, const double *dro,
                     oracle_bwd *b);
/* The same with the parallel residual: g = dy * w' + dy1 * w1' (dy1 [m*n], required when p->weight1 is set,
 * else ignored); dx1 = keep1 * dh * s; dweight1 = sum(dy1 * xhat), dbias1 = sum(dy1). With dy1 = NULL and no
 * weight1 it is oracle_backward. */
void oracle_backward_parallel(const oracle_problem *p, const double *h, const double *dy, const double *dy1,
                              const double *dro, oracle_bwd *b);
void oracle_bwd_free(oracle_bwd *b);

/* ---- comparison reports -------------------------------------------------------------------------- */
typedef struct oracle_report {
    const char *what;
    int64_t count, bad;
    double worst;      /* max err / tol */
    double worst_got, worst_ref, worst_tol;
    int64_t worst_r, worst_c;
} oracle_report;

void oracle_report_init(oracle_report *rep, const char *what);
/* Adds one element: NaN reference wants NaN; otherwise |got - ref| <= tol (inf must match exactly). */
void oracle_report_add(oracle_report *rep, double got, double ref, double tol, int64_t r, int64_t c);
/* Adds an exact-equality check (bits), recorded as ratio 0 or +inf. */
void oracle_report_exact(oracle_report *rep, uint32_t got_bits, uint32_t ref_bits, double got, double ref,
                         int64_t r, int64_t c);
/* Appends one line "what: worst err/tol ... " to buf. */
void oracle_report_format(const oracle_report *rep, char *buf, size_t size);

/* ---- harness --------------------------------------------------------------------------------------- */
typedef enum oracle_data {
    ORACLE_DATA_UNIFORM = 0, /* dense random data with nonzero row means */
    ORACLE_DATA_SPIKES = 1   /* tiny noise plus a few large spikes per row at tails, lane and group edges */
} oracle_data;

/* Deliberate oracle mutations, for the self-checks that prove the bounds are tight enough to catch them. */
typedef enum oracle_mutation {
    ORACLE_MUT_NONE = 0,
    ORACLE_MUT_SKIP_LAST_COL, /* the oracle's reductions skip column N-1 (a dropped tail element) */
    ORACLE_MUT_NO_EPS,        /* eps = 0 */
    ORACLE_MUT_SWAP_NORM,     /* RMSNorm <-> LayerNorm */
    ORACLE_MUT_NO_DROP_SCALE, /* kept values not scaled by 1/(1-p) */
    ORACLE_MUT_NOT_CENTERED,  /* zero-centered weight flag ignored */
    /* parallel residual */
    ORACLE_MUT_NO_X1,         /* x1 not added to h */
    ORACLE_MUT_X1_SAME_KEEP,  /* x1's keep bits taken from x's (index r*N + c, not + 2^63) */
    ORACLE_MUT_W1_IS_W,       /* y1 and g use weight, not weight1 */
    ORACLE_MUT_NO_DY1         /* the backward ignores dy1 (g = dy * w' only) */
} oracle_mutation;

typedef struct oracle_case {
    darn_desc desc;
    double amp;           /* scale of x and residual data (0 means 1) */
    oracle_mutation mutation;
    int mutate_backward_only; /* apply the mutation to the backward's oracle only */
    int64_t pad;          /* extra elements per row of every [M, N] tensor: stride N + pad (0: stride 0) */
    uint64_t data_seed;
    oracle_data data;
    int backward;         /* run and check darn_bwd too */
    int bwd_dresidual_out;/* pass a dresidual_out */
    int bwd_regen_mask;   /* pass mask = NULL to the backward (regenerated) */
    int bwd_h_is_x;       /* pass x itself as h (only where h == x) */
    int skip_optional;    /* forward only: request out alone (no residual_out, mask, rstd, mean) */
    /* parallel residual: the flags in desc decide which of x1 / weight1 / bias1 (and out1, mask1, dy1, dx1,
     * dweight1, dbias1) exist; x1 is filled like x, weight1 / bias1 like weight / bias. */
    int bwd_regen_mask1;  /* pass mask1 = NULL to the backward (regenerated) */
    int64_t pad1;         /* row padding of x1, out1, dy1 and dx1 alone (0: `pad`'s stride), so that a backend
                           * reading them with another tensor's stride fails */
} oracle_case;

/* Index of each output's report in oracle_result.rep. */
enum {
    ORACLE_REP_Y, ORACLE_REP_RESOUT, ORACLE_REP_MASK, ORACLE_REP_RSTD, ORACLE_REP_MEAN,
    ORACLE_REP_DX, ORACLE_REP_DRES, ORACLE_REP_DW, ORACLE_REP_DB, ORACLE_REP_GUARD,
    ORACLE_REP_Y1, ORACLE_REP_MASK1, ORACLE_REP_DX1, ORACLE_REP_DW1, ORACLE_REP_DB1, ORACLE_NREP
};
typedef struct oracle_result {
    int ok;
    char msg[4096];             /* the failures (or empty) */
    oracle_report rep[ORACLE_NREP]; /* indexed by ORACLE_REP_* */
    char guard_msg[512];        /* which guard, gap or input was written, if any */
    int nrep;
} oracle_result;

/* Runs one case, fills *res (ok = 1 when every output is within its bound and nothing outside the
 * tensors was written). */
void oracle_run_case(const oracle_case *c, oracle_result *res);

/* Running maxima of err/tol per output name, across many cases (for the test's summary line). */
typedef struct oracle_worst {
    double v[ORACLE_NREP];
    const char *name[ORACLE_NREP];
    int64_t cases;
} oracle_worst;
void oracle_worst_init(oracle_worst *w);
void oracle_worst_add(oracle_worst *w, const oracle_result *res);
void oracle_worst_print(const oracle_worst *w, const char *label);

/* Short description of a case for messages ("LN M=7 N=133 x=bf16 res=f32 ... p=0.3"). */
void oracle_case_describe(const oracle_case *c, char *buf, size_t size);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DARN_TESTS_ORACLE_H */
