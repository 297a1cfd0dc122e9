/* test_clip.c: CLIP training (contrast train --method clip) and the ct_clip API on a
 * small captions:DIR made here: 16 PNGs, 8 colours x 2 sizes, each with its caption
 * ("a big red square", "a small red square").
 *   - the logit scale's gradient points the right way (aligned pairs: raise it;
 *     mismatched: lower it) and the scale is clamped to [0, ln 100] after a step
 *   - a short run learns: in-batch top-1 both ways beats chance, the scale rises
 *   - the checkpoint loads with ct_clip_load; its embeddings are unit length and
 *     retrieve each training image's caption better than chance
 *   - resume: 2 epochs == 1 epoch + resume 1 epoch, byte for byte
 *   - the held-out split is never read (DIR/test/ names a missing file)
 *   - every clip option works (vit, mean pooling, sizes) and bad configurations are
 *     refused with a message */
#include "harness.h"

#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256], data[400];
static const char *bin;

static const char *colour_name[8] = {"red", "green", "blue", "yellow", "black", "cyan", "orange", "purple"};
static const uint8_t colour_rgb[8][3] = {{220, 20, 20},  {20, 180, 20}, {20, 40, 220},  {240, 220, 20},
                                         {10, 10, 10},   {20, 220, 220}, {250, 140, 0}, {140, 30, 160}};

/* DIR/train/: 16 images and captions.tsv; DIR/test/: a captions.tsv naming a missing file. */
static int make_data(const char *dir) {
    char path[600];
    snprintf(path, sizeof path, "%s/train", dir);
    if (mkdir(dir, 0755) || mkdir(path, 0755)) return -1;
    snprintf(path, sizeof path, "%s/test", dir);
    if (mkdir(path, 0755)) return -1;
    snprintf(path, sizeof path, "%s/test/captions.tsv", dir);
    FILE *t = fopen(path, "w");
    if (!t) return -1;
    fprintf(t, "missing.png\ta held-out image that does not exist\n");
    fclose(t);
    snprintf(path, sizeof path, "%s/train/captions.tsv", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    uint8_t px[16 * 16 * 3];
    for (int i = 0; i < 16; i++) {
        int c = i % 8, big = i < 8;
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 16; x++) {
                int in = big || (x >= 4 && x < 12 && y >= 4 && y < 12);
                for (int k = 0; k < 3; k++) px[(y * 16 + x) * 3 + k] = in ? colour_rgb[c][k] : 255;
            }
        char name[64];
        snprintf(name, sizeof name, "img%02d.png", i);
        snprintf(path, sizeof path, "%s/train/%s", dir, name);
        if (ct_png_write(path, px, 16, 16, 3)) return -1;
        fprintf(f, "%s\ta %s %s square\n", name, big ? "big" : "small", colour_name[c]);
    }
    fclose(f);
    return 0;
}

/* Small towers, 16 x 16 images, the whole set as one batch. */
#define ARGS "train --method clip --batch 16 --image-size 16 --width 8 --text-width 32 --text-depth 1 " \
             "--text-heads 2 --embed-dim 16 --vocab 300 --context 12 --threads 1 --quiet"

static int run(const char *fmt, const char *extra, const char *out) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s " ARGS " --data captions:%s %s --out %s/%s %s", bin, data, extra, tmpdir, out, fmt);
    return system(cmd);
}

/* The numbers `key` of metrics.jsonl's line for epoch `epoch` (1-based); -1 when absent. */
static double metric(const char *out, int epoch, const char *key) {
    char path[600], line[2048], pat[64];
    snprintf(path, sizeof path, "%s/%s/metrics.jsonl", tmpdir, out);
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    FILE *f = fopen(path, "r");
    double v = -1;
    for (int e = 1; f && fgets(line, sizeof line, f); e++) {
        if (e != epoch) continue;
        char *p = strstr(line, pat);
        if (p) v = atof(p + strlen(pat));
    }
    if (f) fclose(f);
    return v;
}

static void ckpt_path(char *buf, size_t cap, const char *out) {
    snprintf(buf, cap, "%s/%s/checkpoint.safetensors", tmpdir, out);
}

static void test_scale_gradient(void) {
    enum { N = 6, D = 5 };
    float img[N * D], txt[N * D], ds = 0;
    fill_uniform(img, N * D, 3, -1, 1);
    memcpy(txt, img, sizeof img); /* aligned pairs: a larger scale lowers the loss */
    CHECK_OK(ct_clip_loss(NULL, NULL, NULL, &ds, img, txt, 1.0f, N, D, NULL, 0));
    CHECK(ds < 0, "aligned pairs: dL/ds = %g should be < 0", ds);
    for (int i = 0; i < N; i++) /* each image against another's text */
        memcpy(txt + i * D, img + ((i + 1) % N) * D, D * sizeof(float));
    CHECK_OK(ct_clip_loss(NULL, NULL, NULL, &ds, img, txt, 1.0f, N, D, NULL, 0));
    CHECK(ds > 0, "mismatched pairs: dL/ds = %g should be > 0", ds);
}

/* The clamp, and in a run: at temperature 1 (s = 0) the first step's gradient lowers s
 * (random embeddings: a larger scale only sharpens wrong guesses), and the clamp holds
 * it at exactly 0. */
static void test_scale_clamp(void) {
    CHECK(ct_clip_clamp_scale(5.0f) == CT_CLIP_SCALE_MAX && ct_clip_clamp_scale(-0.5f) == 0.0f &&
              ct_clip_clamp_scale(2.5f) == 2.5f && fabsf(CT_CLIP_SCALE_MAX - logf(100.0f)) < 1e-6f,
          "ct_clip_clamp_scale: [0, ln 100]");
    char p[600];
    CHECK(run("", "--epochs 1 --temperature 1 --lr 0.05", "clamp_lo") == 0, "clip run at temperature 1");
    ckpt_path(p, sizeof p, "clamp_lo");
    ct_clip m;
    CHECK_OK(ct_clip_load(&m, p));
    CHECK(m.logit_scale == CT_CLIP_SCALE_MIN, "scale clamped to 0: %.9g", m.logit_scale);
    ct_clip_free(&m);
    ct_clip_free(&m); /* idempotent */
    ct_clip_free(NULL);
    CHECK(run("", "--epochs 1 --temperature 0.0101 --lr 1e-4", "scale_init") == 0, "clip run at temperature 0.0101");
    double s = metric("scale_init", 1, "logit_scale");
    CHECK(s > 4.5 && s <= CT_CLIP_SCALE_MAX, "the scale starts at ln(1/T) = 4.595 and moves little: %.6f", s);
}

/* The run learns the 16 pairs; the API's embeddings retrieve them too. */
static void test_learns(void) {
    CHECK(run("", "--epochs 40 --lr 3e-3 --warmup-epochs 2", "learn") == 0, "40-epoch clip run");
    double i2t = metric("learn", 40, "i2t_top1"), t2i = metric("learn", 40, "t2i_top1");
    double s0 = metric("learn", 1, "logit_scale"), s1 = metric("learn", 40, "logit_scale");
    CHECK(i2t > 0.5 && t2i > 0.5, "in-batch top-1 after 40 epochs: i2t %.3f t2i %.3f (chance 0.0625)", i2t, t2i);
    CHECK(s0 > 0 && s1 > 0 && s1 != s0 && fabs(s0 - logf(1 / 0.07f)) < 0.1, "the logit scale starts near ln(1/0.07) "
          "and is trained: %.4f -> %.4f", s0, s1);
    CHECK(metric("learn", 40, "loss") < metric("learn", 1, "loss"), "the loss fell");
    char p[600];
    ckpt_path(p, sizeof p, "learn");
    ct_clip m;
    CHECK_OK(ct_clip_load(&m, p));
    CHECK(m.size == 16 && m.dim == 16, "image side %d, dim %lld", m.size, (long long)m.dim);
    CHECK(m.text.cfg.width == 32 && m.text.cfg.depth == 1 && m.text.cfg.heads == 2 && m.text.cfg.pool == CT_POOL_EOT &&
              m.text.cfg.causal == 1 && m.text.cfg.context == 12 && m.image.cfg.encoder == CT_ENC_CNN &&
              m.image.cfg.width == 8,
          "the towers as configured");
    CHECK(ct_model_find(&m.image, "head.weight", 0) && ct_model_find(&m.text, "head.weight", 0) &&
              !ct_model_find(&m.image, "head.bias", 0),
          "each tower ends in one projection without bias");
    ct_caption_dataset cd;
    char spec[500];
    snprintf(spec, sizeof spec, "captions:%s", data);
    CHECK_OK(ct_caption_dataset_load(&cd, spec, 1, 16));
    int64_t n = cd.img.n;
    float *ei = malloc((size_t)n * 16 * sizeof(float)), *et = malloc((size_t)n * 16 * sizeof(float));
    const char **tx = malloc((size_t)n * sizeof *tx);
    size_t *ln = malloc((size_t)n * sizeof *ln);
    for (int64_t i = 0; i < n; i++) {
        tx[i] = cd.captions[cd.caption_start[i]];
        ln[i] = strlen(tx[i]);
    }
    CHECK_OK(ct_clip_embed_images(&m, cd.img.images, n, ei));
    CHECK_OK(ct_clip_embed_texts(&m, tx, ln, n, et));
    double norm = 0;
    for (int j = 0; j < 16; j++) norm += (double)ei[j] * ei[j];
    CHECK(fabs(norm - 1) < 1e-5, "image embeddings are unit length (%.7f)", norm);
    int hits = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t best = 0;
        double bs = -2;
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < 16; k++) s += (double)ei[i * 16 + k] * et[j * 16 + k];
            if (s > bs) bs = s, best = j;
        }
        hits += best == i;
    }
    CHECK(hits >= 6, "ct_clip embeddings: %d of %lld images nearest their own caption (chance 1)", hits, (long long)n);
    free(ei);
    free(et);
    free(tx);
    free(ln);
    ct_caption_dataset_free(&cd);
    ct_clip_free(&m);
    /* a clip checkpoint is not a one-model checkpoint, and an image checkpoint is not clip's */
    ct_model one;
    CHECK(ct_checkpoint_load_model(&one, p) == CT_ERR_FORMAT && strstr(ct_errmsg(), "ct_clip_load"),
          "ct_checkpoint_load_model refuses a clip checkpoint: %s", ct_errmsg());
}

/* Every tensor of two checkpoints, byte for byte (metadata aside). */
static int same_tensors(const char *a, const char *b) {
    ct_st_file *fa = NULL, *fb = NULL;
    int same = !ct_st_open(&fa, a) && !ct_st_open(&fb, b) && ct_st_count(fa) == ct_st_count(fb);
    for (int i = 0; same && i < ct_st_count(fa); i++) {
        const ct_st_entry *ea = ct_st_entry_at(fa, i), *eb = ct_st_find(fb, ea->name);
        same = eb && eb->nbytes == ea->nbytes && !memcmp(ea->data, eb->data, ea->nbytes);
        if (!same) fprintf(stderr, "tensor %s differs\n", ea->name);
    }
    ct_st_close(fa);
    ct_st_close(fb);
    return same;
}

static void test_resume(void) {
    const char *opts = "--epochs 2 --lr 2e-3 --warmup-epochs 0.5 --text-pool mean";
    char extra[1000], a[600], b[600];
    CHECK(run("", opts, "full") == 0, "2-epoch run");
    snprintf(extra, sizeof extra, "%s --stop-after 1", opts);
    CHECK(run("", extra, "half") == 0, "run stopped after epoch 1");
    ckpt_path(a, sizeof a, "half");
    snprintf(extra, sizeof extra, "%s --resume %s", opts, a);
    CHECK(run("", extra, "half") == 0, "resumed for epoch 2");
    ckpt_path(a, sizeof a, "full");
    ckpt_path(b, sizeof b, "half");
    CHECK(same_tensors(a, b), "2 epochs == 1 + resume 1: every tensor byte for byte");
    CHECK(metric("full", 2, "loss") == metric("half", 2, "loss"), "the same epoch-2 loss");
    ct_clip m;
    CHECK_OK(ct_clip_load(&m, a));
    CHECK(m.text.cfg.pool == CT_POOL_MEAN && m.text.cfg.causal == 0, "--text-pool mean: mean pooling, no causal mask");
    ct_clip_free(&m);
    /* a resume with another text tower or lr is refused, naming the difference */
    char cmd[1000];
    snprintf(cmd, sizeof cmd, "--epochs 3 --lr 2e-3 --warmup-epochs 0.5 --text-pool mean --text-width 64 --resume %s", a);
    CHECK(run("2>/dev/null", cmd, "other") != 0, "resume with another --text-width refused");
    snprintf(cmd, sizeof cmd, "--epochs 3 --lr 1e-3 --warmup-epochs 0.5 --text-pool mean --resume %s", a);
    CHECK(run("2>/dev/null", cmd, "other2") != 0, "resume with another --lr refused");
}

static void test_options(void) {
    char p[600];
    CHECK(run("", "--epochs 1 --image-encoder vit --patch 4 --depth 1 --heads 2 --width 16 --augment crop=off",
              "vit") == 0,
          "vit image tower, crop off");
    ckpt_path(p, sizeof p, "vit");
    ct_clip m;
    CHECK_OK(ct_clip_load(&m, p));
    CHECK(m.image.cfg.encoder == CT_ENC_VIT && m.image.cfg.width == 16 && m.image.cfg.depth == 1,
          "--image-encoder vit built");
    CHECK(ct_model_find(&m.image, "encoder.cls_token", 0) != NULL, "the ViT's tensors are there");
    ct_clip_free(&m);
    CHECK(run("", "--epochs 1 --image-encoder resnet18 --width 4 --embed-dim 24", "resnet") == 0, "resnet18 tower");
    ckpt_path(p, sizeof p, "resnet");
    CHECK_OK(ct_clip_load(&m, p));
    CHECK(m.dim == 24 && m.image.cfg.encoder == CT_ENC_RESNET18, "--embed-dim 24 with resnet18");
    ct_clip_free(&m);
    /* the held-out split: DIR/test names a missing file, and the runs above never read it */
    char spec[500];
    snprintf(spec, sizeof spec, "captions:%s", data);
    ct_caption_dataset cd;
    CHECK(ct_caption_dataset_load(&cd, spec, 0, 16) != CT_OK, "the test split is unreadable (so training never read it)");
    ct_caption_dataset_free(&cd);
}

static void test_refused(void) {
    char cmd[1200];
    const char *bad[] = {
        "--epochs 1 --data fashion-mnist",               /* not caption data (later --data wins) */
        "--epochs 1 --image-encoder transformer",        /* the image tower reads images */
        "--epochs 1 --text-pool cls",                    /* eot or mean */
        "--epochs 1 --text-encoder lstm",
        "--epochs 1 --encoder vit",                      /* clip's towers have their own flags */
        "--epochs 1 --augment size=20",                  /* the image side is --image-size */
        "--epochs 1 --batch 32",                         /* more than the 16 images */
        "--epochs 1 --temperature 0.005",                /* ln(1/T) above ln 100 */
        "--epochs 1 --local-crops 2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s 2>%s/err.txt", "", tmpdir);
        char out[32];
        snprintf(out, sizeof out, "bad%zu", i);
        int rc = run(cmd, bad[i], out);
        char path[600], msg[512] = "";
        snprintf(path, sizeof path, "%s/err.txt", tmpdir);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(msg, sizeof msg, f)) msg[0] = '\0';
            fclose(f);
        }
        CHECK(rc != 0 && strstr(msg, "contrast train"), "refused: %s (%s)", bad[i], msg);
    }
    snprintf(cmd, sizeof cmd, "%s train --image-size 20 --epochs 1 --quiet --out %s/notclip 2>/dev/null", bin, tmpdir);
    CHECK(system(cmd) != 0, "--image-size without --method clip is refused");
    ct_clip m;
    char p[600];
    snprintf(p, sizeof p, "%s/nothing.safetensors", tmpdir);
    CHECK(ct_clip_load(&m, p) != CT_OK, "a missing file");
}

int main(void) {
    bin = getenv("CONTRAST_BIN");
    if (!bin) bin = "./contrast";
    snprintf(tmpdir, sizeof tmpdir, "/tmp/contrast-test-clip-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    snprintf(data, sizeof data, "%s/data", tmpdir);
    CHECK(make_data(data) == 0, "made the captions folder");
    test_scale_gradient();
    test_scale_clamp();
    test_learns();
    test_resume();
    test_options();
    test_refused();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (g_fail == 0 && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_done();
}
