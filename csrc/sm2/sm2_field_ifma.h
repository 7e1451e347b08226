/* Eight field elements mod the SM2 prime p = 2^256 - 2^224 - 2^96 + 2^64 - 1 side by side, one
 * per 64-bit lane of an AVX-512 register, in radix 2^52: five limbs, limb i of all eight lanes in
 * one __m512i. Products use vpmadd52luq / vpmadd52huq (AVX-512 IFMA).
 *
 * Representation: Montgomery form x R mod p with R = 2^260. -p^-1 = 1 mod 2^52 (p = -1 mod
 * 2^64), so each reduction round's multiplier q is just the low 52 bits of the running limb; and
 * p's limbs in radix 2^52 are (2^52-1, P1, 2^52-1, 2^52-1, P4): the three all-ones limbs are
 * q 2^52 - q, a shift and a subtraction, so a round costs four IFMA instructions, not ten.
 *
 * Bounds (what every function promises and assumes):
 *  - IFMA reads only the low 52 bits of its inputs: a multiplicand must be *normalized*, every
 *    limb in [0, 2^52). Every function here returns normalized limbs.
 *  - sm2x8_mul: inputs a, b with a b < p 2^260 (true when both are < 4p) give an output below
 *    a b / 2^260 + p < 2p. Accumulators: a product column holds at most 10 terms < 2^52, the
 *    reduction adds at most 3 per round over 5 rounds, so |limb| < 2^57: no overflow of the
 *    signed 64-bit lanes, on which the carries are arithmetic shifts.
 *  - sm2x8_add / sm2x8_sub / sm2x8_neg: inputs < 2p, outputs < 2p: the sum (or a - b + 2p,
 *    which is >= 0 because b < 2p) is below 4p < 2^258 and is folded: the bits above 2^256
 *    (h < 4) are replaced by h (2^224 + 2^96 - 2^64 + 1), which is p's congruence for 2^256,
 *    giving a value below 2^256 + 2^227 < 2p.
 *  - sm2x8_add_lazy: carries but does not fold: a + b with normalized limbs (value below the sum
 *    of the bounds; below 2^260 needed). Used where the sum only feeds products: with inputs
 *    < 2p it is < 4p, and 4p x 4p = 16 p^2 < p 2^260 (16p < 2^260) still gives a product < 2p.
 *  - sm2x8_canon: input < 2p, output the unique representative in [0, p).
 * Nothing here branches on lane values.
 */
#ifndef ENGINE_SM2_FIELD_IFMA_H
#define ENGINE_SM2_FIELD_IFMA_H

#include <immintrin.h>
#include <stdint.h>

#define SM2X8_INLINE static inline __attribute__((always_inline))
#define SM2X8_M52 ((int64_t)(((uint64_t)1 << 52) - 1))

typedef struct {
    __m512i v[5];
} sm2x8_fe;

/* p's limbs 1 and 4 (limbs 0, 2, 3 are 2^52 - 1). */
#define SM2X8_P1 0xff00000000fffULL
#define SM2X8_P4 0x0fffffffeffffULL

static const uint64_t SM2X8_P_LIMBS[5] = {0xfffffffffffffULL, 0xff00000000fffULL,
                                          0xfffffffffffffULL, 0xfffffffffffffULL,
                                          0x0fffffffeffffULL};
static const uint64_t SM2X8_2P_LIMBS[5] = {0xffffffffffffeULL, 0xfe00000001fffULL,
                                           0xfffffffffffffULL, 0xfffffffffffffULL,
                                           0x1fffffffdffffULL};
/* R^2 mod p (enters Montgomery form from a plain integer). */
static const uint64_t SM2X8_R2_LIMBS[5] = {0x0020000000300ULL, 0xffffffff00000ULL,
                                           0x0000100000002ULL, 0x0200000001000ULL,
                                           0x0000004000000ULL};
/* R mod p: 1 in Montgomery form. */
static const uint64_t SM2X8_ONE_LIMBS[5] = {0x0000000000010ULL, 0x0ffffffff0000ULL, 0, 0,
                                            0x0000000100000ULL};
/* b R mod p (a = -3 is built into the formulas). */
static const uint64_t SM2X8_B_LIMBS[5] = {0x30632bc0dd422ULL, 0xb09b537ab70d2ULL,
                                          0xa51c3c71cf379ULL, 0x2c8527981505eULL,
                                          0x040fe188da20eULL};
/* 2^264 mod p: times a 4 x 64 Montgomery element x 2^256 gives x 2^260 after the product's
 * division by 2^260 (from sm2_field.h's form to this one). */
static const uint64_t SM2X8_K264_LIMBS[5] = {0x0000000000100ULL, 0xffffffff00000ULL, 0, 0,
                                             0x0000001000000ULL};
/* 2^256 mod p: the way back (x 2^260 -> x 2^256). */
static const uint64_t SM2X8_K256_LIMBS[5] = {0x0000000000001ULL, 0x00ffffffff000ULL, 0, 0,
                                             0x0000000010000ULL};

SM2X8_INLINE void sm2x8_const(sm2x8_fe *r, const uint64_t limbs[5]) {
    for (int i = 0; i < 5; i++) r->v[i] = _mm512_set1_epi64((long long)limbs[i]);
}

SM2X8_INLINE void sm2x8_zero(sm2x8_fe *r) {
    for (int i = 0; i < 5; i++) r->v[i] = _mm512_setzero_si512();
}

/* Signed carry propagation over limbs 0..4 (limb 4 keeps what is left; the value must be >= 0
 * and < 2^260 for the result to be normalized). */
SM2X8_INLINE void sm2x8_carry(__m512i l[5]) {
    const __m512i m = _mm512_set1_epi64(SM2X8_M52);
    for (int i = 0; i < 4; i++) {
        l[i + 1] = _mm512_add_epi64(l[i + 1], _mm512_srai_epi64(l[i], 52));
        l[i] = _mm512_and_si512(l[i], m);
    }
}

/* Replace the bits of a normalized value at 2^256 and above (h = limb4 >> 48, h < 16) by
 * h (2^224 + 2^96 - 2^64 + 1), then renormalize. Output < 2^256 + 2^229 < 2p. */
SM2X8_INLINE void sm2x8_fold(__m512i l[5]) {
    __m512i h = _mm512_srli_epi64(l[4], 48);
    l[4] = _mm512_and_si512(l[4], _mm512_set1_epi64(((int64_t)1 << 48) - 1));
    l[4] = _mm512_add_epi64(l[4], _mm512_slli_epi64(h, 16));                  /* 2^224 */
    l[1] = _mm512_add_epi64(l[1], _mm512_slli_epi64(h, 44));                  /* 2^96 */
    l[1] = _mm512_sub_epi64(l[1], _mm512_slli_epi64(h, 12));                  /* -2^64 */
    l[0] = _mm512_add_epi64(l[0], h);                                         /* +1 */
    sm2x8_carry(l);
}

SM2X8_INLINE void sm2x8_add(sm2x8_fe *r, const sm2x8_fe *a, const sm2x8_fe *b) {
    __m512i l[5];
    for (int i = 0; i < 5; i++) l[i] = _mm512_add_epi64(a->v[i], b->v[i]);
    sm2x8_carry(l);
    sm2x8_fold(l);
    for (int i = 0; i < 5; i++) r->v[i] = l[i];
}

/* a + b carried, not folded (bounds above). */
SM2X8_INLINE void sm2x8_add_lazy(sm2x8_fe *r, const sm2x8_fe *a, const sm2x8_fe *b) {
    __m512i l[5];
    for (int i = 0; i < 5; i++) l[i] = _mm512_add_epi64(a->v[i], b->v[i]);
    sm2x8_carry(l);
    for (int i = 0; i < 5; i++) r->v[i] = l[i];
}

/* a - b + 2p. */
SM2X8_INLINE void sm2x8_sub(sm2x8_fe *r, const sm2x8_fe *a, const sm2x8_fe *b) {
    __m512i l[5];
    for (int i = 0; i < 5; i++)
        l[i] = _mm512_add_epi64(_mm512_sub_epi64(a->v[i], b->v[i]),
                                _mm512_set1_epi64((long long)SM2X8_2P_LIMBS[i]));
    sm2x8_carry(l);
    sm2x8_fold(l);
    for (int i = 0; i < 5; i++) r->v[i] = l[i];
}

SM2X8_INLINE void sm2x8_neg(sm2x8_fe *r, const sm2x8_fe *a) {
    sm2x8_fe z;
    sm2x8_zero(&z);
    sm2x8_sub(r, &z, a);
}

/* r = a where mask bit set, else b. */
SM2X8_INLINE void sm2x8_select(sm2x8_fe *r, __mmask8 take_a, const sm2x8_fe *a,
                               const sm2x8_fe *b) {
    for (int i = 0; i < 5; i++) r->v[i] = _mm512_mask_blend_epi64(take_a, b->v[i], a->v[i]);
}

/* Montgomery reduction of the ten-limb product of sm2x8_mul or sm2x8_sqr (inputs within the
 * bounds stated above): r = t / 2^260 mod p, carried. */
SM2X8_INLINE void sm2x8_redc(sm2x8_fe *r, __m512i t[10]) {
    const __m512i m = _mm512_set1_epi64(SM2X8_M52);
    const __m512i p1 = _mm512_set1_epi64((long long)SM2X8_P1);
    const __m512i p4 = _mm512_set1_epi64((long long)SM2X8_P4);
    for (int i = 0; i < 5; i++) {
        /* t += q p 2^(52 i), q = t_i mod 2^52; then t_i is a multiple of 2^52 and moves up. */
        __m512i q = _mm512_and_si512(t[i], m);
        /* limb 0 of p: q (2^52 - 1) added to t_i leaves (t_i >> 52) + q for t_{i+1} */
        t[i + 1] = _mm512_add_epi64(t[i + 1], _mm512_add_epi64(_mm512_srai_epi64(t[i], 52), q));
        t[i + 1] = _mm512_madd52lo_epu64(t[i + 1], q, p1);
        t[i + 2] = _mm512_madd52hi_epu64(t[i + 2], q, p1);
        /* limbs 2 and 3 (2^52 - 1 each): -q at i+2, +q - q at i+3, +q at i+4 */
        t[i + 2] = _mm512_sub_epi64(t[i + 2], q);
        t[i + 4] = _mm512_add_epi64(t[i + 4], q);
        t[i + 4] = _mm512_madd52lo_epu64(t[i + 4], q, p4);
        t[i + 5] = _mm512_madd52hi_epu64(t[i + 5], q, p4);
    }
    __m512i l[5] = {t[5], t[6], t[7], t[8], t[9]};
    sm2x8_carry(l);
    for (int i = 0; i < 5; i++) r->v[i] = l[i];
}

/* Montgomery product a b / 2^260 mod p (bounds above). */
SM2X8_INLINE void sm2x8_mul(sm2x8_fe *r, const sm2x8_fe *a, const sm2x8_fe *b) {
    __m512i t[10];
    for (int i = 0; i < 10; i++) t[i] = _mm512_setzero_si512();
    for (int i = 0; i < 5; i++) {
        for (int j = 0; j < 5; j++) {
            t[i + j] = _mm512_madd52lo_epu64(t[i + j], a->v[i], b->v[j]);
            t[i + j + 1] = _mm512_madd52hi_epu64(t[i + j + 1], a->v[i], b->v[j]);
        }
    }
    sm2x8_redc(r, t);
}

/* Squaring: the cross products once, doubled. */
SM2X8_INLINE void sm2x8_sqr(sm2x8_fe *r, const sm2x8_fe *a) {
    __m512i t[10];
    for (int i = 0; i < 10; i++) t[i] = _mm512_setzero_si512();
    for (int i = 0; i < 5; i++) {
        for (int j = i + 1; j < 5; j++) {
            t[i + j] = _mm512_madd52lo_epu64(t[i + j], a->v[i], a->v[j]);
            t[i + j + 1] = _mm512_madd52hi_epu64(t[i + j + 1], a->v[i], a->v[j]);
        }
    }
    for (int i = 1; i < 10; i++) t[i] = _mm512_add_epi64(t[i], t[i]);
    for (int i = 0; i < 5; i++) {
        t[2 * i] = _mm512_madd52lo_epu64(t[2 * i], a->v[i], a->v[i]);
        t[2 * i + 1] = _mm512_madd52hi_epu64(t[2 * i + 1], a->v[i], a->v[i]);
    }
    sm2x8_redc(r, t);
}

/* Input < 2p: the representative in [0, p). */
SM2X8_INLINE void sm2x8_canon(sm2x8_fe *r, const sm2x8_fe *a) {
    __m512i w[5];
    for (int i = 0; i < 5; i++)
        w[i] = _mm512_sub_epi64(a->v[i], _mm512_set1_epi64((long long)SM2X8_P_LIMBS[i]));
    sm2x8_carry(w);
    __mmask8 below = _mm512_cmplt_epi64_mask(w[4], _mm512_setzero_si512()); /* a < p: keep a */
    for (int i = 0; i < 5; i++) r->v[i] = _mm512_mask_blend_epi64(below, w[i], a->v[i]);
}

/* Lanes where a == b (mod p); inputs < 2p. */
SM2X8_INLINE __mmask8 sm2x8_equal(const sm2x8_fe *a, const sm2x8_fe *b) {
    sm2x8_fe ca, cb;
    sm2x8_canon(&ca, a);
    sm2x8_canon(&cb, b);
    __mmask8 eq = 0xff;
    for (int i = 0; i < 5; i++) eq &= _mm512_cmpeq_epi64_mask(ca.v[i], cb.v[i]);
    return eq;
}

SM2X8_INLINE __mmask8 sm2x8_is_zero(const sm2x8_fe *a) {
    sm2x8_fe z;
    sm2x8_zero(&z);
    return sm2x8_equal(a, &z);
}

/* a^(p-2) = a^-1 (0 for 0), by fixed 4-bit windows over the public exponent p - 2:
 * 252 squarings and 64 products whatever a is. */
static inline void sm2x8_inv(sm2x8_fe *r, const sm2x8_fe *a) {
    static const uint64_t e[4] = {0xfffffffffffffffdULL, 0xffffffff00000000ULL,
                                  0xffffffffffffffffULL, 0xfffffffeffffffffULL};
    sm2x8_fe tbl[16], acc;
    sm2x8_const(&tbl[0], SM2X8_ONE_LIMBS);
    tbl[1] = *a;
    for (int i = 2; i < 16; i++) sm2x8_mul(&tbl[i], &tbl[i - 1], a);
    acc = tbl[(e[3] >> 60) & 15];
    for (int nib = 62; nib >= 0; nib--) {
        for (int k = 0; k < 4; k++) sm2x8_sqr(&acc, &acc);
        sm2x8_mul(&acc, &acc, &tbl[(e[nib / 16] >> (4 * (nib % 16))) & 15]);
    }
    *r = acc;
}

/* Lane l of r from the 256-bit integer v[l] (four little-endian 64-bit limbs, < 2^256). */
static inline void sm2x8_from_u256(sm2x8_fe *r, const uint64_t v[8][4]) {
    uint64_t tmp[5][8] __attribute__((aligned(64)));
    const uint64_t m = ((uint64_t)1 << 52) - 1;
    for (int l = 0; l < 8; l++) {
        const uint64_t *x = v[l];
        tmp[0][l] = x[0] & m;
        tmp[1][l] = ((x[0] >> 52) | (x[1] << 12)) & m;
        tmp[2][l] = ((x[1] >> 40) | (x[2] << 24)) & m;
        tmp[3][l] = ((x[2] >> 28) | (x[3] << 36)) & m;
        tmp[4][l] = x[3] >> 16;
    }
    for (int i = 0; i < 5; i++) r->v[i] = _mm512_load_si512((const void *)tmp[i]);
}

/* The inverse of sm2x8_from_u256 for a normalized value < 2^256 (e.g. after sm2x8_canon). */
static inline void sm2x8_to_u256(uint64_t v[8][4], const sm2x8_fe *a) {
    uint64_t tmp[5][8] __attribute__((aligned(64)));
    for (int i = 0; i < 5; i++) _mm512_store_si512((void *)tmp[i], a->v[i]);
    for (int l = 0; l < 8; l++) {
        v[l][0] = tmp[0][l] | (tmp[1][l] << 52);
        v[l][1] = (tmp[1][l] >> 12) | (tmp[2][l] << 40);
        v[l][2] = (tmp[2][l] >> 24) | (tmp[3][l] << 28);
        v[l][3] = (tmp[3][l] >> 36) | (tmp[4][l] << 16);
    }
}

#endif
