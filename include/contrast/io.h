/* contrast/io.h: (being written) */
#ifndef CONTRAST_IO_H
#define CONTRAST_IO_H
#include "contrast/core.h"
#endif
