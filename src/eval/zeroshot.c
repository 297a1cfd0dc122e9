/* zeroshot.c: what a two-tower (CLIP) model's embeddings are used for, with no model
 * in sight: zero-shot classifier weights from prompt embeddings (open_clip's
 * build_zero_shot_classifier), zero-shot top-1/top-5 with a per-class table,
 * image <-> text retrieval R@k when captions and images relate many-to-many, the
 * top-k of a query, and the class-name / template files the CLI reads.
 *
 * Every ranking uses one total order: score descending, then index ascending, so a
 * result is a function of the inputs alone. A query's rank of its first relevant
 * item is counted directly (#items before it in that order), never by sorting. */
#include "contrast/eval.h"
#include "contrast/io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROW_BLOCK 256 /* query rows per similarity block */

/* ---- prompt templates and the files naming classes / templates --------------------- */

static const char *const emoji_templates[] = {
    "an emoji of {}", "{}", "a {} emoji", "an icon of {}", "a picture of {}", "a drawing of {}",
};

int ct_zeroshot_default_templates(const char *const **templates) {
    *templates = emoji_templates;
    return (int)(sizeof emoji_templates / sizeof emoji_templates[0]);
}

/* Length of the valid UTF-8 prefix of s (n bytes): no overlongs, surrogates or
 * code points past U+10FFFF. */
static size_t utf8_prefix(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!len || i + len > n) return i;
        unsigned long cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const unsigned long min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += len;
    }
    return i;
}

void ct_zeroshot_strings_free(char **v, int64_t n) {
    for (int64_t i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

typedef struct {
    const char *s;
    int64_t line;
} line_ref;

static int cmp_line(const void *a, const void *b) {
    const line_ref *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* Reads one entry per line (what = "class name" or "template"). A final newline
 * ends the last line; "\r\n" is accepted; surrounding spaces and tabs are trimmed. */
static ct_status read_lines(char ***out, int64_t *nout, const char *path, int templates) {
    *out = NULL;
    *nout = 0;
    const char *what = templates ? "template" : "class name";
    const size_t maxlen = templates ? CT_ZS_MAX_TEMPLATE : CT_ZS_MAX_NAME;
    FILE *fp;
    int64_t size;
    ct_status st = ct_fopen_regular(path, &fp, &size);
    if (st) return st;
    if (size > CT_ZS_MAX_FILE) {
        fclose(fp);
        return ct_error(CT_ERR_FORMAT, "%s: %lld bytes, more than a %s file may hold (%lld)", path, (long long)size,
                        what, (long long)CT_ZS_MAX_FILE);
    }
    char *buf = malloc((size_t)size + 1);
    if (!buf) {
        fclose(fp);
        return ct_error(CT_ERR_NOMEM, "%s: out of memory for %lld bytes", path, (long long)size);
    }
    size_t got = fread(buf, 1, (size_t)size, fp);
    fclose(fp);
    if (got != (size_t)size) {
        free(buf);
        return ct_error(CT_ERR_IO, "%s: read %zu of %lld bytes", path, got, (long long)size);
    }
    buf[size] = '\0';
    int64_t nlines = 0;
    for (int64_t i = 0; i < size; i++) nlines += buf[i] == '\n';
    if (size && buf[size - 1] != '\n') nlines++;
    char **v = calloc((size_t)(nlines ? nlines : 1), sizeof *v);
    if (!v) {
        free(buf);
        return ct_error(CT_ERR_NOMEM, "%s: out of memory for %lld lines", path, (long long)nlines);
    }
    int64_t n = 0;
    size_t pos = 0;
    for (int64_t line = 1; !st && pos < (size_t)size; line++) {
        char *s = buf + pos, *nl = memchr(s, '\n', (size_t)size - pos);
        size_t len = nl ? (size_t)(nl - s) : (size_t)size - pos;
        pos += len + 1;
        if (len && s[len - 1] == '\r') len--;
        while (len && (*s == ' ' || *s == '\t')) s++, len--;
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
        if (!len) st = ct_error(CT_ERR_FORMAT, "%s:%lld: empty line (one %s per line)", path, (long long)line, what);
        else if (len > maxlen)
            st = ct_error(CT_ERR_FORMAT, "%s:%lld: %s of %zu bytes, longer than %zu", path, (long long)line, what,
                          len, maxlen);
        else if (memchr(s, '\0', len))
            st = ct_error(CT_ERR_FORMAT, "%s:%lld: a NUL byte in the %s", path, (long long)line, what);
        else if (utf8_prefix((const unsigned char *)s, len) != len)
            st = ct_error(CT_ERR_FORMAT, "%s:%lld: not valid UTF-8 (at byte %zu of the %s)", path, (long long)line,
                          utf8_prefix((const unsigned char *)s, len) + 1, what);
        if (!st && templates) {
            const char *a = strstr(s, "{}");
            if (!a || a >= s + len || (strstr(a + 2, "{}") && strstr(a + 2, "{}") < s + len))
                st = ct_error(CT_ERR_FORMAT, "%s:%lld: a template holds exactly one {} (where the class name goes)",
                              path, (long long)line);
        }
        if (!st && !(v[n] = malloc(len + 1))) st = ct_error(CT_ERR_NOMEM, "%s: out of memory", path);
        if (st) break;
        memcpy(v[n], s, len);
        v[n][len] = '\0';
        n++;
    }
    free(buf);
    if (!st && n == 0) st = ct_error(CT_ERR_FORMAT, "%s: no %s (the file is empty)", path, what);
    if (!st && n > CT_DATA_MAX_CLASSES)
        st = ct_error(CT_ERR_FORMAT, "%s: %lld lines, more than %d", path, (long long)n, CT_DATA_MAX_CLASSES);
    /* duplicates: sort (string, line) pairs; the error names both lines (no line is
     * skipped, an empty one being an error, so entry i is line i + 1) */
    line_ref *pairs = NULL;
    if (!st && !(pairs = malloc((size_t)n * sizeof *pairs))) st = ct_error(CT_ERR_NOMEM, "%s: out of memory", path);
    if (!st) {
        for (int64_t i = 0; i < n; i++) pairs[i] = (line_ref){v[i], i + 1};
        qsort(pairs, (size_t)n, sizeof *pairs, cmp_line);
        for (int64_t i = 1; i < n && !st; i++)
            if (!strcmp(pairs[i].s, pairs[i - 1].s))
                st = ct_error(CT_ERR_FORMAT, "%s:%lld: duplicate %s '%s' (also on line %lld)", path,
                              (long long)pairs[i].line, what, pairs[i].s, (long long)pairs[i - 1].line);
    }
    free(pairs);
    if (st) {
        ct_zeroshot_strings_free(v, n);
        return st;
    }
    *out = v;
    *nout = n;
    return CT_OK;
}

ct_status ct_zeroshot_read_classes(char ***names, int64_t *n, const char *path) {
    return read_lines(names, n, path, 0);
}

ct_status ct_zeroshot_read_templates(char ***templates, int64_t *n, const char *path) {
    return read_lines(templates, n, path, 1);
}

ct_status ct_zeroshot_prompts(char ***prompts, const char *const *names, int64_t K, const char *const *templates,
                              int64_t T) {
    *prompts = NULL;
    if (K < 1 || T < 1) return ct_error(CT_ERR_ARG, "zeroshot: %lld classes, %lld templates (need >= 1 each)",
                                        (long long)K, (long long)T);
    size_t count;
    if (ct_size_mul((size_t)K, (size_t)T, &count))
        return ct_error(CT_ERR_NOMEM, "zeroshot: %lld x %lld prompts overflow", (long long)K, (long long)T);
    char **p = calloc(count, sizeof *p);
    if (!p) return ct_error(CT_ERR_NOMEM, "zeroshot: out of memory for %zu prompts", count);
    for (int64_t t = 0; t < T; t++) {
        const char *a = strstr(templates[t], "{}");
        if (!a || strstr(a + 2, "{}")) {
            ct_zeroshot_strings_free(p, (int64_t)count);
            return ct_error(CT_ERR_ARG, "zeroshot: template '%s' does not hold exactly one {}", templates[t]);
        }
    }
    for (int64_t k = 0; k < K; k++)
        for (int64_t t = 0; t < T; t++) {
            const char *tp = templates[t], *a = strstr(tp, "{}");
            size_t pre = (size_t)(a - tp), nl = strlen(names[k]), post = strlen(a + 2);
            char *s = malloc(pre + nl + post + 1);
            if (!s) {
                ct_zeroshot_strings_free(p, (int64_t)count);
                return ct_error(CT_ERR_NOMEM, "zeroshot: out of memory for prompts");
            }
            memcpy(s, tp, pre);
            memcpy(s + pre, names[k], nl);
            memcpy(s + pre + nl, a + 2, post + 1);
            p[k * T + t] = s;
        }
    *prompts = p;
    return CT_OK;
}

/* ---- classifier weights ------------------------------------------------------------ */

/* Scales row x (D) to unit length in double; a zero row stays zero. */
static void normalise_row(float *out, const float *x, int64_t D) {
    double s = 0;
    for (int64_t j = 0; j < D; j++) s += (double)x[j] * x[j];
    double inv = s > 0 ? 1.0 / sqrt(s) : 0.0;
    for (int64_t j = 0; j < D; j++) out[j] = (float)(x[j] * inv);
}

static ct_status check_finite(const float *x, size_t n, const char *who) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return ct_error(CT_ERR_NUMERIC, "%s: a non-finite embedding value (row %zu)", who, i);
    return CT_OK;
}

ct_status ct_zeroshot_weights(float *W, const float *E, int64_t K, int64_t T, int64_t D) {
    if (K < 1 || T < 1 || D < 1)
        return ct_error(CT_ERR_ARG, "zeroshot weights: K=%lld, T=%lld, D=%lld (need >= 1 each)", (long long)K,
                        (long long)T, (long long)D);
    size_t n;
    if (ct_size_mul((size_t)(K * T), (size_t)D, &n)) return ct_error(CT_ERR_NOMEM, "zeroshot weights: size overflow");
    ct_status st = check_finite(E, n, "zeroshot weights");
    if (st) return st;
    double *acc = malloc((size_t)D * sizeof *acc);
    float *u = malloc((size_t)D * sizeof *u);
    if (!acc || !u) {
        free(acc);
        free(u);
        return ct_error(CT_ERR_NOMEM, "zeroshot weights: out of memory");
    }
    for (int64_t k = 0; k < K; k++) {
        memset(acc, 0, (size_t)D * sizeof *acc);
        for (int64_t t = 0; t < T; t++) { /* templates in order: a fixed summation order */
            normalise_row(u, E + (size_t)(k * T + t) * D, D);
            for (int64_t j = 0; j < D; j++) acc[j] += u[j];
        }
        double s = 0;
        for (int64_t j = 0; j < D; j++) s += (acc[j] / T) * (acc[j] / T);
        double inv = s > 0 ? 1.0 / sqrt(s) : 0.0;
        for (int64_t j = 0; j < D; j++) W[k * D + j] = (float)(acc[j] / T * inv);
    }
    free(acc);
    free(u);
    return CT_OK;
}

/* Unit-length copy of X (n, D). */
static ct_status unit_copy(float **out, const float *X, int64_t n, int64_t D, const char *who) {
    size_t cnt;
    *out = NULL;
    if (ct_size_mul((size_t)n, (size_t)D, &cnt)) return ct_error(CT_ERR_NOMEM, "%s: size overflow", who);
    ct_status st = check_finite(X, cnt, who);
    if (st) return st;
    float *c = ct_alloc(cnt * sizeof(float) + 1);
    if (!c) return ct_error(CT_ERR_NOMEM, "%s: out of memory for %lld x %lld features", who, (long long)n, (long long)D);
    for (int64_t i = 0; i < n; i++) normalise_row(c + (size_t)i * D, X + (size_t)i * D, D);
    *out = c;
    return CT_OK;
}

/* Position of item `p` in the order (score desc, index asc) over s (n). */
static int64_t rank_of(const float *s, int64_t n, int64_t p) {
    const float sp = s[p];
    int64_t r = 0;
    for (int64_t j = 0; j < n; j++) r += s[j] > sp || (s[j] == sp && j < p);
    return r;
}

/* ---- zero-shot evaluation ----------------------------------------------------------- */

ct_status ct_zeroshot_eval(const float *img, const int32_t *labels, int64_t n, const float *W, int64_t K, int64_t D,
                           double *top1, double *top5, int64_t *class_n, int64_t *class_top1, int64_t *class_top5) {
    if (n < 1 || K < 1 || D < 1)
        return ct_error(CT_ERR_ARG, "zeroshot eval: n=%lld, K=%lld, D=%lld (need >= 1 each)", (long long)n,
                        (long long)K, (long long)D);
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= K)
            return ct_error(CT_ERR_ARG, "zeroshot eval: label %d of image %lld outside [0, %lld)", labels[i],
                            (long long)i, (long long)K);
    float *X, *C, *S = NULL;
    ct_status st = unit_copy(&X, img, n, D, "zeroshot eval");
    if (st) return st;
    if ((st = unit_copy(&C, W, K, D, "zeroshot eval (classifier)"))) {
        ct_free(X);
        return st;
    }
    if (!(S = ct_alloc((size_t)ROW_BLOCK * (size_t)K * sizeof(float)))) {
        ct_free(X);
        ct_free(C);
        return ct_error(CT_ERR_NOMEM, "zeroshot eval: out of memory for %d x %lld scores", ROW_BLOCK, (long long)K);
    }
    if (class_n) memset(class_n, 0, (size_t)K * sizeof *class_n);
    if (class_top1) memset(class_top1, 0, (size_t)K * sizeof *class_top1);
    if (class_top5) memset(class_top5, 0, (size_t)K * sizeof *class_top5);
    int64_t c1 = 0, c5 = 0;
    for (int64_t i0 = 0; i0 < n; i0 += ROW_BLOCK) {
        int64_t b = n - i0 < ROW_BLOCK ? n - i0 : ROW_BLOCK;
        ct_gemm(0, 1, b, K, D, 1.0f, X + (size_t)i0 * D, D, C, D, 0.0f, S, K);
        for (int64_t r = 0; r < b; r++) {
            int32_t y = labels[i0 + r];
            int64_t rk = rank_of(S + (size_t)r * K, K, y);
            c1 += rk < 1;
            c5 += rk < 5;
            if (class_n) class_n[y]++;
            if (class_top1) class_top1[y] += rk < 1;
            if (class_top5) class_top5[y] += rk < 5;
        }
    }
    ct_free(X);
    ct_free(C);
    ct_free(S);
    if (top1) *top1 = (double)c1 / (double)n;
    if (top5) *top5 = (double)c5 / (double)n;
    return CT_OK;
}

/* ---- image <-> text retrieval ------------------------------------------------------ */

/* P(one of m relevant items among the first k of a uniformly random order of n) =
 * 1 - C(n - m, k) / C(n, k). */
static double chance_hit(int64_t n, int64_t m, int64_t k) {
    double miss = 1;
    for (int64_t j = 0; j < k && j < n; j++) miss *= (double)(n - m - j > 0 ? n - m - j : 0) / (double)(n - j);
    return 1 - miss;
}

/* For each query row of Q (nq, D) against the gallery G (ng, D) (both unit length):
 * the rank of its first relevant gallery item, relevant ones rel[start[q] ..
 * start[q + 1]) (queries without any are skipped); hits[k] counts queries whose
 * rank < ks[k], chance[k] sums their chance_hit. */
static ct_status recall_pass(const float *Q, int64_t nq, const float *G, int64_t ng, int64_t D,
                             const int64_t *start, const int64_t *rel, const int *ks, int nks, int64_t *hits,
                             double *chance, int64_t *counted, const char *who) {
    float *S = ct_alloc((size_t)ROW_BLOCK * (size_t)ng * sizeof(float));
    if (!S) return ct_error(CT_ERR_NOMEM, "%s: out of memory for %d x %lld scores", who, ROW_BLOCK, (long long)ng);
    memset(hits, 0, (size_t)nks * sizeof *hits);
    for (int k = 0; k < nks; k++) chance[k] = 0;
    *counted = 0;
    for (int64_t q0 = 0; q0 < nq; q0 += ROW_BLOCK) {
        int64_t b = nq - q0 < ROW_BLOCK ? nq - q0 : ROW_BLOCK;
        ct_gemm(0, 1, b, ng, D, 1.0f, Q + (size_t)q0 * D, D, G, D, 0.0f, S, ng);
        for (int64_t r = 0; r < b; r++) {
            const int64_t q = q0 + r;
            const float *s = S + (size_t)r * ng;
            if (start[q] == start[q + 1]) continue;
            int64_t best = -1; /* the relevant item first in the order */
            for (int64_t e = start[q]; e < start[q + 1]; e++) {
                int64_t p = rel[e];
                if (best < 0 || s[p] > s[best] || (s[p] == s[best] && p < best)) best = p;
            }
            int64_t rk = rank_of(s, ng, best);
            (*counted)++;
            for (int k = 0; k < nks; k++) {
                hits[k] += rk < ks[k];
                chance[k] += chance_hit(ng, start[q + 1] - start[q], ks[k]);
            }
        }
    }
    ct_free(S);
    return CT_OK;
}

ct_status ct_eval_image_text(const float *img, int64_t ni, const float *txt, int64_t nt, int64_t D,
                             const int64_t *rel_start, const int64_t *rel_img, const int *ks, int nks, double *i2t,
                             double *t2i, double *i2t_chance, double *t2i_chance) {
    if (ni < 1 || nt < 1 || D < 1 || nks < 1)
        return ct_error(CT_ERR_ARG, "image-text retrieval: %lld images, %lld texts, D=%lld, %d ks", (long long)ni,
                        (long long)nt, (long long)D, nks);
    for (int k = 0; k < nks; k++)
        if (ks[k] < 1) return ct_error(CT_ERR_ARG, "image-text retrieval: k = %d (need >= 1)", ks[k]);
    if (rel_start[0] != 0) return ct_error(CT_ERR_ARG, "image-text retrieval: rel_start[0] = %lld, not 0", (long long)rel_start[0]);
    for (int64_t t = 0; t < nt; t++) {
        if (rel_start[t + 1] <= rel_start[t])
            return ct_error(CT_ERR_ARG, "image-text retrieval: text %lld describes no image", (long long)t);
        for (int64_t e = rel_start[t]; e < rel_start[t + 1]; e++)
            if (rel_img[e] < 0 || rel_img[e] >= ni)
                return ct_error(CT_ERR_ARG, "image-text retrieval: text %lld names image %lld outside [0, %lld)",
                                (long long)t, (long long)rel_img[e], (long long)ni);
    }
    const int64_t nrel = rel_start[nt];
    /* the inverse relation: for each image, its texts (ascending) */
    int64_t *istart = calloc((size_t)ni + 1, sizeof *istart), *itxt = malloc((size_t)nrel * sizeof *itxt);
    float *I = NULL, *Tx = NULL;
    ct_status st = CT_OK;
    if (!istart || !itxt) st = ct_error(CT_ERR_NOMEM, "image-text retrieval: out of memory");
    if (!st) {
        for (int64_t e = 0; e < nrel; e++) istart[rel_img[e] + 1]++;
        for (int64_t i = 0; i < ni; i++) istart[i + 1] += istart[i];
        int64_t *fill = malloc((size_t)ni * sizeof *fill);
        if (!fill) st = ct_error(CT_ERR_NOMEM, "image-text retrieval: out of memory");
        else {
            memcpy(fill, istart, (size_t)ni * sizeof *fill);
            for (int64_t t = 0; t < nt; t++)
                for (int64_t e = rel_start[t]; e < rel_start[t + 1]; e++) itxt[fill[rel_img[e]]++] = t;
            free(fill);
        }
    }
    if (!st) st = unit_copy(&I, img, ni, D, "image-text retrieval (images)");
    if (!st) st = unit_copy(&Tx, txt, nt, D, "image-text retrieval (texts)");
    int64_t *hits = malloc((size_t)nks * sizeof *hits), counted;
    double *ch = malloc((size_t)nks * sizeof *ch);
    if (!st && (!hits || !ch)) st = ct_error(CT_ERR_NOMEM, "image-text retrieval: out of memory");
    if (!st) st = recall_pass(I, ni, Tx, nt, D, istart, itxt, ks, nks, hits, ch, &counted, "image-text retrieval");
    for (int k = 0; !st && k < nks; k++) {
        if (i2t) i2t[k] = counted ? (double)hits[k] / (double)counted : NAN;
        if (i2t_chance) i2t_chance[k] = counted ? ch[k] / (double)counted : NAN;
    }
    if (!st) st = recall_pass(Tx, nt, I, ni, D, rel_start, rel_img, ks, nks, hits, ch, &counted, "image-text retrieval");
    for (int k = 0; !st && k < nks; k++) {
        if (t2i) t2i[k] = (double)hits[k] / (double)counted;
        if (t2i_chance) t2i_chance[k] = ch[k] / (double)counted;
    }
    free(hits);
    free(ch);
    free(istart);
    free(itxt);
    ct_free(I);
    ct_free(Tx);
    return st;
}

/* The distinct captions of a caption dataset, first-seen order, via an open-addressing
 * table of FNV-1a hashes. */
ct_status ct_caption_texts(const ct_caption_dataset *ds, const char ***texts, int64_t *nt, int64_t **rel_start,
                           int64_t **rel_img) {
    *texts = NULL;
    *nt = 0;
    *rel_start = *rel_img = NULL;
    const int64_t n = ds->img.n, ncap = n ? ds->caption_start[n] : 0;
    if (n < 1 || ncap < 1) return ct_error(CT_ERR_ARG, "caption texts: the dataset has no images or captions");
    size_t cap = 16;
    while (cap < 2 * (size_t)ncap) cap *= 2;
    int64_t *slot = malloc(cap * sizeof *slot), *text_of = malloc((size_t)ncap * sizeof *text_of);
    int64_t *count = calloc((size_t)ncap + 1, sizeof *count), *relimg = malloc((size_t)ncap * sizeof *relimg);
    const char **tx = malloc((size_t)ncap * sizeof *tx);
    int64_t *last_img = malloc((size_t)ncap * sizeof *last_img);
    if (!slot || !text_of || !count || !relimg || !tx || !last_img) {
        free(slot); free(text_of); free(count); free(relimg); free(tx); free(last_img);
        return ct_error(CT_ERR_NOMEM, "caption texts: out of memory for %lld captions", (long long)ncap);
    }
    for (size_t s = 0; s < cap; s++) slot[s] = -1;
    int64_t m = 0;
    for (int64_t c = 0; c < ncap; c++) {
        const char *s = ds->captions[c];
        size_t h = ct_fnv1a32(s, strlen(s)) & (cap - 1);
        while (slot[h] >= 0 && strcmp(tx[slot[h]], s)) h = (h + 1) & (cap - 1);
        if (slot[h] < 0) {
            slot[h] = m;
            tx[m++] = s;
        }
        text_of[c] = slot[h];
    }
    /* text -> images, each image once per text (an image may carry a caption twice) */
    for (int64_t t = 0; t < m; t++) last_img[t] = -1;
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = ds->caption_start[i]; c < ds->caption_start[i + 1]; c++)
            if (last_img[text_of[c]] != i) {
                last_img[text_of[c]] = i;
                count[text_of[c] + 1]++;
            }
    for (int64_t t = 0; t < m; t++) count[t + 1] += count[t];
    int64_t *fill = malloc((size_t)(m ? m : 1) * sizeof *fill);
    if (!fill) {
        free(slot); free(text_of); free(count); free(relimg); free(tx); free(last_img);
        return ct_error(CT_ERR_NOMEM, "caption texts: out of memory");
    }
    memcpy(fill, count, (size_t)m * sizeof *fill);
    for (int64_t t = 0; t < m; t++) last_img[t] = -1;
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = ds->caption_start[i]; c < ds->caption_start[i + 1]; c++)
            if (last_img[text_of[c]] != i) {
                last_img[text_of[c]] = i;
                relimg[fill[text_of[c]]++] = i;
            }
    free(fill);
    free(slot);
    free(text_of);
    free(last_img);
    *texts = tx;
    *nt = m;
    *rel_start = count;
    *rel_img = relimg;
    return CT_OK;
}

/* ---- top-k --------------------------------------------------------------------------- */

typedef struct {
    float s;
    int64_t i;
} scored;

static int cmp_scored(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

ct_status ct_eval_topk(int64_t *idx, float *score, int64_t *found, const float *gallery, int64_t ng, int64_t D,
                       const float *query, int64_t k) {
    *found = 0;
    if (ng < 1 || D < 1 || k < 1)
        return ct_error(CT_ERR_ARG, "top-k: %lld gallery rows, D=%lld, k=%lld", (long long)ng, (long long)D, (long long)k);
    float *G, *q;
    ct_status st = unit_copy(&G, gallery, ng, D, "top-k (gallery)");
    if (st) return st;
    if ((st = unit_copy(&q, query, 1, D, "top-k (query)"))) {
        ct_free(G);
        return st;
    }
    float *s = ct_alloc((size_t)ng * sizeof *s);
    scored *v = malloc((size_t)ng * sizeof *v);
    if (!s || !v) st = ct_error(CT_ERR_NOMEM, "top-k: out of memory for %lld scores", (long long)ng);
    if (!st) {
        ct_gemm(0, 1, 1, ng, D, 1.0f, q, D, G, D, 0.0f, s, ng);
        for (int64_t i = 0; i < ng; i++) v[i] = (scored){s[i], i};
        qsort(v, (size_t)ng, sizeof *v, cmp_scored);
        int64_t m = k < ng ? k : ng;
        for (int64_t i = 0; i < m; i++) {
            idx[i] = v[i].i;
            if (score) score[i] = v[i].s;
        }
        *found = m;
    }
    ct_free(s);
    free(v);
    ct_free(G);
    ct_free(q);
    return st;
}
