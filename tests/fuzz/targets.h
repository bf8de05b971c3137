/* whittle's fuzz targets: one function per parser of outside input, each
 * taking arbitrary bytes. They must return (never crash, hang, leak or read
 * out of bounds) whatever the bytes; a parse error is a normal outcome.
 *
 * The same functions serve libFuzzer (tests/fuzz/fuzz_main.c, built by
 * scripts/fuzz.sh with clang) and the regression test
 * (tests/fuzz/test_fuzz_corpus.cpp), which replays every file under
 * tests/fuzz/corpus/<name>/: the seeds and every input that once crashed.
 */
#ifndef WH_FUZZ_TARGETS_H
#define WH_FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int (*wh_fuzz_fn)(const uint8_t *data, size_t size);

typedef struct wh_fuzz_target {
    const char *name;
    wh_fuzz_fn fn;
    const char *what;
} wh_fuzz_target;

/* The targets, NULL-terminated. */
extern const wh_fuzz_target wh_fuzz_targets[];
/* The target called name, or NULL. */
const wh_fuzz_target *wh_fuzz_find(const char *name);

int wh_fuzz_cfg(const uint8_t *data, size_t size);
int wh_fuzz_image(const uint8_t *data, size_t size);
int wh_fuzz_voc(const uint8_t *data, size_t size);
int wh_fuzz_darknet_data(const uint8_t *data, size_t size);
int wh_fuzz_weights(const uint8_t *data, size_t size);
int wh_fuzz_ckpt(const uint8_t *data, size_t size);
int wh_fuzz_groups(const uint8_t *data, size_t size);
int wh_fuzz_specs(const uint8_t *data, size_t size);

#ifdef __cplusplus
}
#endif
#endif
