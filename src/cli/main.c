/* main.c: the `contrast` command: dispatches to subcommands. Every subcommand only
 * calls the public API (include/contrast.h). */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"train", cmd_train, "contrastive pretraining (SimCLR, MoCo, SupCon); checkpoints, metrics, final eval"},
    {"eval", cmd_eval, "weighted kNN and linear probe of a checkpoint's encoder (or raw pixels)"},
    {"embed", cmd_embed, "write encoder features (or head outputs) as .npy"},
    {"augment", cmd_augment, "write a PNG grid of augmented views"},
    {"plot", cmd_plot, "PNG figures: a run's training curves, or a 2-D map of embeddings (PCA, t-SNE)"},
};

static int usage(FILE *f) {
    fprintf(f, "usage: contrast COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nRun `contrast COMMAND --help` for a command's options and their defaults.\n");
    return f == stdout ? 0 : 2;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage(stderr);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) return usage(stdout);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "contrast: unknown command '%s'\n", cmd);
    return usage(stderr);
}
