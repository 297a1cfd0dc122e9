/* bpe.c: the byte-level BPE tokenizer: training, encoding, decoding.
 *
 * Training counts the distinct chunks of the corpus (src/text/util.c's chunker; on
 * several threads, each its own map, merged and sorted, so the word list does not
 * depend on the thread count), then merges pairs the classic way with incremental
 * counts: every pair keeps its count over the corpus and the list of words where it
 * was seen; a max-heap of (count, pair) entries gives the next merge. Counts of
 * pairs that do not involve the new token only fall, so their heap entries are
 * checked lazily when popped (a stale entry is re-pushed with the current count);
 * pairs with the new token are pushed when made. Each merge rewrites only the words
 * on its pair's list.
 *
 * Encoding applies the merges to each chunk by rank, as GPT-2 does: the adjacent
 * pair with the lowest rank, every occurrence left to right, until no pair has one.
 * That is the order training applied them in, so a training chunk encodes to the
 * tokens training saw. */
#include "internal.h"

#include "contrast/io.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

struct ct_tokenizer {
    int32_t vocab;        /* ids in use                                          */
    int32_t nmerges;
    int32_t *merge;       /* (nmerges, 3) left, right, result                    */
    char **tok;           /* (vocab) bytes of each id; NULL for the specials     */
    uint8_t *toklen;      /* (vocab) at most CT_TOK_MAX_CHUNK                     */
    /* (left, right) -> rank, open addressing; key UINT64_MAX marks an empty slot */
    int64_t mcap;
    uint64_t *mkey;       /* (mcap)                                              */
    int32_t *mrank;       /* (mcap)                                              */
};

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

/* ---- the tokenizer's tables --------------------------------------------------------- */
static ct_tokenizer *tok_new(int32_t max_merges) {
    ct_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    int64_t maxv = (int64_t)CT_TOK_FIRST_MERGE + max_merges;
    t->merge = malloc(((size_t)max_merges + 1) * 3 * sizeof *t->merge);
    t->tok = calloc((size_t)maxv, sizeof *t->tok);
    t->toklen = calloc((size_t)maxv, 1);
    t->mcap = 64;
    while (t->mcap < 2 * (int64_t)max_merges) t->mcap *= 2;
    t->mkey = malloc((size_t)t->mcap * sizeof *t->mkey);
    t->mrank = malloc((size_t)t->mcap * sizeof *t->mrank);
    if (!t->merge || !t->tok || !t->toklen || !t->mkey || !t->mrank) {
        ct_tokenizer_free(t);
        return NULL;
    }
    memset(t->mkey, 0xff, (size_t)t->mcap * sizeof *t->mkey);
    for (int b = 0; b < CT_TOK_BYTES; b++) {
        t->tok[b] = malloc(1);
        if (!t->tok[b]) {
            ct_tokenizer_free(t);
            return NULL;
        }
        t->tok[b][0] = (char)b;
        t->toklen[b] = 1;
    }
    t->vocab = CT_TOK_FIRST_MERGE;
    return t;
}

void ct_tokenizer_free(ct_tokenizer *t) {
    if (!t) return;
    if (t->tok)
        for (int32_t i = 0; i < t->vocab; i++) free(t->tok[i]);
    free(t->tok);
    free(t->toklen);
    free(t->merge);
    free(t->mkey);
    free(t->mrank);
    free(t);
}

static int32_t rank_of(const ct_tokenizer *t, int32_t a, int32_t b) {
    uint64_t k = pair_key(a, b);
    int64_t mask = t->mcap - 1;
    for (int64_t i = (int64_t)(ct_mix64(k) & (uint64_t)mask);; i = (i + 1) & mask) {
        if (t->mkey[i] == k) return t->mrank[i];
        if (t->mkey[i] == UINT64_MAX) return INT32_MAX;
    }
}

/* The id whose bytes are s (n bytes), or -1: a byte, or a learned token found in
 * `map` (entry e is id CT_TOK_FIRST_MERGE + e). */
static int32_t find_token(const ct_strmap *map, const char *s, size_t n) {
    if (n == 1) return (unsigned char)s[0];
    int64_t e = ct_strmap_find(map, s, n, ct_text_hash(s, n));
    return e < 0 ? -1 : (int32_t)(e + CT_TOK_FIRST_MERGE);
}

/* Appends merge (a, b) as the next rule. The result reuses the id of a token with
 * the same bytes, else takes a new id. `map` indexes the learned tokens' bytes
 * (entry e = id CT_TOK_FIRST_MERGE + e). Returns the result id, -1 when the pair is
 * already a rule, -2 when the token would be longer than CT_TOK_MAX_CHUNK, -3 out
 * of memory. */
static int32_t tok_add_merge(ct_tokenizer *t, ct_strmap *map, int32_t a, int32_t b) {
    if (rank_of(t, a, b) != INT32_MAX) return -1;
    size_t la = t->toklen[a], lb = t->toklen[b];
    if (la + lb > CT_TOK_MAX_CHUNK) return -2;
    char buf[2 * CT_TOK_MAX_CHUNK];
    memcpy(buf, t->tok[a], la);
    memcpy(buf + la, t->tok[b], lb);
    int32_t z = find_token(map, buf, la + lb);
    if (z < 0) {
        z = t->vocab;
        char *s = malloc(la + lb);
        if (!s) return -3;
        memcpy(s, buf, la + lb);
        t->tok[z] = s;
        t->toklen[z] = (uint8_t)(la + lb);
        int added;
        if (ct_strmap_add(map, s, la + lb, ct_text_hash(s, la + lb), &added) < 0) return -3;
        t->vocab++;
    }
    int32_t r = t->nmerges++;
    t->merge[3 * r] = a;
    t->merge[3 * r + 1] = b;
    t->merge[3 * r + 2] = z;
    uint64_t k = pair_key(a, b);
    int64_t mask = t->mcap - 1;
    int64_t i = (int64_t)(ct_mix64(k) & (uint64_t)mask);
    while (t->mkey[i] != UINT64_MAX) i = (i + 1) & mask;
    t->mkey[i] = k;
    t->mrank[i] = r;
    return z;
}

int32_t ct_tokenizer_vocab_size(const ct_tokenizer *t) { return t->vocab; }
int32_t ct_tokenizer_merge_count(const ct_tokenizer *t) { return t->nmerges; }

void ct_tokenizer_merge(const ct_tokenizer *t, int32_t i, int32_t *left, int32_t *right, int32_t *result) {
    *left = t->merge[3 * i];
    *right = t->merge[3 * i + 1];
    *result = t->merge[3 * i + 2];
}

const char *ct_tokenizer_token(const ct_tokenizer *t, int32_t id, size_t *len) {
    *len = 0;
    if (id < 0 || id >= t->vocab || !t->tok[id]) return NULL;
    *len = t->toklen[id];
    return t->tok[id];
}

/* ---- training: counting chunks ----------------------------------------------------- */
/* Sorts words by bytes so the word list is the same whatever the threads did. */
typedef struct {
    const char *s;
    size_t n;
    int64_t count;
} word_t;

static int word_cmp(const void *pa, const void *pb) {
    const word_t *a = pa, *b = pb;
    size_t n = a->n < b->n ? a->n : b->n;
    int c = memcmp(a->s, b->s, n);
    if (c) return c;
    return (a->n > b->n) - (a->n < b->n);
}

/* Counts the chunks of texts [lo, hi) into map m (counts in cnt, grown with it). */
static ct_status count_chunks(ct_strmap *m, int64_t **cnt, int64_t *ccap, const char *const *texts,
                              const size_t *lens, int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
        const unsigned char *s = (const unsigned char *)texts[i];
        size_t n = lens[i], p = 0;
        while (p < n) {
            size_t c = ct_text_chunk(s + p, n - p);
            int added;
            int64_t e = ct_strmap_add(m, (const char *)s + p, c, ct_text_hash(s + p, c), &added);
            if (e < 0) return CT_ERR_NOMEM;
            if (e >= *ccap) {
                int64_t nc = *ccap * 2;
                int64_t *g = realloc(*cnt, (size_t)nc * sizeof *g);
                if (!g) return ct_error(CT_ERR_NOMEM, "tokenizer training: out of memory");
                *cnt = g;
                *ccap = nc;
            }
            if (added) (*cnt)[e] = 0;
            (*cnt)[e]++;
            p += c;
        }
    }
    return CT_OK;
}

/* The distinct chunks of the corpus with their counts, sorted by bytes. */
static ct_status collect_words(word_t **out, int64_t *nout, const char *const *texts, const size_t *lens,
                               int64_t n) {
    *out = NULL;
    *nout = 0;
    int nt = ct_get_threads();
    if (nt < 1) nt = 1;
    if (n < 1024) nt = 1; /* not worth the threads */
    ct_strmap *maps = calloc((size_t)nt, sizeof *maps);
    int64_t **cnts = calloc((size_t)nt, sizeof *cnts);
    ct_status *sts = calloc((size_t)nt, sizeof *sts);
    int64_t *ccaps = calloc((size_t)nt, sizeof *ccaps);
    if (!maps || !cnts || !sts || !ccaps) {
        free(ccaps);
        free(maps);
        free(cnts);
        free(sts);
        return ct_error(CT_ERR_NOMEM, "tokenizer training: out of memory");
    }
#pragma omp parallel num_threads(nt)
    {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
        int got = omp_get_num_threads();
#else
        int got = 1;
#endif
        int64_t lo = n * t / got, hi = n * (t + 1) / got;
        ccaps[t] = 1024;
        sts[t] = ct_strmap_init(&maps[t], 1024);
        if (!sts[t]) {
            cnts[t] = malloc((size_t)ccaps[t] * sizeof *cnts[t]);
            sts[t] = cnts[t] ? count_chunks(&maps[t], &cnts[t], &ccaps[t], texts, lens, lo, hi) : CT_ERR_NOMEM;
        }
    }
    ct_status st = CT_OK;
    for (int t = 0; t < nt; t++)
        if (sts[t]) st = sts[t];
    /* merge the threads' maps into the first one */
    int64_t ccap = ccaps[0];
    for (int t = 1; t < nt && !st; t++) {
        for (int64_t e = 0; e < maps[t].n && !st; e++) {
            int added;
            int64_t g = ct_strmap_add(&maps[0], maps[t].key[e], maps[t].klen[e], maps[t].hash[e], &added);
            if (g < 0) {
                st = CT_ERR_NOMEM;
                break;
            }
            if (g >= ccap) {
                int64_t *c = realloc(cnts[0], (size_t)(2 * ccap) * sizeof *c);
                if (!c) {
                    st = CT_ERR_NOMEM;
                    break;
                }
                cnts[0] = c;
                ccap *= 2;
            }
            if (added) cnts[0][g] = 0;
            cnts[0][g] += cnts[t][e];
        }
    }
    word_t *w = NULL;
    int64_t nw = st ? 0 : maps[0].n;
    if (!st && nw > 0) {
        w = malloc((size_t)nw * sizeof *w);
        if (!w) st = CT_ERR_NOMEM;
        for (int64_t e = 0; w && e < nw; e++) {
            w[e].s = maps[0].key[e];
            w[e].n = maps[0].klen[e];
            w[e].count = cnts[0][e];
        }
        if (w) qsort(w, (size_t)nw, sizeof *w, word_cmp);
    }
    for (int t = 0; t < nt; t++) {
        ct_strmap_free(&maps[t]);
        free(cnts[t]);
    }
    free(maps);
    free(cnts);
    free(sts);
    free(ccaps);
    if (st) return ct_error(CT_ERR_NOMEM, "tokenizer training: out of memory counting chunks");
    *out = w;
    *nout = nw;
    return CT_OK;
}

/* ---- training: merges --------------------------------------------------------------- */
typedef struct {
    int32_t a, b;
    int64_t count;
    int32_t *where;   /* words where the pair was seen (may repeat or be stale) */
    int32_t nwhere, cwhere;
    int32_t pushed;   /* the last merge after which it was pushed */
} pair_t;

typedef struct {
    int64_t count;
    int32_t pair;
} heap_e;

typedef struct {
    pair_t *p;
    int32_t np, cp;
    int64_t cap;      /* slots of the index, power of two */
    uint64_t *key;
    int32_t *idx;
    heap_e *heap;
    int64_t nheap, cheap;
} pairs_t;

/* heap order: larger count first, then smaller left id, then smaller right id */
static int heap_before(const pairs_t *P, heap_e x, heap_e y) {
    if (x.count != y.count) return x.count > y.count;
    const pair_t *a = &P->p[x.pair], *b = &P->p[y.pair];
    if (a->a != b->a) return a->a < b->a;
    return a->b < b->b;
}

static int heap_push(pairs_t *P, int32_t pair) {
    if (P->nheap == P->cheap) {
        int64_t c = P->cheap ? 2 * P->cheap : 1024;
        heap_e *h = realloc(P->heap, (size_t)c * sizeof *h);
        if (!h) return -1;
        P->heap = h;
        P->cheap = c;
    }
    heap_e e = {P->p[pair].count, pair};
    int64_t i = P->nheap++;
    while (i > 0) {
        int64_t up = (i - 1) / 2;
        if (!heap_before(P, e, P->heap[up])) break;
        P->heap[i] = P->heap[up];
        i = up;
    }
    P->heap[i] = e;
    return 0;
}

static heap_e heap_pop(pairs_t *P) {
    heap_e top = P->heap[0], last = P->heap[--P->nheap];
    int64_t i = 0, n = P->nheap;
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_before(P, P->heap[c + 1], P->heap[c])) c++;
        if (!heap_before(P, P->heap[c], last)) break;
        P->heap[i] = P->heap[c];
        i = c;
    }
    if (n > 0) P->heap[i] = last;
    return top;
}

/* The index of pair (a, b), made (count 0) when new; -1 out of memory. */
static int32_t pair_get(pairs_t *P, int32_t a, int32_t b) {
    uint64_t k = pair_key(a, b);
    int64_t mask = P->cap - 1;
    int64_t i = (int64_t)(ct_mix64(k) & (uint64_t)mask);
    for (; P->idx[i] >= 0; i = (i + 1) & mask)
        if (P->key[i] == k) return P->idx[i];
    if (2 * ((int64_t)P->np + 1) > P->cap) { /* grow the index and retry */
        int64_t cap = P->cap * 2;
        uint64_t *key = malloc((size_t)cap * sizeof *key);
        int32_t *idx = malloc((size_t)cap * sizeof *idx);
        if (!key || !idx) {
            free(key);
            free(idx);
            return -1;
        }
        memset(idx, 0xff, (size_t)cap * sizeof *idx);
        for (int64_t j = 0; j < P->cap; j++) {
            if (P->idx[j] < 0) continue;
            int64_t s = (int64_t)(ct_mix64(P->key[j]) & (uint64_t)(cap - 1));
            while (idx[s] >= 0) s = (s + 1) & (cap - 1);
            key[s] = P->key[j];
            idx[s] = P->idx[j];
        }
        free(P->key);
        free(P->idx);
        P->key = key;
        P->idx = idx;
        P->cap = cap;
        return pair_get(P, a, b);
    }
    if (P->np == P->cp) {
        int32_t c = P->cp ? 2 * P->cp : 4096;
        pair_t *p = realloc(P->p, (size_t)c * sizeof *p);
        if (!p) return -1;
        P->p = p;
        P->cp = c;
    }
    int32_t j = P->np++;
    P->p[j] = (pair_t){a, b, 0, NULL, 0, 0, -1};
    P->key[i] = k;
    P->idx[i] = j;
    return j;
}

static int pair_note_word(pair_t *p, int32_t w) {
    if (p->nwhere > 0 && p->where[p->nwhere - 1] == w) return 0;
    if (p->nwhere == p->cwhere) {
        int32_t c = p->cwhere ? 2 * p->cwhere : 4;
        int32_t *g = realloc(p->where, (size_t)c * sizeof *g);
        if (!g) return -1;
        p->where = g;
        p->cwhere = c;
    }
    p->where[p->nwhere++] = w;
    return 0;
}

static void pairs_free(pairs_t *P) {
    for (int32_t i = 0; i < P->np; i++) free(P->p[i].where);
    free(P->p);
    free(P->key);
    free(P->idx);
    free(P->heap);
}

ct_status ct_tokenizer_train(ct_tokenizer **out, const char *const *texts, const size_t *lens, int64_t n,
                             const ct_tokenizer_opts *opts) {
    *out = NULL;
    int vocab = opts && opts->vocab_size ? opts->vocab_size : CT_TOK_DEFAULT_VOCAB;
    if (vocab <= CT_TOK_FIRST_MERGE || vocab > CT_TOK_MAX_VOCAB)
        return ct_error(CT_ERR_ARG, "tokenizer: vocabulary size %d outside (%d, %d]", vocab, CT_TOK_FIRST_MERGE,
                        CT_TOK_MAX_VOCAB);
    if (n < 0 || (n > 0 && (!texts || !lens))) return ct_error(CT_ERR_ARG, "tokenizer: no texts to train on");
    word_t *w;
    int64_t nw;
    ct_status st = collect_words(&w, &nw, texts, lens, n);
    if (st) return st;
    if (nw > INT32_MAX) {
        free(w);
        return ct_error(CT_ERR_ARG, "tokenizer: %lld distinct chunks, more than %d", (long long)nw, INT32_MAX);
    }
    /* each word's symbols, rewritten in place as merges apply */
    size_t total = 0;
    for (int64_t i = 0; i < nw; i++) total += w[i].n;
    int32_t *sym = malloc((total ? total : 1) * sizeof *sym);
    size_t *off = malloc(((size_t)nw + 1) * sizeof *off);
    uint8_t *wlen = malloc((size_t)nw + 1);
    int32_t *stamp = malloc(((size_t)nw + 1) * sizeof *stamp);
    int32_t *made = NULL; /* pairs with the new token, per merge */
    int32_t nmade = 0, cmade = 0;
    pairs_t P = {0};
    P.cap = 1 << 16;
    P.key = malloc((size_t)P.cap * sizeof *P.key);
    P.idx = malloc((size_t)P.cap * sizeof *P.idx);
    ct_strmap map = {0};
    int32_t max_merges = vocab - CT_TOK_FIRST_MERGE;
    /* merges whose result reuses an id do not grow the vocabulary, so the rule table
     * may outgrow max_merges: it grows below if so */
    ct_tokenizer *t = tok_new(max_merges);
    if (!sym || !off || !wlen || !stamp || !P.key || !P.idx || !t || ct_strmap_init(&map, max_merges)) {
        st = ct_error(CT_ERR_NOMEM, "tokenizer training: out of memory");
        goto done;
    }
    memset(P.idx, 0xff, (size_t)P.cap * sizeof *P.idx);
    size_t o = 0;
    for (int64_t i = 0; i < nw; i++) {
        off[i] = o;
        wlen[i] = (uint8_t)w[i].n;
        stamp[i] = -1;
        for (size_t j = 0; j < w[i].n; j++) sym[o + j] = (unsigned char)w[i].s[j];
        o += w[i].n;
        for (size_t j = 0; j + 1 < w[i].n; j++) {
            int32_t p = pair_get(&P, sym[o - w[i].n + j], sym[o - w[i].n + j + 1]);
            if (p < 0 || pair_note_word(&P.p[p], (int32_t)i)) goto nomem;
            P.p[p].count += w[i].count;
        }
    }
    for (int32_t p = 0; p < P.np; p++)
        if (heap_push(&P, p)) goto nomem;

    int32_t rules_cap = max_merges, step = -1;
    while (t->vocab < vocab && P.nheap > 0) {
        heap_e top = heap_pop(&P);
        pair_t *bp = &P.p[top.pair];
        if (top.count != bp->count) { /* stale: counts of this pair fell since */
            if (bp->count > 0 && bp->count < top.count && heap_push(&P, top.pair)) goto nomem;
            continue;
        }
        if (bp->count <= 0) continue;
        if (t->nmerges == rules_cap) { /* results reused ids: room for more rules */
            int32_t c = rules_cap * 2;
            int32_t *m = realloc(t->merge, ((size_t)c + 1) * 3 * sizeof *m);
            if (!m) goto nomem;
            t->merge = m;
            rules_cap = c;
            int64_t mcap = t->mcap;
            while (mcap < 2 * (int64_t)c) mcap *= 2;
            if (mcap != t->mcap) {
                uint64_t *k = malloc((size_t)mcap * sizeof *k);
                int32_t *r = malloc((size_t)mcap * sizeof *r);
                if (!k || !r) {
                    free(k);
                    free(r);
                    goto nomem;
                }
                memset(k, 0xff, (size_t)mcap * sizeof *k);
                for (int64_t i = 0; i < t->mcap; i++) {
                    if (t->mkey[i] == UINT64_MAX) continue;
                    int64_t s = (int64_t)(ct_mix64(t->mkey[i]) & (uint64_t)(mcap - 1));
                    while (k[s] != UINT64_MAX) s = (s + 1) & (mcap - 1);
                    k[s] = t->mkey[i];
                    r[s] = t->mrank[i];
                }
                free(t->mkey);
                free(t->mrank);
                t->mkey = k;
                t->mrank = r;
                t->mcap = mcap;
            }
        }
        int32_t A = bp->a, B = bp->b;
        /* A pair already a rule occurs again only when a merge reused an id (its
         * result equals A or B of an earlier rule): encoding would apply that rule
         * at once, so training applies it again without a new rule. */
        int32_t old = rank_of(t, A, B);
        int32_t Z = old != INT32_MAX ? t->merge[3 * old + 2] : tok_add_merge(t, &map, A, B);
        if (Z == -3) goto nomem;
        if (Z < 0) { /* cannot happen: chunks are never longer than a token may be */
            st = ct_error(CT_ERR_STATE, "tokenizer training: pair (%d, %d) makes too long a token", A, B);
            goto done;
        }
        step++;
        int32_t r = step;
        nmade = 0;
        /* the pair's word list; taken out so pair_get may move P.p */
        int32_t *where = bp->where, nwhere = bp->nwhere;
        bp->where = NULL;
        bp->nwhere = bp->cwhere = 0;
        for (int32_t k = 0; k < nwhere; k++) {
            int32_t wi = where[k];
            if (stamp[wi] == r) continue;
            stamp[wi] = r;
            int32_t *s = sym + off[wi];
            int L = wlen[wi], hit = 0;
            for (int j = 0; j + 1 < L; j++)
                if (s[j] == A && s[j + 1] == B) hit = 1;
            if (!hit) continue;
            int64_t wc = w[wi].count;
            for (int j = 0; j + 1 < L; j++) P.p[pair_get(&P, s[j], s[j + 1])].count -= wc;
            int o2 = 0;
            for (int j = 0; j < L;) {
                if (j + 1 < L && s[j] == A && s[j + 1] == B) {
                    s[o2++] = Z;
                    j += 2;
                } else {
                    s[o2++] = s[j++];
                }
            }
            wlen[wi] = (uint8_t)o2;
            for (int j = 0; j + 1 < o2; j++) {
                int32_t p = pair_get(&P, s[j], s[j + 1]);
                if (p < 0) {
                    free(where);
                    goto nomem;
                }
                P.p[p].count += wc;
                if (s[j] == Z || s[j + 1] == Z) {
                    if (pair_note_word(&P.p[p], wi)) {
                        free(where);
                        goto nomem;
                    }
                    if (nmade == cmade) {
                        int32_t c = cmade ? 2 * cmade : 256;
                        int32_t *g = realloc(made, (size_t)c * sizeof *g);
                        if (!g) {
                            free(where);
                            goto nomem;
                        }
                        made = g;
                        cmade = c;
                    }
                    made[nmade++] = p;
                }
            }
        }
        free(where);
        /* pairs with Z: pushed once each with their final count */
        for (int32_t k = 0; k < nmade; k++) {
            int32_t p = made[k];
            if (P.p[p].pushed == r) continue;
            P.p[p].pushed = r;
            if (P.p[p].count > 0 && heap_push(&P, p)) goto nomem;
        }
    }
    *out = t;
    t = NULL;
    goto done;
nomem:
    st = ct_error(CT_ERR_NOMEM, "tokenizer training: out of memory");
done:
    ct_tokenizer_free(t);
    ct_strmap_free(&map);
    pairs_free(&P);
    free(made);
    free(sym);
    free(off);
    free(wlen);
    free(stamp);
    free(w);
    return st;
}

/* ---- encoding -------------------------------------------------------------------------- */
/* Encodes one chunk (n <= CT_TOK_MAX_CHUNK bytes) into s, returns the token count. */
static int encode_chunk(const ct_tokenizer *t, const unsigned char *c, int n, int32_t *s) {
    int32_t r[CT_TOK_MAX_CHUNK];
    for (int i = 0; i < n; i++) s[i] = c[i];
    for (int i = 0; i + 1 < n; i++) r[i] = rank_of(t, s[i], s[i + 1]);
    for (;;) {
        int32_t best = INT32_MAX;
        int k = -1;
        for (int i = 0; i + 1 < n; i++)
            if (r[i] < best) {
                best = r[i];
                k = i;
            }
        if (k < 0) return n;
        int32_t A = t->merge[3 * best], B = t->merge[3 * best + 1], Z = t->merge[3 * best + 2];
        int o = k;
        for (int j = k; j < n;) {
            if (j + 1 < n && s[j] == A && s[j + 1] == B) {
                s[o++] = Z;
                j += 2;
            } else {
                s[o++] = s[j++];
            }
        }
        n = o;
        for (int i = k > 0 ? k - 1 : 0; i + 1 < n; i++) r[i] = rank_of(t, s[i], s[i + 1]);
    }
}

ct_status ct_tokenizer_encode(const ct_tokenizer *t, const void *text, size_t len, int flags, int32_t *ids,
                              int64_t max_len, int64_t *n_out, int *truncated) {
    *n_out = 0;
    if (truncated) *truncated = 0;
    int64_t specials = !!(flags & CT_TOK_ADD_BOS) + !!(flags & CT_TOK_ADD_EOS);
    if (max_len < specials)
        return ct_error(CT_ERR_ARG, "tokenizer: max length %lld leaves no room for BOS/EOS", (long long)max_len);
    int64_t room = max_len - specials, n = 0;
    if (flags & CT_TOK_ADD_BOS) ids[n++] = CT_TOK_BOS;
    const unsigned char *s = text;
    size_t p = 0;
    int32_t buf[CT_TOK_MAX_CHUNK];
    while (p < len) {
        int c = (int)ct_text_chunk(s + p, len - p);
        int k = encode_chunk(t, s + p, c, buf);
        int64_t fit = k < room ? k : room;
        memcpy(ids + n, buf, (size_t)fit * sizeof *ids);
        n += fit;
        room -= fit;
        p += (size_t)c;
        if (fit < k || (room == 0 && p < len)) {
            if (truncated) *truncated = 1;
            break;
        }
    }
    if (flags & CT_TOK_ADD_EOS) ids[n++] = CT_TOK_EOS;
    *n_out = n;
    return CT_OK;
}

ct_status ct_tokenizer_encode_batch(const ct_tokenizer *t, const char *const *texts, const size_t *lens,
                                    int64_t n, int flags, int64_t T, int32_t *ids, uint8_t *valid,
                                    int64_t *lengths) {
    int64_t specials = !!(flags & CT_TOK_ADD_BOS) + !!(flags & CT_TOK_ADD_EOS);
    if (T < specials || T < 1)
        return ct_error(CT_ERR_ARG, "tokenizer: context %lld leaves no room for BOS/EOS", (long long)T);
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t i = 0; i < n; i++) {
        int64_t k;
        ct_tokenizer_encode(t, texts[i], lens[i], flags, ids + i * T, T, &k, NULL);
        for (int64_t j = k; j < T; j++) ids[i * T + j] = CT_TOK_PAD;
        if (valid)
            for (int64_t j = 0; j < T; j++) valid[i * T + j] = j < k;
        if (lengths) lengths[i] = k;
    }
    return CT_OK;
}

ct_status ct_tokenizer_decode(const ct_tokenizer *t, const int32_t *ids, int64_t n, char *out, size_t cap,
                              size_t *len) {
    *len = 0;
    size_t need = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->vocab)
            return ct_error(CT_ERR_ARG, "tokenizer: id %d at position %lld outside the vocabulary [0, %d)", ids[i],
                            (long long)i, t->vocab);
        need += t->toklen[ids[i]];
    }
    *len = need;
    if (!out || cap < need) return CT_OK;
    char *o = out;
    for (int64_t i = 0; i < n; i++) {
        memcpy(o, t->tok[ids[i]] ? t->tok[ids[i]] : "", t->toklen[ids[i]]);
        o += t->toklen[ids[i]];
    }
    return CT_OK;
}

/* ---- serialising ------------------------------------------------------------------------ */
#define SER_MAGIC "contrast-bpe 1"

char *ct_tokenizer_serialize(const ct_tokenizer *t, size_t *len) {
    size_t cap = 64 + (size_t)t->nmerges * 16;
    char *s = malloc(cap);
    if (!s) {
        ct_error(CT_ERR_NOMEM, "tokenizer: out of memory serialising");
        return NULL;
    }
    size_t n = (size_t)snprintf(s, cap, "%s merges %d\n", SER_MAGIC, t->nmerges);
    for (int32_t i = 0; i < t->nmerges; i++)
        n += (size_t)snprintf(s + n, cap - n, "%d %d\n", t->merge[3 * i], t->merge[3 * i + 1]);
    if (len) *len = n;
    return s;
}

/* Reads a decimal in [0, max] at *p (no sign, no leading zeros) ending at `end`
 * char; -1 when malformed. */
static int64_t read_uint(const char **p, const char *lim, char end, int64_t max) {
    const char *s = *p;
    int64_t v = 0;
    int nd = 0;
    while (s < lim && *s >= '0' && *s <= '9') {
        if (nd > 0 && v == 0) return -1; /* leading zero */
        v = v * 10 + (*s - '0');
        if (v > max) return -1;
        s++;
        nd++;
    }
    if (nd == 0 || s >= lim || *s != end) return -1;
    *p = s + 1;
    return v;
}

ct_status ct_tokenizer_deserialize(ct_tokenizer **out, const char *data, size_t len, const char *what) {
    *out = NULL;
    if (!what) what = "tokenizer";
    const char *p = data, *lim = data + len;
    size_t ml = strlen(SER_MAGIC " merges ");
    if (len < ml || memcmp(data, SER_MAGIC " merges ", ml) != 0)
        return ct_error(CT_ERR_FORMAT, "%s: not a contrast tokenizer (expected a first line \"%s merges N\")", what,
                        SER_MAGIC);
    p += ml;
    int64_t nm = read_uint(&p, lim, '\n', CT_TOK_MAX_VOCAB);
    if (nm < 0)
        return ct_error(CT_ERR_FORMAT, "%s: line 1: merge count missing, malformed or over %d", what,
                        CT_TOK_MAX_VOCAB);
    ct_tokenizer *t = tok_new((int32_t)nm);
    ct_strmap map;
    if (!t || ct_strmap_init(&map, nm)) {
        ct_tokenizer_free(t);
        return ct_error(CT_ERR_NOMEM, "%s: out of memory for %lld merges", what, (long long)nm);
    }
    ct_status st = CT_OK;
    for (int64_t i = 0; i < nm; i++) {
        int64_t line = i + 2;
        if (p >= lim) {
            st = ct_error(CT_ERR_FORMAT, "%s: truncated: %lld of %lld merges", what, (long long)i, (long long)nm);
            break;
        }
        int64_t a = read_uint(&p, lim, ' ', INT32_MAX);
        int64_t b = a < 0 ? -1 : read_uint(&p, lim, '\n', INT32_MAX);
        if (a < 0 || b < 0) {
            st = ct_error(CT_ERR_FORMAT, "%s: line %lld: expected \"LEFT RIGHT\" (two ids)", what, (long long)line);
            break;
        }
        for (int k = 0; k < 2; k++) {
            int64_t id = k ? b : a;
            if (id >= t->vocab || (id >= CT_TOK_BYTES && id < CT_TOK_FIRST_MERGE)) {
                st = ct_error(CT_ERR_FORMAT,
                              "%s: line %lld: id %lld is %s (a merge may use only bytes and tokens made before it)",
                              what, (long long)line, (long long)id, id >= t->vocab ? "not made yet" : "a special");
                break;
            }
        }
        if (st) break;
        int32_t z = tok_add_merge(t, &map, (int32_t)a, (int32_t)b);
        if (z == -1) st = ct_error(CT_ERR_FORMAT, "%s: line %lld: pair (%lld, %lld) repeats an earlier merge", what,
                                   (long long)line, (long long)a, (long long)b);
        else if (z == -2)
            st = ct_error(CT_ERR_FORMAT, "%s: line %lld: merge makes a token longer than %d bytes", what,
                          (long long)line, CT_TOK_MAX_CHUNK);
        else if (z == -3)
            st = ct_error(CT_ERR_NOMEM, "%s: out of memory", what);
        if (st) break;
    }
    if (!st && p != lim)
        st = ct_error(CT_ERR_FORMAT, "%s: %lld bytes after the last of %lld merges", what, (long long)(lim - p),
                      (long long)nm);
    ct_strmap_free(&map);
    if (st) {
        ct_tokenizer_free(t);
        return st;
    }
    *out = t;
    return CT_OK;
}

ct_status ct_tokenizer_save(const ct_tokenizer *t, const char *path) {
    size_t n;
    char *s = ct_tokenizer_serialize(t, &n);
    if (!s) return CT_ERR_NOMEM;
    ct_atomic_file af;
    ct_status st = ct_atomic_open(&af, path);
    if (!st) st = ct_atomic_write(&af, s, n);
    if (!st) st = ct_atomic_commit(&af);
    free(s);
    return st;
}

ct_status ct_tokenizer_load(ct_tokenizer **out, const char *path) {
    *out = NULL;
    char *s;
    size_t n;
    /* 16 bytes per merge is more than any serialised line needs */
    ct_status st = ct_text_read_file(path, 64 + (int64_t)CT_TOK_MAX_VOCAB * 16, &s, &n);
    if (st) return st;
    st = ct_tokenizer_deserialize(out, s, n, path);
    free(s);
    return st;
}

/* ---- GPT-2 export ------------------------------------------------------------------------ */
/* GPT-2's bytes_to_unicode: the printable Latin-1 bytes ('!'..'~', 0xA1..0xAC,
 * 0xAE..0xFF) stand for themselves, the other 68 for U+0100.. in byte order (0..32,
 * then 0x7F..0xA0, then 0xAD). Writes the UTF-8 of byte b's character. */
static int gpt2_char(unsigned char b, char *out) {
    int u = b;
    if (b <= 0x20) u = 0x100 + b;
    else if (b >= 0x7F && b <= 0xA0) u = 0x100 + 33 + (b - 0x7F);
    else if (b == 0xAD) u = 0x100 + 67;
    if (u < 0x80) {
        out[0] = (char)u;
        return 1;
    }
    out[0] = (char)(0xC0 | (u >> 6));
    out[1] = (char)(0x80 | (u & 0x3F));
    return 2;
}

/* Token `id` as GPT-2 shows it, JSON-escaped when json. */
static void gpt2_token(const ct_tokenizer *t, int32_t id, int json, FILE *f) {
    static const char *special[3] = {"<|pad|>", "<|bos|>", "<|eos|>"};
    if (id >= CT_TOK_BYTES && id < CT_TOK_FIRST_MERGE) {
        fputs(special[id - CT_TOK_BYTES], f);
        return;
    }
    for (int i = 0; i < t->toklen[id]; i++) {
        char u[2];
        int k = gpt2_char((unsigned char)t->tok[id][i], u);
        if (json && k == 1 && (u[0] == '"' || u[0] == '\\')) fputc('\\', f);
        fwrite(u, 1, (size_t)k, f);
    }
}

static ct_status write_stream(const char *path, const ct_tokenizer *t, int merges) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) return ct_error(CT_ERR_NOMEM, "%s: out of memory", path);
    if (merges) {
        fputs("#version: 0.2\n", f);
        for (int32_t i = 0; i < t->nmerges; i++) {
            gpt2_token(t, t->merge[3 * i], 0, f);
            fputc(' ', f);
            gpt2_token(t, t->merge[3 * i + 1], 0, f);
            fputc('\n', f);
        }
    } else {
        fputc('{', f);
        for (int32_t id = 0; id < t->vocab; id++) {
            fputs(id ? ", \"" : "\"", f);
            gpt2_token(t, id, 1, f);
            fprintf(f, "\": %d", id);
        }
        fputs("}\n", f);
    }
    if (fclose(f) != 0 || !buf) {
        free(buf);
        return ct_error(CT_ERR_NOMEM, "%s: out of memory", path);
    }
    ct_atomic_file af;
    ct_status st = ct_atomic_open(&af, path);
    if (!st) st = ct_atomic_write(&af, buf, n);
    if (!st) st = ct_atomic_commit(&af);
    free(buf);
    return st;
}

ct_status ct_tokenizer_export_gpt2(const ct_tokenizer *t, const char *dir) {
    size_t dl = strlen(dir);
    char *path = malloc(dl + 16);
    if (!path) return ct_error(CT_ERR_NOMEM, "%s: out of memory", dir);
    snprintf(path, dl + 16, "%s/vocab.json", dir);
    ct_status st = write_stream(path, t, 0);
    if (!st) {
        snprintf(path, dl + 16, "%s/merges.txt", dir);
        st = write_stream(path, t, 1);
    }
    free(path);
    return st;
}
