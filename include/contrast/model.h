/* contrast/model.h: (being written) */
#ifndef CONTRAST_MODEL_H
#define CONTRAST_MODEL_H
#include "contrast/core.h"
#endif
