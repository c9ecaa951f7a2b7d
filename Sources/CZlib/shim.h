#include <zlib.h>

/* deflateInit2 is a macro, which Swift does not import: raw deflate (no zlib header, as ZIP
   entries hold it), a 32 KiB window, zlib's default memory level and strategy. */
static inline int czlib_deflate_init_raw(z_stream *stream, int level) {
    return deflateInit2(stream, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
}
