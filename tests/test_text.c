/* test_text.c: the byte-level BPE tokenizer (merge order by hand and against a
 * plain reference trainer, determinism across threads, lossless round trips,
 * truncation and padding, serialisation and hostile inputs, GPT-2 export), the
 * text:/pairs: readers, the no-duplicates batch planner, and the
 * debian-descriptions builder on tests/fixtures/debian (and the real apt lists
 * when present). */
#include "harness.h"

#include "../src/text/internal.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_tmp[64];

static const char *tpath(const char *rel) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_tmp, rel);
    return buf[k];
}

static ct_tokenizer *train_on(const char *const *texts, int64_t n, int vocab) {
    size_t *lens = malloc((size_t)n * sizeof *lens);
    for (int64_t i = 0; i < n; i++) lens[i] = strlen(texts[i]);
    ct_tokenizer *tok = NULL;
    ct_tokenizer_opts o = {vocab};
    CHECK_OK(ct_tokenizer_train(&tok, texts, lens, n, &o));
    free(lens);
    return tok;
}

/* The token's bytes as a C string (for messages and comparisons). */
static const char *tokstr(const ct_tokenizer *t, int32_t id) {
    static char buf[4][CT_TOK_MAX_CHUNK + 1];
    static int k;
    k = (k + 1) % 4;
    size_t n;
    const char *s = ct_tokenizer_token(t, id, &n);
    memcpy(buf[k], s ? s : "", n);
    buf[k][n] = 0;
    return buf[k];
}

/* ---- merge order by hand ------------------------------------------------------------------ */
/* Words hug x10, pug x5, pun x12, bun x4, hugs x5 (each one chunk). Pair counts:
 * u-g 20 (10+5+5), p-u 17, u-n 16, h-u 15, g-s 5, b-u 4, so:
 *   1 (u, g) 20 -> "ug";  then h-ug 15, u-n 16, p-u 12, p-ug 5, ug-s 5, b-u 4
 *   2 (u, n) 16 -> "un";  then h-ug 15, p-un 12, b-un 4
 *   3 (h, ug) 15 -> "hug"
 *   4 (p, un) 12 -> "pun"
 *   5 (p, ug) 5 -> "pug"   tie at 5 with (hug, s): the smaller left id, 'p' = 112 < 261
 *   6 (hug, s) 5 -> "hugs"
 *   7 (b, un) 4 -> "bun"   and no pair is left: 7 merges although 300 were allowed. */
static void test_merge_order(void) {
    const char *texts[36];
    int n = 0;
    for (int i = 0; i < 10; i++) texts[n++] = "hug";
    for (int i = 0; i < 5; i++) texts[n++] = "pug";
    for (int i = 0; i < 12; i++) texts[n++] = "pun";
    for (int i = 0; i < 4; i++) texts[n++] = "bun";
    for (int i = 0; i < 5; i++) texts[n++] = "hugs";
    ct_tokenizer *t = train_on(texts, n, 300);
    if (!t) return;
    static const char *expect[7][3] = {{"u", "g", "ug"},   {"u", "n", "un"},   {"h", "ug", "hug"}, {"p", "un", "pun"},
                                       {"p", "ug", "pug"}, {"hug", "s", "hugs"}, {"b", "un", "bun"}};
    CHECK(ct_tokenizer_merge_count(t) == 7, "hand corpus: %d merges, expected 7", ct_tokenizer_merge_count(t));
    CHECK(ct_tokenizer_vocab_size(t) == CT_TOK_FIRST_MERGE + 7, "vocab %d", ct_tokenizer_vocab_size(t));
    for (int i = 0; i < 7 && i < ct_tokenizer_merge_count(t); i++) {
        int32_t a, b, z;
        ct_tokenizer_merge(t, i, &a, &b, &z);
        CHECK(!strcmp(tokstr(t, a), expect[i][0]) && !strcmp(tokstr(t, b), expect[i][1]) &&
                  !strcmp(tokstr(t, z), expect[i][2]) && z == CT_TOK_FIRST_MERGE + i,
              "merge %d: (%s, %s) -> %s (id %d), expected (%s, %s) -> %s", i + 1, tokstr(t, a), tokstr(t, b),
              tokstr(t, z), z, expect[i][0], expect[i][1], expect[i][2]);
    }
    /* encoding: a training word is one token; an unseen word uses what applies */
    int32_t ids[16];
    int64_t k;
    CHECK_OK(ct_tokenizer_encode(t, "hugs", 4, 0, ids, 16, &k, NULL));
    CHECK(k == 1 && ids[0] == CT_TOK_FIRST_MERGE + 5, "hugs -> %lld ids, first %d", (long long)k, ids[0]);
    CHECK_OK(ct_tokenizer_encode(t, "bugs", 4, 0, ids, 16, &k, NULL));
    CHECK(k == 3 && ids[0] == 'b' && ids[1] == CT_TOK_FIRST_MERGE && ids[2] == 's', "bugs -> b ug s: got %lld ids",
          (long long)k);
    ct_tokenizer_free(t);
}

/* ---- the plain reference trainer -------------------------------------------------------- */
/* Recounts every pair before each merge; same rules: highest count, then smaller
 * left id, then smaller right id; a result with existing bytes reuses that id; a
 * pair that is already a rule is applied again without a new rule. */
typedef struct {
    int32_t s[CT_TOK_MAX_CHUNK];
    int n;
    int64_t count;
} rword;

static int ref_train(const char *const *texts, int64_t n, int vocab, int32_t *merges /* (max, 3) */, int max) {
    static rword w[4096];
    int nw = 0;
    for (int64_t i = 0; i < n; i++) {
        const unsigned char *s = (const unsigned char *)texts[i];
        size_t len = strlen(texts[i]), p = 0;
        while (p < len) {
            size_t c = ct_text_chunk(s + p, len - p);
            int f = -1;
            for (int j = 0; j < nw && f < 0; j++) {
                if (w[j].n != (int)c) continue;
                int same = 1;
                for (size_t q = 0; q < c; q++) same &= w[j].s[q] == s[p + q];
                if (same) f = j;
            }
            if (f < 0) {
                f = nw++;
                w[f].n = (int)c;
                w[f].count = 0;
                for (size_t q = 0; q < c; q++) w[f].s[q] = s[p + q];
            }
            w[f].count++;
            p += c;
        }
    }
    static char tok[1 << 14][CT_TOK_MAX_CHUNK];
    static int toklen[1 << 14];
    for (int b = 0; b < 256; b++) {
        tok[b][0] = (char)b;
        toklen[b] = 1;
    }
    int V = CT_TOK_FIRST_MERGE, nm = 0;
    while (V < vocab && nm < max) {
        int64_t best = 0;
        int32_t ba = 0, bb = 0;
        for (int j = 0; j < nw; j++)
            for (int q = 0; q + 1 < w[j].n; q++) {
                int32_t a = w[j].s[q], b = w[j].s[q + 1];
                int64_t c = 0;
                for (int j2 = 0; j2 < nw; j2++)
                    for (int q2 = 0; q2 + 1 < w[j2].n; q2++)
                        if (w[j2].s[q2] == a && w[j2].s[q2 + 1] == b) c += w[j2].count;
                if (c > best || (c == best && (a < ba || (a == ba && b < bb)))) {
                    best = c;
                    ba = a;
                    bb = b;
                }
            }
        if (best == 0) break;
        int32_t z = -1;
        for (int r = 0; r < nm; r++)
            if (merges[3 * r] == ba && merges[3 * r + 1] == bb) z = merges[3 * r + 2];
        if (z < 0) {
            char buf[2 * CT_TOK_MAX_CHUNK];
            int l = toklen[ba] + toklen[bb];
            memcpy(buf, tok[ba], (size_t)toklen[ba]);
            memcpy(buf + toklen[ba], tok[bb], (size_t)toklen[bb]);
            for (int id = 0; id < V && z < 0; id++)
                if ((id < 256 || id >= CT_TOK_FIRST_MERGE) && toklen[id] == l && !memcmp(tok[id], buf, (size_t)l)) z = id;
            if (z < 0) {
                z = V++;
                memcpy(tok[z], buf, (size_t)l);
                toklen[z] = l;
            }
            merges[3 * nm] = ba;
            merges[3 * nm + 1] = bb;
            merges[3 * nm + 2] = z;
            nm++;
        }
        for (int j = 0; j < nw; j++) {
            int o = 0;
            for (int q = 0; q < w[j].n;) {
                if (q + 1 < w[j].n && w[j].s[q] == ba && w[j].s[q + 1] == bb) {
                    w[j].s[o++] = z;
                    q += 2;
                } else {
                    w[j].s[o++] = w[j].s[q++];
                }
            }
            w[j].n = o;
        }
    }
    return nm;
}

static void test_against_reference(void) {
    ct_rng r = ct_rng_make(ct_rng_key(42, 1, 2, 3));
    int reused = 0, ok_all = 1;
    static char store[200][24];
    const char *texts[200];
    for (int trial = 0; trial < 60 && ok_all; trial++) {
        int n = 20 + (int)ct_rng_below(&r, 100);
        int alpha = 2 + (int)ct_rng_below(&r, 3); /* letters from "abcd" */
        for (int i = 0; i < n; i++) {
            int len = 1 + (int)ct_rng_below(&r, 14), k = 0;
            for (; k < len; k++) {
                uint64_t u = ct_rng_below(&r, 12);
                store[i][k] = u == 0 ? ' ' : u == 1 ? '.' : (char)('a' + ct_rng_below(&r, (uint64_t)alpha));
            }
            store[i][k] = 0;
            texts[i] = store[i];
        }
        int vocab = CT_TOK_FIRST_MERGE + 5 + (int)ct_rng_below(&r, 60);
        static int32_t ref[3 * 4096];
        int nm = ref_train(texts, n, vocab, ref, 4096);
        ct_tokenizer *t = train_on(texts, n, vocab);
        if (!t) return;
        int same = ct_tokenizer_merge_count(t) == nm;
        for (int i = 0; same && i < nm; i++) {
            int32_t a, b, z;
            ct_tokenizer_merge(t, i, &a, &b, &z);
            same = a == ref[3 * i] && b == ref[3 * i + 1] && z == ref[3 * i + 2];
        }
        CHECK(same, "trial %d: merges differ from the reference trainer (%d vs %d merges)", trial,
              ct_tokenizer_merge_count(t), nm);
        ok_all &= same;
        if (ct_tokenizer_merge_count(t) > ct_tokenizer_vocab_size(t) - CT_TOK_FIRST_MERGE) reused++;
        ct_tokenizer_free(t);
    }
    /* Training has not been seen to make a token twice (left-to-right merging seems
     * to rule it out); the reuse rule is checked on a hand-written file below. */
    CHECK(reused == 0, "%d trials reused an id", reused);
}

/* ---- a mixed corpus for the other tests ------------------------------------------------- */
static char **mixed_corpus(int64_t n, uint64_t seed) {
    static const char *words[] = {"the",  "quick", "brown", "fox",    "jumps", "over",  "lazy",  "dog",
                                  "café", "naïve", "日本語", "données", "x86_64", "--help", "v1.2.3", "C++"};
    ct_rng r = ct_rng_make(ct_rng_key(seed, 0, 0, 0));
    char **t = malloc((size_t)n * sizeof *t);
    for (int64_t i = 0; i < n; i++) {
        char buf[256];
        size_t k = 0;
        int nw = 1 + (int)ct_rng_below(&r, 12);
        for (int j = 0; j < nw; j++) {
            const char *w = words[ct_rng_below(&r, sizeof words / sizeof *words)];
            k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%s", j ? (ct_rng_below(&r, 8) ? " " : "  ") : "", w);
            if (ct_rng_below(&r, 6) == 0) k += (size_t)snprintf(buf + k, sizeof buf - k, "%u", (unsigned)ct_rng_below(&r, 1000));
            if (ct_rng_below(&r, 7) == 0) k += (size_t)snprintf(buf + k, sizeof buf - k, ",\t");
        }
        t[i] = strdup(buf);
    }
    return t;
}

static void free_corpus(char **t, int64_t n) {
    for (int64_t i = 0; i < n; i++) free(t[i]);
    free(t);
}

static void test_threads_determinism(void) {
    int64_t n = 6000; /* over the 1024 texts from which counting goes parallel */
    char **c = mixed_corpus(n, 5);
    char *ser[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        ct_set_threads(k + 1);
        ct_tokenizer *t = train_on((const char *const *)c, n, 600);
        if (t) ser[k] = ct_tokenizer_serialize(t, NULL);
        ct_tokenizer_free(t);
    }
    ct_set_threads(2);
    CHECK(ser[0] && ser[1] && !strcmp(ser[0], ser[1]), "merges differ between 1 and 2 threads");
    free(ser[0]);
    free(ser[1]);
    free_corpus(c, n);
}

/* decode(encode(x)) == x for random byte strings (every byte value, invalid UTF-8) */
static void test_round_trip(void) {
    int64_t n = 3000;
    char **c = mixed_corpus(n, 9);
    ct_tokenizer *t = train_on((const char *const *)c, n, 700);
    free_corpus(c, n);
    if (!t) return;
    ct_rng r = ct_rng_make(ct_rng_key(77, 0, 0, 0));
    unsigned char x[400];
    int32_t ids[404];
    char back[404];
    int bad = 0, longer = 0;
    for (int trial = 0; trial < 2000; trial++) {
        size_t len = (size_t)ct_rng_below(&r, trial < 1000 ? 40 : 400);
        int mode = (int)ct_rng_below(&r, 3);
        for (size_t i = 0; i < len; i++) {
            /* mode 0: any byte; 1: text-like with some stray bytes; 2: long runs */
            if (mode == 0) x[i] = (unsigned char)ct_rng_below(&r, 256);
            else if (mode == 1) x[i] = ct_rng_below(&r, 10) ? (unsigned char)"the fox  d\xc3\xa9\n"[ct_rng_below(&r, 14)]
                                                           : (unsigned char)ct_rng_below(&r, 256);
            else x[i] = (unsigned char)("aa bb"[ct_rng_below(&r, 5)]);
        }
        int flags = (int)ct_rng_below(&r, 4);
        int64_t k;
        size_t m;
        if (ct_tokenizer_encode(t, x, len, flags, ids, (int64_t)len + 2, &k, NULL) ||
            ct_tokenizer_decode(t, ids, k, back, sizeof back, &m) || m != len || memcmp(back, x, len) != 0) {
            bad++;
            continue;
        }
        longer += k > (int64_t)len + !!(flags & 1) + !!(flags & 2);
        for (int64_t i = 0; i < k; i++) bad += ids[i] < 0 || ids[i] >= ct_tokenizer_vocab_size(t);
    }
    CHECK(bad == 0, "round trip failed %d times", bad);
    CHECK(longer == 0, "%d texts gave more tokens than bytes", longer);
    /* every byte value alone and all 256 in one string */
    for (int b = 0; b < 256; b++) x[b] = (unsigned char)b;
    int64_t k;
    size_t m;
    CHECK_OK(ct_tokenizer_encode(t, x, 256, 0, ids, 258, &k, NULL));
    CHECK_OK(ct_tokenizer_decode(t, ids, k, back, sizeof back, &m));
    CHECK(m == 256 && !memcmp(back, x, 256), "all 256 bytes did not round trip");
    /* decode rejects an id outside the vocabulary */
    ids[0] = ct_tokenizer_vocab_size(t);
    CHECK(ct_tokenizer_decode(t, ids, 1, back, sizeof back, &m) == CT_ERR_ARG, "decode took id %d", ids[0]);
    CHECK(strstr(ct_errmsg(), "outside the vocabulary") != NULL, "message: %s", ct_errmsg());
    ct_tokenizer_free(t);
}

static void test_truncation_padding(void) {
    const char *corpus[] = {"one two three four five six", "one two three", "four five six"};
    ct_tokenizer *t = train_on(corpus, 3, 320);
    if (!t) return;
    const char *text = "one two three four five six";
    int32_t ids[64];
    int64_t full, k;
    int trunc;
    CHECK_OK(ct_tokenizer_encode(t, text, strlen(text), 0, ids, 64, &full, &trunc));
    CHECK(trunc == 0 && full >= 6, "full: %lld tokens, truncated %d", (long long)full, trunc);
    CHECK_OK(ct_tokenizer_encode(t, text, strlen(text), CT_TOK_ADD_BOS | CT_TOK_ADD_EOS, ids, 4, &k, &trunc));
    CHECK(k == 4 && trunc == 1 && ids[0] == CT_TOK_BOS && ids[3] == CT_TOK_EOS, "truncated: %lld ids, BOS %d EOS %d",
          (long long)k, ids[0], ids[3]);
    CHECK(ct_tokenizer_encode(t, text, strlen(text), CT_TOK_ADD_BOS | CT_TOK_ADD_EOS, ids, 1, &k, NULL) == CT_ERR_ARG,
          "max_len 1 with BOS and EOS accepted");
    /* exactly enough room is not a truncation */
    CHECK_OK(ct_tokenizer_encode(t, text, strlen(text), CT_TOK_ADD_EOS, ids, full + 1, &k, &trunc));
    CHECK(k == full + 1 && trunc == 0 && ids[full] == CT_TOK_EOS, "exact room: %lld ids truncated %d", (long long)k, trunc);
    /* the batch: right padding, valid mask, lengths */
    const char *texts[3] = {"one", text, ""};
    size_t lens[3] = {3, strlen(text), 0};
    int64_t T = 5, len[3];
    int32_t bid[15];
    uint8_t valid[15];
    CHECK_OK(ct_tokenizer_encode_batch(t, texts, lens, 3, CT_TOK_ADD_BOS | CT_TOK_ADD_EOS, T, bid, valid, len));
    CHECK(len[0] == 3 && len[1] == 5 && len[2] == 2, "lengths %lld %lld %lld", (long long)len[0], (long long)len[1],
          (long long)len[2]);
    int ok = 1;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < T; j++) {
            ok &= valid[i * T + j] == (j < len[i]);
            if (j >= len[i]) ok &= bid[i * T + j] == CT_TOK_PAD;
        }
    CHECK(ok && bid[0] == CT_TOK_BOS && bid[2] == CT_TOK_EOS && bid[T + 4] == CT_TOK_EOS && bid[2 * T + 1] == CT_TOK_EOS,
          "padding / mask / specials wrong");
    size_t m;
    char back[8];
    CHECK_OK(ct_tokenizer_decode(t, bid, T, back, sizeof back, &m));
    CHECK(m == 3 && !memcmp(back, "one", 3), "specials and padding decode to nothing");
    ct_tokenizer_free(t);
}

/* ---- serialising ---------------------------------------------------------------------- */
static ct_status deser(const char *s, ct_tokenizer **t) { return ct_tokenizer_deserialize(t, s, strlen(s), "test"); }

static void expect_bad(const char *s, const char *needle) {
    ct_tokenizer *t = NULL;
    ct_status st = deser(s, &t);
    CHECK(st == CT_ERR_FORMAT && t == NULL && strstr(ct_errmsg(), needle) != NULL,
          "bad tokenizer accepted or wrong message (status %d): %s [wanted \"%s\"]", st, ct_errmsg(), needle);
    ct_tokenizer_free(t);
}

static void test_serialise(void) {
    int64_t n = 2000;
    char **c = mixed_corpus(n, 3);
    ct_tokenizer *t = train_on((const char *const *)c, n, 500);
    if (!t) {
        free_corpus(c, n);
        return;
    }
    size_t len;
    char *s = ct_tokenizer_serialize(t, &len);
    CHECK(s && len == strlen(s) && !strncmp(s, "contrast-bpe 1 merges ", 22), "serialised header");
    ct_tokenizer *u = NULL;
    CHECK_OK(ct_tokenizer_deserialize(&u, s, len, "test"));
    CHECK_OK(ct_tokenizer_save(t, tpath("tok.txt")));
    ct_tokenizer *v = NULL;
    CHECK_OK(ct_tokenizer_load(&v, tpath("tok.txt")));
    if (u && v) {
        CHECK(ct_tokenizer_vocab_size(u) == ct_tokenizer_vocab_size(t) && ct_tokenizer_vocab_size(v) == ct_tokenizer_vocab_size(t),
              "vocab after round trip");
        char *s2 = ct_tokenizer_serialize(u, NULL);
        CHECK(s2 && !strcmp(s, s2), "serialise(deserialise(s)) != s");
        free(s2);
        int same = 1;
        for (int64_t i = 0; i < n; i++) {
            int32_t a[300], b[300], d[300];
            int64_t ka, kb, kd;
            size_t l = strlen(c[i]);
            ct_tokenizer_encode(t, c[i], l, 3, a, 300, &ka, NULL);
            ct_tokenizer_encode(u, c[i], l, 3, b, 300, &kb, NULL);
            ct_tokenizer_encode(v, c[i], l, 3, d, 300, &kd, NULL);
            same &= ka == kb && ka == kd && !memcmp(a, b, (size_t)ka * 4) && !memcmp(a, d, (size_t)ka * 4);
        }
        CHECK(same, "a deserialised tokenizer encodes differently");
    }
    ct_tokenizer_free(u);
    ct_tokenizer_free(v);
    /* truncated at every length: always refused, never crashes */
    int refused = 0;
    for (size_t cut = 0; cut < len; cut += 1 + cut / 50) {
        ct_tokenizer *w = NULL;
        refused += ct_tokenizer_deserialize(&w, s, cut, "test") == CT_ERR_FORMAT && !w;
        ct_tokenizer_free(w);
    }
    int tries = 0;
    for (size_t cut = 0; cut < len; cut += 1 + cut / 50) tries++;
    CHECK(refused == tries, "%d of %d truncations refused", refused, tries);
    free(s);
    free_corpus(c, n);
    ct_tokenizer_free(t);

    ct_tokenizer *ok = NULL;
    CHECK_OK(deser("contrast-bpe 1 merges 2\n97 98\n259 99\n", &ok));
    if (ok) CHECK(!strcmp(tokstr(ok, 260), "abc"), "hand-written merges: token 260 is %s", tokstr(ok, 260));
    ct_tokenizer_free(ok);
    /* (a, bc) makes "abc" a second time: it reuses id 260, the vocabulary stays 262 */
    CHECK_OK(deser("contrast-bpe 1 merges 4\n97 98\n259 99\n98 99\n97 261\n", &ok));
    if (ok) {
        int32_t a, b, z, ids[4];
        int64_t k;
        ct_tokenizer_merge(ok, 3, &a, &b, &z);
        CHECK(ct_tokenizer_vocab_size(ok) == 262 && ct_tokenizer_merge_count(ok) == 4 && z == 260,
              "reuse: vocab %d, merges %d, result %d", ct_tokenizer_vocab_size(ok), ct_tokenizer_merge_count(ok), z);
        CHECK_OK(ct_tokenizer_encode(ok, "abc", 3, 0, ids, 4, &k, NULL));
        CHECK(k == 1 && ids[0] == 260, "abc -> %lld ids, first %d", (long long)k, ids[0]);
        CHECK_OK(ct_tokenizer_export_gpt2(ok, g_tmp));
        size_t vn;
        char *vj = (char *)slurp(tpath("vocab.json"), &vn);
        if (vj) {
            vj[vn] = 0;
            CHECK(strstr(vj, "\"abc\": 260, \"bc\": 261}") != NULL, "abc once in vocab.json: ...%s", vj + vn - 40);
        }
        free(vj);
    }
    ct_tokenizer_free(ok);
    CHECK_OK(deser("contrast-bpe 1 merges 0\n", &ok));
    ct_tokenizer_free(ok);
    expect_bad("", "not a contrast tokenizer");
    expect_bad("gpt2 merges 1\n97 98\n", "not a contrast tokenizer");
    expect_bad("contrast-bpe 1 merges 99999999999\n", "line 1");
    expect_bad("contrast-bpe 1 merges 2\n97 98\n", "truncated");
    expect_bad("contrast-bpe 1 merges 1\n97 98", "line 2");
    expect_bad("contrast-bpe 1 merges 1\n97 259\n", "not made yet");
    expect_bad("contrast-bpe 1 merges 1\n97 257\n", "a special");
    expect_bad("contrast-bpe 1 merges 1\n-1 98\n", "line 2");
    expect_bad("contrast-bpe 1 merges 1\n097 98\n", "line 2");
    expect_bad("contrast-bpe 1 merges 1\n97  98\n", "line 2");
    expect_bad("contrast-bpe 1 merges 1\n97 98\r\n", "line 2");
    expect_bad("contrast-bpe 1 merges 2\n97 98\n97 98\n", "repeats an earlier merge");
    expect_bad("contrast-bpe 1 merges 1\n97 98\nextra", "after the last");
    /* tokens that double in length: the 7th would be 128 bytes */
    expect_bad("contrast-bpe 1 merges 7\n0 0\n259 259\n260 260\n261 261\n262 262\n263 263\n264 264\n",
               "longer than 64 bytes");
    /* a file: regular only, named in the message */
    CHECK(ct_tokenizer_load(&ok, tpath("missing.txt")) == CT_ERR_IO && strstr(ct_errmsg(), "missing.txt"),
          "missing file: %s", ct_errmsg());
    CHECK(mkfifo(tpath("fifo"), 0600) == 0, "mkfifo");
    CHECK(ct_tokenizer_load(&ok, tpath("fifo")) == CT_ERR_IO && strstr(ct_errmsg(), "not a regular file"),
          "FIFO: %s", ct_errmsg());
}

/* ---- GPT-2 export ------------------------------------------------------------------------ */
static void test_export(void) {
    const char *texts[] = {"hug", "hug", "hug", "\"q\\", "\"q\\", "a b"};
    ct_tokenizer *t = train_on(texts, 6, 261);
    if (!t) return;
    CHECK_OK(ct_tokenizer_export_gpt2(t, g_tmp));
    size_t n;
    char *v = (char *)slurp(tpath("vocab.json"), &n);
    size_t nm;
    char *m = (char *)slurp(tpath("merges.txt"), &nm);
    if (m) m[nm] = 0;
    CHECK(v && m, "export files missing");
    if (v) v[n] = 0; /* slurp leaves room for the NUL */
    if (v && m) {
        {
            const char *head = "{\"\xc4\x80\": 0, \"\xc4\x81\": 1, ";
            CHECK(!strncmp(v, head, strlen(head)), "vocab.json starts %.30s", v);
        }
        CHECK(strstr(v, "\"\xc4\xa0\": 32, \"!\": 33, \"\\\"\": 34,") != NULL, "space/!/quote entries");
        CHECK(strstr(v, "\"\\\\\": 92,") != NULL, "backslash entry");
        CHECK(strstr(v, "\"<|pad|>\": 256, \"<|bos|>\": 257, \"<|eos|>\": 258") != NULL, "specials");
        /* "\"q\\" is three chunks, "a b" two: the only pairs are h-u 3 and u-g 3, a tie
         * that the smaller left id ('h' = 104) wins */
        CHECK(!strncmp(m, "#version: 0.2\nh u\nhu g\n", 23), "merges.txt starts %.30s", m);
        int32_t a, b, z;
        ct_tokenizer_merge(t, 1, &a, &b, &z);
        char want[64];
        snprintf(want, sizeof want, "\"hug\": %d}", z);
        CHECK(strstr(v, want) != NULL, "last vocab entry %s", want);
    }
    free(v);
    free(m);
    ct_tokenizer_free(t);
}

/* ---- readers -------------------------------------------------------------------------------- */
static void test_readers(void) {
    ct_text_dataset ds;
    /* text: CRLF, blank lines, repeats, invalid UTF-8, a NUL byte */
    const char txt[] = "first line\r\n\r\n  \nsecond\n\xff\xfe bad utf8\nfirst line\nnul\0inside\nlast without newline";
    spit(tpath("a.txt"), txt, sizeof txt - 1);
    char spec[600];
    snprintf(spec, sizeof spec, "text:%s", tpath("a.txt"));
    CHECK_OK(ct_text_dataset_load(&ds, spec, 1));
    CHECK(ds.ntexts == 5 && ds.npairs == 0 && ds.nlabels == 0, "text: %lld texts", (long long)ds.ntexts);
    if (ds.ntexts == 5) {
        CHECK(!strcmp(ds.text[0], "first line") && ds.len[0] == 10, "CRLF stripped: [%s]", ds.text[0]);
        CHECK(!strcmp(ds.text[2], "\xff\xfe bad utf8"), "bad UTF-8 kept");
        CHECK(ds.len[3] == 10 && !memcmp(ds.text[3], "nul\0inside", 10), "NUL kept");
        CHECK(!strcmp(ds.text[4], "last without newline"), "last line");
        CHECK(ds.uniq[4] == 4, "uniq of a deduplicated text");
    }
    ct_text_dataset_free(&ds);
    ct_text_dataset_free(&ds); /* idempotent */

    /* pairs: labels sorted, repeats kept with a shared uniq */
    const char tsv[] = "q1\tanswer one\tsports\r\nq2\tanswer two\tart\n\nq1\tanswer one\tsports\nq3\tq1\tart\n";
    spit(tpath("p.tsv"), tsv, sizeof tsv - 1);
    snprintf(spec, sizeof spec, "pairs:%s", tpath("p.tsv"));
    CHECK_OK(ct_text_dataset_load(&ds, spec, 1));
    CHECK(ds.npairs == 4 && ds.ntexts == 8 && ds.nlabels == 2, "pairs: %lld pairs %lld texts %d labels",
          (long long)ds.npairs, (long long)ds.ntexts, ds.nlabels);
    if (ds.npairs == 4 && ds.nlabels == 2) {
        CHECK(!strcmp(ds.label_name[0], "art") && !strcmp(ds.label_name[1], "sports"), "label names sorted");
        CHECK(ds.label[0] == 1 && ds.label[1] == 0 && ds.label[3] == 0, "label ids");
        CHECK(!strcmp(ds.text[ds.anchor[0]], "q1") && !strcmp(ds.text[ds.positive[0]], "answer one"), "pair 0");
        CHECK(ds.uniq[ds.anchor[2]] == ds.anchor[0] && ds.uniq[ds.positive[3]] == ds.anchor[0],
              "repeated texts share their uniq");
    }
    ct_text_dataset_free(&ds);
    snprintf(spec, sizeof spec, "pairs:%s", tpath("p2.tsv"));
    spit(tpath("p2.tsv"), "a\tb\n", 4);
    CHECK_OK(ct_text_dataset_load(&ds, spec, 0));
    CHECK(ds.npairs == 1 && ds.label == NULL && ds.nlabels == 0, "unlabelled pairs");
    ct_text_dataset_free(&ds);

    /* malformed TSVs: file and line named */
    static const struct {
        const char *body, *needle;
    } bad[] = {
        {"a\tb\nonly one column\n", "bad.tsv:2: 1 tab-separated column;"},
        {"a\tb\tc\td\n", "bad.tsv:1: 4 tab-separated columns"},
        {"\n\na\t\n", "bad.tsv:3: empty positive"},
        {" \tb\n", "bad.tsv:1: empty anchor"},
        {"a\tb\t\n", "bad.tsv:1: empty label"},
        {"a\tb\tx\nc\td\n", "bad.tsv:2: has no label but line 1 has one"},
        {"a\tb\nc\td\tx\n", "bad.tsv:2: has a label but line 1 has none"},
        {"\n \r\n", "no pairs"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        spit(tpath("bad.tsv"), bad[i].body, strlen(bad[i].body));
        snprintf(spec, sizeof spec, "pairs:%s", tpath("bad.tsv"));
        ct_status st = ct_text_dataset_load(&ds, spec, 1);
        CHECK(st == CT_ERR_FORMAT && strstr(ct_errmsg(), bad[i].needle) && ds.ntexts == 0,
              "bad TSV %zu: status %d, message \"%s\", wanted \"%s\"", i, st, ct_errmsg(), bad[i].needle);
    }
    /* a NUL inside a label (found by fuzz/fuzz_pairs.c: two labels cut to one C-string
     * name wrote outside the label table) is refused naming the line */
    static const char nul_labels[] = "a\tb\tli\0x\nc\td\tli\0y\n";
    spit(tpath("bad.tsv"), nul_labels, sizeof nul_labels - 1);
    snprintf(spec, sizeof spec, "pairs:%s", tpath("bad.tsv"));
    CHECK(ct_text_dataset_load(&ds, spec, 1) == CT_ERR_FORMAT && strstr(ct_errmsg(), "bad.tsv:1: the label holds a NUL"),
          "NUL in a label: %s", ct_errmsg());
    snprintf(spec, sizeof spec, "text:%s", tpath("fifo"));
    CHECK(ct_text_dataset_load(&ds, spec, 1) == CT_ERR_IO && strstr(ct_errmsg(), "not a regular file"), "FIFO: %s",
          ct_errmsg());
    snprintf(spec, sizeof spec, "text:%s", g_tmp);
    CHECK(ct_text_dataset_load(&ds, spec, 1) == CT_ERR_IO && strstr(ct_errmsg(), "a folder"), "folder: %s", ct_errmsg());
    CHECK(ct_text_dataset_load(&ds, "text:/nonexistent/x.txt", 1) == CT_ERR_IO && strstr(ct_errmsg(), "/nonexistent/x.txt"),
          "missing: %s", ct_errmsg());
    CHECK(ct_text_dataset_load(&ds, "words:x", 1) == CT_ERR_ARG && strstr(ct_errmsg(), "unknown text data"), "spec: %s",
          ct_errmsg());
    /* a line over CT_TEXT_MAX_LINE */
    size_t big = (size_t)CT_TEXT_MAX_LINE + 2;
    char *huge = malloc(big);
    memset(huge, 'x', big);
    spit(tpath("huge.txt"), huge, big);
    free(huge);
    snprintf(spec, sizeof spec, "text:%s", tpath("huge.txt"));
    CHECK(ct_text_dataset_load(&ds, spec, 1) == CT_ERR_FORMAT && strstr(ct_errmsg(), "huge.txt:1: line of"), "huge line: %s",
          ct_errmsg());
    unlink(tpath("huge.txt"));
}

/* ---- the no-duplicates batch planner ----------------------------------------------------------- */
static void test_sampler(void) {
    /* 60 pairs over only 9 distinct texts: many would clash in a random batch */
    FILE *f = fopen(tpath("dup.tsv"), "w");
    ct_rng r = ct_rng_make(ct_rng_key(3, 0, 0, 0));
    for (int i = 0; i < 60; i++) {
        unsigned a = (unsigned)ct_rng_below(&r, 9), b = (a + 1 + (unsigned)ct_rng_below(&r, 8)) % 9;
        fprintf(f, "t%u\tt%u\n", a, b);
    }
    fclose(f);
    ct_text_dataset ds;
    char spec[600];
    snprintf(spec, sizeof spec, "pairs:%s", tpath("dup.tsv"));
    CHECK_OK(ct_text_dataset_load(&ds, spec, 1));
    for (int drop = 0; drop < 2; drop++) {
        ct_text_epoch ep, ep2, ep3;
        CHECK_OK(ct_text_epoch_plan(&ep, &ds, 4, drop, 11, 0));
        CHECK_OK(ct_text_epoch_plan(&ep2, &ds, 4, drop, 11, 0));
        CHECK_OK(ct_text_epoch_plan(&ep3, &ds, 4, drop, 11, 1));
        int clash = 0, seen_twice = 0, short_batches = 0;
        char seen[60] = {0};
        for (int64_t b = 0; b < ep.nbatches; b++) {
            char in[9] = {0};
            short_batches += ep.start[b + 1] - ep.start[b] != 4;
            for (int64_t k = ep.start[b]; k < ep.start[b + 1]; k++) {
                int64_t it = ep.item[k];
                seen_twice += seen[it]++;
                int u1 = atoi(ds.text[ds.anchor[it]] + 1), u2 = atoi(ds.text[ds.positive[it]] + 1);
                clash += in[u1]++ > 0;
                clash += in[u2]++ > 0;
            }
        }
        CHECK(clash == 0, "drop_last %d: %d repeated texts in batches", drop, clash);
        CHECK(seen_twice == 0, "an item placed twice");
        if (drop) CHECK(short_batches == 0 && ep.nitems <= 60, "drop_last left a short batch");
        else CHECK(ep.nitems == 60, "every item placed without drop_last: %lld", (long long)ep.nitems);
        CHECK(ep.nbatches == ep2.nbatches && !memcmp(ep.item, ep2.item, (size_t)ep.nitems * 8),
              "same seed and epoch: same plan");
        CHECK(ep3.nitems != ep.nitems || memcmp(ep.item, ep3.item, (size_t)ep.nitems * 8) != 0,
              "another epoch: another plan");
        ct_text_epoch_free(&ep);
        ct_text_epoch_free(&ep2);
        ct_text_epoch_free(&ep3);
    }
    ct_text_dataset_free(&ds);
    /* text datasets: items are texts, batches of distinct texts, all placed */
    spit(tpath("t.txt"), "a\nb\nc\na\nd\ne\n", 12);
    snprintf(spec, sizeof spec, "text:%s", tpath("t.txt"));
    CHECK_OK(ct_text_dataset_load(&ds, spec, 1));
    ct_text_epoch ep;
    CHECK_OK(ct_text_epoch_plan(&ep, &ds, 2, 0, 1, 0));
    CHECK(ep.nitems == 5 && ep.nbatches == 3, "text plan: %lld items %lld batches", (long long)ep.nitems,
          (long long)ep.nbatches);
    ct_text_epoch_free(&ep);
    CHECK(ct_text_epoch_plan(&ep, &ds, 0, 0, 1, 0) == CT_ERR_ARG, "batch 0 accepted");
    ct_text_dataset_free(&ds);
}

/* ---- debian-descriptions ----------------------------------------------------------------------- */
static void test_debian_fixture(void) {
    const char *fix = "tests/fixtures/debian";
    CHECK(ct_fnv1a32("", 0) == 2166136261u && ct_fnv1a32("a", 1) == 0xe40c292cu, "FNV-1a 32 test vectors");
    CHECK(ct_fnv1a32("kappa", 5) % 10 == 0 && ct_fnv1a32("alpha", 5) % 10 != 0, "kappa is the fixture's test package");
    int64_t np = 0;
    CHECK_OK(ct_debian_build(fix, tpath("deb.tsv"), &np));
    CHECK(np == 5, "fixture: %lld pairs, expected 5 (alpha beta eta kappa zeta)", (long long)np);
    size_t n;
    char *c = (char *)slurp(tpath("deb.tsv"), &n);
    if (c) {
        c[n] = 0;
        const char *body = strchr(c, '\n');
        const char *want = "\nalpha\tadmin\tAlpha tool for testing\tAlpha is the first package of the fixture. It has two "
                           "paragraphs.\nbeta\tlibs\tBeta library\tBeta does things.\neta\tgames\tEta game\tEta is fun.\n"
                           "kappa\teditors\tKappa editor\tKappa edits text, with a preformatted line.\n"
                           "zeta\tmisc\tZeta caf\xc3\xa9 bytes \xff\tZeta long.\n";
        CHECK(body && !strcmp(body, want), "cache body:\n%s", body ? body : "(none)");
        CHECK(!strncmp(c, "# contrast debian-descriptions 1 ", 33), "cache header");
    }
    free(c);
    ct_text_dataset tr, te;
    CHECK_OK(ct_debian_load(&tr, tpath("deb.tsv"), 1));
    CHECK_OK(ct_debian_load(&te, tpath("deb.tsv"), 0));
    CHECK(tr.npairs == 4 && te.npairs == 1 && tr.nlabels == 5 && te.nlabels == 5, "split %lld/%lld, labels %d/%d",
          (long long)tr.npairs, (long long)te.npairs, tr.nlabels, te.nlabels);
    if (te.npairs == 1 && te.nlabels == 5) {
        CHECK(!strcmp(te.text[te.anchor[0]], "Kappa editor") && !strcmp(te.label_name[te.label[0]], "editors"),
              "test pair");
        CHECK(!strcmp(te.label_name[0], "admin") && !strcmp(te.label_name[4], "misc"), "labels sorted over both splits");
    }
    ct_text_dataset_free(&tr);
    ct_text_dataset_free(&te);

    /* through ct_text_dataset_load, with the lists and the cache from the environment */
    setenv("CONTRAST_DEBIAN_LISTS", fix, 1);
    setenv("CONTRAST_CACHE", tpath("cache"), 1);
    CHECK_OK(ct_text_dataset_load(&tr, "debian-descriptions", 1));
    CHECK(tr.npairs == 4 && !strcmp(tr.name, "debian-descriptions"), "load: %lld pairs", (long long)tr.npairs);
    ct_text_dataset_free(&tr);
    struct stat sb;
    CHECK(stat(tpath("cache/debian-descriptions.tsv"), &sb) == 0, "the cache was written");
    /* a corrupt cache whose fingerprint matches is an error naming it; one that does not match is rebuilt */
    size_t hl;
    char *cc = (char *)slurp(tpath("cache/debian-descriptions.tsv"), &hl);
    if (cc) cc[hl] = 0;
    char *eol = cc ? strchr(cc, '\n') : NULL;
    if (eol) {
        char broken[512];
        int k = snprintf(broken, sizeof broken, "%.*s\nonly\ttwo\n", (int)(eol - cc), cc);
        spit(tpath("cache/debian-descriptions.tsv"), broken, (size_t)k);
        CHECK(ct_text_dataset_load(&tr, "debian-descriptions", 1) == CT_ERR_FORMAT &&
                  strstr(ct_errmsg(), "debian-descriptions.tsv:2: expected package"),
              "corrupt cache: %s", ct_errmsg());
        const char *stale = "# contrast debian-descriptions 1 0000000000000000 x\nonly\n";
        spit(tpath("cache/debian-descriptions.tsv"), stale, strlen(stale));
        CHECK_OK(ct_text_dataset_load(&tr, "debian-descriptions", 0));
        CHECK(tr.npairs == 1, "stale cache rebuilt: %lld test pairs", (long long)tr.npairs);
        ct_text_dataset_free(&tr);
    }
    free(cc);
    /* no lists and no cache: say what to run */
    setenv("CONTRAST_DEBIAN_LISTS", tpath("nolists"), 1);
    setenv("CONTRAST_CACHE", tpath("cache2"), 1);
    mkdir(tpath("nolists"), 0755);
    CHECK(ct_text_dataset_load(&tr, "debian-descriptions", 1) == CT_ERR_IO && strstr(ct_errmsg(), "tools/deps.sh text"),
          "missing lists: %s", ct_errmsg());
    unsetenv("CONTRAST_DEBIAN_LISTS");
    unsetenv("CONTRAST_CACHE");
}

/* The real corpus, when tools/deps.sh has fetched its lists. */
static void test_debian_real(void) {
    const char *dir = CT_DEBIAN_LISTS_DIR;
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        printf("note: %s absent (sh tools/deps.sh text): real debian-descriptions not checked\n", dir);
        return;
    }
    int64_t np = 0;
    CHECK_OK(ct_debian_build(dir, tpath("real.tsv"), &np));
    ct_text_dataset tr, te;
    CHECK_OK(ct_debian_load(&tr, tpath("real.tsv"), 1));
    CHECK_OK(ct_debian_load(&te, tpath("real.tsv"), 0));
    CHECK(np > 50000 && np < 80000 && tr.npairs + te.npairs == np, "real corpus: %lld pairs (%lld + %lld)", (long long)np,
          (long long)tr.npairs, (long long)te.npairs);
    CHECK(tr.nlabels > 40 && tr.nlabels < 80 && tr.nlabels == te.nlabels, "real corpus: %d sections", tr.nlabels);
    double frac = np ? (double)te.npairs / (double)np : 0;
    CHECK(frac > 0.08 && frac < 0.12, "test split %.3f of the pairs", frac);
    printf("real debian-descriptions: %lld pairs, %lld train / %lld test, %d sections\n", (long long)np,
           (long long)tr.npairs, (long long)te.npairs, tr.nlabels);
    ct_text_dataset_free(&tr);
    ct_text_dataset_free(&te);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/ct_test_text_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    ct_set_threads(2);
    test_merge_order();
    test_against_reference();
    test_threads_determinism();
    test_round_trip();
    test_truncation_padding();
    test_serialise();
    test_export();
    test_readers();
    test_sampler();
    test_debian_fixture();
    test_debian_real();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", g_tmp);
    return test_done();
}
