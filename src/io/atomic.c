/* atomic.c: write a file so that readers see either the old or the new complete
 * version, never a torn one.
 *
 * A regular (or not yet existing) target: write a temporary created exclusively in
 * the target's folder ("<path>.tmp-XXXXXX", random suffix, O_CREAT|O_EXCL|O_NOFOLLOW,
 * so a file or symlink planted under any name is never opened, and a name already
 * taken is skipped), fflush + fsync, rename over <path> (atomic on POSIX file
 * systems), then fsync the folder so the rename itself survives a power loss. Every
 * failure removes the temporary and says that the previous file was kept.
 *
 * An existing character device or FIFO (/dev/null, /dev/stdout, a pipe): written
 * through, since renaming a regular file over it would destroy the node. A FIFO
 * without a reader is refused at once (O_NONBLOCK open) rather than waited on. Any
 * other kind of target (a folder, a block device, a socket) is refused. */
#include "contrast/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Tries this many random names before giving up on creating a temporary. */
#define TMP_TRIES 100

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

/* Aborts and records what failed. Through a temporary the previous file is kept;
 * writing through a device or FIFO, what was already written is out. */
static ct_status fail(ct_atomic_file *af, const char *what, int err) {
    ct_status st;
    if (af->tmp)
        st = ct_error(CT_ERR_IO, "%s: %s: %s; the previous file (if any) is left intact", af->path ? af->path : "?",
                      what, strerror(err));
    else
        st = ct_error(CT_ERR_IO, "%s: %s: %s", af->path ? af->path : "?", what, strerror(err));
    ct_atomic_abort(af);
    return st;
}

/* Opens an existing non-regular target for writing through it (see the top). */
static ct_status open_through(ct_atomic_file *af, const struct stat *sb) {
    const char *path = af->path;
    ct_status st;
    if (!S_ISCHR(sb->st_mode) && !S_ISFIFO(sb->st_mode)) {
        st = ct_error(CT_ERR_IO, "%s: is %s; only a regular file, a character device or a FIFO can be written", path,
                      S_ISDIR(sb->st_mode) ? "a folder" : S_ISBLK(sb->st_mode) ? "a block device" : "a socket");
        release(af);
        return st;
    }
    int fd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (err == ENXIO && S_ISFIFO(sb->st_mode))
            st = ct_error(CT_ERR_IO, "%s: a FIFO with no reader; nothing written", path);
        else
            st = ct_error(CT_ERR_IO, "%s: cannot open for writing: %s", path, strerror(err));
        release(af);
        return st;
    }
    /* The path may have been swapped between stat and open: write through only
     * what is still a device or FIFO (never into a regular file in place). */
    struct stat now;
    int fl = -1;
    if (fstat(fd, &now) != 0 || !(S_ISCHR(now.st_mode) || S_ISFIFO(now.st_mode)) ||
        (fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 || !(af->fp = fdopen(fd, "wb"))) {
        close(fd);
        st = ct_error(CT_ERR_IO, "%s: cannot open for writing (it changed while being opened)", path);
        release(af);
        return st;
    }
    return CT_OK;
}

/* Six characters from [a-z0-9], different at every call. The names need not be
 * secret (O_EXCL makes a planted name harmless), only unlikely to collide. */
static void random_suffix(char out[7], const void *salt) {
    static atomic_ulong counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = ct_mix64((uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^ (uint64_t)getpid() << 40 ^
                          (uint64_t)(uintptr_t)salt ^ ct_mix64(atomic_fetch_add(&counter, 1)));
    for (int i = 0; i < 6; i++, x /= 36) out[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[x % 36];
    out[6] = '\0';
}

/* Creates "<path>.tmp-XXXXXX" exclusively, mode 0666 less the umask. */
static ct_status open_temp(ct_atomic_file *af) {
    const char *path = af->path;
    size_t n = strlen(path);
    if (!(af->tmp = malloc(n + 12))) {
        ct_status st = ct_error(CT_ERR_NOMEM, "%s: out of memory", path);
        release(af);
        return st;
    }
    int fd = -1, err = EEXIST;
    for (int t = 0; t < TMP_TRIES && fd < 0 && err == EEXIST; t++) {
        char sfx[7];
        random_suffix(sfx, af);
        memcpy(af->tmp, path, n);
        memcpy(af->tmp + n, ".tmp-", 5);
        memcpy(af->tmp + n + 5, sfx, 7);
        fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        err = fd < 0 ? errno : 0;
    }
    if (fd < 0 || !(af->fp = fdopen(fd, "wb"))) {
        if (fd >= 0) {
            err = errno;
            close(fd);
            unlink(af->tmp);
        }
        ct_status st = ct_error(CT_ERR_IO, "%s: cannot create a temporary file beside it: %s; the previous file (if "
                                           "any) is left intact",
                                path, strerror(err));
        release(af);
        return st;
    }
    return CT_OK;
}

ct_status ct_atomic_open(ct_atomic_file *af, const char *path) {
    af->fp = NULL;
    af->tmp = NULL;
    if (!(af->path = dup_str(path))) return ct_error(CT_ERR_NOMEM, "%s: out of memory", path);
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) return open_through(af, &sb);
    return open_temp(af);
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
    /* a device or FIFO has nothing to make durable (fsync there fails with EINVAL) */
    if (af->tmp && fsync(fileno(af->fp)) != 0) return fail(af, "fsync failed", errno);
    FILE *fp = af->fp;
    af->fp = NULL;
    if (fclose(fp) != 0) return fail(af, "close failed", errno);
    if (!af->tmp) {
        release(af);
        return CT_OK;
    }
    if (rename(af->tmp, af->path) != 0) return fail(af, "rename failed", errno);
    /* The new file is in place; a failed directory sync only weakens durability
     * across power loss, so it is not reported as a failed write. */
    sync_dir(af->path);
    release(af);
    return CT_OK;
}
