#include "framework/core/memplan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A "Key:   123 kB" line of a /proc file, in bytes (0: absent). */
static size_t wh__proc_kb(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[256];
    size_t v = 0, n = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, key, n) && line[n] == ':') {
            v = (size_t)strtoull(line + n + 1, NULL, 10) * 1024;
            break;
        }
    fclose(f);
    return v;
}

/* One number from a file ("max" and failures: 0). */
static size_t wh__file_num(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char buf[64] = "";
    const int ok = fgets(buf, sizeof(buf), f) != NULL;
    fclose(f);
    if (!ok || !strncmp(buf, "max", 3)) return 0;
    return (size_t)strtoull(buf, NULL, 10);
}

size_t wh_mem_rss(void) { return wh__proc_kb("/proc/self/status", "VmRSS"); }
size_t wh_mem_peak(void) { return wh__proc_kb("/proc/self/status", "VmHWM"); }

size_t wh_mem_available(char *from, size_t n)
{
    const char *env = getenv("WH_MEM_AVAILABLE_MB");
    if (env && *env) {
        snprintf(from, n, "WH_MEM_AVAILABLE_MB");
        return (size_t)strtoull(env, NULL, 10) << 20;
    }
    size_t avail = wh__proc_kb("/proc/meminfo", "MemAvailable");
    snprintf(from, n, "MemAvailable");
    /* a container's limit: cgroup v2, then v1 (a huge v1 value means none) */
    size_t lim = wh__file_num("/sys/fs/cgroup/memory.max"), used = wh__file_num("/sys/fs/cgroup/memory.current");
    const char *src = "cgroup memory.max";
    if (!lim) {
        lim = wh__file_num("/sys/fs/cgroup/memory/memory.limit_in_bytes");
        used = wh__file_num("/sys/fs/cgroup/memory/memory.usage_in_bytes");
        src = "cgroup memory.limit_in_bytes";
        if (lim > ((size_t)1 << 60)) lim = 0;
    }
    if (lim) {
        const size_t left = lim > used ? lim - used : 0;
        if (!avail || left < avail) {
            avail = left;
            snprintf(from, n, "%s", src);
        }
    }
    return avail;
}

wh_status wh_mem_plan_train(wh_cfg *cfg, const wh_net_opts *opts, size_t loader_bytes, size_t extra_bytes,
                            const char *what, int ranks_on_host, wh_mem_plan *out, wh_ctx *ctx)
{
    memset(out, 0, sizeof(*out));
    wh_net_opts o = *opts;
    o.dry_run = 1;
    wh_net *net = NULL;
    WH_TRY(wh_net_create(cfg, &o, &net, ctx));
    for (int k = 0; k < WH_ARENA_COUNT; k++) out->arenas[k] = net->arena_bytes[k];
    const size_t arenas = wh_net_arena_total(net);
    wh_net_destroy(net);
    out->momentum = out->arenas[WH_ARENA_GRAD];
    out->loader = loader_bytes;
    out->process = wh_mem_rss();
    out->runtime = WH_MEM_RUNTIME_BYTES;
    out->checkpoint = out->momentum;
    out->extra = extra_bytes;
    out->extra_what = what && what[0] ? what : "hooks";
    out->ranks_on_host = ranks_on_host > 1 ? ranks_on_host : 1;
    out->total = arenas + out->momentum + out->loader + out->process + out->runtime + out->checkpoint + out->extra;
    out->available = wh_mem_available(out->available_from, sizeof(out->available_from));
    return WH_OK;
}

void wh_mem_plan_optimizer(wh_mem_plan *p, int n_state, int average)
{
    const size_t one = p->arenas[WH_ARENA_GRAD];
    p->total -= p->momentum + p->average;
    p->momentum = one * (size_t)(n_state > 0 ? n_state : 1);
    p->average = average ? p->arenas[WH_ARENA_PARAM] : 0;
    p->total += p->momentum + p->average;
}

int wh_mem_plan_fits(const wh_mem_plan *p)
{
    return !p->available || p->total * (size_t)p->ranks_on_host <= p->available;
}

void wh_mem_plan_format(const wh_mem_plan *p, char *buf, size_t n)
{
    const double mb = 1 << 20;
    int k = snprintf(buf, n,
                     "%.0f MB (parameters %.0f, gradients %.0f, momentum %.0f, activations %.0f, outputs %.0f, "
                     "activation gradients %.0f, scratch %.0f, loader %.0f, checkpoint %.0f, process %.0f, runtime "
                     "%.0f",
                     p->total / mb, p->arenas[WH_ARENA_PARAM] / mb, p->arenas[WH_ARENA_GRAD] / mb, p->momentum / mb,
                     p->arenas[WH_ARENA_ACT] / mb, p->arenas[WH_ARENA_OUT] / mb, p->arenas[WH_ARENA_DOUT] / mb,
                     p->arenas[WH_ARENA_SCRATCH] / mb, p->loader / mb, p->checkpoint / mb, p->process / mb,
                     p->runtime / mb);
    if (k >= 0 && (size_t)k < n && p->average)
        k += snprintf(buf + k, n - (size_t)k, ", average %.0f", p->average / mb);
    if (k >= 0 && (size_t)k < n && p->extra)
        k += snprintf(buf + k, n - (size_t)k, ", %s %.0f", p->extra_what ? p->extra_what : "hooks", p->extra / mb);
    if (k >= 0 && (size_t)k < n) k += snprintf(buf + k, n - (size_t)k, ")");
    if (k >= 0 && (size_t)k < n && p->ranks_on_host > 1)
        k += snprintf(buf + k, n - (size_t)k, " x %d ranks on this host", p->ranks_on_host);
    if (k < 0 || (size_t)k >= n) return;
    if (p->available)
        snprintf(buf + k, n - (size_t)k, " of %.0f MB available (%s)", p->available / mb, p->available_from);
    else
        snprintf(buf + k, n - (size_t)k, "; the memory available is unknown");
}
