/* contrast/data.h: (being written) */
#ifndef CONTRAST_DATA_H
#define CONTRAST_DATA_H
#include "contrast/core.h"
#endif
