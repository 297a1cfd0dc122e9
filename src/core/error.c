/* error.c: per-thread error messages, so library calls report what went wrong
 * without printing or exiting (the CLI decides what to do with the message). */
#include "contrast/core.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char g_msg[1024];

ct_status ct_error(ct_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
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
