#include "framework/core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static const char *const wh__status_names[] = {
#define WH__STR(name, str) str,
    WH_STATUS_LIST(WH__STR)
#undef WH__STR
};
_Static_assert(sizeof(wh__status_names) / sizeof(wh__status_names[0]) == WH_STATUS_COUNT,
               "status name table must match the enum");

void wh_ctx_init(wh_ctx *ctx)
{
    memset(ctx, 0, sizeof(*ctx));
}

void wh_ctx_set_threads(wh_ctx *ctx, int n_threads)
{
    ctx->n_threads = n_threads > 0 ? n_threads : 0;
#ifdef _OPENMP
    if (n_threads > 0) omp_set_num_threads(n_threads);
#endif
}

const char *wh_status_name(wh_status s)
{
    if ((int)s < 0 || s >= WH_STATUS_COUNT) return "unknown status";
    return wh__status_names[s];
}

wh_status wh_error(wh_ctx *ctx, wh_status code, const char *fmt, ...)
{
    if (!ctx) return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->msg, sizeof(ctx->msg), fmt, ap);
    va_end(ap);
    ctx->status = code;
    return code;
}

wh_status wh_error_prefix(wh_ctx *ctx, const char *fmt, ...)
{
    if (!ctx) return WH_ERR_STATE;
    char pre[WH_MSG_MAX], old[WH_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof(pre), fmt, ap);
    va_end(ap);
    memcpy(old, ctx->msg, sizeof(old));
    /* Truncation is acceptable: a long message keeps its start. */
    size_t np = strlen(pre);
    if (np > sizeof(ctx->msg) - 1) np = sizeof(ctx->msg) - 1;
    memcpy(ctx->msg, pre, np);
    size_t room = sizeof(ctx->msg) - 1 - np;
    size_t no = strlen(old);
    if (no > room) no = room;
    memcpy(ctx->msg + np, old, no);
    ctx->msg[np + no] = 0;
    return ctx->status;
}

void wh_warn(wh_ctx *ctx, const char *fmt, ...)
{
    if (!ctx) return;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    ctx->n_warn_total++;
    if (ctx->sink) ctx->sink(ctx->sink_user, buf);
    if (ctx->n_warn < WH_WARN_MAX) memcpy(ctx->warn[ctx->n_warn++], buf, sizeof(buf));
}
