/* emoji.c: the built-in emoji image-caption set and its held-out rule
 * (contrast/captions.h, docs/clip-data.md).
 *
 * Two art styles of the same emoji: EmojiOne 3.3 (Debian's ruby-gemojione:
 * config/index.json with name, keywords, category; assets/png/<CODEPOINTS>.png,
 * 64x64) and Twemoji (npm emoji-datasource-twitter 16: emoji.json with name,
 * short_names, category, unified code points, image; img/twitter/64/<image>).
 *
 * One emoji is one key (ct_emoji_key of its code points). Skin-tone variants are
 * images of their base emoji: a Twemoji entry's skin_variations, an EmojiOne entry
 * whose code points carry a modifier (its name, "... tone 3", is not used). EmojiOne
 * 3.3 writes some ZWJ sequences without U+200D (families, couples, the rainbow
 * flag); when its key is not Twemoji's, it matches the Twemoji key that is equal
 * once U+200D is dropped too. The five lone skin-tone swatches (empty key) are no
 * emoji of anything and are left out.
 *
 * The held-out rule lives here once: ct_emoji_is_heldout. */
#include "contrast/io.h"
#include "data_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the held-out rule --------------------------------------------------------- */

static uint32_t fnv(const char *s) { return ct_fnv1a32(s, strlen(s)); }

static int is_skin_tone(unsigned long cp) { return cp >= 0x1F3FB && cp <= 0x1F3FF; }

ct_status ct_emoji_key(char *buf, size_t cap, const char *cps) {
    if (!cps || !*cps || cap == 0) return ct_error(CT_ERR_ARG, "emoji key: empty code point list");
    size_t len = 0;
    buf[0] = '\0';
    const char *p = cps;
    for (;;) {
        unsigned long cp = 0;
        int digits = 0;
        while (isxdigit((unsigned char)*p) && digits < 7) {
            int c = tolower((unsigned char)*p++);
            cp = cp * 16 + (unsigned long)(c <= '9' ? c - '0' : c - 'a' + 10);
            digits++;
        }
        if (digits == 0 || cp > 0x10FFFF || (*p && *p != '-'))
            return ct_error(CT_ERR_ARG, "emoji key: '%s' is not hex code points joined by '-'", cps);
        if (cp != 0xFE0F && !is_skin_tone(cp)) {
            int w = snprintf(buf + len, cap - len, "%s%04lx", len ? "-" : "", cp);
            if (w < 0 || (size_t)w >= cap - len) return ct_error(CT_ERR_ARG, "emoji key: '%s' is too long", cps);
            len += (size_t)w;
        }
        if (!*p) break;
        p++;
    }
    return CT_OK;
}

int ct_emoji_is_heldout(const char *cps) {
    char key[256];
    if (ct_emoji_key(key, sizeof key, cps)) return -1;
    return fnv(key) % 5 == 0;
}

/* ---- a small JSON reader (the two metadata files) ------------------------------- */
/* A tree of values; objects keep their members in file order. Depth is capped. */
enum { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };
typedef struct jv {
    int t;
    char *key;  /* member name inside an object, else NULL */
    char *s;    /* J_STR: decoded UTF-8; J_NUM: the literal */
    struct jv *kid, *next;
} jv;

typedef struct {
    const char *p, *start, *end, *path;
    int depth;
} jcur;

#define JSON_MAX_DEPTH 32

static void jv_free(jv *v) {
    while (v) {
        jv *n = v->next;
        jv_free(v->kid);
        free(v->key);
        free(v->s);
        free(v);
        v = n;
    }
}

static ct_status jfail(const jcur *c, const char *what) {
    return ct_error(CT_ERR_FORMAT, "%s: bad JSON at byte %lld: %s", c->path, (long long)(c->p - c->start), what);
}

static void jws(jcur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int ch = (unsigned char)p[i];
        if (!isxdigit(ch)) return -1;
        ch = tolower(ch);
        v = v * 16 + (unsigned)(ch <= '9' ? ch - '0' : ch - 'a' + 10);
    }
    *out = v;
    return 0;
}

/* At an opening quote: the decoded string (escapes, \u with surrogate pairs). */
static ct_status jstring(jcur *c, char **out) {
    c->p++;
    const char *q = c->p;
    while (q < c->end && *q != '"') q += (*q == '\\' && q + 1 < c->end) ? 2 : 1;
    if (q >= c->end) return jfail(c, "unterminated string");
    char *s = malloc((size_t)(q - c->p) + 1), *o = s; /* escapes never grow the text */
    if (!s) return ct_error(CT_ERR_NOMEM, "%s: out of memory", c->path);
    while (c->p < q) {
        unsigned char ch = (unsigned char)*c->p++;
        if (ch < 0x20) { free(s); return jfail(c, "control character in a string"); }
        if (ch != '\\') { *o++ = (char)ch; continue; }
        char e = *c->p++;
        switch (e) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (q - c->p < 4 || hex4(c->p, &cp)) { free(s); return jfail(c, "bad \\u escape"); }
            c->p += 4;
            if (cp >= 0xD800 && cp < 0xDC00) {
                if (q - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u' || hex4(c->p + 2, &lo) || lo < 0xDC00 ||
                    lo > 0xDFFF) {
                    free(s);
                    return jfail(c, "unpaired surrogate");
                }
                c->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                free(s);
                return jfail(c, "unpaired surrogate");
            }
            if (cp == 0) { free(s); return jfail(c, "\\u0000 in a string"); }
            /* \uXXXX is 6 bytes of input; UTF-8 needs at most 4 (a pair: 12 -> 4) */
            if (cp < 0x80) *o++ = (char)cp;
            else if (cp < 0x800) { *o++ = (char)(0xC0 | cp >> 6); *o++ = (char)(0x80 | (cp & 0x3F)); }
            else if (cp < 0x10000) {
                *o++ = (char)(0xE0 | cp >> 12); *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                *o++ = (char)(0x80 | (cp & 0x3F));
            } else {
                *o++ = (char)(0xF0 | cp >> 18); *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
                *o++ = (char)(0x80 | ((cp >> 6) & 0x3F)); *o++ = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default: free(s); return jfail(c, "bad escape");
        }
    }
    *o = '\0';
    c->p = q + 1;
    *out = s;
    return CT_OK;
}

static ct_status jvalue(jcur *c, jv **out);

/* Members / elements up to `close`; object members get keys. */
static ct_status jcontainer(jcur *c, jv *v, char close) {
    if (++c->depth > JSON_MAX_DEPTH) return jfail(c, "nested too deeply");
    c->p++;
    jws(c);
    jv **tail = &v->kid;
    if (c->p < c->end && *c->p == close) { c->p++; c->depth--; return CT_OK; }
    for (;;) {
        char *key = NULL;
        ct_status st;
        jws(c);
        if (close == '}') {
            if (c->p >= c->end || *c->p != '"') return jfail(c, "expected a member name");
            if ((st = jstring(c, &key))) return st;
            jws(c);
            if (c->p >= c->end || *c->p != ':') { free(key); return jfail(c, "expected ':'"); }
            c->p++;
        }
        jv *kid = NULL;
        if ((st = jvalue(c, &kid))) { free(key); return st; }
        kid->key = key;
        *tail = kid;
        tail = &kid->next;
        jws(c);
        if (c->p < c->end && *c->p == ',') { c->p++; continue; }
        if (c->p < c->end && *c->p == close) { c->p++; break; }
        return jfail(c, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    c->depth--;
    return CT_OK;
}

static ct_status jvalue(jcur *c, jv **out) {
    jws(c);
    if (c->p >= c->end) return jfail(c, "unexpected end");
    jv *v = calloc(1, sizeof *v);
    if (!v) return ct_error(CT_ERR_NOMEM, "%s: out of memory", c->path);
    *out = v;
    ct_status st = CT_OK;
    char ch = *c->p;
    size_t left = (size_t)(c->end - c->p);
    if (ch == '{') { v->t = J_OBJ; st = jcontainer(c, v, '}'); }
    else if (ch == '[') { v->t = J_ARR; st = jcontainer(c, v, ']'); }
    else if (ch == '"') { v->t = J_STR; st = jstring(c, &v->s); }
    else if (left >= 4 && !memcmp(c->p, "null", 4)) { v->t = J_NULL; c->p += 4; }
    else if (left >= 4 && !memcmp(c->p, "true", 4)) { v->t = J_TRUE; c->p += 4; }
    else if (left >= 5 && !memcmp(c->p, "false", 5)) { v->t = J_FALSE; c->p += 5; }
    else if (ch == '-' || (ch >= '0' && ch <= '9')) {
        const char *q = c->p;
        while (q < c->end && strchr("+-.eE0123456789", *q)) q++;
        v->t = J_NUM;
        if (!(v->s = strndup(c->p, (size_t)(q - c->p)))) st = ct_error(CT_ERR_NOMEM, "%s: out of memory", c->path);
        c->p = q;
    } else st = jfail(c, "unexpected character");
    if (st) { jv_free(v); *out = NULL; }
    return st;
}

static ct_status json_read(const char *path, jv **root) {
    *root = NULL;
    FILE *f;
    int64_t size;
    ct_status st = ct_fopen_regular(path, &f, &size);
    if (st) return st;
    if (size > ((int64_t)64 << 20)) {
        fclose(f);
        return ct_error(CT_ERR_FORMAT, "%s: %lld bytes, more than the 64 MiB expected of emoji metadata", path,
                        (long long)size);
    }
    char *buf = malloc((size_t)size + 1);
    if (!buf) { fclose(f); return ct_error(CT_ERR_NOMEM, "%s: out of memory", path); }
    size_t got = fread(buf, 1, (size_t)size, f);
    fclose(f);
    if (got != (size_t)size) { free(buf); return ct_error(CT_ERR_IO, "%s: read failed", path); }
    jcur c = {buf, buf, buf + size, path, 0};
    st = jvalue(&c, root);
    if (!st) {
        jws(&c);
        if (c.p != c.end) st = jfail(&c, "text after the value");
    }
    if (st) { jv_free(*root); *root = NULL; }
    free(buf);
    return st;
}

static const jv *jget(const jv *obj, const char *key) {
    if (!obj || obj->t != J_OBJ) return NULL;
    for (const jv *m = obj->kid; m; m = m->next)
        if (!strcmp(m->key, key)) return m;
    return NULL;
}

static const char *jstr(const jv *obj, const char *key) {
    const jv *v = jget(obj, key);
    return v && v->t == J_STR ? v->s : NULL;
}

/* ---- emoji records --------------------------------------------------------------- */

typedef struct {
    char *path, *file;
} emo_image;

typedef struct {
    char key[160];
    char *tw_name, *eo_name;   /* lowercased; either may be NULL */
    char *short_name;          /* Twemoji's first short name, as a keyword, or NULL */
    const char *name[2];       /* the names used (see resolve_names); NULL-padded */
    char **kw;                 /* keywords, deduplicated */
    int nkw, kwcap;
    emo_image *img;
    int nimg, imgcap;
} emo;

typedef struct {
    emo *v;
    int n, cap;
    int *slot;           /* hash of key -> index + 1 */
    int *zslot;          /* hash of key without 200d -> index + 1, negated when ambiguous */
    char (*zkey)[160];   /* (n) keys without 200d */
    size_t mask;
} emo_set;

static void set_free(emo_set *s) {
    for (int i = 0; i < s->n; i++) {
        emo *e = &s->v[i];
        free(e->tw_name); free(e->eo_name); free(e->short_name);
        for (int k = 0; k < e->nkw; k++) free(e->kw[k]);
        free(e->kw);
        for (int k = 0; k < e->nimg; k++) { free(e->img[k].path); free(e->img[k].file); }
        free(e->img);
    }
    free(s->v); free(s->slot); free(s->zslot); free(s->zkey);
    memset(s, 0, sizeof *s);
}

static void strip_zwj(char *out, const char *key) {
    size_t o = 0;
    for (const char *p = key; *p;) {
        const char *d = strchr(p, '-');
        size_t n = d ? (size_t)(d - p) : strlen(p);
        if (!(n == 4 && !memcmp(p, "200d", 4))) {
            if (o) out[o++] = '-';
            memcpy(out + o, p, n);
            o += n;
        }
        p += n + (d != NULL);
    }
    out[o] = '\0';
}

/* Index of the record with `key` (created when `create`), or -1. */
static int set_find(emo_set *s, const char *key, int create, ct_status *st) {
    size_t h = fnv(key) & s->mask;
    while (s->slot[h] && strcmp(s->v[s->slot[h] - 1].key, key)) h = (h + 1) & s->mask;
    if (s->slot[h] || !create) return s->slot[h] - 1;
    if (s->n == s->cap) { *st = ct_error(CT_ERR_FORMAT, "emoji: more than %d emoji", s->cap); return -1; }
    emo *e = &s->v[s->n];
    memset(e, 0, sizeof *e);
    snprintf(e->key, sizeof e->key, "%s", key);
    strip_zwj(s->zkey[s->n], key);
    size_t z = fnv(s->zkey[s->n]) & s->mask;
    while (s->zslot[z] && strcmp(s->zkey[abs(s->zslot[z]) - 1], s->zkey[s->n])) z = (z + 1) & s->mask;
    /* the same ZWJ-less key twice: marked ambiguous (negative), never matched */
    s->zslot[z] = s->zslot[z] ? -abs(s->zslot[z]) : s->n + 1;
    s->slot[h] = ++s->n;
    return s->n - 1;
}

/* The record whose key matches once U+200D is dropped from both, or -1. */
static int set_find_zwjless(const emo_set *s, const char *key) {
    char z[160];
    strip_zwj(z, key);
    size_t h = fnv(z) & s->mask;
    while (s->zslot[h] && strcmp(s->zkey[abs(s->zslot[h]) - 1], z)) h = (h + 1) & s->mask;
    return s->zslot[h] > 0 ? s->zslot[h] - 1 : -1;
}

static ct_status add_image(emo *e, const char *dir, const char *sub, const char *style, const char *name) {
    if (e->nimg == e->imgcap) {
        int cap = e->imgcap ? 2 * e->imgcap : 4;
        emo_image *v = realloc(e->img, (size_t)cap * sizeof *v);
        if (!v) return ct_error(CT_ERR_NOMEM, "emoji: out of memory");
        e->img = v;
        e->imgcap = cap;
    }
    if (strchr(name, '/') || !strcmp(name, "..")) return ct_error(CT_ERR_FORMAT, "emoji: bad image name '%s'", name);
    char path[8192], file[512];
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    snprintf(file, sizeof file, "%s/%s", style, name);
    emo_image *im = &e->img[e->nimg];
    if (!(im->path = strdup(path)) || !(im->file = strdup(file))) {
        free(im->path);
        return ct_error(CT_ERR_NOMEM, "emoji: out of memory");
    }
    e->nimg++;
    return CT_OK;
}

/* Adds a keyword, lowercased, '_' and '-' as ' ' (short names such as "flag-jp",
 * "man_shrugging"), unless already there. */
static ct_status add_keyword(emo *e, const char *text) {
    char w[256];
    size_t n = 0;
    for (const char *p = text; *p && n + 1 < sizeof w; p++)
        w[n++] = *p == '_' || *p == '-' ? ' ' : (char)tolower((unsigned char)*p);
    w[n] = '\0';
    if (!n) return CT_OK;
    for (int k = 0; k < e->nkw; k++)
        if (!strcmp(e->kw[k], w)) return CT_OK;
    if (e->nkw == e->kwcap) {
        int cap = e->kwcap ? 2 * e->kwcap : 8;
        char **v = realloc(e->kw, (size_t)cap * sizeof *v);
        if (!v) return ct_error(CT_ERR_NOMEM, "emoji: out of memory");
        e->kw = v;
        e->kwcap = cap;
    }
    if (!(e->kw[e->nkw] = strdup(w))) return ct_error(CT_ERR_NOMEM, "emoji: out of memory");
    e->nkw++;
    return CT_OK;
}

static char *lower_name(const char *s) {
    char *d = strdup(s);
    for (char *p = d; p && *p; p++) *p = *p == '_' ? ' ' : (char)tolower((unsigned char)*p);
    return d;
}

static int has_skin_tone(const char *cps) {
    for (const char *p = cps; *p;) {
        unsigned long cp = strtoul(p, NULL, 16);
        if (is_skin_tone(cp)) return 1;
        p = strchr(p, '-');
        if (!p) break;
        p++;
    }
    return 0;
}

static ct_status read_twemoji(emo_set *s, const char *dir) {
    char path[8192];
    snprintf(path, sizeof path, "%s/emoji.json", dir);
    jv *root;
    ct_status st = json_read(path, &root);
    if (st) return st;
    if (root->t != J_ARR) st = ct_error(CT_ERR_FORMAT, "%s: expected an array of emoji", path);
    for (const jv *e = root->kid; e && !st; e = e->next) {
        const char *uni = jstr(e, "unified"), *name = jstr(e, "name"), *img = jstr(e, "image");
        const jv *has = jget(e, "has_img_twitter");
        if (!uni || !name || !img || !has) {
            st = ct_error(CT_ERR_FORMAT, "%s: an entry without unified, name, image or has_img_twitter", path);
            break;
        }
        char key[160];
        if ((st = ct_emoji_key(key, sizeof key, uni))) { st = ct_error(st, "%s: %s", path, ct_errmsg()); break; }
        if (!key[0] || has->t != J_TRUE) continue; /* a lone skin-tone swatch; no Twemoji image */
        int i = set_find(s, key, 1, &st);
        if (i < 0) break;
        emo *r = &s->v[i];
        if (!r->tw_name && !(r->tw_name = lower_name(name))) { st = ct_error(CT_ERR_NOMEM, "out of memory"); break; }
        if ((st = add_image(r, dir, "img/twitter/64", "twemoji", img))) break;
        const jv *sn = jget(e, "short_names");
        for (const jv *k = sn && sn->t == J_ARR ? sn->kid : NULL; k && !st; k = k->next)
            if (k->t == J_STR) st = add_keyword(r, k->s);
        if (!st && !r->short_name && sn && sn->t == J_ARR && sn->kid && sn->kid->t == J_STR) {
            if (!(r->short_name = lower_name(sn->kid->s))) { st = ct_error(CT_ERR_NOMEM, "out of memory"); break; }
            for (char *q = r->short_name; *q; q++) if (*q == '-') *q = ' ';
        }
        const jv *sv = jget(e, "skin_variations");
        for (const jv *v = sv && sv->t == J_OBJ ? sv->kid : NULL; v && !st; v = v->next) {
            const char *vimg = jstr(v, "image");
            const jv *vhas = jget(v, "has_img_twitter");
            if (!vimg || !vhas) {
                st = ct_error(CT_ERR_FORMAT, "%s: a skin variation of %s without image or has_img_twitter", path, uni);
                break;
            }
            if (vhas->t == J_TRUE) st = add_image(r, dir, "img/twitter/64", "twemoji", vimg);
        }
    }
    jv_free(root);
    return st;
}

static ct_status read_emojione(emo_set *s, const char *dir) {
    char path[8192];
    snprintf(path, sizeof path, "%s/config/index.json", dir);
    jv *root;
    ct_status st = json_read(path, &root);
    if (st) return st;
    if (root->t != J_OBJ) st = ct_error(CT_ERR_FORMAT, "%s: expected an object of emoji", path);
    for (const jv *e = root->kid; e && !st; e = e->next) {
        const char *uni = jstr(e, "unicode"), *name = jstr(e, "name");
        if (!uni || !name) { st = ct_error(CT_ERR_FORMAT, "%s: %s: no unicode or name", path, e->key); break; }
        char key[160], file[200];
        if ((st = ct_emoji_key(key, sizeof key, uni))) { st = ct_error(st, "%s: %s", path, ct_errmsg()); break; }
        if (!key[0]) continue; /* a lone skin-tone swatch */
        int i = set_find(s, key, 0, &st);
        if (i < 0) i = set_find_zwjless(s, key);
        if (i < 0) i = set_find(s, key, 1, &st);
        if (i < 0) break;
        emo *r = &s->v[i];
        snprintf(file, sizeof file, "%s.png", uni);
        if ((st = add_image(r, dir, "assets/png", "emojione", file))) break;
        if (has_skin_tone(uni)) continue; /* "... tone 3": its base gives names and keywords */
        if (!r->eo_name && !(r->eo_name = lower_name(name))) { st = ct_error(CT_ERR_NOMEM, "out of memory"); break; }
        const jv *kw = jget(e, "keywords");
        for (const jv *k = kw && kw->t == J_ARR ? kw->kid : NULL; k && !st; k = k->next)
            if (k->t == J_STR) st = add_keyword(r, k->s);
    }
    jv_free(root);
    return st;
}

static int cmp_emo(const void *a, const void *b) { return strcmp(((const emo *)a)->key, ((const emo *)b)->key); }

typedef struct {
    const char *name;
    int rec;
} name_ref;

static int cmp_name_ref(const void *a, const void *b) {
    const name_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->rec > y->rec) - (x->rec < y->rec);
}

/* Whether name_ref list r (sorted) holds `name` for a record other than `rec`. */
static int shared(const name_ref *r, int n, const char *name, int rec) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (strcmp(r[mid].name, name) < 0) lo = mid + 1; else hi = mid;
    }
    for (; lo < n && !strcmp(r[lo].name, name); lo++)
        if (r[lo].rec != rec) return 1;
    return 0;
}

/* Names of each emoji: its Twemoji and EmojiOne names, less any name another emoji
 * also has (EmojiOne calls the flag and the bird "turkey"; Twemoji's legacy name of
 * U+1F935 is "man in tuxedo", the CLDR name of the held-out 1F935-200D-2642), so no
 * name is ever the name of two emoji, nor of a training and a held-out one. Left
 * without a name, an emoji takes its Twemoji short name if no kept name equals it
 * (U+1F935 becomes "person in tuxedo", 1F935-200D-2642 "man in tuxedo"). */
static ct_status resolve_names(emo_set *s) {
    name_ref *r = malloc((size_t)(2 * s->n + 1) * sizeof *r);
    if (!r) return ct_error(CT_ERR_NOMEM, "emoji: out of memory");
    int n = 0;
    for (int i = 0; i < s->n; i++) {
        if (s->v[i].tw_name) r[n++] = (name_ref){s->v[i].tw_name, i};
        if (s->v[i].eo_name && (!s->v[i].tw_name || strcmp(s->v[i].eo_name, s->v[i].tw_name)))
            r[n++] = (name_ref){s->v[i].eo_name, i};
    }
    qsort(r, (size_t)n, sizeof *r, cmp_name_ref);
    for (int i = 0; i < s->n; i++) {
        emo *e = &s->v[i];
        const char *cand[2] = {e->tw_name, e->eo_name};
        int k = 0;
        for (int c = 0; c < 2; c++)
            if (cand[c] && !shared(r, n, cand[c], i) && (k == 0 || strcmp(e->name[0], cand[c]))) e->name[k++] = cand[c];
    }
    /* the names kept, against which a short name must be new (Twemoji's short
     * names are unique among themselves) */
    int m = 0;
    for (int i = 0; i < s->n; i++)
        for (int k = 0; k < 2 && s->v[i].name[k]; k++) r[m++] = (name_ref){s->v[i].name[k], i};
    qsort(r, (size_t)m, sizeof *r, cmp_name_ref);
    ct_status st = CT_OK;
    for (int i = 0; i < s->n && !st; i++) {
        emo *e = &s->v[i];
        if (e->name[0]) continue;
        if (e->short_name && !shared(r, m, e->short_name, i)) e->name[0] = e->short_name;
        else st = ct_error(CT_ERR_FORMAT, "emoji %s: no name of its own (shared or missing)", e->key);
    }
    free(r);
    return st;
}

/* Captions of one emoji, in order: each distinct name; "an emoji of {name}" for each;
 * the keywords that are not a name, joined by ", " (when any). */
static ct_status add_captions(ct__capb *b, int64_t image, const emo *e) {
    const char *const *uniq = e->name;
    int nn = e->name[1] ? 2 : 1;
    ct_status st = CT_OK;
    char buf[4096];
    for (int k = 0; k < nn && !st; k++) st = ct__capb_caption(b, image, uniq[k], strlen(uniq[k]));
    for (int k = 0; k < nn && !st; k++) {
        int w = snprintf(buf, sizeof buf, "an emoji of %s", uniq[k]);
        st = ct__capb_caption(b, image, buf, (size_t)w < sizeof buf ? (size_t)w : sizeof buf - 1);
    }
    size_t len = 0;
    for (int k = 0; k < e->nkw && !st; k++) {
        int is_name = 0;
        for (int q = 0; q < nn; q++) is_name |= !strcmp(e->kw[k], uniq[q]);
        size_t kl = strlen(e->kw[k]);
        if (is_name || len + kl + 3 >= sizeof buf) continue;
        if (len) { memcpy(buf + len, ", ", 2); len += 2; }
        memcpy(buf + len, e->kw[k], kl);
        len += kl;
    }
    if (!st && len) st = ct__capb_caption(b, image, buf, len);
    return st;
}

ct_status ct_emoji_load(ct_caption_dataset *ds, const char *emojione_dir, const char *twemoji_dir, int train,
                        int size) {
    memset(ds, 0, sizeof *ds);
    if (!emojione_dir && !twemoji_dir) return ct_error(CT_ERR_ARG, "emoji: neither EmojiOne nor Twemoji folder given");
    if (size < 1 || size > 1024) return ct_error(CT_ERR_ARG, "emoji: size %d, expected 1..1024", size);
    emo_set s;
    memset(&s, 0, sizeof s);
    s.cap = 16384; /* emoji; Unicode 16 has under 4,000 without skin tones */
    s.mask = 4 * (size_t)s.cap - 1;
    s.v = malloc((size_t)s.cap * sizeof *s.v);
    s.zkey = malloc((size_t)s.cap * sizeof *s.zkey);
    s.slot = calloc(s.mask + 1, sizeof *s.slot);
    s.zslot = calloc(s.mask + 1, sizeof *s.zslot);
    ct_status st = CT_OK;
    if (!s.v || !s.zkey || !s.slot || !s.zslot) st = ct_error(CT_ERR_NOMEM, "emoji: out of memory");
    /* Twemoji first: its keys are the reference EmojiOne's ZWJ-less sequences match */
    if (!st && twemoji_dir) st = read_twemoji(&s, twemoji_dir);
    if (!st && emojione_dir) st = read_emojione(&s, emojione_dir);
    ct__capb b;
    memset(&b, 0, sizeof b);
    if (!st) qsort(s.v, (size_t)s.n, sizeof *s.v, cmp_emo); /* the tables are stale from here */
    if (!st) st = resolve_names(&s);
    for (int i = 0; i < s.n && !st; i++) {
        const emo *e = &s.v[i];
        if ((fnv(e->key) % 5 == 0) == (train != 0)) continue; /* ct_emoji_is_heldout on the key */
        int32_t cid;
        if ((st = ct__capb_class(&b, e->name[0], &cid))) break;
        for (int k = 0; k < e->nimg && !st; k++) {
            st = ct__capb_image(&b, e->img[k].path, e->img[k].file, NULL, cid);
            if (!st) st = add_captions(&b, b.n - 1, e);
        }
    }
    set_free(&s);
    if (st) { ct__capb_free(&b); return st; }
    return ct__capb_finish(ds, &b, train, size, "emoji");
}

/* The newest gemojione-<version> folder under CT_GEMOJIONE_GEMS_DIR (by numeric
 * version components), into out. */
static ct_status find_gemojione(char *out, size_t cap) {
    DIR *d = opendir(CT_GEMOJIONE_GEMS_DIR);
    if (!d)
        return ct_error(CT_ERR_IO, "emoji: %s: cannot open (install ruby-gemojione: sh tools/deps.sh)",
                        CT_GEMOJIONE_GEMS_DIR);
    struct dirent *en;
    long best[4] = {-1, -1, -1, -1};
    char best_name[256] = "";
    while ((en = readdir(d))) {
        if (strncmp(en->d_name, "gemojione-", 10)) continue;
        long v[4] = {0, 0, 0, 0};
        const char *p = en->d_name + 10;
        for (int k = 0; k < 4 && *p; k++) {
            char *e;
            v[k] = strtol(p, &e, 10);
            p = *e == '.' ? e + 1 : e + strlen(e);
        }
        int newer = 0;
        for (int k = 0; k < 4; k++)
            if (v[k] != best[k]) { newer = v[k] > best[k]; break; }
        if (newer && strlen(en->d_name) < sizeof best_name) {
            memcpy(best, v, sizeof best);
            snprintf(best_name, sizeof best_name, "%s", en->d_name);
        }
    }
    closedir(d);
    if (!best_name[0])
        return ct_error(CT_ERR_IO, "emoji: no gemojione-* under %s (install ruby-gemojione: sh tools/deps.sh)",
                        CT_GEMOJIONE_GEMS_DIR);
    snprintf(out, cap, "%s/%s", CT_GEMOJIONE_GEMS_DIR, best_name);
    return CT_OK;
}

ct_status ct__load_emoji_default(ct_caption_dataset *ds, int train, int size) {
    char eo[4096];
    ct_status st = find_gemojione(eo, sizeof eo);
    if (st) return st;
    char tw_json[4096];
    snprintf(tw_json, sizeof tw_json, "%s/emoji.json", CT_TWEMOJI_DIR);
    if (!ct__file_exists(tw_json))
        return ct_error(CT_ERR_IO, "emoji: %s: missing (install emoji-datasource-twitter: sh tools/deps.sh)", tw_json);
    return ct_emoji_load(ds, eo, CT_TWEMOJI_DIR, train, size);
}
