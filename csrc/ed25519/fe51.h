/* Field arithmetic mod p = 2^255 - 19 in radix 2^51 (five 64-bit limbs, 128-bit products).
 *
 * Header-only (static inline) so that every ISA file compiles its own copy under its own target
 * pragma. Limb bounds, which every caller relies on:
 *   - fe_mul / fe_sq outputs and fe_frombytes: limbs < 2^51 + 2^13 ("carried").
 *   - fe_add of two carried values: < 2^53; fe_sub(a, b) computes a + 4p - b and needs every
 *     limb of b below 2^53 - 76, giving limbs < 2^54 + 2^53.
 *   - fe_mul / fe_sq accept input limbs below 2^55 (19 * 2^55 * 2^55 * 5 terms < 2^128).
 * Nothing here is constant time: verification handles public data only.
 */
#ifndef ENGINE_ED25519_FE51_H
#define ENGINE_ED25519_FE51_H

#include <stdint.h>
#include <string.h>

#include "ed25519/ed25519_types.h"

typedef unsigned __int128 u128;

#define FE_MASK51 ((UINT64_C(1) << 51) - 1)

static const fe51 FE_ZERO = {{0, 0, 0, 0, 0}};
static const fe51 FE_ONE = {{1, 0, 0, 0, 0}};
static const fe51 FE_D = {{0x34dca135978a3, 0x1a8283b156ebd, 0x5e7a26001c029, 0x739c663a03cbb,
                           0x52036cee2b6ff}};
static const fe51 FE_D2 = {{0x69b9426b2f159, 0x35050762add7a, 0x3cf44c0038052, 0x6738cc7407977,
                            0x2406d9dc56dff}};
static const fe51 FE_SQRTM1 = {{0x61b274a0ea0b0, 0xd5a5fc8f189d, 0x7ef5e9cbd0c60,
                                0x78595a6804c9e, 0x2b8324804fc1d}};

static inline void fe_copy(fe51 *h, const fe51 *f) { *h = *f; }

static inline void fe_add(fe51 *h, const fe51 *f, const fe51 *g) {
    for (int i = 0; i < 5; i++) h->v[i] = f->v[i] + g->v[i];
}

/* h = f + 4p - g: never negative while g's limbs stay below 2^53 - 76. */
static inline void fe_sub(fe51 *h, const fe51 *f, const fe51 *g) {
    h->v[0] = f->v[0] + UINT64_C(0x1fffffffffffb4) - g->v[0];
    for (int i = 1; i < 5; i++) h->v[i] = f->v[i] + UINT64_C(0x1ffffffffffffc) - g->v[i];
}

static inline void fe_neg(fe51 *h, const fe51 *f) { fe_sub(h, &FE_ZERO, f); }

/* Carry a product accumulator into five limbs below 2^51 + 2^13. */
static inline __attribute__((always_inline)) void fe_carry128(fe51 *h, u128 r0, u128 r1, u128 r2, u128 r3, u128 r4) {
    uint64_t c;
    r1 += (uint64_t)(r0 >> 51);
    uint64_t h0 = (uint64_t)r0 & FE_MASK51;
    r2 += (uint64_t)(r1 >> 51);
    uint64_t h1 = (uint64_t)r1 & FE_MASK51;
    r3 += (uint64_t)(r2 >> 51);
    uint64_t h2 = (uint64_t)r2 & FE_MASK51;
    r4 += (uint64_t)(r3 >> 51);
    uint64_t h3 = (uint64_t)r3 & FE_MASK51;
    c = (uint64_t)(r4 >> 51);
    uint64_t h4 = (uint64_t)r4 & FE_MASK51;
    h0 += c * 19;
    h1 += h0 >> 51;
    h0 &= FE_MASK51;
    h->v[0] = h0;
    h->v[1] = h1;
    h->v[2] = h2;
    h->v[3] = h3;
    h->v[4] = h4;
}

static inline __attribute__((always_inline)) void fe_mul(fe51 *h, const fe51 *f, const fe51 *g) {
    uint64_t f0 = f->v[0], f1 = f->v[1], f2 = f->v[2], f3 = f->v[3], f4 = f->v[4];
    uint64_t g0 = g->v[0], g1 = g->v[1], g2 = g->v[2], g3 = g->v[3], g4 = g->v[4];
    uint64_t g1_19 = g1 * 19, g2_19 = g2 * 19, g3_19 = g3 * 19, g4_19 = g4 * 19;
    u128 r0 = (u128)f0 * g0 + (u128)f1 * g4_19 + (u128)f2 * g3_19 + (u128)f3 * g2_19 +
              (u128)f4 * g1_19;
    u128 r1 = (u128)f0 * g1 + (u128)f1 * g0 + (u128)f2 * g4_19 + (u128)f3 * g3_19 +
              (u128)f4 * g2_19;
    u128 r2 = (u128)f0 * g2 + (u128)f1 * g1 + (u128)f2 * g0 + (u128)f3 * g4_19 +
              (u128)f4 * g3_19;
    u128 r3 = (u128)f0 * g3 + (u128)f1 * g2 + (u128)f2 * g1 + (u128)f3 * g0 + (u128)f4 * g4_19;
    u128 r4 = (u128)f0 * g4 + (u128)f1 * g3 + (u128)f2 * g2 + (u128)f3 * g1 + (u128)f4 * g0;
    fe_carry128(h, r0, r1, r2, r3, r4);
}

static inline __attribute__((always_inline)) void fe_sq(fe51 *h, const fe51 *f) {
    uint64_t f0 = f->v[0], f1 = f->v[1], f2 = f->v[2], f3 = f->v[3], f4 = f->v[4];
    uint64_t f0_2 = f0 * 2, f1_2 = f1 * 2;
    uint64_t f3_19 = f3 * 19, f4_19 = f4 * 19;
    u128 r0 = (u128)f0 * f0 + (u128)f1_2 * f4_19 + (u128)(f2 * 2) * f3_19;
    u128 r1 = (u128)f0_2 * f1 + (u128)(f2 * 2) * f4_19 + (u128)f3 * f3_19;
    u128 r2 = (u128)f0_2 * f2 + (u128)f1 * f1 + (u128)(f3 * 2) * f4_19;
    u128 r3 = (u128)f0_2 * f3 + (u128)f1_2 * f2 + (u128)f4 * f4_19;
    u128 r4 = (u128)f0_2 * f4 + (u128)f1_2 * f3 + (u128)f2 * f2;
    fe_carry128(h, r0, r1, r2, r3, r4);
}

/* h = f^(2^n) for n >= 1. */
static inline void fe_sqn(fe51 *h, const fe51 *f, int n) {
    fe_sq(h, f);
    for (int i = 1; i < n; i++) fe_sq(h, h);
}

/* Load 255 bits (the top bit is ignored); values in [p, 2^255) stay unreduced, which the
 * arithmetic tolerates and ZIP-215 requires (y >= p is accepted). */
static inline void fe_frombytes(fe51 *h, const uint8_t s[32]) {
    uint64_t w[4];
    memcpy(w, s, 32); /* little-endian host assumed (x86-64, aarch64) */
    h->v[0] = w[0] & FE_MASK51;
    h->v[1] = ((w[0] >> 51) | (w[1] << 13)) & FE_MASK51;
    h->v[2] = ((w[1] >> 38) | (w[2] << 26)) & FE_MASK51;
    h->v[3] = ((w[2] >> 25) | (w[3] << 39)) & FE_MASK51;
    h->v[4] = (w[3] >> 12) & FE_MASK51;
}

/* Canonical (fully reduced) 32-byte encoding. */
static inline void fe_tobytes(uint8_t s[32], const fe51 *f) {
    fe51 t;
    u128 z = 0;
    fe_carry128(&t, f->v[0], f->v[1], f->v[2], f->v[3], f->v[4]);
    (void)z;
    /* Now t < 2^255 + small; compute q = 1 if t >= p, via (t + 19) >> 255. */
    uint64_t q = (t.v[0] + 19) >> 51;
    q = (t.v[1] + q) >> 51;
    q = (t.v[2] + q) >> 51;
    q = (t.v[3] + q) >> 51;
    q = (t.v[4] + q) >> 51;
    t.v[0] += 19 * q;
    t.v[1] += t.v[0] >> 51;
    t.v[0] &= FE_MASK51;
    t.v[2] += t.v[1] >> 51;
    t.v[1] &= FE_MASK51;
    t.v[3] += t.v[2] >> 51;
    t.v[2] &= FE_MASK51;
    t.v[4] += t.v[3] >> 51;
    t.v[3] &= FE_MASK51;
    t.v[4] &= FE_MASK51;
    uint64_t w0 = t.v[0] | (t.v[1] << 51);
    uint64_t w1 = (t.v[1] >> 13) | (t.v[2] << 38);
    uint64_t w2 = (t.v[2] >> 26) | (t.v[3] << 25);
    uint64_t w3 = (t.v[3] >> 39) | (t.v[4] << 12);
    memcpy(s, &w0, 8);
    memcpy(s + 8, &w1, 8);
    memcpy(s + 16, &w2, 8);
    memcpy(s + 24, &w3, 8);
}

static inline int fe_iszero(const fe51 *f) {
    uint8_t s[32];
    fe_tobytes(s, f);
    uint8_t acc = 0;
    for (int i = 0; i < 32; i++) acc |= s[i];
    return acc == 0;
}

static inline int fe_isneg(const fe51 *f) {
    uint8_t s[32];
    fe_tobytes(s, f);
    return s[0] & 1;
}

static inline int fe_equal(const fe51 *f, const fe51 *g) {
    fe51 t;
    fe_sub(&t, f, g);
    return fe_iszero(&t);
}

/* z^(2^250 - 1) and z^11 are the shared prefix of inversion and the square-root power. */
static inline void fe_pow2_250_1(fe51 *out, fe51 *z11, const fe51 *z) {
    fe51 z2, z9, t, z5_0, z10_0, z20_0, z50_0, z100_0;
    fe_sq(&z2, z);
    fe_sqn(&t, &z2, 2);
    fe_mul(&z9, &t, z);
    fe_mul(z11, &z9, &z2);
    fe_sq(&t, z11);
    fe_mul(&z5_0, &t, &z9);              /* 2^5 - 1 */
    fe_sqn(&t, &z5_0, 5);
    fe_mul(&z10_0, &t, &z5_0);           /* 2^10 - 1 */
    fe_sqn(&t, &z10_0, 10);
    fe_mul(&z20_0, &t, &z10_0);          /* 2^20 - 1 */
    fe_sqn(&t, &z20_0, 20);
    fe_mul(&t, &t, &z20_0);              /* 2^40 - 1 */
    fe_sqn(&t, &t, 10);
    fe_mul(&z50_0, &t, &z10_0);          /* 2^50 - 1 */
    fe_sqn(&t, &z50_0, 50);
    fe_mul(&z100_0, &t, &z50_0);         /* 2^100 - 1 */
    fe_sqn(&t, &z100_0, 100);
    fe_mul(&t, &t, &z100_0);             /* 2^200 - 1 */
    fe_sqn(&t, &t, 50);
    fe_mul(out, &t, &z50_0);             /* 2^250 - 1 */
}

/* 1/z = z^(p - 2) = z^(2^255 - 21). */
static inline void fe_invert(fe51 *out, const fe51 *z) {
    fe51 t, z11;
    fe_pow2_250_1(&t, &z11, z);
    fe_sqn(&t, &t, 5);
    fe_mul(out, &t, &z11);
}

/* z^((p - 5) / 8) = z^(2^252 - 3). */
static inline void fe_pow22523(fe51 *out, const fe51 *z) {
    fe51 t, z11;
    fe_pow2_250_1(&t, &z11, z);
    fe_sqn(&t, &t, 2);
    fe_mul(out, &t, z);
}

/* Four independent z^((p-5)/8) at once: the same chain as fe_pow22523, each step applied to
 * all four so their multiplications overlap in the pipeline. */
#define FE_X4(stmt)                     \
    do {                                \
        for (int j_ = 0; j_ < 4; j_++) { \
            stmt;                       \
        }                               \
    } while (0)

static inline void fe_sqn_x4(fe51 h[4], const fe51 f[4], int n) {
    FE_X4(fe_sq(&h[j_], &f[j_]));
    for (int i = 1; i < n; i++) FE_X4(fe_sq(&h[j_], &h[j_]));
}

/* The addition chain of z^((p-5)/8) = z^(2^252 - 3) (the one of fe_pow22523), written once for
 * every representation that runs several exponentiations side by side: the caller passes its
 * own SQ(dst, src), SQN(dst, src, n) and MUL(dst, f, g) over arrays of its element type; z2, z9,
 * z11, t, a, b and c are scratch arrays of that type. */
#define FE_POW22523_CHAIN(SQ, SQN, MUL, out, z, z2, z9, z11, t, a, b, c) \
    do {                                                                  \
        SQ(z2, z);                                                        \
        SQN(t, z2, 2);                                                    \
        MUL(z9, t, z);                                                    \
        MUL(z11, z9, z2);                                                 \
        SQ(t, z11);                                                       \
        MUL(a, t, z9);   /* 2^5 - 1 */                                    \
        SQN(t, a, 5);                                                     \
        MUL(b, t, a);    /* 2^10 - 1 */                                   \
        SQN(t, b, 10);                                                    \
        MUL(c, t, b);    /* 2^20 - 1 */                                   \
        SQN(t, c, 20);                                                    \
        MUL(t, t, c);    /* 2^40 - 1 */                                   \
        SQN(t, t, 10);                                                    \
        MUL(a, t, b);    /* 2^50 - 1 */                                   \
        SQN(t, a, 50);                                                    \
        MUL(b, t, a);    /* 2^100 - 1 */                                  \
        SQN(t, b, 100);                                                   \
        MUL(t, t, b);    /* 2^200 - 1 */                                  \
        SQN(t, t, 50);                                                    \
        MUL(t, t, a);    /* 2^250 - 1 */                                  \
        SQN(t, t, 2);                                                     \
        MUL(out, t, z);  /* 2^252 - 3 */                                  \
    } while (0)

#define FE_X4_SQ(d, s) FE_X4(fe_sq(&(d)[j_], &(s)[j_]))
#define FE_X4_MUL(d, f, g) FE_X4(fe_mul(&(d)[j_], &(f)[j_], &(g)[j_]))

static inline void fe_pow22523_x4(fe51 out[4], const fe51 z[4]) {
    fe51 z2[4], z9[4], z11[4], t[4], a[4], b[4], c[4];
    FE_POW22523_CHAIN(FE_X4_SQ, fe_sqn_x4, FE_X4_MUL, out, z, z2, z9, z11, t, a, b, c);
}

#endif
