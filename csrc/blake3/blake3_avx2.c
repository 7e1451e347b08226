/* BLAKE3 job kernel, 8 lanes in AVX2 registers.
 *
 * Same word-sliced layout as the AVX-512 file; each lane's block is two 256-bit rows and the two
 * 8x8 word matrices are transposed in registers. Rotations by 16 and 8 are byte shuffles, by
 * 12 and 7 shift/or pairs (AVX2 has no vector rotate).
 */
#if defined(__x86_64__)
#pragma GCC target("avx2")
#include <immintrin.h>

#include "blake3/blake3_impl.h"

#define LANES 8

#define ADD(a, b) _mm256_add_epi32(a, b)
#define XOR(a, b) _mm256_xor_si256(a, b)

static inline __m256i rot16(__m256i x) {
    const __m256i s = _mm256_setr_epi8(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13,
                                       2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    return _mm256_shuffle_epi8(x, s);
}
static inline __m256i rot8(__m256i x) {
    const __m256i s = _mm256_setr_epi8(1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12,
                                       1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12);
    return _mm256_shuffle_epi8(x, s);
}
static inline __m256i rot12(__m256i x) {
    return _mm256_or_si256(_mm256_srli_epi32(x, 12), _mm256_slli_epi32(x, 20));
}
static inline __m256i rot7(__m256i x) {
    return _mm256_or_si256(_mm256_srli_epi32(x, 7), _mm256_slli_epi32(x, 25));
}

#define G(a, b, c, d, x, y)        \
    do {                           \
        a = ADD(ADD(a, b), x);     \
        d = rot16(XOR(d, a));      \
        c = ADD(c, d);             \
        b = rot12(XOR(b, c));      \
        a = ADD(ADD(a, b), y);     \
        d = rot8(XOR(d, a));       \
        c = ADD(c, d);             \
        b = rot7(XOR(b, c));       \
    } while (0)

/* rows[j] = 8 words of lane j; out[w] = word w of every lane. */
static inline void transpose8(const __m256i r[8], __m256i out[8]) {
    __m256i t[8], u[8];
    for (int g = 0; g < 2; g++) {
        const __m256i *rg = r + 4 * g;
        t[4 * g + 0] = _mm256_unpacklo_epi32(rg[0], rg[1]);
        t[4 * g + 1] = _mm256_unpackhi_epi32(rg[0], rg[1]);
        t[4 * g + 2] = _mm256_unpacklo_epi32(rg[2], rg[3]);
        t[4 * g + 3] = _mm256_unpackhi_epi32(rg[2], rg[3]);
        u[4 * g + 0] = _mm256_unpacklo_epi64(t[4 * g + 0], t[4 * g + 2]);
        u[4 * g + 1] = _mm256_unpackhi_epi64(t[4 * g + 0], t[4 * g + 2]);
        u[4 * g + 2] = _mm256_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
        u[4 * g + 3] = _mm256_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    for (int w = 0; w < 4; w++) {
        out[w] = _mm256_permute2x128_si256(u[w], u[4 + w], 0x20);
        out[4 + w] = _mm256_permute2x128_si256(u[w], u[4 + w], 0x31);
    }
}

static void hash_group(const uint32_t key[8], const b3_job *jobs, size_t n, size_t blocks) {
    static const uint8_t zero_block[B3_BLOCK_BYTES];
    uint8_t scratch[LANES][B3_BLOCK_BYTES];
    uint32_t ctr_lo[LANES], ctr_hi[LANES], lens[LANES], flags[LANES];
    __m256i h[8];
    for (int i = 0; i < 8; i++) h[i] = _mm256_set1_epi32((int)key[i]);
    for (size_t j = 0; j < LANES; j++) {
        uint64_t c = j < n ? jobs[j].counter : 0;
        ctr_lo[j] = (uint32_t)c;
        ctr_hi[j] = (uint32_t)(c >> 32);
    }
    const __m256i v_ctr_lo = _mm256_loadu_si256((const __m256i *)ctr_lo);
    const __m256i v_ctr_hi = _mm256_loadu_si256((const __m256i *)ctr_hi);

    for (size_t b = 0; b < blocks; b++) {
        __m256i lo[8], hi[8], m[16];
        for (size_t j = 0; j < LANES; j++) {
            const uint8_t *p = zero_block;
            lens[j] = 0;
            flags[j] = 0;
            if (j < n) p = b3_lane_block(&jobs[j], b, blocks, scratch[j], &lens[j], &flags[j]);
            lo[j] = _mm256_loadu_si256((const __m256i *)p);
            hi[j] = _mm256_loadu_si256((const __m256i *)(p + 32));
        }
        transpose8(lo, m);
        transpose8(hi, m + 8);
        __m256i v[16] = {
            h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7],
            _mm256_set1_epi32((int)B3_IV[0]), _mm256_set1_epi32((int)B3_IV[1]),
            _mm256_set1_epi32((int)B3_IV[2]), _mm256_set1_epi32((int)B3_IV[3]),
            v_ctr_lo, v_ctr_hi,
            _mm256_loadu_si256((const __m256i *)lens), _mm256_loadu_si256((const __m256i *)flags),
        };
#pragma GCC unroll 7
        for (int r = 0; r < 7; r++) B3_ROUND(G, v, m, r);
        for (int i = 0; i < 8; i++) h[i] = XOR(v[i], v[i + 8]);
    }

    uint32_t words[8][LANES];
    for (int i = 0; i < 8; i++) _mm256_storeu_si256((__m256i *)words[i], h[i]);
    for (size_t j = 0; j < n; j++)
        for (int i = 0; i < 8; i++) b3_store32(jobs[j].out + 4 * i, words[i][j]);
}

void engine_blake3_jobs_avx2(const uint32_t key[8], const b3_job *jobs, size_t n, size_t blocks) {
    for (size_t i = 0; i < n; i += LANES) {
        size_t take = n - i < LANES ? n - i : LANES;
        if (take < 3) {
            engine_blake3_jobs_portable(key, jobs + i, take, blocks);
        } else {
            hash_group(key, jobs + i, take, blocks);
        }
    }
}
#endif
