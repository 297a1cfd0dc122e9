/* contrast/text.h: a byte-level BPE tokenizer, text datasets and their batch sampler.
 *
 * Usage:
 *   ct_text_dataset ds;
 *   ct_text_dataset_load(&ds, "pairs:train.tsv", 1);      // or "text:FILE", "debian-descriptions"
 *   ct_tokenizer *tok;
 *   ct_tokenizer_opts o = {0};                              // vocab_size 0: CT_TOK_DEFAULT_VOCAB
 *   ct_tokenizer_train(&tok, (const char *const *)ds.text, ds.len, ds.ntexts, &o);
 *   int32_t ids[B * T]; uint8_t valid[B * T];               // (B, T), right-padded with PAD
 *   ct_tokenizer_encode_batch(tok, texts, lens, B, CT_TOK_ADD_BOS | CT_TOK_ADD_EOS, T, ids, valid, NULL);
 *   char *s = ct_tokenizer_serialize(tok, &n);              // store in a checkpoint's metadata
 *   ct_text_epoch ep;                                       // batches without a repeated text
 *   ct_text_epoch_plan(&ep, &ds, 256, 1, seed, epoch);
 *
 * Tokens. Ids 0..255 are the 256 bytes, so every byte string encodes and no UNK is
 * needed; 256, 257, 258 are PAD, BOS and EOS; ids from 259 on are the learned
 * merges. Encoding first splits the text into chunks and merges never cross a
 * chunk: a chunk is a run of letters (ASCII letters and every byte >= 0x80, so a
 * UTF-8 character is never split by the chunking), of digits, or of other
 * printable ASCII, each taking one preceding space with it (" world"), or a run of
 * whitespace not followed by such a run. Decoding concatenates the tokens' bytes,
 * so decode(encode(x)) == x for any bytes, invalid UTF-8 included. The details,
 * the merge rule and the file formats are in docs/text.md. */
#ifndef CONTRAST_TEXT_H
#define CONTRAST_TEXT_H

#include "contrast/core.h"

#ifdef __cplusplus
extern "C" {
#endif
CT_BEGIN_API

/* ==== tokenizer ================================================================ */
#define CT_TOK_BYTES 256            /* ids 0..255: the bytes                               */
#define CT_TOK_PAD 256
#define CT_TOK_BOS 257
#define CT_TOK_EOS 258
#define CT_TOK_FIRST_MERGE 259      /* the first learned token                            */
#define CT_TOK_DEFAULT_VOCAB 8192
#define CT_TOK_MAX_VOCAB (1 << 20)  /* vocabularies larger than this are refused         */

/* encode flags */
#define CT_TOK_ADD_BOS 1
#define CT_TOK_ADD_EOS 2

typedef struct ct_tokenizer ct_tokenizer;

typedef struct {
    int vocab_size;  /* total ids, bytes and specials included; 0: CT_TOK_DEFAULT_VOCAB.
                      * Must be > CT_TOK_FIRST_MERGE. Training stops earlier when no
                      * pair occurs any more (a small corpus), so the result may be smaller. */
} ct_tokenizer_opts;

/* Learns merges from n texts (texts[i] has lens[i] bytes, any bytes; a text is
 * never merged across its end). Each step merges the adjacent pair with the
 * highest count over the corpus; a tie goes to the pair with the smaller left id,
 * then the smaller right id. A merge whose bytes equal an existing token's reuses
 * that token's id. Chunks are counted on ct_get_threads() threads; the result is
 * identical at any thread count. Time: counting is linear in the corpus, each merge
 * touches only the chunks that contain its pair. *out is freed with ct_tokenizer_free. */
ct_status ct_tokenizer_train(ct_tokenizer **out, const char *const *texts, const size_t *lens, int64_t n,
                             const ct_tokenizer_opts *opts);
void ct_tokenizer_free(ct_tokenizer *tok);  /* NULL-safe */

/* Number of ids (bytes + specials + distinct learned tokens): the embedding size. */
int32_t ct_tokenizer_vocab_size(const ct_tokenizer *tok);
/* Number of merges (rules); may exceed vocab_size - CT_TOK_FIRST_MERGE by the
 * merges that reused an id. */
int32_t ct_tokenizer_merge_count(const ct_tokenizer *tok);
/* Merge i (0-based, in the order learned): left and right ids and the id it makes. */
void ct_tokenizer_merge(const ct_tokenizer *tok, int32_t i, int32_t *left, int32_t *right, int32_t *result);
/* The bytes of token `id` (*len of them; not NUL-terminated); NULL for an id
 * outside [0, vocab) and for the specials (which decode to nothing). */
const char *ct_tokenizer_token(const ct_tokenizer *tok, int32_t id, size_t *len);

/* Encodes `len` bytes into ids[0 .. *n), at most max_len ids: BOS first when
 * CT_TOK_ADD_BOS, EOS last when CT_TOK_ADD_EOS, the text's tokens between, cut
 * (truncated) after as many tokens as fit. A text never gives more tokens than
 * bytes, so max_len = len + 2 never truncates. Thread-safe (tok is read only).
 * CT_ERR_ARG if max_len < the specials requested. *truncated (may be NULL) is set
 * to 1 when tokens were cut. */
ct_status ct_tokenizer_encode(const ct_tokenizer *tok, const void *text, size_t len, int flags, int32_t *ids,
                              int64_t max_len, int64_t *n, int *truncated);
/* Encodes n texts into rows of T ids, each as ct_tokenizer_encode with max_len T,
 * right-padded with CT_TOK_PAD. valid (may be NULL): 1 for a real token (BOS and
 * EOS included), 0 for padding. lengths (may be NULL): each row's real tokens.
 *   ids: (n, T)  valid: (n, T)  lengths: (n) */
ct_status ct_tokenizer_encode_batch(const ct_tokenizer *tok, const char *const *texts, const size_t *lens,
                                    int64_t n, int flags, int64_t T, int32_t *ids, uint8_t *valid,
                                    int64_t *lengths);
/* Writes the bytes of n ids into out (specials PAD, BOS, EOS write nothing) when
 * cap >= the length; *len is always set to the length (call with out NULL, cap 0 to
 * size the buffer). No NUL is added. CT_ERR_ARG for an id outside [0, vocab). */
ct_status ct_tokenizer_decode(const ct_tokenizer *tok, const int32_t *ids, int64_t n, char *out, size_t cap,
                              size_t *len);

/* The tokenizer as a compact text (a header line, then one "LEFT RIGHT" line per
 * merge; docs/text.md), NUL-terminated, *len bytes (may be NULL), malloc'd: the
 * caller frees it with free(). Fits a safetensors __metadata__ value as is. NULL on
 * allocation failure. */
char *ct_tokenizer_serialize(const ct_tokenizer *tok, size_t *len);
/* Rebuilds a tokenizer from `len` bytes of ct_tokenizer_serialize's output,
 * validating every byte as untrusted input: header, counts, ids in range (a merge
 * may only name ids made before it, never a special), no repeated pair, nothing
 * missing or trailing. `what` names the source in messages (a path; NULL:
 * "tokenizer"). CT_ERR_FORMAT with the line at fault. */
ct_status ct_tokenizer_deserialize(ct_tokenizer **out, const char *data, size_t len, const char *what);
/* The same through a file, written atomically / read only if regular. */
ct_status ct_tokenizer_save(const ct_tokenizer *tok, const char *path);
ct_status ct_tokenizer_load(ct_tokenizer **out, const char *path);
/* Writes dir/vocab.json and dir/merges.txt in GPT-2's convention (bytes shown
 * through GPT-2's byte-to-unicode table; the specials as "<|pad|>", "<|bos|>",
 * "<|eos|>"), readable by Hugging Face's ByteLevel BPE. `dir` must exist. A token
 * reached by two merges appears once in vocab.json and both merges are listed. */
ct_status ct_tokenizer_export_gpt2(const ct_tokenizer *tok, const char *dir);

/* ==== text datasets ============================================================= */
#define CT_TEXT_MAX_FILE ((int64_t)1 << 31)   /* text/TSV files larger than 2 GiB are refused */
#define CT_TEXT_MAX_LINE ((int64_t)1 << 24)   /* a line (or TSV field) over 16 MiB is refused */
#define CT_TEXT_MAX_LABELS 100000

/* Where the `debian-descriptions` corpus comes from (tools/deps.sh fetches it);
 * the environment variable CONTRAST_DEBIAN_LISTS overrides it. */
#define CT_DEBIAN_LISTS_DIR "/var/cache/contrast/apt-lists"

typedef struct {
    int64_t ntexts;
    char **text;          /* (ntexts) each NUL-terminated, may hold other NULs: use len */
    size_t *len;          /* (ntexts) bytes                                              */
    int64_t *uniq;        /* (ntexts) the index of the first text with the same bytes    */
    int64_t npairs;       /* 0 for a text: dataset                                        */
    int64_t *anchor;      /* (npairs) text indices                                       */
    int64_t *positive;    /* (npairs)                                                    */
    int32_t *label;       /* (npairs) in [0, nlabels), or NULL when there are no labels  */
    int nlabels;
    char **label_name;    /* (nlabels) sorted, so label ids are the same for both splits */
    char name[64];        /* "text", "pairs", "debian-descriptions"                      */
    char *pool;           /* owns every string above                                     */
} ct_text_dataset;

/* Loads a text dataset:
 *   "text:FILE"   one text per line. Empty (or whitespace-only) lines are skipped and
 *                 repeated lines kept once (the first). `train` is ignored.
 *   "pairs:FILE"  TSV, one pair per line: anchor TAB positive [TAB label]; either
 *                 all lines have a label or none. Empty lines skipped, repeated pairs
 *                 kept (see ct_text_epoch_plan). A line with one column, more than
 *                 three, an empty anchor or positive, or a missing label is refused
 *                 with "FILE:LINE: ...". `train` is ignored.
 *   "debian-descriptions"  short <-> long Debian package descriptions labelled by
 *                 their Section; train != 0: the training split (FNV-1a 32 of the
 *                 package name % 10 != 0), else the test split. Built from the apt
 *                 lists in CT_DEBIAN_LISTS_DIR on first use and cached (docs/text.md).
 * Both files: "\r\n" line ends accepted, bytes kept as they are (invalid UTF-8
 * included), only regular files read, sizes capped (CT_TEXT_MAX_*). On error `ds`
 * is left empty (safe to free) and the message names the file (and line). */
ct_status ct_text_dataset_load(ct_text_dataset *ds, const char *spec, int train);
void ct_text_dataset_free(ct_text_dataset *ds);  /* NULL-safe, idempotent */

/* ---- the debian-descriptions corpus, piece by piece (ct_text_dataset_load uses these) --- */
/* Parses lists_dir/ *_i18n_Translation-en (Package, Description-en) and lists_dir/
 * *_Packages (Package, Section) and writes the corpus to cache_path (atomically):
 * a header line, then "package TAB section TAB short TAB long" rows sorted by
 * package, whitespace runs made single spaces, pairs without a Section or a long
 * description left out, a repeated (short, long) pair kept once (smallest package
 * name). *npairs (may be NULL) gets the rows written. */
ct_status ct_debian_build(const char *lists_dir, const char *cache_path, int64_t *npairs);
/* Reads a cache written by ct_debian_build (validated) into `ds`: one split. */
ct_status ct_debian_load(ct_text_dataset *ds, const char *cache_path, int train);
/* A package is in the test split when ct_fnv1a32(name) % 10 == 0 (core.h). */

/* ---- batches without a repeated text ------------------------------------------- */
/* One epoch's batches of item indices (pairs for a pairs dataset, texts otherwise):
 * the items in a permutation drawn from (seed, epoch) only, then packed greedily:
 * each batch takes the next items whose texts (anchor and positive, compared by
 * bytes) are not in it yet; an item that clashes waits for a later batch
 * (sentence-transformers' no_duplicates). Every batch has `batch` items except
 * possibly the last ones, which drop_last drops (the items of a batch that could
 * not be filled because everything left clashes are dropped with them). */
typedef struct {
    int64_t nbatches;
    int64_t nitems;   /* items in the batches                                   */
    int64_t *item;    /* (nitems) batch after batch                             */
    int64_t *start;   /* (nbatches + 1) batch b is item[start[b] .. start[b+1]) */
} ct_text_epoch;

ct_status ct_text_epoch_plan(ct_text_epoch *ep, const ct_text_dataset *ds, int64_t batch, int drop_last,
                             uint64_t seed, int64_t epoch);
void ct_text_epoch_free(ct_text_epoch *ep);  /* NULL-safe, idempotent */

CT_END_API
#ifdef __cplusplus
}
#endif
#endif
