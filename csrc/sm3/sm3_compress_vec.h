/* The one-message SM3 compression for the AVX2 and AVX-512 paths: scalar rounds (BMI2 rorx) fed
 * by a message expansion computed four words at a time in 128-bit registers.
 *
 * Included by sm3_avx2.c and sm3_avx512.c, which define the vector helpers first:
 *   SM3V_ROL(x, c)      rotate each 32-bit word of an __m128i left by c (a constant)
 *   SM3V_XOR3(x, y, z)  x ^ y ^ z
 *   SM3V_FN             the name of the function to define
 *
 * Expansion: W[j] = P1(W[j-16] ^ W[j-9] ^ (W[j-3] <<< 15)) ^ (W[j-13] <<< 7) ^ W[j-6]. The four
 * words W[j..j+3] are one vector step, except that word j+3 needs W[j] (its W[j-3] term), which
 * the same step computes: the step runs with that term zero, then, P1 being linear over XOR,
 * adds P1(W[j] <<< 15) = (W[j] <<< 15) ^ (W[j] <<< 30) ^ (W[j] <<< 6) to the fourth word. Each
 * step stores W[j..j+3] and W'[j-4..j-1] = W[j-4..j-1] ^ W[j..j+3] on the stack, where the
 * rounds read them (as memory operands of their additions). Step s runs before round 4s, ahead
 * of its first use at round 4s + 12, and the next block's steps do not wait for this block's
 * rounds, so the vector units work beside the scalar ones.
 *
 * Rounds: fully unrolled, the constants T_j <<< j as immediates, the chaining value in registers
 * across blocks.
 */
#ifndef ENGINE_SM3_COMPRESS_VEC_H
#define ENGINE_SM3_COMPRESS_VEC_H

#include <immintrin.h>

#include "sm3/sm3_impl.h"

static inline uint32_t sm3v_rotl(uint32_t x, int c) { return (x << c) | (x >> ((32 - c) & 31)); }

#define SM3V_P1(x) SM3V_XOR3(x, SM3V_ROL(x, 15), SM3V_ROL(x, 23))

/* W[j..j+3] from X0..X3 = W[j-16..j-1]; the window then moves up by four words. */
#define SM3V_STEP(j)                                                                         \
    do {                                                                                     \
        __m128i w3 = _mm_srli_si128(X3, 4);        /* W[j-3], W[j-2], W[j-1], 0 */          \
        __m128i w9 = _mm_alignr_epi8(X2, X1, 12);  /* W[j-9 .. j-6] */                      \
        __m128i w13 = _mm_alignr_epi8(X1, X0, 12); /* W[j-13 .. j-10] */                    \
        __m128i w6 = _mm_alignr_epi8(X3, X2, 8);   /* W[j-6 .. j-3] */                      \
        __m128i x = SM3V_XOR3(X0, w9, SM3V_ROL(w3, 15));                                     \
        __m128i r = SM3V_XOR3(SM3V_P1(x), SM3V_ROL(w13, 7), w6);                             \
        __m128i t = _mm_slli_si128(r, 12); /* 0, 0, 0, W[j] */                               \
        r = _mm_xor_si128(r, SM3V_XOR3(SM3V_ROL(t, 15), SM3V_ROL(t, 30), SM3V_ROL(t, 6)));   \
        _mm_store_si128((__m128i *)(w + (j)), r);                                            \
        _mm_store_si128((__m128i *)(wp + (j) - 4), _mm_xor_si128(X3, r));                    \
        X0 = X1;                                                                             \
        X1 = X2;                                                                             \
        X2 = X3;                                                                             \
        X3 = r;                                                                              \
    } while (0)

/* An empty asm that makes x opaque: it fixes the order of the additions below, which GCC would
 * otherwise reassociate (or fuse into three-operand lea, two cycles on Zen) onto the critical
 * path. */
#define SM3V_OPAQUE(x) __asm__("" : "+r"(x))

/* The critical path of a round is e -> SS1 -> TT2 -> P0 -> e. So T_j is added to A <<< 12 before
 * E (not one lea of all three), SS1 is added last to TT2, and GG is summed from its two halves:
 * in rounds 16..63, (E & F) and (~E & G) have no common bits, so their OR is their sum. */
#define SM3V_ROUND_HEAD(j)                                                                   \
    if (((j) & 3) == 0 && (j) <= 48) SM3V_STEP((j) + 16);                                    \
    uint32_t a12 = sm3v_rotl(a, 12);                                                         \
    uint32_t k = a12 + SM3_TJ[j];                                                            \
    SM3V_OPAQUE(k);                                                                          \
    uint32_t ss1 = sm3v_rotl(k + e, 7);                                                      \
    uint32_t ss2 = ss1 ^ a12;                                                                \
    uint32_t hw = h + wr[j];                                                                 \
    uint32_t dw = d + wpr[j];

/* The end of a round from t1 = D + W'j + FF and t2 = H + Wj + GG: SS2 and SS1 added last. */
#define SM3V_ROUND_TAIL(t1, t2)                                                              \
    SM3V_OPAQUE(t1);                                                                         \
    SM3V_OPAQUE(t2);                                                                         \
    uint32_t tt1 = (t1) + ss2;                                                               \
    uint32_t tt2 = (t2) + ss1;                                                               \
    d = c;                                                                                   \
    c = sm3v_rotl(b, 9);                                                                     \
    b = a;                                                                                   \
    a = tt1;                                                                                 \
    h = g;                                                                                   \
    g = sm3v_rotl(f, 19);                                                                    \
    f = e;                                                                                   \
    e = tt2 ^ sm3v_rotl(tt2, 9) ^ sm3v_rotl(tt2, 17);

/* Rounds 0..15: FF = GG = x ^ y ^ z. */
#define SM3V_ROUND1(j)                                                                       \
    do {                                                                                     \
        SM3V_ROUND_HEAD(j)                                                                   \
        uint32_t bc = b ^ c, fg = f ^ g;                                                     \
        SM3V_OPAQUE(bc);                                                                     \
        SM3V_OPAQUE(fg);                                                                     \
        uint32_t t1 = dw + (a ^ bc);                                                         \
        uint32_t t2 = hw + (e ^ fg);                                                         \
        SM3V_ROUND_TAIL(t1, t2)                                                              \
    } while (0)

/* Rounds 16..63: FF = majority, GG = choose. */
#define SM3V_ROUND2(j)                                                                       \
    do {                                                                                     \
        SM3V_ROUND_HEAD(j)                                                                   \
        uint32_t t1 = dw + ((a & b) | (c & (a | b)));                                        \
        uint32_t t2 = (hw + (e & f)) + (~e & g);                                             \
        SM3V_ROUND_TAIL(t1, t2)                                                              \
    } while (0)

void SM3V_FN(uint32_t state[8], const uint8_t *blocks, size_t count) {
    const __m128i bswap = _mm_setr_epi8(3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12);
    _Alignas(16) uint32_t w[68], wp[64];
    /* The rounds read the words through pointers the compiler cannot see are w and wp, so they
     * stay loads (memory operands) instead of becoming vpextrd from the step's registers. */
    const uint32_t *wr = w, *wpr = wp;
    __asm__("" : "+r"(wr), "+r"(wpr));
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (size_t blk = 0; blk < count; blk++, blocks += SM3_BLOCK_BYTES) {
        __m128i X0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)blocks), bswap);
        __m128i X1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(blocks + 16)), bswap);
        __m128i X2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(blocks + 32)), bswap);
        __m128i X3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(blocks + 48)), bswap);
        _mm_store_si128((__m128i *)(w + 0), X0);
        _mm_store_si128((__m128i *)(w + 4), X1);
        _mm_store_si128((__m128i *)(w + 8), X2);
        _mm_store_si128((__m128i *)(w + 12), X3);
        _mm_store_si128((__m128i *)(wp + 0), _mm_xor_si128(X0, X1));
        _mm_store_si128((__m128i *)(wp + 4), _mm_xor_si128(X1, X2));
        _mm_store_si128((__m128i *)(wp + 8), _mm_xor_si128(X2, X3));
        const uint32_t a0 = a, b0 = b, c0 = c, d0 = d, e0 = e, f0 = f, g0 = g, h0 = h;
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) SM3V_ROUND1(j);
#pragma GCC unroll 48
        for (int j = 16; j < 64; j++) SM3V_ROUND2(j);
        a ^= a0;
        b ^= b0;
        c ^= c0;
        d ^= d0;
        e ^= e0;
        f ^= f0;
        g ^= g0;
        h ^= h0;
    }
    state[0] = a;
    state[1] = b;
    state[2] = c;
    state[3] = d;
    state[4] = e;
    state[5] = f;
    state[6] = g;
    state[7] = h;
}

#undef SM3V_P1
#undef SM3V_STEP
#undef SM3V_OPAQUE
#undef SM3V_ROUND_HEAD
#undef SM3V_ROUND_TAIL
#undef SM3V_ROUND1
#undef SM3V_ROUND2

#endif
