/* The pruning report (Markdown and JSON) and the measurements it holds. */
#include "prune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "framework/core/json.h"

static double wh__now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int wh__cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

wh_status wh_prune_time_forward(wh_net *net, int runs, double *median_s, wh_ctx *ctx)
{
    *median_s = NAN;
    if (runs < 1) return wh_error(ctx, WH_ERR_ARG, "timing needs at least one run, got %d", runs);
    double *t = malloc((size_t)runs * sizeof(double));
    if (!t) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    wh_status st = wh_net_forward(net, 0, ctx); /* warm-up: first-touch, primitive caches */
    for (int r = 0; st == WH_OK && r < runs; r++) {
        const double t0 = wh__now();
        st = wh_net_forward(net, 0, ctx);
        t[r] = wh__now() - t0;
    }
    if (st == WH_OK) {
        qsort(t, (size_t)runs, sizeof(double), wh__cmp_double);
        *median_s = runs % 2 ? t[runs / 2] : 0.5 * (t[runs / 2 - 1] + t[runs / 2]);
    }
    free(t);
    return st;
}

wh_status wh_prune_output_error(const wh_net *a, const wh_net *b, double *max_abs, double *max_ref, wh_ctx *ctx)
{
    *max_abs = *max_ref = 0;
    if (a->n_layers != b->n_layers)
        return wh_error(ctx, WH_ERR_ARG, "networks of %d and %d layers", a->n_layers, b->n_layers);
    char *read = calloc((size_t)a->n_layers + 1, 1);
    if (!read) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    for (int i = 0; i < a->n_layers; i++)
        for (int k = 0; k < a->layers[i].n_in; k++)
            if (a->layers[i].in[k] >= 0) read[a->layers[i].in[k]] = 1;
    wh_status st = WH_OK;
    for (int i = 0; st == WH_OK && i < a->n_layers; i++) {
        if (read[i]) continue;
        const wh_shape sa = a->layers[i].out_shape, sb = b->layers[i].out_shape;
        if (sa.n != sb.n || sa.c != sb.c || sa.h != sb.h || sa.w != sb.w ||
            a->layers[i].out_layout != b->layers[i].out_layout) {
            st = wh_error(ctx, WH_ERR_SHAPE, "output layer %d differs in shape between the networks", i);
            break;
        }
        const size_t n = (size_t)sa.n * sa.c * sa.h * sa.w;
        for (size_t t = 0; t < n; t++) {
            const double d = fabs((double)a->layers[i].out[t] - b->layers[i].out[t]);
            if (d > *max_abs || isnan(d)) *max_abs = d;
            if (fabs(a->layers[i].out[t]) > *max_ref) *max_ref = fabs(a->layers[i].out[t]);
        }
    }
    free(read);
    return st;
}

static const char *wh__flags_text(int f, char *buf, size_t n)
{
    buf[0] = 0;
    const struct {
        int bit;
        const char *text;
    } names[] = {{WH_KEEP_ALL_BELOW, "threshold above its largest |gamma|"},
                 {WH_KEEP_MINIMUM, "raised to the minimum"},
                 {WH_KEEP_ROUNDED, "rounded up"},
                 {WH_KEEP_COUPLED, "coupled set kept channels below the threshold"},
                 {WH_KEEP_OUTVOTED, "majority vote pruned channels above the threshold"}};
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
        if (f & names[k].bit) snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", buf[0] ? "; " : "", names[k].text);
    return buf;
}

static double wh__pct(double after, double before) { return before > 0 ? 100.0 * (after - before) / before : 0.0; }

wh_status wh_prune_report(const wh_net *net, const wh_depgraph *g, const wh_prune_plan *p, const wh_prune_info *in,
                          char **markdown, char **json, wh_ctx *ctx)
{
    *markdown = *json = NULL;
    char *mb = NULL, *jb = NULL;
    size_t ml = 0, jl = 0;
    FILE *m = open_memstream(&mb, &ml), *j = open_memstream(&jb, &jl);
    if (!m || !j) {
        if (m) fclose(m);
        if (j) fclose(j);
        free(mb);
        free(jb);
        return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    }
    const wh_prune_opts *o = in->opts;
    const char *merge = o->merge == WH_MERGE_MAJORITY ? "majority" : "union";
    char mode[160];
    if (o->target_params > 0 || o->target_flops > 0)
        snprintf(mode, sizeof(mode), "budget: -%.1f %% %s, base ratios scaled by %.4f", 100 * (o->target_params > 0 ? o->target_params : o->target_flops),
                 o->target_params > 0 ? "parameters" : "conv FLOPs", p->scale);
    else
        snprintf(mode, sizeof(mode), "ratios per group");

    /* ---- Markdown ---- */
    fprintf(m, "# Pruning report\n\n");
    fprintf(m, "- source: %s\n- grouping: %s (%d groups), %s\n- coupled masks merged by %s; minimum %d channels "
               "(or %.0f %%) per layer; round-to %d; constants %s\n\n",
            in->source ? in->source : "(network)", in->grouping, p->n_groups, mode, merge, o->min_keep,
            100 * o->min_keep_frac, o->round_to > 1 ? o->round_to : 1, in->fold ? "folded" : "not folded");
    fprintf(m, "## Totals\n\n| | before | after | change |\n|---|---:|---:|---:|\n");
    fprintf(m, "| parameters | %zu | %zu | %+.1f %% |\n", p->before.params, p->after.params,
            wh__pct((double)p->after.params, (double)p->before.params));
    fprintf(m, "| conv GFLOPs | %.3f | %.3f | %+.1f %% |\n", p->before.conv_flops / 1e9, p->after.conv_flops / 1e9,
            wh__pct(p->after.conv_flops, p->before.conv_flops));
    fprintf(m, "| darknet GFLOPs | %.3f | %.3f | %+.1f %% |\n", p->before.darknet_flops / 1e9,
            p->after.darknet_flops / 1e9, wh__pct(p->after.darknet_flops, p->before.darknet_flops));
    fprintf(m, "| float32 parameters MB | %.2f | %.2f | %+.1f %% |\n", 4e-6 * (double)p->before.params,
            4e-6 * (double)p->after.params, wh__pct((double)p->after.params, (double)p->before.params));
    for (int b = 0; in->lat_runs > 0 && b < 2; b++)
        fprintf(m, "| latency batch %d (ms) | %.1f | %.1f | %+.1f %% |\n", in->lat_batch[b], 1e3 * in->lat_before[b],
                1e3 * in->lat_after[b], wh__pct(in->lat_after[b], in->lat_before[b]));
    if (in->bytes_after > 0)
        fprintf(m, "\nThe compact checkpoint takes %.2f MB on disk (network only; the source file, %.2f MB, may also "
                   "hold training state).\n",
                in->bytes_after / 1e6, in->bytes_before / 1e6);
    if (in->lat_runs > 0)
        fprintf(m, "\nLatency: median of %d forward passes after a warm-up, %d threads, OMP_WAIT_POLICY=%s. "
                   "Time ratio batch %d: %.3f, batch %d: %.3f; conv FLOP ratio %.3f.\n",
                in->lat_runs, in->lat_threads, in->wait_policy ? in->wait_policy : "(unset)", in->lat_batch[0],
                in->lat_after[0] / in->lat_before[0], in->lat_batch[1], in->lat_after[1] / in->lat_before[1],
                p->after.conv_flops / p->before.conv_flops);
    if (in->err_ref >= 0)
        fprintf(m, "\nOutput error of the compact network against the full one with the pruned gammas set to zero "
                   "(same input): max |diff| %.3g, largest output %.3g (relative %.2g). %s\n",
                in->err_abs, in->err_ref, in->err_ref > 0 ? in->err_abs / in->err_ref : 0.0,
                in->fold ? "What remains comes from zero-padded borders, where a folded constant is not constant."
                         : "Without folding the pruned channels' constants are dropped.");
    if (in->bn_images > 0)
        fprintf(m, "\nBatch-norm statistics re-estimated after the check above on %d unaugmented training images "
                   "(adaptive batch norm): pruned.h5 holds them.\n",
                in->bn_images);
    fprintf(m, "\n## Groups\n\n| group | layers | channels | kept | pruned | ratio asked | threshold |\n"
               "|---|---:|---:|---:|---:|---:|---:|\n");
    for (int k = 0; k < p->n_groups; k++) {
        int units = 0;
        for (int u = 0; u < g->n_units; u++) units += p->unit_group[u] == k;
        const int ch = p->group_channels[k], kept = p->group_kept[k];
        fprintf(m, "| %s | %d | %d | %d | %.1f %% | %.3f | %.4g |\n", p->group_name[k], units, ch, kept,
                ch ? 100.0 * (ch - kept) / ch : 0.0, p->group_ratio[k], p->group_threshold[k]);
    }
    fprintf(m, "\n## Layers\n\n| layer | group | channels | kept | note |\n|---:|---|---:|---:|---|\n");
    char note[256];
    for (int u = 0; u < g->n_units; u++) {
        const int C = g->unit_off[u + 1] - g->unit_off[u];
        fprintf(m, "| %d | %s | %d | %d | %s |\n", g->unit_layer[u], p->group_name[p->unit_group[u]], C,
                p->unit_kept[u], wh__flags_text(p->unit_flags[u], note, sizeof(note)));
    }
    int warned = 0;
    for (int u = 0; u < g->n_units; u++)
        if (p->unit_flags[u] & WH_KEEP_ALL_BELOW) {
            if (!warned++) fprintf(m, "\n## Warnings\n\n");
            fprintf(m, "- layer %d: the threshold of group %s (%.4g) is above its largest |gamma|; it keeps its %d "
                       "largest channels only by the minimum rule\n",
                    g->unit_layer[u], p->group_name[p->unit_group[u]], p->group_threshold[p->unit_group[u]],
                    p->unit_kept[u]);
        }

    /* ---- JSON ---- */
    fprintf(j, "{\n  \"source\": ");
    wh_json_str(j, in->source);
    fprintf(j, ",\n  \"grouping\": ");
    wh_json_str(j, in->grouping);
    fprintf(j, ",\n  \"merge\": \"%s\",\n  \"round_to\": %d,\n  \"min_keep\": %d,\n  \"fold\": %d,\n"
               "  \"target_params\": %g,\n  \"target_flops\": %g,\n  \"scale\": %.6f,\n",
            merge, o->round_to, o->min_keep, in->fold, o->target_params, o->target_flops, p->scale);
    fprintf(j, "  \"params\": [%zu, %zu],\n  \"conv_flops\": [%.0f, %.0f],\n  \"darknet_flops\": [%.0f, %.0f],\n",
            p->before.params, p->after.params, p->before.conv_flops, p->after.conv_flops, p->before.darknet_flops,
            p->after.darknet_flops);
    if (in->bytes_before > 0) fprintf(j, "  \"bytes\": [%.0f, %.0f],\n", in->bytes_before, in->bytes_after);
    if (in->lat_runs > 0)
        fprintf(j, "  \"latency_s\": {\"runs\": %d, \"threads\": %d, \"wait_policy\": \"%s\", \"batch\": [%d, %d], "
                   "\"before\": [%.6f, %.6f], \"after\": [%.6f, %.6f]},\n",
                in->lat_runs, in->lat_threads, in->wait_policy ? in->wait_policy : "", in->lat_batch[0],
                in->lat_batch[1], in->lat_before[0], in->lat_before[1], in->lat_after[0], in->lat_after[1]);
    fprintf(j, "  \"bn_recalibration_images\": %d,\n", in->bn_images);
    if (in->err_ref >= 0) fprintf(j, "  \"output_error\": {\"max_abs\": %.6g, \"max_ref\": %.6g},\n", in->err_abs, in->err_ref);
    fprintf(j, "  \"groups\": [\n");
    for (int k = 0; k < p->n_groups; k++) {
        fprintf(j, "    {\"name\": ");
        wh_json_str(j, p->group_name[k]);
        fprintf(j, ", \"channels\": %d, \"kept\": %d, \"ratio\": %.6f, \"threshold\": %.6g}%s\n",
                p->group_channels[k], p->group_kept[k], p->group_ratio[k], p->group_threshold[k],
                k + 1 < p->n_groups ? "," : "");
    }
    fprintf(j, "  ],\n  \"layers\": [\n");
    for (int u = 0; u < g->n_units; u++) {
        fprintf(j, "    {\"layer\": %d, \"group\": ", g->unit_layer[u]);
        wh_json_str(j, p->group_name[p->unit_group[u]]);
        fprintf(j, ", \"channels\": %d, \"kept\": %d, \"flags\": %d}%s\n", g->unit_off[u + 1] - g->unit_off[u],
                p->unit_kept[u], p->unit_flags[u], u + 1 < g->n_units ? "," : "");
    }
    fprintf(j, "  ]\n}\n");
    (void)net;
    fclose(m);
    fclose(j);
    *markdown = mb;
    *json = jb;
    return WH_OK;
}
