/* Montgomery arithmetic on 256-bit integers in four 64-bit limbs (little-endian limbs), for the
 * SM2 prime p and the group order n.
 *
 * Static inline so that each ISA file compiles it with its own target (the AVX2 file lets the
 * compiler use mulx/adx). Elements are kept in Montgomery form x R mod m, R = 2^256, fully
 * reduced (< m). For p = 2^256 - 2^224 - 2^96 + 2^64 - 1 the Montgomery constant -p^-1 mod 2^64
 * is 1, so each reduction step needs no extra multiplication. Nothing here branches on the
 * values (the final subtractions are masked): signing uses the same code.
 */
#ifndef ENGINE_SM2_FIELD_H
#define ENGINE_SM2_FIELD_H

#include <stdint.h>
#include <string.h>

typedef unsigned __int128 u128;

typedef struct {
    uint64_t m[4];     /* the modulus */
    uint64_t m0inv;    /* -m^-1 mod 2^64 */
    uint64_t r2[4];    /* R^2 mod m, to enter Montgomery form */
    uint64_t one[4];   /* R mod m, 1 in Montgomery form */
} sm2_modulus;

static const uint64_t SM2_P_LIMBS[4] = {0xffffffffffffffffULL, 0xffffffff00000000ULL,
                                        0xffffffffffffffffULL, 0xfffffffeffffffffULL};

/* Add and subtract with carry: the x86-64 intrinsics compile to adc / sbb chains; the generic
 * form is for other CPUs. */
#if defined(__x86_64__)
#include <x86intrin.h>
static inline uint64_t addc(uint64_t a, uint64_t b, unsigned char *c) {
    unsigned long long o;
    *c = _addcarry_u64(*c, a, b, &o);
    return (uint64_t)o;
}
static inline uint64_t subb(uint64_t a, uint64_t b, unsigned char *c) {
    unsigned long long o;
    *c = _subborrow_u64(*c, a, b, &o);
    return (uint64_t)o;
}
#else
static inline uint64_t addc(uint64_t a, uint64_t b, unsigned char *c) {
    u128 s = (u128)a + b + *c;
    *c = (unsigned char)(s >> 64);
    return (uint64_t)s;
}
static inline uint64_t subb(uint64_t a, uint64_t b, unsigned char *c) {
    u128 s = (u128)a - b - *c;
    *c = (unsigned char)((s >> 64) & 1);
    return (uint64_t)s;
}
#endif

/* r = (hi:t) - m when that does not go below zero, else t (hi is a 257th bit of the input). */
static inline void sm2_reduce_once(uint64_t r[4], const uint64_t t[4], uint64_t hi,
                                   const uint64_t m[4]) {
    unsigned char b = 0;
    uint64_t s0 = subb(t[0], m[0], &b);
    uint64_t s1 = subb(t[1], m[1], &b);
    uint64_t s2 = subb(t[2], m[2], &b);
    uint64_t s3 = subb(t[3], m[3], &b);
    uint64_t keep_t = (uint64_t)0 - ((uint64_t)b & ~hi & 1);
    r[0] = (t[0] & keep_t) | (s0 & ~keep_t);
    r[1] = (t[1] & keep_t) | (s1 & ~keep_t);
    r[2] = (t[2] & keep_t) | (s2 & ~keep_t);
    r[3] = (t[3] & keep_t) | (s3 & ~keep_t);
}

/* Montgomery product for any odd modulus (used mod n). */
static inline void mont_mul_generic(uint64_t r[4], const uint64_t a[4], const uint64_t b[4],
                                    const sm2_modulus *md) {
    const uint64_t *m = md->m;
    uint64_t t0 = 0, t1 = 0, t2 = 0, t3 = 0, t4 = 0;
    for (int i = 0; i < 4; i++) {
        uint64_t bi = b[i];
        u128 c = (u128)a[0] * bi + t0;
        t0 = (uint64_t)c;
        c = (u128)a[1] * bi + t1 + (uint64_t)(c >> 64);
        t1 = (uint64_t)c;
        c = (u128)a[2] * bi + t2 + (uint64_t)(c >> 64);
        t2 = (uint64_t)c;
        c = (u128)a[3] * bi + t3 + (uint64_t)(c >> 64);
        t3 = (uint64_t)c;
        c = (u128)t4 + (uint64_t)(c >> 64);
        t4 = (uint64_t)c;
        uint64_t t5 = (uint64_t)(c >> 64);
        uint64_t q = t0 * md->m0inv;
        c = (u128)q * m[0] + t0;
        c = (u128)q * m[1] + t1 + (uint64_t)(c >> 64);
        t0 = (uint64_t)c;
        c = (u128)q * m[2] + t2 + (uint64_t)(c >> 64);
        t1 = (uint64_t)c;
        c = (u128)q * m[3] + t3 + (uint64_t)(c >> 64);
        t2 = (uint64_t)c;
        c = (u128)t4 + (uint64_t)(c >> 64);
        t3 = (uint64_t)c;
        t4 = t5 + (uint64_t)(c >> 64);
    }
    uint64_t t[4] = {t0, t1, t2, t3};
    sm2_reduce_once(r, t, t4, m);
}

/* Montgomery product mod p = 2^256 - 2^224 - 2^96 + 2^64 - 1. Each reduction step adds q p to
 * the running sum with q its lowest limb (-p^-1 = 1 mod 2^64) and drops that limb; q p / 2^64
 * rounded up is q (2^192 - 2^160 - 2^32 + 1), made of shifts of q: no multiplication. */
static inline void mont_mul_p(uint64_t r[4], const uint64_t a[4], const uint64_t b[4]) {
    uint64_t t0 = 0, t1 = 0, t2 = 0, t3 = 0, t4 = 0;
    for (int i = 0; i < 4; i++) {
        uint64_t bi = b[i];
        u128 c = (u128)a[0] * bi + t0;
        t0 = (uint64_t)c;
        c = (u128)a[1] * bi + t1 + (uint64_t)(c >> 64);
        t1 = (uint64_t)c;
        c = (u128)a[2] * bi + t2 + (uint64_t)(c >> 64);
        t2 = (uint64_t)c;
        c = (u128)a[3] * bi + t3 + (uint64_t)(c >> 64);
        t3 = (uint64_t)c;
        c = (u128)t4 + (uint64_t)(c >> 64);
        t4 = (uint64_t)c;
        uint64_t t5 = (uint64_t)(c >> 64);
        /* u = q (2^192 - 2^160 - 2^32 + 1) = (q, 0, 0, q) - (q << 32, q >> 32, q << 32, q >> 32) */
        uint64_t q = t0, lo = q << 32, hi = q >> 32;
        unsigned char bw = 0;
        uint64_t u0 = subb(q, lo, &bw);
        uint64_t u1 = subb(0, hi, &bw);
        uint64_t u2 = subb(0, lo, &bw);
        uint64_t u3 = subb(q, hi, &bw);
        /* (t1..t4, t5) + u, shifted down one limb; t0 + q p's low limb is 0 with carry q, which
         * the rounding up in u accounts for */
        unsigned char cy = 0;
        t0 = addc(t1, u0, &cy);
        t1 = addc(t2, u1, &cy);
        t2 = addc(t3, u2, &cy);
        t3 = addc(t4, u3, &cy);
        t4 = t5 + cy;
    }
    uint64_t t[4] = {t0, t1, t2, t3};
    sm2_reduce_once(r, t, t4, SM2_P_LIMBS);
}

static inline void mont_mul(uint64_t r[4], const uint64_t a[4], const uint64_t b[4],
                            const sm2_modulus *md) {
    if (md->m0inv == 1 && md->m[0] == SM2_P_LIMBS[0] && md->m[1] == SM2_P_LIMBS[1])
        mont_mul_p(r, a, b);
    else
        mont_mul_generic(r, a, b, md);
}

static inline void mod_add(uint64_t r[4], const uint64_t a[4], const uint64_t b[4],
                           const uint64_t m[4]) {
    unsigned char c = 0;
    uint64_t t[4];
    t[0] = addc(a[0], b[0], &c);
    t[1] = addc(a[1], b[1], &c);
    t[2] = addc(a[2], b[2], &c);
    t[3] = addc(a[3], b[3], &c);
    sm2_reduce_once(r, t, c, m);
}

static inline void mod_sub(uint64_t r[4], const uint64_t a[4], const uint64_t b[4],
                           const uint64_t m[4]) {
    unsigned char bw = 0;
    uint64_t t0 = subb(a[0], b[0], &bw);
    uint64_t t1 = subb(a[1], b[1], &bw);
    uint64_t t2 = subb(a[2], b[2], &bw);
    uint64_t t3 = subb(a[3], b[3], &bw);
    uint64_t mask = (uint64_t)0 - (uint64_t)bw; /* went below zero: add m back */
    unsigned char c = 0;
    r[0] = addc(t0, m[0] & mask, &c);
    r[1] = addc(t1, m[1] & mask, &c);
    r[2] = addc(t2, m[2] & mask, &c);
    r[3] = addc(t3, m[3] & mask, &c);
}

static inline int u256_is_zero(const uint64_t a[4]) { return (a[0] | a[1] | a[2] | a[3]) == 0; }

static inline int u256_equal(const uint64_t a[4], const uint64_t b[4]) {
    return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3])) == 0;
}

/* a < b as integers (variable time; for public values). */
static inline int u256_less(const uint64_t a[4], const uint64_t b[4]) {
    for (int i = 3; i >= 0; i--)
        if (a[i] != b[i]) return a[i] < b[i];
    return 0;
}

static inline void u256_from_be(uint64_t r[4], const uint8_t b[32]) {
    for (int i = 0; i < 4; i++) {
        uint64_t w = 0;
        for (int k = 0; k < 8; k++) w = (w << 8) | b[8 * (3 - i) + k];
        r[i] = w;
    }
}

static inline void u256_to_be(uint8_t b[32], const uint64_t r[4]) {
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 8; k++) b[8 * (3 - i) + k] = (uint8_t)(r[i] >> (56 - 8 * k));
}

static inline void to_mont(uint64_t r[4], const uint64_t a[4], const sm2_modulus *md) {
    mont_mul(r, a, md->r2, md);
}

static inline void from_mont(uint64_t r[4], const uint64_t a[4], const sm2_modulus *md) {
    static const uint64_t one[4] = {1, 0, 0, 0};
    mont_mul(r, a, one, md);
}

/* a^(m-2) = a^-1 (Fermat; m prime). The exponent is public, so the sequence of operations
 * does not depend on a. Fixed 4-bit windows: 252 squarings and 64 multiplications. */
static inline void mont_inv(uint64_t r[4], const uint64_t a[4], const sm2_modulus *md) {
    uint64_t e[4], tbl[16][4], acc[4];
    u128 c = (u128)md->m[0] - 2;
    e[0] = (uint64_t)c;
    uint64_t borrow = (uint64_t)((c >> 64) & 1);
    for (int i = 1; i < 4; i++) {
        c = (u128)md->m[i] - borrow;
        e[i] = (uint64_t)c;
        borrow = (uint64_t)((c >> 64) & 1);
    }
    memcpy(tbl[0], md->one, 32);
    memcpy(tbl[1], a, 32);
    for (int i = 2; i < 16; i++) mont_mul(tbl[i], tbl[i - 1], a, md);
    memcpy(acc, md->one, 32);
    for (int nib = 63; nib >= 0; nib--) {
        if (nib != 63)
            for (int k = 0; k < 4; k++) mont_mul(acc, acc, acc, md);
        unsigned w = (unsigned)(e[nib / 16] >> (4 * (nib % 16))) & 15;
        mont_mul(acc, acc, tbl[w], md);
    }
    memcpy(r, acc, 32);
}

#endif
