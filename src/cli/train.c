/* train.c (cli): `contrast train`, a thin wrapper over ct_train_run. */
#include "cli.h"

#include "contrast.h"
#include "contrast/train.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Progress on stderr from the trainer's events: a bar (progress 1, a terminal), one
 * line per epoch (0), or nothing (-1, --quiet); kNN monitor lines unless quiet. */
typedef struct {
    int progress;
    int bar_open; /* a bar line was printed without its newline */
} progress_state;

static void on_event(const ct_train_event *e, void *ctx) {
    progress_state *p = ctx;
    switch (e->kind) {
    case CT_TRAIN_EVENT_RESUMED:
        if (p->progress >= 0) fprintf(stderr, "resumed from %s at epoch %d, step %lld\n", e->path, e->epoch, (long long)e->step);
        break;
    case CT_TRAIN_EVENT_WARNING:
        fprintf(stderr, "contrast train: warning: %s\n", e->message);
        break;
    case CT_TRAIN_EVENT_STEP: {
        if (p->progress != 1) break;
        int width = 24, filled = e->batches ? (int)(width * e->batch / e->batches) : 0;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\repoch %d/%d [%s] step %lld/%lld loss %.4f acc %.3f %.0f img/s ETA %.0fs   ", e->epoch,
                e->epochs, bar, (long long)e->batch, (long long)e->batches, e->loss, e->top1, e->images_per_s, e->eta_s);
        fflush(stderr);
        p->bar_open = 1;
        break;
    }
    case CT_TRAIN_EVENT_EPOCH:
        if (p->bar_open) fputc('\n', stderr);
        p->bar_open = 0;
        if (e->knn_top1 >= 0 && p->progress >= 0) fprintf(stderr, "epoch %d: kNN top-1 %.2f%%\n", e->epoch, 100 * e->knn_top1);
        if (p->progress == 0)
            fprintf(stderr, "epoch %d/%d loss %.4f acc %.3f %.0f img/s %.1fs\n", e->epoch, e->epochs, e->loss, e->top1,
                    e->images_per_s, e->seconds);
        break;
    }
}

/* Runs c with the progress printer, under mpirun on every rank; prints the outcome. */
static int run_training(ct_train_config *c, int argc, char **argv, int quiet) {
    progress_state ps = {quiet ? -1 : isatty(STDERR_FILENO) ? 1 : 0, 0};
    c->on_event = on_event;
    c->event_ctx = &ps;
    if (ct_dist_init(&argc, &argv)) return cli_fail("train");
    ct_train_result res;
    if (ct_train_run(c, &res)) {
        if (ps.bar_open) fputc('\n', stderr);
        int code = cli_fail("train");
        ct_dist_abort(code); /* under mpirun: end every rank, not just this one */
        return code;
    }
    int rank = ct_dist_rank();
    ct_dist_finalize();
    if (rank != 0) return 0;
    if (!quiet) {
        fprintf(stderr, "trained %d epochs (%lld steps) in %.1fs; outputs in %s\n", res.epochs_done,
                (long long)res.steps, res.seconds, res.out);
    }
    if (res.mrr10 >= 0) printf("r1 %.4f\nr10 %.4f\nmrr10 %.4f\n", res.r1, res.r10, res.mrr10);
    if (res.knn_top1 >= 0) {
        printf("knn_top1 %.4f\n", res.knn_top1);
        if (res.knn_top1_raw >= 0) printf("knn_top1_unwhitened %.4f\n", res.knn_top1_raw);
        if (res.probe_top1 >= 0) printf("probe_top1 %.4f\n", res.probe_top1);
    }
    if (c->method == CT_METHOD_CLIP) printf("loss %.4f\ntop1 %.4f\n", res.final_loss, res.final_top1);
    return 0;
}

/* --method clip: its defaults (AdamW at lr 5e-4, weight decay 0.1, temperature 0.07, no
 * dropout, no whitening, monitor or probe) and the towers' options. */
static int train_clip(ct_train_config *c, int argc, char **argv, const char *encoder, const char *image_encoder,
                      const char *text_encoder, const char *text_pool, int embed_dim, float lr, float weight_decay,
                      float temperature, float dropout, const char *optimizer, int quiet) {
    if (strcmp(encoder, "default")) {
        fprintf(stderr, "contrast train: clip's towers are --image-encoder and --text-encoder, not --encoder\n");
        return 2;
    }
    if (strcmp(text_encoder, "transformer")) {
        fprintf(stderr, "contrast train: unknown --text-encoder '%s' (transformer)\n", text_encoder);
        return 2;
    }
    if (ct_encoder_parse(image_encoder[0] ? image_encoder : "cnn", &c->model.encoder) ||
        ct_pool_parse(text_pool, &c->text_pool) || (c->model.encoder == CT_ENC_TRANSFORMER && ct_error(CT_ERR_ARG,
            "the image tower is cnn, resnet18 or vit")) || (c->text_pool != CT_POOL_EOT && c->text_pool != CT_POOL_MEAN &&
            ct_error(CT_ERR_ARG, "--text-pool is eot or mean"))) {
        fprintf(stderr, "contrast train: %s\n", ct_errmsg());
        return 2;
    }
    int opt = ct_optim_type_parse(strcmp(optimizer, "default") ? optimizer : "adamw");
    if (opt < 0) {
        fprintf(stderr, "contrast train: unknown --optimizer '%s' (sgd, adamw, lars)\n", optimizer);
        return 2;
    }
    c->method = CT_METHOD_CLIP;
    float mom = c->optim.momentum;
    ct_optim_config_default(&c->optim, (ct_optim_type)opt);
    if (opt != CT_OPTIM_ADAMW) c->optim.momentum = mom;
    c->optim.weight_decay = weight_decay >= 0 ? weight_decay : 0.1f;
    c->lr = lr > 0 ? lr : 5e-4f;
    c->temperature = temperature > 0 ? temperature : 0.07f;
    c->model.dropout = dropout >= 0 ? dropout : 0.0f;
    c->model.head_out = embed_dim;
    c->model.whiten = 0;
    c->eval_every = 0;
    c->final_probe = 0;
    c->view_size = -1;
    return run_training(c, argc, argv, quiet);
}

/* Longer than our ~80-line aim: most of it is the option table, one line per flag. */
int cmd_train(int argc, char **argv) {
    ct_train_config c;
    ct_train_config_default(&c);
    char method[16], encoder[16] = "default", optimizer[16] = "default", pool[16];
    snprintf(method, sizeof method, "%s", ct_method_name(c.method));
    snprintf(pool, sizeof pool, "%s", ct_pool_name(c.model.pool));
    /* options whose default depends on the encoder (image or text): 0 / -1 / -2 here stand for it */
    int no_probe = !c.final_probe, quiet = 0, view_size = -1, head_hidden = -1, eval_every = -1;
    float lr = 0.0f, weight_decay = -1.0f, dropout = -1.0f, temperature = 0.0f, whiten = -1.0f;
    /* clip: the towers (docs/clip.md) */
    char image_encoder[16] = "", text_encoder[16] = "transformer", text_pool[16] = "eot";
    int embed_dim = 128;
    cli_opt opts[] = {
        {"--method", OPT_STR, method, sizeof method, 0, 0, "images: simclr | moco | supcon (supcon uses labels); text: simcse | pairs"},
        {"--data", OPT_STR, c.data, sizeof c.data, 0, 0, "fashion-mnist | mnist:DIR | cifar10:DIR | cifar100:DIR | folder:DIR; text: text:FILE | pairs:FILE | debian-descriptions"},
        {"--encoder", OPT_STR, encoder, sizeof encoder, 0, 0, "cnn | resnet18 | vit | transformer (default: cnn; transformer for text)"},
        {"--width", OPT_INT, &c.model.width, 0, 0, 4096, "base width; transformers: model width C (0: 32 for cnn, 64 for resnet18, 128 for vit, 256 for transformer)"},
        {"--depth", OPT_INT, &c.model.depth, 0, 1, 1024, "vit, transformer: blocks"},
        {"--heads", OPT_INT, &c.model.heads, 0, 1, 4096, "vit, transformer: attention heads, dividing the width"},
        {"--patch", OPT_INT, &c.model.patch, 0, 1, 4096, "vit: patch side, dividing the image side (4: 49 patches + CLS for 28x28)"},
        {"--context", OPT_INT, &c.model.context, 0, 3, 65536, "transformer: tokens per text (BOS, text cut to fit, EOS)"},
        {"--vocab", OPT_INT, &c.model.vocab, 0, 260, 1 << 20, "transformer: the tokenizer's vocabulary, trained on the training split (ids incl. 256 bytes + PAD, BOS, EOS)"},
        {"--dropout", OPT_FLOAT, &dropout, 0, -1, 0.95, "vit, transformer: dropout on embeddings, attention and residual branches (-1: 0 for vit, 0.1 for transformer)"},
        {"--pool", OPT_STR, pool, sizeof pool, 0, 0, "vit, transformer: default (vit: cls, transformer: mean) | cls | mean | eot (transformer)"},
        {"--symmetric", OPT_FLAG, &c.symmetric, 0, 0, 0, "pairs: also the positive -> anchor direction"},
        {"--last-width", OPT_INT, &c.model.last_width, 0, -1, 65536, "cnn: channels of the last stage = feature size (-1: 16 x width; 0: 8 x width)"},
        {"--head-hidden", OPT_INT, &head_hidden, 0, -1, 65536, "projection head hidden size (0: no head; -1: 512 for images, 0 for text)"},
        {"--head-out", OPT_INT, &c.model.head_out, 0, 1, 65536, "projection head output size"},
        {"--epochs", OPT_INT, &c.epochs, 0, 1, 100000, "training epochs"},
        {"--batch", OPT_I64, &c.batch, 0, 2, 1 << 20, "samples per step (two views each)"},
        {"--lr", OPT_FLOAT, &lr, 0, 0, 1e4, "peak learning rate after warm-up (0: 4.5; 1e-3 for vit; 5e-4 for text)"},
        {"--optimizer", OPT_STR, optimizer, sizeof optimizer, 0, 0, "sgd | adamw | lars (default: lars; adamw for vit and text)"},
        {"--momentum", OPT_FLOAT, &c.optim.momentum, 0, 0, 0.9999, "SGD/LARS momentum"},
        {"--weight-decay", OPT_FLOAT, &weight_decay, 0, -1, 10, "weight decay, not on biases, norms, positions (-1: 1e-6; 0.05 for vit; 0.01 for text)"},
        {"--warmup-epochs", OPT_FLOAT, &c.warmup_epochs, 0, 0, 1e5, "linear warm-up, then cosine decay"},
        {"--temperature", OPT_FLOAT, &temperature, 0, 0, 100, "softmax temperature of the objective (0: 0.1; 0.05 for text)"},
        {"--augment", OPT_STR, c.augment, sizeof c.augment, 0, 0, "augmentation overrides, e.g. crop=0.2:1,flip=0.5 (docs/data.md)"},
        {"--view-size", OPT_INT, &view_size, 0, -1, 1024, "side of the training views (-1: 5/7 of the images', 20 for 28x28, and the images' for vit, whose positions fix its input; 0: the images')"},
        {"--local-crops", OPT_INT, &c.local_crops, 0, 0, 64, "multi-crop: small views per sample besides the two (simclr, supcon)"},
        {"--local-size", OPT_INT, &c.local_size, 0, -1, 1024, "side of the local crops (-1: 3/7 of the images', 12 for 28x28; 0: the images')"},
        {"--local-augment", OPT_STR, c.local_augment, sizeof c.local_augment, 0, 0, "overrides for the local crops (default: the views' pipeline with crop=0.05:0.4)"},
        {"--moco-m", OPT_FLOAT, &c.moco_m, 0, 0, 1, "MoCo momentum-encoder coefficient"},
        {"--moco-k", OPT_I64, &c.moco_k, 0, 0, 1 << 24, "MoCo queue size (0: min(4096, dataset size))"},
        {"--seed", OPT_U64, &c.seed, 0, 0, 9e18, "seed of initialisation, shuffling and augmentation"},
        {"--threads", OPT_INT, &c.threads, 0, 0, 1024, "compute threads (0: all cores)"},
        {"--loader-threads", OPT_INT, &c.loader_threads, 0, 0, 64, "augmentation threads (0: in the training thread)"},
        {"--limit", OPT_I64, &c.limit, 0, 0, 1e12, "train on the first N training images (0: all)"},
        {"--eval-every", OPT_INT, &eval_every, 0, -1, 100000, "monitor every N epochs: images kNN; text (debian-descriptions) R@1, R@10, MRR@10 and Section kNN of the held-out split (0: off; -1: 5 for images, 0 for text)"},
        {"--k", OPT_INT, &c.knn_k, 0, 1, 100000, "kNN neighbours"},
        {"--knn-temperature", OPT_FLOAT, &c.knn_t, 0, 1e-4, 100, "kNN vote temperature"},
        {"--no-probe", OPT_FLAG, &no_probe, 0, 0, 0, "skip the final linear probe"},
        {"--stop-after", OPT_INT, &c.stop_after, 0, 0, 100000, "stop after N epochs as if interrupted (resume later)"},
        {"--out", OPT_STR, c.out, sizeof c.out, 0, 0, "run folder (default: a new runs/<timestamp>[-N]); one with files is refused unless --resume or --overwrite"},
        {"--overwrite", OPT_FLAG, &c.overwrite, 0, 0, 0, "replace the run in a non-empty --out (its checkpoint, metrics.jsonl, eval.json)"},
        {"--resume", OPT_STR, c.resume, sizeof c.resume, 0, 0, "checkpoint to resume from (refused if it has trained --epochs already)"},
        {"--allow-changes", OPT_FLAG, &c.resume_allow_changes, 0, 0, 0, "--resume with other data, batch, lr, optimizer, temperature, seed, ... than the checkpoint's (warns; not bit for bit)"},
        {"--whiten", OPT_FLOAT, &whiten, 0, -1, 0.5, "ZCA whitening of the features for evaluation and embeddings, shrinkage relative to the largest variance (0: none; -1: 1e-4, images only)"},
        {"--recompute", OPT_FLAG, &c.recompute, 0, 0, 0, "recompute conv outputs (vit: attention and MLP) in backward: less memory, more time, same results"},
        {"--sync-bn", OPT_FLAG, &c.sync_bn, 0, 0, 0, "under mpirun: BatchNorm statistics over the global batch"},
        {"--dist-check", OPT_INT, &c.dist_check, 0, 0, 1 << 30, "under mpirun: check every N steps that all ranks hold the same parameters"},
        {"--image-encoder", OPT_STR, image_encoder, sizeof image_encoder, 0, 0, "clip: the image tower, cnn | resnet18 | vit (default cnn; --width, --depth, --heads, --patch shape it)"},
        {"--text-encoder", OPT_STR, text_encoder, sizeof text_encoder, 0, 0, "clip: the text tower (transformer)"},
        {"--text-pool", OPT_STR, text_pool, sizeof text_pool, 0, 0, "clip: the text tower's pooling, eot (causal mask, as CLIP) | mean"},
        {"--text-width", OPT_INT, &c.text_width, 0, 1, 4096, "clip: the text transformer's width"},
        {"--text-depth", OPT_INT, &c.text_depth, 0, 1, 1024, "clip: the text transformer's blocks"},
        {"--text-heads", OPT_INT, &c.text_heads, 0, 1, 4096, "clip: the text transformer's attention heads"},
        {"--embed-dim", OPT_INT, &embed_dim, 0, 1, 65536, "clip: the shared embedding size both towers project to"},
        {"--image-size", OPT_INT, &c.image_size, 0, 8, 1024, "clip: side of the images the image tower reads"},
        {"--quiet", OPT_FLAG, &quiet, 0, 0, 0, "no progress output"},
    };
    int rc = cli_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]),
                       "usage: contrast train [options]\n"
                       "Contrastive pretraining; writes checkpoint.safetensors, metrics.jsonl and eval.json to --out.");
    if (rc) return rc == 1 ? 0 : rc;
    if (!strcmp(method, "clip")) return train_clip(&c, argc, argv, encoder, image_encoder, text_encoder, text_pool,
                                                   embed_dim, lr, weight_decay, temperature, dropout, optimizer, quiet);
    if (image_encoder[0] || strcmp(text_encoder, "transformer") || strcmp(text_pool, "eot") || embed_dim != 128 ||
        c.text_width != 128 || c.text_depth != 2 || c.text_heads != 4 || c.image_size != 32) {
        fprintf(stderr, "contrast train: --image-encoder, --text-*, --embed-dim and --image-size apply to --method clip\n");
        return 2;
    }
    const int text = ct_data_is_text(c.data);
    if (!strcmp(encoder, "default")) snprintf(encoder, sizeof encoder, "%s", text ? "transformer" : "cnn");
    if (ct_encoder_parse(encoder, &c.model.encoder) || ct_pool_parse(pool, &c.model.pool)) {
        fprintf(stderr, "contrast train: %s\n", ct_errmsg());
        return 2;
    }
    const int vit = c.model.encoder == CT_ENC_VIT, tfm = vit || c.model.encoder == CT_ENC_TRANSFORMER;
    ct_model_config md;
    ct_model_config_default(&md);
    if (!tfm && (c.model.depth != md.depth || c.model.heads != md.heads || dropout >= 0 ||
                 c.model.pool != CT_POOL_DEFAULT)) {
        fprintf(stderr, "contrast train: --depth, --heads, --dropout and --pool apply to the transformers (vit, transformer)\n");
        return 2;
    }
    if (!vit && c.model.patch != md.patch) {
        fprintf(stderr, "contrast train: --patch applies to --encoder vit only\n");
        return 2;
    }
    if (!text && (c.model.context != md.context || c.model.vocab != md.vocab || c.symmetric)) {
        fprintf(stderr, "contrast train: --context, --vocab and --symmetric apply to text data\n");
        return 2;
    }
    if (vit && c.model.pool == CT_POOL_EOT) {
        fprintf(stderr, "contrast train: --pool eot is the text transformer's; vit pools cls or mean\n");
        return 2;
    }
    if (!strcmp(optimizer, "default")) snprintf(optimizer, sizeof optimizer, "%s", tfm ? "adamw" : "lars");
    if (text && !strcmp(method, "simclr")) snprintf(method, sizeof method, "simcse"); /* the default, for text */
    int mth = ct_method_parse(method), opt = ct_optim_type_parse(optimizer);
    if (mth < 0) {
        fprintf(stderr, "contrast train: unknown --method '%s' (simclr, moco, supcon; text: simcse, pairs)\n", method);
        return 2;
    }
    if (opt < 0) {
        fprintf(stderr, "contrast train: unknown --optimizer '%s' (sgd, adamw, lars)\n", optimizer);
        return 2;
    }
    c.method = (ct_method)mth;
    if (opt != (int)c.optim.type) {
        float wd = c.optim.weight_decay, mom = c.optim.momentum;
        ct_optim_config_default(&c.optim, (ct_optim_type)opt);
        c.optim.weight_decay = wd;
        if (opt != CT_OPTIM_ADAMW) c.optim.momentum = mom;
    }
    if (lr > 0) c.lr = lr;
    else if (vit) c.lr = 1e-3f;
    else if (text) c.lr = 5e-4f;
    if (weight_decay >= 0) c.optim.weight_decay = weight_decay;
    else if (vit) c.optim.weight_decay = 0.05f;
    else if (text) c.optim.weight_decay = 0.01f;
    c.view_size = view_size == -1 && vit ? 0 : view_size; /* a ViT's positions fix its input size */
    c.model.dropout = dropout >= 0 ? dropout : text ? 0.1f : 0.0f;
    /* text: SimCSE's temperature, the embeddings trained without a head, no whitening, no monitor unless asked */
    c.temperature = temperature > 0 ? temperature : text ? 0.05f : c.temperature;
    c.model.head_hidden = head_hidden >= 0 ? head_hidden : text ? 0 : c.model.head_hidden;
    c.model.whiten = whiten >= 0 ? whiten : text ? 0.0f : c.model.whiten;
    c.eval_every = eval_every >= 0 ? eval_every : text ? 0 : c.eval_every;
    if (c.model.last_width > 0 && c.model.encoder != CT_ENC_CNN) {
        fprintf(stderr, "contrast train: --last-width applies to --encoder cnn only\n");
        return 2;
    }
    c.final_probe = !no_probe;
    return run_training(&c, argc, argv, quiet);
}
