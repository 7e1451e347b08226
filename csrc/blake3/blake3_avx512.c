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

/* Blocks of every lane copied into an L1-resident stage before they are hashed. */
#define STAGE_BLOCKS 4

/* Copy blocks b0 .. b0+count-1 of every lane into stage[w][lane], message by message: each
 * message is read front to back in one go (the lines of one object are fetched together rather
 * than one block per lane per compression, which stalls on messages scattered over the heap).
 * A partial last block is a masked load: the bytes past the message are neither read nor
 * faulted, and the rest of the row is zero. Lanes without a job get zero rows. */
static inline void stage_blocks(const b3_job *jobs, size_t n, size_t b0, size_t count,
                                uint8_t stage[STAGE_BLOCKS][LANES][B3_BLOCK_BYTES]) {
    for (size_t j = 0; j < LANES; j++) {
        const uint8_t *p = j < n ? jobs[j].input : NULL;
        uint32_t len = j < n ? jobs[j].len : 0;
        for (size_t w = 0; w < count; w++) {
            uint32_t offset = (uint32_t)((b0 + w) * B3_BLOCK_BYTES);
            __m512i row;
            if (len >= offset + B3_BLOCK_BYTES) {
                row = _mm512_loadu_si512(p + offset);
            } else if (len > offset) {
                __mmask64 keep = ((__mmask64)1 << (len - offset)) - 1;
                row = _mm512_maskz_loadu_epi8(keep, p + offset);
            } else {
                row = _mm512_setzero_si512();
            }
            _mm512_store_si512(stage[w][j], row);
        }
    }
}

/* The 8x16 transpose of the chaining values: h[i] holds word i of every lane; afterwards
 * pairs[2 r] holds lane r (low half) and lane r + 4 (high half), pairs[2 r + 1] lanes r + 8 and
 * r + 12. */
static inline void lanes_to_rows(const __m512i h[8], __m512i pairs[8]) {
    __m512i t[8], u[8];
    for (int g = 0; g < 2; g++) {
        const __m512i *hg = h + 4 * g;
        t[4 * g + 0] = _mm512_unpacklo_epi32(hg[0], hg[1]);
        t[4 * g + 1] = _mm512_unpackhi_epi32(hg[0], hg[1]);
        t[4 * g + 2] = _mm512_unpacklo_epi32(hg[2], hg[3]);
        t[4 * g + 3] = _mm512_unpackhi_epi32(hg[2], hg[3]);
        /* u[4g + r]: in 128-bit chunk k, words 4g..4g+3 of lane 4k+r */
        u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g + 0], t[4 * g + 2]);
        u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g + 0], t[4 * g + 2]);
        u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
        u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    const __m512i lanes_01 = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
    const __m512i lanes_23 = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
    for (int r = 0; r < 4; r++) {
        pairs[2 * r] = _mm512_permutex2var_epi64(u[r], lanes_01, u[4 + r]);
        pairs[2 * r + 1] = _mm512_permutex2var_epi64(u[r], lanes_23, u[4 + r]);
    }
}

/* Lane `lane`'s 32 bytes out of lanes_to_rows' result. */
static inline __m256i lane_row(const __m512i pairs[8], size_t lane) {
    __m512i z = pairs[2 * (lane & 3) + (lane >> 3)];
    return (lane & 4) ? _mm512_extracti64x4_epi64(z, 1) : _mm512_castsi512_si256(z);
}

/* Write the 32-byte chaining value of lanes 0..n-1 to their jobs. */
static inline void store_lanes(const __m512i h[8], const b3_job *jobs, size_t n) {
    __m512i pairs[8];
    lanes_to_rows(h, pairs);
    for (size_t j = 0; j < n; j++) _mm256_storeu_si256((__m256i *)jobs[j].out, lane_row(pairs, j));
}

static void hash_group(const uint32_t key[8], const b3_job *jobs, size_t n, size_t blocks) {
    _Alignas(64) uint8_t stage[STAGE_BLOCKS][LANES][B3_BLOCK_BYTES];
    _Alignas(64) uint32_t ctr_lo[LANES] = {0}, ctr_hi[LANES] = {0}, lens[LANES] = {0},
                          flags[LANES] = {0}, flags_start[LANES] = {0}, flags_end[LANES] = {0};
    for (size_t j = 0; j < n; j++) {
        ctr_lo[j] = (uint32_t)jobs[j].counter;
        ctr_hi[j] = (uint32_t)(jobs[j].counter >> 32);
        lens[j] = jobs[j].len;
        flags[j] = jobs[j].flags;
        flags_start[j] = jobs[j].flags_start;
        flags_end[j] = jobs[j].flags_end;
    }
    __m512i h[8];
    for (int i = 0; i < 8; i++) h[i] = _mm512_set1_epi32((int)key[i]);
    for (size_t b0 = 0; b0 < blocks; b0 += STAGE_BLOCKS) {
        size_t count = blocks - b0 < STAGE_BLOCKS ? blocks - b0 : STAGE_BLOCKS;
        stage_blocks(jobs, n, b0, count, stage);
        const __m512i v_len = _mm512_load_si512(lens), v_flags = _mm512_load_si512(flags);
        for (size_t w = 0; w < count; w++) {
            size_t b = b0 + w;
            __m512i rows[16], m[16];
            for (size_t j = 0; j < LANES; j++) rows[j] = _mm512_load_si512(stage[w][j]);
            transpose16(rows, m);
            /* block_len = clamp(len - 64 b, 0, 64); start and end flags on the first and last */
            __m512i block_len = _mm512_sub_epi32(v_len, _mm512_set1_epi32((int)(64 * b)));
            block_len = _mm512_min_epi32(_mm512_max_epi32(block_len, _mm512_setzero_si512()),
                                         _mm512_set1_epi32(B3_BLOCK_BYTES));
            __m512i f = v_flags;
            if (b == 0) f = _mm512_or_si512(f, _mm512_load_si512(flags_start));
            if (b + 1 == blocks) f = _mm512_or_si512(f, _mm512_load_si512(flags_end));
            __m512i v[16] = {
                h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7],
                _mm512_set1_epi32((int)B3_IV[0]), _mm512_set1_epi32((int)B3_IV[1]),
                _mm512_set1_epi32((int)B3_IV[2]), _mm512_set1_epi32((int)B3_IV[3]),
                _mm512_load_si512(ctr_lo), _mm512_load_si512(ctr_hi), block_len, f,
            };
#pragma GCC unroll 7
            for (int r = 0; r < 7; r++) B3_ROUND(G, v, m, r);
            for (int i = 0; i < 8; i++) h[i] = XOR(v[i], v[i + 8]);
        }
    }
    store_lanes(h, jobs, n);
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

void engine_blake3_nodes_avx512(const uint32_t key[8], const uint8_t *src, size_t count,
                                uint32_t flags, uint8_t *dst) {
    size_t i = 0;
    for (; i + LANES <= count; i += LANES) {
        __m512i rows[16], m[16];
        for (size_t j = 0; j < LANES; j++) rows[j] = _mm512_loadu_si512(src + B3_BLOCK_BYTES * (i + j));
        transpose16(rows, m);
        __m512i v[16] = {
            _mm512_set1_epi32((int)key[0]), _mm512_set1_epi32((int)key[1]),
            _mm512_set1_epi32((int)key[2]), _mm512_set1_epi32((int)key[3]),
            _mm512_set1_epi32((int)key[4]), _mm512_set1_epi32((int)key[5]),
            _mm512_set1_epi32((int)key[6]), _mm512_set1_epi32((int)key[7]),
            _mm512_set1_epi32((int)B3_IV[0]), _mm512_set1_epi32((int)B3_IV[1]),
            _mm512_set1_epi32((int)B3_IV[2]), _mm512_set1_epi32((int)B3_IV[3]),
            _mm512_setzero_si512(), _mm512_setzero_si512(),
            _mm512_set1_epi32(B3_BLOCK_BYTES), _mm512_set1_epi32((int)flags),
        };
#pragma GCC unroll 7
        for (int r = 0; r < 7; r++) B3_ROUND(G, v, m, r);
        __m512i h[8], pairs[8];
        for (int w = 0; w < 8; w++) h[w] = XOR(v[w], v[w + 8]);
        lanes_to_rows(h, pairs);
        for (size_t j = 0; j < LANES; j++)
            _mm256_storeu_si256((__m256i *)(dst + B3_OUT_BYTES * (i + j)), lane_row(pairs, j));
    }
    if (i < count) engine_blake3_nodes_portable(key, src + B3_BLOCK_BYTES * i, count - i, flags,
                                                dst + B3_OUT_BYTES * i);
}
#endif
