/* whittle: files written safely.
 *
 * Everything the program writes (cfg, weights, checkpoints, reports) goes to
 * a temporary name in the same folder, is flushed and synced, then renamed
 * over the final name: an interrupted run never leaves a half file there, and
 * an existing file is replaced only by a complete new one.
 */
#ifndef WH_FILEIO_H
#define WH_FILEIO_H

#include <stddef.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

wh_status wh_file_write_atomic(const char *path, const void *data, size_t len, wh_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
