/* metrics.c: reading metrics.jsonl, one flat JSON object per line, into columns.
 *
 * contrast train appends one object per epoch (and a final one); numbers come from
 * printf, so a diverged run writes nan or -nan, which strict JSON lacks: they are
 * read as NaN. Nested arrays and objects are skipped (their column reads NaN), so a
 * file from a newer trainer with richer lines still plots. Anything else that is
 * not such an object stops the read with "path:line: what was found". */
#include "contrast/plot.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *s;  /* the line */
    size_t i;
    const char *path;
    int64_t line;
} lexer;

static ct_status bad(const lexer *lx, const char *what) {
    char near[24];
    size_t n = 0;
    while (n < sizeof near - 1 && lx->s[lx->i + n] && lx->s[lx->i + n] != '\n') {
        near[n] = lx->s[lx->i + n];
        n++;
    }
    near[n] = '\0';
    return ct_error(CT_ERR_FORMAT, "%s:%lld: %s at column %zu%s%s%s", lx->path, (long long)lx->line, what, lx->i + 1,
                    n ? " (near '" : " (end of line", near, n ? "')" : ")");
}

static void ws(lexer *lx) {
    while (lx->s[lx->i] == ' ' || lx->s[lx->i] == '\t' || lx->s[lx->i] == '\r' || lx->s[lx->i] == '\n') lx->i++;
}

/* A JSON string; its content (escapes resolved to their character, \uXXXX to '?')
 * goes to out (truncated to cap - 1) when out is not NULL. */
static ct_status string(lexer *lx, char *out, size_t cap) {
    if (lx->s[lx->i] != '"') return bad(lx, "expected a string");
    lx->i++;
    size_t n = 0;
    for (;;) {
        char ch = lx->s[lx->i];
        if (ch == '\0' || ch == '\n') return bad(lx, "unterminated string");
        lx->i++;
        if (ch == '"') break;
        if (ch == '\\') {
            char e = lx->s[lx->i];
            if (!e || e == '\n') return bad(lx, "unterminated string");
            lx->i++;
            if (e == 'u') {
                for (int k = 0; k < 4; k++, lx->i++)
                    if (!isxdigit((unsigned char)lx->s[lx->i])) return bad(lx, "bad \\u escape");
                ch = '?';
            } else {
                ch = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : e;
            }
        }
        if (out && n + 1 < cap) out[n++] = ch;
    }
    if (out) out[n] = '\0';
    return CT_OK;
}

static int word(lexer *lx, const char *w) {
    size_t n = strlen(w);
    if (strncmp(lx->s + lx->i, w, n) || isalnum((unsigned char)lx->s[lx->i + n])) return 0;
    lx->i += n;
    return 1;
}

/* One value: *v gets the number (true 1, false 0), NaN for anything else. */
static ct_status value(lexer *lx, double *v, int depth) {
    ws(lx);
    char ch = lx->s[lx->i];
    *v = NAN;
    if (depth > 64) return bad(lx, "nesting too deep");
    if (ch == '"') return string(lx, NULL, 0);
    if (word(lx, "true")) return *v = 1, CT_OK;
    if (word(lx, "false")) return *v = 0, CT_OK;
    if (word(lx, "null")) return CT_OK;
    if (ch == '[' || ch == '{') {
        char close = ch == '[' ? ']' : '}';
        lx->i++;
        ws(lx);
        if (lx->s[lx->i] == close) return lx->i++, CT_OK;
        for (;;) {
            double skip;
            ct_status st;
            if (close == '}') {
                ws(lx);
                if ((st = string(lx, NULL, 0))) return st;
                ws(lx);
                if (lx->s[lx->i] != ':') return bad(lx, "expected ':'");
                lx->i++;
            }
            if ((st = value(lx, &skip, depth + 1))) return st;
            ws(lx);
            if (lx->s[lx->i] == ',') {
                lx->i++;
                continue;
            }
            if (lx->s[lx->i] == close) return lx->i++, CT_OK;
            return bad(lx, close == ']' ? "expected ',' or ']'" : "expected ',' or '}'");
        }
    }
    /* a number, or nan / inf as printf writes them */
    if (ch == '-' || ch == '+' || isdigit((unsigned char)ch) || ch == 'n' || ch == 'i' || ch == 'N' || ch == 'I') {
        const char *p = lx->s + lx->i;
        char *end;
        double x = strtod(p, &end);
        if (end == p || (*end && !strchr(" \t\r\n,}]", *end))) return bad(lx, "expected a value");
        if (isnan(x)) x = NAN; /* -nan reads as NaN like any other */
        lx->i += (size_t)(end - p);
        *v = x;
        return CT_OK;
    }
    return bad(lx, "expected a value");
}

static ct_status grow(ct_metrics *m, int64_t *cap) {
    if (m->nrows < *cap) return CT_OK;
    int64_t nc = *cap ? *cap * 2 : 64;
    double *nv = realloc(m->v, (size_t)nc * CT_METRICS_MAX_COLS * sizeof(double));
    if (nv) m->v = nv;
    uint64_t *nh = nv ? realloc(m->has, (size_t)nc * sizeof(uint64_t)) : NULL;
    if (!nh) return ct_error(CT_ERR_NOMEM, "metrics: out of memory at %lld lines", (long long)m->nrows);
    m->has = nh;
    *cap = nc;
    return CT_OK;
}

static ct_status parse_line(ct_metrics *m, lexer *lx) {
    double *row = m->v + (size_t)m->nrows * CT_METRICS_MAX_COLS;
    for (int k = 0; k < CT_METRICS_MAX_COLS; k++) row[k] = NAN;
    m->has[m->nrows] = 0;
    ws(lx);
    if (lx->s[lx->i] != '{') return bad(lx, "expected a JSON object '{'");
    lx->i++;
    ws(lx);
    if (lx->s[lx->i] == '}') {
        lx->i++;
    } else {
        for (;;) {
            char key[CT_METRICS_MAX_KEY];
            double v;
            ct_status st;
            ws(lx);
            if ((st = string(lx, key, sizeof key))) return st;
            ws(lx);
            if (lx->s[lx->i] != ':') return bad(lx, "expected ':' after a key");
            lx->i++;
            if ((st = value(lx, &v, 0))) return st;
            int col = ct_metrics_col(m, key);
            if (col < 0) {
                if (m->ncols == CT_METRICS_MAX_COLS)
                    return ct_error(CT_ERR_FORMAT, "%s:%lld: more than %d distinct keys", lx->path, (long long)lx->line,
                                    CT_METRICS_MAX_COLS);
                col = m->ncols++;
                memcpy(m->names[col], key, sizeof key);
            }
            row[col] = v;
            m->has[m->nrows] |= (uint64_t)1 << col;
            ws(lx);
            if (lx->s[lx->i] == ',') {
                lx->i++;
                continue;
            }
            if (lx->s[lx->i] == '}') {
                lx->i++;
                break;
            }
            return bad(lx, "expected ',' or '}'");
        }
    }
    ws(lx);
    if (lx->s[lx->i]) return bad(lx, "unexpected text after the object");
    m->nrows++;
    return CT_OK;
}

ct_status ct_metrics_read(ct_metrics *m, const char *path) {
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "r");
    if (!f) return ct_error(CT_ERR_IO, "%s: cannot open the metrics file", path);
    char *buf = NULL;
    size_t bcap = 0;
    int64_t cap = 0, line = 0;
    ct_status st = CT_OK;
    ssize_t len;
    while ((len = getline(&buf, &bcap, f)) >= 0) {
        line++;
        if (memchr(buf, '\0', (size_t)len)) {
            st = ct_error(CT_ERR_FORMAT, "%s:%lld: a NUL byte in the line (not a text file?)", path, (long long)line);
            break;
        }
        lexer lx = {buf, 0, path, line};
        ws(&lx);
        if (!buf[lx.i]) continue; /* blank */
        if ((st = grow(m, &cap)) || (st = parse_line(m, &lx))) break;
    }
    if (!st && ferror(f)) st = ct_error(CT_ERR_IO, "%s: read error", path);
    free(buf);
    fclose(f);
    if (!st && m->nrows == 0)
        st = ct_error(CT_ERR_FORMAT, "%s: no metrics in the file (%s)", path,
                      line ? "blank lines only" : "it is empty: no epoch has finished yet?");
    if (st) ct_metrics_free(m);
    return st;
}

int ct_metrics_col(const ct_metrics *m, const char *key) {
    for (int k = 0; k < m->ncols; k++)
        if (!strcmp(m->names[k], key)) return k;
    return -1;
}

double ct_metrics_get(const ct_metrics *m, int64_t r, int col) {
    if (col < 0 || col >= m->ncols || r < 0 || r >= m->nrows) return NAN;
    return m->v[(size_t)r * CT_METRICS_MAX_COLS + (size_t)col];
}

int ct_metrics_has(const ct_metrics *m, int64_t r, int col) {
    if (col < 0 || col >= m->ncols || r < 0 || r >= m->nrows) return 0;
    return (int)(m->has[r] >> col & 1);
}

void ct_metrics_free(ct_metrics *m) {
    free(m->v);
    free(m->has);
    memset(m, 0, sizeof *m);
}
