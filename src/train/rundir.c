/* rundir.c: the run folder a training run writes into, claimed before the first
 * step so that a bad --out costs nothing and two runs never mix their files.
 *
 *   - the default name runs/<timestamp> is made with mkdir, which fails if it exists:
 *     two runs started in the same second take runs/<timestamp> and -2;
 *   - <dir>/.lock is flock'ed for the whole run: a second run into the folder is
 *     refused; the kernel releases the lock when the process ends, even killed, so
 *     a stale .lock file never blocks a resume;
 *   - creating .lock is also the check that the folder can be written;
 *   - a folder with other files is another run's: refused unless the run resumes
 *     (and then metrics.jsonl is cut back to the checkpoint's epoch) or overwrites. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The files a run writes (besides .lock). */
static const char *const run_files[] = {"checkpoint.safetensors", "metrics.jsonl", "eval.json"};

/* mkdir -p of path's parent folders (errors surface at the final mkdir). */
static void make_parents(const char *path) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(tmp, 0755);
        *p = '/';
    }
}

/* A new folder runs/<timestamp>, or runs/<timestamp>-N when taken. */
static ct_status make_default(run_dir *d) {
    char base[64];
    time_t t = time(NULL);
    struct tm tmv;
    localtime_r(&t, &tmv);
    strftime(base, sizeof base, "runs/%Y%m%d-%H%M%S", &tmv);
    make_parents(base);
    for (int i = 1; i <= 1000; i++) {
        if (i == 1) snprintf(d->dir, sizeof d->dir, "%s", base);
        else snprintf(d->dir, sizeof d->dir, "%s-%d", base, i);
        if (mkdir(d->dir, 0755) == 0) {
            d->created = 1;
            return CT_OK;
        }
        if (errno != EEXIST) return ct_error(CT_ERR_IO, "%s: cannot create the run folder: %s", d->dir, strerror(errno));
    }
    return ct_error(CT_ERR_IO, "%s: 1000 run folders of this second exist already", base);
}

/* c->out made if missing; refused if it is not a folder. */
static ct_status make_named(run_dir *d, const char *out) {
    struct stat sb;
    if (strlen(out) >= sizeof d->dir - 16) return ct_error(CT_ERR_ARG, "%.64s...: run folder name too long", out);
    snprintf(d->dir, sizeof d->dir, "%s", out);
    if (stat(out, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) return ct_error(CT_ERR_IO, "%s: exists and is not a folder; choose another --out", out);
        return CT_OK;
    }
    make_parents(out);
    if (mkdir(out, 0755) == 0) d->created = 1;
    else if (errno != EEXIST) return ct_error(CT_ERR_IO, "%s: cannot create the run folder: %s", out, strerror(errno));
    return CT_OK;
}

/* Opens and flocks <dir>/.lock: proves the folder is writable and no other run uses it. */
static ct_status lock_dir(run_dir *d) {
    char path[600];
    snprintf(path, sizeof path, "%s/.lock", d->dir);
    for (int tries = 0; tries < 8; tries++) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
            return ct_error(CT_ERR_IO, "%s: cannot write in the run folder (creating %s: %s)", d->dir, path,
                            strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB)) {
            int e = errno;
            close(fd);
            if (e == EWOULDBLOCK)
                return ct_error(CT_ERR_STATE, "%s: another run is writing into this folder (%s is locked)", d->dir,
                                path);
            return ct_error(CT_ERR_IO, "%s: cannot lock %s: %s", d->dir, path, strerror(e));
        }
        /* the lock holds only if the name still refers to the file locked (a run ending
         * unlinks it: then lock the new one) */
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
            d->lock_fd = fd;
            return CT_OK;
        }
        close(fd);
    }
    return ct_error(CT_ERR_IO, "%s: could not take %s (it kept changing)", d->dir, path);
}

/* The first entry of dir other than . .. .lock, or NULL (into name, 256 bytes). */
static const char *first_entry(const char *dir, char *name) {
    DIR *dp = opendir(dir);
    if (!dp) return NULL;
    const char *found = NULL;
    struct dirent *e;
    while (!found && (e = readdir(dp))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, ".lock")) continue;
        snprintf(name, 256, "%s", e->d_name);
        found = name;
    }
    closedir(dp);
    return found;
}

static ct_status remove_run_files(const run_dir *d) {
    char path[600];
    for (size_t i = 0; i < sizeof run_files / sizeof run_files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", d->dir, run_files[i]);
        if (unlink(path) && errno != ENOENT)
            return ct_error(CT_ERR_IO, "%s: cannot remove the previous run's file: %s", path, strerror(errno));
    }
    return CT_OK;
}

/* metrics.jsonl without the lines of epochs after `epoch` (rewritten atomically,
 * only when there are any). */
static ct_status cut_metrics(const run_dir *d, int epoch) {
    char path[600], line[4096];
    snprintf(path, sizeof path, "%s/metrics.jsonl", d->dir);
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT ? CT_OK : ct_error(CT_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *keep = malloc(cap);
    int dropped = 0;
    ct_status st = keep ? CT_OK : CT_ERR_NOMEM;
    while (!st && fgets(line, sizeof line, f)) {
        const char *e = strstr(line, "\"epoch\": ");
        if (e && atoi(e + 9) > epoch) {
            dropped++;
            continue;
        }
        size_t n = strlen(line);
        if (len + n > cap) {
            char *k2 = realloc(keep, cap = 2 * (len + n));
            if (!k2) st = CT_ERR_NOMEM;
            else keep = k2;
        }
        if (!st) memcpy(keep + len, line, n), len += n;
    }
    fclose(f);
    if (!st && dropped) {
        ct_atomic_file af;
        if (!(st = ct_atomic_open(&af, path)) && !(st = ct_atomic_write(&af, keep, len))) st = ct_atomic_commit(&af);
    }
    free(keep);
    return st;
}

ct_status run_dir_claim(run_dir *d, const ct_train_config *c, int resume_epoch) {
    memset(d, 0, sizeof *d);
    d->lock_fd = -1;
    if (c->overwrite && c->resume[0])
        return ct_error(CT_ERR_ARG, "train: overwrite (--overwrite) and resume (--resume) exclude each other");
    ct_status st = c->out[0] ? make_named(d, c->out) : make_default(d);
    if (!st) st = lock_dir(d);
    char name[256];
    const char *other = st ? NULL : first_entry(d->dir, name);
    if (!st && other && !c->resume[0] && !c->overwrite)
        st = ct_error(CT_ERR_ARG,
                      "%s: the folder holds files of another run (e.g. '%s'); resume it (--resume), choose another "
                      "--out, or replace that run (--overwrite)",
                      d->dir, other);
    if (!st && c->overwrite) st = remove_run_files(d);
    if (!st && c->resume[0]) st = cut_metrics(d, resume_epoch);
    if (st) run_dir_release(d, 1);
    return st;
}

void run_dir_release(run_dir *d, int failed) {
    if (d->lock_fd >= 0) {
        char path[600];
        snprintf(path, sizeof path, "%s/.lock", d->dir);
        unlink(path); /* while still locked: a run that opened it meanwhile sees the name gone and retries */
        close(d->lock_fd);
        d->lock_fd = -1;
    }
    if (failed && d->created) rmdir(d->dir); /* only if empty: a run's files stay */
    d->created = 0;
}
