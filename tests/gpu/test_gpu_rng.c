/*
 * test_gpu_rng.c — (1) darn's Philox words equal hipRAND's on the device (cuRAND on NVIDIA, rocRAND on
 * AMD) and on the host; (2) graph-safe RNG: forward + backward captured once in a HIP graph with device
 * seed/offset pointers, replayed with new offsets, give exactly the CPU reference for each offset.
 * Built only in GPU builds; skips without a device.
 */
#include <criterion/criterion.h>
#include <string.h>

#include <darn/darn.h>
#include <darn/device.h>
#include <darn/philox.h>

#include "rng_graph.h"
#include "support.h"

static void need_gpu(void)
{
    if (!darn_backend_available(DARN_BACKEND_GPU)) cr_skip_test("no GPU device");
}

Test(gpu_rng, philox_equals_hiprand)
{
    need_gpu();
    enum { N = 1 << 17 };
    static uint64_t seed[N], offset[N], index[N];
    static uint32_t out[2 * N];
    sup_rng g = sup_rng_make(77);
    for (int k = 0; k < N; k++) {
        seed[k] = sup_rng_u64(&g);
        offset[k] = k % 3 ? sup_rng_u64(&g) >> (k % 61) : (uint64_t)k;
        switch (k % 4) {
        case 0: index[k] = (uint64_t)k; break;                                   /* small indices */
        case 1: index[k] = (UINT64_C(1) << 34) - 8 + (uint64_t)(k % 16); break;  /* i/4 crosses 2^32 */
        case 2: index[k] = sup_rng_u64(&g) >> 2; break;                          /* anywhere below 2^62 */
        default: index[k] = (UINT64_C(1) << 31) + (uint64_t)k; break;            /* past 2^31 */
        }
    }
    /* the two values checked on an H100 (cuRAND) and with rocRAND 5.3.3 headers */
    seed[0] = 42; offset[0] = 7; index[0] = 5;
    seed[1] = 0x123456789abcdefULL; offset[1] = 3; index[1] = 1000003;
    char why[512] = "";
    cr_assert_eq(darn_test_hiprand_words(seed, offset, index, N, out, why, sizeof why), 0, "%s", why);
    cr_assert_eq(out[0], 0x600f6196u);
    cr_assert_eq(out[2], 0x4149ce77u);
    for (int k = 0; k < N; k++) {
        const uint32_t host = darn_philox_word(seed[k], offset[k], index[k]);
        cr_assert_eq(out[2 * k], out[2 * k + 1], "seed %llx offset %llx i %llu: hiprand %08x, darn (device) %08x",
                     (unsigned long long)seed[k], (unsigned long long)offset[k], (unsigned long long)index[k],
                     out[2 * k], out[2 * k + 1]);
        cr_assert_eq(host, out[2 * k + 1], "darn host %08x vs device %08x at k = %d", host, out[2 * k + 1], k);
    }
}

/* Device buffers of the graph test. */
enum { X, RES, W, OUT, RESOUT, MASK, RSTD, DY, DX, DRES, DW, WS, NB };

static void *dev_alloc(size_t bytes)
{
    void *p = NULL;
    cr_assert_eq(darn_device_malloc(&p, bytes), DARN_OK, "%s", darn_last_error());
    return p;
}

static void to_dev(void *d, const void *h, size_t b)
{
    cr_assert_eq(darn_device_memcpy(d, h, b, DARN_COPY_HOST_TO_DEVICE), DARN_OK, "%s", darn_last_error());
}
static void to_host(void *h, const void *d, size_t b)
{
    cr_assert_eq(darn_device_memcpy(h, d, b, DARN_COPY_DEVICE_TO_HOST), DARN_OK, "%s", darn_last_error());
}

Test(gpu_rng, graph_capture_replays_with_new_offsets)
{
    need_gpu();
    const int64_t m = 64, n = 1000;
    darn_desc d;
    darn_desc_init(&d, DARN_RMSNORM, m, n, DARN_BF16);
    d.residual_dtype = DARN_F32;
    d.flags = DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_RESIDUAL_IN_FP32;
    d.dropout_p = 0.2;
    d.offset = 1000; /* added to *rng_offset_ptr, like PyTorch's offset_intragraph */
    const uint64_t seed = 0x5eed;
    size_t ws_bytes = 0;
    cr_assert_eq(darn_bwd_workspace_size(&d, DARN_BACKEND_GPU, &ws_bytes), DARN_OK);
    size_t bytes[NB];
    bytes[X] = bytes[OUT] = bytes[DY] = bytes[DX] = (size_t)(m * n * 2);
    bytes[RES] = bytes[RESOUT] = bytes[DRES] = (size_t)(m * n * 4);
    bytes[W] = bytes[DW] = (size_t)n * 2;
    bytes[MASK] = (size_t)(m * darn_mask_row_bytes(n));
    bytes[RSTD] = (size_t)m * 4;
    bytes[WS] = ws_bytes;
    void *h[NB], *dv[NB];
    for (int i = 0; i < NB; i++) {
        h[i] = sup_alloc(bytes[i], 64);
        dv[i] = dev_alloc(bytes[i]);
    }
    sup_rng g = sup_rng_make(5);
    sup_fill_uniform(h[X], DARN_BF16, m, n, 0, &g, -2, 2);
    sup_fill_uniform(h[RES], DARN_F32, m, n, 0, &g, -1, 1);
    sup_fill_uniform(h[W], DARN_BF16, 1, n, 0, &g, 0.5f, 1.5f);
    sup_fill_uniform(h[DY], DARN_BF16, m, n, 0, &g, -1, 1);
    const int ins[] = {X, RES, W, DY};
    for (int i = 0; i < 4; i++) to_dev(dv[ins[i]], h[ins[i]], bytes[ins[i]]);
    uint64_t *d_seed = dev_alloc(8), *d_offset = dev_alloc(8);
    to_dev(d_seed, &seed, 8);

    darn_fwd_tensors ft = {.x = dv[X], .residual = dv[RES], .weight = dv[W], .out = dv[OUT],
                           .residual_out = dv[RESOUT], .mask = dv[MASK], .rstd = dv[RSTD]};
    darn_bwd_tensors bt = {.dy = dv[DY], .h = dv[RESOUT], .weight = dv[W], .rstd = dv[RSTD], .dx = dv[DX],
                           .dresidual = dv[DRES], .dweight = dv[DW]};
    char why[512] = "";
    void *exec = NULL;
    uint64_t first = 5;
    to_dev(d_offset, &first, 8);
    cr_assert_eq(darn_test_graph_capture(&d, &ft, &bt, dv[WS], ws_bytes, d_seed, d_offset, &exec, why, sizeof why), 0,
                 "%s", why);
    uint8_t *prev_mask = sup_alloc(bytes[MASK], 64);
    const int outs[] = {OUT, RESOUT, MASK, RSTD, DX, DRES, DW};
    for (uint64_t off = 5; off <= 7; off++) {
        to_dev(d_offset, &off, 8); /* a new offset, graph unchanged */
        cr_assert_eq(darn_test_graph_replay(exec, why, sizeof why), 0, "%s", why);
        /* CPU reference with the values the kernels read: seed, *offset_ptr + desc.offset */
        darn_desc c = d;
        c.seed = seed;
        c.offset = off + d.offset;
        void *r[NB];
        for (int i = 0; i < NB; i++) r[i] = sup_alloc(bytes[i], 64);
        darn_fwd_tensors cf = {.x = h[X], .residual = h[RES], .weight = h[W], .out = r[OUT], .residual_out = r[RESOUT],
                               .mask = r[MASK], .rstd = r[RSTD]};
        cr_assert_eq(darn_fwd(&c, &cf, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_OK, "%s", darn_last_error());
        darn_bwd_tensors cb = {.dy = h[DY], .h = r[RESOUT], .weight = h[W], .rstd = r[RSTD], .dx = r[DX],
                               .dresidual = r[DRES], .dweight = r[DW]};
        cr_assert_eq(darn_bwd(&c, &cb, r[WS], ws_bytes, DARN_BACKEND_CPU, NULL), DARN_OK, "%s", darn_last_error());
        for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
            void *got = sup_alloc(bytes[outs[i]], 64);
            to_host(got, dv[outs[i]], bytes[outs[i]]);
            cr_assert(memcmp(got, r[outs[i]], bytes[outs[i]]) == 0, "offset %llu: output %d differs from the CPU",
                      (unsigned long long)off, outs[i]);
            if (outs[i] == MASK) {
                if (off > 5) cr_assert(memcmp(got, prev_mask, bytes[MASK]) != 0, "mask did not change with the offset");
                memcpy(prev_mask, got, bytes[MASK]);
            }
            sup_free(got);
        }
        for (int i = 0; i < NB; i++) sup_free(r[i]);
    }
    cr_assert_eq(darn_test_graph_destroy(exec, why, sizeof why), 0, "%s", why);
    for (int i = 0; i < NB; i++) {
        darn_device_free(dv[i]);
        sup_free(h[i]);
    }
    darn_device_free(d_seed);
    darn_device_free(d_offset);
    sup_free(prev_mask);
}
