/* util.c: the pieces src/text and the text readers share: a byte-string hash and
 * map, the tokenizer's chunker, and reading a whole file. */
#include "internal.h"

#include "contrast/io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uint64_t ct_text_hash(const void *data, size_t len) {
    const unsigned char *p = data;
    uint64_t h = 0x243F6A8885A308D3ull ^ (uint64_t)len;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ ct_mix64(w)) * 0x9E3779B97F4A7C15ull;
        p += 8;
        len -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, len);
    return ct_mix64(h ^ ct_mix64(w ^ 0xA5));
}

ct_status ct_strmap_init(ct_strmap *m, int64_t expect) {
    memset(m, 0, sizeof *m);
    int64_t cap = 64;
    while (cap < 2 * expect) cap *= 2;
    int64_t ecap = expect > 16 ? expect : 16;
    m->slot = malloc((size_t)cap * sizeof *m->slot);
    m->key = malloc((size_t)ecap * sizeof *m->key);
    m->klen = malloc((size_t)ecap * sizeof *m->klen);
    m->hash = malloc((size_t)ecap * sizeof *m->hash);
    if (!m->slot || !m->key || !m->klen || !m->hash) {
        ct_strmap_free(m);
        return ct_error(CT_ERR_NOMEM, "string map: out of memory (%lld entries)", (long long)expect);
    }
    memset(m->slot, 0xff, (size_t)cap * sizeof *m->slot);
    m->cap = cap;
    m->ecap = ecap;
    return CT_OK;
}

void ct_strmap_free(ct_strmap *m) {
    free(m->slot);
    free(m->key);
    free(m->klen);
    free(m->hash);
    memset(m, 0, sizeof *m);
}

int64_t ct_strmap_find(const ct_strmap *m, const char *key, size_t len, uint64_t hash) {
    int64_t mask = m->cap - 1;
    for (int64_t i = (int64_t)(hash & (uint64_t)mask);; i = (i + 1) & mask) {
        int64_t e = m->slot[i];
        if (e < 0) return -1;
        if (m->hash[e] == hash && m->klen[e] == len && memcmp(m->key[e], key, len) == 0) return e;
    }
}

static int strmap_grow(ct_strmap *m) {
    if (m->n == m->ecap) {
        int64_t ecap = m->ecap * 2;
        const char **k = realloc(m->key, (size_t)ecap * sizeof *k);
        if (k) m->key = k;
        size_t *l = realloc(m->klen, (size_t)ecap * sizeof *l);
        if (l) m->klen = l;
        uint64_t *h = realloc(m->hash, (size_t)ecap * sizeof *h);
        if (h) m->hash = h;
        if (!k || !l || !h) return -1;
        m->ecap = ecap;
    }
    if (2 * (m->n + 1) > m->cap) { /* keep the load under 1/2 */
        int64_t cap = m->cap * 2;
        int64_t *slot = malloc((size_t)cap * sizeof *slot);
        if (!slot) return -1;
        memset(slot, 0xff, (size_t)cap * sizeof *slot);
        for (int64_t e = 0; e < m->n; e++) {
            int64_t i = (int64_t)(m->hash[e] & (uint64_t)(cap - 1));
            while (slot[i] >= 0) i = (i + 1) & (cap - 1);
            slot[i] = e;
        }
        free(m->slot);
        m->slot = slot;
        m->cap = cap;
    }
    return 0;
}

int64_t ct_strmap_add(ct_strmap *m, const char *key, size_t len, uint64_t hash, int *added) {
    *added = 0;
    int64_t e = ct_strmap_find(m, key, len, hash);
    if (e >= 0) return e;
    if (strmap_grow(m) != 0) {
        ct_error(CT_ERR_NOMEM, "string map: out of memory (%lld entries)", (long long)m->n);
        return -1;
    }
    int64_t mask = m->cap - 1;
    int64_t i = (int64_t)(hash & (uint64_t)mask);
    while (m->slot[i] >= 0) i = (i + 1) & mask;
    e = m->n++;
    m->slot[i] = e;
    m->key[e] = key;
    m->klen[e] = len;
    m->hash[e] = hash;
    *added = 1;
    return e;
}

/* Byte classes of the chunker: letters (ASCII letters and every byte >= 0x80),
 * digits, whitespace, and everything else. */
enum { CL_LETTER, CL_DIGIT, CL_SPACE, CL_OTHER };

static int byte_class(unsigned char c) {
    if (c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return CL_LETTER;
    if (c >= '0' && c <= '9') return CL_DIGIT;
    if (c == ' ' || (c >= '\t' && c <= '\r')) return CL_SPACE;
    return CL_OTHER;
}

size_t ct_text_chunk(const unsigned char *s, size_t n) {
    size_t i = 0;
    int cl = byte_class(s[0]);
    if (cl == CL_SPACE) {
        if (s[0] == ' ' && n > 1 && byte_class(s[1]) != CL_SPACE) {
            i = 1; /* " word": the space goes with the run after it */
            cl = byte_class(s[1]);
        } else {
            while (i < n && byte_class(s[i]) == CL_SPACE) i++;
            /* leave a last space to the run that follows */
            if (i < n && i > 1 && s[i - 1] == ' ') i--;
            return i < CT_TOK_MAX_CHUNK ? i : CT_TOK_MAX_CHUNK;
        }
    }
    while (i < n && byte_class(s[i]) == cl) i++;
    return i < CT_TOK_MAX_CHUNK ? i : CT_TOK_MAX_CHUNK;
}

ct_status ct_text_read_file(const char *path, int64_t max_bytes, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    int fd;
    int64_t size;
    ct_status st = ct_open_regular(path, &fd, &size);
    if (st) return st;
    if (size > max_bytes) {
        close(fd);
        return ct_error(CT_ERR_FORMAT, "%s: %lld bytes, more than the %lld this reader accepts", path,
                        (long long)size, (long long)max_bytes);
    }
    /* the size from fstat sizes the buffer; a file that grows meanwhile is read only
     * that far, one that shrinks ends early */
    char *buf = malloc((size_t)size + 1);
    if (!buf) {
        close(fd);
        return ct_error(CT_ERR_NOMEM, "%s: out of memory for %lld bytes", path, (long long)size);
    }
    size_t got = 0;
    while (got < (size_t)size) {
        ssize_t r = read(fd, buf + got, (size_t)size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int err = errno;
            free(buf);
            close(fd);
            return ct_error(CT_ERR_IO, "%s: read failed: %s", path, strerror(err));
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *data = buf;
    *len = got;
    return CT_OK;
}
