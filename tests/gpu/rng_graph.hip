/*
 * rng_graph.hip — GPU-side pieces of tests/gpu/test_gpu_rng.c, compiled with the GPU toolchain:
 * (1) darn's Philox words vs hipRAND's (cuRAND on NVIDIA, rocRAND on AMD) computed on the device;
 * (2) forward + backward captured in a HIP graph with the device seed/offset pointers, replayed.
 */
#include <hip/hip_runtime.h>
#include <hiprand/hiprand_kernel.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "darn/darn.h"
#include "darn/philox.h"
#include "rng_graph.h"

/* out[2k] = hiprand word, out[2k+1] = darn word, for (seed[k], offset[k], index[k]). */
__global__ void rng_words(const uint64_t *seed, const uint64_t *offset, const uint64_t *index, uint32_t *out, int n)
{
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= n) return;
    hiprandStatePhilox4_32_10_t s;
    hiprand_init(seed[k], offset[k], index[k], &s);
    out[2 * k] = hiprand(&s);
    out[2 * k + 1] = darn_philox_word(seed[k], offset[k], index[k]);
}

#define CHECK(call)                                                                                         \
    do {                                                                                                      \
        hipError_t e_ = (call);                                                                               \
        if (e_ != hipSuccess) {                                                                               \
            snprintf(why, why_bytes, "%s:%d %s: %s", __FILE__, __LINE__, #call, hipGetErrorString(e_));       \
            return 1;                                                                                         \
        }                                                                                                     \
    } while (0)

extern "C" int darn_test_hiprand_words(const uint64_t *seed, const uint64_t *offset, const uint64_t *index, int n,
                                       uint32_t *out, char *why, size_t why_bytes)
{
    uint64_t *d_s, *d_o, *d_i;
    uint32_t *d_out;
    CHECK(hipMalloc(&d_s, n * 8));
    CHECK(hipMalloc(&d_o, n * 8));
    CHECK(hipMalloc(&d_i, n * 8));
    CHECK(hipMalloc(&d_out, n * 8));
    CHECK(hipMemcpy(d_s, seed, n * 8, hipMemcpyHostToDevice));
    CHECK(hipMemcpy(d_o, offset, n * 8, hipMemcpyHostToDevice));
    CHECK(hipMemcpy(d_i, index, n * 8, hipMemcpyHostToDevice));
    hipLaunchKernelGGL(rng_words, dim3((n + 255) / 256), dim3(256), 0, 0, d_s, d_o, d_i, d_out, n);
    CHECK(hipGetLastError());
    CHECK(hipMemcpy(out, d_out, n * 8, hipMemcpyDeviceToHost));
    CHECK(hipFree(d_s));
    CHECK(hipFree(d_o));
    CHECK(hipFree(d_i));
    CHECK(hipFree(d_out));
    return 0;
}

/* Graph capture: fwd + bwd of `d` (its rng pointers replaced by device ones) on a capturing stream. */
extern "C" int darn_test_graph_capture(const darn_desc *desc, const darn_fwd_tensors *ft, const darn_bwd_tensors *bt,
                                       void *ws, size_t ws_bytes, uint64_t *d_seed, uint64_t *d_offset,
                                       void **graph_exec, char *why, size_t why_bytes)
{
    hipStream_t stream;
    CHECK(hipStreamCreateWithFlags(&stream, hipStreamNonBlocking));
    darn_desc d = *desc;
    d.rng_seed_ptr = d_seed;
    d.rng_offset_ptr = d_offset;
    hipGraph_t graph;
    CHECK(hipStreamBeginCapture(stream, hipStreamCaptureModeGlobal));
    darn_status s1 = darn_fwd(&d, ft, NULL, 0, DARN_BACKEND_GPU, stream);
    darn_status s2 = s1 == DARN_OK ? darn_bwd(&d, bt, ws, ws_bytes, DARN_BACKEND_GPU, stream) : s1;
    CHECK(hipStreamEndCapture(stream, &graph));
    if (s1 != DARN_OK || s2 != DARN_OK) {
        snprintf(why, why_bytes, "darn call under capture: %s: %s", darn_status_string(s1 != DARN_OK ? s1 : s2),
                 darn_last_error());
        return 1;
    }
    hipGraphExec_t exec;
    CHECK(hipGraphInstantiate(&exec, graph, NULL, NULL, 0));
    CHECK(hipGraphDestroy(graph));
    CHECK(hipStreamDestroy(stream));
    *graph_exec = (void *)exec;
    return 0;
}

extern "C" int darn_test_graph_replay(void *graph_exec, char *why, size_t why_bytes)
{
    CHECK(hipGraphLaunch((hipGraphExec_t)graph_exec, 0));
    CHECK(hipDeviceSynchronize());
    return 0;
}

extern "C" int darn_test_graph_destroy(void *graph_exec, char *why, size_t why_bytes)
{
    CHECK(hipGraphExecDestroy((hipGraphExec_t)graph_exec));
    return 0;
}
