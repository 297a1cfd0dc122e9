/* error.c: per-thread error messages, so library calls report what went wrong
 * without printing or exiting (the CLI decides what to do with the message). */
#include "contrast/core.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/* Room for two whole paths (a rename names its source and target) and the reason. */
#define MSG_CAP (2 * PATH_MAX + 1024)
/* A longer message keeps this much of its head and the rest of its tail around the
 * marker: the reason, which comes last ("PATH: cannot open: No such file"), and the
 * start of the path both survive. */
#define MSG_HEAD 1024
static const char cut_mark[] = " [...] ";

static _Thread_local char g_msg[MSG_CAP];

ct_status ct_error(ct_status code, const char *fmt, ...) {
    /* formatted apart from g_msg, so an argument may be ct_errmsg() itself (context
     * added to an inner error) */
    char buf[MSG_CAP];
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int len = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *full = len >= (int)sizeof buf ? malloc((size_t)len + 1) : NULL;
    if (full) {
        vsnprintf(full, (size_t)len + 1, fmt, ap2);
        size_t tail = sizeof buf - 1 - MSG_HEAD - (sizeof cut_mark - 1);
        memcpy(buf + MSG_HEAD, cut_mark, sizeof cut_mark - 1);
        memcpy(buf + MSG_HEAD + sizeof cut_mark - 1, full + (size_t)len - tail, tail + 1);
        free(full);
    } /* else it fitted, or (no memory for the long one) keeps its head */
    va_end(ap2);
    memcpy(g_msg, buf, strlen(buf) + 1);
    return code;
}

const char *ct_errmsg(void) { return g_msg; }

void ct_clear_error(void) { g_msg[0] = '\0'; }

const char *ct_status_name(ct_status s) {
    switch (s) {
    case CT_OK: return "ok";
    case CT_ERR_ARG: return "bad argument";
    case CT_ERR_IO: return "I/O error";
    case CT_ERR_FORMAT: return "bad format";
    case CT_ERR_NOMEM: return "out of memory";
    case CT_ERR_NUMERIC: return "numeric error";
    case CT_ERR_STATE: return "bad state";
    }
    return "unknown";
}
