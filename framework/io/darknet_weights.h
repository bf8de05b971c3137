/* whittle: darknet .weights files.
 *
 * Layout (all little-endian):
 *   int32 major, int32 minor, int32 revision
 *   seen: uint64 if major*10 + minor >= 2, else uint32   (images trained on)
 *   then, for every [convolutional] layer in cfg order (other layer types of
 *   ours have no weights), float32:
 *     biases (OC)
 *     if batch_normalize=1: scales (OC), rolling_mean (OC), rolling_variance (OC)
 *     weights (OC, IC/groups, K, K), row-major
 * The file holds no shapes: it is only meaningful with its cfg, so loading
 * insists that the byte count matches the cfg exactly.
 */
#ifndef WH_DARKNET_WEIGHTS_H
#define WH_DARKNET_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "framework/core/net.h"
#include "framework/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What we write: major 0, minor 2 (64-bit seen), revision 5, as darknet. */
#define WH_DARKNET_MAJOR 0
#define WH_DARKNET_MINOR 2
#define WH_DARKNET_REVISION 5

/* Bytes of the file wh_darknet_weights_save writes for net (20-byte header
 * + 4 bytes per float); 0 if a layer with parameters has no darknet layout. */
size_t wh_darknet_weights_size(const wh_net *net);
/* Loads the parameters of an already-built net. seen (may be NULL) receives
 * the header's count. A file whose size differs from what the cfg needs is
 * an error stating both byte counts (and, when short, the layer where the
 * data runs out); the net is left untouched then. */
wh_status wh_darknet_weights_load(wh_net *net, const char *path, uint64_t *seen, wh_ctx *ctx);
/* Writes net's parameters atomically (temp file, fsync, rename). */
wh_status wh_darknet_weights_save(const wh_net *net, const char *path, uint64_t seen, wh_ctx *ctx);
/* PREFIX.weights then PREFIX.cfg (cfg_text unchanged), each atomically. */
wh_status wh_darknet_export(const wh_net *net, const char *cfg_text, const char *prefix,
                            uint64_t seen, wh_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
