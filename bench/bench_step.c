/* bench_step.c: speed and memory of one SimCLR training step, the C side of `make bench`.
 *
 * One step is what the trainer does per batch: forward of 2B views through encoder
 * and head, NT-Xent, zero_grad, backward, LARS update (AdamW for the transformers). Inputs are random and made
 * once (no data loading or augmentation in the timing). Prints the median step
 * time over --steps timed steps after --warmup untimed ones as images/s (an image
 * is a training pair, as in the trainer's img/s), the eval forward (encoder only,
 * 2B single images) as images/s, and peak RSS. --profile adds a per-layer-type
 * time breakdown with GFLOP/s, taken from one extra step whose kernels are called
 * one node at a time in the model's own order (the same calls ct_model_forward
 * and ct_model_backward make). --gemm measures this machine's sgemm and its fp32
 * peak (twelve independent 8-lane FMA chains per thread, where the CPU has FMA).
 *
 *   bench_step [--model cnn|resnet18|transformer|vit|clip] [--width W] [--size S] [--batch B] [--steps S]
 *              [--warmup K] [--threads T] [--profile] [--layers] [--cpu-clock] [--gemm]
 *              [--recompute] [--memory] [--depth L] [--heads H] [--context T] [--vocab V] [--patch P]
 *              [--dropout P] [--text-width C] [--text-depth L] [--text-heads H] [--embed-dim D]
 * --size sets the input side (default 28; the trainer's views are 20x20).
 * The transformers default to the shapes: --model transformer is the text
 * encoder at T 32, C 256, L 4, H 4, V 8192 over random full-length sequences;
 * --model vit the ViT at p 4, C 192, L 6, H 3 on 28x28; both dropout 0.1, mean
 * pooling for text and CLS for the ViT, the usual head, AdamW (lr 1e-3, wd 0.05).
 * bench/torch_transformer.py is their PyTorch side. --memory builds and prepares
 * the model only and prints its activation arena (e.g. BERT-base: --model
 * transformer --width 768 --depth 12 --heads 12 --context 128 --vocab 30522
 * --batch 16 [--recompute]). --recompute marks the convs (ct_model_recompute_convs)
 * and the transformer blocks (ct_model_recompute_blocks) as contrast train does.
 * --model clip is the two-tower step of `contrast train --method clip` (bench_clip below;
 * bench/torch_clip.py --bench its PyTorch side).
 * One line per measurement, "key value" pairs, for bench/run.sh to parse. */
#include "contrast.h"
#include "../src/models/internal.h" /* the plan's BN + max pool fusion, for the profile's categories */

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#if defined(__AVX__) && defined(__FMA__)
#include <immintrin.h>
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* the profile's clock: wall time, or process CPU time with --cpu-clock (useful at
 * one thread on a busy machine, where wall time counts other processes' slices) */
static int use_cpu_clock = 0, show_layers = 0;
static double pnow(void) {
    struct timespec t;
    clock_gettime(use_cpu_clock ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void layer_line(const ct_model *m, int i, const char *dir, double t, double fl) {
    if (!show_layers || m->nodes[i].kind != CT_NODE_CONV) return;
    const ct_node *n = &m->nodes[i], *a = &m->nodes[n->in0];
    printf("layer %2d conv %lldx%lldx%lld->%lldx%lldx%lld k%lld s%lld %s ms %.1f gflops %.1f\n", i, (long long)a->c,
           (long long)a->h, (long long)a->w, (long long)n->c, (long long)n->h, (long long)n->w, (long long)n->k,
           (long long)n->stride, dir, 1e3 * t, fl / t * 1e-9);
}

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static void die(ct_status st, const char *what) {
    fprintf(stderr, "bench_step: %s: %s\n", what, ct_errmsg());
    exit(st ? (int)st : 1);
}

/* ---- sgemm of this machine ------------------------------------------------------ */

static double gemm_gflops(int64_t M, int64_t N, int64_t K, int inside_parallel) {
    float *A = ct_alloc((size_t)(M * K) * 4), *B = ct_alloc((size_t)(K * N) * 4), *C = ct_alloc((size_t)(M * N) * 4);
    for (int64_t i = 0; i < M * K; i++) A[i] = (float)(i % 7) * 1e-3f;
    for (int64_t i = 0; i < K * N; i++) B[i] = (float)(i % 5) * 1e-3f;
    int reps = 1 + (int)(2e9 / (2.0 * (double)M * (double)N * (double)K));
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t = now();
        for (int i = 0; i < reps; i++) {
            if (inside_parallel) {
                /* one call per thread, each single-threaded: the conv's situation */
#pragma omp parallel
                ct_gemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
            } else {
                ct_gemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
            }
        }
        t = (now() - t) / reps;
        if (t < best) best = t;
    }
    ct_free(A); ct_free(B); ct_free(C);
    double calls = inside_parallel ? (double)ct_get_threads() : 1.0;
    return calls * 2.0 * (double)M * (double)N * (double)K / best * 1e-9;
}

/* The cores' fp32 peak: each thread runs twelve independent chains of 8-lane FMAs
 * (enough to cover the FMA latency), 16 FLOPs per FMA; 0 without FMA. */
static double fma_peak_gflops(void) {
#if defined(__AVX__) && defined(__FMA__)
    const long iters = 20000000;
    double best = 1e30;
    float sink = 0.0f;
    for (int r = 0; r < 3; r++) {
        double t = now();
#pragma omp parallel reduction(+ : sink)
        {
            const __m256 b = _mm256_set1_ps(0.9999f), c = _mm256_set1_ps(1e-4f);
            __m256 acc[12];
            for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps((float)i);
            for (long it = 0; it < iters; it++)
#pragma GCC unroll 12
                for (int i = 0; i < 12; i++) acc[i] = _mm256_fmadd_ps(acc[i], b, c);
            for (int i = 0; i < 12; i++) sink += _mm256_cvtss_f32(acc[i]);
        }
        t = now() - t;
        if (t < best) best = t;
    }
    if (sink == -1.0f) printf("\n"); /* keeps the chains' results live */
    return (double)ct_get_threads() * (double)iters * 12.0 * 16.0 / best * 1e-9;
#else
    return 0.0;
#endif
}

/* ---- per-layer-type profile ------------------------------------------------------ */

enum { K_CONV, K_BN, K_BNPOOL, K_RELU, K_POOL, K_GAP, K_LINEAR, K_ADD, K_EMBED, K_LAYERNORM, K_ATTENTION, K_GELU,
       K_DROPOUT, K_TOKPOOL, K_LOSS, K_OPTIM, K_OTHER, K_COUNT };
static const char *kind_name[K_COUNT] = {"conv", "batchnorm", "bn+maxpool", "relu", "pool", "gap", "linear",
                                         "add", "embedding", "layernorm", "attention", "gelu", "dropout", "tokpool",
                                         "ntxent", "optim", "other"};

/* A BN with a max pool fused into it (ct_model_prepare) does both; the pool node
 * then does nothing, and its time (a function call) counts with the BN's. */
static int kind_of(const ct_model *m, int i) {
    const ct_node *n = &m->nodes[i];
    if (n->kind == CT_NODE_BN && m->plan->nodes[i].pool) return K_BNPOOL;
    if (n->kind == CT_NODE_MAXPOOL && n->in0 > 0 && m->plan->nodes[n->in0].pool) return K_BNPOOL;
    switch (n->kind) {
    case CT_NODE_CONV: return K_CONV;
    case CT_NODE_BN: return K_BN;
    case CT_NODE_RELU: return K_RELU;
    case CT_NODE_MAXPOOL: case CT_NODE_AVGPOOL: return K_POOL;
    case CT_NODE_GAP: return K_GAP;
    case CT_NODE_LINEAR: return K_LINEAR;
    case CT_NODE_ADD: return K_ADD;
    case CT_NODE_TOKEN_EMBED: case CT_NODE_PATCH_EMBED: return K_EMBED;
    case CT_NODE_LAYERNORM: return K_LAYERNORM;
    case CT_NODE_ATTENTION: return K_ATTENTION;
    case CT_NODE_GELU: return K_GELU;
    case CT_NODE_DROPOUT: return K_DROPOUT;
    case CT_NODE_TOKPOOL: return K_TOKPOOL;
    default: return K_OTHER;
    }
}

/* Multiply-add FLOPs of a node's forward (backward: twice that for conv/linear
 * with an input gradient, once without). */
static double node_flops(const ct_model *m, const ct_node *n, int64_t N) {
    const ct_node *a = &m->nodes[n->in0];
    if (n->kind == CT_NODE_CONV)
        return 2.0 * (double)N * (double)(n->c * n->h * n->w) * (double)(a->c * n->k * n->k);
    if (n->kind == CT_NODE_LINEAR) return 2.0 * (double)N * (double)(a->seq ? a->h : 1) * (double)a->c * (double)n->c;
    if (n->kind == CT_NODE_ATTENTION) return 4.0 * (double)N * (double)(n->h * n->h) * (double)n->c; /* QK^T, PV */
    if (n->kind == CT_NODE_PATCH_EMBED)
        return 2.0 * (double)N * (double)(n->h - 1) * (double)n->c * (double)(a->c * n->k * n->k);
    return 0.0;
}

/* the input of a step: images, or token ids (all tokens real) */
typedef struct {
    const float *x;
    const int32_t *ids;
} step_input;

static ct_status begin_forward(ct_model *m, const step_input *in, int64_t N, int training, int through_head) {
    return in->ids ? ct_model_forward_tokens_begin(m, in->ids, NULL, N, training, through_head)
                   : ct_model_forward_begin(m, in->x, N, training, through_head);
}

static ct_status forward(ct_model *m, const step_input *in, int64_t N, int training, int through_head) {
    return in->ids ? ct_model_forward_tokens(m, in->ids, NULL, N, training, through_head)
                   : ct_model_forward(m, in->x, N, training, through_head);
}

/* Runs the forward node by node (training, through the head), timing each kind,
 * through the model's own per-node entry points (the same code as a real step). */
static void profile_forward(ct_model *m, const step_input *in, int64_t N, double *t, double *fl) {
    ct_status st = begin_forward(m, in, N, 1, 1);
    if (st) die(st, "forward");
    for (int i = 1; i <= m->z_node; i++) {
        const ct_node *n = &m->nodes[i];
        double t0 = pnow();
        ct_model_node_forward(m, i);
        int k = kind_of(m, i);
        double dt = pnow() - t0;
        t[k] += dt;
        fl[k] += node_flops(m, n, N);
        layer_line(m, i, "fwd", dt, node_flops(m, n, N));
    }
}

static void profile_backward(ct_model *m, const float *dz, int64_t N, double *t, double *fl) {
    ct_status st = ct_model_backward_begin(m, dz);
    if (st) die(st, "backward");
    for (int i = m->z_node; i >= 1; i--) {
        const ct_node *n = &m->nodes[i];
        int has_dx = n->in0 > 0;
        double t0 = pnow();
        ct_model_node_backward(m, i);
        int k = kind_of(m, i);
        double dt = pnow() - t0;
        t[k] += dt;
        fl[k] += node_flops(m, n, N) * (has_dx || n->kind == CT_NODE_ATTENTION ? 2.0 : 1.0);
        layer_line(m, i, "bwd", dt, node_flops(m, n, N) * (has_dx ? 2.0 : 1.0));
    }
}

/* ---- the CLIP step --------------------------------------------------------------------- */

/* --model clip: one step of `contrast train --method clip` (src/train/clip.c train_step)
 * at its defaults: image tower cnn width W (default 32, last stage 16 W) over 3 x S x S
 * (S default 32), text tower transformer 128 wide, 2 blocks, 4 heads (--text-width,
 * --text-depth, --text-heads), --context 32 tokens of a --vocab 8192, EOT pooling under a
 * causal mask, both projected without bias to --embed-dim 128; dropout --dropout (0).
 * One step: both towers forward on B random images and B full-length random token rows,
 * ct_clip_loss at the scale s, both backwards, AdamW (lr 5e-4, weight decay 0.1, none on s)
 * over [image | text | s] as the trainer steps it, and the clamp of s to [0, ln 100]. The
 * trainer's in-batch top-1 (a B x B product) is left out, as in bench/torch_clip.py --bench.
 * Prints the same "c ..." line as the other models: train_img_s is pairs per second,
 * infer_img_s pairs per second through both towers' eval forward. --profile adds one
 * extra step timed per tower and phase, and per layer type within each tower. */
typedef struct {
    int width, size, context, vocab, text_width, text_depth, text_heads, embed_dim, steps, warmup, profile;
    float dropout;
    int64_t B;
} clip_args;

static void profile_tower(const char *tower, const ct_model *m, const double *tf, const double *tb, const double *ff,
                          const double *fb, double total) {
    for (int k = 0; k < K_COUNT; k++) {
        if (tf[k] + tb[k] == 0) continue;
        printf("profile clip %s %s fwd_ms %.1f bwd_ms %.1f share %.1f%%", tower, kind_name[k], 1e3 * tf[k],
               1e3 * tb[k], 100.0 * (tf[k] + tb[k]) / total);
        if (ff[k] > 0) printf(" fwd_gflops %.1f bwd_gflops %.1f", ff[k] / tf[k] * 1e-9, fb[k] / tb[k] * 1e-9);
        printf("\n");
    }
    (void)m;
}

static int bench_clip(const clip_args *a) {
    ct_model_config ic, tc;
    ct_model_config_default(&ic);
    ic.encoder = CT_ENC_CNN;
    ic.width = a->width > 0 ? a->width : 32;
    ic.last_width = 16 * ic.width;
    ic.in_c = 3;
    ic.in_h = ic.in_w = a->size > 0 ? a->size : 32;
    ic.head_hidden = -1;
    ic.head_out = a->embed_dim;
    ic.whiten = 0;
    ic.dropout = a->dropout;
    ct_model_config_default(&tc);
    tc.encoder = CT_ENC_TRANSFORMER;
    tc.width = a->text_width;
    tc.depth = a->text_depth;
    tc.heads = a->text_heads;
    tc.vocab = a->vocab;
    tc.context = a->context;
    tc.pool = CT_POOL_EOT;
    tc.causal = 1;
    tc.dropout = a->dropout;
    tc.in_c = 1;
    tc.in_h = a->context;
    tc.in_w = 1;
    tc.head_hidden = -1;
    tc.head_out = a->embed_dim;
    tc.head_bn = 0;
    tc.whiten = 0;
    tc.seed = 0x54455854u;
    const int64_t B = a->B, D = a->embed_dim, T = a->context;
    ct_model im, tx;
    ct_status st;
    if ((st = ct_model_init(&im, &ic))) die(st, "image tower");
    if ((st = ct_model_init(&tx, &tc))) die(st, "text tower");
    if ((st = ct_model_prepare(&im, B)) || (st = ct_model_prepare(&tx, B))) die(st, "prepare");
    float s = logf(1.0f / 0.07f), ds = 0.0f;
    static const ct_tensor_info scale_info = {"logit_scale", 0, {0}, 0, 1, CT_TENSOR_NO_DECAY};
    ct_optim_config oc;
    ct_optim_config_default(&oc, CT_OPTIM_ADAMW);
    oc.weight_decay = 0.1f;
    const float lr = 5e-4f;
    ct_optim opt;
    if ((st = ct_optim_init(&opt, &oc, im.nparam_floats + tx.nparam_floats + 1))) die(st, "optim");
    const ct_optim_part parts[3] = {{im.param, im.grad, im.params, im.nparams, im.nparam_floats},
                                    {tx.param, tx.grad, tx.params, tx.nparams, tx.nparam_floats},
                                    {&s, &ds, &scale_info, 1, 1}}; /* the trainer's one AdamW over all three */

    const size_t px = (size_t)(3 * ic.in_h * ic.in_w), wsb = ct_clip_workspace_size(B, D);
    float *x = ct_alloc((size_t)B * px * sizeof(float));
    int32_t *ids = ct_alloc((size_t)(B * T) * sizeof(int32_t));
    float *dzi = ct_alloc((size_t)(B * D) * sizeof(float)), *dzt = ct_alloc((size_t)(B * D) * sizeof(float));
    void *ws = ct_alloc(wsb);
    if (!x || !ids || !dzi || !dzt || !ws) die(CT_ERR_NOMEM, "alloc");
    ct_rng r = ct_rng_make(ct_rng_key(1, 2, 3, 4));
    for (size_t i = 0; i < (size_t)B * px; i++) x[i] = ct_rng_normal(&r);
    for (size_t i = 0; i < (size_t)(B * T); i++) ids[i] = (int32_t)ct_rng_below(&r, (uint64_t)tc.vocab);
    const step_input in_i = {x, NULL}, in_t = {NULL, ids};

    const int n = a->warmup + a->steps;
    double *ts = calloc((size_t)n, sizeof(double)), *cs = calloc((size_t)n, sizeof(double));
    if (!ts || !cs) die(CT_ERR_NOMEM, "alloc");
    ct_loss_stats ls;
    for (int k = 0; k < n; k++) {
        double t0 = now(), c0 = cpu_now();
        im.dropout_step = tx.dropout_step = (uint64_t)k;
        if ((st = ct_model_forward(&im, x, B, 1, 1)) || (st = ct_model_forward_tokens(&tx, ids, NULL, B, 1, 1)))
            die(st, "forward");
        if ((st = ct_clip_loss(&ls, dzi, dzt, &ds, ct_model_embedding(&im), ct_model_embedding(&tx), s, B, D, ws, wsb)))
            die(st, "loss");
        ct_model_zero_grad(&im);
        ct_model_zero_grad(&tx);
        if ((st = ct_model_backward(&im, dzi)) || (st = ct_model_backward(&tx, dzt))) die(st, "backward");
        if ((st = ct_optim_step_parts(&opt, parts, 3, lr))) die(st, "optim step");
        s = ct_clip_clamp_scale(s);
        ts[k] = now() - t0;
        cs[k] = cpu_now() - c0;
    }
    double step_s = median(ts + a->warmup, a->steps), cpu_s = median(cs + a->warmup, a->steps);
    for (int k = 0; k < n; k++) {
        double t0 = now();
        if ((st = ct_model_forward(&im, x, B, 0, 1)) || (st = ct_model_forward_tokens(&tx, ids, NULL, B, 0, 1)))
            die(st, "eval forward");
        ts[k] = now() - t0;
    }
    double infer_s = median(ts + a->warmup, a->steps);
    char name[64];
    snprintf(name, sizeof name, "clip-cnn%d-text%d", ic.width, tc.width);
    printf("c %s threads %d train_img_s %.1f step_ms %.1f cpu_ms %.1f infer_img_s %.1f peak_rss_mib %.0f loss %.4f\n",
           name, ct_get_threads(), (double)B / step_s, 1e3 * step_s, 1e3 * cpu_s, (double)B / infer_s, peak_rss_mib(),
           ls.loss);
    printf("c %s arena_mib %.1f params %zu logit_scale %.4f\n", name,
           (double)(im.arena.cap + tx.arena.cap) / 1048576.0, im.nparam_floats + tx.nparam_floats + 1, s);

    if (a->profile) { /* one more step, tower by tower and layer type by layer type */
        double tfi[K_COUNT] = {0}, tbi[K_COUNT] = {0}, ffi[K_COUNT] = {0}, fbi[K_COUNT] = {0};
        double tft[K_COUNT] = {0}, tbt[K_COUNT] = {0}, fft[K_COUNT] = {0}, fbt[K_COUNT] = {0};
        profile_forward(&im, &in_i, B, tfi, ffi);
        profile_forward(&tx, &in_t, B, tft, fft);
        double t0 = pnow();
        if ((st = ct_clip_loss(&ls, dzi, dzt, &ds, ct_model_embedding(&im), ct_model_embedding(&tx), s, B, D, ws, wsb)))
            die(st, "loss");
        double t_loss = pnow() - t0;
        ct_model_zero_grad(&im);
        ct_model_zero_grad(&tx);
        profile_backward(&im, dzi, B, tbi, fbi);
        profile_backward(&tx, dzt, B, tbt, fbt);
        t0 = pnow();
        if ((st = ct_optim_step_parts(&opt, parts, 3, lr))) die(st, "optim step");
        s = ct_clip_clamp_scale(s);
        double t_opt = pnow() - t0, ti = 0, tt = 0;
        for (int k = 0; k < K_COUNT; k++) {
            ti += tfi[k] + tbi[k];
            tt += tft[k] + tbt[k];
        }
        double total = ti + tt + t_loss + t_opt;
        printf("profile clip step_ms %.1f image_ms %.1f (%.1f%%) text_ms %.1f (%.1f%%) loss_ms %.1f optim_ms %.1f\n",
               1e3 * total, 1e3 * ti, 100 * ti / total, 1e3 * tt, 100 * tt / total, 1e3 * t_loss, 1e3 * t_opt);
        profile_tower("image", &im, tfi, tbi, ffi, fbi, total);
        profile_tower("text", &tx, tft, tbt, fft, fbt, total);
    }
    free(ts);
    free(cs);
    ct_free(x); ct_free(ids); ct_free(dzi); ct_free(dzt); ct_free(ws);
    ct_optim_free(&opt);
    ct_model_free(&im);
    ct_model_free(&tx);
    return 0;
}

/* ---- main -------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    const char *model = "cnn";
    int width = 0, size = 0, steps = 10, warmup = 2, threads = 0, profile = 0, gemm = 0, recompute = 0, memory = 0;
    int depth = 0, heads = 0, context = 0, vocab = 0, patch = 0, text_width = 128, text_depth = 2, text_heads = 4;
    int embed_dim = 128;
    float dropout = -1.0f; /* -1: the model's default, 0.1 (transformer, vit) or 0 (clip) */
    int64_t B = 256;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--profile")) profile = 1;
        else if (!strcmp(a, "--cpu-clock")) use_cpu_clock = 1;
        else if (!strcmp(a, "--layers")) profile = show_layers = 1;
        else if (!strcmp(a, "--gemm")) gemm = 1;
        else if (!strcmp(a, "--recompute")) recompute = 1;
        else if (!strcmp(a, "--memory")) memory = 1;
        else if (v && !strcmp(a, "--model")) model = argv[++i];
        else if (v && !strcmp(a, "--width")) width = atoi(argv[++i]);
        else if (v && !strcmp(a, "--size")) size = atoi(argv[++i]);
        else if (v && !strcmp(a, "--batch")) B = atoll(argv[++i]);
        else if (v && !strcmp(a, "--steps")) steps = atoi(argv[++i]);
        else if (v && !strcmp(a, "--warmup")) warmup = atoi(argv[++i]);
        else if (v && !strcmp(a, "--threads")) threads = atoi(argv[++i]);
        else if (v && !strcmp(a, "--depth")) depth = atoi(argv[++i]);
        else if (v && !strcmp(a, "--heads")) heads = atoi(argv[++i]);
        else if (v && !strcmp(a, "--context")) context = atoi(argv[++i]);
        else if (v && !strcmp(a, "--vocab")) vocab = atoi(argv[++i]);
        else if (v && !strcmp(a, "--patch")) patch = atoi(argv[++i]);
        else if (v && !strcmp(a, "--dropout")) dropout = (float)atof(argv[++i]);
        else if (v && !strcmp(a, "--text-width")) text_width = atoi(argv[++i]);
        else if (v && !strcmp(a, "--text-depth")) text_depth = atoi(argv[++i]);
        else if (v && !strcmp(a, "--text-heads")) text_heads = atoi(argv[++i]);
        else if (v && !strcmp(a, "--embed-dim")) embed_dim = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_step [--model cnn|resnet18|transformer|vit|clip] [--width W] [--size S] "
                            "[--batch B] [--steps S] [--warmup K] [--threads T] [--profile] [--layers] [--cpu-clock] "
                            "[--gemm] [--recompute] [--memory] [--depth L] [--heads H] [--context T] [--vocab V] [--patch P] "
                            "[--dropout P] [--text-width C] [--text-depth L] [--text-heads H] [--embed-dim D]\n");
            return 2;
        }
    }
    if (steps < 1 || B < 2) {
        fprintf(stderr, "bench_step: need --steps >= 1 and --batch >= 2\n");
        return 2;
    }
    ct_set_threads(threads);
    if (gemm) {
        /* ct_gemm outside a parallel region splits rows over the threads; inside,
         * each thread runs its own single-threaded product (the conv layers' case) */
        double all = gemm_gflops(1024, 1024, 1024, 0), each = gemm_gflops(1024, 1024, 1024, 1);
        double conv = gemm_gflops(64, 1536, 288, 1);
        printf("gemm threads %d sgemm_1024_split_gflops %.1f sgemm_1024_per_thread_total_gflops %.1f "
               "sgemm_64x1536x288_per_thread_total_gflops %.1f fma_peak_gflops %.1f\n", ct_get_threads(), all, each,
               conv, fma_peak_gflops());
    }

    if (!strcmp(model, "clip")) {
        if (text_width < 1 || text_depth < 1 || text_heads < 1 || embed_dim < 1) {
            fprintf(stderr, "bench_step: --text-width, --text-depth, --text-heads and --embed-dim must be >= 1\n");
            return 2;
        }
        clip_args ca = {width, size, context > 0 ? context : 32, vocab > 0 ? vocab : 8192, text_width, text_depth,
                        text_heads, embed_dim, steps, warmup, profile, dropout >= 0 ? dropout : 0.0f, B};
        return bench_clip(&ca);
    }
    if (dropout < 0) dropout = 0.1f;
    ct_model_config cfg;
    ct_model_config_default(&cfg);
    ct_status st = ct_encoder_parse(model, &cfg.encoder);
    if (st) die(st, "model");
    const int text = cfg.encoder == CT_ENC_TRANSFORMER, tfm = text || cfg.encoder == CT_ENC_VIT;
    if (text) { /* the shapes (a) and (b) */
        cfg.width = 256; cfg.depth = 4; cfg.heads = 4; cfg.context = 32; cfg.vocab = 8192;
    } else if (tfm) {
        cfg.width = 192; cfg.depth = 6; cfg.heads = 3; cfg.patch = 4;
    }
    cfg.dropout = dropout;
    if (width > 0) cfg.width = width;
    if (size > 0) cfg.in_h = cfg.in_w = size;
    if (depth > 0) cfg.depth = depth;
    if (heads > 0) cfg.heads = heads;
    if (context > 0) cfg.context = context;
    if (vocab > 0) cfg.vocab = vocab;
    if (patch > 0) cfg.patch = patch;
    ct_model m;
    if ((st = ct_model_init(&m, &cfg))) die(st, "init");
    const int64_t N = 2 * B, D = ct_model_embed_dim(&m);
    const size_t img = text ? (size_t)cfg.context : (size_t)(cfg.in_c * cfg.in_h * cfg.in_w);
    if (recompute) { /* as contrast train --recompute */
        ct_model_recompute_convs(&m);
        ct_model_recompute_blocks(&m);
    }
    if (memory) {
        if ((st = ct_model_prepare(&m, N))) die(st, "prepare"); /* reserves, touches no page */
        printf("memory %s-%d batch %lld recompute %d arena_mib %.1f params_mib %.1f\n", ct_encoder_name(cfg.encoder),
               cfg.width, (long long)N, recompute, (double)m.arena.cap / 1048576.0,
               (double)m.nparam_floats * sizeof(float) / 1048576.0);
        ct_model_free(&m);
        return 0;
    }
    if ((st = ct_model_prepare(&m, N))) die(st, "prepare");
    ct_optim_config oc;
    const float lr = tfm ? 1e-3f : 0.3f;
    if (tfm) {
        ct_optim_config_default(&oc, CT_OPTIM_ADAMW);
        oc.weight_decay = 0.05f;
    } else {
        ct_optim_config_default(&oc, CT_OPTIM_LARS);
        oc.weight_decay = 1e-6f;
        oc.lars_eta = 0.02f;
    }
    ct_optim opt;
    if ((st = ct_optim_init(&opt, &oc, m.nparam_floats))) die(st, "optim");
    size_t wsb = ct_ntxent_workspace_size(B, D);
    void *ws = ct_alloc(wsb);
    float *dz = ct_alloc((size_t)(N * D) * sizeof(float));
    float *x = ct_alloc((size_t)N * img * sizeof(float));
    int32_t *ids = text ? ct_alloc((size_t)N * img * sizeof(int32_t)) : NULL;
    if (!ws || !dz || !x || (text && !ids)) die(CT_ERR_NOMEM, "alloc");
    ct_rng r = ct_rng_make(ct_rng_key(1, 2, 3, 4));
    for (size_t i = 0; i < (size_t)N * img; i++) x[i] = ct_rng_normal(&r);
    for (size_t i = 0; text && i < (size_t)N * img; i++) ids[i] = (int32_t)ct_rng_below(&r, (uint64_t)cfg.vocab);
    const step_input in = {text ? NULL : x, ids};

    double *ts = calloc((size_t)(steps + warmup), sizeof(double));
    double *cs = calloc((size_t)(steps + warmup), sizeof(double));
    ct_loss_stats ls;
    for (int s = 0; s < warmup + steps; s++) {
        double t0 = now(), c0 = cpu_now();
        m.dropout_step = (uint64_t)s;
        if ((st = forward(&m, &in, N, 1, 1))) die(st, "forward");
        if ((st = ct_ntxent_loss(&ls, dz, ct_model_embedding(&m), B, D, 0.5f, ws, wsb))) die(st, "loss");
        ct_model_zero_grad(&m);
        if ((st = ct_model_backward(&m, dz))) die(st, "backward");
        if ((st = ct_optim_step(&opt, m.param, m.grad, m.params, m.nparams, lr))) die(st, "optim step");
        ts[s] = now() - t0;
        cs[s] = cpu_now() - c0;
    }
    double step_s = median(ts + warmup, steps), cpu_s = median(cs + warmup, steps);
    for (int s = 0; s < warmup + steps; s++) {
        double t0 = now();
        if ((st = forward(&m, &in, N, 0, 0))) die(st, "eval forward");
        ts[s] = now() - t0;
    }
    double infer_s = median(ts + warmup, steps);
    char name[64];
    snprintf(name, sizeof name, "%s-%d", ct_encoder_name(cfg.encoder), cfg.width);
    printf("c %s threads %d train_img_s %.1f step_ms %.1f cpu_ms %.1f infer_img_s %.1f peak_rss_mib %.0f loss %.4f\n", name,
           ct_get_threads(), (double)B / step_s, 1e3 * step_s, 1e3 * cpu_s, (double)N / infer_s, peak_rss_mib(), ls.loss);
    if (tfm)
        printf("c %s arena_mib %.1f params %zu isa %s\n", name, (double)m.arena.cap / 1048576.0, m.nparam_floats,
#if defined(__AVX512F__)
               "avx512"
#elif defined(__AVX2__)
               "avx2"
#else
               "portable"
#endif
        );

    if (profile) {
        double t[K_COUNT] = {0}, fl[K_COUNT] = {0}, tf[K_COUNT] = {0}, ffl[K_COUNT] = {0};
        profile_forward(&m, &in, N, tf, ffl);
        double t0 = pnow();
        if ((st = ct_ntxent_loss(&ls, dz, ct_model_embedding(&m), B, D, 0.5f, ws, wsb))) die(st, "loss");
        t[K_LOSS] += pnow() - t0;
        ct_model_zero_grad(&m);
        profile_backward(&m, dz, N, t, fl);
        t0 = pnow();
        if ((st = ct_optim_step(&opt, m.param, m.grad, m.params, m.nparams, lr))) die(st, "optim step");
        t[K_OPTIM] += pnow() - t0;
        double total = 0;
        for (int k = 0; k < K_COUNT; k++) total += t[k] + tf[k];
        for (int k = 0; k < K_COUNT; k++) {
            if (t[k] + tf[k] == 0) continue;
            printf("profile %s %s fwd_ms %.1f bwd_ms %.1f share %.1f%%", name, kind_name[k], 1e3 * tf[k], 1e3 * t[k],
                   100.0 * (t[k] + tf[k]) / total);
            if (ffl[k] > 0) printf(" fwd_gflops %.1f bwd_gflops %.1f", ffl[k] / tf[k] * 1e-9, fl[k] / t[k] * 1e-9);
            printf("\n");
        }
    }
    free(ts);
    free(cs);
    ct_free(ws); ct_free(dz); ct_free(x); ct_free(ids);
    ct_optim_free(&opt);
    ct_model_free(&m);
    return 0;
}
