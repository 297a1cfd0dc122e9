/* test_clipuse.c: the commands that use a clip checkpoint, end to end through the
 * CLI (CONTRAST_BIN): a tiny two-tower model is trained on generated coloured
 * squares ("a red square", class red), then zeroshot (its top-1 over six colours
 * must beat chance by far), search by text (the top files are of the colour asked
 * for; the contact sheet is a PNG), search by image (the image's own caption comes
 * first), eval on a clip checkpoint (the JSON fields), --classes / --templates and
 * their errors, the text-checkpoint options refused for clip and vice versa, and embed
 * on a clip checkpoint (texts, the empty text, images: equal to ct_clip_embed_*). */
#include "harness.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256];
static const char *bin;

static const char *colour_name[6] = {"red", "green", "blue", "yellow", "black", "purple"};
static const uint8_t colour_rgb[6][3] = {{230, 20, 20}, {20, 180, 20}, {20, 40, 230},
                                         {240, 220, 20}, {10, 10, 10}, {150, 20, 170}};

/* split/<colour>_<i>.png: a square of the colour (side and place vary) on white, and
 * split/captions.tsv with two captions per image and the class column. */
static void make_split(const char *split, int per_colour, uint64_t seed) {
    char path[600];
    snprintf(path, sizeof path, "%s/data/%s", dir, split);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
    if (system(cmd)) return;
    snprintf(path, sizeof path, "%s/data/%s/captions.tsv", dir, split);
    FILE *tsv = fopen(path, "w");
    ct_rng r = ct_rng_make(ct_mix64(seed));
    for (int c = 0; c < 6; c++)
        for (int i = 0; i < per_colour; i++) {
            uint8_t px[16 * 16 * 3];
            memset(px, 255, sizeof px);
            int side = 6 + (int)ct_rng_below(&r, 8), x0 = (int)ct_rng_below(&r, (uint64_t)(17 - side)),
                y0 = (int)ct_rng_below(&r, (uint64_t)(17 - side));
            for (int y = y0; y < y0 + side; y++)
                for (int x = x0; x < x0 + side; x++) memcpy(px + (y * 16 + x) * 3, colour_rgb[c], 3);
            snprintf(path, sizeof path, "%s/data/%s/%s_%d.png", dir, split, colour_name[c], i);
            CHECK_OK(ct_png_write(path, px, 16, 16, 3));
            fprintf(tsv, "%s_%d.png\ta %s square\t%s\n", colour_name[c], i, colour_name[c], colour_name[c]);
            fprintf(tsv, "%s_%d.png\t%s\t%s\n", colour_name[c], i, colour_name[c], colour_name[c]);
        }
    fclose(tsv);
}

static char *run_out(const char *cmd, int *rc) {
    FILE *p = popen(cmd, "r");
    static char buf[65536];
    size_t n = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
    buf[n] = '\0';
    int st = p ? pclose(p) : -1;
    *rc = st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return buf;
}

static double field(const char *s, const char *key) {
    const char *p = s ? strstr(s, key) : NULL;
    return p ? atof(p + strlen(key)) : -1;
}

/* n rows of d numbers printed "%.7g ..." one row a line; the number of rows read */
static int64_t parse_rows(const char *s, float *x, int64_t n, int64_t d) {
    int64_t r = 0;
    for (; r < n && *s; r++) {
        for (int64_t j = 0; j < d; j++) {
            char *e;
            x[r * d + j] = strtof(s, &e);
            if (e == s) return r;
            s = e;
        }
        while (*s == ' ') s++;
        if (*s != '\n') return r;
        s++;
    }
    return r;
}

static double max_diff(const float *a, const float *b, int64_t n) {
    double w = 0;
    for (int64_t i = 0; i < n; i++) w = fmax(w, fabs((double)a[i] - b[i]));
    return w;
}

/* contrast embed on a clip checkpoint: texts (--text, the empty one included, and
 * --data text:FILE) through the text tower, images (--data captions:DIR) through the
 * image tower, both equal to ct_clip_embed_*; the cosine of an image and its caption
 * from embed's outputs equals the score search prints; the options refused. */
static void test_embed(const char *ck) {
    char cmd[4096];
    int rc;
    ct_clip m;
    CHECK_OK(ct_clip_load(&m, ck));
    const int64_t D = m.dim;
    const char *tx[4] = {"a blue square", "", "red", "a black square"};
    size_t len[4];
    for (int i = 0; i < 4; i++) len[i] = strlen(tx[i]);
    float ref[4 * 64], got[4 * 64];
    CHECK(D <= 64, "embedding size %lld", (long long)D);
    CHECK_OK(ct_clip_embed_texts(&m, tx, len, 4, ref));
    snprintf(cmd, sizeof cmd, "%s embed --checkpoint %s --text 'a blue square' --text '' --text red "
                              "--text 'a black square' --threads 2", bin, ck);
    char *o = run_out(cmd, &rc);
    int64_t rows = parse_rows(o, got, 4, D);
    CHECK(rc == 0 && rows == 4, "embed --text x4 (one empty) prints 4 rows of %lld: rc %d, %lld rows", (long long)D,
          rc, (long long)rows);
    CHECK(rows == 4 && max_diff(got, ref, 4 * D) < 1e-6, "embed --text = ct_clip_embed_texts (worst %g)",
          rows == 4 ? max_diff(got, ref, 4 * D) : -1.0);
    double nrm = 0, dot = 0;
    for (int64_t j = 0; j < D; j++) {
        nrm += (double)got[D + j] * got[D + j];
        dot += (double)got[D + j] * got[j];
    }
    CHECK(fabs(nrm - 1) < 1e-5 && dot < 0.9999, "the empty text is embedded (BOS EOS): unit, not a copy (|x|^2 %g, "
                                               "cos with 'a blue square' %g)", nrm, dot);
    /* only the empty text: it used to be taken for "no --text" */
    snprintf(cmd, sizeof cmd, "%s embed --checkpoint %s --text '' --threads 2 2>&1", bin, ck);
    o = run_out(cmd, &rc);
    rows = parse_rows(o, got, 1, D);
    CHECK(rc == 0 && rows == 1 && max_diff(got, ref + D, D) < 1e-6, "embed --text '' alone: %s", o);

    /* --data text:FILE to .npy */
    snprintf(cmd, sizeof cmd, "printf 'a blue square\n\nred\na black square\n' > %s/emb.txt && %s embed --checkpoint %s "
                              "--data text:%s/emb.txt --out %s/t.npy --threads 2 2>/dev/null", dir, bin, ck, dir, dir);
    rc = system(cmd);
    float *T = NULL;
    int64_t nr = 0, nc = 0;
    snprintf(cmd, sizeof cmd, "%s/t.npy", dir);
    if (rc == 0) CHECK_OK(ct_npy_read_f32(cmd, &T, &nr, &nc));
    /* text:FILE skips blank lines (docs/text.md): 3 rows */
    CHECK(rc == 0 && T && nc == D && nr == 3, "embed --data text:FILE --out: %lld x %lld", (long long)nr, (long long)nc);
    if (T && nr == 3)
        CHECK(max_diff(T, ref, D) < 1e-6 && max_diff(T + D, ref + 2 * D, 2 * D) < 1e-6,
              "text:FILE rows = ct_clip_embed_texts");
    ct_free(T);

    /* images: the test split of captions:DIR, with labels */
    snprintf(cmd, sizeof cmd, "%s embed --checkpoint %s --data captions:%s/data --out %s/i.npy --labels %s/l.npy "
                              "--threads 2 2>/dev/null", bin, ck, dir, dir, dir);
    rc = system(cmd);
    float *I = NULL;
    snprintf(cmd, sizeof cmd, "%s/i.npy", dir);
    if (rc == 0) CHECK_OK(ct_npy_read_f32(cmd, &I, &nr, &nc));
    CHECK(rc == 0 && I && nr == 18 && nc == D, "embed --data captions:DIR: 18 x %lld images", (long long)D);
    ct_caption_dataset ds;
    snprintf(cmd, sizeof cmd, "captions:%s/data", dir);
    CHECK_OK(ct_caption_dataset_load(&ds, cmd, 0, m.size));
    float *ri = ct_alloc((size_t)(ds.img.n * D) * sizeof(float));
    CHECK_OK(ct_clip_embed_images(&m, ds.img.images, ds.img.n, ri));
    if (I && nr == ds.img.n) CHECK(max_diff(I, ri, nr * D) < 1e-6, "embed images = ct_clip_embed_images");
    snprintf(cmd, sizeof cmd, "%s embed --checkpoint %s --data captions:%s/data --limit 5 --batch 2 --out %s/i5.npy "
                              "--threads 2 2>/dev/null", bin, ck, dir, dir);
    rc = system(cmd);
    float *I5 = NULL;
    int64_t n5 = 0;
    snprintf(cmd, sizeof cmd, "%s/i5.npy", dir);
    if (rc == 0) CHECK_OK(ct_npy_read_f32(cmd, &I5, &n5, &nc));
    CHECK(rc == 0 && n5 == 5 && I5 && max_diff(I5, ri, 5 * D) < 1e-6, "--limit 5 --batch 2: the first 5 rows");
    ct_free(I5);
    int32_t *lab = NULL;
    int64_t nl = 0;
    snprintf(cmd, sizeof cmd, "%s/l.npy", dir);
    CHECK_OK(ct_npy_read_i32(cmd, &lab, &nl));
    int same = lab && nl == ds.img.n;
    for (int64_t i = 0; same && i < nl; i++) same = lab[i] == ds.img.labels[i];
    CHECK(same, "--labels: the images' classes (%lld)", (long long)nl);
    ct_free(lab);
    /* the cosine of blue_0 and "a blue square" from embed = search's score */
    int64_t bi = -1;
    for (int64_t i = 0; i < ds.img.n; i++)
        if (strstr(ds.files[i], "blue_0.png")) bi = i;
    CHECK(bi >= 0, "blue_0.png among the test images");
    double cosv = 0;
    for (int64_t j = 0; I && bi >= 0 && j < D; j++) cosv += (double)I[bi * D + j] * ref[j];
    snprintf(cmd, sizeof cmd, "printf 'a blue square\n' > %s/one.txt && %s search --checkpoint %s --image "
                              "%s/data/test/blue_0.png --texts %s/one.txt --k 1 --threads 2", dir, bin, ck, dir, dir);
    o = run_out(cmd, &rc);
    double sc = atof(o);
    CHECK(rc == 0 && fabs(sc - cosv) < 6e-5, "cos(image, caption) via embed %.5f = search's %.4f", cosv, sc);
    ct_free(I);
    ct_free(ri);
    ct_caption_dataset_free(&ds);
    ct_clip_free(&m);

    /* refused: images without --out, --head, --labels for texts */
    snprintf(cmd, sizeof cmd, "%s embed --checkpoint %s --data captions:%s/data 2>&1", bin, ck, dir);
    o = run_out(cmd, &rc);
    CHECK(rc == 2 && strstr(o, "--out FILE.npy is required for images"), "images without --out: %s", o);
    snprintf(cmd, sizeof cmd, "%s embed --checkpoint %s --text x --head 2>&1", bin, ck);
    o = run_out(cmd, &rc);
    CHECK(rc == 2 && strstr(o, "--head and --no-whiten do not apply"), "--head with clip: %s", o);
    snprintf(cmd, sizeof cmd, "%s embed --checkpoint %s --text x --labels %s/l2.npy 2>&1", bin, ck, dir);
    o = run_out(cmd, &rc);
    CHECK(rc == 2 && strstr(o, "--labels is for images"), "--labels with texts: %s", o);
}

/* A copy of checkpoint `ck` at `out` with metadata `key` set to `value` (tensors kept). */
static void rewrite_meta(const char *ck, const char *out, const char *key, const char *value) {
    ct_st_file *f;
    CHECK_OK(ct_st_open(&f, ck));
    int n = ct_st_count(f), nm = ct_st_meta_count(f);
    ct_st_tensor *t = calloc((size_t)n, sizeof *t);
    ct_st_kv *kv = calloc((size_t)nm, sizeof *kv);
    for (int i = 0; i < n; i++) {
        const ct_st_entry *e = ct_st_entry_at(f, i);
        t[i].name = e->name;
        t[i].dtype = e->dtype;
        t[i].ndim = e->ndim;
        memcpy(t[i].shape, e->shape, sizeof t[i].shape);
        t[i].data = e->data;
    }
    for (int i = 0; i < nm; i++) {
        ct_st_meta_at(f, i, &kv[i].key, &kv[i].value);
        if (!strcmp(kv[i].key, key)) kv[i].value = value;
    }
    CHECK_OK(ct_st_write(out, t, n, kv, nm));
    free(t);
    free(kv);
    ct_st_close(f);
}

/* A corrupted clip checkpoint: every command gives an error naming the file, exit 1,
 * no crash: truncated, a flipped byte in the header, the towers' shapes changed in
 * the metadata (tensors then do not fit), a logit scale out of range. */
static void test_corrupt(const char *ck) {
    char bad[600], cmd[4096];
    int rc;
    struct stat sb;
    CHECK(stat(ck, &sb) == 0, "checkpoint exists");
    const char *what[5] = {"truncated", "header byte", "visual width", "text width", "logit scale"};
    for (int k = 0; k < 5; k++) {
        snprintf(bad, sizeof bad, "%s/bad%d.safetensors", dir, k);
        if (k == 0) snprintf(cmd, sizeof cmd, "head -c %lld %s > %s", (long long)sb.st_size / 2, ck, bad);
        else if (k == 1) /* byte 20 of the JSON header ('{"__metadata__":{...' or a tensor's entry) */
            snprintf(cmd, sizeof cmd, "cp %s %s && printf '\\377' | dd of=%s bs=1 seek=20 conv=notrunc 2>/dev/null", ck,
                     bad, bad);
        else cmd[0] = '\0';
        if (cmd[0]) CHECK(system(cmd) == 0, "make %s", bad);
        if (k == 2) rewrite_meta(ck, bad, "visual.model.width", "16");
        if (k == 3) rewrite_meta(ck, bad, "text.model.width", "64");
        if (k == 4) { /* the scale tensor: 9.0 (> ln 100) */
            snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c \"import struct,json,sys\n"
                                      "b=open(sys.argv[1],'rb').read(); n=struct.unpack('<Q',b[:8])[0]; "
                                      "h=json.loads(b[8:8+n]); o=h['logit_scale']['data_offsets'][0]+8+n\n"
                                      "open(sys.argv[2],'wb').write(b[:o]+struct.pack('<f',9.0)+b[o+4:])\" %s %s",
                     ck, bad);
            CHECK(system(cmd) == 0, "make %s", bad);
        }
        const char *cmds[4] = {"zeroshot --data captions:%s/data", "search --index captions:%s/data --query red",
                               "eval --data captions:%s/data", "embed --text red"};
        for (int c = 0; c < 4; c++) {
            char sub[700];
            snprintf(sub, sizeof sub, cmds[c], dir);
            snprintf(cmd, sizeof cmd, "%s %s --checkpoint %s 2>&1", bin, sub, bad);
            char *o = run_out(cmd, &rc);
            if (c == 0 || c == 2) fprintf(stderr, "  (%s, %.8s: %.200s)\n", what[k], sub, o);
            CHECK(rc == 1 && strstr(o, bad) && !strstr(o, "Sanitizer"), "%s checkpoint, %.8s: exit 1 naming the file: "
                  "rc %d: %s", what[k], sub, rc, o);
        }
    }
}

int main(void) {
    bin = getenv("CONTRAST_BIN");
    if (!bin) bin = "./contrast";
    snprintf(dir, sizeof dir, "/tmp/ct_test_clipuse_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    make_split("train", 8, 1);
    make_split("test", 3, 2);
    char cmd[4096], ck[600];
    int rc;
    snprintf(ck, sizeof ck, "%s/run/checkpoint.safetensors", dir);
    snprintf(cmd, sizeof cmd,
             "%s train --method clip --data captions:%s/data --image-size 16 --width 8 --text-width 32 "
             "--text-depth 1 --text-heads 2 --embed-dim 16 --vocab 300 --context 16 --epochs 30 --batch 16 "
             "--lr 0.003 --threads 2 --quiet --out %s/run >%s/train.log 2>&1",
             bin, dir, dir, dir);
    CHECK(system(cmd) == 0, "tiny clip training (log: %s/train.log)", dir);

    /* zeroshot on the test split: six classes, chance 1/6 */
    snprintf(cmd, sizeof cmd, "%s zeroshot --checkpoint %s --data captions:%s/data --per-class --json %s/zs.json --threads 2",
             bin, ck, dir, dir);
    char *o = run_out(cmd, &rc);
    double t1 = field(o, "zeroshot_top1 "), t5 = field(o, "zeroshot_top5 ");
    CHECK(rc == 0 && t1 >= 0.5 && t5 >= t1, "zeroshot top1 %g (chance 0.1667), top5 %g: %s", t1, t5, o);
    CHECK(strstr(o, "(chance 0.1667)") && strstr(o, "(chance 0.8333)"), "chance printed: 1/6 and 5/6");
    CHECK(strstr(o, "class\timages\ttop1\ttop5\nred\t3\t") || strstr(o, "\nred\t3\t"), "per-class table: red has 3 images");
    snprintf(cmd, sizeof cmd, "%s/zs.json", dir);
    FILE *jf = fopen(cmd, "r");
    char js[8192] = "";
    if (jf) {
        size_t n = fread(js, 1, sizeof js - 1, jf);
        js[n] = '\0';
        fclose(jf);
    }
    CHECK(fabs(field(js, "\"zeroshot_top1\": ") - t1) < 1e-4 && strstr(js, "\"n_classes\": 6") &&
              strstr(js, "{\"class\": \"purple\", \"n\": 3,"),
          "--json holds the same numbers and the per-class rows: %s", js);

    /* --classes with a distractor, --templates of one prompt; errors name file:line */
    snprintf(cmd, sizeof cmd, "printf 'red\\ngreen\\nblue\\nyellow\\nblack\\npurple\\norange\\n' > %s/cls.txt && "
                              "printf 'a {} square\\n' > %s/tpl.txt && %s zeroshot --checkpoint %s --data captions:%s/data "
                              "--classes %s/cls.txt --templates %s/tpl.txt --threads 2",
             dir, dir, bin, ck, dir, dir, dir);
    o = run_out(cmd, &rc);
    CHECK(rc == 0 && strstr(o, "7 classes, 1 templates") && strstr(o, "(chance 0.1429)"), "--classes, --templates: %s", o);
    snprintf(cmd, sizeof cmd, "printf 'red\\ngreen\\n' > %s/cls2.txt && %s zeroshot --checkpoint %s --data captions:%s/data "
                              "--classes %s/cls2.txt 2>&1", dir, bin, ck, dir, dir);
    o = run_out(cmd, &rc);
    CHECK(rc == 1 && strstr(o, "cls2.txt: no line names class 'blue'"), "a data class missing from --classes: %s", o);
    snprintf(cmd, sizeof cmd, "printf 'a {} square\\nno slot\\n' > %s/tpl2.txt && %s zeroshot --checkpoint %s "
                              "--data captions:%s/data --templates %s/tpl2.txt 2>&1", dir, bin, ck, dir, dir);
    o = run_out(cmd, &rc);
    CHECK(rc == 1 && strstr(o, "tpl2.txt:2: a template holds exactly one {}"), "bad template named: %s", o);

    /* search by text: of the test split's 18 images (3 red), the first is red, and most of the top 3 */
    snprintf(cmd, sizeof cmd, "%s search --checkpoint %s --index captions:%s/data --query 'a red square' --k 3 "
                              "--out %s/top.png --tile 32 --threads 2", bin, ck, dir, dir);
    o = run_out(cmd, &rc);
    int red = 0;
    for (const char *p = o; (p = strstr(p, "\tred_")); p++) red++;
    CHECK(rc == 0 && red >= 2 && strstr(o, "\tred_") == strchr(o, '\t'), "search 'a red square': red files on top: %s", o);
    snprintf(cmd, sizeof cmd, "%s/top.png", dir);
    struct stat sb;
    CHECK(stat(cmd, &sb) == 0 && sb.st_size > 100, "contact sheet written");
    /* search by image: its colour's captions first */
    snprintf(cmd, sizeof cmd, "%s search --checkpoint %s --index captions:%s/data --image %s/data/test/blue_0.png --k 2 "
                              "--threads 2", bin, ck, dir, dir);
    o = run_out(cmd, &rc);
    CHECK(rc == 0 && strstr(o, "\tblue\n") && strstr(o, "\ta blue square\n"), "image -> its captions: %s", o);
    snprintf(cmd, sizeof cmd, "printf 'a green square\\na yellow square\\na black square\\n' > %s/texts.txt && "
                              "%s search --checkpoint %s --image %s/data/test/black_1.png --texts %s/texts.txt --k 1",
             dir, bin, ck, dir, dir);
    o = run_out(cmd, &rc);
    CHECK(rc == 0 && strstr(o, "\ta black square\n"), "image -> --texts: %s", o);
    /* text-only options refused for clip, clip-only options for text checkpoints */
    snprintf(cmd, sizeof cmd, "%s search --checkpoint %s --index x --build-index text:y 2>&1", bin, ck);
    o = run_out(cmd, &rc);
    CHECK(rc == 2 && strstr(o, "--build-index is for text checkpoints"), "--build-index with clip refused: %s", o);
    snprintf(cmd, sizeof cmd, "%s search --checkpoint %s --index captions:%s/data --out x.png --image y.png 2>&1", bin, ck, dir);
    o = run_out(cmd, &rc);
    CHECK(rc == 2, "--out without --query refused: %s", o);

    /* eval on a clip checkpoint: both splits, zero-shot and R@k with chance */
    snprintf(cmd, sizeof cmd, "%s eval --checkpoint %s --data captions:%s/data --json --threads 2", bin, ck, dir);
    o = run_out(cmd, &rc);
    double e1 = field(o, "\"test\": {\"n_images\": 18, \"n_texts\": 12, \"n_classes\": 6, \"zeroshot_top1\": ");
    CHECK(rc == 0 && fabs(e1 - t1) < 1e-4, "eval's test zero-shot = zeroshot's (%g vs %g): %s", e1, t1, o);
    CHECK(strstr(o, "\"train\": {\"n_images\": 48, \"n_texts\": 12,") && strstr(o, "\"t2i_r10\": ") &&
              strstr(o, "\"chance_i2t_r1\": "),
          "eval: train split and R@k fields");
    double r10 = field(o, "\"t2i_r10\": "), c10 = field(o, "\"chance_t2i_r10\": ");
    CHECK(r10 > c10 && c10 > 0, "text->image R@10 %g above chance %g", r10, c10);

    test_embed(ck);
    test_corrupt(ck);

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (!g_fail && system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    return test_done();
}
