/* Four field elements mod 2^255 - 19 side by side in AVX2 registers, radix 2^25.5.
 *
 * Include only from a file compiled with avx2 enabled. Limb k (26 bits for even k, 25 for odd)
 * of all four elements sits in one register, one 64-bit lane each; vpmuludq multiplies the low
 * 32 bits of two lanes into 64. The four lanes are either four independent elements (the
 * exponentiations of decompression) or the four coordinates of one point (the parallel
 * Edwards formulas of ed25519_avx2.c).
 *
 * Bounds, in units of the nominal limb size (2^26 even, 2^25 odd): fe25x4_carry leaves every limb
 * at most nominal + 2^18 ("carried"); the sum of two carried elements, or carried + 2p - carried
 * (fe25x4_sub), stays below 2^27.6 per limb, which is what fe25x4_mul and fe25x4_sq accept: the
 * 19-multiples they form must fit the 32 bits vpmuludq reads (19 * 2^27.6 < 2^32), and no
 * accumulator exceeds 267 * 2^55.2 < 2^63.3. Their outputs are carried.
 */
#ifndef ENGINE_ED25519_FE25_AVX2_H
#define ENGINE_ED25519_FE25_AVX2_H

#include <immintrin.h>
#include <stdint.h>

#include "ed25519/fe51.h"

typedef struct {
    __m256i l[10];
} fe25x4;

#define FE25_MASK26 ((1u << 26) - 1)
#define FE25_MASK25 ((1u << 25) - 1)

static inline __attribute__((always_inline)) void fe25x4_carry(__m256i h[10]) {
    const __m256i m26 = _mm256_set1_epi64x(FE25_MASK26), m25 = _mm256_set1_epi64x(FE25_MASK25);
    __m256i c;
#define FE25_STEP(i, bits, mask)                                          \
    do {                                                                  \
        c = _mm256_srli_epi64(h[i], bits);                                \
        h[i] = _mm256_and_si256(h[i], mask);                              \
        h[(i) + 1] = _mm256_add_epi64(h[(i) + 1], c);                     \
    } while (0)
    FE25_STEP(0, 26, m26);
    FE25_STEP(4, 26, m26);
    FE25_STEP(1, 25, m25);
    FE25_STEP(5, 25, m25);
    FE25_STEP(2, 26, m26);
    FE25_STEP(6, 26, m26);
    FE25_STEP(3, 25, m25);
    FE25_STEP(7, 25, m25);
    FE25_STEP(4, 26, m26);
    FE25_STEP(8, 26, m26);
    c = _mm256_srli_epi64(h[9], 25);
    h[9] = _mm256_and_si256(h[9], m25);
    h[0] = _mm256_add_epi64(h[0], _mm256_add_epi64(_mm256_add_epi64(c, _mm256_slli_epi64(c, 1)),
                                                   _mm256_slli_epi64(c, 4)));
    FE25_STEP(0, 26, m26);
#undef FE25_STEP
}

static inline void fe25x4_add(fe25x4 *h, const fe25x4 *f, const fe25x4 *g) {
    for (int k = 0; k < 10; k++) h->l[k] = _mm256_add_epi64(f->l[k], g->l[k]);
}

/* 2p in radix 2^25.5: the bias that keeps f - g non-negative for a carried g. */
static inline __m256i fe25_two_p(int k) {
    if (k == 0) return _mm256_set1_epi64x(2 * (FE25_MASK26 - 18));
    return _mm256_set1_epi64x(k & 1 ? 2 * FE25_MASK25 : 2 * FE25_MASK26);
}

/* h = f + 2p - g (g carried). */
static inline void fe25x4_sub(fe25x4 *h, const fe25x4 *f, const fe25x4 *g) {
    for (int k = 0; k < 10; k++)
        h->l[k] = _mm256_sub_epi64(_mm256_add_epi64(f->l[k], fe25_two_p(k)), g->l[k]);
}

/* Pins the ten accumulators in registers at this point. GCC otherwise hoists the products of
 * later rows above the additions of earlier ones and spills most of them (measured: twice the
 * instructions); with the accumulators pinned, each row is one load of f_i, ten products with
 * g (or 19 g) straight from memory and ten additions. */
#define FE25_PIN(r)                                                                          \
    __asm__ volatile("" : "+x"(r[0]), "+x"(r[1]), "+x"(r[2]), "+x"(r[3]), "+x"(r[4]),       \
                     "+x"(r[5]), "+x"(r[6]), "+x"(r[7]), "+x"(r[8]), "+x"(r[9]))

/* h[n] = f[n] * g[n] for `count` (1 or 2, a constant after inlining) independent products, one
 * after the other (the out-of-order core overlaps one's carry chain with the other's products).
 * Term f_i g_j goes to limb i + j, times 19 past limb 9 (2^255 = 19) and times 2 when i and j
 * are both odd (two 25-bit limbs make 2^(odd + odd + 1)). The factor 2 is put on f, the 19 on
 * g, so both factors stay below 2^32. */
static inline __attribute__((always_inline)) void fe25x4_mul_n(fe25x4 *const h[], const fe25x4 *const f[],
                                                               const fe25x4 *const g[], int count) {
    const __m256i nineteen = _mm256_set1_epi64x(19);
    for (int n = 0; n < count; n++) {
        fe25x4 g19;
        __m256i r[10];
#pragma GCC unroll 10
        for (int k = 0; k < 10; k++) {
            g19.l[k] = _mm256_mul_epu32(g[n]->l[k], nineteen);
            r[k] = _mm256_setzero_si256();
        }
#pragma GCC unroll 10
        for (int i = 0; i < 10; i++) {
            __m256i a = f[n]->l[i];
            __m256i a2 = _mm256_add_epi64(a, a);
#pragma GCC unroll 10
            for (int j = 0; j < 10; j++) {
                int k = i + j >= 10 ? i + j - 10 : i + j;
                __m256i x = (i & 1) && (j & 1) ? a2 : a;
                __m256i y = i + j >= 10 ? g19.l[j] : g[n]->l[j];
                r[k] = _mm256_add_epi64(r[k], _mm256_mul_epu32(x, y));
            }
            FE25_PIN(r);
        }
        fe25x4_carry(r);
        for (int k = 0; k < 10; k++) h[n]->l[k] = r[k];
    }
}

static inline __attribute__((always_inline)) void fe25x4_mul(fe25x4 *h, const fe25x4 *f,
                                                             const fe25x4 *g) {
    fe25x4 *const hs[1] = {h};
    const fe25x4 *const fs[1] = {f}, *const gs[1] = {g};
    fe25x4_mul_n(hs, fs, gs, 1);
}

/* h = f * (c0, c1, c2, c3), lane by lane, for small constants (below 2^18), carried. */
static inline void fe25x4_mul_small(fe25x4 *h, const fe25x4 *f, uint32_t c0, uint32_t c1,
                                    uint32_t c2, uint32_t c3) {
    const __m256i c = _mm256_setr_epi64x(c0, c1, c2, c3);
    for (int k = 0; k < 10; k++) h->l[k] = _mm256_mul_epu32(f->l[k], c);
    fe25x4_carry(h->l);
}

/* h = 2p - f (f carried): the negation, limbs within the multiplication bound. */
static inline void fe25x4_neg(fe25x4 *h, const fe25x4 *f) {
    for (int k = 0; k < 10; k++) h->l[k] = _mm256_sub_epi64(fe25_two_p(k), f->l[k]);
}

/* h = f^2, carried: the cross terms f_i f_j (i < j) once, doubled. */
static inline __attribute__((always_inline)) void fe25x4_sq(fe25x4 *h, const fe25x4 *f) {
    fe25x4 f19;
    __m256i r[10];
    const __m256i nineteen = _mm256_set1_epi64x(19);
#pragma GCC unroll 10
    for (int k = 0; k < 10; k++) {
        f19.l[k] = _mm256_mul_epu32(f->l[k], nineteen);
        r[k] = _mm256_setzero_si256();
    }
#pragma GCC unroll 10
    for (int i = 0; i < 10; i++) {
        __m256i a = f->l[i];
        __m256i a2 = _mm256_add_epi64(a, a);
        __m256i a4 = _mm256_add_epi64(a2, a2);
#pragma GCC unroll 10
        for (int j = i; j < 10; j++) {
            int k = i + j >= 10 ? i + j - 10 : i + j;
            int odd2 = (i & 1) && (j & 1), twice = i != j;
            /* the left factor carries 1, 2 or 4; the right one 1 or 19 */
            __m256i x = odd2 && twice ? a4 : (odd2 || twice) ? a2 : a;
            __m256i y = i + j >= 10 ? f19.l[j] : f->l[j];
            r[k] = _mm256_add_epi64(r[k], _mm256_mul_epu32(x, y));
        }
        FE25_PIN(r);
    }
    fe25x4_carry(r);
    for (int k = 0; k < 10; k++) h->l[k] = r[k];
}

/* Four radix-2^51 elements (limbs below 2^52) into the lanes, carried. */
static inline void fe25x4_from_fe51(fe25x4 *h, const fe51 *a, const fe51 *b, const fe51 *c,
                                    const fe51 *d) {
    const fe51 *in[4] = {a, b, c, d};
    for (int i = 0; i < 5; i++) {
        uint64_t lo[4], hi[4];
        for (int j = 0; j < 4; j++) {
            lo[j] = in[j]->v[i] & FE25_MASK26;
            hi[j] = in[j]->v[i] >> 26;
        }
        h->l[2 * i] = _mm256_setr_epi64x((long long)lo[0], (long long)lo[1], (long long)lo[2],
                                         (long long)lo[3]);
        h->l[2 * i + 1] = _mm256_setr_epi64x((long long)hi[0], (long long)hi[1],
                                             (long long)hi[2], (long long)hi[3]);
    }
    fe25x4_carry(h->l);
}

/* The four lanes as radix-2^51 elements (limbs below 2^52). */
static inline void fe25x4_to_fe51(fe51 out[4], const fe25x4 *f) {
    fe25x4 t = *f;
    fe25x4_carry(t.l);
    _Alignas(32) uint64_t limbs[10][4];
    for (int k = 0; k < 10; k++) _mm256_store_si256((__m256i *)limbs[k], t.l[k]);
    for (int j = 0; j < 4; j++)
        for (int i = 0; i < 5; i++) out[j].v[i] = limbs[2 * i][j] + (limbs[2 * i + 1][j] << 26);
}

/* The lanes of f rearranged: lane j of the result is lane (imm >> 2j) & 3 of f. */
#define FE25X4_PERMUTE(h, f, imm)                                                          \
    do {                                                                                   \
        for (int k_ = 0; k_ < 10; k_++) (h)->l[k_] = _mm256_permute4x64_epi64((f)->l[k_], imm); \
    } while (0)

/* Lanes whose bit in mask (4 bits, one per 64-bit lane, as a 32-bit blend mask pair) is set come
 * from g, the others from f. */
#define FE25X4_BLEND(h, f, g, mask32)                                                      \
    do {                                                                                   \
        for (int k_ = 0; k_ < 10; k_++)                                                    \
            (h)->l[k_] = _mm256_blend_epi32((f)->l[k_], (g)->l[k_], mask32);               \
    } while (0)

/* z^((p-5)/8) = z^(2^252 - 3) for 4 * FE25_POW_GROUPS elements side by side (the chain of
 * fe_pow22523); the groups interleave so that one's carry chains overlap another's products. */
#define FE25_POW_GROUPS 2
#define FE25_EACH(stmt)                                   \
    do {                                                  \
        for (int g_ = 0; g_ < FE25_POW_GROUPS; g_++) {    \
            stmt;                                         \
        }                                                 \
    } while (0)
#define FE25_SQ_G(d, s) FE25_EACH(fe25x4_sq(&(d)[g_], &(s)[g_]))
#define FE25_MUL_G(d, f, g) FE25_EACH(fe25x4_mul(&(d)[g_], &(f)[g_], &(g)[g_]))

static inline void fe25x4_sqn_g(fe25x4 *h, const fe25x4 *f, int n) {
    FE25_SQ_G(h, f);
    for (int i = 1; i < n; i++) FE25_SQ_G(h, h);
}

static inline void fe25x4_pow22523_g(fe25x4 out[FE25_POW_GROUPS], const fe25x4 z[FE25_POW_GROUPS]) {
    fe25x4 z2[FE25_POW_GROUPS], z9[FE25_POW_GROUPS], z11[FE25_POW_GROUPS], t[FE25_POW_GROUPS],
        a[FE25_POW_GROUPS], b[FE25_POW_GROUPS], c[FE25_POW_GROUPS];
    FE_POW22523_CHAIN(FE25_SQ_G, fe25x4_sqn_g, FE25_MUL_G, out, z, z2, z9, z11, t, a, b, c);
}

#endif
