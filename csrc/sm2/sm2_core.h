/* SM2 curve arithmetic (y^2 = x^3 - 3x + b over GF(p)) and the verification core, as static
 * inline code that each ISA file compiles under its own target (SM2_DEFINE_CORE at the end).
 *
 * Formulas: Jacobian doubling for a = -3 (3M + 5S), mixed Jacobian + affine addition (7M + 4S)
 * and general addition (11M + 5S), from the Explicit-Formulas Database's dbl-2001-b,
 * madd-2007-bl and add-2007-bl. The variable-time additions handle every exceptional case
 * (infinity, equal or opposite inputs): verification must be exact for any input an attacker
 * picks.
 */
#ifndef ENGINE_SM2_CORE_H
#define ENGINE_SM2_CORE_H

#include "sm2/sm2_impl.h"

/* The file compiled for BMI2 + ADX defines SM2_USE_ADX before including this header. The
 * assembly needs 13 (product) and 14 (square) free registers, which unoptimised builds (-O0,
 * ENGINE_DEBUG) do not leave, nor sanitizer builds for the square: those use the C code. */
#if defined(SM2_USE_ADX) && defined(__x86_64__) && defined(__OPTIMIZE__)
#include "sm2/sm2_field_adx.h"
#define SM2_FE_MUL mont_mul_p_adx
#define SM2_FE_ADD mod_add_p_adx
#define SM2_FE_SUB mod_sub_p_adx
#if defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__) && !defined(SM2_NO_SQR_ASM)
#define SM2_FE_SQR(r, a) mont_sqr_p_adx(r, a)
#endif
#else
#define SM2_FE_MUL mont_mul_p
#endif
#ifndef SM2_FE_SQR
#define SM2_FE_SQR(r, a) SM2_FE_MUL(r, a, a)
#endif

static inline void fe_mul(uint64_t r[4], const uint64_t a[4], const uint64_t b[4]) {
    SM2_FE_MUL(r, a, b);
}
static inline void fe_sqr(uint64_t r[4], const uint64_t a[4]) { SM2_FE_SQR(r, a); }
#ifdef SM2_FE_ADD
static inline void fe_add(uint64_t r[4], const uint64_t a[4], const uint64_t b[4]) {
    SM2_FE_ADD(r, a, b);
}
static inline void fe_sub(uint64_t r[4], const uint64_t a[4], const uint64_t b[4]) {
    SM2_FE_SUB(r, a, b);
}
#else
static inline void fe_add(uint64_t r[4], const uint64_t a[4], const uint64_t b[4]) {
    mod_add(r, a, b, SM2_P.m);
}
static inline void fe_sub(uint64_t r[4], const uint64_t a[4], const uint64_t b[4]) {
    mod_sub(r, a, b, SM2_P.m);
}
#endif
static inline void fe_neg(uint64_t r[4], const uint64_t a[4]) {
    static const uint64_t zero[4] = {0, 0, 0, 0};
    mod_sub(r, zero, a, SM2_P.m);
}

/* r = a^k for k squarings of a (k >= 1). */
static inline void fe_sqr_n(uint64_t r[4], const uint64_t a[4], int k) {
    fe_sqr(r, a);
    while (--k > 0) fe_sqr(r, r);
}

/* a^(p-2) = a^-1 (Fermat), by a fixed addition chain: 256 squarings and 15 products (the
 * four-bit windows of mont_inv take 252 and 78). The exponent is public and the sequence of
 * operations does not depend on a. p - 2 in binary, from the top: 31 ones, a zero, 128 ones,
 * 32 zeros, 62 ones, a zero, a one. */
static inline void fe_inv(uint64_t r[4], const uint64_t a[4]) {
    uint64_t x2[4], x3[4], x6[4], x12[4], x24[4], x30[4], x31[4], x32[4], t[4];
    fe_sqr(t, a);
    fe_mul(x2, t, a); /* a^(2^2 - 1) */
    fe_sqr(t, x2);
    fe_mul(x3, t, a);
    fe_sqr_n(t, x3, 3);
    fe_mul(x6, t, x3);
    fe_sqr_n(t, x6, 6);
    fe_mul(x12, t, x6);
    fe_sqr_n(t, x12, 12);
    fe_mul(x24, t, x12);
    fe_sqr_n(t, x24, 6);
    fe_mul(x30, t, x6);
    fe_sqr(t, x30);
    fe_mul(x31, t, a);
    fe_sqr(t, x31);
    fe_mul(x32, t, a);
    fe_sqr_n(t, x31, 1); /* 31 ones, 0 */
    for (int i = 0; i < 4; i++) { /* 128 ones */
        fe_sqr_n(t, t, 32);
        fe_mul(t, t, x32);
    }
    fe_sqr_n(t, t, 32); /* 32 zeros */
    fe_sqr_n(t, t, 32); /* 62 ones */
    fe_mul(t, t, x32);
    fe_sqr_n(t, t, 30);
    fe_mul(t, t, x30);
    fe_sqr_n(t, t, 2); /* 0, 1 */
    fe_mul(r, t, a);
}

static inline void jac_set_inf(sm2_jac *r) { memset(r, 0, sizeof *r); }
static inline int jac_is_inf(const sm2_jac *p) { return u256_is_zero(p->z); }

static inline void jac_from_aff(sm2_jac *r, const sm2_aff *a) {
    memcpy(r->x, a->x, 32);
    memcpy(r->y, a->y, 32);
    memcpy(r->z, SM2_P.one, 32);
}

/* r = 2p (r may be p). Infinity doubles to infinity (Z3 = 2 Y Z = 0). */
static inline void jac_dbl(sm2_jac *r, const sm2_jac *p) {
    uint64_t delta[4], gamma[4], beta[4], alpha[4], t0[4], t1[4];
    fe_sqr(delta, p->z);
    fe_sqr(gamma, p->y);
    fe_mul(beta, p->x, gamma);
    fe_sub(t0, p->x, delta);
    fe_add(t1, p->x, delta);
    fe_mul(alpha, t0, t1);
    fe_add(t0, alpha, alpha);
    fe_add(alpha, t0, alpha); /* 3 (X - delta)(X + delta) */
    fe_add(t0, p->y, p->z);
    fe_sqr(t0, t0);
    fe_sub(t0, t0, gamma);
    fe_sub(r->z, t0, delta); /* (Y + Z)^2 - gamma - delta */
    fe_add(beta, beta, beta);
    fe_add(beta, beta, beta); /* 4 beta */
    fe_sqr(t0, alpha);
    fe_add(t1, beta, beta);
    fe_sub(r->x, t0, t1); /* alpha^2 - 8 beta */
    fe_sub(t0, beta, r->x);
    fe_mul(t0, alpha, t0);
    fe_sqr(t1, gamma);
    fe_add(t1, t1, t1);
    fe_add(t1, t1, t1);
    fe_add(t1, t1, t1); /* 8 gamma^2 */
    fe_sub(r->y, t0, t1);
}

/* The shared tail of the mixed addition: given H = U2 - X1, R = 2 (S2 - Y1). */
static inline void madd_finish(sm2_jac *r, const sm2_jac *p, const uint64_t z1z1[4],
                               const uint64_t h[4], const uint64_t rr[4]) {
    uint64_t hh[4], i[4], j[4], v[4], t0[4], t1[4], zsum[4];
    fe_sqr(hh, h);
    fe_add(i, hh, hh);
    fe_add(i, i, i);
    fe_mul(j, h, i);
    fe_mul(v, p->x, i);
    fe_add(zsum, p->z, h);
    fe_sqr(t0, rr);
    fe_sub(t0, t0, j);
    fe_add(t1, v, v);
    uint64_t x3[4];
    fe_sub(x3, t0, t1);
    fe_sub(t0, v, x3);
    fe_mul(t0, rr, t0);
    fe_mul(t1, p->y, j);
    fe_add(t1, t1, t1);
    fe_sub(r->y, t0, t1);
    fe_sqr(t0, zsum);
    fe_sub(t0, t0, z1z1);
    fe_sub(r->z, t0, hh);
    memcpy(r->x, x3, 32);
}

/* r = p + q, q affine (r may be p); exact for every input (variable time). */
static inline void jac_add_aff(sm2_jac *r, const sm2_jac *p, const sm2_aff *q) {
    if (jac_is_inf(p)) {
        jac_from_aff(r, q);
        return;
    }
    uint64_t z1z1[4], u2[4], s2[4], h[4], rr[4];
    fe_sqr(z1z1, p->z);
    fe_mul(u2, q->x, z1z1);
    fe_mul(s2, q->y, p->z);
    fe_mul(s2, s2, z1z1);
    fe_sub(h, u2, p->x);
    fe_sub(rr, s2, p->y);
    if (u256_is_zero(h)) {
        if (u256_is_zero(rr)) {
            sm2_jac t;
            jac_from_aff(&t, q);
            jac_dbl(r, &t);
        } else {
            jac_set_inf(r);
        }
        return;
    }
    fe_add(rr, rr, rr);
    madd_finish(r, p, z1z1, h, rr);
}

/* r = p + q, both Jacobian; exact for every input (variable time). */
static inline void jac_add(sm2_jac *r, const sm2_jac *p, const sm2_jac *q) {
    if (jac_is_inf(p)) {
        *r = *q;
        return;
    }
    if (jac_is_inf(q)) {
        *r = *p;
        return;
    }
    uint64_t z1z1[4], z2z2[4], u1[4], u2[4], s1[4], s2[4], h[4], i[4], j[4], rr[4], v[4];
    uint64_t t0[4], t1[4];
    fe_sqr(z1z1, p->z);
    fe_sqr(z2z2, q->z);
    fe_mul(u1, p->x, z2z2);
    fe_mul(u2, q->x, z1z1);
    fe_mul(s1, p->y, q->z);
    fe_mul(s1, s1, z2z2);
    fe_mul(s2, q->y, p->z);
    fe_mul(s2, s2, z1z1);
    fe_sub(h, u2, u1);
    fe_sub(rr, s2, s1);
    if (u256_is_zero(h)) {
        if (u256_is_zero(rr))
            jac_dbl(r, p);
        else
            jac_set_inf(r);
        return;
    }
    fe_add(rr, rr, rr);
    fe_add(i, h, h);
    fe_sqr(i, i);
    fe_mul(j, h, i);
    fe_mul(v, u1, i);
    fe_add(t0, p->z, q->z);
    fe_sqr(t0, t0);
    fe_sub(t0, t0, z1z1);
    fe_sub(t0, t0, z2z2);
    uint64_t z3[4];
    fe_mul(z3, t0, h);
    uint64_t x3[4];
    fe_sqr(t0, rr);
    fe_sub(t0, t0, j);
    fe_add(t1, v, v);
    fe_sub(x3, t0, t1);
    fe_sub(t0, v, x3);
    fe_mul(t0, rr, t0);
    fe_mul(t1, s1, j);
    fe_add(t1, t1, t1);
    fe_sub(r->y, t0, t1);
    memcpy(r->x, x3, 32);
    memcpy(r->z, z3, 32);
}

/* Affine forms of n Jacobian points, none at infinity, with one inversion (Montgomery's trick).
 * prod is scratch of n elements. */
static inline void jac_to_aff_many(sm2_aff *out, const sm2_jac *in, size_t n, uint64_t (*prod)[4]) {
    memcpy(prod[0], in[0].z, 32);
    for (size_t i = 1; i < n; i++) fe_mul(prod[i], prod[i - 1], in[i].z);
    uint64_t inv[4];
    fe_inv(inv, prod[n - 1]);
    for (size_t i = n; i-- > 0;) {
        uint64_t zinv[4], zinv2[4], zinv3[4];
        if (i > 0) {
            fe_mul(zinv, inv, prod[i - 1]);
            fe_mul(inv, inv, in[i].z);
        } else {
            memcpy(zinv, inv, 32);
        }
        fe_sqr(zinv2, zinv);
        fe_mul(zinv3, zinv2, zinv);
        fe_mul(out[i].x, in[i].x, zinv2);
        fe_mul(out[i].y, in[i].y, zinv3);
    }
}

/* The affine form of one Jacobian point not at infinity. */
static inline void aff_from_jac(sm2_aff *out, const sm2_jac *in) {
    uint64_t zinv[4], zinv2[4], zinv3[4];
    fe_inv(zinv, in->z);
    fe_sqr(zinv2, zinv);
    fe_mul(zinv3, zinv2, zinv);
    fe_mul(out->x, in->x, zinv2);
    fe_mul(out->y, in->y, zinv3);
}

/* Whether affine (x, y) (Montgomery form) is on the curve: y^2 == x^3 - 3x + b. */
static inline int aff_on_curve(const sm2_aff *a) {
    uint64_t y2[4], x3[4], t[4];
    fe_sqr(y2, a->y);
    fe_sqr(x3, a->x);
    fe_mul(x3, x3, a->x);
    fe_add(t, a->x, a->x);
    fe_add(t, t, a->x);
    fe_sub(x3, x3, t);
    fe_add(x3, x3, SM2_B_MONT);
    return u256_equal(x3, y2);
}

/* Width-w NAF of k < 2^256 (2 <= w <= 9): digits[i] zero or odd in [-(2^(w-1) - 1),
 * 2^(w-1) - 1], sum digits[i] 2^i = k, at most one nonzero digit in any w consecutive; 257
 * digits. Branches on k: public scalars only. */
static inline void wnaf(int16_t digits[257], const uint64_t k_in[4], int w) {
    uint64_t k[5] = {k_in[0], k_in[1], k_in[2], k_in[3], 0};
    const int full = 1 << w, half = 1 << (w - 1);
    for (int i = 0; i < 257; i++) {
        int d = 0;
        if (k[0] & 1) {
            d = (int)(k[0] & (uint64_t)(full - 1));
            if (d >= half) d -= full;
            /* k -= d */
            if (d > 0) {
                u128 c = (u128)k[0] - (uint64_t)d;
                k[0] = (uint64_t)c;
                uint64_t b = (uint64_t)((c >> 64) & 1);
                for (int l = 1; l < 5 && b; l++) b = (k[l]-- == 0);
            } else {
                u128 c = (u128)k[0] + (uint64_t)(-d);
                k[0] = (uint64_t)c;
                uint64_t cy = (uint64_t)(c >> 64);
                for (int l = 1; l < 5 && cy; l++) cy = (++k[l] == 0);
            }
        }
        digits[i] = (int16_t)d;
        for (int l = 0; l < 4; l++) k[l] = (k[l] >> 1) | (k[l + 1] << 63);
        k[4] >>= 1;
    }
}

/* Regular signed recoding (Joye-Tunstall) of an odd k < 2^256 in radix 2^w, for w dividing
 * 256 and at most 8 (4 and 8 here): 256 / w digits with k = 2^256 + sum d_i 2^(w i), d_i odd in
 * [-(2^w - 1), 2^w - 1]. Each step takes d = (k mod 2^(w+1)) - 2^w and k = (k - d) / 2^w, which
 * keeps k odd. Branch-free: signing uses it on secret scalars. Callers pass a constant w, so the
 * inlined copy is specialised to it. */
static inline void regular_recode(int16_t *digits, int w, const uint64_t k_in[4]) {
    uint64_t k[5] = {k_in[0], k_in[1], k_in[2], k_in[3], 0};
    const uint64_t mask = ((uint64_t)2 << w) - 1;
    const int64_t half = (int64_t)1 << w;
    for (int i = 0; i < 256 / w; i++) {
        int64_t d = (int64_t)(k[0] & mask) - half;
        digits[i] = (int16_t)d;
        /* k = (k - d) >> w; -d sign-extended over five limbs */
        uint64_t sub = (uint64_t)(-d), ext = (uint64_t)((-d) >> 63);
        u128 c = (u128)k[0] + sub;
        k[0] = (uint64_t)c;
        for (int l = 1; l < 5; l++) {
            c = (u128)k[l] + ext + (uint64_t)(c >> 64);
            k[l] = (uint64_t)c;
        }
        for (int l = 0; l < 4; l++) k[l] = (k[l] >> w) | (k[l + 1] << (64 - w));
        k[4] = (uint64_t)((int64_t)k[4] >> w);
    }
}

/* The comb's digits (sm2_impl.h): radix 2^8, one per comb position. */
static inline void comb_recode(int16_t digits[SM2_COMB_POSITIONS], const uint64_t k[4]) {
    regular_recode(digits, 256 / SM2_COMB_POSITIONS, k);
}

/* Odd multiples 1q..15q of the points q_k = 2^(64k) q (k < chunks, chunks 1 or 4), affine.
 * With chunks 4 the quarters of a 256-bit scalar share their doublings. */
static inline void key_tables(sm2_aff *table, const sm2_aff *q, int chunks) {
    sm2_jac pts[SM2_KEY_CHUNKS_MAX * SM2_WNAF_POINTS];
    uint64_t prod[SM2_KEY_CHUNKS_MAX * SM2_WNAF_POINTS][4];
    sm2_jac base, twice;
    memset(pts, 0, sizeof pts); /* every used entry is written below; this quiets -Wmaybe-uninitialized */
    jac_from_aff(&base, q);
    for (int c = 0; c < chunks; c++) {
        if (c > 0)
            for (int i = 0; i < 256 / chunks; i++) jac_dbl(&base, &base);
        sm2_jac *row = pts + SM2_WNAF_POINTS * c;
        row[0] = base;
        jac_dbl(&twice, &base);
        for (int j = 1; j < SM2_WNAF_POINTS; j++) jac_add(&row[j], &row[j - 1], &twice);
    }
    jac_to_aff_many(table, pts, (size_t)chunks * SM2_WNAF_POINTS, prod);
}

static inline int key_build(sm2_key *key, const uint8_t pk[64], int chunks) {
    uint64_t x[4], y[4];
    u256_from_be(x, pk);
    u256_from_be(y, pk + 32);
    if (!u256_less(x, SM2_P.m) || !u256_less(y, SM2_P.m)) return 0;
    sm2_aff a;
    to_mont(a.x, x, &SM2_P);
    to_mont(a.y, y, &SM2_P);
    if (!aff_on_curve(&a)) return 0; /* (0, 0) is not on it: b != 0; the cofactor is 1 */
    memcpy(key->pk, pk, 64);
    key->chunks = chunks;
    key_tables(key->table, &a, chunks);
    return 1;
}

static inline void aff_neg(sm2_aff *r, const sm2_aff *a) {
    memcpy(r->x, a->x, 32);
    fe_neg(r->y, a->y);
}

/* k = t when t is odd, else n - t (odd, and in [1, n-1] for t in [1, n-1]); returns 1 in the
 * second case, where a multiple by k must be negated. Branches on t: public scalars only. */
static inline int make_odd(uint64_t k[4], const uint64_t t[4]) {
    int even = !(t[0] & 1);
    if (even)
        mod_sub(k, SM2_N.m, t, SM2_N.m);
    else
        memcpy(k, t, 32);
    return even;
}

/* acc += d q for an odd digit d, |d| = 2 idx + 1, q = row[idx] (affine). */
static inline void add_digit(sm2_jac *acc, const sm2_aff *row, int d) {
    const sm2_aff *pt = &row[(d < 0 ? -d : d) >> 1];
    if (d > 0) {
        jac_add_aff(acc, acc, pt);
    } else {
        sm2_aff neg;
        aff_neg(&neg, pt);
        jac_add_aff(acc, acc, &neg);
    }
}

/* R = [s]G + [t]P; verdict of x(R) == c or c + n (mod p). t and s are cut into the key's
 * `chunks` pieces of 256 / chunks bits that share the loop's doublings (Straus): t in width-5
 * NAF over the key's odd multiples 1..15 of 2^(width k) P, s in width-9 NAF over the comb
 * table's odd multiples 1..255 of 2^(width k) G (its positions 8 i hold 2^(8 i) G, so chunk k
 * reads position width k / 8): about 256/6 + 256/10 additions. */
static inline int check(const sm2_key *key, const uint64_t s[4], const uint64_t t[4],
                        const uint64_t c[4]) {
    int16_t naf_t[257], naf_s[257];
    wnaf(naf_t, t, SM2_WNAF_WIDTH);
    wnaf(naf_s, s, 9);
    const int chunks = key->chunks, width = 256 / chunks;
    sm2_jac acc;
    jac_set_inf(&acc);
    for (int j = width; j >= 0; j--) {
        if (!jac_is_inf(&acc)) jac_dbl(&acc, &acc);
        for (int k = 0; k < chunks; k++) {
            if (j == width && k + 1 < chunks) continue; /* that digit is chunk k+1's j = 0 */
            int d = naf_t[width * k + j];
            if (d) add_digit(&acc, &key->table[SM2_WNAF_POINTS * k], d);
            d = naf_s[width * k + j];
            if (d) add_digit(&acc, engine_sm2_comb[width * k / 8], d);
        }
    }
    if (jac_is_inf(&acc)) return 0;
    uint64_t z2[4], cm[4], want[4];
    fe_sqr(z2, acc.z);
    to_mont(cm, c, &SM2_P);
    fe_mul(want, cm, z2);
    if (u256_equal(want, acc.x)) return 1;
    /* c + n, when it is still below p */
    uint64_t cn[4];
    u128 cy = 0;
    for (int i = 0; i < 4; i++) {
        cy = (u128)c[i] + SM2_N.m[i] + (uint64_t)(cy >> 64);
        cn[i] = (uint64_t)cy;
    }
    if ((uint64_t)(cy >> 64) || !u256_less(cn, SM2_P.m)) return 0;
    to_mont(cm, cn, &SM2_P);
    fe_mul(want, cm, z2);
    return u256_equal(want, acc.x);
}

#define SM2_DEFINE_CORE(isa)                                                                  \
    int engine_sm2_key_build_##isa(sm2_key *key, const uint8_t pk[64], int chunks) {         \
        return key_build(key, pk, chunks);                                                    \
    }                                                                                         \
    int engine_sm2_check_##isa(const sm2_key *key, const uint64_t s[4], const uint64_t t[4], \
                               const uint64_t c[4]) {                                         \
        return check(key, s, t, c);                                                           \
    }

#endif
