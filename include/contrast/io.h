/* contrast/io.h: atomic file writes, safetensors checkpoints and NumPy .npy arrays.
 *
 * Checkpoints are safetensors files: an 8-byte little-endian header length, a JSON
 * header mapping each tensor name to {"dtype", "shape", "data_offsets"} plus an
 * optional "__metadata__" string->string map, then the raw little-endian data.
 * PyTorch users load them with safetensors.torch.load_file; we keep the model and
 * training configuration in __metadata__ so `contrast eval` rebuilds the model from
 * the file alone.
 *
 * Every file is written atomically: to a temporary created exclusively beside it
 * ("<path>.tmp-XXXXXX"), flushed, fsync'ed, renamed over <path>, and the directory
 * fsync'ed. A failed write (disk full, unwritable folder, crash) leaves the previous
 * file at <path> intact, removes the temporary, and the error message names the path
 * and says the previous file was kept. A <path> that is a character device or a FIFO
 * (/dev/null, /dev/stdout, a pipe) is written through instead (see ct_atomic_open).
 *
 * Every file is read only if it is a regular file (ct_open_regular): a FIFO, device,
 * socket or folder is refused at once with "not a regular file", never waited on.
 *
 * Reading validates before trusting a byte: the whole file is read (its size from
 * fstat, never from the header), the header is parsed by a strict JSON parser, and
 * every entry is checked (known dtype, shape product * dtype size == byte span,
 * offsets inside the data, contiguous and non-overlapping, no duplicate names). A
 * file failing any check is refused with a message naming the file; nothing is
 * loaded partially. Sizes claimed by a header never drive an allocation.
 *
 * The host must be little-endian (x86-64, ARM64); the code refuses to build otherwise.
 */
#ifndef CONTRAST_IO_H
#define CONTRAST_IO_H
#include "contrast/core.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif
CT_BEGIN_API

/* ---- reading ------------------------------------------------------------------ */
/* Opens `path` read-only if it is a regular file (symlinks followed): *fd is a
 * blocking descriptor the caller closes, *size (may be NULL) the file's size from
 * fstat. A FIFO, device, socket or folder is refused without blocking: CT_ERR_IO,
 * "<path>: not a regular file (it is a FIFO); ...". Every reader of the library
 * (safetensors, .npy, IDX, CIFAR, image folders) opens its files with this. */
ct_status ct_open_regular(const char *path, int *fd, int64_t *size);
/* The same as a stdio stream opened "rb"; the caller fcloses *fp. */
ct_status ct_fopen_regular(const char *path, FILE **fp, int64_t *size);

/* ---- atomic writes ------------------------------------------------------------ */
typedef struct {
    FILE *fp;    /* where ct_atomic_write writes (may be written to directly)        */
    char *path;  /* final name                                                       */
    char *tmp;   /* "<path>.tmp-XXXXXX", written first; NULL when writing through   */
} ct_atomic_file;

/* Opens `path` for writing. What happens depends on what is at `path` now:
 *   nothing, or a regular file: a new temporary is created exclusively in the same
 *     folder (O_CREAT|O_EXCL|O_NOFOLLOW, random suffix: a symlink or file planted at
 *     any name is never followed nor overwritten), renamed over `path` on commit;
 *     a symlink at `path` itself is replaced, not followed.
 *   a character device or FIFO (after following symlinks, so /dev/stdout works):
 *     written through in place, never replaced. A FIFO with no reader is refused
 *     at once. A failure midway cannot be undone there: what was written is out.
 *     A FIFO whose reader goes away raises SIGPIPE, as any pipe write does (the
 *     host decides: with SIGPIPE ignored the write fails with EPIPE).
 *   a folder, block device or socket: refused (CT_ERR_IO).
 * On failure nothing is left behind. */
ct_status ct_atomic_open(ct_atomic_file *af, const char *path);
/* Appends n bytes. On failure the temporary is removed (as by ct_atomic_abort). */
ct_status ct_atomic_write(ct_atomic_file *af, const void *data, size_t n);
/* Flushes, fsyncs, closes and renames over the final path, then fsyncs the
 * directory (written through: flushes and closes). Every step is checked, so a
 * full disk or /dev/full reports "No space left on device" naming the path. On any
 * failure the temporary is removed and the previous file at `path` is untouched.
 * Always releases `af`. */
ct_status ct_atomic_commit(ct_atomic_file *af);
/* Discards the temporary; safe to call on a released or failed `af`. */
void ct_atomic_abort(ct_atomic_file *af);

/* ---- dtypes ----------------------------------------------------------------------- */
typedef enum { CT_DTYPE_F32 = 0, CT_DTYPE_F64, CT_DTYPE_I64, CT_DTYPE_I32, CT_DTYPE_U8 } ct_dtype;
/* Bytes per element (0 for an invalid value) and the safetensors name ("F32", ...). */
size_t ct_dtype_size(ct_dtype dt);
const char *ct_dtype_name(ct_dtype dt);

/* ---- safetensors ------------------------------------------------------------------ */
#define CT_ST_MAX_DIMS 8
/* Headers longer than this are refused (the reference implementation's limit). */
#define CT_ST_MAX_HEADER (100u * 1024u * 1024u)

typedef struct {
    const char *name;               /* unique, non-empty, not "__metadata__"        */
    ct_dtype dtype;
    int ndim;                       /* 0..CT_ST_MAX_DIMS (0 = scalar)               */
    int64_t shape[CT_ST_MAX_DIMS];
    const void *data;               /* numel * ct_dtype_size(dtype) bytes            */
} ct_st_tensor;

typedef struct {
    const char *key;
    const char *value;
} ct_st_kv;

/* Fills `t` to describe one tensor of a model's flat float buffer. `buf` is the
 * start of the buffer; the name pointer refers to info->name (keep `info` alive). */
void ct_st_tensor_from_info(ct_st_tensor *t, const ct_tensor_info *info, const float *buf);

/* Writes n tensors (in the order given) and nmeta metadata pairs atomically to
 * `path`. Names and values may hold any characters (JSON-escaped). The header is
 * padded with spaces to a multiple of 8 bytes so the data starts aligned. */
ct_status ct_st_write(const char *path, const ct_st_tensor *tensors, int n, const ct_st_kv *meta,
                      int nmeta);

/* One tensor of an opened file. `data` points into the file's bytes and may be
 * unaligned (safetensors allows any offsets): copy with memcpy or ct_st_read_f32. */
typedef struct {
    const char *name;
    ct_dtype dtype;
    int ndim;
    int64_t shape[CT_ST_MAX_DIMS];
    size_t numel;
    size_t nbytes;
    size_t offset;                  /* from the start of the data section */
    const void *data;
} ct_st_entry;

typedef struct ct_st_file ct_st_file;

/* Reads and validates the whole file (see the top of this header). On success
 * *out owns the bytes until ct_st_close; on failure *out is NULL and the message
 * names the file and the problem. */
ct_status ct_st_open(ct_st_file **out, const char *path);
void ct_st_close(ct_st_file *f);
const char *ct_st_path(const ct_st_file *f);
/* Entries in data order; i in [0, ct_st_count). */
int ct_st_count(const ct_st_file *f);
const ct_st_entry *ct_st_entry_at(const ct_st_file *f, int i);
/* NULL when absent. */
const ct_st_entry *ct_st_find(const ct_st_file *f, const char *name);
/* Metadata value for `key`, NULL when absent; pairs also by index. */
const char *ct_st_meta(const ct_st_file *f, const char *key);
int ct_st_meta_count(const ct_st_file *f);
void ct_st_meta_at(const ct_st_file *f, int i, const char **key, const char **value);

/* Copies tensor `name` into dst, after checking it exists, is F32, and has exactly
 * `ndim` dims equal to `shape` (shape NULL: only numel == n is checked). */
ct_status ct_st_read_f32(const ct_st_file *f, const char *name, float *dst, size_t n, int ndim,
                         const int64_t *shape);
/* Loads every tensor of a model table into its flat buffer: first checks all of
 * them (present, F32, same shape), then copies, so a mismatch loads nothing. */
ct_status ct_st_read_table(const ct_st_file *f, const ct_tensor_info *tab, int ntab, float *buf);

/* ---- NumPy .npy ------------------------------------------------------------------- */
/* Format 1.0, little-endian, C order, written atomically.
 *   x: (rows, cols) float32                  -> '<f4', shape (rows, cols)
 *   labels: (n) int32 / int64                -> '<i4' / '<i8', shape (n,) */
ct_status ct_npy_write_f32(const char *path, const float *x, int64_t rows, int64_t cols);
ct_status ct_npy_write_i32(const char *path, const int32_t *x, int64_t n);
ct_status ct_npy_write_i64(const char *path, const int64_t *x, int64_t n);
/* The same arrays into a file already opened with ct_atomic_open, not committed:
 * a program writing several files opens them all first (so a bad destination is
 * found before any work) and commits them together at the end. On failure `af` is
 * aborted. */
ct_status ct_npy_put_f32(ct_atomic_file *af, const float *x, int64_t rows, int64_t cols);
ct_status ct_npy_put_i64(ct_atomic_file *af, const int64_t *x, int64_t n);
/* Reads a '<f4' C-order array of 1 or 2 dims (1-D (n,) reads as rows = n, cols = 1),
 * versions 1.0-3.0, checking the header and that the file size matches the shape.
 * *out is allocated with ct_alloc (free with ct_free). */
ct_status ct_npy_read_f32(const char *path, float **out, int64_t *rows, int64_t *cols);
/* Reads 1-D labels stored as '<i4' or '<i8' (values must fit int32). */
ct_status ct_npy_read_i32(const char *path, int32_t **out, int64_t *n);

CT_END_API
#ifdef __cplusplus
}
#endif
#endif
