/* Group operations on edwards25519 (-x^2 + y^2 = 1 + d x^2 y^2) in extended coordinates.
 *
 * Representations (Hisil-Wong-Carter-Dawson 2008, a = -1):
 *   ge_p3     (X : Y : Z : T), x = X/Z, y = Y/Z, xy = T/Z: the general point.
 *   ge_p2     (X : Y : Z): enough for doubling.
 *   ge_p1p1   the "completed" result (E, F, G, H) of an addition or doubling, with
 *             X = E*F, Y = G*H, Z = F*G, T = E*H, converted to p2 (3M) or p3 (4M) as needed.
 *   ge_cached / ge_niels (ed25519_types.h): addition operands.
 * The formulas are complete on this curve, so small-order and mixed-order points (which ZIP-215
 * accepts) need no special cases. Header-only, for the same reason as fe51.h.
 */
#ifndef ENGINE_ED25519_GE_H
#define ENGINE_ED25519_GE_H

#include "ed25519/fe51.h"

typedef struct {
    fe51 X, Y, Z, T;
} ge_p3;

typedef struct {
    fe51 X, Y, Z;
} ge_p2;

typedef struct {
    fe51 E, F, G, H;
} ge_p1p1;

static inline void ge_p3_identity(ge_p3 *p) {
    p->X = FE_ZERO;
    p->Y = FE_ONE;
    p->Z = FE_ONE;
    p->T = FE_ZERO;
}

static inline __attribute__((always_inline)) void ge_p1p1_to_p2(ge_p2 *r, const ge_p1p1 *p) {
    fe_mul(&r->X, &p->E, &p->F);
    fe_mul(&r->Y, &p->G, &p->H);
    fe_mul(&r->Z, &p->F, &p->G);
}

static inline __attribute__((always_inline)) void ge_p1p1_to_p3(ge_p3 *r, const ge_p1p1 *p) {
    fe_mul(&r->X, &p->E, &p->F);
    fe_mul(&r->Y, &p->G, &p->H);
    fe_mul(&r->Z, &p->F, &p->G);
    fe_mul(&r->T, &p->E, &p->H);
}

static inline void ge_p3_to_p2(ge_p2 *r, const ge_p3 *p) {
    r->X = p->X;
    r->Y = p->Y;
    r->Z = p->Z;
}

static inline void ge_p3_to_cached(ge_cached *r, const ge_p3 *p) {
    fe_add(&r->ypx, &p->Y, &p->X);
    fe_sub(&r->ymx, &p->Y, &p->X);
    r->z = p->Z;
    fe_mul(&r->t2d, &p->T, &FE_D2);
}

/* dbl-2008-hwcd: A = X^2, B = Y^2, C = 2Z^2, E = (X+Y)^2 - A - B, G = B - A, F = G - C,
 * H = -(A + B). */
static inline __attribute__((always_inline)) void ge_p2_dbl(ge_p1p1 *r, const ge_p2 *p) {
    fe51 a, b, c, s, ab;
    fe_sq(&a, &p->X);
    fe_sq(&b, &p->Y);
    fe_sq(&c, &p->Z);
    fe_add(&c, &c, &c);
    fe_add(&s, &p->X, &p->Y);
    fe_sq(&s, &s);
    fe_add(&ab, &a, &b);
    fe_sub(&r->E, &s, &ab);
    fe_sub(&r->G, &b, &a);
    fe_sub(&r->F, &r->G, &c);
    fe_neg(&r->H, &ab);
}

static inline void ge_p3_dbl(ge_p1p1 *r, const ge_p3 *p) {
    ge_p2 q;
    ge_p3_to_p2(&q, p);
    ge_p2_dbl(r, &q);
}

/* add-2008-hwcd-3 with the second operand cached: 4M + conversion. */
static inline __attribute__((always_inline)) void ge_add(ge_p1p1 *r, const ge_p3 *p, const ge_cached *q) {
    fe51 a, b, c, d, t;
    fe_sub(&t, &p->Y, &p->X);
    fe_mul(&a, &t, &q->ymx);
    fe_add(&t, &p->Y, &p->X);
    fe_mul(&b, &t, &q->ypx);
    fe_mul(&c, &p->T, &q->t2d);
    fe_mul(&d, &p->Z, &q->z);
    fe_add(&d, &d, &d);
    fe_sub(&r->E, &b, &a);
    fe_sub(&r->F, &d, &c);
    fe_add(&r->G, &d, &c);
    fe_add(&r->H, &b, &a);
}

/* p - q: q's negation swaps Y+X with Y-X and negates 2dT. */
static inline __attribute__((always_inline)) void ge_sub(ge_p1p1 *r, const ge_p3 *p, const ge_cached *q) {
    fe51 a, b, c, d, t;
    fe_sub(&t, &p->Y, &p->X);
    fe_mul(&a, &t, &q->ypx);
    fe_add(&t, &p->Y, &p->X);
    fe_mul(&b, &t, &q->ymx);
    fe_mul(&c, &p->T, &q->t2d);
    fe_mul(&d, &p->Z, &q->z);
    fe_add(&d, &d, &d);
    fe_sub(&r->E, &b, &a);
    fe_add(&r->F, &d, &c);
    fe_sub(&r->G, &d, &c);
    fe_add(&r->H, &b, &a);
}

/* Mixed addition with an affine operand (Z2 = 1): 3M + conversion. */
static inline __attribute__((always_inline)) void ge_madd(ge_p1p1 *r, const ge_p3 *p, const ge_niels *q) {
    fe51 a, b, c, d, t;
    fe_sub(&t, &p->Y, &p->X);
    fe_mul(&a, &t, &q->ymx);
    fe_add(&t, &p->Y, &p->X);
    fe_mul(&b, &t, &q->ypx);
    fe_mul(&c, &p->T, &q->xy2d);
    fe_add(&d, &p->Z, &p->Z);
    fe_sub(&r->E, &b, &a);
    fe_sub(&r->F, &d, &c);
    fe_add(&r->G, &d, &c);
    fe_add(&r->H, &b, &a);
}

static inline __attribute__((always_inline)) void ge_msub(ge_p1p1 *r, const ge_p3 *p, const ge_niels *q) {
    fe51 a, b, c, d, t;
    fe_sub(&t, &p->Y, &p->X);
    fe_mul(&a, &t, &q->ypx);
    fe_add(&t, &p->Y, &p->X);
    fe_mul(&b, &t, &q->ymx);
    fe_mul(&c, &p->T, &q->xy2d);
    fe_add(&d, &p->Z, &p->Z);
    fe_sub(&r->E, &b, &a);
    fe_add(&r->F, &d, &c);
    fe_sub(&r->G, &d, &c);
    fe_add(&r->H, &b, &a);
}

/* The niels form of an affine point (x, y). */
static inline void ge_niels_from_affine(ge_niels *r, const fe51 *x, const fe51 *y) {
    fe51 xy;
    fe_add(&r->ypx, y, x);
    fe_sub(&r->ymx, y, x);
    fe_mul(&xy, x, y);
    fe_mul(&r->xy2d, &xy, &FE_D2);
    /* Re-carry so the stored operands meet fe_sub's bound wherever they are used. */
    fe_mul(&r->ypx, &r->ypx, &FE_ONE);
    fe_mul(&r->ymx, &r->ymx, &FE_ONE);
}

static inline void ge_niels_neg(ge_niels *r, const ge_niels *p) {
    fe51 t = p->ypx;
    r->ypx = p->ymx;
    r->ymx = t;
    fe_neg(&r->xy2d, &p->xy2d);
    fe_mul(&r->xy2d, &r->xy2d, &FE_ONE);
}

static inline void ge_p3_from_niels_affine(ge_p3 *r, const fe51 *x, const fe51 *y) {
    r->X = *x;
    r->Y = *y;
    r->Z = FE_ONE;
    fe_mul(&r->T, x, y);
}

/* [8]P is the identity: three doublings, then X = 0 and Y = Z. */
static inline int ge_p3_is_small_order_identity_x8(const ge_p3 *p) {
    ge_p1p1 t;
    ge_p2 q;
    ge_p3_to_p2(&q, p);
    for (int i = 0; i < 3; i++) {
        ge_p2_dbl(&t, &q);
        ge_p1p1_to_p2(&q, &t);
    }
    return fe_iszero(&q.X) && fe_equal(&q.Y, &q.Z);
}

/* ZIP-215 decompression, split in three steps so that several points can share the costly
 * exponentiation: the 250 dependent squarings of one point leave the multiplier idle most of the
 * time, while four interleaved chains keep it busy.
 *
 * y is the low 255 bits reduced mod p (y >= p accepted); x comes from
 * x^2 = u / v with u = y^2 - 1, v = d y^2 + 1, as x = u v^3 (u v^7)^((p-5)/8), fixed up by
 * sqrt(-1) when needed; a set sign bit with x = 0 is accepted and x stays 0. */
typedef struct {
    fe51 y, u, v, v3, base; /* base = u v^7, raised to (p-5)/8 */
} ge_decompress_state;

static inline void ge_decompress_begin(ge_decompress_state *st, const uint8_t s[32]) {
    fe51 yy, t;
    fe_frombytes(&st->y, s);
    fe_sq(&yy, &st->y);
    fe_sub(&st->u, &yy, &FE_ONE);
    fe_mul(&st->u, &st->u, &FE_ONE); /* carry before reuse in products and subtractions */
    fe_mul(&st->v, &yy, &FE_D);
    fe_add(&st->v, &st->v, &FE_ONE);
    fe_sq(&st->v3, &st->v);
    fe_mul(&st->v3, &st->v3, &st->v);
    fe_sq(&t, &st->v3);
    fe_mul(&t, &t, &st->v);
    fe_mul(&st->base, &t, &st->u);
}

/* Returns 0 when (y^2 - 1)/(d y^2 + 1) has no square root; pow = base^((p-5)/8). */
static inline int ge_decompress_end(fe51 *x, fe51 *y, const ge_decompress_state *st,
                                    const fe51 *pow, const uint8_t s[32]) {
    fe51 t, vxx, nu;
    fe_mul(&t, pow, &st->v3);
    fe_mul(x, &t, &st->u);
    fe_sq(&vxx, x);
    fe_mul(&vxx, &vxx, &st->v);
    if (!fe_equal(&vxx, &st->u)) {
        fe_neg(&nu, &st->u);
        if (!fe_equal(&nu, &vxx)) return 0;
        fe_mul(x, x, &FE_SQRTM1);
    }
    if (fe_isneg(x) != (s[31] >> 7)) {
        /* For x = 0 negation is a no-op, which is exactly the ZIP-215 "-0" rule. */
        fe_neg(x, x);
        fe_mul(x, x, &FE_ONE);
    }
    *y = st->y;
    return 1;
}

static inline int ge_decompress(fe51 *x, fe51 *y, const uint8_t s[32]) {
    ge_decompress_state st;
    fe51 pow;
    ge_decompress_begin(&st, s);
    fe_pow22523(&pow, &st.base);
    return ge_decompress_end(x, y, &st, &pow, s);
}

#endif
