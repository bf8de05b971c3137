#include "framework/core/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

wh_status wh_file_read_all(const char *path, size_t max_bytes, const char *what, char **buf, size_t *len,
                           wh_ctx *ctx)
{
    *buf = NULL;
    *len = 0;
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return wh_error(ctx, WH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    wh_status st = WH_OK;
    char *b = NULL;
    if (fstat(fd, &sb) != 0) {
        st = wh_error(ctx, WH_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        st = wh_error(ctx, WH_ERR_IO, "%s: not a regular file (%s files are read from regular files only)", path, what);
    } else if ((unsigned long long)sb.st_size > max_bytes) {
        st = wh_error(ctx, WH_ERR_IO, "%s: %lld bytes, more than the %zu MiB limit for %s files", path,
                      (long long)sb.st_size, max_bytes >> 20, what);
    } else if (!(b = malloc((size_t)sb.st_size + 1))) {
        st = wh_error(ctx, WH_ERR_NOMEM, "%s: out of memory for %lld bytes", path, (long long)sb.st_size);
    }
    /* Read to the end, not just st_size: a file that grows meanwhile is cut
     * at the size seen, one that shrinks ends early (both: len says). */
    size_t n = 0;
    while (st == WH_OK && n < (size_t)sb.st_size) {
        const ssize_t r = read(fd, b + n, (size_t)sb.st_size - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) st = wh_error(ctx, WH_ERR_IO, "%s: read failed: %s", path, strerror(errno));
        if (r <= 0) break;
        n += (size_t)r;
    }
    close(fd);
    if (st != WH_OK) {
        free(b);
        return st;
    }
    b[n] = 0;
    *buf = b;
    *len = n;
    return WH_OK;
}

wh_status wh_file_read_text(const char *path, size_t max_bytes, const char *what, char **text, wh_ctx *ctx)
{
    size_t n;
    WH_TRY(wh_file_read_all(path, max_bytes, what, text, &n, ctx));
    const char *nul = memchr(*text, 0, n);
    if (nul) {
        int line = 1;
        for (const char *p = *text; p < nul; p++) line += *p == '\n';
        free(*text);
        *text = NULL;
        return wh_error(ctx, WH_ERR_PARSE, "%s:%d: contains a NUL byte: not a text file", path, line);
    }
    return WH_OK;
}

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
