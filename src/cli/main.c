/* main.c: the `contrast` command: dispatches to subcommands. Every subcommand only
 * calls the public API (include/contrast.h). */
#include "cli.h"

#include "contrast/core.h" /* CT_VERSION */

#include <stdio.h>
#include <string.h>

static int cmd_man(int argc, char **argv);

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"train", cmd_train, "contrastive pretraining (SimCLR, MoCo, SupCon; text: SimCSE, pairs); checkpoints, metrics, final eval"},
    {"eval", cmd_eval, "weighted kNN and linear probe of a checkpoint's encoder (or raw pixels)"},
    {"embed", cmd_embed, "write encoder features (or head outputs) as .npy"},
    {"augment", cmd_augment, "write a PNG grid of augmented views"},
    {"search", cmd_search, "semantic search with a text checkpoint: build an index of texts once, query it; with a clip checkpoint: images by text (a PNG contact sheet), texts by image"},
    {"zeroshot", cmd_zeroshot, "zero-shot classification with a clip checkpoint: top-1/top-5 over class names (and per class)"},
    {"plot", cmd_plot, "PNG figures: a run's training curves, or a 2-D map of embeddings (PCA, t-SNE)"},
    {"man", cmd_man, "print the manual page (roff; `contrast man | man -l -`)"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* The manual page, from the same option tables as each command's --help: every
 * command is run with --help while the parser writes roff (cli_set_help_roff). */
static int cmd_man(int argc, char **argv) {
    if (argc > 1) {
        fprintf(stderr, "contrast man: takes no options (it prints contrast.1 to stdout)\n");
        return 2;
    }
    (void)argv;
    printf(".TH CONTRAST 1 \"\" \"contrast %s\" \"contrast manual\"\n", CT_VERSION);
    printf(".SH NAME\ncontrast \\- contrastive representation learning (SimCLR, MoCo, SupCon)\n");
    printf(".SH SYNOPSIS\n.B contrast\n.I COMMAND\n[options]\n");
    printf(".SH DESCRIPTION\nTrains encoders so that two views of the same thing land close together in "
           "embedding space, evaluates them (kNN, linear probe) and writes embeddings. Options are listed "
           "with their defaults in brackets; N is a number, S a string.\n");
    printf(".SH COMMANDS\n");
    cli_set_help_roff(1);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (commands[i].fn == cmd_man) continue;
        printf(".SS %s\n%s\n", commands[i].name, commands[i].help);
        char *args[] = {(char *)commands[i].name, "--help", NULL};
        fflush(stdout);
        commands[i].fn(2, args);
    }
    cli_set_help_roff(0);
    printf(".SH EXIT STATUS\n0 on success, 1 when the library reports an error (the message names the file "
           "and the problem), 2 for a usage error.\n");
    printf(".SH SEE ALSO\nThe README and docs/ of the source tree; \\fBpkg-config --cflags --libs contrast\\fR "
           "for the library.\n");
    return 0;
}

static int usage(FILE *f) {
    fprintf(f, "usage: contrast COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nRun `contrast COMMAND --help` for a command's options and their defaults,\n"
               "`contrast --version` for the version.\n");
    return f == stdout ? 0 : 2;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage(stderr);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) return usage(stdout);
    if (!strcmp(cmd, "--version")) {
        printf("contrast %s\n", CT_VERSION);
        return 0;
    }
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(cmd, commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "contrast: unknown command '%s'\n", cmd);
    return usage(stderr);
}
