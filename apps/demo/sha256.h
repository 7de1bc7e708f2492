/*
 * sha256.h — SHA-256 (FIPS 180-4), a small self-contained implementation for darn's output digests.
 *
 * Incremental: darn_sha256_init, any number of darn_sha256_update calls, darn_sha256_final. The state
 * is a plain struct; nothing is allocated. Checked against the FIPS 180-2 example vectors in
 * tests/test_golden.c.
 */
#ifndef DARN_DEMO_SHA256_H
#define DARN_DEMO_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DARN_SHA256_BYTES 32
#define DARN_SHA256_HEX 65 /* 64 hex digits and the terminating NUL */

typedef struct darn_sha256_ctx {
    uint32_t h[8];      /* chaining value */
    uint64_t bytes;     /* message length so far, in bytes */
    uint8_t block[64];  /* pending partial block */
    size_t used;        /* bytes pending in block, < 64 */
} darn_sha256_ctx;

void darn_sha256_init(darn_sha256_ctx *s);
void darn_sha256_update(darn_sha256_ctx *s, const void *data, size_t len);
/* Writes the 32-byte digest; `s` must be re-initialized before reuse. */
void darn_sha256_final(darn_sha256_ctx *s, uint8_t out[DARN_SHA256_BYTES]);
/* One-shot digest of `len` bytes. */
void darn_sha256_oneshot(const void *data, size_t len, uint8_t out[DARN_SHA256_BYTES]);
/* Lower-case hex of the first `nbytes` bytes of `digest` (<= 32) into `hex` (2 * nbytes + 1 chars). */
void darn_sha256_hex(const uint8_t *digest, size_t nbytes, char *hex);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DARN_DEMO_SHA256_H */
