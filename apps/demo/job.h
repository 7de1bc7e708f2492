/*
 * job.h — one darn "job": deterministic inputs, a forward + backward run through the public API on one
 * backend, and a SHA-256 digest of every output. Used by darn-demo, the golden-digest test and any tool
 * that needs to say "these bits, on this machine" in one line.
 *
 * A job is fully described by a config string (darn_job_parse / darn_job_format), e.g.
 *
 *   rms M=37 N=1000 x=bf16 res=f32 w=bf16 b=- out=bf16 flags=res,rif32 p=0.1 eps=1e-06 seed=42 offset=7 mask=1 dres=1
 *
 * Inputs are a pure function of (config, tensor tag, element index) computed with integer arithmetic and
 * exact float scaling, then rounded with the contract's store functions, so every machine generates the
 * same input bits and — by the numerics contract — the same output bits and digest.
 *
 * Memory goes through a tiny abstraction (darn_mem) so the same job runs on the CPU backend (malloc /
 * memcpy) and on the GPU backend (hipMalloc / hipMemcpy: apps/demo/mem_gpu.c, compiled only with
 * DARN_HAVE_GPU, provides darn_mem_gpu()).
 */
#ifndef DARN_DEMO_JOB_H
#define DARN_DEMO_JOB_H

#include <stddef.h>
#include <stdint.h>

#include <darn/darn.h>

#include "darn_timing.h" /* darn_now_ms, darn_median (apps/common) */
#include "sha256.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- memory abstraction ---------------------------------------------------------------------------
 * Every function returns 0 on success and non-zero on failure (then error() says why). "Device" means
 * memory of `backend`; for the CPU it is ordinary host memory. */
typedef struct darn_mem {
    const char *name;      /* "cpu", "gpu" */
    darn_backend backend;  /* the darn backend that reads and writes this memory */
    void *ctx;             /* implementation state, passed back to every function */
    void *stream;          /* passed to darn_fwd / darn_bwd (NULL: the default stream) */
    /* `bytes` of device memory (0 allowed: still a unique pointer), aligned to at least 64 bytes. */
    void *(*alloc)(void *ctx, size_t bytes);
    void (*release)(void *ctx, void *ptr); /* NULL-safe */
    int (*to_device)(void *ctx, void *dst, const void *src, size_t bytes); /* host -> device, complete on return */
    int (*to_host)(void *ctx, void *dst, const void *src, size_t bytes);   /* device -> host, complete on return */
    int (*copy)(void *ctx, void *dst, const void *src, size_t bytes);      /* device -> device, on `stream` */
    int (*sync)(void *ctx);                                                /* waits for all work on `stream` */
    /* Optional device timer around work queued on `stream` (GPU: events). NULL: the host monotonic
     * clock around the call followed by sync(). */
    int (*timer_start)(void *ctx);
    int (*timer_stop)(void *ctx, double *ms); /* waits for the timed work; elapsed milliseconds */
    const char *(*error)(void *ctx);          /* text of the last failure */
} darn_mem;

/* Host memory for the CPU backend (aligned_alloc / memcpy). */
const darn_mem *darn_mem_cpu(void);
#ifdef DARN_HAVE_GPU
/* Device memory for the GPU backend; defined in apps/demo/mem_gpu.c (HIP). NULL when no device. */
const darn_mem *darn_mem_gpu(void);
#endif /* DARN_HAVE_GPU */
/* The memory of `backend` when that backend is usable now (darn_backend_available and, for the GPU, the
 * tools were built with DARN_HAVE_GPU), else NULL. */
const darn_mem *darn_mem_for(darn_backend backend);

/* ---- job description ------------------------------------------------------------------------------ */
typedef struct darn_job {
    darn_norm norm;
    int64_t rows, cols; /* M >= 0, N >= 1 */
    darn_dtype x_dtype, residual_dtype, weight_dtype, bias_dtype, out_dtype;
    uint32_t flags;     /* DARN_FLAG_* (HAS_RESIDUAL / HAS_BIAS or HAS_BIAS1 decide whether res= / b= are used);
                         * HAS_X1 / HAS_WEIGHT1 / HAS_BIAS1: flash-attn's parallel residual (flags x1, w1, b1) */
    double p;           /* dropout probability */
    float eps;
    uint64_t seed, offset;
    int mask;           /* 1: forward writes the mask and backward reads it; 0: backward regenerates it */
    int dresidual_out;  /* 1: backward gets a dresidual_out input (gradient into the prenorm output) */
    int special;        /* 1: some x elements are inf, NaN (non-canonical payloads), subnormal, -0, max */
    darn_dtype dy_dtype; /* dy's dtype; DARN_DTYPE_SAME_AS_OUT (the default): out_dtype. Config key dy= */
    float scale;        /* fp8 out: desc.out_scale (default 1). Config key scale=, printed for fp8 outs only */
    int amax;           /* 1: the forward writes amax (fp8 out). Config key amax=1 */
    /* Not part of the config string, never changes the digest: extra elements per row of every
     * [M, N] tensor (row stride N + pad), with sentinel bytes in the padding that must stay untouched. */
    int64_t pad;
} darn_job;

/* Defaults as darn_desc_init (eps 1e-6 RMS / 1e-5 Layer), all dtypes `dtype`, no flags, p = 0,
 * seed = offset = 0, mask = dresidual_out = special = 0, pad = 0. */
void darn_job_init(darn_job *job, darn_norm norm, int64_t rows, int64_t cols, darn_dtype dtype);

/* Parses a config string (see above; keys in any order, M= and N= required, the rest default as
 * darn_job_init with f32; `res=-` / `b=-` with no res flag / neither a bias nor a b1 flag). Flags: res, bias,
 * rowscale, zc (zero-centered weight), rif32 (residual in fp32), x1 (a second input x1, x's dtype), w1 (a
 * second output y1 with its own weight1, w's dtype), b1 (y1's bias1, b's dtype; needs w1), or `-`. The
 * parallel-residual flags come last in the canonical string, so configs without them print as before.
 * Returns 0, or -1 with a message in err. */
int darn_job_parse(darn_job *job, const char *text, char *err, size_t err_len);
/* The canonical config string (every key, shortest round-trip numbers). Returns 0, -1 if truncated. */
int darn_job_format(const darn_job *job, char *buf, size_t len);
/* The darn_desc of the job. */
void darn_job_desc(const darn_job *job, darn_desc *desc);
/* 1 when the backward reads h from x itself (no residual, no rowscale, no x1, p = 0, h dtype == x dtype):
 * the forward then writes no residual_out. */
int darn_job_h_is_x(const darn_job *job);

/* dtype names "f32" "f16" "bf16" "e4m3fn" "e5m2" "e4m3fnuz" "e5m2fnuz"; parse returns 0 or -1. */
const char *darn_job_dtype_name(darn_dtype dtype);
int darn_job_dtype_parse(const char *text, darn_dtype *dtype);

/* ---- inputs (host memory, contiguous) ------------------------------------------------------------- */
typedef struct darn_job_inputs {
    void *x;             /* [M, N] x_dtype */
    void *residual;      /* [M, N] residual_dtype, or NULL */
    float *rowscale;     /* [M], or NULL */
    void *weight;        /* [N] weight_dtype (around 1; around 0 when zero-centered) */
    void *bias;          /* [N] bias_dtype, or NULL */
    void *dy;            /* [M, N] dy dtype (dy_dtype, or out_dtype) */
    void *dresidual_out; /* [M, N] residual-out dtype, or NULL */
    /* parallel residual (flags x1 / w1 / b1), else NULL */
    void *x1;            /* [M, N] x_dtype (x1) */
    void *weight1;       /* [N] weight_dtype (w1; generated as weight is, from its own stream) */
    void *bias1;         /* [N] bias_dtype (b1) */
    void *dy1;           /* [M, N] dy dtype (w1): the gradient of y1 */
} darn_job_inputs;

/* Generates the inputs of `job`. Returns 0, or -1 (out of memory / size overflow) with a message. */
int darn_job_inputs_make(const darn_job *job, darn_job_inputs *in, char *err, size_t err_len);
void darn_job_inputs_free(darn_job_inputs *in);

/* ---- outputs, in digest order ----------------------------------------------------------------------- */
typedef enum darn_job_tensor {
    DARN_JOB_Y = 0,
    DARN_JOB_RESIDUAL_OUT,
    DARN_JOB_RSTD,
    DARN_JOB_MEAN,
    DARN_JOB_MASK,
    DARN_JOB_DX,
    DARN_JOB_DRESIDUAL,
    DARN_JOB_DWEIGHT,
    DARN_JOB_DBIAS,
    DARN_JOB_AMAX, /* amax=1 only; after the contract-1 tensors, so that the digests of jobs without it are what they were */
    /* parallel residual (contract 4), after amax for the same reason; produced only with their flags */
    DARN_JOB_Y1,       /* w1: the second output (out1) */
    DARN_JOB_MASK1,    /* x1 and mask=1: x1's keep bits */
    DARN_JOB_DX1,      /* x1 */
    DARN_JOB_DWEIGHT1, /* w1 */
    DARN_JOB_DBIAS1,   /* b1 */
    DARN_JOB_TENSORS
} darn_job_tensor;

typedef struct darn_job_output {
    const char *name;   /* "y", "residual_out", "rstd", "mean", "mask", "dx", "dresidual", "dweight", "dbias", "amax",
                         * "y1", "mask1", "dx1", "dweight1", "dbias1" */
    int produced;       /* 0: not an output of this job (not hashed) */
    const char *type;   /* a dtype name (darn_job_dtype_name), or "u8" for the mask */
    int64_t rows, cols; /* logical shape; a vector is [1, n]; mask and mask1 are [M, darn_mask_row_bytes(N)] */
    size_t bytes;       /* rows * cols * element size */
    void *host;         /* contiguous row-major copy, `bytes` bytes */
    uint8_t digest[DARN_SHA256_BYTES]; /* SHA-256 of this tensor's record (see darn_job_run) */
} darn_job_output;

typedef struct darn_job_result {
    darn_job_output out[DARN_JOB_TENSORS];
    uint8_t digest[DARN_SHA256_BYTES]; /* SHA-256 of the manifest of all produced tensors, in order */
    darn_status status;   /* DARN_OK, or the darn status that failed the run */
    char error[512];      /* why the run failed ("" on success) */
    int repeat;           /* timed repetitions run */
    double fwd_ms, bwd_ms; /* median over the timed repetitions (0 when repeat == 0) */
    double fwd_bytes, bwd_bytes; /* minimal bytes read + written by one forward / backward */
} darn_job_result;

/*
 * Runs the job on mem->backend: copies the inputs in, runs darn_fwd then darn_bwd once, then `repeat`
 * more times each for timing (forward runs before backward; outputs are rewritten with the same bits),
 * copies every output back (stripping row strides) and computes the digests. Output buffers and their
 * stride padding are filled with a sentinel first; padding that changes fails the run.
 *
 * Digests: each produced tensor has a record, the tag "<name>:<type>:<rows>x<cols>\n" followed by its
 * contiguous row-major bytes (little-endian); its digest is SHA-256 of the record. The job digest is
 * SHA-256 of the manifest: one line "<name>:<type>:<rows>x<cols>:<64-hex tensor digest>\n" per produced
 * tensor, in darn_job_tensor order (so every output byte is covered, each hashed once).
 *
 * Returns 0, or -1 with res->status / res->error set. res must be darn_job_result_free()d either way.
 */
int darn_job_run(const darn_job *job, const darn_job_inputs *in, const darn_mem *mem, int repeat,
                 darn_job_result *res);
void darn_job_result_free(darn_job_result *res);

/* Compares two results tensor by tensor (produced set and bytes). Returns 0 when identical, else -1
 * with the first differing tensor and byte offset in msg. */
int darn_job_compare(const darn_job_result *a, const darn_job_result *b, char *msg, size_t msg_len);

/* Parses `config`, generates inputs and runs it on `backend` (repeat 0), writing the digest.
 * Returns 0, or -1 with a message (backend unavailable, parse error, darn error). */
int darn_job_digest_config(const char *config, darn_backend backend, uint8_t digest[DARN_SHA256_BYTES],
                           char *err, size_t err_len);

/* ---- golden digest files ---------------------------------------------------------------------------
 * One entry per line: a config string, whitespace, and the 64-hex-digit digest as the last token.
 * Blank lines and lines starting with '#' are skipped. */
typedef struct darn_golden_entry {
    char config[512];
    char hex[DARN_SHA256_HEX];
    int line;
} darn_golden_entry;

/* Reads `path`. Returns 0 with a malloc'ed array (free() it) and its count, or -1 with a message. */
int darn_golden_load(const char *path, darn_golden_entry **entries, size_t *count, char *err, size_t err_len);

/* ---- timing helpers ------------------------------------------------------------------------------- */
/* darn_now_ms() and darn_median(): apps/common/darn_timing.h (included above). */
/* Median milliseconds of `repeat` device-to-device copies of `bytes` on `mem` (the bandwidth
 * reference); -1 on failure. */
double darn_mem_copy_ms(const darn_mem *mem, size_t bytes, int repeat);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DARN_DEMO_JOB_H */
