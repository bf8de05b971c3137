/* whittle: checkpoints (HDF5).
 *
 * A checkpoint is one HDF5 file of named datasets. The network part is
 * written by wh_ckpt_put_net; the trainer, the plug-ins and the data loader
 * add their own datasets under their own groups with the generic put/get
 * calls below. Writing is atomic (temp file in the same folder, fsync,
 * rename) and reading verifies a checksum before anything is returned, so a
 * truncated or corrupted file is refused instead of being half loaded.
 *
 * ---- File layout (for the README; every item is readable with h5py) ------
 *
 *   /                                 root group, attributes:
 *     @format    "whittle-checkpoint" (fixed-length string)
 *     @version   1                    (int32)
 *     @checksum  uint64               FNV-1a 64, see below
 *     @checksum_algorithm "fnv1a64"
 *   /cfg         the darknet cfg text the network was built from
 *                (fixed-length string, no terminator; f["cfg"][()].decode())
 *   /seen        uint64 scalar, optional: images seen in training (darknet's
 *                "seen", written into exported .weights headers)
 *   /layers/<iii>_<type>/<param>      float32, one per layer parameter:
 *       <iii>  the layer index in cfg order, zero-padded to 3 digits
 *              (the [net] section is not a layer: the first layer is 000)
 *       <type> the cfg section name, e.g. "convolutional"
 *       <param> in darknet's .weights order for [convolutional]:
 *              biases (OC), [scales (OC), rolling_mean (OC),
 *              rolling_variance (OC) when batch_normalize=1],
 *              weights (OC, IC/groups, K, K)
 *       e.g. /layers/000_convolutional/weights  shape (32, 3, 3, 3)
 *   /<anything else>   owned by whoever wrote it (trainer: optimizer moments,
 *                      LR schedule, plug-in states, RNG, loader position)
 *
 *   Dataset types: float32 LE, int64 LE, uint64 LE, or fixed-length strings
 *   (NULLPAD; the empty string is stored as one NUL byte). Shapes are the
 *   caller's (row-major); ndims 0 is a scalar.
 *
 *   Checksum: FNV-1a 64 (offset basis 0xcbf29ce484222325, prime
 *   0x100000001b3) over one byte stream made of, for every dataset in the
 *   file sorted by its path (no leading '/', byte-wise strcmp order):
 *       the path's bytes, 0x00, the element type as numpy spells it
 *       ("<f4", "<i8", "<u8", "|S<length>"), 0x00, ndims then each extent
 *       (uint64 LE each; a scalar has ndims 0), then the dataset's raw bytes
 *       as stored (little-endian, row-major; strings: their stored length).
 *   Attributes are not covered. In Python (import struct):
 *       names = []; f.visititems(lambda n, o: names.append(n)
 *                                if isinstance(o, h5py.Dataset) else None)
 *       h = 0xcbf29ce484222325
 *       for n in sorted(names, key=lambda s: s.encode()):
 *           d = f[n]; raw = d[()].tobytes() if d.dtype.kind != "S"
 *                            else d[()].ljust(d.dtype.itemsize, b"\0")
 *           shp = struct.pack("<%dQ" % (d.ndim + 1), d.ndim, *d.shape)
 *           ty = d.dtype.str.encode() + b"\0"
 *           for b in n.encode() + b"\0" + ty + shp + raw:
 *               h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
 *       assert h == f.attrs["checksum"]
 * ---------------------------------------------------------------------------
 *
 * Writing a checkpoint:
 *     wh_ckpt_writer *w;
 *     WH_TRY(wh_ckpt_create(path, &w, ctx));
 *     st = wh_ckpt_put_net(w, net, cfg_text, ctx);
 *     if (st == WH_OK) st = wh_ckpt_put_f32(w, "optim/m/000", m, dims, 1, ctx);
 *     ...
 *     st = st == WH_OK ? wh_ckpt_commit(w, ctx) : (wh_ckpt_abort(w), st);
 * commit and abort both free the writer. Until commit succeeds, the file at
 * the final path (if any) is untouched.
 */
#ifndef WH_CHECKPOINT_H
#define WH_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "framework/core/net.h"
#include "framework/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WH_CKPT_FORMAT "whittle-checkpoint"
#define WH_CKPT_VERSION 1
#define WH_CKPT_MAX_DIMS 8

typedef struct wh_ckpt_writer wh_ckpt_writer;
typedef struct wh_ckpt_reader wh_ckpt_reader;

/* --- writing ---------------------------------------------------------------
 * Names are paths of groups: "layers/000_convolutional/weights"; groups are
 * created as needed. A name may not be empty, start or end with '/', contain
 * "//" or be written twice. After a failed put the writer refuses to commit
 * (abort it). */
wh_status wh_ckpt_create(const char *path, wh_ckpt_writer **out, wh_ctx *ctx);
/* dims: ndims extents (row-major); ndims 0 (dims may be NULL) is a scalar. */
wh_status wh_ckpt_put_f32(wh_ckpt_writer *w, const char *name, const float *data,
                          const uint64_t *dims, int ndims, wh_ctx *ctx);
wh_status wh_ckpt_put_i64(wh_ckpt_writer *w, const char *name, const int64_t *data,
                          const uint64_t *dims, int ndims, wh_ctx *ctx);
wh_status wh_ckpt_put_u64(wh_ckpt_writer *w, const char *name, const uint64_t *data,
                          const uint64_t *dims, int ndims, wh_ctx *ctx);
/* A NUL-terminated text (cfg, JSON). */
wh_status wh_ckpt_put_str(wh_ckpt_writer *w, const char *name, const char *text, wh_ctx *ctx);
/* Writes the checksum and format attributes, flushes, closes, fsyncs and
 * renames the temp file over the final path. Frees w, also on failure (then
 * the temp file is removed and the final path left as it was). */
wh_status wh_ckpt_commit(wh_ckpt_writer *w, wh_ctx *ctx);
/* Discards everything written: the temp file is removed. Frees w; NULL is fine. */
void wh_ckpt_abort(wh_ckpt_writer *w);

/* --- reading ---------------------------------------------------------------
 * open fails (naming the file) unless the file is HDF5, has the format
 * attribute and a supported version, and every dataset matches the checksum. */
wh_status wh_ckpt_open(const char *path, wh_ckpt_reader **out, wh_ctx *ctx);
void wh_ckpt_close(wh_ckpt_reader *r);
const char *wh_ckpt_path(const wh_ckpt_reader *r);
int wh_ckpt_has(const wh_ckpt_reader *r, const char *name);
/* The datasets, sorted by name (the checksum's order). */
int wh_ckpt_count(const wh_ckpt_reader *r);
const char *wh_ckpt_name(const wh_ckpt_reader *r, int i);
/* dims receives up to WH_CKPT_MAX_DIMS extents; *ndims 0 for a scalar. */
wh_status wh_ckpt_dims(wh_ckpt_reader *r, const char *name, uint64_t *dims, int *ndims,
                       wh_ctx *ctx);
/* Reads exactly count elements: a missing dataset, another element type or
 * another element count is an error naming the dataset and the file. */
wh_status wh_ckpt_get_f32(wh_ckpt_reader *r, const char *name, float *out, size_t count,
                          wh_ctx *ctx);
wh_status wh_ckpt_get_i64(wh_ckpt_reader *r, const char *name, int64_t *out, size_t count,
                          wh_ctx *ctx);
wh_status wh_ckpt_get_u64(wh_ckpt_reader *r, const char *name, uint64_t *out, size_t count,
                          wh_ctx *ctx);
/* *out is malloc'd and NUL-terminated; the caller frees it. */
wh_status wh_ckpt_get_str(wh_ckpt_reader *r, const char *name, char **out, wh_ctx *ctx);

/* --- the network -----------------------------------------------------------
 * Dataset name of a layer parameter: "layers/<iii>_<type>/<param>". */
void wh_ckpt_param_name(const wh_layer *l, const wh_param *p, char *buf, size_t n);
/* The shape a parameter is stored with: (OC, IC/groups, K, K) for
 * convolution weights, (count) for everything else. Returns ndims. */
int wh_ckpt_param_dims(const wh_layer *l, const wh_param *p, uint64_t *dims);
/* Stores "cfg" (cfg_text, required: it rebuilds the net) and every layer's
 * parameters. */
wh_status wh_ckpt_put_net(wh_ckpt_writer *w, const wh_net *net, const char *cfg_text,
                          wh_ctx *ctx);
/* Loads every parameter of an already-built net. A missing dataset, a shape
 * that differs (error names layer index, type, param and both shapes) or a
 * checkpoint layer the net lacks is an error; the net may then hold a mix of
 * old and new values. */
wh_status wh_ckpt_load_net(wh_ckpt_reader *r, wh_net *net, wh_ctx *ctx);
/* The checkpoint alone rebuilds the network: parse the stored cfg, build it
 * with opts, load the parameters (not with opts->dry_run: the net is only
 * planned). cfg_text (may be NULL) receives the stored cfg text, malloc'd. */
wh_status wh_ckpt_build_net(const char *path, const wh_net_opts *opts, wh_net **net,
                            char **cfg_text, wh_ctx *ctx);
/* The same from an open reader, when the caller reads more from it (the
 * trainer's state, "seen"). */
wh_status wh_ckpt_read_net(wh_ckpt_reader *r, const wh_net_opts *opts, wh_net **net,
                           char **cfg_text, wh_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
