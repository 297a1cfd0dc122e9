/* main.c: the `contrast` command: dispatches to subcommands. Every subcommand only
 * calls the public API (include/contrast.h). */
#include "contrast.h"

#include <stdio.h>
#include <string.h>

int cmd_augment(int argc, char **argv); /* augment.c */

static int usage(FILE *f) {
    fprintf(f,
            "usage: contrast COMMAND [options]\n"
            "\n"
            "commands:\n"
            "  help        this message\n"
            "  augment     write a PNG grid of augmented views (check a pipeline by eye)\n"
            "\n"
            "Run `contrast COMMAND --help` for a command's options and their defaults.\n");
    return f == stdout ? 0 : 2;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage(stderr);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) return usage(stdout);
    if (!strcmp(cmd, "augment")) return cmd_augment(argc - 1, argv + 1);
    fprintf(stderr, "contrast: unknown command '%s'\n", cmd);
    return usage(stderr);
}
