/* debian.c: the built-in corpus `debian-descriptions`: each Debian package's short
 * description paired with its long one, labelled with the package's Section.
 *
 * Sources (fetched by `sh tools/deps.sh text` through apt itself, see docs/text.md):
 *   LISTS/ *_i18n_Translation-en  stanzas "Package:", "Description-en: SHORT" and the
 *                                 long body on continuation lines (" ." a blank line)
 *   LISTS/ *_Packages             stanzas "Package:", "Section:"
 * Both are deb822: stanzas separated by blank lines, a field's continuation lines
 * start with a space or tab. Files are read in name order, so which Section wins
 * for a package in several lists (the first seen) does not depend on the directory.
 *
 * The corpus is built once into a cache file (a TSV with a header line carrying a
 * fingerprint of the lists: names, sizes, mtimes) and rebuilt when the lists change.
 * The split: a package is in the test split when FNV-1a 32 of its name % 10 == 0. */
#include "../text/internal.h"

#include "contrast/io.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CACHE_MAGIC "# contrast debian-descriptions 1 "
#define LIST_MAX ((int64_t)1 << 30) /* a list file over 1 GiB is refused */

/* ---- finding the lists ----------------------------------------------------------------- */
typedef struct {
    char **name;
    int n;
} names_t;

static void names_free(names_t *L) {
    for (int i = 0; i < L->n; i++) free(L->name[i]);
    free(L->name);
    memset(L, 0, sizeof *L);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Full paths of dir's files ending in `suffix`, sorted. */
static ct_status list_files(const char *dir, const char *suffix, names_t *out) {
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d) return ct_error(CT_ERR_IO, "%s: cannot open the folder: %s", dir, strerror(errno));
    struct dirent *e;
    ct_status st = CT_OK;
    while ((e = readdir(d))) {
        if (!ends_with(e->d_name, suffix)) continue;
        char **g = realloc(out->name, (size_t)(out->n + 1) * sizeof *g);
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(n);
        if (g) out->name = g;
        if (!g || !p) {
            free(p);
            st = ct_error(CT_ERR_NOMEM, "%s: out of memory", dir);
            break;
        }
        snprintf(p, n, "%s/%s", dir, e->d_name);
        out->name[out->n++] = p;
    }
    closedir(d);
    if (st) names_free(out);
    else if (out->n) qsort(out->name, (size_t)out->n, sizeof *out->name, name_cmp);
    return st;
}

/* The lists a build reads and their fingerprint (16 hex digits over the paths,
 * sizes and mtimes). A folder without Translation-en files is an error that says
 * what to run. */
static ct_status find_lists(const char *dir, names_t *trans, names_t *pkgs, char fp[17]) {
    ct_status st = list_files(dir, "_i18n_Translation-en", trans);
    if (st) return ct_error(st, "debian-descriptions: %s; run `sh tools/deps.sh text` to fetch the apt lists "
                                "with English descriptions (or set CONTRAST_DEBIAN_LISTS)", ct_errmsg());
    if (trans->n == 0) {
        names_free(trans);
        return ct_error(CT_ERR_IO, "debian-descriptions: %s has no *_i18n_Translation-en list; run `sh tools/deps.sh "
                                   "text` to fetch them through apt (or set CONTRAST_DEBIAN_LISTS)", dir);
    }
    st = list_files(dir, "_Packages", pkgs);
    if (!st && pkgs->n == 0)
        st = ct_error(CT_ERR_IO, "debian-descriptions: %s has no uncompressed *_Packages list; run `sh tools/deps.sh "
                                 "text` to fetch them through apt", dir);
    if (st) {
        names_free(trans);
        return st;
    }
    uint64_t h = 0x6465626961ull;
    for (int k = 0; k < 2; k++) {
        names_t *L = k ? pkgs : trans;
        for (int i = 0; i < L->n; i++) {
            struct stat sb;
            int64_t v[3] = {0, 0, 0};
            if (stat(L->name[i], &sb) == 0) {
                v[0] = (int64_t)sb.st_size;
                v[1] = (int64_t)sb.st_mtim.tv_sec;
                v[2] = (int64_t)sb.st_mtim.tv_nsec;
            }
            h = ct_mix64(h ^ ct_text_hash(L->name[i], strlen(L->name[i])));
            h = ct_mix64(h ^ ct_text_hash(v, sizeof v));
        }
    }
    snprintf(fp, 17, "%016llx", (unsigned long long)h);
    return CT_OK;
}

/* ---- deb822 ------------------------------------------------------------------------------- */
/* Calls back for each stanza with the values (first line, and the continuation
 * lines after it) of two fields; absent fields are NULL. */
typedef struct {
    const char *v[2];
    size_t n[2];
} fields_t;

/* The next stanza from s[*p..n): fills the wanted fields, returns 0 at the end. */
static int next_stanza(const char *s, size_t n, size_t *p, const char *const want[2], fields_t *f) {
    memset(f, 0, sizeof *f);
    size_t i = *p;
    while (i < n && (s[i] == '\n' || (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n'))) i++; /* blank lines */
    if (i >= n) {
        *p = n;
        return 0;
    }
    int cur = -1;
    while (i < n) {
        const char *nl = memchr(s + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - s) : n;
        size_t e = end > i && s[end - 1] == '\r' ? end - 1 : end;
        if (e == i) break; /* blank line: the stanza ends */
        if (s[i] == ' ' || s[i] == '\t') {
            if (cur >= 0) f->n[cur] = e - (size_t)(f->v[cur] - s);
        } else {
            cur = -1;
            const char *colon = memchr(s + i, ':', e - i);
            for (int k = 0; colon && k < 2; k++) {
                size_t kl = strlen(want[k]);
                if ((size_t)(colon - (s + i)) == kl && !memcmp(s + i, want[k], kl)) {
                    size_t v = (size_t)(colon - s) + 1;
                    while (v < e && (s[v] == ' ' || s[v] == '\t')) v++;
                    f->v[k] = s + v;
                    f->n[k] = e - v;
                    cur = k;
                }
            }
        }
        i = end + 1;
    }
    *p = i;
    return 1;
}

/* Appends the words of s[0..n) to out with single spaces (no leading or trailing
 * space); lines that are only "." (deb822's blank line) are dropped. */
static size_t squeeze(char *out, size_t at, const char *s, size_t n) {
    size_t start = at;
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(s + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - s) : n;
        size_t a = i, b = end;
        while (a < b && (s[a] == ' ' || (s[a] >= '\t' && s[a] <= '\r'))) a++;
        while (b > a && (s[b - 1] == ' ' || (s[b - 1] >= '\t' && s[b - 1] <= '\r'))) b--;
        if (!(b == a + 1 && s[a] == '.')) {
            for (size_t k = a; k < b;) {
                if (s[k] == ' ' || (s[k] >= '\t' && s[k] <= '\r')) {
                    while (k < b && (s[k] == ' ' || (s[k] >= '\t' && s[k] <= '\r'))) k++;
                    out[at++] = ' ';
                } else {
                    if (at > start && k == a && out[at - 1] != ' ') out[at++] = ' ';
                    out[at++] = s[k++];
                }
            }
        }
        i = end + 1;
    }
    return at;
}

/* ---- building the cache ------------------------------------------------------------------ */
typedef struct {
    const char *pkg;      /* into a list's buffer */
    size_t npkg;
    size_t off;           /* into the text pool: "short\tlong" */
    size_t nshort, nlong;
    const char *sec;
    size_t nsec;
} rec_t;

static const char *g_pool; /* for rec_cmp: qsort has no context argument */

static int rec_cmp(const void *pa, const void *pb) {
    const rec_t *a = pa, *b = pb;
    size_t n = a->npkg < b->npkg ? a->npkg : b->npkg;
    int c = memcmp(a->pkg, b->pkg, n);
    if (c) return c;
    if (a->npkg != b->npkg) return a->npkg < b->npkg ? -1 : 1;
    size_t la = a->nshort + 1 + a->nlong, lb = b->nshort + 1 + b->nlong;
    c = memcmp(g_pool + a->off, g_pool + b->off, la < lb ? la : lb);
    if (c) return c;
    return (la > lb) - (la < lb);
}

static ct_status build_from(const names_t *trans, const names_t *pkgs, const char *lists_dir, const char *fp,
                            const char *cache_path, int64_t *npairs) {
    ct_status st = CT_OK;
    int nfiles = trans->n + pkgs->n;
    char **buf = calloc((size_t)nfiles, sizeof *buf);
    size_t *len = calloc((size_t)nfiles, sizeof *len);
    ct_strmap sec = {0}, uniq = {0};
    const char **secval = NULL;
    size_t *seclen = NULL;
    rec_t *rec = NULL;
    int64_t nrec = 0, crec = 0;
    char *pool = NULL;
    size_t npool = 0, cpool = 0;
    char *out = NULL;
    size_t nout = 0;
    FILE *mf = NULL;
    if (!buf || !len || ct_strmap_init(&sec, 1 << 16) || ct_strmap_init(&uniq, 1 << 16)) goto nomem;
    for (int i = 0; i < nfiles && !st; i++)
        st = ct_text_read_file(i < trans->n ? trans->name[i] : pkgs->name[i - trans->n], LIST_MAX, &buf[i], &len[i]);
    if (st) goto done;
    /* Section of each package: the first one seen */
    int64_t csec = 0;
    for (int i = trans->n; i < nfiles; i++) {
        static const char *const want[2] = {"Package", "Section"};
        size_t p = 0;
        fields_t f;
        while (next_stanza(buf[i], len[i], &p, want, &f)) {
            if (!f.v[0] || !f.v[1] || f.n[0] == 0 || f.n[1] == 0) continue;
            int added;
            int64_t e = ct_strmap_add(&sec, f.v[0], f.n[0], ct_text_hash(f.v[0], f.n[0]), &added);
            if (e < 0) goto nomem;
            if (!added) continue;
            if (e >= csec) {
                csec = csec ? 2 * csec : 1 << 16;
                const char **g = realloc(secval, (size_t)csec * sizeof *g);
                size_t *h = realloc(seclen, (size_t)csec * sizeof *h);
                if (g) secval = g;
                if (h) seclen = h;
                if (!g || !h) goto nomem;
            }
            secval[e] = f.v[1];
            seclen[e] = f.n[1];
        }
    }
    /* every description with a Section, whitespace squeezed */
    for (int i = 0; i < trans->n; i++) {
        static const char *const want[2] = {"Package", "Description-en"};
        size_t p = 0;
        fields_t f;
        while (next_stanza(buf[i], len[i], &p, want, &f)) {
            if (!f.v[0] || !f.v[1] || f.n[0] == 0) continue;
            int64_t e = ct_strmap_find(&sec, f.v[0], f.n[0], ct_text_hash(f.v[0], f.n[0]));
            if (e < 0) continue;
            const char *nl = memchr(f.v[1], '\n', f.n[1]);
            size_t ns = nl ? (size_t)(nl - f.v[1]) : f.n[1];
            if (npool + f.n[1] + 2 > cpool) {
                size_t c = cpool ? cpool : 1 << 20;
                while (c < npool + f.n[1] + 2) c *= 2;
                char *g = realloc(pool, c);
                if (!g) goto nomem;
                pool = g;
                cpool = c;
            }
            size_t a = squeeze(pool, npool, f.v[1], ns);
            size_t b = squeeze(pool, a + 1, f.v[1] + ns, f.n[1] - ns);
            if (a == npool || b == a + 1) continue; /* no short or no long description */
            pool[a] = '\t';
            if (nrec == crec) {
                crec = crec ? 2 * crec : 1 << 16;
                rec_t *g = realloc(rec, (size_t)crec * sizeof *g);
                if (!g) goto nomem;
                rec = g;
            }
            rec[nrec++] = (rec_t){f.v[0], f.n[0], npool, a - npool, b - a - 1, secval[e], seclen[e]};
            npool = b;
        }
    }
    g_pool = pool;
    if (nrec) qsort(rec, (size_t)nrec, sizeof *rec, rec_cmp);
    mf = open_memstream(&out, &nout);
    if (!mf) goto nomem;
    fprintf(mf, "%s%s %s\n", CACHE_MAGIC, fp, lists_dir);
    int64_t kept = 0;
    for (int64_t i = 0; i < nrec; i++) {
        const char *s = pool + rec[i].off;
        size_t n = rec[i].nshort + 1 + rec[i].nlong;
        int added;
        if (ct_strmap_add(&uniq, s, n, ct_text_hash(s, n), &added) < 0) goto nomem;
        if (!added) continue;
        fwrite(rec[i].pkg, 1, rec[i].npkg, mf);
        fputc('\t', mf);
        fwrite(rec[i].sec, 1, rec[i].nsec, mf);
        fputc('\t', mf);
        fwrite(s, 1, n, mf);
        fputc('\n', mf);
        kept++;
    }
    if (fclose(mf) != 0) {
        mf = NULL;
        goto nomem;
    }
    mf = NULL;
    ct_atomic_file af;
    st = ct_atomic_open(&af, cache_path);
    if (!st) st = ct_atomic_write(&af, out, nout);
    if (!st) st = ct_atomic_commit(&af);
    if (!st && npairs) *npairs = kept;
    goto done;
nomem:
    st = ct_error(CT_ERR_NOMEM, "debian-descriptions: out of memory reading %s", lists_dir);
done:
    if (mf) fclose(mf);
    free(out);
    for (int i = 0; buf && i < nfiles; i++) free(buf[i]);
    free(buf);
    free(len);
    ct_strmap_free(&sec);
    ct_strmap_free(&uniq);
    free(secval);
    free(seclen);
    free(rec);
    free(pool);
    return st;
}

ct_status ct_debian_build(const char *lists_dir, const char *cache_path, int64_t *npairs) {
    names_t trans, pkgs;
    char fp[17];
    ct_status st = find_lists(lists_dir, &trans, &pkgs, fp);
    if (st) return st;
    st = build_from(&trans, &pkgs, lists_dir, fp, cache_path, npairs);
    names_free(&trans);
    names_free(&pkgs);
    return st;
}

/* ---- reading the cache ------------------------------------------------------------------- */
/* Checks the header; fp (may be NULL) gets its fingerprint. */
static ct_status cache_header(const char *path, const char *s, size_t n, char fp[17], size_t *body) {
    size_t ml = strlen(CACHE_MAGIC);
    const char *nl = memchr(s, '\n', n);
    if (n < ml + 16 || memcmp(s, CACHE_MAGIC, ml) != 0 || !nl)
        return ct_error(CT_ERR_FORMAT, "%s: not a debian-descriptions cache (expected a first line \"%s...\")", path,
                        CACHE_MAGIC);
    if (fp) {
        memcpy(fp, s + ml, 16);
        fp[16] = '\0';
    }
    *body = (size_t)(nl - s) + 1;
    return CT_OK;
}

ct_status ct_debian_load(ct_text_dataset *ds, const char *cache_path, int train) {
    memset(ds, 0, sizeof *ds);
    char *s;
    size_t n, p;
    ct_status st = ct_text_read_file(cache_path, CT_TEXT_MAX_FILE, &s, &n);
    if (st) return st;
    st = cache_header(cache_path, s, n, NULL, &p);
    ct_text_builder tb;
    if (!st) st = ct_tb_init(&tb);
    if (st) {
        free(s);
        return st;
    }
    int64_t line = 1;
    while (!st && p < n) {
        line++;
        const char *nl = memchr(s + p, '\n', n - p);
        size_t end = nl ? (size_t)(nl - s) : n;
        const char *f[4];
        size_t fl[4];
        int nf = 0;
        for (size_t i = p, start = p; i <= end; i++) {
            if (i == end || s[i] == '\t') {
                if (nf < 4) {
                    f[nf] = s + start;
                    fl[nf] = i - start;
                }
                nf++;
                start = i + 1;
            }
        }
        p = end + 1;
        if (nf != 4 || !fl[0] || !fl[1] || !fl[2] || !fl[3]) {
            st = ct_error(CT_ERR_FORMAT, "%s:%lld: expected package TAB section TAB short TAB long; delete the file to "
                                         "rebuild it", cache_path, (long long)line);
            break;
        }
        int test = ct_fnv1a32(f[0], fl[0]) % 10 == 0;
        /* every Section becomes a label of both splits, so ids agree between them */
        if (test == !!train) {
            st = ct_tb_label(&tb, f[1], fl[1], NULL);
        } else {
            int64_t a, b;
            st = ct_tb_text(&tb, f[2], fl[2], &a);
            if (!st) st = ct_tb_text(&tb, f[3], fl[3], &b);
            if (!st) st = ct_tb_pair(&tb, a, b, f[1], fl[1]);
        }
        if (st == CT_ERR_FORMAT) st = ct_error(st, "%s:%lld: %s", cache_path, (long long)line, ct_errmsg());
    }
    free(s);
    if (!st && tb.np == 0) st = ct_error(CT_ERR_FORMAT, "%s: no pairs", cache_path);
    if (st) {
        ct_tb_free(&tb);
        return st;
    }
    return ct_tb_finish(&tb, ds, 0, "debian-descriptions");
}

/* ---- where the lists and the cache are ---------------------------------------------------- */
/* mkdir -p */
static int make_dirs(char *path) {
    for (char *c = path + 1; *c; c++) {
        if (*c != '/') continue;
        *c = '\0';
        int r = mkdir(path, 0755);
        *c = '/';
        if (r != 0 && errno != EEXIST) return -1;
    }
    return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

/* The cache's folder: $CONTRAST_CACHE, else $XDG_CACHE_HOME/contrast, else
 * $HOME/.cache/contrast. */
static ct_status cache_file(char **out) {
    const char *env = getenv("CONTRAST_CACHE"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[4096];
    if (env && *env) snprintf(dir, sizeof dir, "%s", env);
    else if (xdg && *xdg) snprintf(dir, sizeof dir, "%s/contrast", xdg);
    else if (home && *home) snprintf(dir, sizeof dir, "%s/.cache/contrast", home);
    else return ct_error(CT_ERR_IO, "debian-descriptions: no folder for the cache (set CONTRAST_CACHE or HOME)");
    if (make_dirs(dir) != 0)
        return ct_error(CT_ERR_IO, "%s: cannot create the cache folder: %s (set CONTRAST_CACHE to a writable folder)",
                        dir, strerror(errno));
    size_t n = strlen(dir) + 40;
    *out = malloc(n);
    if (!*out) return ct_error(CT_ERR_NOMEM, "out of memory");
    snprintf(*out, n, "%s/debian-descriptions.tsv", dir);
    return CT_OK;
}

ct_status ct_debian_dataset(ct_text_dataset *ds, int train) {
    memset(ds, 0, sizeof *ds);
    const char *lists = getenv("CONTRAST_DEBIAN_LISTS");
    if (!lists || !*lists) lists = CT_DEBIAN_LISTS_DIR;
    char *cache;
    ct_status st = cache_file(&cache);
    if (st) return st;
    names_t trans, pkgs;
    char fp[17];
    ct_status missing = find_lists(lists, &trans, &pkgs, fp);
    char *why = missing ? strdup(ct_errmsg()) : NULL;
    /* the cache is used when it matches the lists, or when the lists are gone */
    int fresh = 0;
    FILE *f = fopen(cache, "rb");
    if (f) {
        char head[256];
        size_t n = fread(head, 1, sizeof head, f), body;
        fclose(f);
        char cfp[17];
        if (cache_header(cache, head, n, cfp, &body) == CT_OK) fresh = missing || !strcmp(cfp, fp);
    }
    if (!fresh && missing) {
        st = ct_error(missing, "%s", why ? why : "debian-descriptions: apt lists missing");
    } else if (!fresh) {
        st = build_from(&trans, &pkgs, lists, fp, cache, NULL);
    }
    if (!missing) {
        names_free(&trans);
        names_free(&pkgs);
    }
    free(why);
    if (!st) st = ct_debian_load(ds, cache, train);
    free(cache);
    return st;
}
