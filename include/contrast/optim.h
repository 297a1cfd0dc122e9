/* contrast/optim.h: (being written) */
#ifndef CONTRAST_OPTIM_H
#define CONTRAST_OPTIM_H
#include "contrast/core.h"
#endif
