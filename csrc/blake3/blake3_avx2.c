/* BLAKE3 kernels, 8 lanes in AVX2 registers: jobs, short messages and Merkle nodes.
 *
 * Same word-sliced layout as the AVX-512 file; each block is two 256-bit rows per lane, and the
 * two 8x8 word matrices are transposed in registers; the next group's messages are prefetched
 * while one group is hashed. The jobs kernel stages each lane's blocks in L1 message by message
 * (a partial last block by masked word loads, never past the message); the short-message kernel
 * (the packed form) loads its blocks straight from the messages. All three run their
 * compressions through compress8, inline assembly with a fixed register plan. Rotations by 16
 * and 8 are byte shuffles, by 12 and 7 shift/or pairs (AVX2 has no vector rotate).
 */
#if defined(__x86_64__)
#pragma GCC target("avx2")
#include <immintrin.h>

#include "blake3/blake3_impl.h"

#define LANES 8

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

/* The 16 message words (m[w] = word w of every lane) of the full block at offset `off` of the
 * eight messages p[0..8). Each row holds one 16-byte quarter of lane j in its low half and the
 * same quarter of lane j + 4 in its high half (a 128-bit load and an insert from memory), so a
 * 4x4 word transpose inside each half finishes the job: no lane-crossing permutes, 32 shuffles
 * per block instead of 48. */
static inline void load_block_rows(const uint8_t *const p[LANES], size_t off, __m256i m[16]) {
    for (int q = 0; q < 4; q++) {
        __m256i r[4];
        for (int j = 0; j < 4; j++)
            r[j] = _mm256_inserti128_si256(
                _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(p[j] + off + 16 * q))),
                _mm_loadu_si128((const __m128i *)(p[j + 4] + off + 16 * q)), 1);
        __m256i t0 = _mm256_unpacklo_epi32(r[0], r[1]), t1 = _mm256_unpackhi_epi32(r[0], r[1]);
        __m256i t2 = _mm256_unpacklo_epi32(r[2], r[3]), t3 = _mm256_unpackhi_epi32(r[2], r[3]);
        m[4 * q + 0] = _mm256_unpacklo_epi64(t0, t2);
        m[4 * q + 1] = _mm256_unpackhi_epi64(t0, t2);
        m[4 * q + 2] = _mm256_unpacklo_epi64(t1, t3);
        m[4 * q + 3] = _mm256_unpackhi_epi64(t1, t3);
    }
}

/* The 16 message words of a block that holds only `take` < 64 bytes at p, zero-padded, without
 * reading a byte past them: whole words by a masked load (masked-out words are not read and
 * cannot fault), the last 1-3 bytes by hand. */
static inline void load_partial(const uint8_t *p, uint32_t take, __m256i *lo, __m256i *hi) {
    const __m256i idx_lo = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i idx_hi = _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15);
    uint32_t words = take >> 2, rem = take & 3;
    __m256i v_words = _mm256_set1_epi32((int)words);
    *lo = _mm256_maskload_epi32((const int *)p, _mm256_cmpgt_epi32(v_words, idx_lo));
    *hi = _mm256_maskload_epi32((const int *)(p + 32), _mm256_cmpgt_epi32(v_words, idx_hi));
    if (rem) {
        const uint8_t *t = p + 4 * words;
        uint32_t w = t[0];
        if (rem > 1) w |= (uint32_t)t[1] << 8;
        if (rem > 2) w |= (uint32_t)t[2] << 16;
        __m256i tail = _mm256_set1_epi32((int)w);
        *lo = _mm256_or_si256(*lo, _mm256_and_si256(tail, _mm256_cmpeq_epi32(v_words, idx_lo)));
        *hi = _mm256_or_si256(*hi, _mm256_and_si256(tail, _mm256_cmpeq_epi32(v_words, idx_hi)));
    }
}

/* ---- one 8-lane compression with a fixed register plan (inline assembly) -------------------
 *
 * The compression of every kernel below, written out instruction by instruction. GCC's own
 * allocation of B3_ROUND in intrinsics (16 state vectors, 16 message vectors, the two shuffle
 * masks and a temporary on 16 registers) spilled and reloaded ~95 vectors per compression, and
 * the short-message kernel ran ~20 % slower with it (thread CPU time, 100,000 x 250 B packed:
 * 3.16-3.22 against 3.90-4.00 GB/s, though only 3 % more instructions). Here state word
 * i lives in ymm<i> throughout; the message words are read from memory by the additions that use
 * them, and the shuffle masks by the shuffles; the temporary the shift/or rotations need is
 * ymm8, word 8 living in a stack slot across each group of four rotations and read back by the
 * addition that next updates it. The four G functions of a column (or diagonal) step run side by
 * side, ordered so that word 8 is always the first lane's c. Per compression: the 1,008
 * instructions of the G functions, 30 stores of word 8, 14 loads of the state and 8 stores of
 * the new chaining value. */
static const _Alignas(32) uint8_t B3A_SHUF[64] = {
    2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13,    /* rotate right by 16 */
    2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13,
    1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12,    /* rotate right by 8 */
    1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12,
};

#define B3A_R(x) "%%ymm" #x
#define B3A_M(i) #i "*32(%[m])"
#define B3A_OP(op, s, t, d) op " " s ", " t ", " d "\n\t"
#define B3A_OP4(op, s0, t0, d0, s1, t1, d1, s2, t2, d2, s3, t3, d3) \
    B3A_OP(op, s0, t0, d0) B3A_OP(op, s1, t1, d1) B3A_OP(op, s2, t2, d2) B3A_OP(op, s3, t3, d3)
/* b = b >>> n, with ymm8 as the temporary */
#define B3A_ROT(b, n, l)                                        \
    "vpsrld $" #n ", " B3A_R(b) ", %%ymm8\n\t"                  \
    "vpslld $" #l ", " B3A_R(b) ", " B3A_R(b) "\n\t"            \
    "vpor %%ymm8, " B3A_R(b) ", " B3A_R(b) "\n\t"

/* Half of a G step in four lanes (a_i, b_i, c_i, d_i; lane 0's c is word 8, held in the slot on
 * entry and on exit), message words w_i, the shuffle mask at offset `sh` of B3A_SHUF, rotation
 * right by n (left shift l = 32 - n). */
#define B3A_GHALF(w0, w1, w2, w3, sh, n, l, a0, a1, a2, a3, b0, b1, b2, b3, c1, c2, c3, d0, d1,   \
                  d2, d3)                                                                        \
    B3A_OP4("vpaddd", B3A_M(w0), B3A_R(a0), B3A_R(a0), B3A_M(w1), B3A_R(a1), B3A_R(a1),          \
            B3A_M(w2), B3A_R(a2), B3A_R(a2), B3A_M(w3), B3A_R(a3), B3A_R(a3))                    \
    B3A_OP4("vpaddd", B3A_R(b0), B3A_R(a0), B3A_R(a0), B3A_R(b1), B3A_R(a1), B3A_R(a1),          \
            B3A_R(b2), B3A_R(a2), B3A_R(a2), B3A_R(b3), B3A_R(a3), B3A_R(a3))                    \
    B3A_OP4("vpxor", B3A_R(a0), B3A_R(d0), B3A_R(d0), B3A_R(a1), B3A_R(d1), B3A_R(d1),           \
            B3A_R(a2), B3A_R(d2), B3A_R(d2), B3A_R(a3), B3A_R(d3), B3A_R(d3))                    \
    B3A_OP4("vpshufb", #sh "(%[k])", B3A_R(d0), B3A_R(d0), #sh "(%[k])", B3A_R(d1), B3A_R(d1),   \
            #sh "(%[k])", B3A_R(d2), B3A_R(d2), #sh "(%[k])", B3A_R(d3), B3A_R(d3))              \
    B3A_OP4("vpaddd", "%[s]", B3A_R(d0), "%%ymm8", B3A_R(d1), B3A_R(c1), B3A_R(c1),              \
            B3A_R(d2), B3A_R(c2), B3A_R(c2), B3A_R(d3), B3A_R(c3), B3A_R(c3))                    \
    B3A_OP4("vpxor", "%%ymm8", B3A_R(b0), B3A_R(b0), B3A_R(c1), B3A_R(b1), B3A_R(b1),            \
            B3A_R(c2), B3A_R(b2), B3A_R(b2), B3A_R(c3), B3A_R(b3), B3A_R(b3))                    \
    "vmovdqa %%ymm8, %[s]\n\t"                                                                   \
    B3A_ROT(b0, n, l) B3A_ROT(b1, n, l) B3A_ROT(b2, n, l) B3A_ROT(b3, n, l)

/* Four G functions: message words x_i, then y_i */
#define B3A_G4(x0, x1, x2, x3, y0, y1, y2, y3, a0, a1, a2, a3, b0, b1, b2, b3, c1, c2, c3, d0, d1, \
               d2, d3)                                                                           \
    B3A_GHALF(x0, x1, x2, x3, 0, 12, 20, a0, a1, a2, a3, b0, b1, b2, b3, c1, c2, c3, d0, d1, d2,  \
              d3)                                                                                \
    B3A_GHALF(y0, y1, y2, y3, 32, 7, 25, a0, a1, a2, a3, b0, b1, b2, b3, c1, c2, c3, d0, d1, d2,  \
              d3)

/* One round, message words in schedule order: columns, then diagonals (lanes ordered G2, G3,
 * G0, G1 so that the first lane's c is word 8). */
#define B3A_ROUND(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15)           \
    B3A_G4(s0, s2, s4, s6, s1, s3, s5, s7, 0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15)     \
    B3A_G4(s12, s14, s8, s10, s13, s15, s9, s11, 2, 3, 0, 1, 7, 4, 5, 6, 9, 10, 11, 13, 14, 15,   \
           12)

#define B3A_LOAD(i) "vmovdqa " #i "*32(%[st]), %%ymm" #i "\n\t"

/* One compression of eight lanes: st[0..8) the chaining values (word-sliced, replaced by the
 * new ones), st[8..16) the rest of the initial state (IV words 0-3, counter low and high, block
 * length, flags; IV word 8 is kept in the slot: st[8] is read, not written), msg[16] the message
 * words. The rounds' schedule is B3_SCHEDULE's (blake3_impl.h), written out. */
static inline __attribute__((always_inline)) void compress8(__m256i st[16], const __m256i msg[16]) {
    __m256i slot;
    __asm__(
        B3A_LOAD(0) B3A_LOAD(1) B3A_LOAD(2) B3A_LOAD(3) B3A_LOAD(4) B3A_LOAD(5) B3A_LOAD(6)
        B3A_LOAD(7) B3A_LOAD(9) B3A_LOAD(10) B3A_LOAD(11) B3A_LOAD(12) B3A_LOAD(13) B3A_LOAD(14)
        B3A_LOAD(15)
        "vmovdqa 8*32(%[st]), %%ymm8\n\t"
        "vmovdqa %%ymm8, %[s]\n\t"
        B3A_ROUND(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
        B3A_ROUND(2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)
        B3A_ROUND(3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1)
        B3A_ROUND(10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6)
        B3A_ROUND(12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4)
        B3A_ROUND(9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7)
        B3A_ROUND(11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13)
        /* h_i = v_i ^ v_{i+8}; v_8 from the slot */
        "vpxor %[s], %%ymm0, %%ymm0\n\t"
        "vmovdqa %%ymm0, (%[st])\n\t"
        "vpxor %%ymm9, %%ymm1, %%ymm1\n\t"
        "vmovdqa %%ymm1, 32(%[st])\n\t"
        "vpxor %%ymm10, %%ymm2, %%ymm2\n\t"
        "vmovdqa %%ymm2, 64(%[st])\n\t"
        "vpxor %%ymm11, %%ymm3, %%ymm3\n\t"
        "vmovdqa %%ymm3, 96(%[st])\n\t"
        "vpxor %%ymm12, %%ymm4, %%ymm4\n\t"
        "vmovdqa %%ymm4, 128(%[st])\n\t"
        "vpxor %%ymm13, %%ymm5, %%ymm5\n\t"
        "vmovdqa %%ymm5, 160(%[st])\n\t"
        "vpxor %%ymm14, %%ymm6, %%ymm6\n\t"
        "vmovdqa %%ymm6, 192(%[st])\n\t"
        "vpxor %%ymm15, %%ymm7, %%ymm7\n\t"
        "vmovdqa %%ymm7, 224(%[st])"
        : [s] "=m"(slot), "+m"(*(__m256i(*)[16])st)
        : [st] "r"(st), [m] "r"(msg), [k] "r"(B3A_SHUF), "m"(*(const __m256i(*)[16])msg),
          "m"(*(const uint8_t(*)[64])B3A_SHUF)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
          "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}

/* Blocks of every lane copied into an L1-resident stage before they are hashed. */
#define STAGE_BLOCKS 4

/* Copy blocks b0 .. b0+count-1 of every lane into stage[w][lane], message by message (each
 * message read front to back in one go; see the AVX-512 file). A partial last block goes
 * through load_partial, so no byte past the message is read. Lanes without a job get zero
 * rows. */
static inline void stage_blocks(const b3_job *jobs, size_t n, size_t b0, size_t count,
                                uint8_t stage[STAGE_BLOCKS][LANES][B3_BLOCK_BYTES]) {
    const __m256i zero = _mm256_setzero_si256();
    for (size_t j = 0; j < LANES; j++) {
        const uint8_t *p = j < n ? jobs[j].input : NULL;
        uint32_t len = j < n ? jobs[j].len : 0;
        for (size_t w = 0; w < count; w++) {
            uint32_t offset = (uint32_t)((b0 + w) * B3_BLOCK_BYTES);
            __m256i lo = zero, hi = zero;
            if (len >= offset + B3_BLOCK_BYTES) {
                lo = _mm256_loadu_si256((const __m256i *)(p + offset));
                hi = _mm256_loadu_si256((const __m256i *)(p + offset + 32));
            } else if (len > offset) {
                load_partial(p + offset, len - offset, &lo, &hi);
            }
            _mm256_store_si256((__m256i *)stage[w][j], lo);
            _mm256_store_si256((__m256i *)(stage[w][j] + 32), hi);
        }
    }
}

static void hash_group(const uint32_t key[8], const b3_job *jobs, size_t n, size_t blocks,
                       const b3_job *next, size_t next_n) {
    _Alignas(32) uint8_t stage[STAGE_BLOCKS][LANES][B3_BLOCK_BYTES];
    _Alignas(32) uint32_t ctr_lo[LANES] = {0}, ctr_hi[LANES] = {0}, lens[LANES] = {0},
                          flags[LANES] = {0}, flags_start[LANES] = {0}, flags_end[LANES] = {0};
    for (size_t j = 0; j < n; j++) {
        ctr_lo[j] = (uint32_t)jobs[j].counter;
        ctr_hi[j] = (uint32_t)(jobs[j].counter >> 32);
        lens[j] = jobs[j].len;
        flags[j] = jobs[j].flags;
        flags_start[j] = jobs[j].flags_start;
        flags_end[j] = jobs[j].flags_end;
    }
    _Alignas(32) __m256i st[16];
    for (int i = 0; i < 8; i++) st[i] = _mm256_set1_epi32((int)key[i]);
    for (int i = 0; i < 4; i++) st[8 + i] = _mm256_set1_epi32((int)B3_IV[i]);
    st[12] = _mm256_load_si256((const __m256i *)ctr_lo);
    st[13] = _mm256_load_si256((const __m256i *)ctr_hi);
    const __m256i v_len = _mm256_load_si256((const __m256i *)lens);
    const __m256i v_flags = _mm256_load_si256((const __m256i *)flags);
    for (size_t b0 = 0; b0 < blocks; b0 += STAGE_BLOCKS) {
        size_t count = blocks - b0 < STAGE_BLOCKS ? blocks - b0 : STAGE_BLOCKS;
        /* The next group's lines for the blocks staged now, asked for now (spread over the
         * group as in the message kernel, not all before it). */
        for (size_t j = 0; j < next_n; j++) {
            const uint8_t *p = next[j].input;
            uint32_t len = next[j].len;
            for (size_t w = 0; w < count; w++) {
                uint32_t off = (uint32_t)((b0 + w) * B3_BLOCK_BYTES);
                if (off < len) _mm_prefetch((const char *)(p + off), _MM_HINT_T0);
            }
            if (b0 + count == blocks && len) _mm_prefetch((const char *)(p + len - 1), _MM_HINT_T0);
        }
        stage_blocks(jobs, n, b0, count, stage);
        for (size_t w = 0; w < count; w++) {
            size_t b = b0 + w;
            __m256i lo[8], hi[8];
            _Alignas(32) __m256i m[16];
            for (size_t j = 0; j < LANES; j++) {
                lo[j] = _mm256_load_si256((const __m256i *)stage[w][j]);
                hi[j] = _mm256_load_si256((const __m256i *)(stage[w][j] + 32));
            }
            transpose8(lo, m);
            transpose8(hi, m + 8);
            /* block_len = clamp(len - 64 b, 0, 64); start and end flags on the first and last */
            __m256i block_len = _mm256_sub_epi32(v_len, _mm256_set1_epi32((int)(64 * b)));
            block_len = _mm256_min_epi32(_mm256_max_epi32(block_len, _mm256_setzero_si256()),
                                         _mm256_set1_epi32(B3_BLOCK_BYTES));
            __m256i f = v_flags;
            if (b == 0) f = _mm256_or_si256(f, _mm256_load_si256((const __m256i *)flags_start));
            if (b + 1 == blocks)
                f = _mm256_or_si256(f, _mm256_load_si256((const __m256i *)flags_end));
            st[14] = block_len;
            st[15] = f;
            compress8(st, m);
        }
    }
    /* st[i] holds word i of every lane; transposed, row j is lane j's chaining value. */
    __m256i rows[8];
    transpose8(st, rows);
    for (size_t j = 0; j < n; j++) _mm256_storeu_si256((__m256i *)jobs[j].out, rows[j]);
}

/* Ask for the inputs of jobs[0..count) ahead of time: eight messages at a stride are read a
 * block at a time, a pattern the hardware prefetchers pick up too late (measured: the loads of
 * the next group stalled a third of the time without this). All at once only before a group
 * hashed by the portable code; hash_group spreads the same prefetches over its stages (all at
 * once, one 64 MiB message on avx2 hashed at 2.66-2.75 GB/s, spread 3.44-3.55). */
static inline void prefetch_jobs(const b3_job *jobs, size_t count) {
    for (size_t j = 0; j < count; j++) {
        const uint8_t *p = jobs[j].input;
        uint32_t len = jobs[j].len;
        for (uint32_t off = 0; off < len; off += 64) _mm_prefetch((const char *)(p + off), _MM_HINT_T0);
        if (len) _mm_prefetch((const char *)(p + len - 1), _MM_HINT_T0);
    }
}

void engine_blake3_jobs_avx2(const uint32_t key[8], const b3_job *jobs, size_t n, size_t blocks) {
    for (size_t i = 0; i < n; i += LANES) {
        size_t take = n - i < LANES ? n - i : LANES;
        size_t next = i + LANES < n ? (n - i - LANES < LANES ? n - i - LANES : LANES) : 0;
        if (take < 3) {
            if (next) prefetch_jobs(jobs + i + LANES, next);
            engine_blake3_jobs_portable(key, jobs + i, take, blocks);
        } else {
            hash_group(key, jobs + i, take, blocks, jobs + i + LANES, next);
        }
    }
}

/* ---- short messages: blocks loaded straight from the messages ---------------------------- */

/* One group of up to eight short messages, one per lane. Lanes past the group's end repeat
 * lane 0 (valid reads, results dropped), so the loads need no per-lane branch. */
typedef struct {
    const uint8_t *p[LANES];
    uint8_t *out[LANES];
    _Alignas(32) uint32_t len[LANES];
} msg_lanes;

static inline void fill_lanes(msg_lanes *l, const b3_msgs *msgs, const uint32_t *idx,
                              size_t first, size_t count) {
    for (size_t j = 0; j < LANES; j++) {
        size_t k = j < count ? j : 0;
        size_t i = first + (idx ? idx[k] : k);
        l->p[j] = b3_msg_ptr(msgs, i);
        l->len[j] = (uint32_t)b3_msg_len(msgs, i);
        l->out[j] = b3_out_at(msgs->out, i);
    }
}

/* Every line of the group's messages at once (used before a one-message group only; hash_lanes
 * spreads the prefetches of the next group over its compressions). */
static inline void prefetch_lanes(const msg_lanes *l, size_t count, size_t blocks) {
    for (size_t j = 0; j < count; j++) {
        for (size_t b = 0; b < blocks; b++) _mm_prefetch((const char *)(l->p[j] + 64 * b), _MM_HINT_T0);
        if (l->len[j]) _mm_prefetch((const char *)(l->p[j] + l->len[j] - 1), _MM_HINT_T0);
    }
}

/* How to read a last block of `take` bytes (0..64): whole words by masked loads (masked-out
 * words are neither read nor faulted), and, when take is not a multiple of 4, the last 1-3 bytes
 * from the 4-byte word that ends the message, shifted down into word take / 4 (a variable shift
 * by 32 or more gives 0, so the shift counts also select that word). */
typedef struct {
    __m256i keep_lo, keep_hi, shift_lo, shift_hi;
    uint32_t rem;
} last_block;

static inline last_block last_block_for(uint32_t take) {
    const __m256i idx_lo = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i idx_hi = _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15);
    const __m256i all = _mm256_set1_epi32(32);
    last_block t;
    __m256i words = _mm256_set1_epi32((int)(take >> 2));
    t.rem = take & 3;
    t.keep_lo = _mm256_cmpgt_epi32(words, idx_lo);
    t.keep_hi = _mm256_cmpgt_epi32(words, idx_hi);
    __m256i shift = _mm256_set1_epi32((int)(32 - 8 * t.rem));
    t.shift_lo = _mm256_blendv_epi8(all, shift, _mm256_cmpeq_epi32(words, idx_lo));
    t.shift_hi = _mm256_blendv_epi8(all, shift, _mm256_cmpeq_epi32(words, idx_hi));
    return t;
}

/* The last block of a message of `len` >= 4 bytes (so the word ending it lies inside it) that
 * starts at q, read as `t` says. */
static inline void load_last(const uint8_t *q, const uint8_t *end, const last_block *t,
                             __m256i *lo, __m256i *hi) {
    *lo = _mm256_maskload_epi32((const int *)q, t->keep_lo);
    *hi = _mm256_maskload_epi32((const int *)(q + 32), t->keep_hi);
    if (t->rem) {
        uint32_t w;
        memcpy(&w, end - 4, 4);
        __m256i tail = _mm256_set1_epi32((int)w);
        *lo = _mm256_or_si256(*lo, _mm256_srlv_epi32(tail, t->shift_lo));
        *hi = _mm256_or_si256(*hi, _mm256_srlv_epi32(tail, t->shift_hi));
    }
}

/* The rows of the last block of every lane. When every lane's last block has the same length
 * (equal-length messages: the common case of a batch of one size) the masks are made once. */
static inline void load_last_rows(const msg_lanes *l, size_t blocks, __m256i take,
                                  __m256i lo[LANES], __m256i hi[LANES]) {
    size_t offset = B3_BLOCK_BYTES * (blocks - 1);
    uint32_t take0 = l->len[0] - (uint32_t)offset;
    __m256i same = _mm256_cmpeq_epi32(take, _mm256_set1_epi32((int)take0));
    if (_mm256_movemask_epi8(same) == -1 && take0 == B3_BLOCK_BYTES) {
        /* Full last blocks (lengths a multiple of 64): plain loads, which measured faster than
         * masked ones with every word kept (64-byte messages 2.1 -> 3.0 GB/s). Making every
         * half-block with all or none of its words kept a plain load or zero, so that a lane
         * has at most one masked load, measured slower (250 bytes 3.2 -> 2.9 GB/s). */
        for (size_t j = 0; j < LANES; j++) {
            lo[j] = _mm256_loadu_si256((const __m256i *)(l->p[j] + offset));
            hi[j] = _mm256_loadu_si256((const __m256i *)(l->p[j] + offset + 32));
        }
        return;
    }
    if (_mm256_movemask_epi8(same) == -1 && l->len[0] >= 4) {
        last_block t = last_block_for(take0);
        for (size_t j = 0; j < LANES; j++)
            load_last(l->p[j] + offset, l->p[j] + l->len[j], &t, &lo[j], &hi[j]);
        return;
    }
    for (size_t j = 0; j < LANES; j++) {
        uint32_t take_j = l->len[j] - (uint32_t)offset;
        if (l->len[j] >= 4) {
            last_block t = last_block_for(take_j);
            load_last(l->p[j] + offset, l->p[j] + l->len[j], &t, &lo[j], &hi[j]);
        } else if (take_j) {
            load_partial(l->p[j] + offset, take_j, &lo[j], &hi[j]);
        } else {
            lo[j] = hi[j] = _mm256_setzero_si256();  /* the empty message: p may be NULL */
        }
    }
}

/* Hash the (up to) eight messages of `l`, all taking `blocks` blocks, and write the first
 * `count` hashes, prefetching the `next_count` messages of `next` (the next group) on the way. Every block but the last is full in every lane and is loaded straight from the
 * message (load_block_rows), the last one as two 256-bit rows per lane, transposed in registers;
 * no copy of the messages. The state between compressions is st[16] (compress8). */
static void hash_lanes(const uint32_t key[8], uint32_t flags, const msg_lanes *l, size_t count,
                       size_t blocks, const msg_lanes *next, size_t next_count) {
    _Alignas(32) __m256i st[16];
    for (int i = 0; i < 8; i++) st[i] = _mm256_set1_epi32((int)key[i]);
    for (int i = 0; i < 4; i++) st[8 + i] = _mm256_set1_epi32((int)B3_IV[i]);
    st[12] = st[13] = _mm256_setzero_si256();
    for (size_t b = 0; b < blocks; b++) {
        __m256i lo[8], hi[8], block_len;
        _Alignas(32) __m256i m[16];
        /* Block b of the next group's messages (and at the last block the lines that end
         * them), asked for now: eight prefetches per compression rather than all of the next
         * group's lines at once before it (prefetch_lanes), which under memory traffic from
         * other tenants dropped this kernel to 2.0-2.8 GB/s in some runs (thread CPU time,
         * 100,000 x 250 B packed) while spread it held 3.3-4.1 GB/s in the same minutes. */
        if (next_count) {
            /* all eight lanes: those past next_count repeat its lane 0 (fill_lanes) */
            for (size_t j = 0; j < LANES; j++)
                _mm_prefetch((const char *)(next->p[j] + B3_BLOCK_BYTES * b), _MM_HINT_T0);
        }
        uint32_t f = flags;
        if (b == 0) f |= B3_CHUNK_START;
        if (b + 1 < blocks) {
            load_block_rows(l->p, B3_BLOCK_BYTES * b, m);
            block_len = _mm256_set1_epi32(B3_BLOCK_BYTES);
        } else {
            f |= B3_CHUNK_END | B3_ROOT;
            for (size_t j = 0; j < next_count; j++)
                if (next->len[j])
                    _mm_prefetch((const char *)(next->p[j] + next->len[j] - 1), _MM_HINT_T0);
            block_len = _mm256_sub_epi32(_mm256_load_si256((const __m256i *)l->len),
                                         _mm256_set1_epi32((int)(B3_BLOCK_BYTES * b)));
            load_last_rows(l, blocks, block_len, lo, hi);
            transpose8(lo, m);
            transpose8(hi, m + 8);
        }
        st[14] = block_len;
        st[15] = _mm256_set1_epi32((int)f);
        compress8(st, m);
    }
    __m256i rows[8];
    transpose8(st, rows);
    for (size_t j = 0; j < count; j++) _mm256_storeu_si256((__m256i *)l->out[j], rows[j]);
}

void engine_blake3_msgs_avx2(const uint32_t key[8], uint32_t flags, const b3_msgs *msgs,
                             const uint32_t *idx, size_t first, size_t n, size_t blocks) {
    msg_lanes lanes[2];
    size_t cur = 0;
    if (n) fill_lanes(&lanes[0], msgs, idx, first, n < LANES ? n : LANES);
    for (size_t i = 0; i < n; i += LANES) {
        size_t count = n - i < LANES ? n - i : LANES;
        size_t next = 0;
        if (i + LANES < n) {
            next = n - i - LANES < LANES ? n - i - LANES : LANES;
            fill_lanes(&lanes[cur ^ 1], msgs, idx ? idx + i + LANES : NULL,
                       idx ? first : first + i + LANES, next);
        }
        if (count == 1) {
            /* One message alone costs a full 8-lane pass; one scalar lane is cheaper. */
            const msg_lanes *l = &lanes[cur];
            b3_job job = {l->p[0], l->out[0], 0, l->len[0], (uint8_t)flags, B3_CHUNK_START,
                          B3_CHUNK_END | B3_ROOT};
            engine_blake3_jobs_portable(key, &job, 1, blocks);
            if (next) prefetch_lanes(&lanes[cur ^ 1], next, blocks);
        } else {
            hash_lanes(key, flags, &lanes[cur], count, blocks, &lanes[cur ^ 1], next);
        }
        cur ^= 1;
    }
}

void engine_blake3_nodes_avx2(const uint32_t key[8], const uint8_t *src, size_t count,
                              uint32_t flags, uint8_t *dst) {
    __m256i kv[8];
    for (int w = 0; w < 8; w++) kv[w] = _mm256_set1_epi32((int)key[w]);
    _Alignas(32) __m256i st[16];
    for (int i = 0; i < 4; i++) st[8 + i] = _mm256_set1_epi32((int)B3_IV[i]);
    st[12] = st[13] = _mm256_setzero_si256();
    st[14] = _mm256_set1_epi32(B3_BLOCK_BYTES);
    st[15] = _mm256_set1_epi32((int)flags);
    size_t i = 0;
    for (; i + LANES <= count; i += LANES) {
        const uint8_t *p[LANES];
        for (size_t j = 0; j < LANES; j++) p[j] = src + B3_BLOCK_BYTES * (i + j);
        _Alignas(32) __m256i m[16];
        load_block_rows(p, 0, m);
        for (int w = 0; w < 8; w++) st[w] = kv[w];
        compress8(st, m);
        __m256i rows[8];
        transpose8(st, rows);
        for (size_t j = 0; j < LANES; j++)
            _mm256_storeu_si256((__m256i *)(dst + B3_OUT_BYTES * (i + j)), rows[j]);
    }
    if (i < count) engine_blake3_nodes_portable(key, src + B3_BLOCK_BYTES * i, count - i, flags,
                                                dst + B3_OUT_BYTES * i);
}
#endif
