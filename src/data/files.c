/* files.c: file-system questions the dataset readers ask (dataset.c, folder.c). */
#include "data_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

int ct__file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int ct__dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

ct_status ct__file_size(const char *path, int64_t *size) {
    struct stat st;
    if (stat(path, &st) != 0) return ct_error(CT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return ct_error(CT_ERR_IO, "%s: not a regular file (it is %s); only regular files are read", path,
                        S_ISDIR(st.st_mode) ? "a folder" : S_ISFIFO(st.st_mode) ? "a FIFO" : "a device or socket");
    *size = (int64_t)st.st_size;
    return CT_OK;
}
