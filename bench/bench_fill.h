/*
 * bench_fill.h — random benchmark inputs, generated on the host with a fast PRNG (splitmix64).
 *
 * Every element is a finite, non-zero value with a random sign, an exponent in [-3, 0] and random
 * mantissa bits, i.e. |v| in [0.125, 2), written directly as bits of the requested dtype (no
 * conversion, so generation runs at memory speed). Zeros or constants would let a GPU compress or
 * skip work; these values cannot overflow the norm either.
 */
#ifndef DARN_BENCH_FILL_H
#define DARN_BENCH_FILL_H

#include <stddef.h>
#include <stdint.h>

#include <darn/darn.h>

/* Fills `count` elements of `dtype` at `dst` (host memory) from the stream `seed`. */
void bench_fill_random(void *dst, darn_dtype dtype, size_t count, uint64_t seed);

#endif /* DARN_BENCH_FILL_H */
