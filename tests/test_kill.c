/* test_kill.c: checkpoint safety.
 *   - `contrast train` (the binary in $CONTRAST_BIN) is SIGKILLed at seeded random
 *     moments, half of them while it writes its checkpoint (the moment
 *     checkpoint.safetensors.tmp-XXXXXX appears); after every kill the checkpoint on disk
 *     must load, never go back in epochs, and the next `--resume` from it must run
 *     (it is the next run killed; the last one runs to the end)
 *   - a checkpoint whose bytes do not match its header or the model its metadata
 *     describes (truncated, header bytes flipped, wrong shapes or dtypes, tensors
 *     missing or renamed, another architecture) is refused by
 *     ct_checkpoint_load_model with a message naming the file, nothing loaded
 *   - a checkpoint write that fails (file-size limit, as a full disk) stops the
 *     trainer with a message that names the file and says the previous one is kept,
 *     and the previous checkpoint is intact and resumable
 *   - a resume refuses metadata counters out of range and another input size
 * Runs on the first 256 Fashion-MNIST images with a width-4 CNN: epochs take tens of
 * milliseconds, so kills land in every phase (loading, training, writing). */
#include "harness.h"
#include "contrast/train.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KILLS 14

static char g_dir[256];
static const char *g_bin;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Whether a temporary of the atomic writer for `path` ("<path>.tmp-XXXXXX", random
 * suffix) exists beside it; with `remove`, deletes every one found. */
static int temp_exists(const char *path, int remove) {
    char dir[700];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) return 0;
    *slash = '\0';
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s.tmp", slash + 1);
    DIR *d = opendir(dir);
    int found = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0) continue;
        found = 1;
        if (remove) {
            char p[1100];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    if (d) closedir(d);
    return found;
}

/* Starts `contrast train` on the tiny configuration writing into `out`, resuming
 * from out/checkpoint.safetensors when `resume`; output goes to out.log. */
static pid_t start_train(const char *out, int resume, int epochs) {
    char ep[16], ckpt[600], log[600];
    snprintf(ep, sizeof ep, "%d", epochs);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", out);
    snprintf(log, sizeof log, "%s.log", out);
    char *argv[48];
    int a = 0;
    const char *fixed[] = {"train", "--data", "fashion-mnist", "--limit", "256", "--batch", "32", "--width", "4",
                           "--head-hidden", "16", "--head-out", "8", "--eval-every", "0", "--no-probe", "--quiet",
                           "--threads", "1", "--loader-threads", "1", "--lr", "0.5", "--k", "10"};
    argv[a++] = (char *)g_bin;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) argv[a++] = (char *)fixed[i];
    argv[a++] = "--epochs";
    argv[a++] = ep;
    argv[a++] = "--out";
    argv[a++] = (char *)out;
    if (resume) {
        argv[a++] = "--resume";
        argv[a++] = ckpt;
    } else {
        argv[a++] = "--overwrite"; /* a run killed before its first checkpoint may have left metrics */
    }
    argv[a] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(g_bin, argv);
        _exit(127);
    }
    return pid;
}

/* The checkpoint loads as a model; returns its train.epoch (-1 if it does not load). */
static long long checkpoint_epoch(const char *path) {
    ct_model m;
    if (ct_checkpoint_load_model(&m, path) != CT_OK) return -1;
    ct_model_free(&m);
    ct_st_file *f;
    if (ct_st_open(&f, path) != CT_OK) return -1;
    const char *e = ct_st_meta(f, "train.epoch");
    long long ep = e ? atoll(e) : -1;
    ct_st_close(f);
    return ep;
}

static void print_log(const char *out) {
    char path[600];
    snprintf(path, sizeof path, "%s.log", out);
    size_t n = 0;
    unsigned char *b = slurp(path, &n);
    if (b) {
        fprintf(stderr, "--- %s (last 1500 bytes) ---\n%.*s\n", path, (int)(n > 1500 ? 1500 : n),
                (const char *)b + (n > 1500 ? n - 1500 : 0));
        free(b);
    }
}

static void test_kills(void) {
    char out[300], ckpt[600];
    snprintf(out, sizeof out, "%s/killed", g_dir);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", out);
    ct_rng r = ct_rng_make(ct_rng_key(8, 0x4b494c4c /* "KILL" */, 0, 0));
    long long last_epoch = 0;
    int in_write = 0, loads = 0, early = 0;
    double t_start = now_s();
    double t_first = 1.5; /* seconds from start to the first checkpoint write, as observed */
    for (int k = 0; k < KILLS; k++) {
        /* odd k: kill inside the 1st, 2nd or 3rd checkpoint write of this run; even k:
         * at a uniform moment in [0, 2 * t_first) (loading, training or writing) */
        int during_write = k % 2 == 1, nth = 1 + (int)ct_rng_below(&r, 3), seen = 0, was = 0;
        if (during_write) temp_exists(ckpt, 1); /* a stale one from an earlier kill must not trigger us */
        pid_t pid = start_train(out, exists(ckpt), 1000);
        CHECK(pid > 0, "fork");
        if (pid <= 0) return;
        int status = 0, exited = 0;
        double t0 = now_s();
        double wait = during_write ? 30.0 : 2 * t_first * ct_rng_uniform(&r);
        while (now_s() - t0 < wait) {
            if (waitpid(pid, &status, WNOHANG) == pid) {
                exited = 1;
                break;
            }
            int is = during_write && temp_exists(ckpt, 0);
            if (is && !was && ++seen == 1) t_first = now_s() - t0;
            was = is;
            if (is && seen == nth) {
                in_write++;
                sleep_s(0.002 * ct_rng_uniform(&r)); /* somewhere inside the write and fsync */
                break;
            }
            sleep_s(during_write ? 0.0002 : 0.001);
        }
        if (!exited) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
        int killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        if (!killed) {
            early++;
            print_log(out);
        }
        CHECK(killed, "kill %d: train %s ended by itself (status 0x%x) before the kill", k,
              exists(ckpt) ? "resuming from its checkpoint" : "from scratch", status);
        if (exists(ckpt)) {
            long long ep = checkpoint_epoch(ckpt);
            CHECK(ep >= 0, "kill %d: the checkpoint on disk loads: %s", k, ct_errmsg());
            CHECK(ep >= last_epoch, "kill %d: checkpoint went back from epoch %lld to %lld", k, last_epoch, ep);
            if (ep >= 0) last_epoch = ep, loads++;
        }
    }
    /* the last checkpoint resumes and the run finishes */
    int final_epochs = (int)last_epoch + 2;
    pid_t pid = start_train(out, exists(ckpt), final_epochs);
    int status = 0;
    waitpid(pid, &status, 0);
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok) print_log(out);
    CHECK(ok, "the run resumed after %d kills finishes (status 0x%x)", KILLS, status);
    CHECK(checkpoint_epoch(ckpt) == final_epochs, "it ends at epoch %d (got %lld)", final_epochs,
          checkpoint_epoch(ckpt));
    CHECK(in_write >= KILLS / 2 - 1, "kills during a checkpoint write: %d of %d", in_write, KILLS / 2);
    CHECK(loads >= KILLS / 2 && last_epoch >= 2, "a checkpoint existed and loaded after %d of %d kills (epoch %lld)",
          loads, KILLS, last_epoch);
    fprintf(stderr, "test_kill: %d kills (%d while writing), %d checkpoints loaded, reached epoch %lld, %.1fs\n",
            KILLS, in_write, loads, last_epoch, now_s() - t_start);
    (void)early;
}

/* ---- checkpoints that do not match their header or their model ------------------ */

typedef struct {
    const char *drop;                     /* leave this tensor out */
    const char *rename, *to;              /* give this tensor another name */
    const char *reshape;                  /* flatten this 4-D tensor to 2-D (same bytes) */
    const char *retype;                   /* store this tensor as I32 (same bytes) */
    const char *meta_key, *meta_value;    /* override one metadata value */
} variant;

/* Rewrites `src` into `dst` with one change (a valid safetensors file). */
static ct_status write_variant(const char *src, const char *dst, variant v) {
    ct_st_file *f;
    ct_status st = ct_st_open(&f, src);
    if (st) return st;
    int n = ct_st_count(f), nm = ct_st_meta_count(f), k = 0;
    ct_st_tensor *t = calloc((size_t)n + 1, sizeof *t);
    ct_st_kv *meta = calloc((size_t)nm + 1, sizeof *meta);
    for (int i = 0; i < n; i++) {
        const ct_st_entry *e = ct_st_entry_at(f, i);
        if (v.drop && !strcmp(e->name, v.drop)) continue;
        ct_st_tensor *x = &t[k++];
        x->name = v.rename && !strcmp(e->name, v.rename) ? v.to : e->name;
        x->dtype = v.retype && !strcmp(e->name, v.retype) ? CT_DTYPE_I32 : e->dtype;
        x->ndim = e->ndim;
        memcpy(x->shape, e->shape, sizeof x->shape);
        if (v.reshape && !strcmp(e->name, v.reshape) && e->ndim == 4) {
            x->ndim = 2;
            x->shape[1] = e->shape[1] * e->shape[2] * e->shape[3];
        }
        x->data = e->data;
    }
    for (int i = 0; i < nm; i++) {
        ct_st_meta_at(f, i, &meta[i].key, &meta[i].value);
        if (v.meta_key && !strcmp(meta[i].key, v.meta_key)) meta[i].value = v.meta_value;
    }
    st = ct_st_write(dst, t, k, meta, nm);
    free(t);
    free(meta);
    ct_st_close(f);
    return st;
}

static void expect_refused(const char *path, const char *why, const char *msg_part) {
    ct_model m;
    memset(&m, 0xAB, sizeof m); /* garbage in: the loader must leave it empty on refusal */
    ct_clear_error();
    ct_status st = ct_checkpoint_load_model(&m, path);
    CHECK(st != CT_OK, "%s: loaded, expected a refusal", why);
    if (st == CT_OK) {
        ct_model_free(&m);
        return;
    }
    CHECK(strstr(ct_errmsg(), path) != NULL, "%s: the message must name the file: %s", why, ct_errmsg());
    if (msg_part)
        CHECK(strstr(ct_errmsg(), msg_part) != NULL, "%s: the message lacks \"%s\": %s", why, msg_part, ct_errmsg());
    CHECK(m.param == NULL && m.buf == NULL && m.nparams == 0, "%s: nothing loaded", why);
}

static void test_mismatched_checkpoints(void) {
    char src[600], dst[600];
    snprintf(src, sizeof src, "%s/killed/checkpoint.safetensors", g_dir);
    snprintf(dst, sizeof dst, "%s/bad.safetensors", g_dir);
    size_t n = 0;
    unsigned char *b = slurp(src, &n);
    CHECK(b && n > 1000, "a checkpoint from the kill test to corrupt");
    if (!b || n <= 1000) {
        free(b);
        return;
    }
    ct_model m;
    CHECK_OK(ct_checkpoint_load_model(&m, src));
    ct_model_free(&m);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)b[i] << (8 * i);

    /* truncated */
    size_t cuts[] = {n - 1, n - 4, n / 2, 8 + hl, 8 + hl / 2, 7, 0};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        spit(dst, b, cuts[i]);
        char why[64];
        snprintf(why, sizeof why, "truncated to %zu of %zu bytes", cuts[i], n);
        expect_refused(dst, why, NULL);
    }
    /* header bytes flipped: the length field, the opening brace, a digit of a shape */
    unsigned char *c = malloc(n);
    memcpy(c, b, n);
    c[0] ^= 0x08;
    spit(dst, c, n);
    expect_refused(dst, "bit flipped in the header length", NULL);
    memcpy(c, b, n);
    c[8] ^= 0x01;
    spit(dst, c, n);
    expect_refused(dst, "bit flipped in the opening brace", NULL);
    memcpy(c, b, n);
    char *hdr = (char *)c + 8, *shape = NULL;
    for (size_t i = 0; i + 9 < hl && !shape; i++)
        if (!memcmp(hdr + i, "\"shape\":[", 9)) shape = hdr + i + 9;
    CHECK(shape && *shape >= '1' && *shape <= '8', "found a shape to change");
    if (shape && *shape >= '1' && *shape <= '8') {
        *shape += 1; /* claims more data than its offsets span */
        spit(dst, c, n);
        expect_refused(dst, "a shape that does not match its data span", NULL);
    }
    free(c);
    free(b);

    /* valid safetensors whose tensors do not match the model the metadata describes */
    struct {
        const char *why, *msg;
        variant v;
    } cases[] = {
        {"a model tensor missing", "encoder.conv2.weight", {.drop = "encoder.conv2.weight"}},
        {"a model tensor renamed", "head.0.weight", {.rename = "head.0.weight", .to = "head.0.weights"}},
        {"a conv weight stored flat", "shape", {.reshape = "encoder.conv3.weight"}},
        {"a tensor stored as I32", "F32", {.retype = "encoder.bn1.bias"}},
        {"a BN buffer missing", "running_var", {.drop = "encoder.bn4.running_var"}},
        {"metadata says width 8 (a larger model)", NULL, {.meta_key = "model.width", .meta_value = "8"}},
        {"metadata says width 2 (a smaller model)", "shape", {.meta_key = "model.width", .meta_value = "2"}},
        {"metadata says resnet18", NULL, {.meta_key = "model.encoder", .meta_value = "resnet18"}},
        {"metadata says an unknown encoder", "mlp", {.meta_key = "model.encoder", .meta_value = "mlp"}},
        {"metadata says vit without its keys", "model.depth", {.meta_key = "model.encoder", .meta_value = "vit"}},
        {"metadata says no head BN", NULL, {.meta_key = "model.head_bn", .meta_value = "0"}},
        {"metadata says 3 input channels", NULL, {.meta_key = "model.in_c", .meta_value = "3"}},
        {"metadata width not a number", "integer", {.meta_key = "model.width", .meta_value = "4x"}},
        {"metadata width huge", NULL, {.meta_key = "model.width", .meta_value = "4096"}},
        {"not a contrast checkpoint", "format", {.meta_key = "format", .meta_value = "something-else"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ct_status st = write_variant(src, dst, cases[i].v);
        CHECK(st == CT_OK, "%s: writing the variant: %s", cases[i].why, ct_errmsg());
        if (st == CT_OK) expect_refused(dst, cases[i].why, cases[i].msg);
    }
}

/* ---- a failed checkpoint write in the trainer ------------------------------------ */

/* The library runs' configuration: 256 images, width-4 CNN, writing into g_dir/full. */
static void small_config(ct_train_config *c) {
    ct_train_config_default(c);
    c->limit = 256;
    c->batch = 32;
    c->epochs = 3;
    c->stop_after = 1;
    c->eval_every = 0;
    c->final_probe = 0;
    c->threads = 1;
    c->lr = 0.5f;
    c->model.width = 4;
    c->model.head_hidden = 16;
    c->model.head_out = 8;
    snprintf(c->out, sizeof c->out, "%s/full", g_dir);
}

static void test_disk_full(void) {
    ct_train_config c;
    ct_train_result res;
    small_config(&c);
    CHECK_OK(ct_train_run(&c, &res));
    char ckpt[600];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", c.out);
    size_t n0 = 0, n1 = 0;
    unsigned char *before = slurp(ckpt, &n0);
    CHECK(before && n0 > 8192, "epoch-1 checkpoint written (%zu bytes)", n0);

    /* epoch 2 with a 8 KiB file-size limit: metrics.jsonl fits, the checkpoint does not */
    snprintf(c.resume, sizeof c.resume, "%s/full/checkpoint.safetensors", g_dir);
    c.stop_after = 2;
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 8192;
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit");
    ct_status st = ct_train_run(&c, &res);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    CHECK(st == CT_ERR_IO, "a failed checkpoint write stops the run with an I/O error (%s: %s)", ct_status_name(st),
          ct_errmsg());
    CHECK(strstr(ct_errmsg(), ckpt) && strstr(ct_errmsg(), "previous"),
          "the message names the checkpoint and says the previous one is kept: %s", ct_errmsg());
    unsigned char *after = slurp(ckpt, &n1);
    CHECK(after && n0 == n1 && !memcmp(before, after, n0), "the epoch-1 checkpoint is intact");
    CHECK(!temp_exists(ckpt, 0), "no temporary left behind");
    CHECK(checkpoint_epoch(ckpt) == 1, "it still loads, at epoch 1");
    /* with room again, resuming from it works */
    CHECK_OK(ct_train_run(&c, &res));
    CHECK(res.epochs_done == 2 && checkpoint_epoch(ckpt) == 2, "resumed to epoch 2 after the failure");
    free(before);
    free(after);
}

/* ---- checkpoint metadata that would drive the loop (issue 20, hole 4) ------------- */

/* Every integer a resume reads from the metadata is checked against its range
 * before it drives anything (a million epochs, a signed overflow of the step, a
 * frozen learning rate, an epoch that wraps to 1, AdamW's bias correction at step
 * -1), and the message names the file and the key. A checkpoint of another input
 * width (the CNN's parameters do not depend on it) is another model. */
static void test_resume_metadata(void) {
    char src[400], dst[400];
    snprintf(src, sizeof src, "%s/full/checkpoint.safetensors", g_dir); /* test_disk_full's, at epoch 2 */
    snprintf(dst, sizeof dst, "%s/meta.safetensors", g_dir);
    struct {
        const char *key, *value;
        ct_status want;
    } cases[] = {
        {"train.epoch", "-1000000", CT_ERR_FORMAT},
        {"train.epoch", "4294967297", CT_ERR_FORMAT},
        {"train.step", "9223372036854775807", CT_ERR_FORMAT},
        {"train.step", "-5", CT_ERR_FORMAT},
        {"train.step", "99999999999999999999", CT_ERR_FORMAT},
        {"train.optim_step", "-1", CT_ERR_FORMAT},
        {"whiten.epoch", "7", CT_ERR_FORMAT},
        {"model.in_w", "27", CT_ERR_ARG},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        variant v = {.meta_key = cases[i].key, .meta_value = cases[i].value};
        CHECK_OK(write_variant(src, dst, v));
        ct_train_config c;
        ct_train_result res;
        small_config(&c);
        c.stop_after = 0;
        snprintf(c.out, sizeof c.out, "%s/meta-out", g_dir);
        snprintf(c.resume, sizeof c.resume, "%s", dst);
        ct_status st = ct_train_run(&c, &res);
        const char *what = cases[i].want == CT_ERR_ARG ? "different model" : cases[i].key;
        CHECK(st == cases[i].want && strstr(ct_errmsg(), dst) && strstr(ct_errmsg(), what) && res.epochs_done == 0,
              "%s = %s: refused naming the file and the key (%s: %s)", cases[i].key, cases[i].value,
              ct_status_name(st), ct_errmsg());
    }
}

int main(void) {
    g_bin = getenv("CONTRAST_BIN");
    if (!g_bin || !*g_bin) g_bin = "./contrast";
    snprintf(g_dir, sizeof g_dir, "/tmp/contrast-test-kill-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    CHECK(access(g_bin, X_OK) == 0, "CONTRAST_BIN=%s is executable", g_bin);
    if (access(g_bin, X_OK) == 0) {
        test_kills();
        test_mismatched_checkpoints();
    }
    test_disk_full();
    test_resume_metadata();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (g_fail == 0 && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return test_done();
}
