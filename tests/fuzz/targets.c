/* whittle's fuzz targets (see targets.h). File parsers get their input
 * written into a small tree in a private temporary folder, next to valid
 * companion files, so that the fuzzer reaches the parser behind the path
 * handling; the checkpoint target writes a valid checkpoint (the checksum
 * right) whose contents the input decides, since a corrupt file is refused
 * by the checksum before anything is parsed. */
#define _XOPEN_SOURCE 700
#include "targets.h"

#include <ftw.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "distill/distill.h"
#include "framework/core/cfg.h"
#include "framework/io/checkpoint.h"
#include "framework/io/darknet_weights.h"
#include "framework/data/dataset.h"
#include "framework/data/image.h"
#include "framework/eval/metrics.h"
#include "framework/io/modelgen.h"
#include "framework/core/net.h"
#include "pruning/prune.h"
#include "pruning/sparsity.h"

/* ---- plumbing ---- */

static char wh__root[256];

static int wh__rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void wh__cleanup(void)
{
    if (wh__root[0]) nftw(wh__root, wh__rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* The private folder, made once per process and removed at exit. */
static const char *wh__dir(void)
{
    if (!wh__root[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(wh__root, sizeof(wh__root), "%s/whfuzz.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(wh__root)) abort(); /* the harness itself is broken */
        atexit(wh__cleanup);
    }
    return wh__root;
}

static const char *wh__path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", wh__dir(), name);
    return buf;
}

static void wh__mkdir(const char *name)
{
    char p[512];
    mkdir(wh__path(p, sizeof(p), name), 0755);
}

static void wh__write(const char *name, const void *d, size_t n)
{
    char p[512];
    FILE *f = fopen(wh__path(p, sizeof(p), name), "wb");
    if (!f) abort();
    if (n && fwrite(d, 1, n, f) != n) abort();
    fclose(f);
}

static void wh__write_str(const char *name, const char *s) { wh__write(name, s, strlen(s)); }

/* The input as a C string (bytes after a NUL are dropped, as a text file's
 * reader would see them: the readers stop there too). */
static char *wh__str(const uint8_t *d, size_t n)
{
    char *s = malloc(n + 1);
    if (!s) abort();
    memcpy(s, d, n);
    s[n] = 0;
    return s;
}

/* A valid 16x12 image, written once per name. */
static void wh__image(const char *name, int jpeg)
{
    char p[512];
    wh__path(p, sizeof(p), name);
    if (access(p, F_OK) == 0) return;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_image img;
    if (wh_image_alloc(&img, 16, 12, 3, &ctx) != WH_OK) abort();
    for (int i = 0; i < 16 * 12 * 3; i++) img.data[i] = (float)(i % 7) / 7.f;
    const wh_status st = jpeg ? wh_image_save_jpeg(p, &img, 90, &ctx) : wh_image_save_png(p, &img, &ctx);
    wh_image_free(&img);
    if (st != WH_OK) abort();
}

/* WH_FUZZ_VERBOSE=1: each input's outcome on stderr (to see that seeds
 * reach the parsers' success paths). Returns st. */
static wh_status wh__say(const char *target, wh_status st, const wh_ctx *ctx)
{
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("WH_FUZZ_VERBOSE") != NULL;
    if (verbose) fprintf(stderr, "%s: %s\n", target, st == WH_OK ? "ok" : ctx->msg);
    return st;
}

/* ---- the cfg parser, and building a network from what parses ---- */

/* Only small networks are built: a fuzzed cfg may legitimately ask for
 * gigabytes (the memory planner's job, not the parser's). */
static int wh__small(wh_cfg *cfg)
{
    if (cfg->n_sec > 48) return 0;
    static const struct {
        const char *key;
        long max;
    } caps[] = {{"width", 128}, {"height", 128}, {"channels", 16}, {"filters", 256},
                {"size", 9},    {"stride", 8},   {"classes", 100}, {"num", 12},  {"groups", 64}};
    for (int s = 0; s < cfg->n_sec; s++)
        for (int k = 0; k < cfg->sec[s].n_kv; k++)
            for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++)
                if (!strcmp(cfg->sec[s].kv[k].key, caps[c].key)) {
                    const long v = strtol(cfg->sec[s].kv[k].val, NULL, 10);
                    if (v > caps[c].max || v < -caps[c].max) return 0;
                }
    return 1;
}

int wh_fuzz_cfg(const uint8_t *data, size_t size)
{
    char *text = wh__str(data, size);
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_cfg *cfg = NULL;
    if (wh_cfg_parse_string(text, "fuzz.cfg", &cfg, &ctx) == WH_OK) {
        /* The plan first (no allocation), then the net itself when it is
         * small: chained [upsample]s pass the per-key caps yet reach tens of
         * GB, a real size the memory planner refuses for training, not a bug. */
        wh_net_opts no = {.batch = 1, .dry_run = 1};
        wh_net *net = NULL;
        size_t bytes = SIZE_MAX;
        if (wh__small(cfg) && wh__say("cfg plan", wh_net_create(cfg, &no, &net, &ctx), &ctx) == WH_OK) {
            bytes = wh_net_arena_total(net);
            wh_net_destroy(net);
            net = NULL;
        }
        if (bytes <= ((size_t)256 << 20)) {
            no.dry_run = 0;
            if (wh__say("cfg", wh_net_create(cfg, &no, &net, &ctx), &ctx) == WH_OK) {
                wh_net_cost c;
                wh_net_cost_total(net, &c);
                wh_net_destroy(net);
            }
        }
        wh_cfg_free(cfg);
    }
    free(text);
    return 0;
}

/* ---- images ---- */

int wh_fuzz_image(const uint8_t *data, size_t size)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_image img;
    if (wh__say("image", wh_image_decode(data, size, "fuzz", &img, &ctx), &ctx) == WH_OK) wh_image_free(&img);
    return 0;
}

/* ---- VOC annotations ---- */

int wh_fuzz_voc(const uint8_t *data, size_t size)
{
    wh__mkdir("voc");
    wh__mkdir("voc/Annotations");
    wh__mkdir("voc/JPEGImages");
    wh__mkdir("voc/ImageSets");
    wh__mkdir("voc/ImageSets/Main");
    wh__image("voc/JPEGImages/a.jpg", 1);
    wh__write_str("voc/ImageSets/Main/train.txt", "a\n");
    wh__write("voc/Annotations/a.xml", data, size);
    char root[512];
    wh__path(root, sizeof(root), "voc");
    const char *roots[1] = {root};
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_dataset *d = NULL;
    if (wh__say("voc", wh_voc_load(roots, 1, "train", NULL, 0, &d, &ctx), &ctx) == WH_OK) wh_dataset_free(d);
    return 0;
}

/* ---- darknet .data, list, label and names files ---- */

int wh_fuzz_darknet_data(const uint8_t *data, size_t size)
{
    char list[512], names[512], dfile[512], text[1700];
    wh__mkdir("dn");
    wh__mkdir("dn/images");
    wh__mkdir("dn/labels");
    wh__image("dn/images/a.png", 0);
    wh__path(list, sizeof(list), "dn/list.txt");
    wh__path(names, sizeof(names), "dn/names.txt");
    wh__path(dfile, sizeof(dfile), "dn/d.data");
    snprintf(text, sizeof(text), "classes=2\ntrain=%s\nvalid=%s\nnames=%s\n", list, list, names);
    wh__write_str("dn/d.data", text);
    char img[512];
    snprintf(text, sizeof(text), "%s\n", wh__path(img, sizeof(img), "dn/images/a.png"));
    wh__write_str("dn/list.txt", text);
    wh__write_str("dn/labels/a.txt", "0 0.5 0.5 0.2 0.2\n1 0.25 0.25 0.1 0.1\n");
    wh__write_str("dn/names.txt", "a\nb\n");
    /* the first byte says which file the rest replaces */
    static const char *const which[4] = {"dn/d.data", "dn/list.txt", "dn/labels/a.txt", "dn/names.txt"};
    if (size > 0) wh__write(which[data[0] % 4], data + 1, size - 1);
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_dataset *d = NULL;
    if (wh__say("darknet_data", wh_darknet_load(dfile, "train", &d, &ctx), &ctx) == WH_OK) wh_dataset_free(d);
    return 0;
}

/* ---- darknet .weights into a fixed small network ---- */

static const char *wh__small_cfg = "[net]\nbatch=1\nwidth=32\nheight=32\nchannels=3\n"
                                   "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\n"
                                   "activation=leaky\n"
                                   "[maxpool]\nsize=2\nstride=2\n"
                                   "[convolutional]\nfilters=4\nsize=1\nstride=1\npad=1\nactivation=linear\n";

static wh_net *wh__net_of(const char *text)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_cfg *cfg = NULL;
    if (wh_cfg_parse_string(text, "fixed.cfg", &cfg, &ctx) != WH_OK) abort();
    const wh_net_opts no = {.batch = 1};
    wh_net *net = NULL;
    if (wh_net_create(cfg, &no, &net, &ctx) != WH_OK) abort();
    wh_cfg_free(cfg);
    return net;
}

int wh_fuzz_weights(const uint8_t *data, size_t size)
{
    static wh_net *net;
    if (!net) net = wh__net_of(wh__small_cfg); /* kept for the process: one net, many inputs */
    wh__write("w.weights", data, size);
    char p[512];
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    uint64_t seen = 0;
    wh__say("weights", wh_darknet_weights_load(net, wh__path(p, sizeof(p), "w.weights"), &seen, &ctx), &ctx);
    return 0;
}

/* ---- checkpoints: valid files (checksum right) with fuzzed contents ---- */

typedef struct wh__bytes {
    const uint8_t *d;
    size_t n, at;
} wh__bytes;

static unsigned wh__byte(wh__bytes *b) { return b->at < b->n ? b->d[b->at++] : 0; }

int wh_fuzz_ckpt(const uint8_t *data, size_t size)
{
    static const char *const cfgs[2] = {
        "[net]\nbatch=1\nwidth=32\nheight=32\nchannels=3\n"
        "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
        "[maxpool]\nsize=2\nstride=2\n"
        "[convolutional]\nfilters=4\nsize=1\nstride=1\npad=1\nactivation=linear\n",
        "[net]\nwidth=16\nheight=16\nchannels=1\n[convolutional]\nfilters=2\nsize=1\nactivation=relu\n"};
    static const char *const names[] = {"layers/000_convolutional/biases",
                                        "layers/000_convolutional/scales",
                                        "layers/000_convolutional/rolling_mean",
                                        "layers/000_convolutional/rolling_variance",
                                        "layers/000_convolutional/weights",
                                        "layers/001_maxpool/weights",
                                        "layers/002_convolutional/biases",
                                        "layers/002_convolutional/weights",
                                        "layers/003_convolutional/weights",
                                        "layers/000_shortcut/weights",
                                        "layers/x/weights",
                                        "seen",
                                        "train/iteration",
                                        "optimizer/velocity",
                                        "layers/000_convolutional",
                                        "layers"};
    const int n_names = (int)(sizeof(names) / sizeof(names[0]));
    wh__bytes b = {data, size, 0};
    char path[512];
    wh__path(path, sizeof(path), "c.h5");
    unlink(path);
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_ckpt_writer *w = NULL;
    if (wh_ckpt_create(path, &w, &ctx) != WH_OK) return 0;
    wh_status st = WH_OK;
    /* the cfg: one of the fixed ones, or text from the input */
    const unsigned c = wh__byte(&b);
    if (c < 200) {
        st = wh_ckpt_put_str(w, "cfg", cfgs[c % 2], &ctx);
    } else {
        const size_t len = wh__byte(&b) * 4u;
        char *t = malloc(len + 1);
        if (!t) abort();
        for (size_t i = 0; i < len; i++) t[i] = (char)wh__byte(&b);
        t[len] = 0;
        st = wh_ckpt_put_str(w, "cfg", t, &ctx);
        free(t);
    }
    /* datasets: a name, a type, up to 3 dimensions, values */
    for (int k = 0; st == WH_OK && k < 24 && b.at < b.n; k++) {
        const char *name = names[wh__byte(&b) % (unsigned)n_names];
        const unsigned type = wh__byte(&b) % 3;
        uint64_t dims[3];
        const int nd = (int)(wh__byte(&b) % 4);
        size_t count = 1;
        for (int i = 0; i < nd; i++) count *= (size_t)(dims[i] = wh__byte(&b) % 48);
        if (count > 4096) break;
        if (type == 0) {
            float *v = malloc((count ? count : 1) * sizeof(float));
            if (!v) abort();
            for (size_t i = 0; i < count; i++) {
                uint32_t u = wh__byte(&b) | wh__byte(&b) << 8 | wh__byte(&b) << 16 | (uint32_t)wh__byte(&b) << 24;
                memcpy(&v[i], &u, 4); /* any bits: NaN, infinities, denormals */
            }
            st = wh_ckpt_put_f32(w, name, v, dims, nd, &ctx);
            free(v);
        } else if (type == 1) {
            int64_t *v = malloc((count ? count : 1) * sizeof(int64_t));
            if (!v) abort();
            for (size_t i = 0; i < count; i++) v[i] = (int64_t)(int8_t)wh__byte(&b) * 1000003;
            st = wh_ckpt_put_i64(w, name, v, dims, nd, &ctx);
            free(v);
        } else {
            char t[64] = {0};
            const int len = (int)(wh__byte(&b) % 63);
            for (int i = 0; i < len; i++) t[i] = (char)(wh__byte(&b) | 1); /* no NUL inside: t ends at len */
            st = wh_ckpt_put_str(w, name, t, &ctx);
        }
    }
    if (wh__say("ckpt", st, &ctx) != WH_OK) {
        wh_ckpt_abort(w);
        return 0;
    }
    if (wh__say("ckpt", wh_ckpt_commit(w, &ctx), &ctx) != WH_OK) return 0;
    /* what a user's checkpoint goes through: open (checksum), the cfg, the net */
    wh_ckpt_reader *r = NULL;
    if (wh__say("ckpt", wh_ckpt_open(path, &r, &ctx), &ctx) == WH_OK) {
        const wh_net_opts no = {.batch = 1};
        wh_net *net = NULL;
        char *cfg_text = NULL;
        if (wh__say("ckpt", wh_ckpt_read_net(r, &no, &net, &cfg_text, &ctx), &ctx) == WH_OK) wh_net_destroy(net);
        free(cfg_text);
        int64_t it = 0;
        if (wh_ckpt_has(r, "train/iteration")) wh_ckpt_get_i64(r, "train/iteration", &it, 1, &ctx);
        wh_ckpt_close(r);
    }
    return 0;
}

/* ---- group preset files, against a small yolov4-tiny ---- */

int wh_fuzz_groups(const uint8_t *data, size_t size)
{
    static wh_net *net;
    static wh_depgraph g;
    if (!net) {
        wh_ctx ctx;
        wh_ctx_init(&ctx);
        wh_model_opts mo;
        wh_model_opts_default(&mo);
        mo.name = "yolov4-tiny";
        mo.classes = 2;
        mo.width = mo.height = 64;
        mo.width_multiple = 0.25;
        char *text = NULL;
        if (wh_model_generate(&mo, &text, &ctx) != WH_OK) abort();
        net = wh__net_of(text);
        free(text);
        const wh_depgraph_opts o = {NULL, 0, 0};
        if (wh_depgraph_build(net, &o, &g, &ctx) != WH_OK) abort();
    }
    wh__write("g.groups", data, size);
    char p[512];
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_grouping gr;
    if (wh__say("groups", wh_grouping_make("file", wh__path(p, sizeof(p), "g.groups"), net, &g, &gr, &ctx), &ctx) ==
        WH_OK)
        wh_grouping_free(&gr);
    return 0;
}

/* ---- plug-in spec strings: schedulers, attention pairs, groupings, metrics ---- */

int wh_fuzz_specs(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    char *text = wh__str(data + 1, size - 1);
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    switch (data[0] % 4) {
    case 0: {
        wh_sched *s = NULL;
        if (wh__say("specs", wh_sched_create(text, &s, &ctx), &ctx) == WH_OK) wh_sched_destroy(s);
        break;
    }
    case 1: {
        wh_at_pair *pairs = NULL;
        int n = 0;
        if (wh__say("specs", wh_at_pairs_parse(text, &pairs, &n, &ctx), &ctx) == WH_OK) free(pairs);
        break;
    }
    case 2: {
        wh_spec s;
        wh__say("specs", wh_spec_parse(text, &s, &ctx), &ctx);
        break;
    }
    default: {
        wh_metric m;
        wh__say("specs", wh_metric_parse(text, &m, &ctx), &ctx);
        break;
    }
    }
    free(text);
    return 0;
}

const wh_fuzz_target wh_fuzz_targets[] = {
    {"cfg", wh_fuzz_cfg, "darknet cfg text, and the network it builds"},
    {"image", wh_fuzz_image, "JPEG / PNG decoding"},
    {"voc", wh_fuzz_voc, "VOC XML annotations"},
    {"darknet_data", wh_fuzz_darknet_data, "darknet .data, image list, label and names files"},
    {"weights", wh_fuzz_weights, "darknet .weights import"},
    {"ckpt", wh_fuzz_ckpt, "checkpoint contents behind a valid checksum"},
    {"groups", wh_fuzz_groups, "group preset files"},
    {"specs", wh_fuzz_specs, "scheduler, attention-pair, spec and metric strings"},
    {NULL, NULL, NULL},
};

const wh_fuzz_target *wh_fuzz_find(const char *name)
{
    for (const wh_fuzz_target *t = wh_fuzz_targets; t->name; t++)
        if (!strcmp(t->name, name)) return t;
    return NULL;
}
