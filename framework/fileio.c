#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

wh_status wh_file_write_atomic(const char *path, const void *data, size_t len, wh_ctx *ctx)
{
    size_t n = strlen(path);
    char *tmp = malloc(n + 16);
    if (!tmp) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    snprintf(tmp, n + 16, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        wh_status st = wh_error(ctx, WH_ERR_IO, "%s: cannot create a temporary file beside it: %s",
                                path, strerror(errno));
        free(tmp);
        return st;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            wh_status st = wh_error(ctx, WH_ERR_IO, "%s: write failed: %s", path, strerror(errno));
            close(fd);
            unlink(tmp);
            free(tmp);
            return st;
        }
        p += w;
        left -= (size_t)w;
    }
    /* mkstemp creates 0600; a written model is an ordinary user file. */
    if (fchmod(fd, 0644) != 0 || fsync(fd) != 0 || close(fd) != 0) {
        wh_status st = wh_error(ctx, WH_ERR_IO, "%s: cannot finish writing: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return st;
    }
    if (rename(tmp, path) != 0) {
        wh_status st = wh_error(ctx, WH_ERR_IO, "%s: cannot rename the finished file into place: %s",
                                path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return st;
    }
    free(tmp);
    return WH_OK;
}
