/* safetensors.c: write and read safetensors files with a strict, hand-written
 * JSON header parser.
 *
 * Format (https://github.com/huggingface/safetensors): u64 little-endian N, then N
 * bytes of JSON {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]},
 * ..., "__metadata__": {"k": "v", ...}}, then the data; offsets are relative to the
 * end of the header. Like the reference loader we require the tensors to tile the
 * data section exactly (sorted by offset, no gaps, no overlaps, nothing left over),
 * which also rules out a truncated or padded file. */
#include "contrast/io.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "contrast's file formats assume a little-endian host"
#endif

#define META_KEY "__metadata__"

size_t ct_dtype_size(ct_dtype dt) {
    switch (dt) {
    case CT_DTYPE_F32: return 4;
    case CT_DTYPE_F64: return 8;
    case CT_DTYPE_I64: return 8;
    case CT_DTYPE_I32: return 4;
    case CT_DTYPE_U8: return 1;
    }
    return 0;
}

const char *ct_dtype_name(ct_dtype dt) {
    switch (dt) {
    case CT_DTYPE_F32: return "F32";
    case CT_DTYPE_F64: return "F64";
    case CT_DTYPE_I64: return "I64";
    case CT_DTYPE_I32: return "I32";
    case CT_DTYPE_U8: return "U8";
    }
    return NULL;
}

static int dtype_parse(const char *s, ct_dtype *dt) {
    static const ct_dtype all[] = {CT_DTYPE_F32, CT_DTYPE_F64, CT_DTYPE_I64, CT_DTYPE_I32, CT_DTYPE_U8};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(s, ct_dtype_name(all[i]))) return *dt = all[i], 0;
    return -1;
}

void ct_st_tensor_from_info(ct_st_tensor *t, const ct_tensor_info *info, const float *buf) {
    memset(t, 0, sizeof *t);
    t->name = info->name;
    t->dtype = CT_DTYPE_F32;
    t->ndim = info->ndim;
    for (int d = 0; d < info->ndim && d < CT_MAX_DIMS; d++) t->shape[d] = info->shape[d];
    t->data = buf + info->offset;
}

/* numel of a shape, overflow-checked; -1 on a negative dim or overflow. */
static int shape_numel(const int64_t *shape, int ndim, size_t *out) {
    size_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || (uint64_t)shape[d] > SIZE_MAX) return -1;
        if (ct_size_mul(n, (size_t)shape[d], &n)) return -1;
    }
    *out = n;
    return 0;
}

/* ---- writer ------------------------------------------------------------------------ */

/* A growable string for the JSON header. */
typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) { b->oom = 1; return; }
        b->s = p, b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_printf(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* JSON string literal: escapes quotes, backslashes and control characters; other
 * bytes (UTF-8) are copied as they are. */
static void sb_json_string(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"') sb_put(b, "\\\"", 2);
        else if (*p == '\\') sb_put(b, "\\\\", 2);
        else if (*p == '\n') sb_put(b, "\\n", 2);
        else if (*p == '\t') sb_put(b, "\\t", 2);
        else if (*p == '\r') sb_put(b, "\\r", 2);
        else if (*p < 0x20) sb_printf(b, "\\u%04x", *p);
        else sb_put(b, (const char *)p, 1);
    }
    sb_put(b, "\"", 1);
}

ct_status ct_st_write(const char *path, const ct_st_tensor *tensors, int n, const ct_st_kv *meta,
                      int nmeta) {
    if (n < 0 || nmeta < 0 || (n && !tensors) || (nmeta && !meta))
        return ct_error(CT_ERR_ARG, "%s: bad tensor or metadata list", path);
    sbuf h = {0};
    sb_put(&h, "{", 1);
    if (nmeta > 0) {
        sb_json_string(&h, META_KEY);
        sb_put(&h, ":{", 2);
        for (int i = 0; i < nmeta; i++) {
            if (!meta[i].key || !meta[i].value) {
                free(h.s);
                return ct_error(CT_ERR_ARG, "%s: metadata entry %d has no key or value", path, i);
            }
            for (int j = 0; j < i; j++)
                if (!strcmp(meta[i].key, meta[j].key)) {
                    free(h.s);
                    return ct_error(CT_ERR_ARG, "%s: duplicate metadata key \"%s\"", path, meta[i].key);
                }
            if (i) sb_put(&h, ",", 1);
            sb_json_string(&h, meta[i].key);
            sb_put(&h, ":", 1);
            sb_json_string(&h, meta[i].value);
        }
        sb_put(&h, "}", 1);
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const ct_st_tensor *t = &tensors[i];
        size_t numel, nbytes, esz = ct_dtype_size(t->dtype);
        const char *why = NULL;
        if (!t->name || !t->name[0] || !strcmp(t->name, META_KEY)) why = "missing or reserved name";
        else if (!esz) why = "unknown dtype";
        else if (t->ndim < 0 || t->ndim > CT_ST_MAX_DIMS) why = "bad number of dims";
        else if (shape_numel(t->shape, t->ndim, &numel) || ct_size_mul(numel, esz, &nbytes)) why = "bad shape";
        else if (nbytes && !t->data) why = "no data";
        for (int j = 0; j < i && !why; j++)
            if (!strcmp(t->name, tensors[j].name)) why = "duplicate name";
        if (why || ct_size_add(off, nbytes, &nbytes)) {
            free(h.s);
            return ct_error(CT_ERR_ARG, "%s: tensor %d (%s): %s", path, i, t->name ? t->name : "?",
                            why ? why : "total size overflows");
        }
        if (h.len > 1) sb_put(&h, ",", 1);
        sb_json_string(&h, t->name);
        sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", ct_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++) sb_printf(&h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        sb_printf(&h, "],\"data_offsets\":[%zu,%zu]}", off, nbytes);
        off = nbytes;
    }
    sb_put(&h, "}", 1);
    while (!h.oom && h.len % 8) sb_put(&h, " ", 1); /* data starts 8-byte aligned */
    if (h.oom) {
        free(h.s);
        return ct_error(CT_ERR_NOMEM, "%s: out of memory building the header", path);
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));

    ct_atomic_file af;
    ct_status st = ct_atomic_open(&af, path);
    if (st == CT_OK) st = ct_atomic_write(&af, len8, 8);
    if (st == CT_OK) st = ct_atomic_write(&af, h.s, h.len);
    free(h.s);
    for (int i = 0; i < n && st == CT_OK; i++) {
        size_t numel = 0; /* validated above */
        shape_numel(tensors[i].shape, tensors[i].ndim, &numel);
        st = ct_atomic_write(&af, tensors[i].data, numel * ct_dtype_size(tensors[i].dtype));
    }
    if (st == CT_OK) st = ct_atomic_commit(&af);
    return st;
}

/* ---- reader ------------------------------------------------------------------------ */

struct ct_st_file {
    char *path;
    unsigned char *data; /* data section (after the header), data_size bytes */
    size_t data_size;
    ct_st_entry *ent;
    int nent, cap;
    char **mkey, **mval;
    int nmeta, mcap;
};

void ct_st_close(ct_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->nent; i++) free((char *)f->ent[i].name);
    for (int i = 0; i < f->nmeta; i++) free(f->mkey[i]), free(f->mval[i]);
    free(f->ent);
    free(f->mkey);
    free(f->mval);
    ct_free(f->data);
    free(f->path);
    free(f);
}

/* JSON cursor over the header bytes. Errors carry the byte position. */
typedef struct {
    const char *s;
    size_t n, i;
    const char *path;
} jcur;

static ct_status jerr(const jcur *c, const char *what) {
    return ct_error(CT_ERR_FORMAT, "%s: not a valid safetensors file: header JSON: %s at byte %zu of %zu",
                    c->path, what, c->i, c->n);
}

static void jws(jcur *c) {
    while (c->i < c->n && (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\n' || c->s[c->i] == '\r'))
        c->i++;
}

static int jpeek(jcur *c) {
    jws(c);
    return c->i < c->n ? (unsigned char)c->s[c->i] : -1;
}

static ct_status jexpect(jcur *c, char ch) {
    if (jpeek(c) != (unsigned char)ch) {
        char what[32];
        snprintf(what, sizeof what, "expected '%c'", ch);
        return jerr(c, what);
    }
    c->i++;
    return CT_OK;
}

static int hexval(int ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static int read_hex4(jcur *c, unsigned *out) {
    if (c->n - c->i < 4) return -1;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval((unsigned char)c->s[c->i + k]);
        if (h < 0) return -1;
        v = v * 16 + (unsigned)h;
    }
    c->i += 4;
    *out = v;
    return 0;
}

/* Parses a JSON string into a fresh malloc'd, NUL-terminated buffer. Rejects raw
 * control characters, bad escapes, lone surrogates and embedded NULs. */
static ct_status jstring(jcur *c, char **out) {
    *out = NULL;
    if (jpeek(c) != '"') return jerr(c, "expected a string");
    c->i++;
    /* the decoded string is never longer than its raw form: find the closing quote */
    size_t end = c->i;
    while (end < c->n && c->s[end] != '"') end += c->s[end] == '\\' ? 2 : 1;
    char *d = malloc((end < c->n ? end : c->n) - c->i + 1);
    if (!d) return ct_error(CT_ERR_NOMEM, "%s: out of memory parsing the header", c->path);
    size_t k = 0;
    for (;;) {
        if (c->i >= c->n) { free(d); return jerr(c, "unterminated string"); }
        unsigned char ch = (unsigned char)c->s[c->i++];
        if (ch == '"') break;
        if (ch < 0x20) { free(d); c->i--; return jerr(c, "control character in string"); }
        if (ch != '\\') { d[k++] = (char)ch; continue; }
        if (c->i >= c->n) { free(d); return jerr(c, "unterminated escape"); }
        ch = (unsigned char)c->s[c->i++];
        switch (ch) {
        case '"': d[k++] = '"'; break;
        case '\\': d[k++] = '\\'; break;
        case '/': d[k++] = '/'; break;
        case 'b': d[k++] = '\b'; break;
        case 'f': d[k++] = '\f'; break;
        case 'n': d[k++] = '\n'; break;
        case 'r': d[k++] = '\r'; break;
        case 't': d[k++] = '\t'; break;
        case 'u': {
            unsigned u, lo;
            if (read_hex4(c, &u)) { free(d); return jerr(c, "bad \\u escape"); }
            if (u >= 0xDC00 && u <= 0xDFFF) { free(d); return jerr(c, "lone low surrogate"); }
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (c->n - c->i < 6 || c->s[c->i] != '\\' || c->s[c->i + 1] != 'u') {
                    free(d);
                    return jerr(c, "lone high surrogate");
                }
                c->i += 2;
                if (read_hex4(c, &lo) || lo < 0xDC00 || lo > 0xDFFF) { free(d); return jerr(c, "bad surrogate pair"); }
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (u == 0) { free(d); return jerr(c, "NUL character in string"); }
            /* UTF-8 encoding is at most 4 bytes; a \u escape is at least 6 input bytes */
            if (u < 0x80) d[k++] = (char)u;
            else if (u < 0x800) d[k++] = (char)(0xC0 | (u >> 6)), d[k++] = (char)(0x80 | (u & 0x3F));
            else if (u < 0x10000) {
                d[k++] = (char)(0xE0 | (u >> 12));
                d[k++] = (char)(0x80 | ((u >> 6) & 0x3F));
                d[k++] = (char)(0x80 | (u & 0x3F));
            } else {
                d[k++] = (char)(0xF0 | (u >> 18));
                d[k++] = (char)(0x80 | ((u >> 12) & 0x3F));
                d[k++] = (char)(0x80 | ((u >> 6) & 0x3F));
                d[k++] = (char)(0x80 | (u & 0x3F));
            }
            break;
        }
        default: free(d); c->i--; return jerr(c, "bad escape");
        }
    }
    d[k] = '\0';
    *out = d;
    return CT_OK;
}

/* A non-negative JSON integer (no sign, fraction, exponent or leading zeros),
 * at most 2^62 so sums of two stay in range. */
static ct_status juint(jcur *c, uint64_t *out) {
    jws(c);
    size_t start = c->i;
    uint64_t v = 0;
    while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9') {
        v = v * 10 + (uint64_t)(c->s[c->i] - '0');
        c->i++;
        if (v > ((uint64_t)1 << 62)) { c->i = start; return jerr(c, "integer too large"); }
    }
    if (c->i == start) return jerr(c, "expected a non-negative integer");
    if (c->s[start] == '0' && c->i - start > 1) { c->i = start; return jerr(c, "leading zero in integer"); }
    if (c->i < c->n && (c->s[c->i] == '.' || c->s[c->i] == 'e' || c->s[c->i] == 'E'))
        return jerr(c, "expected an integer");
    *out = v;
    return CT_OK;
}

/* '[' uint (',' uint)* ']' or '[]'; at most `cap` values. */
static ct_status juint_array(jcur *c, uint64_t *vals, int cap, int *count) {
    ct_status st;
    *count = 0;
    if ((st = jexpect(c, '['))) return st;
    if (jpeek(c) == ']') { c->i++; return CT_OK; }
    for (;;) {
        if (*count >= cap) return jerr(c, "too many values in array");
        if ((st = juint(c, &vals[*count]))) return st;
        (*count)++;
        int ch = jpeek(c);
        if (ch == ']') { c->i++; return CT_OK; }
        if (ch != ',') return jerr(c, "expected ',' or ']'");
        c->i++;
    }
}

static ct_status meta_add(ct_st_file *f, jcur *c, char *key, char *val) {
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->mkey[i], key)) {
            free(key), free(val);
            return jerr(c, "duplicate metadata key");
        }
    if (f->nmeta == f->mcap) {
        int cap = f->mcap ? 2 * f->mcap : 16;
        char **k2 = realloc(f->mkey, (size_t)cap * sizeof *k2);
        if (k2) f->mkey = k2;
        char **v2 = realloc(f->mval, (size_t)cap * sizeof *v2);
        if (v2) f->mval = v2;
        if (!k2 || !v2) {
            free(key), free(val);
            return ct_error(CT_ERR_NOMEM, "%s: out of memory", f->path);
        }
        f->mcap = cap;
    }
    f->mkey[f->nmeta] = key;
    f->mval[f->nmeta] = val;
    f->nmeta++;
    return CT_OK;
}

/* "__metadata__": a flat object of string values. */
static ct_status parse_meta(ct_st_file *f, jcur *c) {
    ct_status st;
    if (f->nmeta) return jerr(c, "duplicate __metadata__");
    if ((st = jexpect(c, '{'))) return st;
    if (jpeek(c) == '}') { c->i++; return CT_OK; }
    for (;;) {
        char *k, *v;
        if ((st = jstring(c, &k))) return st;
        if ((st = jexpect(c, ':'))) { free(k); return st; }
        if (jpeek(c) != '"') { free(k); return jerr(c, "metadata values must be strings"); }
        if ((st = jstring(c, &v))) { free(k); return st; }
        if ((st = meta_add(f, c, k, v))) return st;
        int ch = jpeek(c);
        if (ch == '}') { c->i++; return CT_OK; }
        if (ch != ',') return jerr(c, "expected ',' or '}' in __metadata__");
        c->i++;
    }
}

/* One tensor entry: exactly the keys dtype, shape and data_offsets. Takes
 * ownership of `name`. */
static ct_status parse_tensor(ct_st_file *f, jcur *c, char *name) {
    ct_status st;
    for (int i = 0; i < f->nent; i++)
        if (!strcmp(f->ent[i].name, name)) {
            free(name);
            return jerr(c, "duplicate tensor name");
        }
    if (f->nent == f->cap) {
        int cap = f->cap ? 2 * f->cap : 64;
        ct_st_entry *e2 = realloc(f->ent, (size_t)cap * sizeof *e2);
        if (!e2) { free(name); return ct_error(CT_ERR_NOMEM, "%s: out of memory", f->path); }
        f->ent = e2, f->cap = cap;
    }
    ct_st_entry *e = &f->ent[f->nent++];
    memset(e, 0, sizeof *e);
    e->name = name;
    int have_dtype = 0, have_shape = 0, have_off = 0;
    uint64_t shape[CT_ST_MAX_DIMS], offs[2];
    int noffs = 0;
    if ((st = jexpect(c, '{'))) return st;
    for (;;) {
        char *k;
        if ((st = jstring(c, &k))) return st;
        if ((st = jexpect(c, ':'))) { free(k); return st; }
        if (!strcmp(k, "dtype") && !have_dtype) {
            char *dt;
            free(k);
            if ((st = jstring(c, &dt))) return st;
            int bad = dtype_parse(dt, &e->dtype);
            if (bad) {
                ct_status s2 = ct_error(CT_ERR_FORMAT, "%s: tensor %s has unknown or unsupported dtype \"%.16s\"",
                                        f->path, name, dt);
                free(dt);
                return s2;
            }
            free(dt);
            have_dtype = 1;
        } else if (!strcmp(k, "shape") && !have_shape) {
            free(k);
            if ((st = juint_array(c, shape, CT_ST_MAX_DIMS, &e->ndim))) return st;
            for (int d = 0; d < e->ndim; d++) e->shape[d] = (int64_t)shape[d];
            have_shape = 1;
        } else if (!strcmp(k, "data_offsets") && !have_off) {
            free(k);
            if ((st = juint_array(c, offs, 2, &noffs))) return st;
            if (noffs != 2) return jerr(c, "data_offsets needs 2 values");
            have_off = 1;
        } else {
            st = ct_error(CT_ERR_FORMAT, "%s: tensor %s: unexpected or repeated key \"%.32s\"", f->path, name, k);
            free(k);
            return st;
        }
        int ch = jpeek(c);
        if (ch == '}') { c->i++; break; }
        if (ch != ',') return jerr(c, "expected ',' or '}' in a tensor entry");
        c->i++;
    }
    if (!have_dtype || !have_shape || !have_off)
        return ct_error(CT_ERR_FORMAT, "%s: tensor %s lacks %s", f->path, name,
                        !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
    size_t numel, nbytes;
    if (shape_numel(e->shape, e->ndim, &numel) || ct_size_mul(numel, ct_dtype_size(e->dtype), &nbytes))
        return ct_error(CT_ERR_FORMAT, "%s: tensor %s: shape too large", f->path, name);
    if (offs[1] < offs[0])
        return ct_error(CT_ERR_FORMAT, "%s: tensor %s: data_offsets [%llu, %llu] end before they begin", f->path,
                        name, (unsigned long long)offs[0], (unsigned long long)offs[1]);
    if (offs[1] - offs[0] != nbytes)
        return ct_error(CT_ERR_FORMAT,
                        "%s: tensor %s: shape and dtype need %zu bytes but data_offsets [%llu, %llu] span %llu",
                        f->path, name, nbytes, (unsigned long long)offs[0], (unsigned long long)offs[1],
                        (unsigned long long)(offs[1] - offs[0]));
    if (offs[1] > f->data_size)
        return ct_error(CT_ERR_FORMAT,
                        "%s: tensor %s: data_offsets [%llu, %llu] beyond the %zu data bytes (file truncated?)",
                        f->path, name, (unsigned long long)offs[0], (unsigned long long)offs[1], f->data_size);
    e->numel = numel;
    e->nbytes = nbytes;
    e->offset = (size_t)offs[0];
    e->data = f->data ? f->data + e->offset : NULL;
    return CT_OK;
}

static ct_status parse_header(ct_st_file *f, const char *h, size_t n) {
    jcur c = {h, n, 0, f->path};
    ct_status st;
    /* The reference loader insists on '{' as the first byte. */
    if (n == 0 || h[0] != '{') return jerr(&c, "header does not start with '{'");
    c.i = 1;
    if (jpeek(&c) == '}') c.i++;
    else
        for (;;) {
            char *key;
            if ((st = jstring(&c, &key))) return st;
            if ((st = jexpect(&c, ':'))) { free(key); return st; }
            if (!strcmp(key, META_KEY)) {
                free(key);
                if ((st = parse_meta(f, &c))) return st;
            } else if (!key[0]) {
                free(key);
                return jerr(&c, "empty tensor name");
            } else if ((st = parse_tensor(f, &c, key))) {
                return st;
            }
            int ch = jpeek(&c);
            if (ch == '}') { c.i++; break; }
            if (ch != ',') return jerr(&c, "expected ',' or '}'");
            c.i++;
        }
    jws(&c); /* writers pad with spaces */
    if (c.i != n) return jerr(&c, "bytes after the closing '}'");
    return CT_OK;
}

static int cmp_offset(const void *a, const void *b) {
    const ct_st_entry *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    /* equal starts: the empty tensor first, so the tiling check sees it */
    return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

static ct_status read_all(int fd, void *buf, size_t n, const char *path) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return ct_error(CT_ERR_IO, "%s: read failed: %s", path, strerror(errno));
        if (r == 0) return ct_error(CT_ERR_FORMAT, "%s: file shrank while being read", path);
        got += (size_t)r;
    }
    return CT_OK;
}

ct_status ct_st_open(ct_st_file **out, const char *path) {
    *out = NULL;
    ct_st_file *f = calloc(1, sizeof *f);
    char *hdr = NULL;
    if (!f || !(f->path = malloc(strlen(path) + 1))) {
        free(f);
        return ct_error(CT_ERR_NOMEM, "%s: out of memory", path);
    }
    strcpy(f->path, path);
    ct_status st = CT_OK;
    int fd;
    int64_t fsize;
    if ((st = ct_open_regular(path, &fd, &fsize))) goto done;
    size_t size = (size_t)fsize;
    unsigned char len8[8];
    if (size < 8) {
        st = ct_error(CT_ERR_FORMAT, "%s: not a valid safetensors file: %zu bytes, too short for the 8-byte header length",
                      path, size);
        goto done;
    }
    if ((st = read_all(fd, len8, 8, path))) goto done;
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)len8[i] << (8 * i);
    if (hlen < 2 || hlen > size - 8 || hlen > CT_ST_MAX_HEADER) {
        st = ct_error(CT_ERR_FORMAT,
                      "%s: not a valid safetensors file: header length %llu is impossible for a file of %zu bytes",
                      path, (unsigned long long)hlen, size);
        goto done;
    }
    if (!(hdr = malloc((size_t)hlen + 1))) {
        st = ct_error(CT_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if ((st = read_all(fd, hdr, (size_t)hlen, path))) goto done;
    hdr[hlen] = '\0';
    f->data_size = size - 8 - (size_t)hlen;
    if (f->data_size) {
        if (!(f->data = ct_alloc(f->data_size))) {
            st = ct_error(CT_ERR_NOMEM, "%s: cannot allocate %zu bytes for the data", path, f->data_size);
            goto done;
        }
        if ((st = read_all(fd, f->data, f->data_size, path))) goto done;
    }
    if ((st = parse_header(f, hdr, (size_t)hlen))) goto done;
    /* The tensors must tile the data section: sorted, no gap, no overlap, no tail. */
    if (f->nent > 1) qsort(f->ent, (size_t)f->nent, sizeof *f->ent, cmp_offset);
    size_t pos = 0;
    for (int i = 0; i < f->nent; i++) {
        const ct_st_entry *e = &f->ent[i];
        if (e->offset != pos) {
            st = ct_error(CT_ERR_FORMAT, "%s: tensor %s starts at data byte %zu but the previous one ends at %zu (%s)",
                          path, e->name, e->offset, pos, e->offset < pos ? "overlap" : "gap");
            goto done;
        }
        pos += e->nbytes;
    }
    if (pos != f->data_size) {
        st = ct_error(CT_ERR_FORMAT, "%s: the header describes %zu data bytes but the file holds %zu", path, pos,
                      f->data_size);
        goto done;
    }
done:
    if (fd >= 0) close(fd);
    free(hdr);
    if (st != CT_OK) {
        ct_st_close(f);
        return st;
    }
    *out = f;
    return CT_OK;
}

const char *ct_st_path(const ct_st_file *f) { return f->path; }
int ct_st_count(const ct_st_file *f) { return f->nent; }
const ct_st_entry *ct_st_entry_at(const ct_st_file *f, int i) {
    return i >= 0 && i < f->nent ? &f->ent[i] : NULL;
}

const ct_st_entry *ct_st_find(const ct_st_file *f, const char *name) {
    for (int i = 0; i < f->nent; i++)
        if (!strcmp(f->ent[i].name, name)) return &f->ent[i];
    return NULL;
}

const char *ct_st_meta(const ct_st_file *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->mkey[i], key)) return f->mval[i];
    return NULL;
}

int ct_st_meta_count(const ct_st_file *f) { return f->nmeta; }

void ct_st_meta_at(const ct_st_file *f, int i, const char **key, const char **value) {
    *key = i >= 0 && i < f->nmeta ? f->mkey[i] : NULL;
    *value = i >= 0 && i < f->nmeta ? f->mval[i] : NULL;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "(");
    for (int d = 0; d < ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, ")");
}

/* Checks without copying; shared by ct_st_read_f32 and ct_st_read_table. */
static ct_status check_f32(const ct_st_file *f, const char *name, size_t n, int ndim, const int64_t *shape,
                           const ct_st_entry **out) {
    const ct_st_entry *e = ct_st_find(f, name);
    if (!e) return ct_error(CT_ERR_FORMAT, "%s: no tensor named %s", f->path, name);
    if (e->dtype != CT_DTYPE_F32)
        return ct_error(CT_ERR_FORMAT, "%s: tensor %s is %s, expected F32", f->path, name, ct_dtype_name(e->dtype));
    int same = e->numel == n;
    if (shape) {
        same = same && e->ndim == ndim;
        for (int d = 0; same && d < ndim; d++) same = e->shape[d] == shape[d];
    }
    if (!same) {
        char got[160], want[160];
        shape_str(got, sizeof got, e->ndim, e->shape);
        if (shape) shape_str(want, sizeof want, ndim, shape);
        else snprintf(want, sizeof want, "%zu elements", n);
        return ct_error(CT_ERR_FORMAT, "%s: tensor %s has shape %s, the model expects %s", f->path, name, got, want);
    }
    *out = e;
    return CT_OK;
}

ct_status ct_st_read_f32(const ct_st_file *f, const char *name, float *dst, size_t n, int ndim,
                         const int64_t *shape) {
    const ct_st_entry *e;
    ct_status st = check_f32(f, name, n, ndim, shape, &e);
    if (st) return st;
    if (e->nbytes) memcpy(dst, e->data, e->nbytes);
    return CT_OK;
}

ct_status ct_st_read_table(const ct_st_file *f, const ct_tensor_info *tab, int ntab, float *buf) {
    const ct_st_entry *e;
    ct_status st;
    for (int t = 0; t < ntab; t++)
        if ((st = check_f32(f, tab[t].name, tab[t].numel, tab[t].ndim, tab[t].shape, &e))) return st;
    for (int t = 0; t < ntab; t++) {
        check_f32(f, tab[t].name, tab[t].numel, tab[t].ndim, tab[t].shape, &e);
        if (e->nbytes) memcpy(buf + tab[t].offset, e->data, e->nbytes);
    }
    return CT_OK;
}
