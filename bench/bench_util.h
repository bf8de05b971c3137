/* Shared by the microbenchmarks: a monotonic clock and medians. */
#ifndef WH_BENCH_UTIL_H
#define WH_BENCH_UTIL_H

#include <stdlib.h>
#include <time.h>

static inline double wh_bench_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline int wh_bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts t (n > 0) and returns its median. */
static inline double wh_bench_median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof(double), wh_bench_cmp);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

#endif
