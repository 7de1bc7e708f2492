/*
 * test_philox.c — Philox4x32-10 known answers, darn's counter mapping (numerics.md §3), and the scalar
 * conversions of src/contract.h (§2), each against an independent reference written here.
 */
#include <criterion/criterion.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <darn/darn.h>
#include <darn/philox.h>

#include "contract.h"

/* ---- independent Philox4x32-10, written from the Random123 description ---------------------------
 * Round: (hi, lo) = M * c for M0 * c0 and M1 * c2;
 *        c' = (hi(M1*c2) ^ c1 ^ k0, lo(M1*c2), hi(M0*c0) ^ c3 ^ k1, lo(M0*c0)).
 * Round j (0-based) uses key k + j * W (mod 2^32), i.e. the key bumped j times. */
static void ref_philox(const uint32_t ctr_in[4], const uint32_t key_in[2], uint32_t out[4])
{
    uint32_t c[4];
    memcpy(c, ctr_in, sizeof c);
    for (uint32_t j = 0; j < 10; ++j) {
        const uint32_t k0 = key_in[0] + j * 0x9E3779B9u;
        const uint32_t k1 = key_in[1] + j * 0xBB67AE85u;
        const uint64_t a = (uint64_t)c[0] * 0xD2511F53u;
        const uint64_t b = (uint64_t)c[2] * 0xCD9E8D57u;
        const uint32_t n0 = (uint32_t)(b >> 32) ^ c[1] ^ k0;
        const uint32_t n1 = (uint32_t)(b & 0xFFFFFFFFu);
        const uint32_t n2 = (uint32_t)(a >> 32) ^ c[3] ^ k1;
        const uint32_t n3 = (uint32_t)(a & 0xFFFFFFFFu);
        c[0] = n0; c[1] = n1; c[2] = n2; c[3] = n3;
    }
    memcpy(out, c, sizeof c);
}

/* cuRAND-style state: a 128-bit counter starting at 0, the subsequence added to its high 64 bits
 * (skipahead_sequence), then incremented one block at a time with carry through all four words. */
static void ctr_zero_with_subsequence(uint32_t ctr[4], uint64_t subsequence)
{
    ctr[0] = 0; ctr[1] = 0;
    ctr[2] = (uint32_t)(subsequence & 0xFFFFFFFFu);
    ctr[3] = (uint32_t)(subsequence >> 32);
}

static void ctr_increment(uint32_t ctr[4])
{
    for (int w = 0; w < 4; ++w)
        if (++ctr[w] != 0) return;
}

/* Adds n to the low 64 bits with carry into the high words (skipahead by n blocks). */
static void ctr_add(uint32_t ctr[4], uint64_t n)
{
    uint64_t carry = 0;
    uint64_t lo = (uint64_t)ctr[0] + (n & 0xFFFFFFFFu);
    ctr[0] = (uint32_t)lo; carry = lo >> 32;
    uint64_t mid = (uint64_t)ctr[1] + (n >> 32) + carry;
    ctr[1] = (uint32_t)mid; carry = mid >> 32;
    for (int w = 2; w < 4 && carry; ++w) {
        const uint64_t s = (uint64_t)ctr[w] + carry;
        ctr[w] = (uint32_t)s; carry = s >> 32;
    }
}

typedef struct kat {
    uint32_t ctr[4];
    uint32_t key[2];
    uint32_t expect[4];
} kat;

/* Random123 kat_vectors, philox4x32 10 rounds. */
static const kat KATS[] = {
    {{0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u}, {0x00000000u, 0x00000000u},
     {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
    {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu},
     {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
    {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u},
     {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
};

Test(philox, random123_known_answers)
{
    for (size_t t = 0; t < sizeof KATS / sizeof KATS[0]; ++t) {
        darn_philox_ctr c;
        darn_philox_key k;
        memcpy(c.v, KATS[t].ctr, sizeof c.v);
        memcpy(k.v, KATS[t].key, sizeof k.v);
        const darn_philox_ctr got = darn_philox4x32_10(c, k);
        uint32_t ref[4];
        ref_philox(KATS[t].ctr, KATS[t].key, ref);
        for (int w = 0; w < 4; ++w) {
            cr_expect_eq(got.v[w], KATS[t].expect[w], "KAT %zu word %d: darn %08x, expected %08x", t, w,
                         got.v[w], KATS[t].expect[w]);
            cr_expect_eq(ref[w], KATS[t].expect[w], "KAT %zu word %d: test reference %08x, expected %08x", t,
                         w, ref[w], KATS[t].expect[w]);
        }
    }
}

Test(philox, curand_mapping_known_answers)
{
    /* Verified with cuRAND and rocRAND: curand_init(seed, subsequence, 0) then the i-th curand(). */
    cr_expect_eq(darn_philox_word(42, 7, 5), 0x600f6196u, "word(42, 7, 5) = %08x", darn_philox_word(42, 7, 5));
    cr_expect_eq(darn_philox_word(UINT64_C(0x123456789abcdef), 3, 1000003), 0x4149ce77u,
                 "word(0x123456789abcdef, 3, 1000003) = %08x",
                 darn_philox_word(UINT64_C(0x123456789abcdef), 3, 1000003));
}

static uint32_t ref_word_skip(uint64_t seed, uint64_t offset, uint64_t i)
{
    uint32_t ctr[4], key[2] = {(uint32_t)(seed & 0xFFFFFFFFu), (uint32_t)(seed >> 32)}, out[4];
    ctr_zero_with_subsequence(ctr, offset);
    ctr_add(ctr, i / 4);
    ref_philox(ctr, key, out);
    return out[i % 4];
}

Test(philox, mapping_matches_reference_and_block)
{
    static const uint64_t seeds[] = {0, 1, 42, UINT64_C(0x123456789abcdef), UINT64_C(0xffffffffffffffff),
                                     UINT64_C(0x100000000)};
    static const uint64_t offsets[] = {0, 7, UINT64_C(0xffffffff), UINT64_C(0x100000000),
                                       UINT64_C(0xfedcba9876543210)};
    static const uint64_t idx[] = {0, 1, 2, 3, 4, 5, 1000003, UINT64_C(0x3fffffffc), UINT64_C(0x400000003),
                                   UINT64_C(0x1234567890abc), UINT64_C(0xfffffffffffffff0),
                                   UINT64_C(0xffffffffffffffff)};
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; ++s)
        for (size_t o = 0; o < sizeof offsets / sizeof offsets[0]; ++o)
            for (size_t n = 0; n < sizeof idx / sizeof idx[0]; ++n) {
                const uint64_t i = idx[n];
                const uint32_t w = darn_philox_word(seeds[s], offsets[o], i);
                const uint32_t r = ref_word_skip(seeds[s], offsets[o], i);
                const darn_philox_ctr b = darn_philox_block(seeds[s], offsets[o], i / 4);
                cr_expect_eq(w, r, "seed %llx offset %llx i %llx: darn %08x, reference %08x",
                             (unsigned long long)seeds[s], (unsigned long long)offsets[o], (unsigned long long)i, w,
                             r);
                cr_expect_eq(w, b.v[i % 4], "seed %llx offset %llx i %llx: word %08x != block word %08x",
                             (unsigned long long)seeds[s], (unsigned long long)offsets[o], (unsigned long long)i, w,
                             b.v[i % 4]);
            }
}

/* Walks a stream block by block with a carrying 128-bit counter increment across i/4 = 2^32 (and a
 * second window around 2^33) and compares every word with darn_philox_word. */
Test(philox, counter_carries_across_32bit_boundary)
{
    static const uint64_t starts[] = {UINT64_C(0xfffffff8), UINT64_C(0x1fffffff8)}; /* in blocks */
    const uint64_t seed = UINT64_C(0x0123456789abcdef), offset = UINT64_C(0x00000001fffffffe);
    const uint32_t key[2] = {(uint32_t)(seed & 0xFFFFFFFFu), (uint32_t)(seed >> 32)};
    for (size_t s = 0; s < sizeof starts / sizeof starts[0]; ++s) {
        uint32_t ctr[4];
        ctr_zero_with_subsequence(ctr, offset);
        ctr_add(ctr, starts[s]);
        for (uint64_t blk = starts[s]; blk < starts[s] + 16; ++blk) {
            uint32_t out[4];
            ref_philox(ctr, key, out);
            for (uint64_t w = 0; w < 4; ++w) {
                const uint64_t i = 4 * blk + w;
                const uint32_t got = darn_philox_word(seed, offset, i);
                cr_expect_eq(got, out[w], "i = %llx (block %llx): darn %08x, reference %08x",
                             (unsigned long long)i, (unsigned long long)blk, got, out[w]);
            }
            ctr_increment(ctr);
        }
        /* the walk did cross the boundary: word 1 of the counter changed */
        cr_expect_neq(ctr[1], (uint32_t)(starts[s] >> 32), "window %zu did not cross a 32-bit boundary", s);
    }
    /* block 2^32 - 1 and 2^32 are distinct streams and differ from blocks 0 and 1 */
    const darn_philox_ctr a = darn_philox_block(seed, offset, UINT64_C(0xffffffff));
    const darn_philox_ctr b = darn_philox_block(seed, offset, UINT64_C(0x100000000));
    const darn_philox_ctr z = darn_philox_block(seed, offset, 0);
    cr_expect(memcmp(&a, &b, sizeof a) != 0, "blocks 2^32-1 and 2^32 agree");
    cr_expect(memcmp(&b, &z, sizeof b) != 0, "block 2^32 wraps onto block 0");
}

/* ---- conversions -------------------------------------------------------------------------------- */

/* Value of an f16 bit pattern in double (NaN for NaNs). */
static double ref_f16_value(uint16_t h)
{
    const int sign = h >> 15, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    double v;
    if (exp == 31) v = mant ? NAN : INFINITY;
    else if (exp == 0) v = ldexp((double)mant, -24);
    else v = ldexp((double)(1024 + mant), exp - 25);
    return sign ? -v : v;
}

static double ref_bf16_value(uint16_t b)
{
    const int sign = b >> 15, exp = (b >> 7) & 0xFF, mant = b & 0x7F;
    double v;
    if (exp == 255) v = mant ? NAN : INFINITY;
    else if (exp == 0) v = ldexp((double)mant, -133);
    else v = ldexp((double)(128 + mant), exp - 134);
    return sign ? -v : v;
}

/* Round |a| (finite, exact in double) to a multiple of q (a power of two) to nearest, ties to even. */
static double round_to_quantum(double a, double q)
{
    const double k = a / q; /* exact: q is a power of two and a has <= 24 significant bits */
    double fl = floor(k);
    const double frac = k - fl;
    if (frac > 0.5 || (frac == 0.5 && fmod(fl, 2.0) != 0.0)) fl += 1.0;
    return fl * q;
}

/* Independent f32 -> f16 store: the value rounded in double, then encoded. */
static uint16_t ref_to_f16(float f)
{
    if (isnan(f)) return 0x7E00;
    const uint16_t sign = signbit(f) ? 0x8000 : 0;
    const double a = fabs((double)f);
    if (isinf(f)) return sign | 0x7C00;
    double q;
    if (a < ldexp(1.0, -14)) q = ldexp(1.0, -24);
    else {
        int e;
        (void)frexp(a, &e); /* a = m 2^e, m in [0.5, 1): leading bit at 2^(e-1) */
        q = ldexp(1.0, e - 1 - 10);
    }
    const double r = round_to_quantum(a, q);
    if (r > 65504.0) return sign | 0x7C00;
    if (r < ldexp(1.0, -14)) return (uint16_t)(sign | (uint16_t)(r / ldexp(1.0, -24)));
    int e;
    const double m = frexp(r, &e); /* r = m 2^e */
    const int exp = e - 1 + 15;
    const int mant = (int)((m * 2.0 - 1.0) * 1024.0);
    return (uint16_t)(sign | (exp << 10) | mant);
}

static uint16_t ref_to_bf16(float f)
{
    if (isnan(f)) return 0x7FC0;
    const uint16_t sign = signbit(f) ? 0x8000 : 0;
    const double a = fabs((double)f);
    if (isinf(f)) return sign | 0x7F80;
    double q;
    if (a < ldexp(1.0, -126)) q = ldexp(1.0, -133);
    else {
        int e;
        (void)frexp(a, &e);
        q = ldexp(1.0, e - 1 - 7);
    }
    const double r = round_to_quantum(a, q);
    if (r >= ldexp(1.0, 128)) return sign | 0x7F80;
    if (r < ldexp(1.0, -126)) return (uint16_t)(sign | (uint16_t)(r / ldexp(1.0, -133)));
    int e;
    const double m = frexp(r, &e);
    const int exp = e - 1 + 127;
    const int mant = (int)((m * 2.0 - 1.0) * 128.0);
    return (uint16_t)(sign | (exp << 7) | mant);
}

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t bits_from_f32(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

Test(conversions, f16_all_patterns_load_exact_and_round_trip)
{
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = darn_f16_to_f32((uint16_t)h);
        const double ref = ref_f16_value((uint16_t)h);
        const int is_nan = ((h & 0x7C00u) == 0x7C00u) && (h & 0x3FFu);
        if (is_nan) {
            cr_assert(isnan(f), "f16 %04x is a NaN, load gave %a", h, (double)f);
            cr_assert_eq(darn_f32_to_f16(f), 0x7E00, "f16 NaN %04x stored back as %04x, not canonical", h,
                         darn_f32_to_f16(f));
            continue;
        }
        cr_assert((double)f == ref && (signbit(f) != 0) == ((h & 0x8000u) != 0),
                  "f16 %04x: load %a, expected %a", h, (double)f, ref);
        cr_assert_eq(darn_f32_to_f16(f), h, "f16 %04x round trip gave %04x", h, darn_f32_to_f16(f));
        cr_assert_eq(ref_to_f16(f), h, "test reference round trip of %04x gave %04x", h, ref_to_f16(f));
    }
}

Test(conversions, bf16_all_patterns_load_exact_and_round_trip)
{
    for (uint32_t b = 0; b < 65536; ++b) {
        const float f = darn_bf16_to_f32((uint16_t)b);
        const double ref = ref_bf16_value((uint16_t)b);
        const int is_nan = ((b & 0x7F80u) == 0x7F80u) && (b & 0x7Fu);
        if (is_nan) {
            cr_assert(isnan(f), "bf16 %04x is a NaN, load gave %a", b, (double)f);
            cr_assert_eq(darn_f32_to_bf16(f), 0x7FC0, "bf16 NaN %04x stored back as %04x, not canonical", b,
                         darn_f32_to_bf16(f));
            continue;
        }
        cr_assert((double)f == ref && (signbit(f) != 0) == ((b & 0x8000u) != 0),
                  "bf16 %04x: load %a, expected %a", b, (double)f, ref);
        cr_assert_eq(darn_f32_to_bf16(f), b, "bf16 %04x round trip gave %04x", b, darn_f32_to_bf16(f));
        cr_assert_eq(ref_to_bf16(f), b, "test reference round trip of %04x gave %04x", b, ref_to_bf16(f));
    }
}

/* Midpoints between every pair of adjacent f16 values (incl. subnormals, and 65520 between 65504 and
 * the next would-be value), and their f32 neighbours, both signs. */
Test(conversions, f16_ties_and_neighbours_vs_reference)
{
    for (uint32_t h = 0; h < 0x7C00u; ++h) {
        const double lo = ref_f16_value((uint16_t)h);
        const double hi = h == 0x7BFFu ? 65536.0 : ref_f16_value((uint16_t)(h + 1));
        const float mid = (float)((lo + hi) / 2.0); /* exact: 12 significant bits */
        cr_assert_eq((double)mid, (lo + hi) / 2.0, "midpoint above %04x not exact in f32", h);
        const uint16_t even = (h & 1u) ? (uint16_t)(h + 1) : (uint16_t)h;
        const float pts[3] = {nextafterf(mid, 0.0f), mid, nextafterf(mid, INFINITY)};
        const uint16_t want[3] = {(uint16_t)h, even, (uint16_t)(h + 1)};
        for (int k = 0; k < 3; ++k)
            for (int sgn = 0; sgn < 2; ++sgn) {
                const float v = sgn ? -pts[k] : pts[k];
                const uint16_t w = (uint16_t)(want[k] | (sgn ? 0x8000u : 0u));
                cr_assert_eq(darn_f32_to_f16(v), w, "f32 %a (near f16 %04x, case %d): got %04x, want %04x",
                             (double)v, h, k, darn_f32_to_f16(v), w);
                cr_assert_eq(ref_to_f16(v), w, "reference disagrees on %a", (double)v);
            }
    }
}

Test(conversions, bf16_ties_and_neighbours_vs_reference)
{
    for (uint32_t b = 0; b < 0x7F80u; ++b) {
        const float mid = f32_from_bits((b << 16) | 0x8000u);
        const uint16_t even = (b & 1u) ? (uint16_t)(b + 1) : (uint16_t)b;
        const float pts[3] = {nextafterf(mid, 0.0f), mid, nextafterf(mid, INFINITY)};
        const uint16_t want[3] = {(uint16_t)b, even, (uint16_t)(b + 1)};
        for (int k = 0; k < 3; ++k)
            for (int sgn = 0; sgn < 2; ++sgn) {
                const float v = sgn ? -pts[k] : pts[k];
                const uint16_t w = (uint16_t)(want[k] | (sgn ? 0x8000u : 0u));
                cr_assert_eq(ref_to_bf16(v), w, "reference: f32 %a (near bf16 %04x, case %d): %04x, want %04x",
                             (double)v, b, k, ref_to_bf16(v), w);
                cr_assert_eq(darn_f32_to_bf16(v), w, "f32 %a (near bf16 %04x, case %d): got %04x, want %04x",
                             (double)v, b, k, darn_f32_to_bf16(v), w);
            }
    }
}

/* Random f32 bit patterns over the whole range (deterministic xorshift) against the references. */
Test(conversions, random_f32_vs_reference)
{
    uint64_t s = UINT64_C(0x9E3779B97F4A7C15);
    for (int n = 0; n < 1000000; ++n) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        const uint32_t u = (uint32_t)(s >> 16);
        const float f = f32_from_bits(u);
        const uint16_t h = darn_f32_to_f16(f), hr = ref_to_f16(f);
        const uint16_t b = darn_f32_to_bf16(f), br = ref_to_bf16(f);
        cr_assert_eq(h, hr, "f16 store of %08x (%a): darn %04x, reference %04x", u, (double)f, h, hr);
        cr_assert_eq(b, br, "bf16 store of %08x (%a): darn %04x, reference %04x", u, (double)f, b, br);
    }
}

Test(conversions, f16_named_edge_cases)
{
    static const struct { float in; uint16_t out; } cases[] = {
        {0.0f, 0x0000},
        {-0.0f, 0x8000},
        {65504.0f, 0x7BFF},
        {65519.99609375f, 0x7BFF},       /* largest f32 below the tie */
        {65520.0f, 0x7C00},              /* tie between 65504 and 2^16: even is inf */
        {-65520.0f, 0xFC00},
        {1e30f, 0x7C00},
        {0x1p-24f, 0x0001},              /* smallest subnormal */
        {0x1p-25f, 0x0000},              /* half of it: tie to even 0 */
        {0x1.000002p-25f, 0x0001},       /* just above the half */
        {-0x1p-25f, 0x8000},
        {0x1.8p-24f, 0x0002},            /* 1.5 ulp: tie to even 2 */
        {0x1.4p-23f, 0x0002},            /* 2.5 ulp: tie to even 2 */
        {0x1.cp-23f, 0x0004},            /* 3.5 ulp: tie to even 4 */
        {0x1.ffcp-15f, 0x0400},          /* 1023.5 ulp -> 1024 = the smallest normal */
        {0x1.ff8p-15f, 0x03FF},          /* largest subnormal */
        {0x1p-14f, 0x0400},
        {1.0f + 0x1p-11f, 0x3C00},       /* tie between 1 and 1+2^-10: even is 1 */
        {1.0f + 0x1.8p-10f, 0x3C02},     /* tie between 1+2^-10 and 1+2^-9: even is 3C02 */
        {0x1p-149f, 0x0000},             /* f32 subnormals go to 0 */
        {-0x1p-149f, 0x8000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i)
        cr_expect_eq(darn_f32_to_f16(cases[i].in), cases[i].out, "f16(%a) = %04x, want %04x",
                     (double)cases[i].in, darn_f32_to_f16(cases[i].in), cases[i].out);
    cr_expect_eq(darn_f32_to_f16(INFINITY), 0x7C00);
    cr_expect_eq(darn_f32_to_f16(-INFINITY), 0xFC00);
    cr_expect_eq(darn_f32_to_f16(-NAN), 0x7E00, "negative NaN not canonical");
    cr_expect_eq(darn_f32_to_f16(f32_from_bits(0x7F800001u)), 0x7E00, "signalling NaN not canonical");
}

Test(conversions, bf16_named_edge_cases)
{
    static const struct { uint32_t in; uint16_t out; } cases[] = {
        {0x3F808000u, 0x3F80}, /* tie, even below */
        {0x3F818000u, 0x3F82}, /* tie, even above */
        {0x3F808001u, 0x3F81},
        {0x7F7F8000u, 0x7F80}, /* tie above the largest finite -> inf */
        {0x7F7F7FFFu, 0x7F7F},
        {0xFF7F8000u, 0xFF80},
        {0x00008000u, 0x0000}, /* subnormal tie to even 0 */
        {0x00018000u, 0x0002},
        {0x007F8000u, 0x0080}, /* largest subnormal + half -> smallest normal */
        {0x80000000u, 0x8000},
        {0x7F800000u, 0x7F80},
        {0xFF800000u, 0xFF80},
        {0xFFC00001u, 0x7FC0}, /* NaNs -> canonical */
        {0x7F800001u, 0x7FC0},
        {0x7FFFFFFFu, 0x7FC0},
        {0xFFFFFFFFu, 0x7FC0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i)
        cr_expect_eq(darn_f32_to_bf16(f32_from_bits(cases[i].in)), cases[i].out, "bf16(%08x) = %04x, want %04x",
                     cases[i].in, darn_f32_to_bf16(f32_from_bits(cases[i].in)), cases[i].out);
}

Test(conversions, f32_canonical_nan)
{
    static const uint32_t nans[] = {0x7F800001u, 0x7FC00000u, 0xFFC00000u, 0x7FFFFFFFu, 0xFFFFFFFFu,
                                    0xFF800001u, 0x7FA00000u};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; ++i) {
        const uint32_t got = bits_from_f32(darn_canonical_f32(f32_from_bits(nans[i])));
        cr_expect_eq(got, 0x7FC00000u, "canonical(%08x) = %08x", nans[i], got);
    }
    static const uint32_t keep[] = {0x00000000u, 0x80000000u, 0x7F800000u, 0xFF800000u, 0x00000001u,
                                    0x807FFFFFu, 0x3F800000u, 0x7F7FFFFFu, 0xFF7FFFFFu};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; ++i) {
        const uint32_t got = bits_from_f32(darn_canonical_f32(f32_from_bits(keep[i])));
        cr_expect_eq(got, keep[i], "canonical(%08x) = %08x, should be unchanged", keep[i], got);
    }
    cr_expect_eq(DARN_F32_CANONICAL_NAN, 0x7FC00000u);
    cr_expect_eq(DARN_F16_CANONICAL_NAN, 0x7E00u);
    cr_expect_eq(DARN_BF16_CANONICAL_NAN, 0x7FC0u);
}

Test(conversions, keep_rule_edges)
{
    cr_expect(darn_keep(0u, 0), "p = 0 keeps word 0");
    cr_expect(darn_keep(0xFFFFFFFFu, 0), "p = 0 keeps all");
    cr_expect(!darn_keep(0xFFFFFFFFu, UINT64_C(1) << 32), "threshold 2^32 keeps nothing");
    cr_expect(darn_keep(5u, 5), "word == threshold is kept");
    cr_expect(!darn_keep(4u, 5), "word < threshold is dropped");
}
