/*
 * darn.h — Dropout-Add-Norm: the public C API (C11 and C++).
 *
 *   h   = dropout(x * rowscale) [+ dropout1(x1)] + residual    (rounded to the residual-out dtype)
 *   y   = norm(h) * w' + b,   w' = w or 1 + w (zero-centered weight)
 *   y1  = norm(h) * w1' + b1  (optional second output: flash-attn's parallel residual, x1 / weight1 / bias1)
 *   norm = RMSNorm:   h * rstd,            rstd = 1 / sqrt(mean(h^2) + eps)
 *          LayerNorm: (h - mean) * rstd,   rstd = 1 / sqrt(mean((h - mean)^2) + eps)
 *
 * and the backward pass (dx, dresidual, dweight, dbias). Every output bit is fixed by the numerics
 * contract in docs/numerics.md: the CPU backend and the GPU backends (AMD and NVIDIA, one HIP source)
 * return identical bits for the same inputs, seed and offset, whatever the thread count, launch shape,
 * warp size or number of SMs/CUs. DARN_CONTRACT_VERSION names that contract; it changes whenever any
 * output bit for some input would change.
 *
 * Conventions
 * - Tensors are row-major [M, N] with a row stride in elements (0 means N, i.e. contiguous); vectors
 *   (weight, bias) are [N]; per-row statistics (rstd, mean) and rowscale are [M] fp32.
 * - Each tensor's element type is chosen independently (darn_dtype); pointers must be aligned to their
 *   element size.
 * - Calls return a darn_status. On any status other than DARN_OK no output byte is written, and
 *   darn_last_error() returns a message naming the offending argument (thread-local). Every check that
 *   can fail runs before the first GPU launch; the one exception is DARN_ERR_DEVICE (the GPU runtime
 *   refused a launch, e.g. a device in an error state), after which the outputs of an earlier launch of
 *   the same call (the backward's dx / dresidual before its dweight pass) may be written.
 * - The CPU backend keeps its working tiles on the calling thread's stack: about 12 KB per call (any N).
 * - Inputs that contradict the options are rejected (DARN_ERR_UNSUPPORTED): a residual, bias or rowscale
 *   pointer without its flag, a mean with RMSNorm. The dropout mask is the one input read only when it
 *   can matter: at p = 0 every element is kept and at p = 1 none is, and darn_bwd does not read it.
 * - No call allocates memory, and GPU calls never synchronize: they are ordered on `stream`
 *   (a hipStream_t / cudaStream_t, NULL = the default stream). Workspace comes from the caller:
 *   ask darn_*_workspace_size() first; it must be 16-byte aligned, in the backend's memory, and
 *   overlap no tensor. Pointers of the GPU backend are device pointers.
 * - With M = 0 nothing is read, so row tensors may be NULL; the backward still writes dweight/dbias.
 * - Outputs may not overlap inputs or each other, except the exact in-place pairs named per function
 *   (same pointer, same dtype, same stride). Overlap is decided on the bytes each tensor touches: the N
 *   elements of each of its M rows (a vector is one row), not the span from first to last byte, so
 *   element-disjoint interleaved views work (x = buf[:, :N], out = buf[:, N:], both with row stride 2N).
 *   A call never writes the bytes between rows. The rng pointers count as 8-byte inputs.
 */
#ifndef DARN_DARN_H
#define DARN_DARN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(DARN_BUILDING_LIBRARY)
#define DARN_API __declspec(dllexport)
#elif defined(__GNUC__)
#define DARN_API __attribute__((visibility("default")))
#else
#define DARN_API
#endif /* _WIN32 && DARN_BUILDING_LIBRARY */

#define DARN_VERSION_MAJOR 0
#define DARN_VERSION_MINOR 1
#define DARN_VERSION_PATCH 0
#define DARN_VERSION_NUMBER (DARN_VERSION_MAJOR * 10000 + DARN_VERSION_MINOR * 100 + DARN_VERSION_PATCH)
#define DARN_CONTRACT_VERSION 4

/* Runtime version: DARN_VERSION_NUMBER of the library actually linked, and its version string. */
DARN_API int darn_version(void);
DARN_API const char *darn_version_string(void);
/* The numerics contract the linked library implements (DARN_CONTRACT_VERSION at its build). */
DARN_API int darn_contract_version(void);

/* ---- Status codes: values are stable and never reused (DARN_ERR_UNSUPPORTED_ON_GPU: returned by the column-slice
 * calls of tensor parallelism, below, which have no GPU kernels yet). ------------------------------------ */
#define DARN_STATUS_LIST(X)                                                                              \
    X(DARN_OK, 0, "success")                                                                             \
    X(DARN_ERR_NULL_POINTER, 1, "a required pointer is NULL")                                            \
    X(DARN_ERR_BAD_SHAPE, 2, "invalid shape: N must be >= 1 and M >= 0")                                 \
    X(DARN_ERR_OVERFLOW, 3, "size or stride arithmetic overflows")                                       \
    X(DARN_ERR_BAD_STRIDE, 4, "invalid row stride: must be 0 (contiguous) or >= N")                      \
    X(DARN_ERR_BAD_DROPOUT, 5, "invalid dropout probability: must be in [0, 1]")                         \
    X(DARN_ERR_BAD_EPS, 6, "invalid eps: must be finite and > 0")                                        \
    X(DARN_ERR_BAD_ENUM, 7, "unknown enum value (dtype, norm kind, backend or flag)")                    \
    X(DARN_ERR_UNSUPPORTED, 8, "combination of options not supported")                                  \
    X(DARN_ERR_ALIASING, 9, "buffers overlap that may not")                                              \
    X(DARN_ERR_MISALIGNED, 10, "pointer not aligned as the backend requires")                            \
    X(DARN_ERR_WORKSPACE, 11, "workspace too small or NULL")                                             \
    X(DARN_ERR_BACKEND_UNAVAILABLE, 12, "backend not built into this library or no device present")      \
    X(DARN_ERR_DEVICE, 13, "the GPU runtime reported an error")                                          \
    X(DARN_ERR_UNSUPPORTED_ON_GPU, 14, "supported by the CPU backend only")                               \
    X(DARN_ERR_BAD_SCALE, 15, "invalid fp8 output scale: must be finite and > 0")                          \
    X(DARN_ERR_CHUNK_SPLIT, 16, "row block not on the dweight chunk boundaries of the whole batch")         \
    X(DARN_ERR_COL_SPLIT, 17, "column split not on the row-sum group boundaries")

typedef enum darn_status {
#define DARN_X_ENUM(name, value, text) name = value,
    DARN_STATUS_LIST(DARN_X_ENUM)
#undef DARN_X_ENUM
} darn_status;

/* Static text for a status ("unknown status" for values not in the list). */
DARN_API const char *darn_status_string(darn_status status);
/* The message of the last failing call on this thread; "" after success. It names the function once, then
 * the bad argument, the value as passed (dropout_p with %.17g, eps with %.9g: both read back exactly) and
 * the rule it breaks, e.g. "darn_fwd: desc->dropout_p = 1.0000000000000002, must be in [0, 1]". It is
 * complete without darn_status_string(). */
DARN_API const char *darn_last_error(void);

/* ---- Enums --------------------------------------------------------------------------------------- */
/* The fp8 dtypes (docs/numerics.md §9) are output dtypes: only desc->out_dtype may be one (any other dtype
 * field set to one is DARN_ERR_UNSUPPORTED). OCP encodings: E4M3FN (no inf, max 448) and E5M2 (max 57344);
 * FNUZ encodings of AMD MI300 (bias 8 / 16, no negative zero, 0x80 the only NaN, no inf): E4M3FNUZ (max
 * 240) and E5M2FNUZ (max 57344). They are torch.float8_e4m3fn, float8_e5m2, float8_e4m3fnuz and
 * float8_e5m2fnuz. DARN_DTYPE_SAME_AS_OUT is no dtype: it is only for desc->dy_dtype. */
typedef enum darn_dtype {
    DARN_F32 = 0,
    DARN_F16 = 1,
    DARN_BF16 = 2,
    DARN_FP8_E4M3FN = 3,
    DARN_FP8_E5M2 = 4,
    DARN_FP8_E4M3FNUZ = 5,
    DARN_FP8_E5M2FNUZ = 6,
    DARN_DTYPE_SAME_AS_OUT = 255 /* desc->dy_dtype only: dy has out_dtype (darn_desc_init's default) */
} darn_dtype;
typedef enum darn_norm { DARN_RMSNORM = 0, DARN_LAYERNORM = 1 } darn_norm;
typedef enum darn_backend {
    DARN_BACKEND_CPU = 0, /* always present; the reference */
    DARN_BACKEND_GPU = 1  /* the HIP backend this library was built with (DARN_GPU=amd|nvidia) */
} darn_backend;

/* Size in bytes of one element (1 for the fp8 dtypes); 0 for an unknown dtype and DARN_DTYPE_SAME_AS_OUT. */
DARN_API size_t darn_dtype_size(darn_dtype dtype);
/* 1 when `backend` is built in and usable now (for the GPU: a device is present), else 0. */
DARN_API int darn_backend_available(darn_backend backend);

/* Flags of darn_desc.flags. */
#define DARN_FLAG_ZERO_CENTERED_WEIGHT (1u << 0) /* w' = 1 + w (computed in fp32) */
#define DARN_FLAG_RESIDUAL_IN_FP32 (1u << 1)     /* residual-out (h) is stored and normed in fp32 */
#define DARN_FLAG_HAS_RESIDUAL (1u << 2)         /* a residual is added (residual pointer required) */
#define DARN_FLAG_HAS_BIAS (1u << 3)             /* y += b; backward produces dbias */
#define DARN_FLAG_HAS_ROWSCALE (1u << 4)         /* x is multiplied by rowscale[r] before dropout */
/* flash-attn's parallel residual (docs/numerics.md §4, §6; since contract version 4): */
#define DARN_FLAG_HAS_X1 (1u << 5)      /* h += dropout1(x1): x1 [M, N] x_dtype, its own keep bits (mask1) */
#define DARN_FLAG_HAS_WEIGHT1 (1u << 6) /* second output y1 = norm(h) * w1' (out1, out_dtype); backward: dy1, dweight1 */
#define DARN_FLAG_HAS_BIAS1 (1u << 7)   /* y1 += b1 (needs DARN_FLAG_HAS_WEIGHT1); backward: dbias1 */
#define DARN_FLAGS_ALL 0xFFu

/*
 * The problem: everything the forward and the backward of one layer share. Fill it with
 * darn_desc_init() and change the fields you need, so fields added in later versions get defaults.
 *
 * The residual-out dtype (the dtype of h, which the norm reads and the backward takes back) is
 * derived, never stored: F32 with DARN_FLAG_RESIDUAL_IN_FP32, else residual_dtype with a residual,
 * else x_dtype. darn_residual_out_dtype() computes it.
 *
 * Dropout: element (r, c) is kept iff philox_word(seed, offset, r*N + c) >= floor(p * 2^32);
 * kept values are scaled by (float)(1 / (1 - p)); p = 1 drops all. With rng_seed_ptr/rng_offset_ptr
 * non-NULL (both or neither; memory of the chosen backend, read when the work runs, as PyTorch's
 * graph-safe Philox state is), seed = *rng_seed_ptr and offset = *rng_offset_ptr + offset. Each must be
 * 8-byte aligned (else DARN_ERR_MISALIGNED, whatever M and p) and may not overlap an output of the call
 * (else DARN_ERR_ALIASING); they may point into an input.
 *
 * fp8 output (out_dtype one of the DARN_FP8_* dtypes, docs/numerics.md §9): out = fp8(y * scale), the fp32
 * product rounded to nearest even and saturated to the largest finite value (TransformerEngine's
 * convention). scale = out_scale (finite and > 0, else DARN_ERR_BAD_SCALE), or, with out_scale_ptr
 * non-NULL, scale = *out_scale_ptr (4-byte aligned, else DARN_ERR_MISALIGNED, whatever M; memory of the
 * chosen backend, read when the work runs, any value: §9 fixes the bits for every one; may not overlap an
 * output of the call). out_scale is ignored without an fp8 out_dtype; out_scale_ptr without one is
 * DARN_ERR_UNSUPPORTED. The backward never reads y, the scale or amax.
 *
 * Parallel residual (flash-attn's layer_norm_fn(x, ..., x1=, weight1=, bias1=)): with DARN_FLAG_HAS_X1,
 * h = dropout(x * rowscale) + dropout1(x1) + residual, where dropout1 uses the same p, seed and offset and the
 * element index i + 2^63 (docs/numerics.md §3), so the two masks are independent and never share a Philox word;
 * rowscale applies to x only. With DARN_FLAG_HAS_WEIGHT1 the forward also writes y1 = norm(h) * w1' (+ b1 with
 * DARN_FLAG_HAS_BIAS1) to out1, and the backward takes dy1 (dy's dtype) and returns dweight1 (dbias1). x1 has
 * x_dtype, weight1 weight_dtype, bias1 bias_dtype, out1 out_dtype; a zero-centered weight applies to both
 * weights. Not with an fp8 out_dtype and a second output (DARN_ERR_UNSUPPORTED), nor with
 * darn_bwd_partials / darn_wgrad_reduce and a second output (their partials are one weight's).
 *
 * dy_dtype: the dtype of the backward's dy, f32, f16 or bf16; DARN_DTYPE_SAME_AS_OUT (darn_desc_init's
 * default) means out_dtype, which darn_bwd refuses (DARN_ERR_UNSUPPORTED) when out_dtype is fp8: the
 * gradient arrives in 16/32 bits, so say which.
 */
typedef struct darn_desc {
    darn_norm norm;
    int64_t rows; /* M >= 0 */
    int64_t cols; /* N >= 1 */
    darn_dtype x_dtype, residual_dtype, weight_dtype, bias_dtype, out_dtype;
    uint32_t flags; /* DARN_FLAG_* */
    float eps;      /* > 0, finite */
    double dropout_p; /* in [0, 1] */
    uint64_t seed, offset;
    const uint64_t *rng_seed_ptr;   /* optional, see above */
    const uint64_t *rng_offset_ptr; /* optional, see above */
    darn_dtype dy_dtype;            /* backward: dy's dtype (see above); darn_desc_init: DARN_DTYPE_SAME_AS_OUT */
    float out_scale;                /* fp8 out only: y8 = fp8(y * out_scale); darn_desc_init: 1 */
    const float *out_scale_ptr;     /* optional, fp8 out only: the scale, read when the work runs */
} darn_desc;

/* Defaults: all dtypes `dtype`, dy_dtype DARN_DTYPE_SAME_AS_OUT, no flags, eps 1e-5 (LayerNorm) / 1e-6
 * (RMSNorm), p = 0, seed = offset = 0, out_scale 1, no pointers.
 * The arguments are stored as given (darn_fwd/darn_bwd check them). desc == NULL: does nothing. */
DARN_API void darn_desc_init(darn_desc *desc, darn_norm norm, int64_t rows, int64_t cols, darn_dtype dtype);
/* The residual-out dtype of `desc` (see above), from its flags and dtypes alone. desc == NULL: returns
 * (darn_dtype)-1, which is no darn_dtype (darn_dtype_size() of it is 0). */
DARN_API darn_dtype darn_residual_out_dtype(const darn_desc *desc);

/* ---- Dropout mask layout ---------------------------------------------------------------------------
 * 1 bit per element, 1 = kept. Row r starts at byte r * darn_mask_row_bytes(N); bit c of the row is bit
 * (c % 8) of byte c / 8 (LSB first, i.e. little-endian 32-bit words). Rows are padded to whole 32-bit
 * words, so no two rows share a word; padding bits are written as 0. darn_mask_row_bytes(N) =
 * 4 * ceil(N / 32) for every N >= 1 (no overflow for any int64 N), 0 for N <= 0. */
DARN_API int64_t darn_mask_row_bytes(int64_t cols);

/* ---- Forward ---------------------------------------------------------------------------------------
 * Inputs:  x [M, N] x_dtype; residual [M, N] residual_dtype (DARN_FLAG_HAS_RESIDUAL);
 *          rowscale [M] fp32 (DARN_FLAG_HAS_ROWSCALE); weight [N] weight_dtype;
 *          bias [N] bias_dtype (DARN_FLAG_HAS_BIAS); x1 [M, N] x_dtype (DARN_FLAG_HAS_X1);
 *          weight1 [N] weight_dtype (DARN_FLAG_HAS_WEIGHT1); bias1 [N] bias_dtype (DARN_FLAG_HAS_BIAS1).
 * Outputs (NULL = not wanted unless marked required):
 *          out [M, N] out_dtype (required); residual_out [M, N] darn_residual_out_dtype() (h, the
 *          "prenorm" output the backward needs whenever h != x); mask [M, darn_mask_row_bytes(N)] bytes;
 *          rstd [M] fp32; mean [M] fp32 (LayerNorm only: non-NULL with RMSNorm is DARN_ERR_UNSUPPORTED);
 *          amax [1] fp32 (fp8 out_dtype only, else DARN_ERR_UNSUPPORTED): max |y| over the whole call,
 *          before the scale, NaN if any y is NaN, +0 for M = 0 (written then too); docs/numerics.md §9;
 *          out1 [M, N] out_dtype (DARN_FLAG_HAS_WEIGHT1, required); mask1 [M, darn_mask_row_bytes(N)] bytes
 *          (DARN_FLAG_HAS_X1): x1's keep bits, laid out as mask.
 * Pointers given without their flag (residual, bias, rowscale, x1, mask1, weight1, out1, bias1) are
 * DARN_ERR_UNSUPPORTED, not ignored.
 * In place: out == x and residual_out == residual are allowed (same pointer, dtype and stride).
 * fp8 out_dtype: both backends (the GPU through its run-time-dtype kernels; amax zeroed on the stream, then
 * the kernels' atomic maxima of its bits: capture-safe, deterministic). The backward of such a layer (dy in
 * 16/32 bits) runs on both backends.
 */
typedef struct darn_fwd_tensors {
    const void *x;        int64_t x_stride;
    const void *residual; int64_t residual_stride;
    const float *rowscale;
    const void *weight;
    const void *bias;
    void *out;            int64_t out_stride;
    void *residual_out;   int64_t residual_out_stride;
    uint8_t *mask;
    float *rstd;
    float *mean;
    float *amax;
    /* parallel residual (DARN_FLAG_HAS_X1 / _WEIGHT1 / _BIAS1) */
    const void *x1;       int64_t x1_stride;
    const void *weight1;
    const void *bias1;
    void *out1;           int64_t out1_stride;
    uint8_t *mask1;
} darn_fwd_tensors;

/* Workspace bytes darn_fwd() needs for `desc` on `backend` (may be 0). */
DARN_API darn_status darn_fwd_workspace_size(const darn_desc *desc, darn_backend backend, size_t *bytes);
DARN_API darn_status darn_fwd(const darn_desc *desc, const darn_fwd_tensors *t, void *workspace,
                              size_t workspace_bytes, darn_backend backend, void *stream);

/* ---- Backward --------------------------------------------------------------------------------------
 * Inputs:  dy [M, N] dy dtype (desc->dy_dtype, or out_dtype when that is DARN_DTYPE_SAME_AS_OUT: the
 *          gradient of y before any fp8 scale and cast, which the backward treats as the identity); h [M, N] residual-out dtype (the forward's residual_out, or x itself
 *          when h == x: no residual, no dropout, no rowscale, same dtype); weight [N]; bias [N] is not
 *          read; rstd [M] (required); mean [M] (LayerNorm, required); rowscale [M]
 *          (DARN_FLAG_HAS_ROWSCALE); dresidual_out [M, N] residual-out dtype (optional: the gradient
 *          flowing into the prenorm output); mask (optional: when NULL and p > 0 the mask is regenerated
 *          from seed/offset, with identical bits; it is read only when 0 < p < 1: at p = 0 every
 *          element is kept and at p = 1 every element is dropped, whatever the mask says); mean with
 *          RMSNorm is DARN_ERR_UNSUPPORTED, as in the forward.
 *          Parallel residual: dy1 [M, N] dy dtype and weight1 [N] (DARN_FLAG_HAS_WEIGHT1, required); mask1
 *          (DARN_FLAG_HAS_X1, optional, read like mask).
 * Outputs: dx [M, N] x_dtype (required); dresidual [M, N] residual_dtype (DARN_FLAG_HAS_RESIDUAL, optional);
 *          dweight [N] weight_dtype (required); dbias [N] bias_dtype (DARN_FLAG_HAS_BIAS, required);
 *          dx1 [M, N] x_dtype (DARN_FLAG_HAS_X1, required); dweight1 [N] weight_dtype (DARN_FLAG_HAS_WEIGHT1,
 *          required); dbias1 [N] bias_dtype (DARN_FLAG_HAS_BIAS1, required).
 *          With M = 0, dweight and dbias are set to +0 (the gradient of an empty batch).
 * In place: dx == dy and dresidual == dresidual_out are allowed (same pointer, dtype and stride).
 * dweight/dbias reduce over rows in the order docs/numerics.md §6 fixes from (M, N) alone.
 */
typedef struct darn_bwd_tensors {
    const void *dy;            int64_t dy_stride;
    const void *h;             int64_t h_stride;
    const void *weight;
    const float *rstd;
    const float *mean;
    const float *rowscale;
    const void *dresidual_out; int64_t dresidual_out_stride;
    const uint8_t *mask;
    void *dx;                  int64_t dx_stride;
    void *dresidual;           int64_t dresidual_stride;
    void *dweight;
    void *dbias;
    /* parallel residual (DARN_FLAG_HAS_X1 / _WEIGHT1 / _BIAS1) */
    const void *dy1;           int64_t dy1_stride;
    const void *weight1;
    const uint8_t *mask1;
    void *dx1;                 int64_t dx1_stride;
    void *dweight1;
    void *dbias1;
} darn_bwd_tensors;

DARN_API darn_status darn_bwd_workspace_size(const darn_desc *desc, darn_backend backend, size_t *bytes);
DARN_API darn_status darn_bwd(const darn_desc *desc, const darn_bwd_tensors *t, void *workspace,
                              size_t workspace_bytes, darn_backend backend, void *stream);

/* The dweight/dbias reduction's row chunks (docs/numerics.md §6): chunk g holds rows
 * [g * R, min(M, (g + 1) * R)), R = darn_wgrad_chunk_rows(M, N) = max(1, floor(M * N / 2^21)), and there are
 * G = darn_wgrad_chunks(M, N) = ceil(M / R) of them. Domain: M >= 0, N >= 1 with M * N <= INT64_MAX
 * (what darn_fwd/darn_bwd accept); outside it (M <= 0 or N <= 0) both return 0. A split of the rows at
 * chunk boundaries (e.g. over GPUs) sees whole chunks. */
DARN_API int64_t darn_wgrad_chunks(int64_t rows, int64_t cols);
DARN_API int64_t darn_wgrad_chunk_rows(int64_t rows, int64_t cols);
/* Number of groups ceil(N / 8), the leaves of the row-sum tree (docs/numerics.md §5); 0 for N <= 0. */
DARN_API int64_t darn_row_groups(int64_t cols);

/* ---- Sequence parallelism: one block of consecutive rows of a larger batch ---------------------------
 * A caller (a rank of a sequence-parallel group, say) that holds rows [row0, row0 + rows) of a batch of
 * M = desc->rows rows runs the forward and the backward of its rows alone, and the ranks then combine the
 * backward's dweight/dbias chunk partials (docs/numerics.md §6) with darn_wgrad_reduce: every output bit is
 * that of darn_fwd / darn_bwd on the whole batch (docs/numerics.md §6, "Row blocks"). In all three calls
 * `desc` describes the WHOLE batch (rows = M: every rank passes the same desc); the [M, N] tensors of
 * darn_fwd_tensors / darn_bwd_tensors hold the block's `rows` rows (row 0 of a tensor is global row row0;
 * rstd, mean, rowscale and mask likewise), and dropout uses the global element index (row0 + r) * N + c.
 *
 * The backward's block must fall on the chunk boundaries of the whole batch: row0 a multiple of
 * R = darn_wgrad_chunk_rows(M, N), and rows a multiple of R or row0 + rows = M (else DARN_ERR_CHUNK_SPLIT,
 * checked by darn_wgrad_split too). rows = 0 is a block of no chunks (row0 on a boundary or = M). The
 * forward takes any block. */

/* The chunks of a block: its first chunk g0 = row0 / R and its chunk count ceil(rows / R), for
 * 0 <= row0, rows >= 0, row0 + rows <= M, N >= 1; DARN_ERR_BAD_SHAPE outside that, DARN_ERR_CHUNK_SPLIT
 * for a block off the chunk boundaries. first_chunk or chunks may be NULL. */
DARN_API darn_status darn_wgrad_split(int64_t total_rows, int64_t cols, int64_t row0, int64_t rows,
                                      int64_t *first_chunk, int64_t *chunks);

/* darn_fwd on rows [row0, row0 + rows) of the batch `desc` (desc->rows = M >= row0 + rows): the same
 * outputs, bit for bit, as those rows of darn_fwd on the whole batch. Workspace: darn_fwd_workspace_size
 * of `desc`. */
DARN_API darn_status darn_fwd_rows(const darn_desc *desc, int64_t row0, int64_t rows, const darn_fwd_tensors *t,
                                   void *workspace, size_t workspace_bytes, darn_backend backend, void *stream);

/* darn_bwd on rows [row0, row0 + rows) of the batch `desc`: dx and dresidual of those rows (bit for bit
 * those of darn_bwd on the whole batch), and instead of dweight / dbias (t->dweight and t->dbias must be
 * NULL) the fp32 chunk partials of §6 for the block's chunks g0 … g0 + chunks - 1 (darn_wgrad_split):
 * dweight_partials [chunks, N] (required when chunks > 0), dbias_partials [chunks, N] (with
 * DARN_FLAG_HAS_BIAS, required when chunks > 0; else NULL), contiguous, 16-byte aligned, in the backend's
 * memory. Workspace: darn_bwd_partials_workspace_size bytes (0 on the CPU; on the GPU 8 per row of the block,
 * rounded up to 16, when N is wide enough that its rows are re-read), 16-byte aligned. */
DARN_API darn_status darn_bwd_partials_workspace_size(const darn_desc *desc, int64_t row0, int64_t rows,
                                                      darn_backend backend, size_t *bytes);
DARN_API darn_status darn_bwd_partials(const darn_desc *desc, int64_t row0, int64_t rows, const darn_bwd_tensors *t,
                                       float *dweight_partials, float *dbias_partials, void *workspace,
                                       size_t workspace_bytes, darn_backend backend, void *stream);

/* dweight (weight_dtype) and dbias (bias_dtype, with DARN_FLAG_HAS_BIAS; else NULL) of the batch `desc`
 * from all G = darn_wgrad_chunks(M, N) chunk partials, in chunk order: dweight_partials [G, N] and
 * dbias_partials [G, N] fp32, contiguous, 16-byte aligned (the blocks' darn_bwd_partials outputs laid end
 * to end in row order). The pairwise tree of §6: bit for bit darn_bwd's dweight / dbias. The partials are
 * also the reduction's scratch: their contents are unspecified after a successful call. M = 0: +0, nothing
 * is read. Only desc's shape, dtypes and flags matter (the rest is validated as usual). No workspace. */
DARN_API darn_status darn_wgrad_reduce(const darn_desc *desc, float *dweight_partials, float *dbias_partials,
                                       void *dweight, void *dbias, darn_backend backend, void *stream);

/* ---- Tensor parallelism: one slice of the columns of every row --------------------------------------
 * A caller (a rank of a tensor-parallel group, say) that holds columns [bounds[rank], bounds[rank + 1]) of
 * every row of a batch of N = desc->cols columns runs its slice in phases; between them the ranks exchange
 * their rows' partial sums ("nodes": subtrees of the row-sum tree of docs/numerics.md §5) with an
 * all-gather, and every output bit is that of darn_fwd / darn_bwd on the whole rows (docs/numerics.md §5,
 * "Column slices"): y, h, mask, rstd, mean, dx, dresidual of the slice's columns, and the slice's columns of
 * dweight / dbias (the chunks of §6 are the whole batch's). `desc` describes the WHOLE problem (rows M,
 * cols N: every rank passes the same desc); the tensors hold the slice: [M, n] with n = its column count
 * (row strides 0 or >= n), weight / bias / dweight / dbias [n], masks [M, darn_mask_row_bytes(n)] (bit c
 * of a slice row is column bounds[rank] + c of the batch's row). Dropout draws the batch's element
 * indices r * N + c.
 *
 * The split: 0 = bounds[0] < bounds[1] < ... < bounds[ranks] = N, every bound but the last a multiple of 8
 * (a slice starts on a group of §5), else DARN_ERR_COL_SPLIT. Every rank passes the same bounds.
 * Exchange layout: a slice's nodes of one row and statistic take `slots` = darn_col_split_slots() fp32
 * values (the most any slice of the split has: 1 when every slice is a power-of-two number of groups at a
 * multiple of its size, at most 2 * 63); `nodes` [M, stats, slots] is one rank's contribution and
 * `gathered` [ranks, M, stats, slots] all of them in rank order (torch.distributed.all_gather's layout).
 * Unused slots are written as -0 and never read. 4-byte aligned, contiguous, in the backend's memory.
 *
 * Forward: darn_fwd_cols_sums pass 0 (h, residual_out, mask, mask1 and the nodes of the first sum), then
 * with LayerNorm pass 1 given pass 0's gathered nodes (the nodes of the sum of squared deviations),
 * then darn_fwd_cols given the gathered nodes of the last pass (out, out1, rstd, mean; amax of the
 * slice: the batch's amax is the maximum over the ranks). stats = 1. The sums calls write only
 * residual_out, mask, mask1 (pass 0) and the nodes; darn_fwd_cols reads h back from residual_out when it
 * is given (so pass 0 must have run with it), else recomputes it, and writes neither it nor the masks.
 * Backward: darn_bwd_cols_sums (stats = 1 for RMSNorm, 2 for LayerNorm), then darn_bwd_cols given the
 * gathered nodes. DARN_BACKEND_CPU runs every phase; DARN_BACKEND_GPU returns DARN_ERR_UNSUPPORTED_ON_GPU
 * (no column-slice kernels yet). */
typedef struct darn_col_split {
    const int64_t *bounds; /* [ranks + 1] */
    int64_t ranks;         /* >= 1 */
    int64_t rank;          /* 0 <= rank < ranks */
} darn_col_split;

/* Checks `split` for rows of `cols` columns and returns the node slots per row and statistic. */
DARN_API darn_status darn_col_split_slots(int64_t cols, const darn_col_split *split, int64_t *slots);
/* pass 0: gathered must be NULL; pass 1 (LayerNorm only): gathered = pass 0's, from all ranks. */
DARN_API darn_status darn_fwd_cols_sums(const darn_desc *desc, const darn_col_split *split, int pass,
                                        const float *gathered, const darn_fwd_tensors *t, float *nodes,
                                        darn_backend backend, void *stream);
/* gathered0: pass 0's nodes of all ranks; gathered1: pass 1's (LayerNorm), NULL for RMSNorm. */
DARN_API darn_status darn_fwd_cols(const darn_desc *desc, const darn_col_split *split, const float *gathered0,
                                   const float *gathered1, const darn_fwd_tensors *t, darn_backend backend,
                                   void *stream);
DARN_API darn_status darn_bwd_cols_sums(const darn_desc *desc, const darn_col_split *split, const darn_bwd_tensors *t,
                                        float *nodes, darn_backend backend, void *stream);
/* The workspace of darn_bwd_cols: the chunk partials of the slice's columns, 4 * G * n * sets bytes (§6). */
DARN_API darn_status darn_bwd_cols_workspace_size(const darn_desc *desc, const darn_col_split *split,
                                                  darn_backend backend, size_t *bytes);
DARN_API darn_status darn_bwd_cols(const darn_desc *desc, const darn_col_split *split, const float *gathered,
                                   const darn_bwd_tensors *t, void *workspace, size_t workspace_bytes,
                                   darn_backend backend, void *stream);

/* ---- Debugging: which GPU kernel a call runs --------------------------------------------------------
 * The GPU backend runs every call through one dispatch table per direction (docs/numerics.md §7): an
 * entry is a dtype configuration (compile-time for the common ones, run-time otherwise) and a row variant
 * (K groups of 8 per thread held in registers, or the row re-read). Kernels differ only in where data
 * lives and in the order of loads and stores, never in arithmetic: every entry gives the same bits. */
typedef struct darn_kernel_info {
    int entry;             /* index into the direction's table, -1 when nothing is launched for rows (M = 0) */
    char name[96];         /* e.g. "darn_fwd bf16/f32/f32/bf16/bf16 K=1" */
    int threads_per_row;   /* P */
    int groups_per_thread; /* K (re-read rows: groups a thread covers per pass) */
    int rows_per_block;    /* rows (forward) or chunk slots (backward) per block */
    int block_threads;
    int64_t grid;          /* blocks launched on this machine's device (without one: the blocks the rows need) */
} darn_kernel_info;

/* The kernel darn_fwd / darn_bwd would launch for this call on DARN_BACKEND_GPU; validates the call like
 * darn_fwd / darn_bwd (the backward's workspace is not needed), launches nothing. Works in every build:
 * the table is the same whether or not a GPU backend is compiled in. */
DARN_API darn_status darn_debug_fwd_kernel(const darn_desc *desc, const darn_fwd_tensors *t, darn_kernel_info *info);
DARN_API darn_status darn_debug_bwd_kernel(const darn_desc *desc, const darn_bwd_tensors *t, darn_kernel_info *info);
/* Entries of a direction's table (backward = 0 or 1), and the fields of entry `entry` without a call
 * (threads_per_row, groups_per_thread, rows_per_block, block_threads and grid are 0). */
DARN_API int darn_debug_kernel_count(int backward);
DARN_API darn_status darn_debug_kernel_entry(int backward, int entry, darn_kernel_info *info);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DARN_DARN_H */
