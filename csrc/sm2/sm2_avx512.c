/* SM2 verification, eight signatures side by side (AVX-512 IFMA): key decoding for new keys
 * and the curve check R = [s]G + [t]P, one signature per 64-bit lane (sm2_field_ifma.h).
 *
 * Every lane runs the same instruction sequence, so the scalars are recoded *regularly*: t (or
 * n - t when t is even, negating the sum) as 64 signed odd radix-16 digits plus a final 1
 * (t = 2^256 + sum d_i 16^i, d_i odd in [-15, 15]), read from the key's table of odd multiples
 * 1P..15P (and of 2^64 P, 2^128 P, 2^192 P for keys with four quarters: 16 digits each, 64
 * doublings in all instead of 256); s as the comb's 32 radix-2^8 digits (sm2_impl.h) read from
 * the shared G table by gathers. Each lane reads its own table entry with vpgatherqq.
 *
 * Exceptional additions (equal or opposite points, infinity) are not handled in the lanes; they
 * are *detected*: the mixed addition's Z3 = 2 Z1 H, so an addition with H = 0 (the only case
 * the formula gets wrong) makes Z = 0, and Z stays 0 through every later doubling (Z3 = 2 Y Z)
 * and addition. The accumulator starts at a table point (Z = 1) and the curve has prime order
 * (no point with Y = 0), so a final Z != 0 proves that no exceptional case occurred and the lane
 * result is exact; a lane ending with Z = 0 (an attacker's constructed input, or R at infinity)
 * is redone by the exact scalar code (sm2_core.h), which gives its true verdict. One lane never
 * touches another lane's data, so an invalid lane cannot change another's verdict.
 */
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx512ifma,bmi,bmi2,adx")

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sm2/sm2_core.h"
#include "sm2/sm2_field_ifma.h"

typedef struct {
    sm2x8_fe x, y, z;
} sm2x8_jac;

/* The comb table of sm2_impl.h in this file's form: entry (pos, j) is 10 words, x then y limbs
 * (Montgomery form, R = 2^260, canonical); built once. */
static uint64_t *g_comb52;
static uint64_t g_top52[10];
static pthread_once_t g_comb52_once = PTHREAD_ONCE_INIT;

/* ---- formulas (a = -3) --------------------------------------------------------------------- */

/* dbl-2001-b: r = 2 p (r may be p). Points keep X, Y < 2p and Z < 4p (Z only ever enters
 * products: its sums are lazy, sm2_field_ifma.h); the comments give each lazy value's bound. */
static inline void x8_dbl(sm2x8_jac *r, const sm2x8_jac *p) {
    sm2x8_fe delta, gamma, beta, alpha, t0, t1;
    sm2x8_sqr(&delta, &p->z);
    sm2x8_sqr(&gamma, &p->y);
    sm2x8_mul(&beta, &p->x, &gamma);
    sm2x8_sub(&t0, &p->x, &delta);
    sm2x8_add_lazy(&t1, &p->x, &delta); /* < 4p */
    sm2x8_mul(&alpha, &t0, &t1);
    sm2x8_add_lazy(&t0, &alpha, &alpha); /* < 4p */
    sm2x8_add(&alpha, &t0, &alpha);
    sm2x8_mul(&t0, &p->y, &p->z);
    sm2x8_add_lazy(&r->z, &t0, &t0); /* 2 Y Z < 4p */
    sm2x8_add_lazy(&t1, &beta, &beta); /* < 4p */
    sm2x8_add(&beta, &t1, &t1);
    sm2x8_sqr(&t0, &alpha);
    sm2x8_add(&t1, &beta, &beta);
    sm2x8_sub(&r->x, &t0, &t1);
    sm2x8_sub(&t0, &beta, &r->x);
    sm2x8_mul(&t0, &alpha, &t0);
    sm2x8_sqr(&t1, &gamma);
    sm2x8_add_lazy(&t1, &t1, &t1); /* < 4p */
    sm2x8_add_lazy(&t1, &t1, &t1); /* < 8p */
    sm2x8_add(&t1, &t1, &t1);      /* 16p < 2^260: the fold applies */
    sm2x8_sub(&r->y, &t0, &t1);
}

/* The end both additions share: X3 = rr^2 - J - 2V, Y3 = rr (V - X3) - 2 y1 J (y1 is read
 * before r->y is written, so r may be the first operand). */
static inline void x8_add_finish(sm2x8_jac *r, const sm2x8_fe *rr, const sm2x8_fe *j,
                                 const sm2x8_fe *v, const sm2x8_fe *y1) {
    sm2x8_fe t0, t1, x3;
    sm2x8_sqr(&t0, rr);
    sm2x8_sub(&t0, &t0, j);
    sm2x8_add(&t1, v, v);
    sm2x8_sub(&x3, &t0, &t1);
    sm2x8_sub(&t0, v, &x3);
    sm2x8_mul(&t0, rr, &t0);
    sm2x8_mul(&t1, y1, j);
    sm2x8_add(&t1, &t1, &t1);
    sm2x8_sub(&r->y, &t0, &t1);
    r->x = x3;
}

/* madd-2007-bl with Z3 = 2 Z1 H: r = p + (qx, qy) (r may be p). Wrong only when H = 0, and
 * then Z3 = 0 (see the top of the file). */
static inline void x8_madd(sm2x8_jac *r, const sm2x8_jac *p, const sm2x8_fe *qx,
                           const sm2x8_fe *qy) {
    sm2x8_fe z1z1, u2, s2, h, rr, hh, i, j, v, t0;
    sm2x8_sqr(&z1z1, &p->z);
    sm2x8_mul(&u2, qx, &z1z1);
    sm2x8_mul(&s2, qy, &p->z);
    sm2x8_mul(&s2, &s2, &z1z1);
    sm2x8_sub(&h, &u2, &p->x);
    sm2x8_sub(&rr, &s2, &p->y);
    sm2x8_add_lazy(&rr, &rr, &rr); /* < 4p: enters products only */
    sm2x8_sqr(&hh, &h);
    sm2x8_add_lazy(&i, &hh, &hh); /* < 4p */
    sm2x8_add(&i, &i, &i);
    sm2x8_mul(&j, &h, &i);
    sm2x8_mul(&v, &p->x, &i);
    sm2x8_mul(&t0, &p->z, &h);
    sm2x8_add_lazy(&r->z, &t0, &t0); /* < 4p */
    x8_add_finish(r, &rr, &j, &v, &p->y);
}

/* add-2007-bl with Z3 = 2 Z1 Z2 H, for building a key's table (no exceptional case arises for
 * a point on the curve: (2j-1)P = +-2P would need P of order dividing 2j+1 < n). */
static inline void x8_add(sm2x8_jac *r, const sm2x8_jac *p, const sm2x8_jac *q) {
    sm2x8_fe z1z1, z2z2, u1, u2, s1, s2, h, i, j, rr, v, t0;
    sm2x8_sqr(&z1z1, &p->z);
    sm2x8_sqr(&z2z2, &q->z);
    sm2x8_mul(&u1, &p->x, &z2z2);
    sm2x8_mul(&u2, &q->x, &z1z1);
    sm2x8_mul(&s1, &p->y, &q->z);
    sm2x8_mul(&s1, &s1, &z2z2);
    sm2x8_mul(&s2, &q->y, &p->z);
    sm2x8_mul(&s2, &s2, &z1z1);
    sm2x8_sub(&h, &u2, &u1);
    sm2x8_sub(&rr, &s2, &s1);
    sm2x8_add_lazy(&rr, &rr, &rr); /* < 4p */
    sm2x8_add_lazy(&i, &h, &h);    /* < 4p */
    sm2x8_sqr(&i, &i);
    sm2x8_mul(&j, &h, &i);
    sm2x8_mul(&v, &u1, &i);
    sm2x8_mul(&t0, &p->z, &q->z);
    sm2x8_mul(&t0, &t0, &h);
    sm2x8_add_lazy(&r->z, &t0, &t0); /* < 4p */
    x8_add_finish(r, &rr, &j, &v, &s1);
}

/* ---- table points for the shared loop (sm2_lanes_impl.h) -------------------------------- */

/* Conditionally negated (per lane) affine point read by gather: word w of lane l's entry is at
 * base[idx[l] + w]. */
static inline void x8_gather(sm2x8_fe *x, sm2x8_fe *y, const uint64_t *base, __m512i idx,
                             __mmask8 neg) {
    for (int i = 0; i < 5; i++) {
        x->v[i] = _mm512_i64gather_epi64(idx, (const void *)(base + i), 8);
        y->v[i] = _mm512_i64gather_epi64(idx, (const void *)(base + 5 + i), 8);
    }
    sm2x8_fe ny;
    sm2x8_neg(&ny, y);
    sm2x8_select(y, neg, &ny, y);
}

/* The lane tables (engine_sm2_check8_avx512): entry e of lane l, word w at
 * ptab[(e * 10 + w) * 8 + l]. The final 1 of t's recoding: 2^256 P = 16^width
 * (2^(64 (chunks-1)) P), entry 0 of the last chunk, the same entry in every lane: plain loads. */
static inline void x8_top_t(sm2x8_jac *acc, const void *tab, int chunks, unsigned neg) {
    const uint64_t *ptab = (const uint64_t *)tab;
    const int e0 = SM2_WNAF_POINTS * (chunks - 1);
    for (int i = 0; i < 5; i++) {
        acc->x.v[i] = _mm512_load_si512((const void *)&ptab[(e0 * 10 + i) * 8]);
        acc->y.v[i] = _mm512_load_si512((const void *)&ptab[(e0 * 10 + 5 + i) * 8]);
    }
    sm2x8_fe ny;
    sm2x8_neg(&ny, &acc->y);
    sm2x8_select(&acc->y, (__mmask8)neg, &ny, &acc->y);
    sm2x8_const(&acc->z, SM2X8_ONE_LIMBS);
}

static inline void x8_point_t(sm2x8_fe *qx, sm2x8_fe *qy, const void *tab, const int64_t ent[8],
                              unsigned neg, int c) {
    const uint64_t *ptab = (const uint64_t *)tab;
    const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
    __m512i e = _mm512_add_epi64(_mm512_load_si512((const void *)ent),
                                 _mm512_set1_epi64((long long)(SM2_WNAF_POINTS * c)));
    __m512i idx = _mm512_add_epi64(_mm512_mullo_epi64(e, _mm512_set1_epi64(80)), lane);
    for (int i = 0; i < 5; i++) {
        qx->v[i] = _mm512_i64gather_epi64(idx, (const void *)(ptab + 8 * i), 8);
        qy->v[i] = _mm512_i64gather_epi64(idx, (const void *)(ptab + 8 * (5 + i)), 8);
    }
    sm2x8_fe ny;
    sm2x8_neg(&ny, qy);
    sm2x8_select(qy, (__mmask8)neg, &ny, qy);
}

/* 2^256 G, negated in the lanes of neg. */
static inline void x8_top_s(sm2x8_fe *qx, sm2x8_fe *qy, unsigned neg) {
    for (int i = 0; i < 5; i++) {
        qx->v[i] = _mm512_set1_epi64((long long)g_top52[i]);
        qy->v[i] = _mm512_set1_epi64((long long)g_top52[5 + i]);
    }
    sm2x8_fe ny;
    sm2x8_neg(&ny, qy);
    sm2x8_select(qy, (__mmask8)neg, &ny, qy);
}

static inline void x8_point_s(sm2x8_fe *qx, sm2x8_fe *qy, const int64_t ent[8], unsigned neg,
                              int pos) {
    __m512i e = _mm512_add_epi64(_mm512_load_si512((const void *)ent),
                                 _mm512_set1_epi64((long long)(pos * SM2_COMB_POINTS)));
    x8_gather(qx, qy, g_comb52, _mm512_mullo_epi64(e, _mm512_set1_epi64(10)), (__mmask8)neg);
}

#define LN(name) x8_##name
#define LN_LANES 8
#define LN_FE sm2x8_fe
#define LN_JAC sm2x8_jac
#define LN_F(op) sm2x8_##op
#define LN_IDX int64_t
#define LN_C_B SM2X8_B_LIMBS
#define LN_C_R2 SM2X8_R2_LIMBS
#define LN_C_KIN SM2X8_K264_LIMBS
#define LN_C_K256 SM2X8_K256_LIMBS
#include "sm2/sm2_lanes_impl.h"

static void build_comb52(void) {
    uint64_t *t = (uint64_t *)aligned_alloc(64, sizeof(uint64_t) * 10 * SM2_COMB_POSITIONS *
                                                    SM2_COMB_POINTS);
    if (!t) return; /* check8 then refuses (ENOMEM path: the scalar code runs) */
    for (size_t e = 0; e < (size_t)SM2_COMB_POSITIONS * SM2_COMB_POINTS + 8; e += 8) {
        uint64_t xs[8][4], ys[8][4];
        for (int l = 0; l < 8; l++) {
            size_t idx = e + (size_t)l;
            const sm2_aff *a;
            if (idx < (size_t)SM2_COMB_POSITIONS * SM2_COMB_POINTS)
                a = &engine_sm2_comb[idx / SM2_COMB_POINTS][idx % SM2_COMB_POINTS];
            else
                a = &engine_sm2_comb_top;
            memcpy(xs[l], a->x, 32);
            memcpy(ys[l], a->y, 32);
        }
        sm2x8_fe fx, fy;
        x8_from_mont256(&fx, xs);
        x8_from_mont256(&fy, ys);
        sm2x8_canon(&fx, &fx);
        sm2x8_canon(&fy, &fy);
        uint64_t lx[5][8] __attribute__((aligned(64))), ly[5][8] __attribute__((aligned(64)));
        for (int i = 0; i < 5; i++) {
            _mm512_store_si512((void *)lx[i], fx.v[i]);
            _mm512_store_si512((void *)ly[i], fy.v[i]);
        }
        for (int l = 0; l < 8; l++) {
            size_t idx = e + (size_t)l;
            uint64_t *dst;
            if (idx < (size_t)SM2_COMB_POSITIONS * SM2_COMB_POINTS)
                dst = t + 10 * idx;
            else if (idx == (size_t)SM2_COMB_POSITIONS * SM2_COMB_POINTS)
                dst = g_top52;
            else
                continue;
            for (int i = 0; i < 5; i++) {
                dst[i] = lx[i][l];
                dst[5 + i] = ly[i][l];
            }
        }
    }
    g_comb52 = t;
}

/* ---- key decoding -------------------------------------------------------------------------- */

int engine_sm2_keys8_avx512(sm2_key *const keys[8], const uint8_t *const pks[8], int count,
                            uint8_t ok[8]) {
    uint8_t pre[8];
    sm2x8_jac pts[SM2_WNAF_POINTS], twice;
    sm2x8_fe x, y;
    unsigned on = x8_keys_read(&x, &y, pre, pks, count);
    /* odd multiples 1P..15P */
    pts[0].x = x;
    pts[0].y = y;
    sm2x8_const(&pts[0].z, SM2X8_ONE_LIMBS);
    x8_dbl(&twice, &pts[0]);
    for (int j = 1; j < SM2_WNAF_POINTS; j++) x8_add(&pts[j], &pts[j - 1], &twice);
    /* affine, one inversion per lane (Montgomery's trick) */
    sm2x8_fe prod[SM2_WNAF_POINTS], inv;
    prod[0] = pts[0].z;
    for (int j = 1; j < SM2_WNAF_POINTS; j++) sm2x8_mul(&prod[j], &prod[j - 1], &pts[j].z);
    sm2x8_inv(&inv, &prod[SM2_WNAF_POINTS - 1]);
    for (int j = SM2_WNAF_POINTS - 1; j >= 0; j--) {
        sm2x8_fe zinv, zinv2, ax, ay;
        if (j > 0) {
            sm2x8_mul(&zinv, &inv, &prod[j - 1]);
            sm2x8_mul(&inv, &inv, &pts[j].z);
        } else {
            zinv = inv;
        }
        sm2x8_sqr(&zinv2, &zinv);
        sm2x8_mul(&ax, &pts[j].x, &zinv2);
        sm2x8_mul(&zinv2, &zinv2, &zinv);
        sm2x8_mul(&ay, &pts[j].y, &zinv2);
        uint64_t vx[8][4], vy[8][4];
        x8_to_mont256(vx, &ax);
        x8_to_mont256(vy, &ay);
        for (int l = 0; l < count; l++) {
            memcpy(keys[l]->table[j].x, vx[l], 32);
            memcpy(keys[l]->table[j].y, vy[l], 32);
        }
    }
    x8_keys_finish(keys, pks, count, pre, on, ok);
    return 0;
}

/* ---- the check ----------------------------------------------------------------------------- */

int engine_sm2_check8_avx512(const sm2_key *const keys[8], const sm2x8_job *jobs, int count,
                             int8_t verdict[8]) {
    pthread_once(&g_comb52_once, build_comb52);
    if (!g_comb52 || count < 1 || count > 8) return -1;
    const int chunks = keys[0]->chunks;
    if (chunks != 1 && chunks != SM2_KEY_CHUNKS_MAX) return -1;
    for (int l = 1; l < count; l++)
        if (keys[l]->chunks != chunks) return -1; /* the caller groups by chunks */
    const int points = chunks * SM2_WNAF_POINTS;
    /* Lane tables: entry e of lane l, word w at ptab[(e * 10 + w) * 8 + l]. */
    uint64_t ptab[SM2_KEY_CHUNKS_MAX * SM2_WNAF_POINTS * 10 * 8] __attribute__((aligned(64)));
    for (int e = 0; e < points; e++) {
        uint64_t xs[8][4], ys[8][4];
        for (int l = 0; l < 8; l++) {
            const sm2_key *k = keys[l < count ? l : 0];
            memcpy(xs[l], k->table[e].x, 32);
            memcpy(ys[l], k->table[e].y, 32);
        }
        sm2x8_fe fx, fy;
        x8_from_mont256(&fx, xs);
        x8_from_mont256(&fy, ys);
        for (int i = 0; i < 5; i++) {
            _mm512_store_si512((void *)&ptab[(e * 10 + i) * 8], fx.v[i]);
            _mm512_store_si512((void *)&ptab[(e * 10 + 5 + i) * 8], fy.v[i]);
        }
    }
    x8_digits dg;
    x8_recode(&dg, jobs, count);
    sm2x8_jac acc;
    x8_ladder(&acc, ptab, &dg, chunks);
    x8_verdicts(&acc, jobs, count, verdict);
    return 0;
}

/* Test hook: one field operation on eight lanes of plain integers a, b < 2^256 (converted to
 * Montgomery form and back): 0 a b, 1 a^2, 2 a + b, 3 a - b, 4 a^-1, 5 -a; out canonical. Also
 * op 6: the raw product of a and b taken as Montgomery residues already (no conversion in),
 * so that limb-edge inputs reach sm2x8_mul unchanged; out = a b 2^-260 mod p. */
int engine_sm2_field8_avx512(int op, const uint64_t a[8][4], const uint64_t b[8][4],
                             uint64_t out[8][4]) {
    sm2x8_fe fa, fb, r;
    if (op == 6) {
        sm2x8_from_u256(&fa, a);
        sm2x8_from_u256(&fb, b);
        sm2x8_mul(&r, &fa, &fb);
        sm2x8_canon(&r, &r);
        sm2x8_to_u256(out, &r);
        return 0;
    }
    x8_from_plain(&fa, a);
    x8_from_plain(&fb, b);
    switch (op) {
    case 0: sm2x8_mul(&r, &fa, &fb); break;
    case 1: sm2x8_sqr(&r, &fa); break;
    case 2: sm2x8_add(&r, &fa, &fb); break;
    case 3: sm2x8_sub(&r, &fa, &fb); break;
    case 4: sm2x8_inv(&r, &fa); break;
    case 5: sm2x8_neg(&r, &fa); break;
    default: return -1;
    }
    sm2x8_fe one;
    sm2x8_zero(&one);
    one.v[0] = _mm512_set1_epi64(1);
    sm2x8_mul(&r, &r, &one); /* out of Montgomery form */
    sm2x8_canon(&r, &r);
    sm2x8_to_u256(out, &r);
    return 0;
}

#endif
