/* internal.h: what src/text shares with src/data/text.c and src/data/debian.c (not
 * part of the API): a byte-string hash, a map from byte strings to indices, the
 * chunker of the tokenizer, and reading a whole regular file. */
#ifndef CT_TEXT_INTERNAL_H
#define CT_TEXT_INTERNAL_H

#include "contrast/text.h"

#include <stddef.h>
#include <stdint.h>

/* Longest chunk (and so longest token) in bytes: longer runs are cut into pieces of
 * this size, which bounds the quadratic merge loop of one chunk and the length of
 * any token a serialised tokenizer may claim. */
#define CT_TOK_MAX_CHUNK 64

uint64_t ct_text_hash(const void *data, size_t len);

/* Open-addressing map from byte strings (not copied: the caller keeps them alive
 * and unmoved) to entry indices 0, 1, 2, ... in insertion order. */
typedef struct {
    int64_t cap;         /* slots, a power of two                     */
    int64_t n;           /* entries                                   */
    int64_t ecap;        /* allocated entries                         */
    int64_t *slot;       /* (cap) entry index, -1 when empty          */
    const char **key;    /* (ecap)                                    */
    size_t *klen;        /* (ecap)                                    */
    uint64_t *hash;      /* (ecap)                                    */
} ct_strmap;

ct_status ct_strmap_init(ct_strmap *m, int64_t expect);
void ct_strmap_free(ct_strmap *m);
/* The entry of `key`, or -1. */
int64_t ct_strmap_find(const ct_strmap *m, const char *key, size_t len, uint64_t hash);
/* The entry of `key`, added (as entry m->n) when absent; *added says which. -1 and
 * an error set when out of memory. */
int64_t ct_strmap_add(ct_strmap *m, const char *key, size_t len, uint64_t hash, int *added);

/* Length of the chunk starting at s[0] (n > 0 bytes left); see contrast/text.h. */
size_t ct_text_chunk(const unsigned char *s, size_t n);

/* Reads the whole regular file `path` (at most max_bytes, else refused) into a
 * malloc'd buffer with a NUL after the last byte. */
ct_status ct_text_read_file(const char *path, int64_t max_bytes, char **data, size_t *len);

/* Builds a ct_text_dataset: texts are appended to one pool, pairs refer to them by
 * index, labels by name (numbered in sorted order by tb_finish). */
typedef struct {
    char *pool;
    size_t npool, cpool;
    int64_t n, cap;        /* texts */
    size_t *off, *len;
    int64_t np, pcap;      /* pairs */
    int64_t *a, *b;
    int32_t *lab;          /* label entry in `labels`, -1 for none */
    ct_strmap labels;      /* keys are the malloc'd strings in lname */
    char **lname;
} ct_text_builder;

ct_status ct_tb_init(ct_text_builder *tb);
void ct_tb_free(ct_text_builder *tb);
ct_status ct_tb_text(ct_text_builder *tb, const char *s, size_t n, int64_t *idx);
/* Registers a label name (*id, may be NULL, gets its entry). */
ct_status ct_tb_label(ct_text_builder *tb, const char *label, size_t llen, int32_t *id);
/* label NULL: no label */
ct_status ct_tb_pair(ct_text_builder *tb, int64_t a, int64_t b, const char *label, size_t llen);
/* Moves everything into ds (tb is freed). dedupe: keep one text of each content
 * (only for datasets without pairs). */
ct_status ct_tb_finish(ct_text_builder *tb, ct_text_dataset *ds, int dedupe, const char *name);

/* debian.c: the debian-descriptions split (lists and cache as documented). */
ct_status ct_debian_dataset(ct_text_dataset *ds, int train);

#endif
