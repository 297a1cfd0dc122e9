/* contrast/nn.h: (being written) */
#ifndef CONTRAST_NN_H
#define CONTRAST_NN_H
#include "contrast/core.h"
#endif
