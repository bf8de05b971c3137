/* The machine's own limits (bench/bench.h): an FMA loop for the
 * single-precision peak and a stream triad for the memory bandwidth. */
#include "bench/bench.h"
#include "bench/bench_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* WH__CHAINS independent accumulators of WH__LANES floats: enough vector
 * chains in flight to cover the FMA latency (4-5 cycles) on both FMA pipes,
 * few enough to stay in registers with the two constants (6 x 16 floats = 12 ymm or 6 zmm). The compiler
 * vectorises the lane loop; fmaf (not a * b + c) because ISO C mode does not
 * contract. */
#define WH__CHAINS 6
#define WH__LANES 16

/* FLOPs done (2 per FMA); *sink keeps the result alive. */
static double wh__fma_loop(long iters, float *sink)
{
    float acc[WH__CHAINS][WH__LANES];
    for (int k = 0; k < WH__CHAINS; k++)
        for (int j = 0; j < WH__LANES; j++) acc[k][j] = 1e-3f * (float)(k * WH__LANES + j);
    const float a = 0.9999999f, b = 1e-7f;
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < WH__CHAINS; k++)
#pragma omp simd
            for (int j = 0; j < WH__LANES; j++) acc[k][j] = fmaf(acc[k][j], a, b);
    float s = 0;
    for (int k = 0; k < WH__CHAINS; k++)
        for (int j = 0; j < WH__LANES; j++) s += acc[k][j];
    *sink += s;
    return 2.0 * WH__CHAINS * WH__LANES * (double)iters;
}

/* GFLOP/s of nt threads running the loop at once (the slowest thread's time). */
static double wh__fma_gflops(int nt, long iters)
{
    float sink = 0;
    double flops = 0, t0 = wh_bench_now();
#pragma omp parallel num_threads(nt) reduction(+ : flops, sink)
    flops += wh__fma_loop(iters, &sink);
    const double dt = wh_bench_now() - t0;
    if (sink == 12345.f) fprintf(stderr, " "); /* never true; the sum must look used */
    return flops / dt / 1e9;
}

wh_status wh_bench_peak_measure(int threads, int runs, wh_bench_peak *out, wh_ctx *ctx)
{
    /* about 0.05 s per FMA pass at 100 GFLOP/s per thread; 192 MiB for the triad: far past any cache */
    return wh_bench_peak_measure_sized(threads, runs, 25000000L, (size_t)16 << 20, out, ctx);
}

wh_status wh_bench_peak_measure_sized(int threads, int runs, long fma_iters, size_t triad_floats, wh_bench_peak *out,
                                      wh_ctx *ctx)
{
    memset(out, 0, sizeof(*out));
    if (runs < 1 || fma_iters < 1 || triad_floats < 1)
        return wh_error(ctx, WH_ERR_ARG, "bench peak: runs, iterations and sizes must be >= 1");
#ifdef _OPENMP
    const int nt = threads > 0 ? threads : omp_get_max_threads();
#else
    const int nt = 1;
    (void)threads;
#endif
    out->threads = nt;
    double *v = malloc((size_t)runs * sizeof(double));
    if (!v) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    const long iters = fma_iters;
    wh__fma_gflops(nt, iters / 10); /* warm-up: clocks up, threads created */
    for (int r = 0; r < runs; r++) v[r] = wh__fma_gflops(nt, iters);
    out->fma_gflops = wh_bench_median(v, runs);
    for (int r = 0; r < runs; r++) v[r] = wh__fma_gflops(1, iters);
    out->fma_gflops_one = wh_bench_median(v, runs);
    const size_t n = triad_floats;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float)), *c = malloc(n * sizeof(float));
    if (!a || !b || !c) {
        free(a), free(b), free(c), free(v);
        return wh_error(ctx, WH_ERR_NOMEM, "out of memory (bench peak: 3 x %zu floats)", n);
    }
    /* first touch by the threads that will use each part */
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = 0, b[i] = 1, c[i] = 2;
    const float s = 3;
    for (int r = -1; r < runs; r++) {
        const double t0 = wh_bench_now();
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t i = 0; i < n; i++) a[i] = b[i] + s * c[i];
        const double dt = wh_bench_now() - t0;
        if (r >= 0) v[r] = 3.0 * (double)n * sizeof(float) / dt / 1e9;
    }
    out->triad_gbs = wh_bench_median(v, runs);
    const int ok = a[n / 2] == 7.f;
    free(a), free(b), free(c), free(v);
    if (!ok) return wh_error(ctx, WH_ERR_STATE, "bench peak: the triad computed a wrong value");
    return WH_OK;
}

double wh_bench_peak_rss_mb(void)
{
    FILE *fp = fopen("/proc/self/status", "r");
    if (!fp) return NAN;
    char line[256];
    double kb = NAN;
    while (fgets(line, sizeof(line), fp))
        if (!strncmp(line, "VmHWM:", 6)) kb = strtod(line + 6, NULL);
    fclose(fp);
    return kb / 1024.0;
}
