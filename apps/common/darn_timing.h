/*
 * darn_timing.h — the host-side timing helpers that darn-demo (apps/demo/job.c) and darn-bench
 * (bench/) share: a monotonic clock and the median of a sample. Not part of libdarn; plain C11 plus
 * POSIX clock_gettime, no dependency on darn.
 */
#ifndef DARN_TIMING_H
#define DARN_TIMING_H

#ifdef __cplusplus
extern "C" {
#endif

/* Monotonic clock (CLOCK_MONOTONIC) in milliseconds, arbitrary origin. */
double darn_now_ms(void);

/* Median of n values (sorts v in place); 0 for n <= 0. For even n, the mean of the two middle values. */
double darn_median(double *v, int n);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DARN_TIMING_H */
