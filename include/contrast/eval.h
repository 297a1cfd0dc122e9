/* contrast/eval.h: (being written) */
#ifndef CONTRAST_EVAL_H
#define CONTRAST_EVAL_H
#include "contrast/core.h"
#endif
