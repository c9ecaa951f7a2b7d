// scrypt's memory-hard core, ROMix over BlockMix over Salsa20/8 (RFC 7914). The PBKDF2 steps
// around it, and the checks of the costs a key file may ask for, are in Swift (Scrypt.swift).
//
// Why not BoringSSL's scrypt, which swift-crypto offers: every command derives the key once, and
// at the standard cost (N = 2^15, r = 8) BoringSSL took 85 ms of a 220 ms no-change backup.
// The work is one long chain of Salsa20/8 cores, each depending on the last, so it is bound by
// latency, not by throughput. Two things shorten it:
// - Salsa20/8 on SSE2 vectors: each quarter-round step is done on four columns (then four rows)
//   at once. The 16 words of a block are stored in "diagonal" order, A = (x0, x5, x10, x15),
//   B = (x4, x9, x14, x3), C = (x8, x13, x2, x7), D = (x12, x1, x6, x11), so that a column round
//   is lane-wise on (A, B, C, D) and a row round is lane-wise once B, C and D are rotated by
//   three, two and one lanes. Blocks stay in that order from the lane's first load to its last
//   store; only XOR and the index taken from word 0 of the last block touch them in between,
//   and word 0 is x0 in either order.
// - The table in huge pages where the kernel allows it: fewer page faults to fill it, and far
//   fewer TLB misses when the second loop reads it at random.
// Measured on this project's benchmark machine: 48-57 ms against BoringSSL's 85-93 ms.
//
// The table keeps only every STRIDE-th V[i]; the second loop recomputes an entry it asks for
// from the one kept before it (scrypt's well-known time-memory trade-off; the result is the same
// function, bit for bit). At the standard cost the whole table is 32 MiB, half of the peak memory
// of a command that only opens the repository (the rest is code); with STRIDE 2 it is 16 MiB,
// for one BlockMix more every second step of the second loop: 2.5 n BlockMix in place of 2 n,
// about 12 ms more on this machine. An attacker guessing passwords pays the full cost whichever
// way Bunker computes it.
// Without SSE2 (not x86-64) a plain C Salsa20/8 on the natural order is used.

#include "bunker_scrypt.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

enum { WORDS = 16 };  // 32-bit words in a 64-byte Salsa block

#if defined(__SSE2__)

static const int layout[WORDS] = {0, 5, 10, 15, 4, 9, 14, 3, 8, 13, 2, 7, 12, 1, 6, 11};

static inline __m128i rotate(__m128i x, int n) {
    return _mm_or_si128(_mm_slli_epi32(x, n), _mm_srli_epi32(x, 32 - n));
}

// x = Salsa20/8(x ^ in), both in diagonal order.
static inline void salsa_xor(uint32_t *x, const uint32_t *in) {
    __m128i *xv = (__m128i *)x;
    const __m128i *iv = (const __m128i *)in;
    __m128i a = _mm_xor_si128(_mm_load_si128(xv), _mm_load_si128(iv));
    __m128i b = _mm_xor_si128(_mm_load_si128(xv + 1), _mm_load_si128(iv + 1));
    __m128i c = _mm_xor_si128(_mm_load_si128(xv + 2), _mm_load_si128(iv + 2));
    __m128i d = _mm_xor_si128(_mm_load_si128(xv + 3), _mm_load_si128(iv + 3));
    const __m128i a0 = a, b0 = b, c0 = c, d0 = d;
    for (int round = 0; round < 8; round += 2) {
        // Column round: quarter-rounds on (x0 x4 x8 x12), (x5 x9 x13 x1), ...
        b = _mm_xor_si128(b, rotate(_mm_add_epi32(a, d), 7));
        c = _mm_xor_si128(c, rotate(_mm_add_epi32(b, a), 9));
        d = _mm_xor_si128(d, rotate(_mm_add_epi32(c, b), 13));
        a = _mm_xor_si128(a, rotate(_mm_add_epi32(d, c), 18));
        // Row round: with D, C, B rotated by one, two and three lanes, D holds each row's
        // second word, C its third and B its fourth.
        d = _mm_shuffle_epi32(d, 0x39);
        c = _mm_shuffle_epi32(c, 0x4E);
        b = _mm_shuffle_epi32(b, 0x93);
        d = _mm_xor_si128(d, rotate(_mm_add_epi32(a, b), 7));
        c = _mm_xor_si128(c, rotate(_mm_add_epi32(d, a), 9));
        b = _mm_xor_si128(b, rotate(_mm_add_epi32(c, d), 13));
        a = _mm_xor_si128(a, rotate(_mm_add_epi32(b, c), 18));
        d = _mm_shuffle_epi32(d, 0x93);
        c = _mm_shuffle_epi32(c, 0x4E);
        b = _mm_shuffle_epi32(b, 0x39);
    }
    _mm_store_si128(xv, _mm_add_epi32(a, a0));
    _mm_store_si128(xv + 1, _mm_add_epi32(b, b0));
    _mm_store_si128(xv + 2, _mm_add_epi32(c, c0));
    _mm_store_si128(xv + 3, _mm_add_epi32(d, d0));
}

#else

static const int layout[WORDS] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

#define ROTATE(v, n) (((v) << (n)) | ((v) >> (32 - (n))))

static inline void salsa_xor(uint32_t *x, const uint32_t *in) {
    uint32_t w[WORDS], s[WORDS];
    for (int i = 0; i < WORDS; i++) s[i] = w[i] = x[i] ^ in[i];
    for (int round = 0; round < 8; round += 2) {
        w[4] ^= ROTATE(w[0] + w[12], 7);   w[8] ^= ROTATE(w[4] + w[0], 9);
        w[12] ^= ROTATE(w[8] + w[4], 13);  w[0] ^= ROTATE(w[12] + w[8], 18);
        w[9] ^= ROTATE(w[5] + w[1], 7);    w[13] ^= ROTATE(w[9] + w[5], 9);
        w[1] ^= ROTATE(w[13] + w[9], 13);  w[5] ^= ROTATE(w[1] + w[13], 18);
        w[14] ^= ROTATE(w[10] + w[6], 7);  w[2] ^= ROTATE(w[14] + w[10], 9);
        w[6] ^= ROTATE(w[2] + w[14], 13);  w[10] ^= ROTATE(w[6] + w[2], 18);
        w[3] ^= ROTATE(w[15] + w[11], 7);  w[7] ^= ROTATE(w[3] + w[15], 9);
        w[11] ^= ROTATE(w[7] + w[3], 13);  w[15] ^= ROTATE(w[11] + w[7], 18);
        w[1] ^= ROTATE(w[0] + w[3], 7);    w[2] ^= ROTATE(w[1] + w[0], 9);
        w[3] ^= ROTATE(w[2] + w[1], 13);   w[0] ^= ROTATE(w[3] + w[2], 18);
        w[6] ^= ROTATE(w[5] + w[4], 7);    w[7] ^= ROTATE(w[6] + w[5], 9);
        w[4] ^= ROTATE(w[7] + w[6], 13);   w[5] ^= ROTATE(w[4] + w[7], 18);
        w[11] ^= ROTATE(w[10] + w[9], 7);  w[8] ^= ROTATE(w[11] + w[10], 9);
        w[9] ^= ROTATE(w[8] + w[11], 13);  w[10] ^= ROTATE(w[9] + w[8], 18);
        w[12] ^= ROTATE(w[15] + w[14], 7); w[13] ^= ROTATE(w[12] + w[15], 9);
        w[14] ^= ROTATE(w[13] + w[12], 13); w[15] ^= ROTATE(w[14] + w[13], 18);
    }
    for (int i = 0; i < WORDS; i++) x[i] = w[i] + s[i];
}

#endif

// out = BlockMix(in ^ other), or BlockMix(in) when other is NULL; 2r blocks each. out must not
// overlap in or other.
static void block_mix(uint32_t *out, const uint32_t *in, const uint32_t *other, size_t r) {
    _Alignas(16) uint32_t x[WORDS], t[WORDS];
    const uint32_t *last = in + (2 * r - 1) * WORDS;
    for (int k = 0; k < WORDS; k++) x[k] = other ? last[k] ^ other[(2 * r - 1) * WORDS + k] : last[k];
    for (size_t i = 0; i < 2 * r; i++) {
        const uint32_t *block = in + i * WORDS;
        if (other) {
            for (int k = 0; k < WORDS; k++) t[k] = block[k] ^ other[i * WORDS + k];
            salsa_xor(x, t);
        } else {
            salsa_xor(x, block);
        }
        // Even blocks go to the first half of the output, odd ones to the second.
        memcpy(out + (i / 2 + (i & 1) * r) * WORDS, x, sizeof x);
    }
}

static void wipe(void *p, size_t n) {
    memset(p, 0, n);
    __asm__ __volatile__("" : : "r"(p) : "memory");  // the stores must not be optimized away
}

int bunker_scrypt_romix(uint8_t *block, size_t r, uint64_t n) {
    enum { STRIDE = BUNKER_SCRYPT_TABLE_STRIDE };  // a power of two, at most n (n >= 2)
    if (r == 0 || r > SIZE_MAX / 128 || n < 2 || (n & (n - 1)) != 0 || n > ((uint64_t)1 << 32)) return -1;
    const size_t words = 2 * r * WORDS, bytes = words * sizeof(uint32_t);
    if (n / STRIDE > SIZE_MAX / bytes) return -1;
    const size_t table_bytes = (size_t)(n / STRIDE) * bytes;
    uint32_t *table = mmap(NULL, table_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (table == MAP_FAILED) return -1;
#ifdef MADV_HUGEPAGE
    madvise(table, table_bytes, MADV_HUGEPAGE);  // a hint: without it, ordinary pages
#endif
    uint32_t *x = aligned_alloc(16, bytes), *y = aligned_alloc(16, bytes);
    uint32_t *scratch[2] = {aligned_alloc(16, bytes), aligned_alloc(16, bytes)};
    if (!x || !y || !scratch[0] || !scratch[1]) {
        free(x);
        free(y);
        free(scratch[0]);
        free(scratch[1]);
        munmap(table, table_bytes);
        return -1;
    }
    for (size_t b = 0; b < 2 * r; b++) {
        for (int k = 0; k < WORDS; k++) {
            const uint8_t *p = block + b * 64 + layout[k] * 4;
            x[b * WORDS + k] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        }
    }
    // V[0] = B, V[i + 1] = BlockMix(V[i]), X = BlockMix(V[n - 1]) = BlockMix^n(B); the table
    // keeps V[i] for i a multiple of STRIDE, at i / STRIDE.
    for (uint64_t i = 0; i < n; i++) {
        if ((i & (STRIDE - 1)) == 0) memcpy(table + (i / STRIDE) * words, x, bytes);
        block_mix(y, x, NULL, r);
        uint32_t *swap = x;
        x = y;
        y = swap;
    }
    for (uint64_t i = 0; i < n; i++) {
        // Integerify: the last block's first word (x0 in either order) is its low 32 bits,
        // all that a power of two up to 2^32 needs.
        const uint64_t j = x[(2 * r - 1) * WORDS] & (n - 1);
        // V[j] from the kept V[j - j % STRIDE], one BlockMix per step between them.
        const uint32_t *v = table + (j / STRIDE) * words;
        for (uint64_t m = 0; m < (j & (STRIDE - 1)); m++) {
            block_mix(scratch[m & 1], v, NULL, r);
            v = scratch[m & 1];
        }
        block_mix(y, x, v, r);
        uint32_t *swap = x;
        x = y;
        y = swap;
    }
    for (size_t b = 0; b < 2 * r; b++) {
        for (int k = 0; k < WORDS; k++) {
            uint8_t *p = block + b * 64 + layout[k] * 4;
            const uint32_t w = x[b * WORDS + k];
            p[0] = (uint8_t)w;
            p[1] = (uint8_t)(w >> 8);
            p[2] = (uint8_t)(w >> 16);
            p[3] = (uint8_t)(w >> 24);
        }
    }
    wipe(table, table_bytes);
    wipe(x, bytes);
    wipe(y, bytes);
    wipe(scratch[0], bytes);
    wipe(scratch[1], bytes);
    munmap(table, table_bytes);
    free(x);
    free(y);
    free(scratch[0]);
    free(scratch[1]);
    return 0;
}
