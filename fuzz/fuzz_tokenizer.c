/* fuzz_tokenizer.c: ct_tokenizer_deserialize, the reader of the tokenizer text a
 * checkpoint's metadata carries (untrusted: a checkpoint from anywhere). An
 * accepted text must serialise back to the same bytes (the format has one
 * spelling), and the tokenizer must round-trip a few texts through encode/decode,
 * its ids inside the vocabulary. A refusal must name the source. */
#include "common.h"

static void roundtrip(const ct_tokenizer *tok, const char *s, size_t n) {
    int32_t ids[80];
    int64_t k = 0;
    char back[80];
    size_t len = 0;
    if (ct_tokenizer_encode(tok, s, n, CT_TOK_ADD_BOS | CT_TOK_ADD_EOS, ids, (int64_t)n + 2, &k, NULL) != CT_OK)
        fz_fail("tokenizer", "encode refused a text");
    for (int64_t i = 0; i < k; i++)
        if (ids[i] < 0 || ids[i] >= ct_tokenizer_vocab_size(tok)) fz_fail("tokenizer", "id outside the vocabulary");
    if (ct_tokenizer_decode(tok, ids, k, back, sizeof back, &len) != CT_OK || len != n || memcmp(back, s, n))
        fz_fail("tokenizer", "decode(encode(x)) != x");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1 << 20)) return 0;
    const char *what = fz_path("tokenizer.txt"); /* named in messages only: nothing is written */
    ct_tokenizer *tok = NULL;
    ct_clear_error();
    ct_status st = ct_tokenizer_deserialize(&tok, (const char *)data, size, what);
    fz_check_refusal(st, "tokenizer");
    if (st != CT_OK) {
        if (tok) fz_fail("tokenizer", "refused but returned a tokenizer");
        return 0;
    }
    size_t n = 0;
    char *s = ct_tokenizer_serialize(tok, &n);
    if (!s) fz_fail("tokenizer", "serialize failed");
    if (n != size || memcmp(s, data, size)) fz_fail("tokenizer", "serialize(deserialize(x)) != x");
    free(s);
    static const char *const texts[] = {"hello world", " the  quick\tbrown fox 42!!", "\xff\xfe bad \xc3 utf-8 \xe2\x82\xac",
                                        "", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) roundtrip(tok, texts[i], strlen(texts[i]));
    roundtrip(tok, (const char *)data, size < 64 ? size : 64); /* the input's own bytes as a text */
    ct_tokenizer_free(tok);
    return 0;
}
