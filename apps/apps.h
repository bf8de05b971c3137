/* whittle command line: shared helpers of the subcommands. Only apps/ prints
 * and exits; every subcommand returns its exit status. */
#ifndef WH_APPS_H
#define WH_APPS_H

#include "framework/status.h"

typedef struct wh_cmd {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
    void (*usage)(void);
} wh_cmd;

/* Prints "whittle: error: <ctx message>" and returns 1. */
int wh_app_fail(const wh_ctx *ctx);
/* Prints collected warnings to stderr. */
void wh_app_print_warnings(const wh_ctx *ctx);
/* Parses "WxH" or "S" into w, h; returns 0 on success. */
int wh_app_parse_size(const char *s, int *w, int *h);
/* Strict integer / float parsing of a flag's value; prints an error naming the flag. */
int wh_app_int(const char *flag, const char *val, int lo, int hi, int *out);
int wh_app_double(const char *flag, const char *val, double lo, double hi, double *out);
/* A flag that needs a value: returns it, or prints an error and returns NULL. */
const char *wh_app_value(int argc, char **argv, int *i);
/* Sets OpenMP threads from --threads (0 = default) and the wait policy note. */
void wh_app_threads(wh_ctx *ctx, int threads);

int wh_cmd_model(int argc, char **argv);
void wh_cmd_model_usage(void);
int wh_cmd_info(int argc, char **argv);
void wh_cmd_info_usage(void);

#endif
