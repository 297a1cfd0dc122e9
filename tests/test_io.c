/* test_io.c: safetensors round trip, header validity, atomic writes that keep the
 * previous file on failure, refusal of malformed files (each with a message naming
 * the file), single-byte corruption and truncation sweeps, and .npy round trips and
 * header format. Python (if present) is used only as an extra, optional check. */
#include "harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[64];

static const char *tmp_path(const char *name) {
    static char buf[64][256]; /* a ring: each test uses fewer than 64 names */
    static int k;
    k = (k + 1) % 64;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

/* Temporaries the atomic writer left beside `path` (names starting "<base>.tmp"). */
static int leftover_temps(const char *path) {
    const char *base = strrchr(path, '/') + 1;
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s.tmp", base);
    DIR *d = opendir(g_dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix))) n++;
    if (d) closedir(d);
    return n;
}

/* SIGALRM without SA_RESTART: a call blocked in open() on a FIFO returns EINTR, so a
 * regression fails the test instead of hanging it. */
static void on_alarm(int sig) { (void)sig; }
static void arm_alarm(unsigned seconds) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm(seconds);
}

/* A safetensors file from a literal header and raw data, with the given length field. */
static void write_raw_len(const char *path, uint64_t hlen_field, const char *hdr, const void *data, size_t nd) {
    FILE *f = fopen(path, "wb");
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hlen_field >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(hdr, 1, strlen(hdr), f);
    if (nd) fwrite(data, 1, nd, f);
    fclose(f);
}
static void write_raw(const char *path, const char *hdr, const void *data, size_t nd) {
    write_raw_len(path, strlen(hdr), hdr, data, nd);
}

/* The file must be refused with CT_ERR_FORMAT and a message naming it. */
static void expect_refused(const char *path, const char *why, const char *msg_part) {
    ct_st_file *f = (ct_st_file *)1;
    ct_status st = ct_st_open(&f, path);
    CHECK(st == CT_ERR_FORMAT && f == NULL, "%s: expected refusal, got %s (%s)", why, ct_status_name(st), ct_errmsg());
    CHECK(strstr(ct_errmsg(), path) != NULL, "%s: message must name the file: %s", why, ct_errmsg());
    if (msg_part) CHECK(strstr(ct_errmsg(), msg_part) != NULL, "%s: message lacks \"%s\": %s", why, msg_part, ct_errmsg());
    if (st == CT_OK) ct_st_close(f);
}

/* fixed content used by several tests */
static float W[2][3] = {{1, -2, 3.5f}, {0.25f, 1e-8f, -7}};
static float B[4] = {0.5f, -0.5f, 1.5f, 2.5f};
static int64_t STEP[2] = {12345678901LL, -3};
static const ct_st_kv META[] = {
    {"model", "{\"arch\": \"resnet18\", \"width\": 64}"},
    {"note", "tab\there \"quoted\" back\\slash newline\n ctrl\x01 unicode \xc3\xa9\xe2\x82\xac"},
    {"step", "3"},
};

static ct_status write_sample(const char *path, int with_step) {
    ct_st_tensor t[3];
    memset(t, 0, sizeof t);
    t[0] = (ct_st_tensor){"encoder.fc.weight", CT_DTYPE_F32, 2, {2, 3}, W};
    t[1] = (ct_st_tensor){"encoder.fc.bias", CT_DTYPE_F32, 1, {4}, B};
    t[2] = (ct_st_tensor){"train.step", CT_DTYPE_I64, 1, {2}, STEP};
    return ct_st_write(path, t, with_step ? 3 : 2, META, 3);
}

static void test_roundtrip(void) {
    const char *p = tmp_path("a.safetensors");
    CHECK_OK(write_sample(p, 1));
    ct_st_file *f;
    CHECK_OK(ct_st_open(&f, p));
    if (!f) return;
    CHECK(ct_st_count(f) == 3, "3 tensors, got %d", ct_st_count(f));
    const ct_st_entry *e = ct_st_find(f, "encoder.fc.weight");
    CHECK(e && e->dtype == CT_DTYPE_F32 && e->ndim == 2 && e->shape[0] == 2 && e->shape[1] == 3 && e->numel == 6,
          "weight entry");
    float w[6];
    CHECK_OK(ct_st_read_f32(f, "encoder.fc.weight", w, 6, 2, (int64_t[]){2, 3}));
    CHECK(!memcmp(w, W, sizeof W), "weight bytes round trip");
    e = ct_st_find(f, "train.step");
    int64_t s[2];
    if (e) memcpy(s, e->data, 16);
    CHECK(e && e->dtype == CT_DTYPE_I64 && s[0] == STEP[0] && s[1] == STEP[1], "I64 round trip");
    CHECK(ct_st_find(f, "nope") == NULL, "absent name");
    for (int i = 0; i < 3; i++) {
        const char *v = ct_st_meta(f, META[i].key);
        CHECK(v && !strcmp(v, META[i].value), "metadata %s round trip: %s", META[i].key, v ? v : "(null)");
    }
    CHECK(ct_st_meta_count(f) == 3 && ct_st_meta(f, "absent") == NULL, "metadata count");
    /* wrong shape / dtype requests are refused with the tensor named */
    CHECK(ct_st_read_f32(f, "encoder.fc.weight", w, 6, 2, (int64_t[]){3, 2}) == CT_ERR_FORMAT &&
              strstr(ct_errmsg(), "encoder.fc.weight"), "transposed shape refused: %s", ct_errmsg());
    CHECK(ct_st_read_f32(f, "train.step", w, 2, 1, NULL) == CT_ERR_FORMAT, "I64 read as F32 refused");

    /* table load: all-or-nothing */
    ct_tensor_info tab[2];
    memset(tab, 0, sizeof tab);
    strcpy(tab[0].name, "encoder.fc.weight");
    tab[0].ndim = 2, tab[0].shape[0] = 2, tab[0].shape[1] = 3, tab[0].offset = 0, tab[0].numel = 6;
    strcpy(tab[1].name, "encoder.fc.bias");
    tab[1].ndim = 1, tab[1].shape[0] = 4, tab[1].offset = 6, tab[1].numel = 4;
    float buf[10] = {0};
    CHECK_OK(ct_st_read_table(f, tab, 2, buf));
    CHECK(!memcmp(buf, W, 24) && !memcmp(buf + 6, B, 16), "table load copies each tensor to its offset");
    float buf2[11] = {0};
    tab[1].shape[0] = 5, tab[1].numel = 5;
    CHECK(ct_st_read_table(f, tab, 2, buf2) == CT_ERR_FORMAT && strstr(ct_errmsg(), "encoder.fc.bias"),
          "mismatched table refused: %s", ct_errmsg());
    int untouched = 1;
    for (int i = 0; i < 11; i++) untouched &= buf2[i] == 0.0f;
    CHECK(untouched, "a refused table load must not copy anything");
    ct_st_close(f);

    /* ct_st_tensor_from_info builds writer entries from a model table */
    ct_st_tensor t;
    ct_st_tensor_from_info(&t, &tab[0], buf);
    CHECK(t.data == buf && t.ndim == 2 && t.shape[1] == 3 && !strcmp(t.name, "encoder.fc.weight"), "from_info");

    /* an empty file (no tensors, no metadata) is valid */
    CHECK_OK(ct_st_write(tmp_path("empty.safetensors"), NULL, 0, NULL, 0));
    CHECK_OK(ct_st_open(&f, tmp_path("empty.safetensors")));
    if (f) ct_st_close(f);
}

/* The layout a foreign reader needs, checked byte by byte in C, and with Python's
 * json module when /usr/bin/python3 exists (optional, never required). */
static void test_header_format(void) {
    const char *p = tmp_path("a.safetensors");
    size_t n;
    unsigned char *b = slurp(p, &n);
    CHECK(b != NULL && n > 8, "read back");
    if (!b) return;
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)b[i] << (8 * i);
    CHECK(hl % 8 == 0 && 8 + hl + 24 + 16 + 16 == n, "length field %llu consistent with %zu bytes (data aligned)",
          (unsigned long long)hl, n);
    CHECK(b[8] == '{', "header starts with '{'");
    char *h = malloc(hl + 1);
    memcpy(h, b + 8, hl);
    h[hl] = 0;
    CHECK(strstr(h, "\"encoder.fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}") != NULL,
          "weight entry text: %s", h);
    CHECK(strstr(h, "\"train.step\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[40,56]}") != NULL,
          "I64 entry text");
    CHECK(strstr(h, "\\\"quoted\\\"") && strstr(h, "\\n") && strstr(h, "\\u0001"), "escapes in metadata");
    CHECK(!memcmp(b + 8 + hl, W, 24), "data follows the header in order");
    free(h);
    free(b);
    if (access("/usr/bin/python3", X_OK) == 0) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 -c \"import json,struct,sys;b=open('%s','rb').read();n=struct.unpack('<Q',b[:8])[0];"
                 "h=json.loads(b[8:8+n]);assert h['encoder.fc.bias']['data_offsets']==[24,40];"
                 "assert h['__metadata__']['step']=='3';assert 'quoted' in h['__metadata__']['note']\" 2>&1",
                 p);
        CHECK(system(cmd) == 0, "python json could not parse our header");
    } else {
        printf("note: /usr/bin/python3 absent, skipping the optional json cross-check\n");
    }
}

static void test_atomic(void) {
    const char *p = tmp_path("ckpt.safetensors");
    CHECK_OK(write_sample(p, 0));
    size_t n0, n1;
    unsigned char *before = slurp(p, &n0);

    /* a folder that does not exist: refused, message names the path */
    const char *bad = tmp_path("no/such/dir/x.safetensors");
    CHECK(write_sample(bad, 1) == CT_ERR_IO && strstr(ct_errmsg(), bad), "missing dir: %s", ct_errmsg());

    /* a write that fails midway (file-size limit: EFBIG, as a full disk gives
     * ENOSPC): error names the path, old file intact, no temporary left */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 300; /* the new file is larger than this */
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit");
    ct_status st = write_sample(p, 1);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    CHECK(st == CT_ERR_IO && strstr(ct_errmsg(), p) && strstr(ct_errmsg(), "previous"),
          "failed write reported: %s %s", ct_status_name(st), ct_errmsg());
    unsigned char *after = slurp(p, &n1);
    CHECK(after && n0 == n1 && !memcmp(before, after, n0), "previous checkpoint intact after a failed write");
    CHECK(leftover_temps(p) == 0, "temporary removed after a failed write");
    free(after);
    /* and a successful rewrite replaces it */
    CHECK_OK(write_sample(p, 1));
    after = slurp(p, &n1);
    CHECK(after && n1 > n0, "successful write replaces the file");
    CHECK(leftover_temps(p) == 0, "no temporary after success");
    free(after);
    free(before);
}

/* Issue 20, hole 2: the temporary was always "<path>.tmp" and fopen followed a
 * symlink planted there, so another user could make us overwrite any file. */
static void test_atomic_planted_symlink(void) {
    const char *p = tmp_path("planted.safetensors"), *victim = tmp_path("victim.txt");
    spit(victim, "precious", 8);
    char planted[300];
    snprintf(planted, sizeof planted, "%s.tmp", p);
    CHECK(symlink(victim, planted) == 0, "symlink");
    CHECK_OK(write_sample(p, 1));
    size_t n = 0;
    unsigned char *v = slurp(victim, &n);
    CHECK(v && n == 8 && !memcmp(v, "precious", 8), "the file a planted <out>.tmp symlink points to is untouched");
    free(v);
    struct stat sb;
    CHECK(lstat(p, &sb) == 0 && S_ISREG(sb.st_mode), "the output is a regular file, not the planted link");
    ct_st_file *f = NULL;
    CHECK_OK(ct_st_open(&f, p));
    ct_st_close(f);
    CHECK(lstat(planted, &sb) == 0 && S_ISLNK(sb.st_mode), "the planted link itself is left alone");
    unlink(planted);
    CHECK(leftover_temps(p) == 0, "no temporary left");
    /* the .npy writer goes through the same path */
    const char *q = tmp_path("planted.npy");
    snprintf(planted, sizeof planted, "%s.tmp", q);
    CHECK(symlink(victim, planted) == 0, "symlink");
    float x[2] = {1, 2};
    CHECK_OK(ct_npy_write_f32(q, x, 1, 2));
    v = slurp(victim, &n);
    CHECK(v && n == 8 && !memcmp(v, "precious", 8), ".npy: the planted link's target is untouched");
    free(v);
    unlink(planted);
}

/* Issue 20, hole 1: writing to a device replaced the node with a regular file
 * (temporary + rename), and /dev/full reported success. The nodes are made in our
 * temporary folder (same major/minor as /dev/null and /dev/full), so a regression
 * running as root replaces those, not the system's. */
static void test_atomic_special_targets(void) {
    const char *nul = tmp_path("null"), *full = tmp_path("full");
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mknod '%s' c 1 3 2>/dev/null && mknod '%s' c 1 7 2>/dev/null", nul, full);
    if (system(cmd) != 0) {
        if (geteuid() == 0) {
            printf("note: mknod refused; skipping the device-target checks rather than risk /dev/null\n");
            nul = full = NULL;
        } else {
            nul = "/dev/null"; /* not root: a regression cannot replace them */
            full = "/dev/full";
        }
    }
    struct stat sb;
    if (nul) {
        CHECK_OK(write_sample(nul, 1));
        float x[6] = {0};
        CHECK_OK(ct_npy_write_f32(nul, x, 2, 3));
        CHECK(stat(nul, &sb) == 0 && S_ISCHR(sb.st_mode), "%s is still a character device after writing to it", nul);
        CHECK(leftover_temps(nul) == 0, "no temporary beside the device");
        ct_status st = write_sample(full, 1);
        CHECK(st == CT_ERR_IO && strstr(ct_errmsg(), full) && strstr(ct_errmsg(), "No space left"),
              "writing to a full device reports ENOSPC naming it: %s %s", ct_status_name(st), ct_errmsg());
        CHECK(stat(full, &sb) == 0 && S_ISCHR(sb.st_mode), "%s is still a character device", full);
    }

    /* a FIFO: written through when someone reads it, refused at once when nobody does */
    const char *fifo = tmp_path("out.fifo");
    CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
    arm_alarm(5);
    ct_status st = write_sample(fifo, 1);
    alarm(0);
    CHECK(st == CT_ERR_IO && strstr(ct_errmsg(), fifo) && strstr(ct_errmsg(), "no reader"),
          "a FIFO without a reader is refused: %s %s", ct_status_name(st), ct_errmsg());
    CHECK(stat(fifo, &sb) == 0 && S_ISFIFO(sb.st_mode), "the FIFO is still a FIFO");
    int rd = open(fifo, O_RDONLY | O_NONBLOCK);
    CHECK(rd >= 0, "open the FIFO for reading");
    arm_alarm(5);
    CHECK_OK(write_sample(fifo, 0)); /* small enough for the pipe buffer */
    alarm(0);
    const char *ref = tmp_path("ref.safetensors");
    CHECK_OK(write_sample(ref, 0));
    size_t nref = 0;
    unsigned char *want = slurp(ref, &nref), got[4096];
    ssize_t n = rd >= 0 ? read(rd, got, sizeof got) : -1;
    CHECK(want && n == (ssize_t)nref && !memcmp(got, want, nref), "the FIFO's reader gets the file (%zd of %zu bytes)",
          n, nref);
    free(want);
    if (rd >= 0) close(rd);
    CHECK(stat(fifo, &sb) == 0 && S_ISFIFO(sb.st_mode) && leftover_temps(fifo) == 0, "still a FIFO, no temporary");

    /* a folder is refused, and left a folder */
    const char *dir = tmp_path("a_folder");
    mkdir(dir, 0700);
    CHECK(write_sample(dir, 1) == CT_ERR_IO && strstr(ct_errmsg(), dir), "a folder target is refused: %s", ct_errmsg());
    CHECK(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode), "still a folder");
}

/* Issue 20, hole 6: opening a FIFO for reading blocked forever (eval --checkpoint,
 * train --resume, embed --labels). Every reader must refuse it at once. */
static void test_read_fifo(void) {
    const char *fifo = tmp_path("ckpt.fifo");
    CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
    ct_st_file *f = NULL;
    arm_alarm(5);
    ct_status st = ct_st_open(&f, fifo);
    alarm(0);
    CHECK(st == CT_ERR_IO && !f && strstr(ct_errmsg(), fifo) && strstr(ct_errmsg(), "not a regular file"),
          "safetensors from a FIFO: %s %s", ct_status_name(st), ct_errmsg());
    float *x = NULL;
    int32_t *y = NULL;
    int64_t r = 0, c = 0;
    arm_alarm(5);
    st = ct_npy_read_f32(fifo, &x, &r, &c);
    alarm(0);
    CHECK(st == CT_ERR_IO && !x && strstr(ct_errmsg(), fifo) && strstr(ct_errmsg(), "not a regular file"),
          ".npy from a FIFO: %s %s", ct_status_name(st), ct_errmsg());
    arm_alarm(5);
    st = ct_npy_read_i32(fifo, &y, &r);
    alarm(0);
    CHECK(st == CT_ERR_IO && !y && strstr(ct_errmsg(), "not a regular file"), ".npy labels from a FIFO: %s",
          ct_errmsg());
    CHECK(ct_st_open(&f, g_dir) == CT_ERR_IO && strstr(ct_errmsg(), "not a regular file"), "a folder: %s",
          ct_errmsg());
}

static void test_bad_files(void) {
    float d[4] = {1, 2, 3, 4};
    const char *p = tmp_path("bad.safetensors");
    spit(p, "abc", 3);
    expect_refused(p, "3-byte file", "too short");
    write_raw_len(p, (uint64_t)1 << 40, "{}", NULL, 0);
    expect_refused(p, "absurd header length", "header length");
    write_raw_len(p, 0, "{}", NULL, 0);
    expect_refused(p, "zero header length", "header length");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", d, 12);
    expect_refused(p, "truncated data", "truncated");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 16);
    expect_refused(p, "trailing data", "holds");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", d, 16);
    expect_refused(p, "gap before the first tensor", "gap");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", d, 12);
    expect_refused(p, "overlapping tensors", "overlap");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", d, 16);
    expect_refused(p, "offsets out of range", "beyond");
    write_raw(p, "{\"a\":{\"dtype\":\"F17\",\"shape\":[4],\"data_offsets\":[0,16]}}", d, 16);
    expect_refused(p, "unknown dtype", "dtype");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", d, 16);
    expect_refused(p, "shape does not match the span", "shape");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,16]}}", d, 16);
    expect_refused(p, "huge claimed shape", "too large");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}}", d, 16);
    expect_refused(p, "reversed offsets", "end before");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", d, 16);
    expect_refused(p, "negative dim", "integer");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                 "\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,16]}}", d, 16);
    expect_refused(p, "duplicate name", "duplicate");
    write_raw(p, "{\"__metadata__\":{\"k\":3},\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", d, 16);
    expect_refused(p, "non-string metadata", "strings");
    write_raw(p, "[\"a\"]   ", d, 16);
    expect_refused(p, "array instead of object", "'{'");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}x", d, 16);
    expect_refused(p, "garbage after the header", "after");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16],\"extra\":1}}", d, 16);
    expect_refused(p, "unknown key", "extra");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4]}}", d, 16);
    expect_refused(p, "missing data_offsets", "data_offsets");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}", d, 16);
    expect_refused(p, "unclosed object", NULL);
    write_raw(p, "{\"a\\ud800\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", d, 16);
    expect_refused(p, "lone surrogate", "surrogate");
    /* a header with escaped names and a valid surrogate pair is accepted */
    write_raw(p, "{\"a\\\"\\ud83d\\ude00\" : { \"dtype\" : \"F32\", \"shape\" : [ 4 ], \"data_offsets\" : [ 0, 16 ] } }  ",
              d, 16);
    ct_st_file *f = NULL;
    CHECK_OK(ct_st_open(&f, p));
    CHECK(f && ct_st_find(f, "a\"\xf0\x9f\x98\x80") != NULL, "escaped name decoded");
    if (f) ct_st_close(f);
    ct_st_file *g = (ct_st_file *)1;
    CHECK(ct_st_open(&g, tmp_path("missing.safetensors")) == CT_ERR_IO && g == NULL, "missing file: I/O error");
}

/* Every single-byte corruption of the header and every truncation of a valid
 * file: either refused with a message, or (when the byte does not matter, e.g.
 * padding turned into another space-like character the parser still accepts)
 * opened consistently. Under SANITIZE=1 this also proves no out-of-bounds read. */
static void test_corruption_sweep(void) {
    const char *p = tmp_path("a.safetensors"), *q = tmp_path("mut.safetensors");
    size_t n;
    unsigned char *b = slurp(p, &n);
    if (!b) return;
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)b[i] << (8 * i);
    int refused = 0, accepted = 0, silent = 0;
    for (size_t i = 0; i < 8 + hl; i++) {
        unsigned char keep = b[i];
        b[i] ^= 0x5A;
        spit(q, b, n);
        b[i] = keep;
        ct_st_file *f;
        ct_clear_error();
        ct_status st = ct_st_open(&f, q);
        if (st == CT_OK) accepted++, ct_st_close(f);
        else if (strstr(ct_errmsg(), q)) refused++;
        else silent++;
    }
    for (size_t len = 0; len < n; len++) {
        spit(q, b, len);
        ct_st_file *f;
        ct_status st = ct_st_open(&f, q);
        if (st == CT_OK) accepted++, ct_st_close(f);
        else if (strstr(ct_errmsg(), q)) refused++;
        else silent++;
    }
    /* Flipping a byte inside a name or metadata value yields another valid file;
     * everything structural must be refused. */
    CHECK(silent == 0, "%d corrupted files refused without naming the file", silent);
    CHECK(refused > (int)hl / 2, "only %d of %d corruptions refused", refused, (int)(hl + n));
    (void)accepted;
    free(b);
}

static void test_npy(void) {
    const char *p = tmp_path("feat.npy");
    float x[3 * 5];
    for (int i = 0; i < 15; i++) x[i] = (float)i * 0.5f - 3.0f;
    CHECK_OK(ct_npy_write_f32(p, x, 3, 5));
    size_t n;
    unsigned char *b = slurp(p, &n);
    CHECK(b && !memcmp(b, "\x93NUMPY\x01\x00", 8), "magic and version 1.0");
    if (b) {
        size_t hl = b[8] | (size_t)b[9] << 8;
        const char *want = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 5), }";
        CHECK((10 + hl) % 64 == 0 && b[10 + hl - 1] == '\n', "header padded to 64 with a final newline");
        CHECK(!memcmp(b + 10, want, strlen(want)), "header dict text");
        CHECK(n == 10 + hl + 60 && !memcmp(b + 10 + hl, x, 60), "data follows, little-endian float32");
    }
    free(b);
    float *y;
    int64_t r, c;
    CHECK_OK(ct_npy_read_f32(p, &y, &r, &c));
    CHECK(y && r == 3 && c == 5 && !memcmp(x, y, 60), "f32 round trip");
    ct_free(y);

    int32_t l32[4] = {0, 9, -1, 7};
    int64_t l64[4] = {3, 1, 4, 1};
    int32_t *l;
    int64_t nl;
    CHECK_OK(ct_npy_write_i32(tmp_path("l32.npy"), l32, 4));
    CHECK_OK(ct_npy_read_i32(tmp_path("l32.npy"), &l, &nl));
    CHECK(l && nl == 4 && !memcmp(l, l32, 16), "int32 labels round trip");
    ct_free(l);
    CHECK_OK(ct_npy_write_i64(tmp_path("l64.npy"), l64, 4));
    CHECK_OK(ct_npy_read_i32(tmp_path("l64.npy"), &l, &nl));
    CHECK(l && nl == 4 && l[0] == 3 && l[2] == 4 && l[3] == 1, "int64 labels read as int32");
    ct_free(l);
    b = slurp(tmp_path("l64.npy"), &n);
    CHECK(b && strstr((char *)b + 10, "'descr': '<i8'") && strstr((char *)b + 10, "'shape': (4,)"), "1-D header");
    free(b);

    /* refusals */
    CHECK(ct_npy_read_f32(tmp_path("l32.npy"), &y, &r, &c) == CT_ERR_FORMAT, "int labels are not features");
    b = slurp(p, &n);
    spit(tmp_path("trunc.npy"), b, n - 4);
    CHECK(ct_npy_read_f32(tmp_path("trunc.npy"), &y, &r, &c) == CT_ERR_FORMAT && strstr(ct_errmsg(), "trunc.npy"),
          "truncated .npy refused: %s", ct_errmsg());
    b[0] = 'X';
    spit(tmp_path("magic.npy"), b, n);
    CHECK(ct_npy_read_f32(tmp_path("magic.npy"), &y, &r, &c) == CT_ERR_FORMAT, "bad magic refused");
    free(b);
    if (access("/usr/bin/python3", X_OK) == 0) {
        char cmd[768];
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 -c \"import numpy as np;a=np.load('%s');assert a.shape==(3,5) and a.dtype=='<f4' "
                 "and a[2,4]==4.0;b=np.load('%s');assert b.dtype=='<i8' and list(b)==[3,1,4,1]\" 2>&1",
                 p, tmp_path("l64.npy"));
        CHECK(system(cmd) == 0, "numpy could not load our .npy files");
    }
}

int main(void) {
    strcpy(g_dir, "/tmp/ct_test_io_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_roundtrip();
    test_header_format();
    test_atomic();
    test_atomic_planted_symlink();
    test_atomic_special_targets();
    test_read_fifo();
    test_bad_files();
    test_corruption_sweep();
    test_npy();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", g_dir);
    return test_done();
}
