/* contrast/loss.h: (being written) */
#ifndef CONTRAST_LOSS_H
#define CONTRAST_LOSS_H
#include "contrast/core.h"
#endif
