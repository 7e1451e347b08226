/* BLAKE3 job kernel, 16 lanes in AVX-512 registers (F + VL + BW).
 *
 * Word-sliced: register i holds state word i of all 16 lanes, so G needs no shuffles and the
 * diagonal step only renames registers. Each lane's 64-byte block is loaded as one row and the
 * 16x16 word matrix is transposed in registers (unpack 32, unpack 64, two 128-bit shuffles).
 * Counter, block length and flags are per-lane vectors, so lanes hash unrelated messages.
 */
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512vl,avx512bw")
#include <immintrin.h>

#include "blake3/blake3_impl.h"

#define LANES 16

#define ADD(a, b) _mm512_add_epi32(a, b)
#define XOR(a, b) _mm512_xor_si512(a, b)
#define ROTR(x, c) _mm512_ror_epi32(x, c)

#define G(a, b, c, d, x, y)           \
    do {                              \
        a = ADD(ADD(a, b), x);        \
        d = ROTR(XOR(d, a), 16);      \
        c = ADD(c, d);                \
        b = ROTR(XOR(b, c), 12);      \
        a = ADD(ADD(a, b), y);        \
        d = ROTR(XOR(d, a), 8);       \
        c = ADD(c, d);                \
        b = ROTR(XOR(b, c), 7);       \
    } while (0)

static inline void transpose16(__m512i r[16], __m512i m[16]) {
    __m512i t[16], u[16];
    for (int g = 0; g < 4; g++) {
        __m512i *rg = r + 4 * g;
        t[4 * g + 0] = _mm512_unpacklo_epi32(rg[0], rg[1]);
        t[4 * g + 1] = _mm512_unpackhi_epi32(rg[0], rg[1]);
        t[4 * g + 2] = _mm512_unpacklo_epi32(rg[2], rg[3]);
        t[4 * g + 3] = _mm512_unpackhi_epi32(rg[2], rg[3]);
        /* u[4g + w]: in 128-bit lane k, word 4k+w of rows 4g..4g+3 */
        u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g + 0], t[4 * g + 2]);
        u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g + 0], t[4 * g + 2]);
        u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
        u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    for (int w = 0; w < 4; w++) {
        __m512i x0 = _mm512_shuffle_i32x4(u[w], u[4 + w], 0x44);
        __m512i x1 = _mm512_shuffle_i32x4(u[8 + w], u[12 + w], 0x44);
        __m512i x2 = _mm512_shuffle_i32x4(u[w], u[4 + w], 0xEE);
        __m512i x3 = _mm512_shuffle_i32x4(u[8 + w], u[12 + w], 0xEE);
        m[w] = _mm512_shuffle_i32x4(x0, x1, 0x88);
        m[4 + w] = _mm512_shuffle_i32x4(x0, x1, 0xDD);
        m[8 + w] = _mm512_shuffle_i32x4(x2, x3, 0x88);
        m[12 + w] = _mm512_shuffle_i32x4(x2, x3, 0xDD);
    }
}

static void hash_group(const uint32_t key[8], const b3_job *jobs, size_t n, size_t blocks) {
    static const uint8_t zero_block[B3_BLOCK_BYTES];
    uint8_t scratch[LANES][B3_BLOCK_BYTES];
    uint32_t ctr_lo[LANES], ctr_hi[LANES], lens[LANES], flags[LANES];
    __m512i h[8];
    for (int i = 0; i < 8; i++) h[i] = _mm512_set1_epi32((int)key[i]);
    for (size_t j = 0; j < LANES; j++) {
        uint64_t c = j < n ? jobs[j].counter : 0;
        ctr_lo[j] = (uint32_t)c;
        ctr_hi[j] = (uint32_t)(c >> 32);
    }
    const __m512i v_ctr_lo = _mm512_loadu_si512(ctr_lo);
    const __m512i v_ctr_hi = _mm512_loadu_si512(ctr_hi);

    for (size_t b = 0; b < blocks; b++) {
        __m512i rows[16], m[16];
        for (size_t j = 0; j < LANES; j++) {
            const uint8_t *p = zero_block;
            lens[j] = 0;
            flags[j] = 0;
            if (j < n) p = b3_lane_block(&jobs[j], b, blocks, scratch[j], &lens[j], &flags[j]);
            rows[j] = _mm512_loadu_si512(p);
        }
        transpose16(rows, m);
        __m512i v[16] = {
            h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7],
            _mm512_set1_epi32((int)B3_IV[0]), _mm512_set1_epi32((int)B3_IV[1]),
            _mm512_set1_epi32((int)B3_IV[2]), _mm512_set1_epi32((int)B3_IV[3]),
            v_ctr_lo, v_ctr_hi, _mm512_loadu_si512(lens), _mm512_loadu_si512(flags),
        };
#pragma GCC unroll 7
        for (int r = 0; r < 7; r++) B3_ROUND(G, v, m, r);
        for (int i = 0; i < 8; i++) h[i] = XOR(v[i], v[i + 8]);
    }

    uint32_t words[8][LANES];
    for (int i = 0; i < 8; i++) _mm512_storeu_si512(words[i], h[i]);
    for (size_t j = 0; j < n; j++)
        for (int i = 0; i < 8; i++) b3_store32(jobs[j].out + 4 * i, words[i][j]);
}

void engine_blake3_jobs_avx512(const uint32_t key[8], const b3_job *jobs, size_t n,
                               size_t blocks) {
    for (size_t i = 0; i < n; i += LANES) {
        size_t take = n - i < LANES ? n - i : LANES;
        if (take < 4) {
            /* A nearly empty group costs a full 16-lane pass; a few scalar lanes are cheaper. */
            engine_blake3_jobs_portable(key, jobs + i, take, blocks);
        } else {
            hash_group(key, jobs + i, take, blocks);
        }
    }
}
#endif
