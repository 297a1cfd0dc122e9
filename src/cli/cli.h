/* cli.h: the table-driven option parser shared by the subcommands, so every flag
 * is parsed, validated and listed in --help (with its default) from one place. */
#ifndef CONTRAST_CLI_H
#define CONTRAST_CLI_H
#include <stddef.h>
#include <stdint.h>

typedef enum { OPT_INT, OPT_I64, OPT_U64, OPT_FLOAT, OPT_STR, OPT_FLAG } opt_type;

typedef struct {
    const char *name;  /* "--epochs" */
    opt_type type;
    void *dst;         /* int*, int64_t*, uint64_t*, float*, char[cap], int* (flag) */
    size_t cap;        /* OPT_STR: buffer size */
    double lo, hi;     /* numeric range (inclusive) */
    const char *help;  /* one line; the default is printed from dst before parsing */
} cli_opt;

/* Parses argv[1..] (argv[0] is the subcommand). Prints usage and returns 1 for
 * --help, prints an error and returns 2 for unknown options or bad values, 0 on
 * success. `usage_line` is the first line of the help. */
int cli_parse(int argc, char **argv, cli_opt *opts, int nopts, const char *usage_line);
/* With on != 0, --help prints the command's options as a roff manual section
 * (`contrast man`, which builds contrast.1 from the same tables as --help). */
void cli_set_help_roff(int on);
/* Prints a library error as "contrast CMD: message" and returns the exit code 1. */
int cli_fail(const char *cmd);

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_augment(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_zeroshot(int argc, char **argv);

/* text.c: text checkpoints. The values of every --text option in argv (*texts
 * malloc'd, pointing into argv); a model and its tokenizer from a checkpoint (or an
 * error printed, returning 1); embed (printed, or .npy to out) and eval. */
int cli_text_collect(int argc, char **argv, const char ***texts, int64_t *n);
int cli_text_embed(const char *ckpt, const char *const *texts, int64_t n, const char *data, int train,
                   const char *out, int head);
int cli_text_eval(const char *ckpt, const char *data, int k, float T, int probe, int json);

/* clip.c: clip checkpoints (contrast train --method clip). 1 when `path` is one
 * (metadata train.method = clip); search (text -> images of `index`, or --image ->
 * the texts of texts_file or of index's captions) and eval (zero-shot and image <->
 * text R@1/5/10 on the test split and, where there is one, the train split). */
int cli_is_clip_checkpoint(const char *path);
int cli_clip_search(const char *ckpt, const char *index, const char *query, const char *image, const char *texts_file,
                    int64_t k, const char *out, int tile, int cols, int64_t batch);
int cli_clip_eval(const char *ckpt, const char *data, int json, int64_t batch);
/* embed with a clip checkpoint: the n `texts` (or, when n is 0 and data is a text
 * spec, every text of data) through the text tower, printed or to out; otherwise the
 * images of data (emoji, emoji-test|train, folder:DIR, captions:DIR; train picks the
 * split) through the image tower to out, their classes to labels. Unit rows. */
int cli_clip_embed(const char *ckpt, const char *const *texts, int64_t n, const char *data, int train,
                   const char *out, const char *labels, int64_t limit, int64_t batch);
#endif
