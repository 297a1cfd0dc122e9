/* text.c: text datasets (text:FILE, pairs:FILE, debian-descriptions) and the epoch
 * planner that never puts the same text twice in a batch.
 *
 * Files are read whole (regular files only, capped at CT_TEXT_MAX_FILE), split at
 * '\n' with one '\r' before it dropped, and kept as bytes: nothing is decoded, so
 * invalid UTF-8 passes through to the tokenizer, which takes any bytes. */
#include "../text/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the builder -------------------------------------------------------------------- */
ct_status ct_tb_init(ct_text_builder *tb) {
    memset(tb, 0, sizeof *tb);
    return ct_strmap_init(&tb->labels, 64);
}

void ct_tb_free(ct_text_builder *tb) {
    for (int64_t i = 0; i < tb->labels.n; i++) free(tb->lname[i]);
    ct_strmap_free(&tb->labels);
    free(tb->lname);
    free(tb->pool);
    free(tb->off);
    free(tb->len);
    free(tb->a);
    free(tb->b);
    free(tb->lab);
    memset(tb, 0, sizeof *tb);
}

static int grow(void **p, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return 0;
    int64_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    void *g = realloc(*p, (size_t)c * elem);
    if (!g) return -1;
    *p = g;
    *cap = c;
    return 0;
}

ct_status ct_tb_text(ct_text_builder *tb, const char *s, size_t n, int64_t *idx) {
    if (tb->npool + n + 1 > tb->cpool) {
        size_t c = tb->cpool ? tb->cpool : 1 << 16;
        while (c < tb->npool + n + 1) c *= 2;
        char *g = realloc(tb->pool, c);
        if (!g) return ct_error(CT_ERR_NOMEM, "text dataset: out of memory (%zu bytes)", c);
        tb->pool = g;
        tb->cpool = c;
    }
    int64_t cap = tb->cap;
    if (grow((void **)&tb->off, &cap, tb->n + 1, sizeof *tb->off)) goto nomem;
    cap = tb->cap;
    if (grow((void **)&tb->len, &cap, tb->n + 1, sizeof *tb->len)) goto nomem;
    tb->cap = cap;
    memcpy(tb->pool + tb->npool, s, n);
    tb->pool[tb->npool + n] = '\0';
    tb->off[tb->n] = tb->npool;
    tb->len[tb->n] = n;
    tb->npool += n + 1;
    if (idx) *idx = tb->n;
    tb->n++;
    return CT_OK;
nomem:
    return ct_error(CT_ERR_NOMEM, "text dataset: out of memory (%lld texts)", (long long)tb->n);
}

ct_status ct_tb_label(ct_text_builder *tb, const char *label, size_t llen, int32_t *id) {
    /* label names are C strings (ds->label_name): a NUL inside would cut two labels
     * to one name (and break the sort's lookup) */
    if (memchr(label, '\0', llen)) return ct_error(CT_ERR_FORMAT, "the label holds a NUL byte");
    uint64_t h = ct_text_hash(label, llen);
    int64_t e = ct_strmap_find(&tb->labels, label, llen, h);
    if (e < 0) {
        if (tb->labels.n >= CT_TEXT_MAX_LABELS)
            return ct_error(CT_ERR_FORMAT, "more than %d distinct labels", CT_TEXT_MAX_LABELS);
        char **g = realloc(tb->lname, (size_t)(tb->labels.n + 1) * sizeof *g);
        if (!g) goto nomem;
        tb->lname = g;
        char *c = malloc(llen + 1);
        if (!c) goto nomem;
        memcpy(c, label, llen);
        c[llen] = '\0';
        int added;
        e = ct_strmap_add(&tb->labels, c, llen, h, &added);
        if (e < 0) {
            free(c);
            goto nomem;
        }
        tb->lname[e] = c;
    }
    if (id) *id = (int32_t)e;
    return CT_OK;
nomem:
    return ct_error(CT_ERR_NOMEM, "text dataset: out of memory (%lld labels)", (long long)tb->labels.n);
}

ct_status ct_tb_pair(ct_text_builder *tb, int64_t a, int64_t b, const char *label, size_t llen) {
    int64_t cap = tb->pcap;
    if (grow((void **)&tb->a, &cap, tb->np + 1, sizeof *tb->a)) goto nomem;
    cap = tb->pcap;
    if (grow((void **)&tb->b, &cap, tb->np + 1, sizeof *tb->b)) goto nomem;
    cap = tb->pcap;
    if (grow((void **)&tb->lab, &cap, tb->np + 1, sizeof *tb->lab)) goto nomem;
    tb->pcap = cap;
    int32_t l = -1;
    if (label) {
        ct_status st = ct_tb_label(tb, label, llen, &l);
        if (st) return st;
    }
    tb->a[tb->np] = a;
    tb->b[tb->np] = b;
    tb->lab[tb->np] = l;
    tb->np++;
    return CT_OK;
nomem:
    return ct_error(CT_ERR_NOMEM, "text dataset: out of memory (%lld pairs)", (long long)tb->np);
}

static int str_cmp(const void *pa, const void *pb) {
    return strcmp(*(char *const *)pa, *(char *const *)pb);
}

ct_status ct_tb_finish(ct_text_builder *tb, ct_text_dataset *ds, int dedupe, const char *name) {
    memset(ds, 0, sizeof *ds);
    ct_status st = CT_OK;
    int nl = (int)tb->labels.n;
    /* label names go to the end of the pool, sorted, so ids follow the names */
    char **sorted = nl ? malloc((size_t)nl * sizeof *sorted) : NULL;
    int32_t *remap = nl ? malloc((size_t)nl * sizeof *remap) : NULL;
    size_t lbytes = 0;
    for (int i = 0; i < nl; i++) lbytes += tb->labels.klen[i] + 1;
    char *pool = realloc(tb->pool, tb->npool + lbytes + 1);
    ct_strmap seen = {0};
    int64_t n = tb->n;
    ds->text = malloc(((size_t)n + 1) * sizeof *ds->text);
    ds->len = malloc(((size_t)n + 1) * sizeof *ds->len);
    ds->uniq = malloc(((size_t)n + 1) * sizeof *ds->uniq);
    if ((nl && (!sorted || !remap)) || !pool || !ds->text || !ds->len || !ds->uniq || ct_strmap_init(&seen, n)) {
        if (pool) tb->pool = pool;
        st = ct_error(CT_ERR_NOMEM, "text dataset: out of memory");
        goto done;
    }
    tb->pool = pool;
    for (int i = 0; i < nl; i++) sorted[i] = tb->lname[i];
    if (nl) qsort(sorted, (size_t)nl, sizeof *sorted, str_cmp);
    size_t at = tb->npool;
    if (nl) {
        ds->label_name = malloc((size_t)nl * sizeof *ds->label_name);
        if (!ds->label_name) {
            st = ct_error(CT_ERR_NOMEM, "text dataset: out of memory");
            goto done;
        }
    }
    for (int i = 0; i < nl; i++) {
        int64_t e = ct_strmap_find(&tb->labels, sorted[i], strlen(sorted[i]),
                                   ct_text_hash(sorted[i], strlen(sorted[i])));
        remap[e] = i;
        size_t l = strlen(sorted[i]);
        memcpy(pool + at, sorted[i], l + 1);
        ds->label_name[i] = pool + at; /* fixed below if the pool moved: it does not now */
        at += l + 1;
    }
    ds->nlabels = nl;
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        const char *s = pool + tb->off[i];
        int added;
        int64_t e = ct_strmap_add(&seen, s, tb->len[i], ct_text_hash(s, tb->len[i]), &added);
        if (e < 0) {
            st = CT_ERR_NOMEM;
            goto done;
        }
        if (dedupe && !added) continue;
        ds->text[k] = (char *)s;
        ds->len[k] = tb->len[i];
        ds->uniq[k] = dedupe ? k : -1 - e; /* entry e, mapped to a text below */
        k++;
    }
    ds->ntexts = k;
    if (!dedupe) { /* uniq = the first text with entry e */
        int64_t *first = malloc(((size_t)seen.n + 1) * sizeof *first);
        if (!first) {
            st = ct_error(CT_ERR_NOMEM, "text dataset: out of memory");
            goto done;
        }
        for (int64_t e = 0; e < seen.n; e++) first[e] = -1;
        for (int64_t i = 0; i < k; i++) {
            int64_t e = -1 - ds->uniq[i];
            if (first[e] < 0) first[e] = i;
            ds->uniq[i] = first[e];
        }
        free(first);
    }
    if (tb->np) {
        ds->npairs = tb->np;
        ds->anchor = tb->a;
        ds->positive = tb->b;
        tb->a = tb->b = NULL;
        if (nl) {
            ds->label = tb->lab;
            tb->lab = NULL;
            for (int64_t i = 0; i < ds->npairs; i++) ds->label[i] = remap[ds->label[i]];
        }
    }
    ds->pool = pool;
    tb->pool = NULL;
    snprintf(ds->name, sizeof ds->name, "%s", name);
done:
    ct_strmap_free(&seen);
    free(sorted);
    free(remap);
    ct_tb_free(tb);
    if (st) ct_text_dataset_free(ds);
    return st;
}

void ct_text_dataset_free(ct_text_dataset *ds) {
    if (!ds) return;
    free(ds->text);
    free(ds->len);
    free(ds->uniq);
    free(ds->anchor);
    free(ds->positive);
    free(ds->label);
    free(ds->label_name);
    free(ds->pool);
    memset(ds, 0, sizeof *ds);
}

/* ---- text:FILE and pairs:FILE -------------------------------------------------------- */
static int blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r'))) return 0;
    return 1;
}

static ct_status read_lines(ct_text_dataset *ds, const char *path, int pairs) {
    char *buf;
    size_t size;
    ct_status st = ct_text_read_file(path, CT_TEXT_MAX_FILE, &buf, &size);
    if (st) return st;
    ct_text_builder tb;
    st = ct_tb_init(&tb);
    int64_t line = 0, labelled_line = 0, unlabelled_line = 0;
    for (size_t p = 0; !st && p < size;) {
        char *nl = memchr(buf + p, '\n', size - p);
        size_t end = nl ? (size_t)(nl - buf) : size, n = end - p;
        char *s = buf + p;
        p = end + 1;
        line++;
        if (n > 0 && s[n - 1] == '\r') n--;
        if ((int64_t)n > CT_TEXT_MAX_LINE) {
            st = ct_error(CT_ERR_FORMAT, "%s:%lld: line of %zu bytes, more than %lld", path, (long long)line, n,
                          (long long)CT_TEXT_MAX_LINE);
            break;
        }
        if (blank(s, n)) continue;
        if (!pairs) {
            st = ct_tb_text(&tb, s, n, NULL);
            continue;
        }
        char *f[4];
        size_t fl[4];
        int nf = 0;
        for (size_t i = 0, start = 0; i <= n; i++) {
            if (i == n || s[i] == '\t') {
                if (nf < 4) {
                    f[nf] = s + start;
                    fl[nf] = i - start;
                }
                nf++;
                start = i + 1;
            }
        }
        if (nf < 2 || nf > 3) {
            st = ct_error(CT_ERR_FORMAT, "%s:%lld: %d tab-separated column%s; expected anchor TAB positive [TAB label]",
                          path, (long long)line, nf, nf == 1 ? "" : "s");
            break;
        }
        for (int k = 0; k < nf; k++)
            if (blank(f[k], fl[k])) {
                static const char *what[3] = {"anchor", "positive", "label"};
                st = ct_error(CT_ERR_FORMAT, "%s:%lld: empty %s (column %d)", path, (long long)line, what[k], k + 1);
                break;
            }
        if (st) break;
        if (nf == 3 && !labelled_line) labelled_line = line;
        if (nf == 2 && !unlabelled_line) unlabelled_line = line;
        if (labelled_line && unlabelled_line) {
            st = ct_error(CT_ERR_FORMAT, "%s:%lld: %s but line %lld %s; label every pair or none", path,
                          (long long)line, nf == 3 ? "has a label" : "has no label",
                          (long long)(nf == 3 ? unlabelled_line : labelled_line), nf == 3 ? "has none" : "has one");
            break;
        }
        int64_t a, b;
        st = ct_tb_text(&tb, f[0], fl[0], &a);
        if (!st) st = ct_tb_text(&tb, f[1], fl[1], &b);
        if (!st) st = ct_tb_pair(&tb, a, b, nf == 3 ? f[2] : NULL, nf == 3 ? fl[2] : 0);
        if (st == CT_ERR_FORMAT) st = ct_error(st, "%s:%lld: %s", path, (long long)line, ct_errmsg());
    }
    free(buf);
    if (!st && tb.n == 0) st = ct_error(CT_ERR_FORMAT, "%s: no %s (every line is empty)", path, pairs ? "pairs" : "texts");
    if (st) {
        ct_tb_free(&tb);
        return st;
    }
    st = ct_tb_finish(&tb, ds, !pairs, pairs ? "pairs" : "text");
    if (st) return ct_error(st, "%s: %s", path, ct_errmsg());
    return CT_OK;
}

ct_status ct_text_dataset_load(ct_text_dataset *ds, const char *spec, int train) {
    memset(ds, 0, sizeof *ds);
    if (!strncmp(spec, "text:", 5)) return read_lines(ds, spec + 5, 0);
    if (!strncmp(spec, "pairs:", 6)) return read_lines(ds, spec + 6, 1);
    if (!strcmp(spec, "debian-descriptions")) return ct_debian_dataset(ds, train);
    return ct_error(CT_ERR_ARG, "unknown text data \"%s\" (expected text:FILE, pairs:FILE or debian-descriptions)",
                    spec);
}

/* ---- the epoch planner ----------------------------------------------------------------- */
/* The stream of the epoch's permutation in ct_rng_key (see CT_SHUFFLE_STREAM for images). */
#define TEXT_SHUFFLE_STREAM 0x7465787473ull

/* Puts item `it` in batch `nb` unless one of its texts is there already. */
static int take(const ct_text_dataset *ds, int paired, int64_t it, int64_t *stamp, int64_t nb) {
    int64_t u1 = paired ? ds->uniq[ds->anchor[it]] : ds->uniq[it];
    int64_t u2 = paired ? ds->uniq[ds->positive[it]] : u1;
    if (stamp[u1] == nb || stamp[u2] == nb) return 0;
    stamp[u1] = stamp[u2] = nb;
    return 1;
}

ct_status ct_text_epoch_plan(ct_text_epoch *ep, const ct_text_dataset *ds, int64_t batch, int drop_last,
                             uint64_t seed, int64_t epoch) {
    memset(ep, 0, sizeof *ep);
    int paired = ds->npairs > 0;
    int64_t n = paired ? ds->npairs : ds->ntexts;
    if (batch < 1) return ct_error(CT_ERR_ARG, "text batches: batch size %lld < 1", (long long)batch);
    if (n == 0) return ct_error(CT_ERR_ARG, "text batches: the dataset is empty");
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    int64_t *stamp = malloc((size_t)ds->ntexts * sizeof *stamp);
    ep->item = malloc((size_t)n * sizeof *ep->item);
    ep->start = malloc(((size_t)n + 2) * sizeof *ep->start);
    if (!perm || !stamp || !ep->item || !ep->start) {
        free(perm);
        free(stamp);
        ct_text_epoch_free(ep);
        return ct_error(CT_ERR_NOMEM, "text batches: out of memory for %lld items", (long long)n);
    }
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    ct_rng r = ct_rng_make(ct_rng_key(seed, (uint64_t)epoch, (uint64_t)n, TEXT_SHUFFLE_STREAM));
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)ct_rng_below(&r, (uint64_t)i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int64_t i = 0; i < ds->ntexts; i++) stamp[i] = -1;
    /* Items are taken in permutation order. One that clashes with its batch waits in
     * `wait` (in order, all of them before the cursor's items), and each batch looks
     * at the waiting items first, so the cost stays linear when clashes are few. */
    int64_t cur = 0, nwait = 0, nb = 0, ni = 0;
    int64_t *wait = malloc((size_t)n * sizeof *wait);
    if (!wait) {
        free(perm);
        free(stamp);
        ct_text_epoch_free(ep);
        return ct_error(CT_ERR_NOMEM, "text batches: out of memory for %lld items", (long long)n);
    }
    ep->start[0] = 0;
    while (nwait > 0 || cur < n) {
        int64_t took = 0, keep = 0;
        for (int64_t i = 0; i < nwait; i++) {
            int64_t it = wait[i];
            if (took < batch && take(ds, paired, it, stamp, nb)) ep->item[ni + took++] = it;
            else wait[keep++] = it;
        }
        while (took < batch && cur < n) {
            int64_t it = perm[cur++];
            if (take(ds, paired, it, stamp, nb)) ep->item[ni + took++] = it;
            else wait[keep++] = it;
        }
        nwait = keep;
        if (took < batch && drop_last) break;
        ni += took;
        ep->start[++nb] = ni;
    }
    free(wait);
    free(perm);
    free(stamp);
    ep->nbatches = nb;
    ep->nitems = ni;
    return CT_OK;
}

void ct_text_epoch_free(ct_text_epoch *ep) {
    if (!ep) return;
    free(ep->item);
    free(ep->start);
    memset(ep, 0, sizeof *ep);
}
