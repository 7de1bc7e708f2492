/* rng_graph.h — C interface of tests/gpu/rng_graph.hip (GPU builds only). Each returns 0 or 1 + `why`. */
#ifndef DARN_TESTS_RNG_GRAPH_H
#define DARN_TESTS_RNG_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "darn/darn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[2k] = hiprand() after hiprand_init(seed[k], offset[k], index[k]); out[2k+1] = darn_philox_word on the device. */
int darn_test_hiprand_words(const uint64_t *seed, const uint64_t *offset, const uint64_t *index, int n, uint32_t *out,
                            char *why, size_t why_bytes);
/* Captures darn_fwd + darn_bwd (GPU, device rng pointers d_seed / d_offset) into an executable graph. */
int darn_test_graph_capture(const darn_desc *desc, const darn_fwd_tensors *ft, const darn_bwd_tensors *bt, void *ws,
                            size_t ws_bytes, uint64_t *d_seed, uint64_t *d_offset, void **graph_exec, char *why,
                            size_t why_bytes);
int darn_test_graph_replay(void *graph_exec, char *why, size_t why_bytes);
int darn_test_graph_destroy(void *graph_exec, char *why, size_t why_bytes);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DARN_TESTS_RNG_GRAPH_H */
