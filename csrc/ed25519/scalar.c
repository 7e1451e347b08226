/* Scalar arithmetic mod L by Barrett reduction (HAC 14.42, base 2^64, k = 4). Variable time:
 * verification only handles public scalars. */
#include "ed25519/scalar.h"

#include <string.h>

typedef unsigned __int128 u128;

static const uint64_t L_LIMBS[4] = {0x5812631a5cf5d3edULL, 0x14def9dea2f79cd6ULL, 0, 0x1000000000000000ULL};
/* floor(2^512 / L) */
static const uint64_t MU[5] = {0xed9ce5a30a2c131bULL, 0x2106215d086329a7ULL, 0xffffffffffffffebULL,
                               0xffffffffffffffffULL, 0xfULL};

/* r[0 .. an+bn) = a * b */
static void mul_limbs(uint64_t *r, const uint64_t *a, int an, const uint64_t *b, int bn) {
    memset(r, 0, sizeof(uint64_t) * (size_t)(an + bn));
    for (int i = 0; i < an; i++) {
        uint64_t carry = 0;
        for (int j = 0; j < bn; j++) {
            u128 t = (u128)a[i] * b[j] + r[i + j] + carry;
            r[i + j] = (uint64_t)t;
            carry = (uint64_t)(t >> 64);
        }
        r[i + bn] = carry;
    }
}

/* a >= b over n limbs */
static int geq(const uint64_t *a, const uint64_t *b, int n) {
    for (int i = n - 1; i >= 0; i--) {
        if (a[i] != b[i]) return a[i] > b[i];
    }
    return 1;
}

/* a -= b over n limbs, modulo 2^(64n) */
static void sub_limbs(uint64_t *a, const uint64_t *b, int n) {
    uint64_t borrow = 0;
    for (int i = 0; i < n; i++) {
        u128 t = (u128)a[i] - b[i] - borrow;
        a[i] = (uint64_t)t;
        borrow = (uint64_t)(t >> 64) & 1;
    }
}

/* r = x mod L for x < 2^512 given as 8 limbs. */
static void barrett(sc256 *r, const uint64_t x[8]) {
    uint64_t q2[10], r2[10], rr[5];
    mul_limbs(q2, x + 3, 5, MU, 5);
    mul_limbs(r2, q2 + 5, 5, L_LIMBS, 4); /* q3 * L; only the low 5 limbs are needed */
    memcpy(rr, x, sizeof rr);
    sub_limbs(rr, r2, 5);
    uint64_t l5[5] = {L_LIMBS[0], L_LIMBS[1], L_LIMBS[2], L_LIMBS[3], 0};
    while (geq(rr, l5, 5)) sub_limbs(rr, l5, 5);
    memcpy(r->v, rr, 32);
}

int engine_sc_is_canonical(const uint8_t s[32]) {
    uint64_t v[4];
    memcpy(v, s, 32);
    return !geq(v, L_LIMBS, 4);
}

void engine_sc_from_bytes(sc256 *r, const uint8_t s[32]) { memcpy(r->v, s, 32); }

void engine_sc_reduce512(sc256 *r, const uint8_t in[64]) {
    uint64_t x[8];
    memcpy(x, in, 64);
    barrett(r, x);
}

void engine_sc_mul(sc256 *r, const sc256 *a, const sc256 *b) {
    uint64_t x[8];
    mul_limbs(x, a->v, 4, b->v, 4);
    barrett(r, x);
}

void engine_sc_add(sc256 *r, const sc256 *a, const sc256 *b) {
    uint64_t x[8] = {0};
    uint64_t carry = 0;
    for (int i = 0; i < 4; i++) {
        u128 t = (u128)a->v[i] + b->v[i] + carry;
        x[i] = (uint64_t)t;
        carry = (uint64_t)(t >> 64);
    }
    x[4] = carry;
    barrett(r, x);
}
