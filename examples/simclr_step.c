/* simclr_step.c: the SimCLR training loop, written against the installed library.
 *
 *   cc simclr_step.c $(pkg-config --cflags --libs contrast) -o simclr_step
 *   ./simclr_step [STEPS]            (Fashion-MNIST from Debian's dataset-fashion-mnist)
 *
 * Each step: the loader hands two augmented views of a batch, the model maps them
 * through encoder and head to z, NT-Xent gives the loss and dL/dz, backward fills
 * the gradient buffer, and LARS updates the parameter buffer. `contrast train` does
 * the same with checkpoints, metrics, MPI and evaluation around it (src/train). */
#include <contrast.h>

#include <stdio.h>
#include <stdlib.h>

#define CHECK(call)                                                            \
    do {                                                                       \
        if ((call) != CT_OK) {                                                 \
            fprintf(stderr, "simclr_step: %s\n", ct_errmsg());                 \
            return 1;                                                          \
        }                                                                      \
    } while (0)

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 20;
    const int64_t B = 64; /* samples per step; the model sees 2B views */

    /* 1. data: the training split, the first 4096 images, SimCLR's augmentations */
    ct_dataset ds;
    CHECK(ct_dataset_load(&ds, "fashion-mnist", 1));
    ct_dataset_limit(&ds, 4096);
    ct_augment aug;
    ct_augment_for_dataset(&aug, &ds);
    ct_loader loader;
    CHECK(ct_loader_init(&loader, &ds, &aug, B, 2, 1, 42, 2));

    /* 2. model: the default CNN encoder + projection head, for 28x28 gray images */
    ct_model_config mc;
    ct_model_config_default(&mc);
    mc.in_c = ds.c, mc.in_h = ds.h, mc.in_w = ds.w;
    ct_model m;
    CHECK(ct_model_init(&m, &mc));
    CHECK(ct_model_prepare(&m, 2 * B));
    int64_t D = ct_model_embed_dim(&m);

    /* 3. objective workspace and the gradient of the loss w.r.t. z */
    size_t ws_bytes = ct_ntxent_workspace_size(B, D);
    void *ws = ct_alloc(ws_bytes); /* 64-byte aligned, as the kernels need */
    float *dz = malloc(sizeof(float) * (size_t)(2 * B * D));

    /* 4. optimizer: LARS over the one parameter buffer, per-tensor rules from the table */
    ct_optim_config oc;
    ct_optim_config_default(&oc, CT_OPTIM_LARS);
    oc.weight_decay = 1e-6f;
    ct_optim opt;
    CHECK(ct_optim_init(&opt, &oc, m.nparam_floats));

    CHECK(ct_loader_start_epoch(&loader, 0));
    for (int step = 0; step < steps && step < loader.n_batches; step++) {
        ct_batch *b;
        CHECK(ct_loader_next(&loader, &b));
        CHECK(ct_model_forward(&m, b->x, 2 * b->n, 1, 1)); /* training mode, through the head */
        ct_loss_stats st;
        CHECK(ct_ntxent_loss(&st, dz, ct_model_embedding(&m), b->n, D, 0.1f, ws, ws_bytes));
        ct_model_zero_grad(&m);
        CHECK(ct_model_backward(&m, dz));
        float lr = ct_lr_schedule(1.0f, step, 5, steps, 0.0f);
        CHECK(ct_optim_step(&opt, m.param, m.grad, m.params, m.nparams, lr));
        printf("step %2d  loss %.4f  top-1 %.3f  lr %.3f\n", step, st.loss, st.top1, lr);
    }

    ct_optim_free(&opt);
    free(dz);
    ct_free(ws);
    ct_model_free(&m);
    ct_loader_free(&loader);
    ct_dataset_free(&ds);
    return 0;
}
