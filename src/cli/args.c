/* args.c: the option parser behind every subcommand. */
#include "cli.h"

#include "contrast.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void show_default(char *buf, size_t cap, const cli_opt *o) {
    switch (o->type) {
    case OPT_INT: snprintf(buf, cap, "%d", *(int *)o->dst); break;
    case OPT_I64: snprintf(buf, cap, "%lld", (long long)*(int64_t *)o->dst); break;
    case OPT_U64: snprintf(buf, cap, "%llu", (unsigned long long)*(uint64_t *)o->dst); break;
    case OPT_FLOAT: snprintf(buf, cap, "%g", *(float *)o->dst); break;
    case OPT_STR: snprintf(buf, cap, "%s", (char *)o->dst); break;
    case OPT_FLAG: snprintf(buf, cap, "%s", *(int *)o->dst ? "on" : "off"); break;
    }
}

/* Set by `contrast man`: --help prints the command's section of the manual page
 * (roff) instead of the terminal listing, from the same table. */
static int help_roff = 0;
void cli_set_help_roff(int on) { help_roff = on; }

/* roff text: a leading '.' or '\'' would be a request, '\' an escape, '-' a hyphen */
static void roff_text(FILE *f, const char *s) {
    if (*s == '.' || *s == '\'') fputs("\\&", f);
    for (; *s; s++) {
        if (*s == '\\') fputs("\\e", f);
        else if (*s == '-') fputs("\\-", f);
        else if (*s == '\n') fputs("\n.br\n", f);
        else fputc(*s, f);
    }
}

static void usage_roff(FILE *f, const cli_opt *opts, int n, const char *usage_line) {
    fputs(".PP\n", f);
    roff_text(f, usage_line);
    fputs("\n", f);
    for (int i = 0; i < n; i++) {
        char d[600];
        show_default(d, sizeof d, &opts[i]);
        fputs(".TP\n.B ", f);
        roff_text(f, opts[i].name);
        if (opts[i].type != OPT_FLAG) fputs(opts[i].type == OPT_STR ? " \\fIS\\fR" : " \\fIN\\fR", f);
        fputs("\n", f);
        roff_text(f, opts[i].help);
        fputs(" [", f);
        roff_text(f, d[0] ? d : "none");
        fputs("]\n", f);
    }
}

static void usage(FILE *f, const cli_opt *opts, int n, const char *usage_line) {
    if (help_roff) {
        usage_roff(f, opts, n, usage_line);
        return;
    }
    fprintf(f, "%s\n\noptions (default in brackets):\n", usage_line);
    for (int i = 0; i < n; i++) {
        char d[600];
        show_default(d, sizeof d, &opts[i]);
        const char *arg = opts[i].type == OPT_FLAG ? "" : opts[i].type == OPT_STR ? " S" : " N";
        char left[64];
        snprintf(left, sizeof left, "%s%s", opts[i].name, arg);
        fprintf(f, "  %-22s %s [%s]\n", left, opts[i].help, d[0] ? d : "none");
    }
    fprintf(f, "  %-22s %s\n", "--help", "this message");
}

/* The table's range [lo, hi] (doubles, for brevity there) as integers within what the
 * destination type holds, so the comparison is exact: 9e18 + 1 is above 9e18 although
 * both are the same double. Every table's hi is >= 0 (a negative one would read as 0). */
static void int_range(const cli_opt *o, int64_t *lo, uint64_t *hi) {
    double tlo = o->type == OPT_INT ? INT_MIN : o->type == OPT_I64 ? -9223372036854775808.0 : 0.0;
    double thi = o->type == OPT_INT ? INT_MAX : o->type == OPT_I64 ? 9223372036854775807.0 : 18446744073709551615.0;
    double l = ceil(o->lo) > tlo ? ceil(o->lo) : tlo, h = floor(o->hi) < thi ? floor(o->hi) : thi;
    /* the type limits above 2^53 are not doubles: take them from the integer constants */
    *lo = l <= -9223372036854775808.0 ? INT64_MIN : (int64_t)l;
    *hi = h >= 18446744073709551615.0 ? UINT64_MAX
          : o->type == OPT_I64 && h >= 9223372036854775807.0 ? (uint64_t)INT64_MAX
          : (uint64_t)(h > 0 ? h : 0);
}

/* Decimal integers only: an optional '-' (not for unsigned options) and digits. No
 * empty value, spaces, '+', hex or octal: a typo is an error, not a different number. */
static int parse_int(const cli_opt *o, const char *v, int64_t lo, uint64_t hi, int64_t *is, uint64_t *us) {
    const char *d = v[0] == '-' ? v + 1 : v;
    if (!*d) return -1;
    for (const char *p = d; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    errno = 0;
    if (v[0] == '-') {
        if (o->type == OPT_U64) return -1;
        long long x = strtoll(v, NULL, 10);
        if (errno || x < lo) return -1;
        *is = x;
        *us = 0;
        return 0;
    }
    unsigned long long x = strtoull(v, NULL, 10);
    if (errno || x > hi || (lo > 0 && x < (uint64_t)lo)) return -1;
    *us = x;
    *is = x > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)x;
    return 0;
}

static int set_value(const cli_opt *o, const char *cmd, const char *v) {
    char *end;
    errno = 0;
    switch (o->type) {
    case OPT_INT:
    case OPT_I64:
    case OPT_U64: {
        int64_t lo, x;
        uint64_t hi, ux;
        int_range(o, &lo, &hi);
        if (parse_int(o, v, lo, hi, &x, &ux)) {
            fprintf(stderr, "contrast %s: %s expects an integer in [%lld, %llu], got %s%s%s\n", cmd, o->name,
                    (long long)lo, (unsigned long long)hi, *v ? "'" : "an empty value", v, *v ? "'" : "");
            return 2;
        }
        if (o->type == OPT_INT) *(int *)o->dst = (int)x;
        else if (o->type == OPT_I64) *(int64_t *)o->dst = x;
        else *(uint64_t *)o->dst = ux;
    } break;
    case OPT_FLOAT: {
        double x = strtod(v, &end);
        if (errno || end == v || *end || isspace((unsigned char)*v) || !isfinite(x) || x < o->lo || x > o->hi) {
            fprintf(stderr, "contrast %s: %s expects a number in [%g, %g], got '%s'\n", cmd, o->name, o->lo, o->hi, v);
            return 2;
        }
        *(float *)o->dst = (float)x;
    } break;
    case OPT_STR:
        if (strlen(v) >= o->cap) {
            fprintf(stderr, "contrast %s: %s value is too long (max %zu characters)\n", cmd, o->name, o->cap - 1);
            return 2;
        }
        memcpy(o->dst, v, strlen(v) + 1);
        break;
    case OPT_FLAG: *(int *)o->dst = 1; break;
    }
    return 0;
}

int cli_parse(int argc, char **argv, cli_opt *opts, int nopts, const char *usage_line) {
    const char *cmd = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout, opts, nopts, usage_line);
            return 1;
        }
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const cli_opt *o = NULL;
        for (int j = 0; j < nopts; j++)
            if (strlen(opts[j].name) == nlen && !strncmp(opts[j].name, a, nlen)) o = &opts[j];
        if (!o) {
            fprintf(stderr, "contrast %s: unknown option '%s' (see contrast %s --help)\n", cmd, a, cmd);
            return 2;
        }
        const char *v;
        if (o->type == OPT_FLAG) {
            if (eq) {
                fprintf(stderr, "contrast %s: %s takes no value\n", cmd, o->name);
                return 2;
            }
            v = "1";
        } else if (eq) {
            v = eq + 1;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            fprintf(stderr, "contrast %s: %s needs a value\n", cmd, o->name);
            return 2;
        }
        int rc = set_value(o, cmd, v);
        if (rc) return rc;
    }
    return 0;
}

int cli_fail(const char *cmd) {
    fprintf(stderr, "contrast %s: %s\n", cmd, ct_errmsg());
    return 1;
}
