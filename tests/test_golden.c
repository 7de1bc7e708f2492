/*
 * test_golden.c — the cross-machine digests: every job in tests/golden/digests.txt must produce its
 * recorded SHA-256 digest on every available backend (the CPU always, the GPU when present), runs must
 * repeat bit for bit, and row padding must never change a bit. Also checks the SHA-256 implementation
 * against the FIPS 180-2 example vectors and the config-string round trip the golden file relies on.
 *
 * The golden file's path comes from the DARN_GOLDEN_FILE compile definition (set on darn_tools by
 * apps/demo/CMakeLists.txt).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <darn/darn.h>

#include "job.h"
#include "sha256.h"

#ifndef DARN_GOLDEN_FILE
#error "DARN_GOLDEN_FILE (path of tests/golden/digests.txt) must be defined by the build"
#endif /* DARN_GOLDEN_FILE */

/* ---- SHA-256 --------------------------------------------------------------------------------------- */
static void hex_of(const void *msg, size_t len, char hex[DARN_SHA256_HEX])
{
    uint8_t d[DARN_SHA256_BYTES];
    darn_sha256_oneshot(msg, len, d);
    darn_sha256_hex(d, DARN_SHA256_BYTES, hex);
}

Test(sha256, fips_180_2_vectors)
{
    static const struct {
        const char *msg, *hex;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; ++i) {
        char hex[DARN_SHA256_HEX];
        hex_of(v[i].msg, strlen(v[i].msg), hex);
        cr_expect_str_eq(hex, v[i].hex, "SHA-256(\"%s\")", v[i].msg);
    }
}

Test(sha256, million_a_in_uneven_pieces)
{
    /* FIPS 180-2 appendix B.3: one million 'a', fed in pieces that straddle block boundaries. */
    static char a[1000];
    memset(a, 'a', sizeof a);
    darn_sha256_ctx s;
    darn_sha256_init(&s);
    size_t left = 1000000, piece = 1;
    while (left > 0) {
        const size_t n = piece < left ? piece : left;
        darn_sha256_update(&s, a, n);
        left -= n;
        piece = piece % 937 + 63; /* 63 .. 999, within a[] */
    }
    uint8_t d[DARN_SHA256_BYTES];
    char hex[DARN_SHA256_HEX];
    darn_sha256_final(&s, d);
    darn_sha256_hex(d, DARN_SHA256_BYTES, hex);
    cr_expect_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

Test(sha256, padding_boundaries_match_oneshot)
{
    /* Lengths around the 55/56/64-byte padding edges: incremental (byte by byte) == one shot. */
    uint8_t msg[130];
    for (size_t i = 0; i < sizeof msg; ++i) msg[i] = (uint8_t)(i * 37u + 11u);
    for (size_t len = 0; len <= sizeof msg; ++len) {
        uint8_t a[DARN_SHA256_BYTES], b[DARN_SHA256_BYTES];
        darn_sha256_oneshot(msg, len, a);
        darn_sha256_ctx s;
        darn_sha256_init(&s);
        for (size_t i = 0; i < len; ++i) darn_sha256_update(&s, msg + i, 1);
        darn_sha256_final(&s, b);
        cr_expect(memcmp(a, b, sizeof a) == 0, "length %zu", len);
    }
}

/* ---- config strings ------------------------------------------------------------------------------- */
Test(job_config, round_trip_and_errors)
{
    char err[256], a[512], b[512];
    darn_job j, k;
    cr_assert_eq(darn_job_parse(&j, "rms M=37 N=1000 x=bf16 res=f32 w=bf16 b=- out=bf16 flags=res,rif32 p=0.1 "
                                    "seed=42 offset=7 mask=1 dres=1", err, sizeof err), 0, "%s", err);
    cr_expect_eq(j.rows, 37);
    cr_expect_eq(j.cols, 1000);
    cr_expect_eq(j.flags, DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_RESIDUAL_IN_FP32);
    cr_expect_eq(j.residual_dtype, DARN_F32);
    cr_expect_eq(j.eps, 1e-6f);
    cr_assert_eq(darn_job_format(&j, a, sizeof a), 0);
    cr_assert_eq(darn_job_parse(&k, a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(darn_job_format(&k, b, sizeof b), 0);
    cr_expect_str_eq(a, b);

    static const char *const bad[] = {
        "M=1 N=1",                                      /* no norm */
        "rms N=4",                                      /* no M */
        "rms M=1 N=0",                                  /* N < 1 */
        "rms M=1 N=4 x=f64",                            /* bad dtype */
        "rms M=1 N=4 flags=res",                        /* res flag without res dtype */
        "rms M=1 N=4 res=f32",                          /* res dtype without res flag */
        "rms M=1 N=4 b=f32",                            /* bias dtype without bias flag */
        "rms M=1 N=4 flags=wat",                        /* unknown flag */
        "rms M=1 N=4 p=1.5",                            /* p out of range */
        "rms M=1 N=4 mask=2",                           /* not a bool */
        "rms M=1 N=4 colour=blue",                      /* unknown key */
        "rms layer M=1 N=4",                            /* two norms */
        "rms M=1x N=4",                                 /* trailing junk */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i)
        cr_expect_neq(darn_job_parse(&j, bad[i], err, sizeof err), 0, "'%s' should not parse", bad[i]);
}

/* ---- golden digests -------------------------------------------------------------------------------- */
static darn_golden_entry *load_golden(size_t *n)
{
    darn_golden_entry *e = NULL;
    char err[512];
    /* $DARN_GOLDEN_FILE first: a build copied to another machine (tests/device/run-on-gpu) sets it */
    const char *path = getenv("DARN_GOLDEN_FILE") ? getenv("DARN_GOLDEN_FILE") : DARN_GOLDEN_FILE;
    cr_assert_eq(darn_golden_load(path, &e, n, err, sizeof err), 0, "%s", err);
    cr_assert_geq(*n, 12, "%s holds only %zu jobs", path, *n);
    return e;
}

/* Runs `config` on `mem` with `pad`; returns 0 with *res filled (caller frees), or fails the test. */
static void run_config(const char *config, const darn_mem *mem, int64_t pad, darn_job_result *res)
{
    char err[512];
    darn_job job;
    cr_assert_eq(darn_job_parse(&job, config, err, sizeof err), 0, "%s: %s", config, err);
    job.pad = pad;
    darn_job_inputs in;
    cr_assert_eq(darn_job_inputs_make(&job, &in, err, sizeof err), 0, "%s: %s", config, err);
    const int rc = darn_job_run(&job, &in, mem, 0, res);
    darn_job_inputs_free(&in);
    cr_assert_eq(rc, 0, "%s on %s: %s", config, mem->name, res->error);
}

static void check_backend(darn_backend backend)
{
    const darn_mem *mem = darn_mem_for(backend);
    if (mem == NULL) cr_skip_test("backend %d not available", (int)backend);
    size_t n;
    darn_golden_entry *e = load_golden(&n);
    for (size_t i = 0; i < n; ++i) {
        darn_job_result res;
        run_config(e[i].config, mem, 0, &res);
        char hex[DARN_SHA256_HEX];
        darn_sha256_hex(res.digest, DARN_SHA256_BYTES, hex);
        cr_expect_str_eq(hex, e[i].hex, "line %d on %s: %s", e[i].line, mem->name, e[i].config);
        darn_job_result_free(&res);
    }
    free(e);
}

Test(golden, cpu_backend_reproduces_every_digest) { check_backend(DARN_BACKEND_CPU); }

Test(golden, gpu_backend_reproduces_every_digest) { check_backend(DARN_BACKEND_GPU); }

Test(golden, runs_repeat_and_padding_changes_no_bit)
{
    const darn_mem *mem = darn_mem_for(DARN_BACKEND_CPU);
    size_t n;
    darn_golden_entry *e = load_golden(&n);
    for (size_t i = 0; i < n; ++i) {
        darn_job_result a, b, c;
        char msg[256];
        run_config(e[i].config, mem, 0, &a);
        run_config(e[i].config, mem, 0, &b);
        run_config(e[i].config, mem, 5, &c);
        cr_expect_eq(darn_job_compare(&a, &b, msg, sizeof msg), 0, "line %d, second run: %s", e[i].line, msg);
        cr_expect_eq(darn_job_compare(&a, &c, msg, sizeof msg), 0, "line %d, padded rows: %s", e[i].line, msg);
        cr_expect(memcmp(a.digest, c.digest, DARN_SHA256_BYTES) == 0, "line %d: digest changed with padding", e[i].line);
        darn_job_result_free(&a);
        darn_job_result_free(&b);
        darn_job_result_free(&c);
    }
    free(e);
}

Test(golden, gpu_matches_cpu_tensor_by_tensor)
{
    /* When a digest differs, this names the first differing tensor and byte. */
    const darn_mem *gpu = darn_mem_for(DARN_BACKEND_GPU);
    if (gpu == NULL) cr_skip_test("no GPU backend");
    size_t n;
    darn_golden_entry *e = load_golden(&n);
    for (size_t i = 0; i < n; ++i) {
        darn_job_result a, b;
        char msg[256];
        run_config(e[i].config, darn_mem_cpu(), 0, &a);
        run_config(e[i].config, gpu, 3, &b);
        cr_expect_eq(darn_job_compare(&a, &b, msg, sizeof msg), 0, "line %d: %s", e[i].line, msg);
        darn_job_result_free(&a);
        darn_job_result_free(&b);
    }
    free(e);
}

/* Stored NaNs are canonical (docs/numerics.md §2), also for the special=1 jobs fed non-canonical NaNs. */
Test(golden, stored_nans_are_canonical)
{
    size_t n, specials = 0;
    darn_golden_entry *e = load_golden(&n);
    for (size_t i = 0; i < n; ++i) {
        if (strstr(e[i].config, "special=1") == NULL) continue;
        ++specials;
        darn_job_result r;
        run_config(e[i].config, darn_mem_cpu(), 0, &r);
        size_t nans = 0;
        for (int k = 0; k < DARN_JOB_TENSORS; ++k) {
            const darn_job_output *o = &r.out[k];
            if (!o->produced || strcmp(o->type, "u8") == 0) continue;
            const size_t count = (size_t)o->rows * (size_t)o->cols;
            for (size_t j = 0; j < count; ++j) {
                if (o->type[0] == 'e') { /* fp8 (docs/numerics.md §9): e4m3fn 0x7F, e5m2 0x7E, FNUZ 0x80 */
                    const uint8_t c = ((const uint8_t *)o->host)[j];
                    const int fnuz = strstr(o->type, "fnuz") != NULL, e5 = strncmp(o->type, "e5m2", 4) == 0;
                    const int is_nan = fnuz ? c == 0x80u : e5 ? (c & 0x7Fu) > 0x7Cu : (c & 0x7Fu) == 0x7Fu;
                    if (is_nan) {
                        ++nans;
                        cr_expect_eq(c, fnuz ? 0x80u : e5 ? 0x7Eu : 0x7Fu, "line %d %s[%zu] = 0x%02x", e[i].line, o->name,
                                     j, c);
                    }
                } else if (strcmp(o->type, "f32") == 0) {
                    uint32_t u;
                    memcpy(&u, (const char *)o->host + 4 * j, 4);
                    if ((u & 0x7FFFFFFFu) > 0x7F800000u) {
                        ++nans;
                        cr_expect_eq(u, 0x7FC00000u, "line %d %s[%zu] = 0x%08x", e[i].line, o->name, j, u);
                    }
                } else {
                    uint16_t h;
                    memcpy(&h, (const char *)o->host + 2 * j, 2);
                    const int bf = strcmp(o->type, "bf16") == 0;
                    const int is_nan = bf ? (h & 0x7FFFu) > 0x7F80u : (h & 0x7FFFu) > 0x7C00u;
                    if (is_nan) {
                        ++nans;
                        cr_expect_eq(h, bf ? 0x7FC0u : 0x7E00u, "line %d %s[%zu] = 0x%04x", e[i].line, o->name, j, h);
                    }
                }
            }
        }
        cr_expect_gt(nans, 0, "line %d: the special job produced no NaN to check", e[i].line);
        darn_job_result_free(&r);
    }
    cr_expect_gt(specials, 0, "no special=1 job in the golden file");
    free(e);
}
