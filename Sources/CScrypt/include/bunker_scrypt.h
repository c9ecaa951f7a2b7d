#ifndef BUNKER_SCRYPT_H
#define BUNKER_SCRYPT_H

#include <stddef.h>
#include <stdint.h>

/// ROMix keeps one table entry in this many (scrypt.c says why): its table is
/// n × 128 × r / BUNKER_SCRYPT_TABLE_STRIDE bytes.
#define BUNKER_SCRYPT_TABLE_STRIDE 2

/// scrypt's ROMix (RFC 7914, section 5) on one lane: `block` holds 128 × r bytes, replaced by
/// the result. `n` must be a power of two from 2 to 2^32 and r at least 1. Returns 0, or -1 for
/// other costs or when the table cannot be mapped (with Linux's
/// overcommit, running short of memory later is more likely to end the process than to return
/// -1). The working memory is wiped before it is let go of.
int bunker_scrypt_romix(uint8_t *block, size_t r, uint64_t n);

#endif
