/* contrast/optim.h: optimizers and learning-rate schedules over flat parameter buffers.
 *
 * A model keeps its parameters in one float buffer and its gradients in a second
 * with the same layout; the optimizer keeps its moments in buffers of that layout
 * too, so a step is a few passes over contiguous memory. Per-tensor rules come from
 * the model's ct_tensor_info table: tensors flagged CT_TENSOR_NO_DECAY (biases and
 * BatchNorm affine parameters) get no weight decay and, for LARS, no trust-ratio
 * adaptation, as SimCLR does.
 *
 * Semantics follow PyTorch exactly (tests/test_optim.c compares against steps
 * dumped by tests/reference/make_optim_reference.py):
 *   SGD    torch.optim.SGD, dampening 0: d = g + wd*w; m = mu*m + d;
 *          d = nesterov ? d + mu*m : m; w -= lr*d
 *   AdamW  torch.optim.AdamW: w *= 1 - lr*wd; m = b1*m + (1-b1)*g;
 *          v = b2*v + (1-b2)*g^2; w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 *   LARS   solo-learn / SimCLR: for adapted tensors with ||w|| > 0 and ||g|| > 0,
 *          d = eta*||w||/(||g|| + wd*||w|| + lars_eps) * (g + wd*w), else d = g;
 *          then the SGD momentum (and optional Nesterov) update above without decay.
 *
 * Usage:
 *   ct_optim_config cfg; ct_optim_config_default(&cfg, CT_OPTIM_LARS);
 *   cfg.weight_decay = 1e-6f;
 *   ct_optim opt; ct_optim_init(&opt, &cfg, nparams);
 *   for each step s:
 *       float lr = ct_lr_schedule(base_lr, s, warmup, total, 0.0f);
 *       ct_optim_step(&opt, params, grads, table, ntable, lr);
 *   ct_optim_free(&opt);
 * Checkpoints save the buffers listed by ct_optim_state() and the step counter.
 */
#ifndef CONTRAST_OPTIM_H
#define CONTRAST_OPTIM_H
#include "contrast/core.h"

#ifdef __cplusplus
extern "C" {
#endif
CT_BEGIN_API

typedef enum { CT_OPTIM_SGD = 0, CT_OPTIM_ADAMW = 1, CT_OPTIM_LARS = 2 } ct_optim_type;

typedef struct {
    ct_optim_type type;
    float momentum;      /* SGD, LARS: heavy-ball coefficient mu (0 = none)       default 0.9   */
    int nesterov;        /* SGD, LARS: Nesterov momentum (needs momentum > 0)     default 0     */
    float weight_decay;  /* all: L2 for SGD/LARS, decoupled for AdamW             default 0     */
    float beta1, beta2;  /* AdamW moment decay rates                              0.9, 0.999    */
    float eps;           /* AdamW denominator epsilon                             1e-8          */
    float lars_eta;      /* LARS trust coefficient (SimCLR, solo-learn)           0.001         */
    float lars_eps;      /* LARS denominator epsilon (solo-learn)                 1e-8          */
} ct_optim_config;

/* Fills the defaults listed above for `type` (the learning rate is per step, see
 * ct_optim_step). AdamW defaults weight_decay to 0.01 like torch.optim.AdamW. */
void ct_optim_config_default(ct_optim_config *cfg, ct_optim_type type);
/* "sgd", "adamw", "lars" (NULL for an unknown type) and the inverse (-1 if unknown). */
const char *ct_optim_type_name(ct_optim_type type);
int ct_optim_type_parse(const char *name);

typedef struct {
    ct_optim_config cfg;
    size_t nparams;  /* floats in the parameter buffer                                    */
    float *m;        /* (nparams) momentum buffer (SGD/LARS) or first moment (AdamW);
                        NULL for SGD without momentum                                     */
    float *v;        /* (nparams) second moment, AdamW only, else NULL                    */
    int64_t step;    /* steps taken so far; AdamW's bias correction uses step + 1         */
} ct_optim;

/* Validates `cfg` (finite, non-negative rates, betas in [0,1), nesterov needs
 * momentum) and allocates zeroed state for `nparams` floats, once: nothing is
 * allocated in ct_optim_step. On failure `o` holds no memory. */
ct_status ct_optim_init(ct_optim *o, const ct_optim_config *cfg, size_t nparams);
void ct_optim_free(ct_optim *o);

/* One update, in place on params, with learning rate `lr` (from ct_lr_schedule).
 *   params: (nparams) updated in place
 *   grads:  (nparams) read only
 *   tab:    (ntab) tensors to update; each must lie inside the buffer. Tensors not
 *           listed are left untouched. tab == NULL treats the whole buffer as one
 *           tensor with flags 0.
 * Deterministic: every tensor's norms are summed in one fixed order whatever the
 * thread count. Returns CT_ERR_ARG (params untouched) for a table entry outside
 * the buffer; for LARS, CT_ERR_NUMERIC (params untouched) if a gradient is not
 * finite. SGD and AdamW do not scan for NaN: the trainer checks its loss. */
ct_status ct_optim_step(ct_optim *o, float *params, const float *grads, const ct_tensor_info *tab,
                        int ntab, float lr);

/* One update of several parameter buffers under one optimizer state laid end to end
 * (o->nparams = the sum of the parts' n; part k's moments follow part k-1's): the
 * same as ct_optim_step over their concatenation, since every rule works per element
 * or per tensor. o->step advances once. E.g. CLIP's [image tower | text tower | scale]. */
typedef struct {
    float *params;
    const float *grads;
    const ct_tensor_info *tab;
    int ntab;
    size_t n;  /* floats of this part */
} ct_optim_part;
ct_status ct_optim_step_parts(ct_optim *o, const ct_optim_part *parts, int nparts, float lr);

/* The state buffers a checkpoint must save to resume exactly, with stable names
 * ("optim.m", "optim.v"); each has o->nparams floats and the layout of the
 * parameter buffer. Writes up to `cap` entries and returns how many exist (0..2).
 * Save o->step alongside (e.g. in the checkpoint metadata). */
typedef struct {
    const char *name;
    float *data;
    size_t numel;
} ct_optim_buffer;
int ct_optim_state(ct_optim *o, ct_optim_buffer *out, int cap);

/* Linear warm-up then cosine decay, evaluated at 0-based `step`:
 *   step < warmup_steps:  base_lr * (step + 1) / warmup_steps   (the first step is not wasted at 0)
 *   then cosine from base_lr down to final = base_lr * final_lr_fraction, reached at
 *   step == total_steps - 1 and held afterwards:
 *   lr = final + (base_lr - final) * 0.5 * (1 + cos(pi * p)),
 *   p = (step - warmup_steps) / (total_steps - 1 - warmup_steps)  clamped to [0, 1].
 * warmup_steps <= 0 means no warm-up; total_steps <= warmup_steps + 1 means constant
 * base_lr after warm-up. Never negative for base_lr >= 0 and fraction in [0, 1]. */
float ct_lr_schedule(float base_lr, int64_t step, int64_t warmup_steps, int64_t total_steps,
                     float final_lr_fraction);

CT_END_API
#ifdef __cplusplus
}
#endif
#endif
