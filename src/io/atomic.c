/* atomic.c: write a file so that readers see either the old or the new complete
 * version, never a torn one: write "<path>.tmp", fflush + fsync, rename over
 * <path> (atomic on POSIX file systems), then fsync the directory so the rename
 * itself survives a power loss. Every failure removes the temporary and says that
 * the previous file was kept. */
#include "contrast/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static void release(ct_atomic_file *af) {
    free(af->path);
    free(af->tmp);
    af->fp = NULL;
    af->path = af->tmp = NULL;
}

void ct_atomic_abort(ct_atomic_file *af) {
    if (af->fp) fclose(af->fp);
    if (af->tmp) unlink(af->tmp);
    release(af);
}

/* Aborts and records "<path>: <what>: <strerror>; previous file kept". */
static ct_status fail(ct_atomic_file *af, const char *what, int err) {
    ct_status st = ct_error(CT_ERR_IO, "%s: %s: %s; the previous file (if any) is left intact",
                            af->path ? af->path : "?", what, strerror(err));
    ct_atomic_abort(af);
    return st;
}

ct_status ct_atomic_open(ct_atomic_file *af, const char *path) {
    af->fp = NULL;
    af->path = dup_str(path);
    size_t n = strlen(path);
    af->tmp = malloc(n + 5);
    if (!af->path || !af->tmp) {
        release(af);
        return ct_error(CT_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(af->tmp, path, n);
    memcpy(af->tmp + n, ".tmp", 5);
    af->fp = fopen(af->tmp, "wb");
    if (!af->fp) {
        int err = errno;
        ct_status st = ct_error(CT_ERR_IO, "%s: cannot create temporary %s: %s; the previous file (if any) is left intact",
                                path, af->tmp, strerror(err));
        release(af); /* fopen failed: there is no temporary to remove */
        return st;
    }
    return CT_OK;
}

ct_status ct_atomic_write(ct_atomic_file *af, const void *data, size_t n) {
    if (!af->fp) return ct_error(CT_ERR_STATE, "atomic write: file not open");
    if (n && fwrite(data, 1, n, af->fp) != n) return fail(af, "write failed", errno ? errno : EIO);
    return CT_OK;
}

/* fsync the folder holding `path` so the rename is durable. */
static int sync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) dir = dup_str(".");
    else if (slash == path) dir = dup_str("/");
    else {
        size_t n = (size_t)(slash - path);
        dir = malloc(n + 1);
        if (dir) memcpy(dir, path, n), dir[n] = '\0';
    }
    if (!dir) return -1;
    int fd = open(dir, O_RDONLY);
    free(dir);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

ct_status ct_atomic_commit(ct_atomic_file *af) {
    if (!af->fp) return ct_error(CT_ERR_STATE, "atomic commit: file not open");
    errno = 0;
    if (fflush(af->fp) != 0) return fail(af, "write failed", errno ? errno : EIO);
    if (ferror(af->fp)) return fail(af, "write failed", EIO);
    if (fsync(fileno(af->fp)) != 0) return fail(af, "fsync failed", errno);
    FILE *fp = af->fp;
    af->fp = NULL;
    if (fclose(fp) != 0) return fail(af, "close failed", errno);
    if (rename(af->tmp, af->path) != 0) return fail(af, "rename failed", errno);
    /* The new file is in place; a failed directory sync only weakens durability
     * across power loss, so it is not reported as a failed write. */
    sync_dir(af->path);
    release(af);
    return CT_OK;
}
