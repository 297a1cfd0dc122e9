/* abi.c: the layout of the public structs that bindings mirror field by field
 * (python/contrast mirrors them with ctypes). A binding compares its own offsets
 * with these before it passes a struct across, so a header change that moves a
 * field fails loudly instead of writing into the wrong one. */
#include "contrast/captions.h"
#include "contrast/loss.h"
#include "contrast/text.h"
#include "contrast/train.h"

#include <stddef.h>
#include <string.h>

typedef struct {
    const char *type, *field; /* field NULL: the row gives sizeof(type) */
    size_t value;
} abi_row;

#define SIZE(T) {#T, NULL, sizeof(T)}
#define FIELD(T, f) {#T, #f, offsetof(T, f)}

static const abi_row abi_rows[] = {
    SIZE(ct_model_config),
    FIELD(ct_model_config, encoder), FIELD(ct_model_config, width), FIELD(ct_model_config, last_width),
    FIELD(ct_model_config, in_c), FIELD(ct_model_config, in_h), FIELD(ct_model_config, in_w),
    FIELD(ct_model_config, head_hidden), FIELD(ct_model_config, head_out), FIELD(ct_model_config, head_bn),
    FIELD(ct_model_config, whiten), FIELD(ct_model_config, seed),
    FIELD(ct_model_config, depth), FIELD(ct_model_config, heads), FIELD(ct_model_config, patch),
    FIELD(ct_model_config, vocab), FIELD(ct_model_config, context), FIELD(ct_model_config, causal),
    FIELD(ct_model_config, dropout), FIELD(ct_model_config, pool),

    SIZE(ct_optim_config),
    FIELD(ct_optim_config, type), FIELD(ct_optim_config, momentum), FIELD(ct_optim_config, nesterov),
    FIELD(ct_optim_config, weight_decay), FIELD(ct_optim_config, beta1), FIELD(ct_optim_config, beta2),
    FIELD(ct_optim_config, eps), FIELD(ct_optim_config, lars_eta), FIELD(ct_optim_config, lars_eps),

    SIZE(ct_train_config),
    FIELD(ct_train_config, method), FIELD(ct_train_config, data), FIELD(ct_train_config, augment),
    FIELD(ct_train_config, view_size), FIELD(ct_train_config, local_crops), FIELD(ct_train_config, local_size),
    FIELD(ct_train_config, local_augment), FIELD(ct_train_config, model), FIELD(ct_train_config, optim),
    FIELD(ct_train_config, epochs), FIELD(ct_train_config, batch), FIELD(ct_train_config, lr),
    FIELD(ct_train_config, warmup_epochs), FIELD(ct_train_config, final_lr_frac),
    FIELD(ct_train_config, temperature), FIELD(ct_train_config, seed), FIELD(ct_train_config, threads),
    FIELD(ct_train_config, loader_threads), FIELD(ct_train_config, limit), FIELD(ct_train_config, eval_every),
    FIELD(ct_train_config, knn_k), FIELD(ct_train_config, knn_t), FIELD(ct_train_config, final_probe),
    FIELD(ct_train_config, moco_m), FIELD(ct_train_config, moco_k), FIELD(ct_train_config, stop_after),
    FIELD(ct_train_config, sync_bn), FIELD(ct_train_config, recompute), FIELD(ct_train_config, dist_check),
    FIELD(ct_train_config, symmetric),
    FIELD(ct_train_config, out), FIELD(ct_train_config, overwrite), FIELD(ct_train_config, resume),
    FIELD(ct_train_config, resume_allow_changes), FIELD(ct_train_config, on_event),
    FIELD(ct_train_config, event_ctx),

    SIZE(ct_train_event),
    FIELD(ct_train_event, kind), FIELD(ct_train_event, epoch), FIELD(ct_train_event, epochs),
    FIELD(ct_train_event, step), FIELD(ct_train_event, batch), FIELD(ct_train_event, batches),
    FIELD(ct_train_event, loss), FIELD(ct_train_event, top1), FIELD(ct_train_event, images_per_s),
    FIELD(ct_train_event, seconds), FIELD(ct_train_event, eta_s), FIELD(ct_train_event, knn_top1),
    FIELD(ct_train_event, path), FIELD(ct_train_event, message),

    SIZE(ct_train_result),
    FIELD(ct_train_result, epochs_done), FIELD(ct_train_result, steps), FIELD(ct_train_result, final_loss),
    FIELD(ct_train_result, final_top1), FIELD(ct_train_result, knn_top1), FIELD(ct_train_result, probe_top1),
    FIELD(ct_train_result, knn_top1_raw), FIELD(ct_train_result, r1),
    FIELD(ct_train_result, r10), FIELD(ct_train_result, mrr10), FIELD(ct_train_result, seconds), FIELD(ct_train_result, arena_bytes),
    FIELD(ct_train_result, local_arena_bytes), FIELD(ct_train_result, out),

    SIZE(ct_loss_stats),
    FIELD(ct_loss_stats, loss), FIELD(ct_loss_stats, top1), FIELD(ct_loss_stats, pos_sim),
    FIELD(ct_loss_stats, neg_sim), FIELD(ct_loss_stats, align), FIELD(ct_loss_stats, uniform),
    FIELD(ct_loss_stats, active), FIELD(ct_loss_stats, count),

    SIZE(ct_pair),
    FIELD(ct_pair, a), FIELD(ct_pair, b), FIELD(ct_pair, same),

    SIZE(ct_tokenizer_opts),
    FIELD(ct_tokenizer_opts, vocab_size),

    SIZE(ct_text_dataset),
    FIELD(ct_text_dataset, ntexts), FIELD(ct_text_dataset, text), FIELD(ct_text_dataset, len),
    FIELD(ct_text_dataset, uniq), FIELD(ct_text_dataset, npairs), FIELD(ct_text_dataset, anchor),
    FIELD(ct_text_dataset, positive), FIELD(ct_text_dataset, label), FIELD(ct_text_dataset, nlabels),
    FIELD(ct_text_dataset, label_name), FIELD(ct_text_dataset, name), FIELD(ct_text_dataset, pool),

    SIZE(ct_dataset),
    FIELD(ct_dataset, n), FIELD(ct_dataset, c), FIELD(ct_dataset, h), FIELD(ct_dataset, w),
    FIELD(ct_dataset, images), FIELD(ct_dataset, labels), FIELD(ct_dataset, coarse_labels),
    FIELD(ct_dataset, num_classes), FIELD(ct_dataset, name), FIELD(ct_dataset, mean), FIELD(ct_dataset, std),

    SIZE(ct_caption_dataset),
    FIELD(ct_caption_dataset, img), FIELD(ct_caption_dataset, caption_start), FIELD(ct_caption_dataset, captions),
    FIELD(ct_caption_dataset, class_names), FIELD(ct_caption_dataset, files), FIELD(ct_caption_dataset, train),

    SIZE(ct_model), /* opaque to bindings: only its size, to allocate one */
};

int64_t ct_abi_layout(const char *type, const char *field) {
    if (!type) return -1;
    for (size_t i = 0; i < sizeof abi_rows / sizeof abi_rows[0]; i++) {
        const abi_row *r = &abi_rows[i];
        if (strcmp(r->type, type)) continue;
        if (!field ? !r->field : r->field && !strcmp(r->field, field)) return (int64_t)r->value;
    }
    return -1;
}

int ct_abi_fields(const char *type, const char **names, int cap) {
    int n = 0;
    for (size_t i = 0; type && i < sizeof abi_rows / sizeof abi_rows[0]; i++)
        if (!strcmp(abi_rows[i].type, type) && abi_rows[i].field) {
            if (n < cap) names[n] = abi_rows[i].field;
            n++;
        }
    return n;
}
