/* bench_text.c: the tokenizer's training time, encoding throughput (MB/s) and
 * compression (tokens per byte), and the C side of bench/tokenizer_compare.py.
 *
 *   bench_text [--corpus FILE] [--heldout FILE] [--vocab N] [--threads N]
 *              [--export DIR] [--ids FILE] [--write-corpus DIR]
 *
 * --corpus FILE    training text, one text per line (default: the train split of
 *                  debian-descriptions, short and long texts, when its lists are
 *                  there, else a synthetic corpus of 10 MB drawn from a fixed seed)
 * --heldout FILE   text to measure tokens per byte on (default: the corpus's test
 *                  split, or the last 10% of the synthetic lines)
 * --vocab N        vocabulary size (default 8192)
 * --threads N      threads for training and batch encoding (default: all cores)
 * --export DIR     also writes DIR/vocab.json and DIR/merges.txt (GPT-2 convention)
 * --ids FILE       also writes the held-out lines' ids, one line of ids per line
 * --write-corpus DIR  writes the training and held-out texts (as chosen above) to
 *                  DIR/train.txt and DIR/heldout.txt, one per line, and stops
 *
 * Prints "tokenizer train ...", "tokenizer encode ..." lines and a last line
 * "tokens_per_byte X" that the compare script reads. */
#include "contrast.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    int64_t n, cap;
    char **s;
    size_t *len;
    size_t bytes;
} lines_t;

static void lines_add(lines_t *L, const char *s, size_t n) {
    if (L->n == L->cap) {
        L->cap = L->cap ? 2 * L->cap : 1024;
        L->s = realloc(L->s, (size_t)L->cap * sizeof *L->s);
        L->len = realloc(L->len, (size_t)L->cap * sizeof *L->len);
        if (!L->s || !L->len) {
            fprintf(stderr, "bench_text: out of memory\n");
            exit(1);
        }
    }
    char *c = malloc(n + 1);
    if (!c) {
        fprintf(stderr, "bench_text: out of memory\n");
        exit(1);
    }
    memcpy(c, s, n);
    c[n] = 0;
    L->s[L->n] = c;
    L->len[L->n++] = n;
    L->bytes += n;
}

static void lines_free(lines_t *L) {
    for (int64_t i = 0; i < L->n; i++) free(L->s[i]);
    free(L->s);
    free(L->len);
    memset(L, 0, sizeof *L);
}

/* Every line of FILE (the "text:" reader would drop repeats; a benchmark keeps them). */
static void read_lines(lines_t *L, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bench_text: cannot open %s\n", path);
        exit(1);
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) >= 0) {
        if (n > 0 && line[n - 1] == '\n') n--;
        if (n > 0) lines_add(L, line, (size_t)n);
    }
    free(line);
    fclose(f);
}

/* Texts of the debian-descriptions split; 0 when it is not available. */
static int debian_lines(lines_t *L, int train) {
    ct_text_dataset ds;
    if (ct_text_dataset_load(&ds, "debian-descriptions", train)) return 0;
    for (int64_t i = 0; i < ds.ntexts; i++) lines_add(L, ds.text[i], ds.len[i]);
    ct_text_dataset_free(&ds);
    return 1;
}

/* A synthetic corpus: lines of words drawn with Zipf-like frequencies from a fixed
 * list of made-up words, with digits and punctuation. */
static void synthetic(lines_t *train, lines_t *held, size_t bytes) {
    enum { NW = 5000 };
    static char words[NW][12];
    ct_rng r = ct_rng_make(ct_rng_key(7, 0, 0, 0));
    const char *cons = "bcdfghklmnprstvz", *vow = "aeiou";
    for (int i = 0; i < NW; i++) {
        int len = 2 + (int)ct_rng_below(&r, 9), k = 0;
        for (; k < len; k++) words[i][k] = k % 2 ? vow[ct_rng_below(&r, 5)] : cons[ct_rng_below(&r, 16)];
        words[i][k] = 0;
    }
    char buf[512];
    size_t total = 0;
    int64_t line = 0;
    while (total < bytes) {
        size_t n = 0;
        int nw = 4 + (int)ct_rng_below(&r, 30);
        for (int j = 0; j < nw && n < 400; j++) {
            float u = ct_rng_uniform(&r);
            int w = (int)((float)NW * u * u * u); /* skewed towards the first words */
            n += (size_t)snprintf(buf + n, sizeof buf - n, j ? " %s" : "%s", words[w]);
            if (ct_rng_below(&r, 12) == 0) n += (size_t)snprintf(buf + n, sizeof buf - n, ",");
            if (ct_rng_below(&r, 40) == 0) n += (size_t)snprintf(buf + n, sizeof buf - n, " %u", (unsigned)ct_rng_below(&r, 2000));
        }
        n += (size_t)snprintf(buf + n, sizeof buf - n, ".");
        lines_add(line % 10 == 9 ? held : train, buf, n);
        total += n;
        line++;
    }
}

int main(int argc, char **argv) {
    const char *corpus = NULL, *heldout = NULL, *export_dir = NULL, *ids_path = NULL, *write_dir = NULL;
    int vocab = CT_TOK_DEFAULT_VOCAB, threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--corpus") && i + 1 < argc) corpus = argv[++i];
        else if (!strcmp(argv[i], "--heldout") && i + 1 < argc) heldout = argv[++i];
        else if (!strcmp(argv[i], "--vocab") && i + 1 < argc) vocab = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--export") && i + 1 < argc) export_dir = argv[++i];
        else if (!strcmp(argv[i], "--ids") && i + 1 < argc) ids_path = argv[++i];
        else if (!strcmp(argv[i], "--write-corpus") && i + 1 < argc) write_dir = argv[++i];
        else {
            fprintf(stderr, "usage: bench_text [--corpus FILE] [--heldout FILE] [--vocab N (8192)] "
                            "[--threads N (all)] [--export DIR] [--ids FILE] [--write-corpus DIR]\n");
            return 2;
        }
    }
    ct_set_threads(threads);
    lines_t tr = {0}, he = {0};
    const char *source;
    if (corpus) {
        read_lines(&tr, corpus);
        source = corpus;
    } else if (debian_lines(&tr, 1)) {
        source = "debian-descriptions (train split)";
    } else {
        synthetic(&tr, &he, 10u << 20);
        source = "synthetic (debian-descriptions not built: sh tools/deps.sh text)";
    }
    if (heldout) read_lines(&he, heldout);
    else if (!corpus && he.n == 0) debian_lines(&he, 0);
    if (he.n == 0) {
        fprintf(stderr, "bench_text: no held-out text (give --heldout FILE)\n");
        return 1;
    }
    if (write_dir) {
        for (int k = 0; k < 2; k++) {
            lines_t *L = k ? &he : &tr;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", write_dir, k ? "heldout.txt" : "train.txt");
            FILE *f = fopen(path, "wb");
            for (int64_t i = 0; f && i < L->n; i++) {
                fwrite(L->s[i], 1, L->len[i], f);
                fputc('\n', f);
            }
            if (!f || fclose(f)) {
                fprintf(stderr, "bench_text: cannot write %s\n", path);
                return 1;
            }
        }
        printf("wrote %s/train.txt (%lld lines) and %s/heldout.txt (%lld lines) from %s\n", write_dir, (long long)tr.n,
               write_dir, (long long)he.n, source);
        return 0;
    }
    printf("== tokenizer: corpus %s, %.1f MB in %lld lines; held-out %.1f MB; %d threads\n", source,
           (double)tr.bytes / 1e6, (long long)tr.n, (double)he.bytes / 1e6, ct_get_threads());

    ct_tokenizer *tok;
    ct_tokenizer_opts o = {vocab};
    double t0 = now();
    if (ct_tokenizer_train(&tok, (const char *const *)tr.s, tr.len, tr.n, &o)) {
        fprintf(stderr, "bench_text: %s\n", ct_errmsg());
        return 1;
    }
    double t1 = now();
    printf("tokenizer train   %.2f s for %d merges (vocab %d), %.1f MB/s\n", t1 - t0,
           ct_tokenizer_merge_count(tok), ct_tokenizer_vocab_size(tok), (double)tr.bytes / 1e6 / (t1 - t0));

    /* encoding: one thread text by text, then the batch call on every thread */
    size_t maxlen = 0;
    for (int64_t i = 0; i < he.n; i++)
        if (he.len[i] > maxlen) maxlen = he.len[i];
    int32_t *ids = malloc((maxlen + 2) * sizeof *ids);
    int64_t ntok = 0;
    double best1 = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        ntok = 0;
        double a = now();
        for (int64_t i = 0; i < he.n; i++) {
            int64_t k;
            ct_tokenizer_encode(tok, he.s[i], he.len[i], 0, ids, (int64_t)maxlen + 2, &k, NULL);
            ntok += k;
        }
        double b = now() - a;
        if (b < best1) best1 = b;
    }
    int64_t T = 128;
    int32_t *bids = malloc((size_t)he.n * (size_t)T * sizeof *bids);
    uint8_t *valid = malloc((size_t)he.n * (size_t)T);
    double bestn = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double a = now();
        ct_tokenizer_encode_batch(tok, (const char *const *)he.s, he.len, he.n, CT_TOK_ADD_BOS | CT_TOK_ADD_EOS, T,
                                  bids, valid, NULL);
        double b = now() - a;
        if (b < bestn) bestn = b;
    }
    printf("tokenizer encode  %.1f MB/s on 1 thread, %.1f MB/s batched (T=%lld) on %d threads\n",
           (double)he.bytes / 1e6 / best1, (double)he.bytes / 1e6 / bestn, (long long)T, ct_get_threads());

    /* round trip on the held-out text, as a sanity check of the numbers above */
    char *back = malloc(maxlen + 1);
    int64_t bad = 0;
    for (int64_t i = 0; i < he.n; i++) {
        int64_t k;
        size_t n;
        ct_tokenizer_encode(tok, he.s[i], he.len[i], 0, ids, (int64_t)maxlen + 2, &k, NULL);
        ct_tokenizer_decode(tok, ids, k, back, maxlen + 1, &n);
        bad += n != he.len[i] || memcmp(back, he.s[i], n) != 0;
    }
    if (bad) printf("tokenizer round trip FAILED on %lld lines\n", (long long)bad);
    if (ids_path) {
        FILE *f = fopen(ids_path, "w");
        for (int64_t i = 0; f && i < he.n; i++) {
            int64_t k;
            ct_tokenizer_encode(tok, he.s[i], he.len[i], 0, ids, (int64_t)maxlen + 2, &k, NULL);
            for (int64_t j = 0; j < k; j++) fprintf(f, j ? " %d" : "%d", ids[j]);
            fputc('\n', f);
        }
        if (!f || fclose(f)) fprintf(stderr, "bench_text: cannot write %s\n", ids_path);
    }
    if (export_dir && ct_tokenizer_export_gpt2(tok, export_dir)) fprintf(stderr, "bench_text: %s\n", ct_errmsg());
    printf("tokens_per_byte %.5f\n", (double)ntok / (double)he.bytes);
    free(back);
    free(ids);
    free(bids);
    free(valid);
    ct_tokenizer_free(tok);
    lines_free(&tr);
    lines_free(&he);
    return bad ? 1 : 0;
}
