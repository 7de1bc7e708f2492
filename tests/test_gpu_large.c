/*
 * test_gpu_large.c — 64-bit indexing: M * N > 2^31 elements on the GPU, bit for bit against the CPU
 * (dropout mask indices past 2^31 included). Needs about 40 GB of device memory; skips without a GPU.
 */
#include <criterion/criterion.h>

#include <darn/device.h>

#include "gpu_case.h"

Test(gpu_large, more_than_2_pow_31_elements, .timeout = 1800)
{
    if (!darn_backend_available(DARN_BACKEND_GPU)) cr_skip_test("no GPU backend or device in this build/machine");
    size_t mem = 0;
    if (darn_device_info(NULL, 0, &mem) != DARN_OK || mem < ((size_t)48 << 30))
        cr_skip_test("needs a GPU with >= 48 GiB of memory");
    const int64_t n = 4096, m = (((int64_t)1 << 31) / n) + 5; /* 2^31 + 20480 elements */
    gpu_case c = gpu_case_make(DARN_RMSNORM, m, n, DARN_BF16);
    c.desc.flags = DARN_FLAG_HAS_RESIDUAL;
    c.desc.dropout_p = 0.1;
    c.desc.seed = 2024;
    c.desc.offset = 11;
    c.mask = true;
    char why[512] = "";
    cr_assert_eq(gpu_case_run(&c, why, sizeof why), 0, "M=%lld N=%lld: %s", (long long)m, (long long)n, why);
}
