/* whittle: status codes and the error context.
 *
 * Library functions return a wh_status; the human-readable message (what
 * went wrong and where: file:line, key, layer index) is kept in a wh_ctx so
 * that only apps/ decides how to show it. Nothing in the library prints to
 * stderr or exits.
 */
#ifndef WH_STATUS_H
#define WH_STATUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One X-macro list generates the enum and its names (libuv's habit). */
#define WH_STATUS_LIST(X)                                                  \
    X(OK, "ok")                                                            \
    X(ERR_ARG, "invalid argument")                                         \
    X(ERR_IO, "input/output error")                                        \
    X(ERR_PARSE, "syntax error")                                           \
    X(ERR_CFG, "invalid configuration")                                    \
    X(ERR_SHAPE, "shape mismatch")                                         \
    X(ERR_NOMEM, "out of memory")                                          \
    X(ERR_DNNL, "oneDNN error")                                            \
    X(ERR_UNSUPPORTED, "unsupported")                                      \
    X(ERR_STATE, "invalid state")                                          \
    X(ERR_NUMERIC, "non-finite value")

typedef enum wh_status {
#define WH__ENUM(name, str) WH_##name,
    WH_STATUS_LIST(WH__ENUM)
#undef WH__ENUM
    WH_STATUS_COUNT
} wh_status;

#define WH_MSG_MAX 1024
#define WH_WARN_MAX 64

/* Warnings are collected (darknet prints them; we let apps/ do it). A sink
 * may be installed to receive them as they happen instead. */
typedef void (*wh_warn_sink)(void *user, const char *msg);

typedef struct wh_ctx {
    wh_status status;            /* last error set by wh_error */
    char msg[WH_MSG_MAX];        /* its message */
    int n_warn;                  /* warnings kept (at most WH_WARN_MAX) */
    int n_warn_total;            /* warnings seen, kept or not */
    char warn[WH_WARN_MAX][256];
    wh_warn_sink sink;
    void *sink_user;
    int n_threads;               /* OpenMP threads for our ops and oneDNN; 0 = runtime default */
} wh_ctx;

void wh_ctx_init(wh_ctx *ctx);
/* Sets the thread count used from now on (omp_set_num_threads). 0 keeps the
 * OpenMP default (OMP_NUM_THREADS or the number of cores). */
void wh_ctx_set_threads(wh_ctx *ctx, int n_threads);

const char *wh_status_name(wh_status s);

/* Records an error message in ctx and returns code, so that callers write
 *   return wh_error(ctx, WH_ERR_CFG, "%s:%d: key 'filters' missing", f, line); */
wh_status wh_error(wh_ctx *ctx, wh_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Prefixes the current message with more context ("layer 12: " + msg). */
wh_status wh_error_prefix(wh_ctx *ctx, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void wh_warn(wh_ctx *ctx, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Propagate: WH_TRY(expr) returns its status from the enclosing function. */
#define WH_TRY(expr)                                                       \
    do {                                                                   \
        wh_status wh__s = (expr);                                          \
        if (wh__s != WH_OK) return wh__s;                                  \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
