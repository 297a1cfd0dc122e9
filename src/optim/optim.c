/* optim.c: SGD (momentum, Nesterov), AdamW and LARS over flat buffers, and the
 * warm-up + cosine learning-rate schedule.
 *
 * Element-wise arithmetic is done in float in the same order as PyTorch's
 * single-tensor kernels, so a step matches torch.optim to float rounding. The
 * LARS norms are summed in double over fixed blocks combined in a fixed order,
 * so the result does not depend on the number of threads. */
#include "contrast/optim.h"

#include <math.h>
#include <string.h>

/* Element loops shorter than this stay on one thread: forking costs more. */
#define PAR_MIN 32768
#define PI 3.14159265358979323846
/* Norm reduction: at most this many partial sums per tensor, blocks of at least
 * NORM_BLOCK elements; both fixed, so the summation order is too. */
#define NORM_PARTS 64
#define NORM_BLOCK 16384

void ct_optim_config_default(ct_optim_config *cfg, ct_optim_type type) {
    memset(cfg, 0, sizeof *cfg);
    cfg->type = type;
    cfg->momentum = 0.9f;
    cfg->nesterov = 0;
    cfg->weight_decay = type == CT_OPTIM_ADAMW ? 0.01f : 0.0f;
    cfg->beta1 = 0.9f;
    cfg->beta2 = 0.999f;
    cfg->eps = 1e-8f;
    cfg->lars_eta = 0.001f;
    cfg->lars_eps = 1e-8f;
}

const char *ct_optim_type_name(ct_optim_type type) {
    switch (type) {
    case CT_OPTIM_SGD: return "sgd";
    case CT_OPTIM_ADAMW: return "adamw";
    case CT_OPTIM_LARS: return "lars";
    }
    return NULL;
}

int ct_optim_type_parse(const char *name) {
    if (!name) return -1;
    if (!strcmp(name, "sgd")) return CT_OPTIM_SGD;
    if (!strcmp(name, "adamw")) return CT_OPTIM_ADAMW;
    if (!strcmp(name, "lars")) return CT_OPTIM_LARS;
    return -1;
}

static int finite_nonneg(float x) { return isfinite(x) && x >= 0.0f; }

ct_status ct_optim_init(ct_optim *o, const ct_optim_config *cfg, size_t nparams) {
    memset(o, 0, sizeof *o);
    if (!cfg) return ct_error(CT_ERR_ARG, "optimizer: no configuration");
    if (!ct_optim_type_name(cfg->type)) return ct_error(CT_ERR_ARG, "optimizer: unknown type %d", (int)cfg->type);
    if (nparams == 0) return ct_error(CT_ERR_ARG, "optimizer: no parameters");
    if (!finite_nonneg(cfg->momentum) || cfg->momentum >= 1.0f)
        return ct_error(CT_ERR_ARG, "optimizer: momentum %g outside [0, 1)", cfg->momentum);
    if (cfg->nesterov && cfg->momentum <= 0.0f)
        return ct_error(CT_ERR_ARG, "optimizer: Nesterov needs momentum > 0");
    if (!finite_nonneg(cfg->weight_decay))
        return ct_error(CT_ERR_ARG, "optimizer: weight decay %g must be finite and >= 0", cfg->weight_decay);
    if (cfg->type == CT_OPTIM_ADAMW) {
        if (!finite_nonneg(cfg->beta1) || cfg->beta1 >= 1.0f || !finite_nonneg(cfg->beta2) || cfg->beta2 >= 1.0f)
            return ct_error(CT_ERR_ARG, "optimizer: AdamW betas (%g, %g) outside [0, 1)", cfg->beta1, cfg->beta2);
        if (!(isfinite(cfg->eps) && cfg->eps > 0.0f))
            return ct_error(CT_ERR_ARG, "optimizer: AdamW eps %g must be > 0", cfg->eps);
    }
    if (cfg->type == CT_OPTIM_LARS && (!finite_nonneg(cfg->lars_eta) || !finite_nonneg(cfg->lars_eps)))
        return ct_error(CT_ERR_ARG, "optimizer: LARS eta %g / eps %g must be finite and >= 0", cfg->lars_eta,
                        cfg->lars_eps);
    size_t bytes;
    if (ct_size_mul(nparams, sizeof(float), &bytes))
        return ct_error(CT_ERR_NOMEM, "optimizer: %zu parameters overflow", nparams);
    o->cfg = *cfg;
    o->nparams = nparams;
    int need_m = cfg->type == CT_OPTIM_ADAMW || cfg->momentum > 0.0f;
    if (need_m && !(o->m = ct_alloc(bytes))) goto nomem;
    if (cfg->type == CT_OPTIM_ADAMW && !(o->v = ct_alloc(bytes))) goto nomem;
    return CT_OK;
nomem:
    ct_optim_free(o);
    return ct_error(CT_ERR_NOMEM, "optimizer: cannot allocate state for %zu parameters", nparams);
}

void ct_optim_free(ct_optim *o) {
    ct_free(o->m);
    ct_free(o->v);
    memset(o, 0, sizeof *o);
}

int ct_optim_state(ct_optim *o, ct_optim_buffer *out, int cap) {
    int n = 0;
    if (o->m) {
        if (n < cap) out[n] = (ct_optim_buffer){"optim.m", o->m, o->nparams};
        n++;
    }
    if (o->v) {
        if (n < cap) out[n] = (ct_optim_buffer){"optim.v", o->v, o->nparams};
        n++;
    }
    return n;
}

/* Sum of squares of x[0..n) in double, blocked so the order is fixed. */
static double sumsq(const float *x, size_t n) {
    size_t blk = (n + NORM_PARTS - 1) / NORM_PARTS;
    if (blk < NORM_BLOCK) blk = NORM_BLOCK;
    size_t nb = (n + blk - 1) / blk;
    double part[NORM_PARTS];
#pragma omp parallel for schedule(static) if (nb > 1)
    for (size_t b = 0; b < nb; b++) {
        size_t i0 = b * blk, i1 = i0 + blk < n ? i0 + blk : n;
        double s = 0.0;
        for (size_t i = i0; i < i1; i++) s += (double)x[i] * x[i];
        part[b] = s;
    }
    double s = 0.0;
    for (size_t b = 0; b < nb; b++) s += part[b];
    return s;
}

/* SGD / LARS update of one tensor. `scale` multiplies (g + wd*w) (the LARS
 * trust ratio, 1 for plain SGD); momentum buffer m may be NULL when mu == 0. */
static void sgd_tensor(float *w, const float *g, float *m, size_t n, float lr, float wd, float scale,
                       float mu, int nesterov) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float d = g[i];
        if (wd != 0.0f) d = d + wd * w[i];
        if (scale != 1.0f) d = d * scale;
        if (m) {
            float b = mu * m[i] + d;
            m[i] = b;
            d = nesterov ? d + mu * b : b;
        }
        w[i] = w[i] - lr * d;
    }
}

static void adamw_tensor(float *w, const float *g, float *m, float *v, size_t n, float lr, float wd,
                         float b1, float b2, float eps, float step_size, float bc2_sqrt) {
    float shrink = 1.0f - lr * wd;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float wi = wd != 0.0f ? w[i] * shrink : w[i];
        float mi = b1 * m[i] + (1.0f - b1) * g[i];
        float vi = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        w[i] = wi - step_size * (mi / denom);
    }
}

ct_status ct_optim_step(ct_optim *o, float *params, const float *grads, const ct_tensor_info *tab,
                        int ntab, float lr) {
    if (!o->nparams) return ct_error(CT_ERR_STATE, "optimizer: step before init");
    if (!isfinite(lr) || lr < 0.0f) return ct_error(CT_ERR_ARG, "optimizer: learning rate %g", lr);
    ct_tensor_info whole;
    if (!tab) {
        memset(&whole, 0, sizeof whole);
        strcpy(whole.name, "(all parameters)");
        whole.numel = o->nparams;
        tab = &whole;
        ntab = 1;
    }
    /* Validate the whole table first so a bad entry never leaves a half-applied step. */
    for (int t = 0; t < ntab; t++) {
        size_t end;
        if (ct_size_add(tab[t].offset, tab[t].numel, &end) || end > o->nparams)
            return ct_error(CT_ERR_ARG, "optimizer: tensor %s [%zu, +%zu) outside the %zu-float buffer",
                            tab[t].name, tab[t].offset, tab[t].numel, o->nparams);
    }
    const ct_optim_config *c = &o->cfg;
    /* LARS trust ratios first, so a non-finite gradient is reported before any change. */
    if (c->type == CT_OPTIM_LARS) {
        for (int t = 0; t < ntab; t++) {
            double gn = sumsq(grads + tab[t].offset, tab[t].numel);
            if (!isfinite(gn))
                return ct_error(CT_ERR_NUMERIC, "optimizer: gradient of %s is not finite", tab[t].name);
        }
    }
    int64_t t_adam = o->step + 1;
    /* bias corrections in double, as PyTorch computes beta**step in Python floats */
    double bc1 = 1.0 - pow((double)c->beta1, (double)t_adam);
    double bc2 = 1.0 - pow((double)c->beta2, (double)t_adam);
    for (int t = 0; t < ntab; t++) {
        size_t off = tab[t].offset, n = tab[t].numel;
        if (n == 0) continue;
        float *w = params + off;
        const float *g = grads + off;
        int no_decay = (tab[t].flags & CT_TENSOR_NO_DECAY) != 0;
        float wd = no_decay ? 0.0f : c->weight_decay;
        switch (c->type) {
        case CT_OPTIM_SGD:
            sgd_tensor(w, g, o->m ? o->m + off : NULL, n, lr, wd, 1.0f, c->momentum, c->nesterov);
            break;
        case CT_OPTIM_LARS: {
            float scale = 1.0f;
            float lwd = 0.0f; /* solo-learn: excluded tensors (and zero norms) get neither decay nor scaling */
            if (!no_decay) {
                double wn = sqrt(sumsq(w, n)), gn = sqrt(sumsq(g, n));
                if (wn > 0.0 && gn > 0.0) {
                    scale = (float)(c->lars_eta * wn / (gn + wn * c->weight_decay + c->lars_eps));
                    lwd = c->weight_decay;
                }
            }
            sgd_tensor(w, g, o->m ? o->m + off : NULL, n, lr, lwd, scale, c->momentum, c->nesterov);
            break;
        }
        case CT_OPTIM_ADAMW:
            adamw_tensor(w, g, o->m + off, o->v + off, n, lr, wd, c->beta1, c->beta2, c->eps,
                         (float)(lr / bc1), (float)sqrt(bc2));
            break;
        }
    }
    o->step++;
    return CT_OK;
}

ct_status ct_optim_step_parts(ct_optim *o, const ct_optim_part *parts, int nparts, float lr) {
    size_t off = 0;
    for (int k = 0; k < nparts; k++) off += parts[k].n;
    if (off != o->nparams)
        return ct_error(CT_ERR_ARG, "optim: the parts hold %zu floats, the state %zu", off, o->nparams);
    off = 0;
    for (int k = 0; k < nparts; k++) {
        ct_optim v = *o; /* a view of this part's slice of the state */
        v.nparams = parts[k].n;
        if (v.m) v.m += off;
        if (v.v) v.v += off;
        ct_status st = ct_optim_step(&v, parts[k].params, parts[k].grads, parts[k].tab, parts[k].ntab, lr);
        if (st) return st;
        off += parts[k].n;
    }
    o->step++;
    return CT_OK;
}

float ct_lr_schedule(float base_lr, int64_t step, int64_t warmup_steps, int64_t total_steps,
                     float final_lr_fraction) {
    if (step < 0) step = 0;
    if (warmup_steps > 0 && step < warmup_steps)
        return (float)((double)base_lr * (double)(step + 1) / (double)warmup_steps);
    int64_t w = warmup_steps > 0 ? warmup_steps : 0;
    int64_t span = total_steps - 1 - w;
    if (span <= 0) return base_lr;
    double p = (double)(step - w) / (double)span;
    if (p > 1.0) p = 1.0;
    double fin = (double)base_lr * final_lr_fraction;
    return (float)(fin + ((double)base_lr - fin) * 0.5 * (1.0 + cos(PI * p)));
}
