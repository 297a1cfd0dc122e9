/* fuzz_pairs.c: the text dataset readers, pairs:FILE (TSV: anchor TAB positive
 * [TAB label]) and text:FILE, on untrusted files: no crash, hang or huge
 * allocation; a refusal names the file; an accepted file gives indices inside the
 * texts, uniq[i] <= i naming a text with the same bytes, labels in range with
 * sorted names; and the batch planner never puts a text twice in a batch. */
#include "common.h"

static void check_plan(const ct_text_dataset *ds) {
    ct_text_epoch ep;
    memset(&ep, 0, sizeof ep);
    ct_status st = ct_text_epoch_plan(&ep, ds, 3, 0, 7, 1);
    if (st != CT_OK && st != CT_ERR_NOMEM && st != CT_ERR_ARG) fz_fail("plan", ct_errmsg());
    for (int64_t b = 0; st == CT_OK && b < ep.nbatches; b++)
        for (int64_t i = ep.start[b]; i < ep.start[b + 1]; i++)
            for (int64_t j = ep.start[b]; j < i; j++) {
                const int64_t x = ep.item[i], y = ep.item[j];
                int64_t tx[2] = {ds->npairs ? ds->anchor[x] : x, ds->npairs ? ds->positive[x] : x};
                int64_t ty[2] = {ds->npairs ? ds->anchor[y] : y, ds->npairs ? ds->positive[y] : y};
                for (int u = 0; u < 2; u++)
                    for (int v = 0; v < 2; v++)
                        if (ds->uniq[tx[u]] == ds->uniq[ty[v]]) fz_fail("plan", "a text twice in a batch");
            }
    ct_text_epoch_free(&ep);
}

static void check(const ct_text_dataset *ds) {
    for (int64_t i = 0; i < ds->ntexts; i++) {
        int64_t u = ds->uniq[i];
        if (u < 0 || u > i || ds->len[u] != ds->len[i] || memcmp(ds->text[u], ds->text[i], ds->len[i]))
            fz_fail("dataset", "uniq[i] is not an earlier text with the same bytes");
        if (ds->text[i][ds->len[i]] != '\0') fz_fail("dataset", "text not NUL-terminated");
    }
    for (int64_t i = 0; i < ds->npairs; i++) {
        if (ds->anchor[i] < 0 || ds->anchor[i] >= ds->ntexts || ds->positive[i] < 0 || ds->positive[i] >= ds->ntexts)
            fz_fail("dataset", "pair index outside the texts");
        if (ds->label && (ds->label[i] < 0 || ds->label[i] >= ds->nlabels)) fz_fail("dataset", "label out of range");
    }
    for (int l = 1; l < ds->nlabels; l++)
        if (strcmp(ds->label_name[l - 1], ds->label_name[l]) >= 0) fz_fail("dataset", "label names not sorted");
    check_plan(ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1 << 20)) return 0;
    const char *path = fz_path("data.tsv");
    fz_write(path, data, size);
    char spec[1100];
    for (int k = 0; k < 2; k++) {
        snprintf(spec, sizeof spec, "%s%s", k ? "text:" : "pairs:", path);
        ct_text_dataset ds;
        memset(&ds, 0, sizeof ds);
        ct_clear_error();
        ct_status st = ct_text_dataset_load(&ds, spec, 1);
        fz_check_refusal(st, spec);
        if (st == CT_OK) check(&ds);
        else if (ds.ntexts || ds.pool) fz_fail("dataset", "refused but not left empty");
        ct_text_dataset_free(&ds);
    }
    remove(path);
    return 0;
}
