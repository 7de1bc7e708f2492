/* cvt_check.hip — darn_device_check_conversions (darn/device.h): the kernels' 16-bit conversions and the OCP
 * fp8 hardware stores (compat.h, group8.h) against the contract's integer code, for every input, on the device. */
#include "compat.h" /* first: it sets how darn/philox.h multiplies */
#include "darn/device.h"
#include "gpu_backend.h"
#include "group8.h"

struct darn_cvt_counts {
    unsigned long long bad[DARN_CVT_CHECKS];
    unsigned int first[DARN_CVT_CHECKS];
    int hw_fp8; /* the device code has the fp8 hardware stores (checks 5, 6 ran) */
};

/* Equal bits, or both NaN where a NaN's bits are left to the hardware (the round trips, the widening). */
__device__ __forceinline__ bool darn_same(float a, float b, bool nan_any)
{
    if (nan_any && a != a) return b != b;
    return darn_f32_bits(a) == darn_f32_bits(b);
}

__global__ void darn_cvt_check_kernel(darn_cvt_counts *c)
{
    unsigned long long bad[DARN_CVT_CHECKS] = {};
    unsigned int first[DARN_CVT_CHECKS];
    for (int k = 0; k < DARN_CVT_CHECKS; k++) first[k] = 0xFFFFFFFFu;
    auto note = [&](int k, bool ok, uint32_t u) {
        if (!ok) {
            bad[k]++;
            first[k] = u < first[k] ? u : first[k];
        }
    };
    if (blockIdx.x == 0 && threadIdx.x == 0) c->hw_fp8 = DARN_HAVE_HW_FP8;
    const uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (UINT64_C(1) << 32); i += stride) {
        const uint32_t u = (uint32_t)i;
        const float f = darn_bits_f32(u), g = darn_bits_f32(~u); /* every input in both halves of a pair */
        note(0, darn_pack_bf16x2(f, g) == ((uint32_t)darn_f32_to_bf16(f) | (uint32_t)darn_f32_to_bf16(g) << 16), u);
        note(1, darn_pack_f16x2(f, g) == ((uint32_t)darn_f32_to_f16(f) | (uint32_t)darn_f32_to_f16(g) << 16), u);
        float lo = f, hi = g;
        darn_round_pair(lo, hi, DARN_BF16);
        note(2, darn_same(darn_bf16_to_f32(darn_f32_to_bf16(f)), lo, true) &&
                    darn_same(darn_bf16_to_f32(darn_f32_to_bf16(g)), hi, true), u);
        lo = f, hi = g;
        darn_round_pair(lo, hi, DARN_F16);
        note(3, darn_same(darn_f16_to_f32(darn_f32_to_f16(f)), lo, true) &&
                    darn_same(darn_f16_to_f32(darn_f32_to_f16(g)), hi, true), u);
#if DARN_HAVE_HW_FP8 /* the OCP fp8 hardware stores (compat.h), whether or not the kernels use them */
        note(5, darn_hw_fp8x2(f, g, false) == ((uint32_t)darn_f32_to_e4m3fn(f) | (uint32_t)darn_f32_to_e4m3fn(g) << 8), u);
        note(6, darn_hw_fp8x2(f, g, true) == ((uint32_t)darn_f32_to_e5m2(f) | (uint32_t)darn_f32_to_e5m2(g) << 8), u);
#endif /* DARN_HAVE_HW_FP8 */
        if (u < 0x10000u) {
            note(4, darn_same(darn_f16_to_f32((uint16_t)u), darn_widen16((uint16_t)u, DARN_F16), true) &&
                        darn_same(darn_bf16_to_f32((uint16_t)u), darn_widen16((uint16_t)u, DARN_BF16), false), u);
        }
    }
    for (int k = 0; k < DARN_CVT_CHECKS; k++) {
        if (bad[k]) {
            atomicAdd(&c->bad[k], bad[k]);
            atomicMin(&c->first[k], first[k]);
        }
    }
}

static darn_status cvt_fail(const char *what, hipError_t e)
{
    return darn_fail(DARN_ERR_DEVICE, "darn_device_check_conversions: %s failed: %s (%s)", what, hipGetErrorName(e),
                     hipGetErrorString(e));
}

extern "C" darn_status darn_device_check_conversions(darn_conversion_report *r)
{
    if (!r) return darn_fail(DARN_ERR_NULL_POINTER, "darn_device_check_conversions: r is NULL");
    if (!darn_gpu_available())
        return darn_fail(DARN_ERR_BACKEND_UNAVAILABLE, "darn_device_check_conversions: no GPU device is present");
    darn_cvt_counts h, *d = nullptr;
    hipError_t e = hipMalloc((void **)&d, sizeof h);
    if (e != hipSuccess) return cvt_fail("hipMalloc", e);
    memset(&h, 0, sizeof h);
    for (int k = 0; k < DARN_CVT_CHECKS; k++) h.first[k] = 0xFFFFFFFFu;
    e = hipMemcpy(d, &h, sizeof h, hipMemcpyHostToDevice);
    if (e == hipSuccess) {
        hipLaunchKernelGGL(darn_cvt_check_kernel, dim3(4096), dim3(256), 0, 0, d);
        e = hipGetLastError();
    }
    if (e == hipSuccess) e = hipMemcpy(&h, d, sizeof h, hipMemcpyDeviceToHost);
    const hipError_t f = hipFree(d);
    if (e != hipSuccess) return cvt_fail("the check kernel", e);
    if (f != hipSuccess) return cvt_fail("hipFree", f);
    for (int k = 0; k < DARN_CVT_CHECKS; k++) {
        r->mismatches[k] = h.bad[k];
        r->first[k] = h.first[k];
    }
    r->hw_fp8 = h.hw_fp8;
    return DARN_OK;
}
