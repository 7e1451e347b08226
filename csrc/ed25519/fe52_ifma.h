/* Eight field elements mod 2^255 - 19 side by side, radix 2^52, with AVX-512 IFMA.
 *
 * Include only from a file compiled with avx512f + avx512ifma enabled. Limb k of all eight
 * elements sits in one register. vpmadd52luq / vpmadd52huq multiply the low 52 bits of each lane
 * and add the low / high 52 bits of the 104-bit product, so every multiplication input must have
 * limbs strictly below 2^52: fe52x8_mul normalises its output exactly (two carry passes) to keep
 * that invariant. 2^260 = 2^5 * 2^255 = 32 * 19 = 608 (mod p) folds the upper half back.
 */
#ifndef ENGINE_ED25519_FE52_IFMA_H
#define ENGINE_ED25519_FE52_IFMA_H

#include <immintrin.h>
#include <stdint.h>

#include "ed25519/fe51.h"

typedef struct {
    __m512i l[5];
} fe52x8;

#define FE52_MASK ((UINT64_C(1) << 52) - 1)

/* One exact carry pass over five limbs with the top carry folded back times 608. */
static inline __attribute__((always_inline)) void fe52x8_carry(__m512i r[5]) {
    const __m512i mask = _mm512_set1_epi64((long long)FE52_MASK);
    for (int k = 0; k < 4; k++) {
        r[k + 1] = _mm512_add_epi64(r[k + 1], _mm512_srli_epi64(r[k], 52));
        r[k] = _mm512_and_si512(r[k], mask);
    }
    __m512i top = _mm512_srli_epi64(r[4], 52);
    r[4] = _mm512_and_si512(r[4], mask);
    /* 608 top = 512 top + 64 top + 32 top */
    r[0] = _mm512_add_epi64(r[0], _mm512_add_epi64(_mm512_slli_epi64(top, 9),
                                                   _mm512_add_epi64(_mm512_slli_epi64(top, 6),
                                                                    _mm512_slli_epi64(top, 5))));
}

/* Limbs below 2^52 exactly. One pass leaves every limb but r[0] below 2^52, and r[0] at most
 * 608 * (top carry) above it; a second pass, needed only then (rarely), ends below 2^52: its
 * top carry can only be 1 if r[0] overflowed, leaving r[0] below 2^12 before the fold. */
static inline __attribute__((always_inline)) void fe52x8_carry_exact(__m512i r[5]) {
    fe52x8_carry(r);
    const __m512i high = _mm512_set1_epi64((long long)~FE52_MASK);
    if (__builtin_expect(_mm512_test_epi64_mask(r[0], high) != 0, 0)) fe52x8_carry(r);
}

/* Columns z[0..10) of a product (column k has weight 2^(52k), each below 2^57) reduced mod p
 * into h with limbs below 2^52. */
static inline __attribute__((always_inline)) void fe52x8_reduce(fe52x8 *h, __m512i z[11]) {
    const __m512i zero = _mm512_setzero_si512();
    const __m512i mask = _mm512_set1_epi64((long long)FE52_MASK);
    const __m512i c608 = _mm512_set1_epi64(608);
    /* Columns 5..9 below 2^52 (column 10 takes the carry), then fold them times 608. */
    z[10] = zero;
    for (int k = 5; k < 10; k++) {
        z[k + 1] = _mm512_add_epi64(z[k + 1], _mm512_srli_epi64(z[k], 52));
        z[k] = _mm512_and_si512(z[k], mask);
    }
    __m512i r[5], over = zero; /* over: weight 2^260 */
    for (int k = 0; k < 5; k++) r[k] = z[k];
    for (int k = 0; k < 5; k++) {
        r[k] = _mm512_madd52lo_epu64(r[k], z[k + 5], c608);
        if (k < 4) r[k + 1] = _mm512_madd52hi_epu64(r[k + 1], z[k + 5], c608);
        else over = _mm512_madd52hi_epu64(over, z[k + 5], c608);
    }
    /* z[10] has weight 2^520 = (2^260)^2, i.e. 608 z[10] at weight 2^260. z[10] < 2^6. */
    over = _mm512_add_epi64(over, _mm512_mullo_epi64(z[10], c608));
    r[0] = _mm512_add_epi64(r[0], _mm512_mullo_epi64(over, c608));
    fe52x8_carry_exact(r);
    for (int k = 0; k < 5; k++) h->l[k] = r[k];
}

/* h = f g, limbs of f and g below 2^52; h's limbs below 2^52 again. */
static inline __attribute__((always_inline)) void fe52x8_mul(fe52x8 *h, const fe52x8 *f, const fe52x8 *g) {
    __m512i z[11];
    for (int k = 0; k < 11; k++) z[k] = _mm512_setzero_si512();
    for (int i = 0; i < 5; i++) {
        for (int j = 0; j < 5; j++) {
            z[i + j] = _mm512_madd52lo_epu64(z[i + j], f->l[i], g->l[j]);
            z[i + j + 1] = _mm512_madd52hi_epu64(z[i + j + 1], f->l[i], g->l[j]);
        }
    }
    fe52x8_reduce(h, z);
}

/* h = f^2: the ten cross products once, doubled, plus the five squares. */
static inline __attribute__((always_inline)) void fe52x8_sq(fe52x8 *h, const fe52x8 *f) {
    __m512i z[11], x[11];
    for (int k = 0; k < 11; k++) z[k] = x[k] = _mm512_setzero_si512();
    for (int i = 0; i < 5; i++) {
        for (int j = i + 1; j < 5; j++) {
            x[i + j] = _mm512_madd52lo_epu64(x[i + j], f->l[i], f->l[j]);
            x[i + j + 1] = _mm512_madd52hi_epu64(x[i + j + 1], f->l[i], f->l[j]);
        }
    }
    for (int k = 0; k < 10; k++) z[k] = _mm512_slli_epi64(x[k], 1);
    for (int i = 0; i < 5; i++) {
        z[2 * i] = _mm512_madd52lo_epu64(z[2 * i], f->l[i], f->l[i]);
        z[2 * i + 1] = _mm512_madd52hi_epu64(z[2 * i + 1], f->l[i], f->l[i]);
    }
    fe52x8_reduce(h, z);
}

/* FE52_GROUPS independent groups of eight go through every step together: one chain of
 * dependent multiplications is latency bound, several keep the IFMA units busy. */
#define FE52_GROUPS 2
#define FE52_EACH(stmt)                            \
    do {                                           \
        for (int g_ = 0; g_ < FE52_GROUPS; g_++) { \
            stmt;                                  \
        }                                          \
    } while (0)

static inline void fe52x8_sqn_g(fe52x8 *h, const fe52x8 *f, int n) {
    FE52_EACH(fe52x8_sq(&h[g_], &f[g_]));
    for (int i = 1; i < n; i++) FE52_EACH(fe52x8_sq(&h[g_], &h[g_]));
}

#define FE52_SQ_G(d, s) FE52_EACH(fe52x8_sq(&(d)[g_], &(s)[g_]))
#define FE52_MUL_G(d, f, g) FE52_EACH(fe52x8_mul(&(d)[g_], &(f)[g_], &(g)[g_]))

/* z^((p-5)/8) = z^(2^252 - 3) lane by lane for FE52_GROUPS groups, the chain of fe_pow22523. */
static inline void fe52x8_pow22523_g(fe52x8 *out, const fe52x8 *z) {
    fe52x8 z2[FE52_GROUPS], z9[FE52_GROUPS], z11[FE52_GROUPS], t[FE52_GROUPS];
    fe52x8 a[FE52_GROUPS], b[FE52_GROUPS], c[FE52_GROUPS];
    FE_POW22523_CHAIN(FE52_SQ_G, fe52x8_sqn_g, FE52_MUL_G, out, z, z2, z9, z11, t, a, b, c);
}

/* Eight radix-2^51 elements into lanes (fully reduced first, so limbs are below 2^52). */
static inline void fe52x8_from_fe51(fe52x8 *h, const fe51 in[8]) {
    uint64_t limbs[5][8];
    for (int j = 0; j < 8; j++) {
        uint8_t s[32];
        uint64_t w[4];
        fe_tobytes(s, &in[j]);
        memcpy(w, s, 32);
        limbs[0][j] = w[0] & FE52_MASK;
        limbs[1][j] = ((w[0] >> 52) | (w[1] << 12)) & FE52_MASK;
        limbs[2][j] = ((w[1] >> 40) | (w[2] << 24)) & FE52_MASK;
        limbs[3][j] = ((w[2] >> 28) | (w[3] << 36)) & FE52_MASK;
        limbs[4][j] = w[3] >> 16;
    }
    for (int k = 0; k < 5; k++) h->l[k] = _mm512_loadu_si512((const void *)limbs[k]);
}

/* Lanes back to radix 2^51: values below 2^260 are folded below 2^255 + 19 * 31 first. */
static inline void fe52x8_to_fe51(fe51 out[8], const fe52x8 *f) {
    uint64_t limbs[5][8];
    for (int k = 0; k < 5; k++) _mm512_storeu_si512((void *)limbs[k], f->l[k]);
    for (int j = 0; j < 8; j++) {
        uint64_t l0 = limbs[0][j], l1 = limbs[1][j], l2 = limbs[2][j], l3 = limbs[3][j];
        uint64_t l4 = limbs[4][j];
        uint64_t top = l4 >> 47; /* bits 255..259 */
        l4 &= (UINT64_C(1) << 47) - 1;
        uint64_t w0 = l0 | (l1 << 52);
        uint64_t w1 = (l1 >> 12) | (l2 << 40);
        uint64_t w2 = (l2 >> 24) | (l3 << 28);
        uint64_t w3 = (l3 >> 36) | (l4 << 16);
        out[j].v[0] = (w0 & FE_MASK51) + 19 * top;
        out[j].v[1] = ((w0 >> 51) | (w1 << 13)) & FE_MASK51;
        out[j].v[2] = ((w1 >> 38) | (w2 << 26)) & FE_MASK51;
        out[j].v[3] = ((w2 >> 25) | (w3 << 39)) & FE_MASK51;
        out[j].v[4] = (w3 >> 12) & FE_MASK51;
    }
}

/* ---- additions and points, for the lane-parallel Pippenger ------------------------------ */

/* Exact normalisation after an addition: limbs below 2^54 in, below 2^52 out (see the header
 * for why two passes always suffice). */
static inline __attribute__((always_inline)) void fe52x8_norm(fe52x8 *h, __m512i r[5]) {
    fe52x8_carry_exact(r);
    for (int k = 0; k < 5; k++) h->l[k] = r[k];
}

static inline __attribute__((always_inline)) void fe52x8_add(fe52x8 *h, const fe52x8 *f, const fe52x8 *g) {
    __m512i r[5];
    for (int k = 0; k < 5; k++) r[k] = _mm512_add_epi64(f->l[k], g->l[k]);
    fe52x8_norm(h, r);
}

/* h = f + 64p - g; 64p = 2^261 - 1216 is spread so that every limb is at least 2^53 - 1216,
 * above any normalised limb of g. */
static inline __attribute__((always_inline)) void fe52x8_sub(fe52x8 *h, const fe52x8 *f, const fe52x8 *g) {
    const __m512i p0 = _mm512_set1_epi64((long long)((UINT64_C(1) << 53) - 1216));
    const __m512i pk = _mm512_set1_epi64((long long)((UINT64_C(1) << 53) - 2));
    __m512i r[5];
    for (int k = 0; k < 5; k++)
        r[k] = _mm512_sub_epi64(_mm512_add_epi64(f->l[k], k ? pk : p0), g->l[k]);
    fe52x8_norm(h, r);
}

static inline void fe52x8_set1(fe52x8 *h, const uint64_t limbs[5]) {
    for (int k = 0; k < 5; k++) h->l[k] = _mm512_set1_epi64((long long)limbs[k]);
}

/* One element in radix 2^52, fully reduced. */
static inline void fe52_limbs_from_fe51(uint64_t limbs[5], const fe51 *f) {
    uint8_t s[32];
    uint64_t w[4];
    fe_tobytes(s, f);
    memcpy(w, s, 32);
    limbs[0] = w[0] & FE52_MASK;
    limbs[1] = ((w[0] >> 52) | (w[1] << 12)) & FE52_MASK;
    limbs[2] = ((w[1] >> 40) | (w[2] << 24)) & FE52_MASK;
    limbs[3] = ((w[2] >> 28) | (w[3] << 36)) & FE52_MASK;
    limbs[4] = w[3] >> 16;
}

typedef struct {
    fe52x8 X, Y, Z, T;
} ge52x8_p3;

typedef struct {
    fe52x8 ypx, ymx, xy2d;
} ge52x8_niels;

typedef struct {
    fe52x8 ypx, ymx, z, t2d;
} ge52x8_cached;

static inline void ge52x8_finish(ge52x8_p3 *r, const fe52x8 *a, const fe52x8 *b,
                                 const fe52x8 *c, const fe52x8 *d) {
    fe52x8 e, f, g, h;
    fe52x8_sub(&e, b, a);
    fe52x8_sub(&f, d, c);
    fe52x8_add(&g, d, c);
    fe52x8_add(&h, b, a);
    fe52x8_mul(&r->X, &e, &f);
    fe52x8_mul(&r->Y, &g, &h);
    fe52x8_mul(&r->Z, &f, &g);
    fe52x8_mul(&r->T, &e, &h);
}

/* r = p + q with q affine (the same formulas as ge_madd, lane by lane). */
static inline void ge52x8_madd(ge52x8_p3 *r, const ge52x8_p3 *p, const ge52x8_niels *q) {
    fe52x8 t, a, b, c, d;
    fe52x8_sub(&t, &p->Y, &p->X);
    fe52x8_mul(&a, &t, &q->ymx);
    fe52x8_add(&t, &p->Y, &p->X);
    fe52x8_mul(&b, &t, &q->ypx);
    fe52x8_mul(&c, &p->T, &q->xy2d);
    fe52x8_add(&d, &p->Z, &p->Z);
    ge52x8_finish(r, &a, &b, &c, &d);
}

static inline void ge52x8_add(ge52x8_p3 *r, const ge52x8_p3 *p, const ge52x8_cached *q) {
    fe52x8 t, a, b, c, d;
    fe52x8_sub(&t, &p->Y, &p->X);
    fe52x8_mul(&a, &t, &q->ymx);
    fe52x8_add(&t, &p->Y, &p->X);
    fe52x8_mul(&b, &t, &q->ypx);
    fe52x8_mul(&c, &p->T, &q->t2d);
    fe52x8_mul(&d, &p->Z, &q->z);
    fe52x8_add(&d, &d, &d);
    ge52x8_finish(r, &a, &b, &c, &d);
}

static inline void ge52x8_to_cached(ge52x8_cached *r, const ge52x8_p3 *p, const fe52x8 *d2) {
    fe52x8_add(&r->ypx, &p->Y, &p->X);
    fe52x8_sub(&r->ymx, &p->Y, &p->X);
    r->z = p->Z;
    fe52x8_mul(&r->t2d, &p->T, d2);
}

static inline void ge52x8_identity(ge52x8_p3 *p) {
    const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi64(1);
    for (int k = 0; k < 5; k++) {
        p->X.l[k] = p->T.l[k] = zero;
        p->Y.l[k] = p->Z.l[k] = k ? zero : one;
    }
}

#endif
