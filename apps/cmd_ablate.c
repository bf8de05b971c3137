/* whittle ablate: a grid of compression strategies over seeds, sharing the
 * stages combinations have in common, resumable. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps.h"
#include "framework/core/fileio.h"
#include "framework/core/json.h"
#include "framework/plot/plot.h"
#include "pipeline.h"

#define WH__MAXV 8

void wh_cmd_ablate_usage(void)
{
    printf("usage: whittle ablate --grid KEY=V1,V2 [KEY=...] [--seeds N] [--out DIR] [pipeline options]\n\n"
           "Runs every combination of the grid through the method and compares them. Stages that\n"
           "combinations share run once: one baseline, one sparse run per scheduler and seed, one\n"
           "pruning per scheduler, grouping and seed, one fine-tune per combination and seed.\n"
           "Rerunning the same command continues a partly done grid; a larger grid or more seeds\n"
           "reuse what is done.\n\n"
           "  --grid KEY=V,...      sched=constant,dynamic (scheduler names, given the budget's s,\n"
           "                        or NAME:s=X); groups=global,scale-module (grouping plug-ins);\n"
           "                        distill=none,attention,attention+boxes,attention+logits\n"
           "                        (none: plain fine-tuning). A key not given keeps the pipeline's\n"
           "                        default (dynamic, scale-module, attention).\n"
           "  --seeds N             seeds 1..N for every stage after the baseline (default 1)\n"
           "  --out DIR             (default runs/ablate)\n"
           "  --data, --train-split, --test-split, --model, --cfg, --init, --size, --width-multiple, --anchors,\n"
           "  --loss, --optimizer, --no-ema, --mosaic,\n"
           "  --budget, --target-params,"
           " --at-beta-scale, --s, --bn-batches, --baseline-iterations, --sparse-iterations, --finetune-iterations,\n"
           "  --threads, --stop-after   as for whittle pipeline\n"
           "Writes OUT/ablation.md (mean and spread over seeds), ablation.csv (one line per run),\n"
           "ablation.json and ablation.png.\n");
}

typedef struct wh__grid {
    const char *v[3][WH__MAXV]; /* sched, groups, distill */
    int n[3];
} wh__grid;

static int wh__grid_add(wh__grid *g, char *arg)
{
    static const char *keys[3] = {"sched", "groups", "distill"};
    char *eq = strchr(arg, '=');
    if (!eq) {
        fprintf(stderr, "whittle: error: --grid: '%s' is not KEY=V1,V2 (keys: sched, groups, distill)\n", arg);
        return -1;
    }
    *eq = '\0';
    int k = 0;
    while (k < 3 && strcmp(arg, keys[k])) k++;
    if (k == 3) {
        fprintf(stderr, "whittle: error: --grid: unknown key '%s' (known: sched, groups, distill)\n", arg);
        return -1;
    }
    g->n[k] = 0;
    for (char *save = NULL, *t = strtok_r(eq + 1, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (g->n[k] == WH__MAXV) {
            fprintf(stderr, "whittle: error: --grid: at most %d values for %s\n", WH__MAXV, keys[k]);
            return -1;
        }
        if (k == 2 && strcmp(t, "none") && strcmp(t, "attention") && strcmp(t, "attention+boxes") &&
            strcmp(t, "attention+logits")) {
            fprintf(stderr,
                    "whittle: error: --grid: distill=%s: known: none, attention, attention+boxes, "
                    "attention+logits\n",
                    t);
            return -1;
        }
        g->v[k][g->n[k]++] = t;
    }
    if (g->n[k] == 0) {
        fprintf(stderr, "whittle: error: --grid: %s has no values\n", keys[k]);
        return -1;
    }
    return 0;
}

/* A value as a folder-name part: [A-Za-z0-9.+-], the rest '_'; a path keeps its base name. */
static void wh__slug(const char *v, char *out, size_t n)
{
    const char *b = strrchr(v, '/');
    if (b && b[1]) v = b + 1;
    size_t k = 0;
    for (; *v && k + 1 < n; v++, k++) {
        const char c = *v;
        out[k] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '+' ||
                         c == '-'
                     ? c
                     : '_';
    }
    out[k] = '\0';
}

/* The share of |gamma| below 1e-2 in the last line of dir/gamma.jsonl (NaN if none). */
static double wh__below_1e2(const char *dir)
{
    char path[4096];
    double v = NAN;
    if (snprintf(path, sizeof(path), "%s/gamma.jsonl", dir) >= (int)sizeof(path)) return v;
    FILE *fp = fopen(path, "r");
    if (!fp) return v;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, fp) > 0) {
        /* the record's top-level below_1e-2 is the whole network's */
        const double x = wh_json_line_num(line, "below_1e-2");
        if (isfinite(x)) v = x;
    }
    free(line);
    fclose(fp);
    return v;
}

static void wh__stats(const double *v, int n, double *mean, double *sd, double *lo, double *hi)
{
    double s = 0, q = 0;
    *lo = INFINITY, *hi = -INFINITY;
    for (int i = 0; i < n; i++) s += v[i], *lo = fmin(*lo, v[i]), *hi = fmax(*hi, v[i]);
    *mean = n ? s / n : NAN;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

int wh_cmd_ablate(int argc, char **argv)
{
    wh_pl_cli cli;
    wh_pl_cli_init(&cli, "runs/ablate");
    int seeds = 1, have_grid = 0;
    wh__grid g = {.v = {{"dynamic"}, {"scale-module"}, {"attention"}}, .n = {1, 1, 1}};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        const int r = wh_pl_cli_option(argc, argv, &i, &cli);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(a, "--grid")) {
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
                if (wh__grid_add(&g, argv[++i])) return 2;
                have_grid = 1;
            }
            if (!have_grid) {
                fprintf(stderr, "whittle: error: --grid needs KEY=V1,V2 arguments\n");
                return 2;
            }
        } else if (!strcmp(a, "--seeds")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 1, 100, &seeds)) return 2;
        } else {
            fprintf(stderr, "whittle: error: ablate: unknown option '%s' (see whittle ablate --help)\n", a);
            return 2;
        }
    }
    const char *out = cli.out, *init = cli.init;
    /* the settings every stage depends on; the grid and the seeds may grow */
    wh_pl p;
    char *cfg = NULL, settings[2048], path[4096];
    int rc = wh_pl_cli_setup(&cli, &p, &cfg, NULL, settings, sizeof(settings));
    if (rc) return rc;
    if (wh_pl_settings(out, settings)) {
        free(cfg);
        return 1;
    }
    const int nc = g.n[0] * g.n[1] * g.n[2];
    printf("ablate: %d combinations x %d seeds, %s, budget %s, data %s -> %s\n", nc, seeds,
           init ? init : cli.cfg_path ? cli.cfg_path : cli.model, cli.budget, cli.data, out);
    fflush(stdout);

    /* results: [combination][seed] */
    double *m_pruned = malloc((size_t)nc * seeds * sizeof(double)),
           *m_final = malloc((size_t)nc * seeds * sizeof(double));
    wh_pl_row *r_final = calloc((size_t)nc * seeds, sizeof(wh_pl_row));
    /* per scheduler and seed: the sparse model's mAP and share of |gamma| < 1e-2 */
    double *m_sparse = malloc((size_t)g.n[0] * seeds * sizeof(double)),
           *z_sparse = malloc((size_t)g.n[0] * seeds * sizeof(double));
    if (!m_pruned || !m_final || !r_final || !m_sparse || !z_sparse) {
        fprintf(stderr, "whittle: error: out of memory\n");
        rc = 1;
    }
    char d_base[4096], c_base[4096];
    if (wh_pl_fmt(d_base, sizeof(d_base), "%s/baseline", out)) rc = 1;
    if (init ? wh_pl_fmt(c_base, sizeof(c_base), "%s", init) : wh_pl_fmt(c_base, sizeof(c_base), "%s/last.h5", d_base))
        rc = 1;
    wh_pl_row base;
    const wh_pl_stage st_base = {.kind = WH_PL_BASELINE, .name = "baseline", .dir = d_base, .init = init, .seed = 1};
    if (!rc) rc = wh_pl_train(&p, &st_base, &base);
    for (int s = 1; !rc && s <= seeds; s++)
        for (int a = 0; !rc && a < g.n[0]; a++) {
            char spec[256], sa[128], d_sp[4096], c_sp[4096], name[64];
            if (strchr(g.v[0][a], ':') ? wh_pl_fmt(spec, sizeof(spec), "%s", g.v[0][a])
                                       : wh_pl_fmt(spec, sizeof(spec), "%s:s=%g", g.v[0][a], p.b.s))
                rc = 1;
            wh__slug(g.v[0][a], sa, sizeof(sa));
            if (wh_pl_fmt(d_sp, sizeof(d_sp), "%s/sparse-%s-s%d", out, sa, s)) rc = 1;
            if (wh_pl_fmt(c_sp, sizeof(c_sp), "%s/last.h5", d_sp)) rc = 1;
            if (wh_pl_fmt(name, sizeof(name), "sparse %s s%d", sa, s)) rc = 1;
            const wh_pl_stage st_sp = {
                .kind = WH_PL_SPARSE, .name = name, .dir = d_sp, .init = c_base, .sched = spec, .seed = (uint64_t)s};
            wh_pl_row row;
            rc = wh_pl_train(&p, &st_sp, &row);
            m_sparse[(size_t)a * seeds + (s - 1)] = row.map;
            z_sparse[(size_t)a * seeds + (s - 1)] = wh__below_1e2(d_sp);
            for (int b = 0; !rc && b < g.n[1]; b++) {
                char sb[128], d_pr[4096], c_pr[4096], pname[64];
                wh__slug(g.v[1][b], sb, sizeof(sb));
                if (wh_pl_fmt(d_pr, sizeof(d_pr), "%s/pruned-%s-%s-s%d", out, sa, sb, s)) rc = 1;
                if (wh_pl_fmt(c_pr, sizeof(c_pr), "%s/pruned.h5", d_pr)) rc = 1;
                if (wh_pl_fmt(pname, sizeof(pname), "pruned %s %s s%d", sa, sb, s)) rc = 1;
                wh_pl_row prow;
                rc = wh_pl_prune(&p, pname, c_sp, g.v[1][b], d_pr, &prow);
                for (int c = 0; !rc && c < g.n[2]; c++) {
                    const int k = (a * g.n[1] + b) * g.n[2] + c;
                    char sc[128], d_ft[4096], fname[64];
                    wh__slug(g.v[2][c], sc, sizeof(sc));
                    if (wh_pl_fmt(d_ft, sizeof(d_ft), "%s/ft-%s-%s-%s-s%d", out, sa, sb, sc, s)) rc = 1;
                    if (wh_pl_fmt(fname, sizeof(fname), "ft %s %s %s s%d", sa, sb, sc, s)) rc = 1;
                    const int plain = !strcmp(g.v[2][c], "none");
                    const wh_pl_stage st_ft = {.kind = plain ? WH_PL_FINETUNE : WH_PL_DISTILL,
                                               .name = fname,
                                               .dir = d_ft,
                                               .init = c_pr,
                                               .teacher = c_sp,
                                               .distill = g.v[2][c],
                                               .seed = (uint64_t)s};
                    rc = wh_pl_train(&p, &st_ft, &r_final[(size_t)k * seeds + (s - 1)]);
                    m_pruned[(size_t)k * seeds + (s - 1)] = prow.map;
                    m_final[(size_t)k * seeds + (s - 1)] = r_final[(size_t)k * seeds + (s - 1)].map;
                }
            }
        }
    if (rc) {
        free(m_pruned), free(m_final), free(r_final), free(m_sparse), free(z_sparse), free(cfg);
        return rc == WH_PL_STOPPED ? 0 : 1;
    }

    /* the comparison: Markdown (printed too), CSV per run, JSON, chart */
    char *md = NULL, *csv = NULL, *js = NULL;
    size_t lmd = 0, lcsv = 0, ljs = 0;
    FILE *fm = open_memstream(&md, &lmd), *fc = open_memstream(&csv, &lcsv), *fj = open_memstream(&js, &ljs);
    const char **labels = calloc((size_t)nc, sizeof(char *));
    char *label_buf = calloc((size_t)nc, 96);
    double *mean = calloc((size_t)nc, sizeof(double)), *lo = calloc((size_t)nc, sizeof(double)),
           *hi = calloc((size_t)nc, sizeof(double));
    if (!fm || !fc || !fj || !labels || !label_buf || !mean || !lo || !hi) {
        fprintf(stderr, "whittle: error: out of memory\n");
        rc = 1;
    }
    if (!rc) {
        fprintf(fm,
                "Baseline: %s %s %.4f, %.0f parameters, %.3f conv GFLOPs. %d seed(s) per combination; "
                "mean +- sample standard deviation [min, max].\n\n",
                wh_metric_name(p.metric), wh_metric_title(p.metric), base.map, base.params, base.conv_flops / 1e9,
                seeds);
        fprintf(fm, "| sched | mAP after sparse training | share of \\|gamma\\| < 1e-2 |\n|---|---|---|\n");
        for (int a = 0; a < g.n[0]; a++) {
            double m, sd, mn, mx, zm, zsd;
            wh__stats(m_sparse + (size_t)a * seeds, seeds, &m, &sd, &mn, &mx);
            wh__stats(z_sparse + (size_t)a * seeds, seeds, &zm, &zsd, &mn, &mx);
            fprintf(fm, "| %s | %.4f +- %.4f | %.3f +- %.3f |\n", g.v[0][a], m, sd, zm, zsd);
        }
        fputc('\n', fm);
        fprintf(fm,
                "| sched | groups | distill | mAP after pruning | final mAP | per seed | parameters | conv GFLOPs | "
                "latency b1 (ms) |\n|---|---|---|---|---|---|---|---|---|\n");
        fprintf(fc, "sched,groups,distill,seed,metric,map_pruned,map_final,params,conv_flops,latency_ms_b1\n");
        fprintf(fj, "{\"metric\": \"%s\", \"baseline_map\": ", wh_metric_name(p.metric));
        wh_json_num(fj, "%.6f", base.map);
        fprintf(fj, ", \"seeds\": %d, \"runs\": [\n", seeds);
        for (int a = 0; a < g.n[0]; a++)
            for (int b = 0; b < g.n[1]; b++)
                for (int c = 0; c < g.n[2]; c++) {
                    const int k = (a * g.n[1] + b) * g.n[2] + c;
                    const double *mp = m_pruned + (size_t)k * seeds, *mf = m_final + (size_t)k * seeds;
                    const wh_pl_row *r0 = &r_final[(size_t)k * seeds];
                    double pm, psd, plo, phi, fm_, fsd, flo, fhi;
                    wh__stats(mp, seeds, &pm, &psd, &plo, &phi);
                    wh__stats(mf, seeds, &fm_, &fsd, &flo, &fhi);
                    double lat[100];
                    for (int s = 0; s < seeds; s++) lat[s] = r_final[(size_t)k * seeds + s].latency_ms;
                    double lm, lsd, llo, lhi;
                    wh__stats(lat, seeds, &lm, &lsd, &llo, &lhi);
                    fprintf(fm, "| %s | %s | %s | %.4f +- %.4f | %.4f +- %.4f [%.4f, %.4f] |", g.v[0][a], g.v[1][b],
                            g.v[2][c], pm, psd, fm_, fsd, flo, fhi);
                    for (int s = 0; s < seeds; s++) fprintf(fm, "%s%.4f", s ? " " : " ", mf[s]);
                    fprintf(fm, " | %.0f | %.3f | %.1f |\n", r0->params, r0->conv_flops / 1e9, lm);
                    for (int s = 0; s < seeds; s++) {
                        const wh_pl_row *r = &r_final[(size_t)k * seeds + s];
                        fprintf(fc, "%s,%s,%s,%d,%s,%.6f,%.6f,%.0f,%.0f,%.3f\n", g.v[0][a], g.v[1][b], g.v[2][c], s + 1,
                                wh_metric_name(p.metric), mp[s], mf[s], r->params, r->conv_flops, r->latency_ms);
                        /* the strategies are the user's words; a stage may have no number (null) */
                        fputs("  {\"sched\": ", fj);
                        wh_json_str(fj, g.v[0][a]);
                        fputs(", \"groups\": ", fj);
                        wh_json_str(fj, g.v[1][b]);
                        fputs(", \"distill\": ", fj);
                        wh_json_str(fj, g.v[2][c]);
                        fprintf(fj, ", \"seed\": %d, \"map_pruned\": ", s + 1);
                        wh_json_num(fj, "%.6f", mp[s]);
                        fputs(", \"map_final\": ", fj);
                        wh_json_num(fj, "%.6f", mf[s]);
                        fputs(", \"params\": ", fj);
                        wh_json_num(fj, "%.0f", r->params);
                        fputs(", \"conv_flops\": ", fj);
                        wh_json_num(fj, "%.0f", r->conv_flops);
                        fputs(", \"latency_ms_b1\": ", fj);
                        wh_json_num(fj, "%.3f", r->latency_ms);
                        fprintf(fj, "}%s\n", k == nc - 1 && s == seeds - 1 ? "" : ",");
                    }
                    char *lb = label_buf + (size_t)k * 96;
                    snprintf(lb, 96, "%s %s %s", g.v[0][a], g.v[1][b], g.v[2][c]);
                    labels[k] = lb;
                    mean[k] = fm_, lo[k] = flo, hi[k] = fhi;
                }
        fprintf(fj, "]}\n");
    }
    if (fm) fclose(fm);
    if (fc) fclose(fc);
    if (fj) fclose(fj);
    if (!rc) {
        wh_ctx c2;
        wh_ctx_init(&c2);
        const char *names[3] = {"ablation.md", "ablation.csv", "ablation.json"};
        const char *bufs[3] = {md, csv, js};
        const size_t lens[3] = {lmd, lcsv, ljs};
        for (int i = 0; !rc && i < 3; i++)
            if (wh_pl_path(path, sizeof(path), out, names[i]) ||
                wh_file_write_atomic(path, bufs[i], lens[i], &c2) != WH_OK)
                rc = wh_app_fail(&c2);
        char title[128];
        snprintf(title, sizeof(title), "FINAL %s MAP@0.5, %d SEED(S): MEAN AND RANGE", wh_metric_name(p.metric), seeds);
        if (!rc && (wh_pl_path(path, sizeof(path), out, "ablation.png") ||
                    wh_bars_save(path, labels, mean, lo, hi, nc, 1.0, title, "MAP", &c2) != WH_OK))
            rc = wh_app_fail(&c2);
        if (!rc) printf("\n%s\ntables: %s/ablation.md .csv .json   chart: %s/ablation.png\n", md, out, out);
    }
    free(md), free(csv), free(js), free(labels), free(label_buf), free(mean), free(lo), free(hi);
    free(m_pruned), free(m_final), free(r_final), free(m_sparse), free(z_sparse), free(cfg);
    return rc ? 1 : 0;
}
