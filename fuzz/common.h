/* common.h: shared helpers of the libFuzzer targets in fuzz/.
 *
 * The library's readers take paths, so each target writes its input to a file
 * under a private temporary folder (tmpfs /dev/shm when present, or the folder
 * named by $CONTRAST_FUZZ_TMP, which fuzz/run.sh sets and removes afterwards) and
 * calls the reader on it. Targets also check the library's promises beyond "no
 * crash": a refusal carries a message naming the file, an accepted input has sane
 * fields. A broken promise calls fz_fail(), which aborts so libFuzzer keeps the
 * input as a crash. */
#ifndef CONTRAST_FUZZ_COMMON_H
#define CONTRAST_FUZZ_COMMON_H
#define _XOPEN_SOURCE 700 /* nftw */

#include "contrast.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fz_root[512]; /* this process's private folder */

static inline void fz_fail(const char *what, const char *detail) {
    fprintf(stderr, "fuzz invariant broken: %s: %s\n", what, detail ? detail : "");
    abort();
}

static inline int fz_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(p) != 0 && errno != ENOENT ? -1 : 0;
}

/* Removes everything below the folder `path` (and the folder itself). */
static inline void fz_rmtree(const char *path) { nftw(path, fz_rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static inline void fz_cleanup(void) {
    if (fz_root[0]) fz_rmtree(fz_root);
}

/* Creates the private folder once; call from LLVMFuzzerInitialize. */
static inline void fz_init(void) {
    if (fz_root[0]) return;
    const char *parent = getenv("CONTRAST_FUZZ_TMP");
    struct stat sb;
    if (!parent || !*parent) parent = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(fz_root, sizeof fz_root, "%s/contrast-fuzz-XXXXXX", parent);
    if (!mkdtemp(fz_root)) fz_fail("mkdtemp", strerror(errno));
    atexit(fz_cleanup);
}

/* fz_root + "/" + rel, in one of a few rotating buffers. */
static inline const char *fz_path(const char *rel) {
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", fz_root, rel);
    return buf[k];
}

static inline void fz_mkdir(const char *path) {
    if (mkdir(path, 0700) != 0 && errno != EEXIST) fz_fail("mkdir", path);
}

static inline void fz_write(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) fz_fail("fopen", path);
    if (n && fwrite(data, 1, n, f) != n) fz_fail("fwrite", path);
    if (fclose(f) != 0) fz_fail("fclose", path);
}

/* A refusal must say something and name the file (the private folder's path is in
 * every path we hand the library). Out-of-memory is allowed to be terse. */
static inline void fz_check_refusal(ct_status st, const char *where) {
    if (st == CT_OK || st == CT_ERR_NOMEM) return;
    const char *msg = ct_errmsg();
    if (!msg || !*msg) fz_fail("refusal without a message", where);
    if (!strstr(msg, fz_root)) fz_fail("refusal message does not name the file", msg);
}

/* Every target starts the same way: a private scratch folder, removed at exit.
 * (Each target is its own program, so one definition per binary.) */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fz_init();
    return 0;
}

#endif
