/* clip.c (cli): using a CLIP checkpoint (contrast train --method clip):
 *   contrast zeroshot   zero-shot top-1/top-5 (+ per-class table) from prompt templates
 *   contrast search     text -> images (ranked files, a PNG contact sheet) and
 *                       image -> texts, when the checkpoint is a clip one
 *   contrast eval       zero-shot and image <-> text R@1/5/10 on both splits
 *   contrast embed      unit-length embeddings of texts (text tower) or images (image tower)
 * Only the public API: ct_clip_* for the model, ct_zeroshot_* / ct_eval_* for the
 * metrics, ct_plot_contact_sheet for the sheet. */
#include "cli.h"

#include "contrast.h"
#include "contrast/io.h"
#include "contrast/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_is_clip_checkpoint(const char *path) {
    ct_st_file *f;
    if (!path[0] || ct_st_open(&f, path)) {
        ct_clear_error();
        return 0;
    }
    const char *m = ct_st_meta(f, "train.method");
    int yes = m && !strcmp(m, "clip");
    ct_st_close(f);
    return yes;
}

/* The images (and captions) of a data spec, resized to the model's input:
 *   emoji-test / emoji-train  the emoji set's held-out / training names, both styles
 *   folder:DIR                DIR/<class>/<image> (DIR/test/... when DIR/train/ exists)
 *   captions:DIR              DIR/captions.tsv (the test split when DIR/train/ exists)
 * `train` picks the split of folder: and captions: sets (the same folder when they
 * have no train/ and test/). */
static ct_status load_images(ct_caption_dataset *ds, const char *spec, int train, int size) {
    if (!strcmp(spec, "emoji-test")) return ct_caption_dataset_load(ds, "emoji", 0, size);
    if (!strcmp(spec, "emoji-train")) return ct_caption_dataset_load(ds, "emoji", 1, size);
    if (!strncmp(spec, "folder:", 7)) return ct_caption_folder_load(ds, spec + 7, train, size);
    if (!strncmp(spec, "captions:", 9)) return ct_caption_dataset_load(ds, spec, train, size);
    memset(ds, 0, sizeof *ds);
    return ct_error(CT_ERR_ARG, "data '%s': expected emoji-test | emoji-train | folder:DIR | captions:DIR", spec);
}

/* Unit-length embeddings of every image of ds, `batch` at a time; *out (n, dim), ct_free. */
static ct_status embed_images(float **out, ct_clip *m, const ct_caption_dataset *ds, int64_t batch) {
    const int64_t n = ds->img.n, D = m->dim;
    const size_t per = (size_t)3 * (size_t)m->size * (size_t)m->size;
    *out = ct_alloc((size_t)n * (size_t)D * sizeof(float));
    if (!*out) return ct_error(CT_ERR_NOMEM, "out of memory for %lld x %lld image embeddings", (long long)n, (long long)D);
    ct_status st = CT_OK;
    for (int64_t i = 0; i < n && !st; i += batch) {
        int64_t b = n - i < batch ? n - i : batch;
        st = ct_clip_embed_images(m, ds->img.images + (size_t)i * per, b, *out + (size_t)i * (size_t)D);
    }
    if (st) {
        ct_free(*out);
        *out = NULL;
    }
    return st;
}

/* The same for n NUL-terminated texts. */
static ct_status embed_texts(float **out, ct_clip *m, const char *const *texts, int64_t n, int64_t batch) {
    const int64_t D = m->dim;
    size_t *lens = malloc((size_t)(n ? n : 1) * sizeof *lens);
    *out = ct_alloc((size_t)(n ? n : 1) * (size_t)D * sizeof(float));
    ct_status st = CT_OK;
    if (!lens || !*out) st = ct_error(CT_ERR_NOMEM, "out of memory for %lld text embeddings", (long long)n);
    for (int64_t i = 0; !st && i < n; i++) lens[i] = strlen(texts[i]);
    for (int64_t i = 0; i < n && !st; i += batch) {
        int64_t b = n - i < batch ? n - i : batch;
        st = ct_clip_embed_texts(m, texts + i, lens + i, b, *out + (size_t)i * (size_t)D);
    }
    free(lens);
    if (st) {
        ct_free(*out);
        *out = NULL;
    }
    return st;
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

/* ---- zero-shot ------------------------------------------------------------------------- */

typedef struct {
    int64_t K, n;                 /* classes, images */
    double top1, top5;
    int64_t *cn, *c1, *c5;        /* (K) per class */
} zs_result;

static void zs_free(zs_result *r) {
    free(r->cn);
    free(r->c1);
    free(r->c5);
    memset(r, 0, sizeof *r);
}

/* Zero-shot of the images of ds over `names` (K) with `templates` (T); the image
 * embeddings img (ds->img.n, dim) are given. labels map each image to names. */
static ct_status zeroshot_run(zs_result *r, ct_clip *m, const float *img, const int32_t *labels, int64_t n,
                              const char *const *names, int64_t K, const char *const *templates, int64_t T,
                              int64_t batch) {
    memset(r, 0, sizeof *r);
    char **prompts = NULL;
    float *E = NULL, *W = NULL;
    ct_status st = ct_zeroshot_prompts(&prompts, names, K, templates, T);
    if (!st) st = embed_texts(&E, m, (const char *const *)prompts, K * T, batch);
    if (!st && !(W = ct_alloc((size_t)K * (size_t)m->dim * sizeof(float))))
        st = ct_error(CT_ERR_NOMEM, "zeroshot: out of memory for %lld classes", (long long)K);
    if (!st) st = ct_zeroshot_weights(W, E, K, T, m->dim);
    r->cn = malloc((size_t)K * sizeof *r->cn);
    r->c1 = malloc((size_t)K * sizeof *r->c1);
    r->c5 = malloc((size_t)K * sizeof *r->c5);
    if (!st && (!r->cn || !r->c1 || !r->c5)) st = ct_error(CT_ERR_NOMEM, "zeroshot: out of memory");
    if (!st) st = ct_zeroshot_eval(img, labels, n, W, K, m->dim, &r->top1, &r->top5, r->cn, r->c1, r->c5);
    r->K = K;
    r->n = n;
    ct_zeroshot_strings_free(prompts, prompts ? K * T : 0);
    ct_free(E);
    ct_free(W);
    if (st) zs_free(r);
    return st;
}

/* Image i's label in `names` (K): the index of the name of its class in ds. */
static ct_status map_labels(int32_t *labels, const ct_caption_dataset *ds, char **names, int64_t K, const char *file) {
    const int C = ds->img.num_classes;
    int32_t *map = malloc((size_t)C * sizeof *map);
    if (!map) return ct_error(CT_ERR_NOMEM, "zeroshot: out of memory");
    ct_status st = CT_OK;
    for (int c = 0; c < C && !st; c++) {
        map[c] = -1;
        for (int64_t k = 0; k < K && map[c] < 0; k++)
            if (!strcmp(ds->class_names[c], names[k])) map[c] = (int32_t)k;
    }
    for (int64_t i = 0; i < ds->img.n && !st; i++)
        if ((labels[i] = map[ds->img.labels[i]]) < 0)
            st = ct_error(CT_ERR_ARG, "%s: no line names class '%s' (of %s)", file, ds->class_names[ds->img.labels[i]],
                          ds->files[i]);
    free(map);
    return st;
}

int cmd_zeroshot(int argc, char **argv) {
    char ckpt[512] = "", data[512] = "emoji-test", classes[512] = "", templates[512] = "", json[512] = "";
    int per_class = 0, threads = 0;
    int64_t batch = 256;
    cli_opt opts[] = {
        {"--checkpoint", OPT_STR, ckpt, sizeof ckpt, 0, 0, "a clip checkpoint (contrast train --method clip)"},
        {"--data", OPT_STR, data, sizeof data, 0, 0, "emoji-test (held-out names, both styles) | emoji-train | folder:DIR (classes: its subfolders) | captions:DIR (its CLASS column)"},
        {"--classes", OPT_STR, classes, sizeof classes, 0, 0, "class names, one per line (every class of the data must be one; more are distractors); default: the data's"},
        {"--templates", OPT_STR, templates, sizeof templates, 0, 0, "prompt templates, one per line, each with one {} for the name; default: the built-in emoji list"},
        {"--per-class", OPT_FLAG, &per_class, 0, 0, 0, "print a table: class, images, top-1, top-5"},
        {"--json", OPT_STR, json, sizeof json, 0, 0, "also write the results (and the per-class table) as JSON to this file"},
        {"--batch", OPT_I64, &batch, 0, 1, 65536, "images or prompts per forward pass"},
        {"--threads", OPT_INT, &threads, 0, 0, 1024, "compute threads (0: all cores)"},
    };
    int rc = cli_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]),
                       "usage: contrast zeroshot --checkpoint FILE [--data SPEC] [options]\n"
                       "Zero-shot classification with a clip checkpoint: each class is the normalised mean of its\n"
                       "prompts' embeddings (open_clip); prints top-1 and top-5 with chance beside them.");
    if (rc) return rc == 1 ? 0 : rc;
    if (!ckpt[0]) {
        fprintf(stderr, "contrast zeroshot: --checkpoint FILE is required\n");
        return 2;
    }
    ct_set_threads(threads);
    ct_clip m;
    if (ct_clip_load(&m, ckpt)) return cli_fail("zeroshot");
    ct_caption_dataset ds;
    char **names = NULL, **tpl = NULL;
    int64_t K = 0, T = 0;
    const char *const *tp = NULL;
    int32_t *labels = NULL;
    float *img = NULL;
    zs_result r;
    memset(&r, 0, sizeof r);
    ct_status st = load_images(&ds, data, 0, m.size);
    if (!st && !ds.class_names)
        st = ct_error(CT_ERR_ARG, "%s: the data has no classes (captions.tsv without a CLASS column)", data);
    if (!st && classes[0]) st = ct_zeroshot_read_classes(&names, &K, classes);
    if (!st && !classes[0]) {
        names = ds.class_names;
        K = ds.img.num_classes;
    }
    if (!st && templates[0] && !(st = ct_zeroshot_read_templates(&tpl, &T, templates))) tp = (const char *const *)tpl;
    if (!st && !templates[0]) T = ct_zeroshot_default_templates(&tp);
    if (!st && !(labels = malloc((size_t)ds.img.n * sizeof *labels))) st = ct_error(CT_ERR_NOMEM, "out of memory");
    if (!st && classes[0]) st = map_labels(labels, &ds, names, K, classes);
    else if (!st) memcpy(labels, ds.img.labels, (size_t)ds.img.n * sizeof *labels);
    if (!st) st = embed_images(&img, &m, &ds, batch);
    if (!st) st = zeroshot_run(&r, &m, img, labels, ds.img.n, (const char *const *)names, K, tp, T, batch);
    ct_atomic_file af; /* --json: written to a temporary, renamed into place at the end */
    memset(&af, 0, sizeof af);
    if (!st && json[0]) st = ct_atomic_open(&af, json);
    FILE *jf = json[0] && !st ? af.fp : NULL;
    if (!st) {
        const double c1 = 1.0 / (double)K, c5 = (K < 5 ? (double)K : 5.0) / (double)K;
        printf("zeroshot_top1 %.4f (chance %.4f)\nzeroshot_top5 %.4f (chance %.4f)\n", r.top1, c1, r.top5, c5);
        printf("(%lld images, %lld classes, %lld templates, %s)\n", (long long)r.n, (long long)K, (long long)T, data);
        if (per_class) {
            printf("class\timages\ttop1\ttop5\n");
            for (int64_t k = 0; k < K; k++)
                if (r.cn[k])
                    printf("%s\t%lld\t%.4f\t%.4f\n", names[k], (long long)r.cn[k], (double)r.c1[k] / (double)r.cn[k],
                           (double)r.c5[k] / (double)r.cn[k]);
        }
        if (jf) {
            fprintf(jf, "{\"data\": ");
            json_str(jf, data);
            fprintf(jf, ", \"n_images\": %lld, \"n_classes\": %lld, \"n_templates\": %lld, \"zeroshot_top1\": %.6f, "
                        "\"zeroshot_top5\": %.6f, \"chance_top1\": %.6f, \"chance_top5\": %.6f, \"per_class\": [",
                    (long long)r.n, (long long)K, (long long)T, r.top1, r.top5, c1, c5);
            int first = 1;
            for (int64_t k = 0; k < K; k++) {
                if (!r.cn[k]) continue;
                fprintf(jf, "%s\n  {\"class\": ", first ? "" : ",");
                json_str(jf, names[k]);
                fprintf(jf, ", \"n\": %lld, \"top1\": %.6f, \"top5\": %.6f}", (long long)r.cn[k],
                        (double)r.c1[k] / (double)r.cn[k], (double)r.c5[k] / (double)r.cn[k]);
                first = 0;
            }
            fprintf(jf, "]}\n");
            st = ct_atomic_commit(&af);
        }
    }
    if (st) ct_atomic_abort(&af);
    zs_free(&r);
    ct_free(img);
    free(labels);
    if (classes[0]) ct_zeroshot_strings_free(names, K);
    ct_zeroshot_strings_free(tpl, tpl ? T : 0);
    ct_caption_dataset_free(&ds);
    ct_clip_free(&m);
    return st ? cli_fail("zeroshot") : 0;
}

/* ---- search ---------------------------------------------------------------------------- */

int cli_clip_search(const char *ckpt, const char *index, const char *query, const char *image, const char *texts_file,
                    int64_t k, const char *out, int tile, int cols, int64_t batch) {
    ct_clip m;
    if (ct_clip_load(&m, ckpt)) return cli_fail("search");
    ct_caption_dataset ds;
    memset(&ds, 0, sizeof ds);
    ct_text_dataset td;
    memset(&td, 0, sizeof td);
    float *G = NULL, *q = NULL;
    int64_t *top = malloc((size_t)k * sizeof *top), found = 0;
    float *score = malloc((size_t)k * sizeof *score);
    const char **tx = NULL;
    int64_t nt = 0, *rs = NULL, *ri = NULL;
    ct_status st = CT_OK;
    if (!top || !score) st = ct_error(CT_ERR_NOMEM, "search: no memory for %lld results", (long long)k);
    if (query[0]) { /* text -> images */
        if (!st) st = load_images(&ds, index, 0, m.size);
        if (!st) st = embed_images(&G, &m, &ds, batch);
        const char *qs[1] = {query};
        if (!st) st = embed_texts(&q, &m, qs, 1, 1);
        if (!st) st = ct_eval_topk(top, score, &found, G, ds.img.n, m.dim, q, k);
        const char **names = NULL;
        if (!st && !(names = malloc((size_t)(found ? found : 1) * sizeof *names))) st = ct_error(CT_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; !st && i < found; i++) {
            names[i] = ds.files[top[i]];
            printf("%.4f\t%s\n", score[i], names[i]);
        }
        if (!st && out[0]) {
            ct_canvas c;
            char title[600];
            snprintf(title, sizeof title, "\"%s\"", query);
            st = ct_plot_contact_sheet(&c, title, ds.img.images, ds.img.n, 3, m.size, top, score, names, found, tile,
                                       cols);
            if (!st) st = ct_canvas_write_png(&c, out);
            ct_canvas_free(&c);
            if (!st) fprintf(stderr, "search: wrote %s (%lld images)\n", out, (long long)found);
        }
        free(names);
    } else { /* image -> texts: those of a file, or the distinct captions of the data */
        uint8_t *px = malloc((size_t)3 * (size_t)m.size * (size_t)m.size);
        if (!st && !px) st = ct_error(CT_ERR_NOMEM, "out of memory");
        if (!st) st = ct_image_load_rgb(px, image, m.size);
        if (!st && !(q = ct_alloc((size_t)m.dim * sizeof(float)))) st = ct_error(CT_ERR_NOMEM, "out of memory");
        if (!st) st = ct_clip_embed_images(&m, px, 1, q);
        free(px);
        if (!st && texts_file[0]) {
            char spec[600];
            snprintf(spec, sizeof spec, "text:%s", texts_file);
            st = ct_text_dataset_load(&td, spec, 0);
            if (!st) {
                tx = malloc((size_t)td.ntexts * sizeof *tx);
                if (!tx) st = ct_error(CT_ERR_NOMEM, "out of memory");
                for (int64_t i = 0; !st && i < td.ntexts; i++) tx[i] = td.text[i];
                nt = td.ntexts;
            }
        } else if (!st) {
            st = load_images(&ds, index, 0, m.size);
            if (!st) st = ct_caption_texts(&ds, &tx, &nt, &rs, &ri);
        }
        if (!st) st = embed_texts(&G, &m, tx, nt, batch);
        if (!st) st = ct_eval_topk(top, score, &found, G, nt, m.dim, q, k);
        for (int64_t i = 0; !st && i < found; i++) printf("%.4f\t%s\n", score[i], tx[top[i]]);
    }
    free(tx);
    free(rs);
    free(ri);
    free(top);
    free(score);
    ct_free(G);
    ct_free(q);
    ct_text_dataset_free(&td);
    ct_caption_dataset_free(&ds);
    ct_clip_free(&m);
    return st ? cli_fail("search") : 0;
}

/* ---- embed ----------------------------------------------------------------------------- */

int cli_clip_embed(const char *ckpt, const char *const *texts, int64_t ntexts, const char *data, int train,
                   const char *out, const char *labels, int64_t limit, int64_t batch) {
    const int text = ntexts > 0 || ct_data_is_text(data);
    if (!text && !out[0]) {
        fprintf(stderr, "contrast embed: --out FILE.npy is required for images (texts without it are printed)\n");
        return 2;
    }
    if (text && labels[0]) {
        fprintf(stderr, "contrast embed: --labels is for images (the class of each), not texts\n");
        return 2;
    }
    /* the outputs opened first (a bad destination is reported before any work) and
     * committed together at the end: on any failure neither is written */
    ct_atomic_file fo, fl;
    memset(&fo, 0, sizeof fo);
    memset(&fl, 0, sizeof fl);
    ct_clip m;
    memset(&m, 0, sizeof m);
    if ((out[0] && ct_atomic_open(&fo, out)) || (labels[0] && ct_atomic_open(&fl, labels)) || ct_clip_load(&m, ckpt)) {
        ct_atomic_abort(&fo);
        ct_atomic_abort(&fl);
        return cli_fail("embed");
    }
    ct_caption_dataset ds;
    memset(&ds, 0, sizeof ds);
    ct_text_dataset td;
    memset(&td, 0, sizeof td);
    size_t *lens = NULL;
    float *f = NULL;
    int64_t n = 0;
    ct_status st = CT_OK;
    if (text) { /* the --text values (the empty text too: BOS, EOS), or every text of --data */
        const char *const *tx = texts;
        n = ntexts;
        if (!n && !(st = ct_text_dataset_load(&td, data, train))) {
            tx = (const char *const *)td.text;
            n = td.ntexts;
            if (limit > 0 && limit < n) n = limit;
        }
        if (!st && (!(lens = malloc((size_t)(n ? n : 1) * sizeof *lens)) ||
                    !(f = ct_alloc((size_t)(n ? n : 1) * (size_t)m.dim * sizeof(float)))))
            st = ct_error(CT_ERR_NOMEM, "embed: no memory for %lld text embeddings", (long long)n);
        for (int64_t i = 0; !st && i < n; i++) lens[i] = td.len ? td.len[i] : strlen(tx[i]);
        for (int64_t i = 0; !st && i < n; i += batch)
            st = ct_clip_embed_texts(&m, tx + i, lens + i, n - i < batch ? n - i : batch, f + (size_t)i * (size_t)m.dim);
    } else { /* images: emoji (held-out names, or --split train), emoji-test|train, folder:DIR, captions:DIR */
        const char *spec = !strcmp(data, "emoji") ? (train ? "emoji-train" : "emoji-test") : data;
        st = load_images(&ds, spec, train, m.size);
        n = limit > 0 && limit < ds.img.n ? limit : ds.img.n; /* the first --limit (ds keeps all, to free them) */
        const size_t per = (size_t)3 * (size_t)m.size * (size_t)m.size;
        if (!st && !(f = ct_alloc((size_t)(n ? n : 1) * (size_t)m.dim * sizeof(float))))
            st = ct_error(CT_ERR_NOMEM, "embed: no memory for %lld image embeddings", (long long)n);
        for (int64_t i = 0; !st && i < n; i += batch)
            st = ct_clip_embed_images(&m, ds.img.images + (size_t)i * per, n - i < batch ? n - i : batch,
                                      f + (size_t)i * (size_t)m.dim);
    }
    if (!st && out[0]) st = ct_npy_put_f32(&fo, f, n, m.dim);
    if (!st && labels[0]) {
        int64_t *l = malloc((size_t)(n ? n : 1) * sizeof *l);
        if (!l) st = ct_error(CT_ERR_NOMEM, "embed: no memory for %lld labels", (long long)n);
        for (int64_t i = 0; l && i < n; i++) l[i] = ds.img.labels[i];
        if (l) st = ct_npy_put_i64(&fl, l, n);
        free(l);
        if (!st) st = ct_atomic_commit(&fl);
    }
    if (!st && out[0]) st = ct_atomic_commit(&fo);
    if (st) {
        ct_atomic_abort(&fo);
        ct_atomic_abort(&fl);
    }
    if (!st && !out[0])
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < m.dim; j++) printf("%.7g%c", f[i * m.dim + j], j + 1 < m.dim ? ' ' : '\n');
    if (!st && out[0])
        fprintf(stderr, "wrote %s: %lld x %lld float32 (%s, unit length)\n", out, (long long)n, (long long)m.dim,
                text ? "text tower" : "image tower");
    free(lens);
    ct_free(f);
    ct_text_dataset_free(&td);
    ct_caption_dataset_free(&ds);
    ct_clip_free(&m);
    return st ? cli_fail("embed") : 0;
}

/* ---- eval ------------------------------------------------------------------------------ */

typedef struct {
    int64_t n_images, n_texts, n_classes;
    double zs_top1, zs_top5, zs_chance1, zs_chance5;
    double i2t[3], t2i[3], i2t_chance[3], t2i_chance[3];
} clip_eval;

static const int EVAL_KS[3] = {1, 5, 10};

static ct_status eval_split(clip_eval *e, ct_clip *m, const char *spec, int train, int64_t batch) {
    memset(e, 0, sizeof *e);
    ct_caption_dataset ds;
    float *img = NULL, *txt = NULL;
    const char **tx = NULL;
    int64_t nt = 0, *rs = NULL, *ri = NULL;
    zs_result r;
    memset(&r, 0, sizeof r);
    ct_status st = load_images(&ds, spec, train, m->size);
    if (!st) st = embed_images(&img, m, &ds, batch);
    if (!st) st = ct_caption_texts(&ds, &tx, &nt, &rs, &ri);
    if (!st) st = embed_texts(&txt, m, tx, nt, batch);
    if (!st)
        st = ct_eval_image_text(img, ds.img.n, txt, nt, m->dim, rs, ri, EVAL_KS, 3, e->i2t, e->t2i, e->i2t_chance,
                                e->t2i_chance);
    e->n_images = ds.img.n;
    e->n_texts = nt;
    e->zs_top1 = e->zs_top5 = -1;
    if (!st && ds.class_names) {
        const char *const *tp;
        int64_t T = ct_zeroshot_default_templates(&tp), K = ds.img.num_classes;
        st = zeroshot_run(&r, m, img, ds.img.labels, ds.img.n, (const char *const *)ds.class_names, K, tp, T, batch);
        if (!st) {
            e->n_classes = K;
            e->zs_top1 = r.top1;
            e->zs_top5 = r.top5;
            e->zs_chance1 = 1.0 / (double)K;
            e->zs_chance5 = (K < 5 ? (double)K : 5.0) / (double)K;
        }
    }
    zs_free(&r);
    free(tx);
    free(rs);
    free(ri);
    ct_free(img);
    ct_free(txt);
    ct_caption_dataset_free(&ds);
    return st;
}

static void print_eval(const clip_eval *e, const char *split, int json) {
    if (json) {
        printf("\"%s\": {\"n_images\": %lld, \"n_texts\": %lld, \"n_classes\": %lld", split, (long long)e->n_images,
               (long long)e->n_texts, (long long)e->n_classes);
        if (e->zs_top1 >= 0)
            printf(", \"zeroshot_top1\": %.6f, \"zeroshot_top5\": %.6f, \"chance_top1\": %.6f, \"chance_top5\": %.6f",
                   e->zs_top1, e->zs_top5, e->zs_chance1, e->zs_chance5);
        for (int k = 0; k < 3; k++) printf(", \"i2t_r%d\": %.6f", EVAL_KS[k], e->i2t[k]);
        for (int k = 0; k < 3; k++) printf(", \"t2i_r%d\": %.6f", EVAL_KS[k], e->t2i[k]);
        for (int k = 0; k < 3; k++) printf(", \"chance_i2t_r%d\": %.6f", EVAL_KS[k], e->i2t_chance[k]);
        for (int k = 0; k < 3; k++) printf(", \"chance_t2i_r%d\": %.6f", EVAL_KS[k], e->t2i_chance[k]);
        printf("}");
        return;
    }
    printf("%s: %lld images, %lld distinct texts, %lld classes\n", split, (long long)e->n_images, (long long)e->n_texts,
           (long long)e->n_classes);
    if (e->zs_top1 >= 0)
        printf("  zeroshot top1 %.4f  top5 %.4f   (chance %.4f / %.4f)\n", e->zs_top1, e->zs_top5, e->zs_chance1,
               e->zs_chance5);
    printf("  image->text R@1 %.4f  R@5 %.4f  R@10 %.4f   (chance %.4f / %.4f / %.4f)\n", e->i2t[0], e->i2t[1], e->i2t[2],
           e->i2t_chance[0], e->i2t_chance[1], e->i2t_chance[2]);
    printf("  text->image R@1 %.4f  R@5 %.4f  R@10 %.4f   (chance %.4f / %.4f / %.4f)\n", e->t2i[0], e->t2i[1], e->t2i[2],
           e->t2i_chance[0], e->t2i_chance[1], e->t2i_chance[2]);
}

int cli_clip_eval(const char *ckpt, const char *data, int json, int64_t batch) {
    ct_clip m;
    if (ct_clip_load(&m, ckpt)) return cli_fail("eval");
    /* "emoji": held-out names, then the training names for reference; a folder or
     * caption set: its test split, then its train split (the same folder without
     * train/ and test/: printed once) */
    const int emoji = !strcmp(data, "emoji");
    const char *test_spec = emoji ? "emoji-test" : data, *train_spec = emoji ? "emoji-train" : data;
    int both = emoji;
    if (!emoji && (!strncmp(data, "folder:", 7) || !strncmp(data, "captions:", 9))) {
        char p[600];
        struct stat sb;
        snprintf(p, sizeof p, "%s/train", strchr(data, ':') + 1);
        both = !stat(p, &sb) && S_ISDIR(sb.st_mode);
    }
    clip_eval te, tr;
    ct_status st = eval_split(&te, &m, test_spec, 0, batch);
    if (!st && both) st = eval_split(&tr, &m, train_spec, 1, batch);
    ct_clip_free(&m);
    if (st) return cli_fail("eval");
    if (json) {
        printf("{\"data\": ");
        json_str(stdout, data);
        printf(", ");
        print_eval(&te, "test", 1);
        if (both) {
            printf(", ");
            print_eval(&tr, "train", 1);
        }
        printf("}\n");
    } else {
        print_eval(&te, both ? "test (held out)" : "all", 0);
        if (both) print_eval(&tr, "train (for reference)", 0);
    }
    return 0;
}
