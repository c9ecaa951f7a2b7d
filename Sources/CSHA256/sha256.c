// SHA-256's compression function on the x86 SHA extensions, one message or two at once.
//
// Why Bunker has its own: a backup hashes every byte it reads twice, once for the file's SHA-256
// and once for the keyed id of the chunk holding it, and a verify hashes each pack and every blob
// in it. BoringSSL (swift-crypto) uses the same instructions, one message at a time, and one
// message cannot go faster than the latency of SHA256RNDS2: each of its 32 steps per block needs
// the state the step before made. On AMD Zen (this project's benchmark machine) that latency is
// twice the instruction's reciprocal throughput, so a core has room for a second, independent
// chain: two messages hashed in lockstep run at 3.0 GB/s together where one runs at 1.8 GB/s
// (best of 15 runs over 16 MiB, this file's functions and OpenSSL's SHA256 alike at 1.8 GB/s).
//
// The state is kept as the instructions want it: (A, B, E, F) and (C, D, G, H) in two vectors.
// The message schedule is computed four words at a time with SHA256MSG1 and SHA256MSG2, as the
// rounds need it, in four rolling vectors: for the group of words X[g] = W[4g .. 4g+3], g >= 4,
//     X[g] = msg2(msg1(X[g-4], X[g-3]) + W[4g-7 .. 4g-4], X[g-1])
// where W[4g-7 .. 4g-4] is X[g-1]:X[g-2] shifted by one word (PALIGNR). Computing the whole
// schedule first was slower for two messages (measured 2.5 against 3.0 GB/s): 32 vectors do not
// fit the 16 registers the SHA instructions can address.
//
// Other processors never call these (bunker_sha256_hw_available tells the Swift side, which then
// uses swift-crypto).

#include "bunker_sha256.h"

#if defined(__x86_64__)

#include <cpuid.h>
#include <immintrin.h>

#define TARGET __attribute__((target("sha,ssse3,sse4.1")))

static const uint32_t K[64] __attribute__((aligned(16))) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

int bunker_sha256_hw_available(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    const int ssse3 = (ecx >> 9) & 1, sse41 = (ecx >> 19) & 1;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
    const int sha = (ebx >> 29) & 1;
    return ssse3 && sse41 && sha;
}

// (A, B, C, D) and (E, F, G, H) as stored, to (A, B, E, F) and (C, D, G, H) as the instructions
// take them (each vector's highest lane first in the names).
TARGET static inline void load_state(const uint32_t state[8], __m128i *abef, __m128i *cdgh) {
    __m128i dcba = _mm_loadu_si128((const __m128i *)&state[0]);
    __m128i hgfe = _mm_loadu_si128((const __m128i *)&state[4]);
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    *abef = _mm_alignr_epi8(cdab, efgh, 8);
    *cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
}

TARGET static inline void store_state(uint32_t state[8], __m128i abef, __m128i cdgh) {
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)&state[0], _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128((__m128i *)&state[4], _mm_alignr_epi8(dchg, feba, 8));
}

// Four rounds: two SHA256RNDS2, each taking two words (W + K) from the low half of `wk`.
#define ROUNDS4(abef, cdgh, wk)                                      \
    do {                                                             \
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);                \
        abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0E)); \
    } while (0)

TARGET void bunker_sha256_blocks(uint32_t state[8], const void *bytes, size_t blocks) {
    const uint8_t *data = bytes;
    const __m128i big_endian = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i abef, cdgh;
    load_state(state, &abef, &cdgh);
    for (; blocks > 0; blocks--, data += 64) {
        __m128i x[4];
        const __m128i abef0 = abef, cdgh0 = cdgh;
#pragma clang loop unroll(full)
        for (int g = 0; g < 16; g++) {
            if (g < 4) {
                x[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16 * g)), big_endian);
            } else {
                x[g & 3] = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(x[g & 3], x[(g + 1) & 3]), _mm_alignr_epi8(x[(g + 3) & 3], x[(g + 2) & 3], 4)), x[(g + 3) & 3]);
            }
            __m128i wk = _mm_add_epi32(x[g & 3], _mm_load_si128((const __m128i *)&K[4 * g]));
            ROUNDS4(abef, cdgh, wk);
        }
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }
    store_state(state, abef, cdgh);
}

TARGET void bunker_sha256_blocks_x2(uint32_t a[8], const void *bytes_a, uint32_t b[8], const void *bytes_b, size_t blocks) {
    const uint8_t *data_a = bytes_a, *data_b = bytes_b;
    const __m128i big_endian = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i abef_a, cdgh_a, abef_b, cdgh_b;
    load_state(a, &abef_a, &cdgh_a);
    load_state(b, &abef_b, &cdgh_b);
    for (; blocks > 0; blocks--, data_a += 64, data_b += 64) {
        __m128i xa[4], xb[4];
        const __m128i abef_a0 = abef_a, cdgh_a0 = cdgh_a, abef_b0 = abef_b, cdgh_b0 = cdgh_b;
#pragma clang loop unroll(full)
        for (int g = 0; g < 16; g++) {
            if (g < 4) {
                xa[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data_a + 16 * g)), big_endian);
                xb[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data_b + 16 * g)), big_endian);
            } else {
                xa[g & 3] = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(xa[g & 3], xa[(g + 1) & 3]), _mm_alignr_epi8(xa[(g + 3) & 3], xa[(g + 2) & 3], 4)), xa[(g + 3) & 3]);
                xb[g & 3] = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(xb[g & 3], xb[(g + 1) & 3]), _mm_alignr_epi8(xb[(g + 3) & 3], xb[(g + 2) & 3], 4)), xb[(g + 3) & 3]);
            }
            const __m128i k = _mm_load_si128((const __m128i *)&K[4 * g]);
            __m128i wka = _mm_add_epi32(xa[g & 3], k);
            __m128i wkb = _mm_add_epi32(xb[g & 3], k);
            cdgh_a = _mm_sha256rnds2_epu32(cdgh_a, abef_a, wka);
            cdgh_b = _mm_sha256rnds2_epu32(cdgh_b, abef_b, wkb);
            abef_a = _mm_sha256rnds2_epu32(abef_a, cdgh_a, _mm_shuffle_epi32(wka, 0x0E));
            abef_b = _mm_sha256rnds2_epu32(abef_b, cdgh_b, _mm_shuffle_epi32(wkb, 0x0E));
        }
        abef_a = _mm_add_epi32(abef_a, abef_a0);
        cdgh_a = _mm_add_epi32(cdgh_a, cdgh_a0);
        abef_b = _mm_add_epi32(abef_b, abef_b0);
        cdgh_b = _mm_add_epi32(cdgh_b, cdgh_b0);
    }
    store_state(a, abef_a, cdgh_a);
    store_state(b, abef_b, cdgh_b);
}

#else

// Never called (see bunker_sha256_hw_available); a digest computed here would be wrong, so a
// caller that forgot to ask stops at once instead.
int bunker_sha256_hw_available(void) { return 0; }
void bunker_sha256_blocks(uint32_t state[8], const void *data, size_t blocks) {
    (void)state; (void)data; (void)blocks;
    __builtin_trap();
}
void bunker_sha256_blocks_x2(uint32_t a[8], const void *data_a, uint32_t b[8], const void *data_b, size_t blocks) {
    (void)a; (void)data_a; (void)b; (void)data_b; (void)blocks;
    __builtin_trap();
}

#endif
