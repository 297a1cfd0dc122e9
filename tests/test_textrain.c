/* test_textrain.c: the text methods through the trainer and the CLI.
 *
 * ct_mnrl_loss (symmetric = CLIP at a fixed scale; one direction's gradient by
 * finite differences), SimCSE's two copies drawing different dropout masks, a pairs
 * run on a small synthetic corpus (resume bit for bit, the tokenizer stored and
 * restored, retrieval far above chance), and embed --text, search and a malformed
 * pairs file through the CLI (CONTRAST_BIN). */
#include "harness.h"

#include "contrast/train.h"

#include <stdlib.h>
#include <unistd.h>

static char dir[256];

static void test_mnrl(void) {
    enum { N = 5, D = 7 };
    float a[N * D], p[N * D], da[N * D], dp[N * D], ca[N * D], cp[N * D];
    fill_uniform(a, N * D, 1, -1, 1);
    fill_uniform(p, N * D, 2, -1, 1);
    const float tau = 0.2f;
    ct_loss_stats s1, s2;
    CHECK_OK(ct_mnrl_loss(&s1, da, dp, a, p, tau, 1, N, D, NULL, 0));
    CHECK_OK(ct_clip_loss(&s2, ca, cp, NULL, a, p, logf(1.0f / tau), N, D, NULL, 0));
    CHECK(fabs(s1.loss - s2.loss) < 1e-5, "symmetric mnrl %g = clip at scale 1/tau %g", s1.loss, s2.loss);
    check_close("symmetric mnrl da = clip's", da, ca, N * D, 1e-6, 1e-5);
    /* one direction: mean over anchors of CE(cos(a_i, p_j)/tau, i), finite differences */
    CHECK_OK(ct_mnrl_loss(&s1, da, dp, a, p, tau, 0, N, D, NULL, 0));
    double worst = 0;
    for (int i = 0; i < N * D; i++) {
        float keep = a[i];
        ct_loss_stats lp, lm;
        a[i] = keep + 1e-3f;
        ct_mnrl_loss(&lp, NULL, NULL, a, p, tau, 0, N, D, NULL, 0);
        a[i] = keep - 1e-3f;
        ct_mnrl_loss(&lm, NULL, NULL, a, p, tau, 0, N, D, NULL, 0);
        a[i] = keep;
        double fd = (lp.loss - lm.loss) / 2e-3, e = fabs(fd - da[i]);
        if (e > worst) worst = e;
    }
    CHECK(worst < 2e-3, "one-direction mnrl gradient vs finite differences: worst %g", worst);
}

/* SimCSE's batch holds each text twice: in training the copies get different
 * dropout masks (different embeddings), in eval mode the same. */
static void test_simcse_masks(void) {
    ct_model_config mc;
    ct_model_config_default(&mc);
    mc.encoder = CT_ENC_TRANSFORMER;
    mc.width = 16;
    mc.depth = 1;
    mc.heads = 2;
    mc.vocab = 300;
    mc.context = 8;
    mc.dropout = 0.1f;
    mc.head_hidden = 0;
    mc.whiten = 0;
    ct_model m;
    CHECK_OK(ct_model_init(&m, &mc));
    CHECK_OK(ct_model_prepare(&m, 4));
    int32_t ids[4 * 8];
    uint8_t valid[4 * 8];
    for (int r = 0; r < 4; r++)
        for (int t = 0; t < 8; t++) {
            ids[r * 8 + t] = 10 + ((r % 2) * 7 + t * 3) % 250; /* rows 0, 2 and 1, 3 the same text */
            valid[r * 8 + t] = 1;
        }
    const int64_t D = ct_model_feature_dim(&m);
    CHECK_OK(ct_model_forward_tokens(&m, ids, valid, 4, 1, 0));
    const float *h = ct_model_features(&m);
    double diff = 0;
    for (int64_t j = 0; j < D; j++) diff = fmax(diff, fabs(h[j] - h[2 * D + j]));
    CHECK(diff > 1e-3, "training: the two copies of a text differ (max %g)", diff);
    CHECK_OK(ct_model_forward_tokens(&m, ids, valid, 4, 0, 0));
    h = ct_model_features(&m);
    check_close("eval: the two copies are the same", h + 2 * D, h, (size_t)D, 1e-5, 1e-5);
    ct_model_free(&m);
}

/* A synthetic pairs file: anchor "kN cM" words, positive the same two words
 * reversed among filler; retrieval needs the words, not the filler. */
static void write_pairs(const char *path, int n) {
    FILE *f = fopen(path, "w");
    for (int i = 0; i < n; i++)
        fprintf(f, "alpha%d beta%d\tsome filler %d text beta%d and alpha%d\n", i % 37, i / 37, i % 5, i / 37, i % 37);
    fclose(f);
}

static void config(ct_train_config *c, const char *data, const char *out) {
    ct_train_config_default(c);
    c->method = CT_METHOD_PAIRS;
    snprintf(c->data, sizeof c->data, "%s", data);
    snprintf(c->out, sizeof c->out, "%s", out);
    c->model.encoder = CT_ENC_TRANSFORMER;
    c->model.width = 32;
    c->model.depth = 1;
    c->model.heads = 2;
    c->model.context = 16;
    c->model.vocab = 400;
    c->model.dropout = 0.1f;
    c->model.head_hidden = 0;
    c->model.whiten = 0;
    ct_optim_config_default(&c->optim, CT_OPTIM_ADAMW);
    c->optim.weight_decay = 0.01f;
    c->lr = 2e-3f;
    c->temperature = 0.05f;
    c->batch = 32;
    c->epochs = 4;
    c->eval_every = 0;
    c->threads = 2;
}

static void test_pairs_run(void) {
    char data[400], full[400], half[400], ck[500];
    snprintf(data, sizeof data, "pairs:%s/pairs.tsv", dir);
    write_pairs(data + 6, 400);
    snprintf(full, sizeof full, "%s/full", dir);
    snprintf(half, sizeof half, "%s/half", dir);
    ct_train_config c;
    ct_train_result res;
    config(&c, data, full);
    CHECK_OK(ct_train_run(&c, &res));
    config(&c, data, half);
    c.stop_after = 2;
    CHECK_OK(ct_train_run(&c, &res));
    snprintf(c.resume, sizeof c.resume, "%s/checkpoint.safetensors", half);
    c.stop_after = 0;
    CHECK_OK(ct_train_run(&c, &res));
    char a[1024];
    snprintf(a, sizeof a, "cmp -s %s/checkpoint.safetensors %s/checkpoint.safetensors", full, half);
    CHECK(system(a) == 0, "pairs: a run resumed after epoch 2 ends with the uninterrupted run's checkpoint");
    /* the tokenizer: stored, restored, the same as one trained on the same texts */
    snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", full);
    ct_tokenizer *tok = NULL, *ref = NULL;
    ct_text_dataset ds;
    CHECK_OK(ct_checkpoint_load_tokenizer(&tok, ck));
    CHECK_OK(ct_text_dataset_load(&ds, data, 1));
    ct_tokenizer_opts o = {400};
    CHECK_OK(ct_tokenizer_train(&ref, (const char *const *)ds.text, ds.len, ds.ntexts, &o));
    char *s1 = tok ? ct_tokenizer_serialize(tok, NULL) : NULL, *s2 = ct_tokenizer_serialize(ref, NULL);
    CHECK(s1 && s2 && !strcmp(s1, s2), "the checkpoint's tokenizer is the one trained on the training texts");
    free(s1);
    free(s2);
    /* retrieval among the 400 pairs: chance R@1 is 1/400 */
    ct_model m;
    CHECK_OK(ct_checkpoint_load_model(&m, ck));
    ct_text_eval_result r;
    CHECK_OK(ct_evaluate_text(&r, &m, tok, NULL, &ds, 10, 0.1f, 0));
    CHECK(r.r1 > 0.1 && r.mrr10 > 0.15, "retrieval far above chance (0.0025): R@1 %.3f MRR@10 %.3f", r.r1, r.mrr10);
    ct_model_free(&m);
    ct_tokenizer_free(tok);
    ct_tokenizer_free(ref);
    ct_text_dataset_free(&ds);
    /* a resume with another vocabulary is refused */
    c.model.vocab = 500;
    c.epochs = 5;
    snprintf(c.resume, sizeof c.resume, "%s", ck);
    snprintf(c.out, sizeof c.out, "%s", full);
    CHECK(ct_train_run(&c, &res) == CT_ERR_ARG && strstr(ct_errmsg(), "train.vocab"), "vocab change refused: %s",
          ct_errmsg());
}

static char *run_out(const char *cmd) {
    FILE *p = popen(cmd, "r");
    static char buf[8192];
    size_t n = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
    buf[n] = '\0';
    int rc = p ? pclose(p) : -1;
    return rc == 0 ? buf : NULL;
}

static void test_cli(void) {
    const char *bin = getenv("CONTRAST_BIN");
    if (!bin) bin = "./contrast";
    char cmd[2048], *o;
    snprintf(cmd, sizeof cmd, "%s embed --checkpoint %s/full/checkpoint.safetensors --text 'alpha3 beta4' --text x",
             bin, dir);
    o = run_out(cmd);
    int lines = 0;
    for (char *q = o; q && *q; q++) lines += *q == '\n';
    CHECK(o && lines == 2, "embed --text twice prints two lines (%d)", lines);
    snprintf(cmd, sizeof cmd,
             "%s search --checkpoint %s/full/checkpoint.safetensors --build-index pairs:%s/pairs.tsv --index "
             "%s/idx.safetensors 2>/dev/null && %s search --checkpoint %s/full/checkpoint.safetensors --index "
             "%s/idx.safetensors --query 'alpha5 beta3' --k 3",
             bin, dir, dir, dir, bin, dir, dir);
    o = run_out(cmd);
    CHECK(o && !strncmp(o, "1.0000\talpha5 beta3\n", 20), "search finds the indexed text itself first: %s",
          o ? o : "(failed)");
    lines = 0;
    for (char *q = o; q && *q; q++) lines += *q == '\n';
    CHECK(lines == 3, "--k 3 prints 3 results (%d)", lines);
    /* a malformed pairs file: the CLI names the file and the line */
    char bad[400];
    snprintf(bad, sizeof bad, "%s/bad.tsv", dir);
    FILE *f = fopen(bad, "w");
    fputs("one\ttwo\nonly one column\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s train --method pairs --data pairs:%s --out %s/badrun 2>&1", bin, bad, dir);
    FILE *p = popen(cmd, "r");
    char msg[1024] = "";
    size_t n = fread(msg, 1, sizeof msg - 1, p);
    msg[n] = '\0';
    int rc = pclose(p);
    char want[420];
    snprintf(want, sizeof want, "%s:2", bad);
    CHECK(rc != 0 && strstr(msg, want), "bad pairs file refused naming %s: %s", want, msg);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/ct_textrain_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    test_mnrl();
    test_simcse_masks();
    test_pairs_run();
    test_cli();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_done();
}
