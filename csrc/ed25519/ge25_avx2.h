/* Edwards points in "parallel" form: the four AVX2 lanes of one fe25x4 (fe25_avx2.h) hold X, Y,
 * Z, T of one extended point, so that the four independent multiplications of an addition or a
 * doubling (Hisil, Wong, Carter and Dawson, 2008, a = -1) are one four-way multiplication.
 *
 * Include only from a file compiled with avx2 enabled (ed25519_avx2.c). Every operation takes
 * carried operands and returns carried results (the output of a four-way product), so they
 * chain without extra carries. An addition is two four-way products, a doubling one squaring
 * and one product; a subtraction costs the same as an addition (the operand's lanes are swapped
 * and the roles of F and G exchanged, no negation). The formulas are complete on this curve:
 * identity, small-order and mixed-order points need no special case.
 */
#ifndef ENGINE_ED25519_GE25_AVX2_H
#define ENGINE_ED25519_GE25_AVX2_H

#include "ed25519/fe25_avx2.h"
#include "ed25519/ge.h"

/* Lane masks for _mm256_blend_epi32 (two 32-bit halves per 64-bit lane). */
#define LANE0 0x03
#define LANE1 0x0c
#define LANE2 0x30
#define LANE3 0xc0
/* vpermq immediates: lane j of the result takes lane sel_j. */
#define PERM(s0, s1, s2, s3) ((s0) | ((s1) << 2) | ((s2) << 4) | ((s3) << 6))

/* An extended point (X : Y : Z : T), lanes 0..3; and the operand form of an addition,
 * (Y - X, Y + X, 2Z, 2dT). Both carried. */
typedef fe25x4 ge25_ext;
typedef fe25x4 ge25_cached;

/* (Y - X, Y + X, Z, T) of an extended point (limbs within the multiplication bound). */
static inline __attribute__((always_inline)) void ge25_diff_sum_xy(fe25x4 *t, const ge25_ext *p) {
    fe25x4 s, sum, diff;
    FE25X4_PERMUTE(&s, p, PERM(1, 0, 2, 3)); /* (Y, X, Z, T) */
    fe25x4_add(&sum, p, &s);                 /* lane 1: X + Y */
    fe25x4_sub(&diff, &s, p);                /* lane 0: Y - X */
    FE25X4_BLEND(t, p, &diff, LANE0);
    FE25X4_BLEND(t, t, &sum, LANE1);
}

/* r[n] = p[n] + q[n] for count (1 or 2) independent additions, interleaved: the four products
 * (Y1-X1)(Y2-X2), (Y1+X1)(Y2+X2), Z1 2Z2, T1 2dT2 = (A, B, D, C) at once; then E = B - A,
 * H = B + A, F = D - C, G = D + C and (X3, Y3, Z3, T3) = (E F, G H, F G, E H) at once. Complete
 * for every pair of points (a = -1, d non-square). r may be p. */
static inline __attribute__((always_inline)) void ge25_add_n(ge25_ext *const r[],
                                                             const ge25_ext *const p[],
                                                             const ge25_cached *const q[],
                                                             int count) {
    fe25x4 t[2], m[2], lhs[2], rhs[2];
    fe25x4 *tp[2] = {&t[0], &t[1]}, *mp[2] = {&m[0], &m[1]};
    for (int n = 0; n < count; n++) ge25_diff_sum_xy(&t[n], p[n]);
    fe25x4_mul_n(mp, (const fe25x4 *const *)tp, q, count); /* (A, B, D, C) */
    for (int n = 0; n < count; n++) {
        fe25x4 s, sum, diff, a, b;
        FE25X4_PERMUTE(&s, &m[n], PERM(1, 0, 3, 2)); /* (B, A, C, D) */
        fe25x4_add(&sum, &m[n], &s);                 /* (A+B, A+B, C+D, C+D) = (H, H, G, G) */
        fe25x4_sub(&diff, &s, &m[n]);                /* (B-A, A-B, C-D, D-C) = (E, -, -, F) */
        FE25X4_PERMUTE(&a, &diff, PERM(0, 0, 3, 0)); /* (E, E, F, E) */
        FE25X4_PERMUTE(&b, &sum, PERM(0, 2, 0, 0));  /* (H, G, H, H) */
        FE25X4_BLEND(&lhs[n], &a, &b, LANE1);        /* (E, G, F, E) */
        FE25X4_PERMUTE(&a, &diff, PERM(3, 3, 3, 3)); /* (F, F, F, F) */
        FE25X4_PERMUTE(&b, &sum, PERM(0, 0, 2, 0));  /* (H, H, G, H) */
        FE25X4_BLEND(&rhs[n], &b, &a, LANE0);        /* (F, H, G, H) */
    }
    const fe25x4 *lp[2] = {&lhs[0], &lhs[1]}, *rp[2] = {&rhs[0], &rhs[1]};
    fe25x4_mul_n(r, lp, rp, count);
}

static inline __attribute__((always_inline)) void ge25_add(ge25_ext *r, const ge25_ext *p,
                                                           const ge25_cached *q) {
    ge25_ext *const rs[1] = {r};
    const ge25_ext *const ps[1] = {p};
    const ge25_cached *const qs[1] = {q};
    ge25_add_n(rs, ps, qs, 1);
}

/* The cached form of p scaled by 121666, which a projective point does not notice:
 * d = -121665/121666, so 121666 (Y - X, Y + X, 2Z, 2dT) = (121666 (Y - X), 121666 (Y + X),
 * 243332 Z, -243330 T), products by small constants instead of a full multiplication by 2d. */
static inline void ge25_to_cached(ge25_cached *r, const ge25_ext *p) {
    fe25x4 t, neg;
    ge25_diff_sum_xy(&t, p);
    fe25x4_mul_small(&t, &t, 121666, 121666, 243332, 243330);
    fe25x4_neg(&neg, &t);
    FE25X4_BLEND(r, &t, &neg, LANE3);
}

static void ge25_identity(ge25_ext *p) {
    fe51 one = FE_ONE, zero = FE_ZERO;
    fe25x4_from_fe51(p, &zero, &one, &one, &zero);
}

static void ge25_to_p3(ge_p3 *r, const ge25_ext *p) {
    fe51 c[4];
    fe25x4_to_fe51(c, p);
    r->X = c[0];
    r->Y = c[1];
    r->Z = c[2];
    r->T = c[3];
}


/* r = p - q, as ge25_add with q negated: -q's operand form is (Y + X, Y - X, 2Z, -2dT), so the
 * products are (Y1-X1)(Y2+X2), (Y1+X1)(Y2-X2), Z1 2Z2 and T1 2dT2 = (A, B, D, C) from q with its
 * first two lanes swapped, and then E = B - A, H = B + A, F = D + C, G = D - C (C's sign flipped
 * is F and G exchanged). r may be p. */
static inline __attribute__((always_inline)) void ge25_sub(ge25_ext *r, const ge25_ext *p,
                                                           const ge25_cached *q) {
    fe25x4 t, qs, m, s, sum, diff, a, b, lhs, rhs;
    ge25_diff_sum_xy(&t, p);
    FE25X4_PERMUTE(&qs, q, PERM(1, 0, 2, 3));
    fe25x4_mul(&m, &t, &qs);                    /* (A, B, D, C) */
    FE25X4_PERMUTE(&s, &m, PERM(1, 0, 3, 2));   /* (B, A, C, D) */
    fe25x4_add(&sum, &m, &s);                   /* (H, H, F, F) */
    fe25x4_sub(&diff, &s, &m);                  /* (B-A, A-B, C-D, D-C) = (E, -, -, G) */
    FE25X4_PERMUTE(&a, &diff, PERM(0, 3, 0, 0)); /* (E, G, E, E) */
    FE25X4_PERMUTE(&b, &sum, PERM(0, 0, 2, 0));  /* lane 2: F */
    FE25X4_BLEND(&lhs, &a, &b, LANE2);           /* (E, G, F, E) */
    FE25X4_PERMUTE(&a, &sum, PERM(2, 0, 0, 0));  /* (F, H, H, H) */
    FE25X4_PERMUTE(&b, &diff, PERM(3, 3, 3, 3)); /* (G, G, G, G) */
    FE25X4_BLEND(&rhs, &a, &b, LANE2);           /* (F, H, G, H) */
    fe25x4_mul(r, &lhs, &rhs);
}

/* Lanes multiplied by small constants (at most 2 here), without a carry: the caller bounds. */
static inline __attribute__((always_inline)) void fe25x4_scale_lanes(fe25x4 *h, const fe25x4 *f,
                                                                     int c0, int c1, int c2,
                                                                     int c3) {
    const __m256i c = _mm256_setr_epi64x(c0, c1, c2, c3);
    for (int k = 0; k < 10; k++) h->l[k] = _mm256_mul_epu32(f->l[k], c);
}

/* r = 2p (dbl-2008-hwcd, a = -1), T of p unused. With A = X^2, B = Y^2, S = (X + Y)^2 and
 * C = 2Z^2 the formulas give E = S - A - B, G = B - A, F = G - C, H = -(A + B); all four are
 * negated here, which leaves the point alone (each output coordinate is a product of two):
 * E = A + B - S, F = A - B + C, G = A - B, H = A + B, and (X3, Y3, Z3, T3) = (E F, G H, F G,
 * E H) = (E, G, F, E) (F, H, G, H). The squaring takes (X, Y, Z, X + Y); with K = (A + B,
 * A - B, A - B, A + B), the left factor is K + (-S, 0, C, -S), the right one K's lanes
 * (1, 0, 1, 0) + (C, 0, 0, 0). Both are below 5.1 units per limb. Only the right one is
 * carried: fe25x4_mul_n multiplies the left factor (and twice its odd limbs) by 19 times the
 * carried right one, so a left limb below 2^31 keeps every product in 32 x 32 bits and the ten
 * accumulated terms below 10 * 2^28.4 * 2^30.3 < 2^62. r may be p. */
static inline __attribute__((always_inline)) void ge25_dbl(ge25_ext *r, const ge25_ext *p) {
    const __m256i lane3 = _mm256_setr_epi64x(0, 0, 0, -1);
    fe25x4 t, u, v, sq, a, b, nb, k, n, lhs, rhs;
    FE25X4_PERMUTE(&t, p, PERM(1, 1, 1, 1));    /* (Y, Y, Y, Y) */
    FE25X4_PERMUTE(&u, p, PERM(0, 1, 2, 0));    /* (X, Y, Z, X) */
    for (int i = 0; i < 10; i++)                /* (X, Y, Z, X + Y) */
        v.l[i] = _mm256_add_epi64(u.l[i], _mm256_and_si256(t.l[i], lane3));
    fe25x4_sq(&sq, &v);                         /* (A, B, Z^2, S) */
    FE25X4_PERMUTE(&a, &sq, PERM(0, 0, 0, 0));
    FE25X4_PERMUTE(&b, &sq, PERM(1, 1, 1, 1));
    fe25x4_neg(&nb, &b);
    FE25X4_BLEND(&b, &b, &nb, LANE1 | LANE2);
    fe25x4_add(&k, &a, &b);                     /* K, below 3.1 units */
    FE25X4_PERMUTE(&t, &sq, PERM(3, 3, 2, 3));
    fe25x4_scale_lanes(&t, &t, 1, 0, 2, 1);      /* (S, 0, C, S) */
    fe25x4_neg(&n, &t);                         /* lanes 0 and 3: -S (lane 2 unused) */
    FE25X4_BLEND(&n, &t, &n, LANE0 | LANE3);    /* (-S, 0, C, -S) */
    fe25x4_add(&lhs, &k, &n);
    FE25X4_PERMUTE(&u, &sq, PERM(2, 2, 2, 2));
    fe25x4_scale_lanes(&u, &u, 2, 0, 0, 0);      /* (C, 0, 0, 0) */
    FE25X4_PERMUTE(&rhs, &k, PERM(1, 0, 1, 0));
    fe25x4_add(&rhs, &rhs, &u);
    fe25x4_carry(rhs.l);
    fe25x4_mul(r, &lhs, &rhs);
}

/* The operand form (Y - X, Y + X, 2Z, 2dT) of an extended point, exactly (no scaling): for
 * tables whose entries are also compared or converted back. */
static inline void ge25_to_cached_exact(ge25_cached *r, const ge25_ext *p) {
    fe51 one = FE_ONE, two = {{2, 0, 0, 0, 0}};
    fe25x4 t, c;
    ge25_diff_sum_xy(&t, p);
    fe25x4_from_fe51(&c, &one, &one, &two, &FE_D2);
    fe25x4_mul(r, &t, &c);
}

/* The operand form of a radix-2^51 cached point (Y + X, Y - X, Z, 2dT). */
static inline void ge25_cached_from_ge(ge25_cached *r, const ge_cached *c) {
    fe25x4 t;
    fe25x4_from_fe51(&t, &c->ymx, &c->ypx, &c->z, &c->t2d);
    fe25x4_scale_lanes(r, &t, 1, 1, 2, 1);
    fe25x4_carry(r->l);
}

/* The operand form of an affine niels point (y + x, y - x, 2dxy): (y - x, y + x, 2, 2dxy). */
static inline void ge25_cached_from_niels(ge25_cached *r, const ge_niels *p) {
    fe51 two = {{2, 0, 0, 0, 0}};
    fe25x4_from_fe51(r, &p->ymx, &p->ypx, &two, &p->xy2d);
}

/* An extended point from radix 2^51. */
static inline void ge25_from_p3(ge25_ext *r, const ge_p3 *p) {
    fe25x4_from_fe51(r, &p->X, &p->Y, &p->Z, &p->T);
}

#endif
