#ifndef BUNKER_SHA256_H
#define BUNKER_SHA256_H

#include <stddef.h>
#include <stdint.h>

/// Whether this processor has the SHA extensions (and SSSE3 and SSE4.1) that the functions below
/// need; when it returns 0 they must not be called.
int bunker_sha256_hw_available(void);

/// SHA-256's compression function (FIPS 180-4, section 6.2.2) over `blocks` 64-byte blocks of
/// `data`, updating the eight words of `state` (H0 to H7, as numbers, not bytes). Where
/// bunker_sha256_hw_available() is 0 these two functions abort the process.
void bunker_sha256_blocks(uint32_t state[8], const void *data, size_t blocks);

/// The same for two independent messages at once, `blocks` blocks of each: `a` over `data_a` and
/// `b` over `data_b` (which may be the same bytes, or overlap).
void bunker_sha256_blocks_x2(uint32_t a[8], const void *data_a, uint32_t b[8], const void *data_b, size_t blocks);

#endif
