/* contrast.h: the public API of libcontrast, contrastive representation learning in C11.
 *
 * Usage guide (each module's header has its own contract comments):
 *   contrast/core.h   errors (ct_status + ct_errmsg), memory, arena, ct_gemm, RNG, threads
 *   contrast/nn.h     layer kernels: conv2d, batchnorm, linear, pooling, relu, dropout;
 *                     transformer layers: embeddings, LayerNorm, attention, GELU, token pooling
 *   contrast/model.h  models as node lists over one parameter buffer: CNN, ResNet-18, heads
 *   contrast/loss.h   objectives: NT-Xent/InfoNCE, SupCon, margin, triplet, MoCo, CLIP
 *   contrast/data.h   datasets (IDX, CIFAR, image folders), augmentation, loader
 *   contrast/captions.h  image-caption data: captions:DIR and the emoji set, held-out names
 *   contrast/optim.h  SGD, AdamW, LARS and schedules over flat buffers
 *   contrast/io.h     safetensors checkpoints, .npy, PNG
 *   contrast/eval.h   kNN, linear probe, retrieval, alignment/uniformity
 *   contrast/dist.h   data-parallel collectives over Open MPI (a world of one without)
 *   contrast/train.h  the trainer (SimCLR, MoCo, SupCon), checkpoints, evaluation of a model
 *   contrast/plot.h   PNG figures (training curves, embedding maps) and 2-D layouts (PCA, t-SNE)
 *   contrast/text.h   byte-level BPE tokenizer, text and pairs datasets, debian-descriptions
 * Every function that can fail returns ct_status; nothing here exits the process. */
#ifndef CONTRAST_H
#define CONTRAST_H

#include "contrast/core.h"
#include "contrast/nn.h"
#include "contrast/model.h"
#include "contrast/loss.h"
#include "contrast/data.h"
#include "contrast/captions.h"
#include "contrast/optim.h"
#include "contrast/io.h"
#include "contrast/eval.h"
#include "contrast/dist.h"
#include "contrast/train.h"
#include "contrast/plot.h"
#include "contrast/text.h"
#include "contrast/clip.h"

#endif
