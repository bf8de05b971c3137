/* whittle: files read with limits, and files written safely.
 *
 * Every file of outside input (cfg, lists, labels, images) is read whole
 * through wh_file_read_all: only a regular file, and only up to a limit the
 * caller names, so /dev/zero, a FIFO or a runaway file is an error naming the
 * path, not an endless read or an allocation of the file's claimed size.
 *
 * Everything the program writes (cfg, weights, checkpoints, reports) goes to
 * a temporary name in the same folder, is flushed and synced, then renamed
 * over the final name: an interrupted run never leaves a half file there, and
 * an existing file is replaced only by a complete new one.
 */
#ifndef WH_FILEIO_H
#define WH_FILEIO_H

#include <stddef.h>

#include "framework/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits for wh_file_read_all, in bytes. */
#define WH_TEXT_MAX_BYTES ((size_t)64 << 20)   /* a cfg, .data, group or names file */
#define WH_LIST_MAX_BYTES ((size_t)1 << 30)    /* an image list or a label file (VOC's are 0.1-1 MB) */
#define WH_IMAGE_MAX_BYTES ((size_t)1 << 30)   /* an encoded image (framework/data/image.h bounds the decoded one) */

/* Reads the regular file at path whole into *buf (malloc'd, len + 1 bytes,
 * a NUL after the data) when it holds at most max_bytes; what names the kind
 * of file in the error ("cfg" for "... limit for cfg files"). */
wh_status wh_file_read_all(const char *path, size_t max_bytes, const char *what, char **buf, size_t *len,
                           wh_ctx *ctx);
/* wh_file_read_all for text: a NUL byte in the data is an error naming its
 * line (a binary file given as text would otherwise be cut there unseen). */
wh_status wh_file_read_text(const char *path, size_t max_bytes, const char *what, char **text, wh_ctx *ctx);

wh_status wh_file_write_atomic(const char *path, const void *data, size_t len, wh_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
