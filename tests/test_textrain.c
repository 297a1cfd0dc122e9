/* test_textrain.c: the text methods through the trainer and the CLI.
 *
 * ct_mnrl_loss (symmetric = CLIP at a fixed scale; one direction's gradient by
 * finite differences), SimCSE's two copies drawing different dropout masks, a pairs
 * run on a small synthetic corpus (resume bit for bit, the tokenizer stored and
 * restored, retrieval far above chance), the text monitor (--eval-every) on a
 * synthetic debian-descriptions corpus, and embed --text, search and a malformed
 * pairs file through the CLI (CONTRAST_BIN). */
#include "harness.h"

#include "contrast/train.h"

#include <stdlib.h>
#include <sys/stat.h>
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

/* Lists of n synthetic packages (pkgN: short "alphaA betaB", a long description
 * with betaB, alpha(A/2) and a filler word, so that two long descriptions fit a
 * short one about equally and R@1 < R@10; one of 3 sections by A) that
 * ct_debian_build reads. */
static void write_debian_lists(const char *lists, int n) {
    static const char *const sec[3] = {"admin", "libs", "utils"};
    char p[512];
    mkdir(lists, 0755);
    snprintf(p, sizeof p, "%s/synth_dists_main_i18n_Translation-en", lists);
    FILE *f = fopen(p, "w");
    for (int i = 0; f && i < n; i++)
        fprintf(f, "Package: pkg%d\nDescription-en: alpha%d beta%d\n filler %d text beta%d and alpha%d\n\n", i, i % 37,
                i / 37, i % 5, i / 37, (i % 37) / 2);
    if (f) fclose(f);
    snprintf(p, sizeof p, "%s/synth_dists_main_binary-amd64_Packages", lists);
    f = fopen(p, "w");
    for (int i = 0; f && i < n; i++) fprintf(f, "Package: pkg%d\nSection: %s\n\n", i, sec[(i % 37) % 3]);
    if (f) fclose(f);
}

/* Line `no` (1-based) of a file, or "" (static buffer). */
static const char *file_line(const char *path, int no) {
    static char line[2048];
    line[0] = '\0';
    FILE *f = fopen(path, "r");
    for (int i = 0; f && i < no; i++)
        if (!fgets(line, sizeof line, f)) line[0] = '\0';
    if (f) fclose(f);
    return line;
}

/* --eval-every for text: retrieval and kNN of the held-out split in metrics.jsonl,
 * the same numbers ct_evaluate_text gives for that epoch's checkpoint, training
 * unchanged by it; refused where there is no held-out split. */
static void test_text_monitor(void) {
    char lists[400], cache[400], mon[400], plain[400], path[500], want[160];
    snprintf(lists, sizeof lists, "%s/lists", dir);
    snprintf(cache, sizeof cache, "%s/cache", dir);
    snprintf(mon, sizeof mon, "%s/mon", dir);
    snprintf(plain, sizeof plain, "%s/plain", dir);
    write_debian_lists(lists, 444);
    setenv("CONTRAST_DEBIAN_LISTS", lists, 1);
    setenv("CONTRAST_CACHE", cache, 1);
    ct_train_config c;
    ct_train_result res;
    config(&c, "debian-descriptions", mon);
    c.epochs = 3;
    c.eval_every = 1;
    c.final_probe = 0;
    CHECK_OK(ct_train_run(&c, &res));
    config(&c, "debian-descriptions", plain);
    c.epochs = 3;
    c.stop_after = 2;
    CHECK_OK(ct_train_run(&c, &res));
    snprintf(path, sizeof path, "%s/metrics.jsonl", mon);
    char l1[2048], l2[2048], l3[2048], p2[2048];
    snprintf(l1, sizeof l1, "%s", file_line(path, 1));
    snprintf(l2, sizeof l2, "%s", file_line(path, 2));
    snprintf(l3, sizeof l3, "%s", file_line(path, 3));
    CHECK(strstr(l1, "\"r1\": ") && strstr(l1, "\"r10\": ") && strstr(l1, "\"mrr10\": ") && strstr(l1, "\"knn_top1\": "),
          "epoch 1's line has the monitor: %s", l1);
    CHECK(strstr(l2, "\"mrr10\": ") && !strstr(l3, "\"mrr10\": "), "epoch 2 monitored, not the last (final_eval): %s",
          l3);
    /* the monitor at epoch 2 = ct_evaluate_text on the epoch-2 checkpoint of a run without it */
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", plain);
    ct_model m;
    ct_tokenizer *tok = NULL;
    ct_text_dataset tr, te;
    ct_text_eval_result er;
    CHECK_OK(ct_checkpoint_load_model(&m, path));
    CHECK_OK(ct_checkpoint_load_tokenizer(&tok, path));
    CHECK_OK(ct_text_dataset_load(&tr, "debian-descriptions", 1));
    CHECK_OK(ct_text_dataset_load(&te, "debian-descriptions", 0));
    CHECK(te.npairs > 10 && tr.npairs > 300, "synthetic corpus split %lld / %lld", (long long)tr.npairs,
          (long long)te.npairs);
    CHECK_OK(ct_evaluate_text(&er, &m, tok, &tr, &te, c.knn_k, c.knn_t, 0));
    snprintf(want, sizeof want, "\"r1\": %.4f, \"r10\": %.4f, \"mrr10\": %.4f, \"knn_top1\": %.4f", er.r1, er.r10,
             er.mrr10, er.knn_top1);
    CHECK(strstr(l2, want) != NULL, "monitor = ct_evaluate_text of that epoch (%s) in %s", want, l2);
    CHECK(er.mrr10 > 0.2 && er.r1 < er.r10, "the monitored model retrieves far above chance: R@1 %.3f R@10 %.3f "
          "MRR@10 %.3f", er.r1, er.r10, er.mrr10);
    ct_model_free(&m);
    ct_tokenizer_free(tok);
    ct_text_dataset_free(&tr);
    ct_text_dataset_free(&te);
    /* training is unchanged by the monitor: epoch 2's loss and statistics */
    snprintf(path, sizeof path, "%s/metrics.jsonl", plain);
    snprintf(p2, sizeof p2, "%s", file_line(path, 2));
    char *a = strstr(l2, "\"images_per_s\""), *b = strstr(p2, "\"images_per_s\"");
    CHECK(a && b && a - l2 == b - p2 && !strncmp(l2, p2, (size_t)(a - l2)), "same training with the monitor: %s vs %s",
          l2, p2);
    /* no held-out split: refused before training */
    char data[400];
    snprintf(data, sizeof data, "pairs:%s/pairs.tsv", dir);
    snprintf(path, sizeof path, "%s/nomon", dir);
    config(&c, data, path);
    c.eval_every = 1;
    CHECK(ct_train_run(&c, &res) == CT_ERR_ARG && strstr(ct_errmsg(), "held-out split"),
          "eval_every on pairs:FILE refused: %s", ct_errmsg());
    unsetenv("CONTRAST_DEBIAN_LISTS");
    unsetenv("CONTRAST_CACHE");
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
    /* --eval-every reaches the trainer for text: refused where there is no held-out split */
    snprintf(cmd, sizeof cmd, "%s train --method pairs --data pairs:%s/pairs.tsv --eval-every 2 --out %s/evrun 2>&1",
             bin, dir, dir);
    p = popen(cmd, "r");
    n = fread(msg, 1, sizeof msg - 1, p);
    msg[n] = '\0';
    rc = pclose(p);
    CHECK(rc != 0 && strstr(msg, "eval_every 2") && strstr(msg, "held-out split"), "--eval-every 2 on pairs:FILE: %s",
          msg);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/ct_textrain_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    test_mnrl();
    test_simcse_masks();
    test_pairs_run();
    test_text_monitor();
    test_cli();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_done();
}
