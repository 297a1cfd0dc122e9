/* file.c: opening a file for reading only when it is a regular file.
 *
 * open() on a FIFO blocks until a writer appears (forever, for a FIFO nobody
 * writes), and a device or socket is no checkpoint or image either. So the path is
 * checked with stat() before it is opened (opening some devices has effects), then
 * opened with O_NONBLOCK (the open itself cannot block, should the path have been
 * swapped for a FIFO in between), checked again with fstat() on the descriptor, and
 * made blocking again for the reads. */
#include "contrast/io.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *kind(mode_t m) {
    if (S_ISDIR(m)) return "a folder";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "of an unknown type";
}

static ct_status not_regular(const char *path, mode_t m) {
    return ct_error(CT_ERR_IO, "%s: not a regular file (it is %s); only regular files are read", path, kind(m));
}

ct_status ct_open_regular(const char *path, int *fd_out, int64_t *size) {
    *fd_out = -1;
    struct stat sb;
    if (stat(path, &sb) != 0) return ct_error(CT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return not_regular(path, sb.st_mode);
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return ct_error(CT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &sb) != 0) {
        int err = errno;
        close(fd);
        return ct_error(CT_ERR_IO, "%s: cannot stat: %s", path, strerror(err));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return not_regular(path, sb.st_mode);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        int err = errno;
        close(fd);
        return ct_error(CT_ERR_IO, "%s: cannot open: %s", path, strerror(err));
    }
    *fd_out = fd;
    if (size) *size = (int64_t)sb.st_size;
    return CT_OK;
}

ct_status ct_fopen_regular(const char *path, FILE **fp, int64_t *size) {
    *fp = NULL;
    int fd;
    ct_status st = ct_open_regular(path, &fd, size);
    if (st) return st;
    *fp = fdopen(fd, "rb");
    if (!*fp) {
        int err = errno;
        close(fd);
        return ct_error(CT_ERR_IO, "%s: cannot open: %s", path, strerror(err));
    }
    return CT_OK;
}
