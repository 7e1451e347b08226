/* SM2 verification, four signatures side by side (AVX2): key decoding for new keys and the
 * curve check R = [s]G + [t]P, one signature per 64-bit lane (sm2_field_avx2x4.h, radix 2^29).
 *
 * The structure is sm2_avx512.c's with four lanes instead of eight:
 *  - t (or n - t when t is even, negating the sum) is recoded *regularly* as 64 signed odd
 *    radix-16 digits plus a final 1, read from the key's odd multiples 1P..15P (and of 2^64 P,
 *    2^128 P, 2^192 P for keys with four quarters: 16 digits each, 64 doublings instead of 256);
 *    s as the comb's 32 radix-2^8 digits (sm2_impl.h) read from a radix-2^29 copy of the shared
 *    G table. Each lane reads its own table entry by gathers (32-bit words: limbs are < 2^29).
 *  - Exceptional additions are detected, not handled: the mixed addition's Z3 = 2 Z1 H, so the
 *    one case its formula gets wrong (H = 0) leaves Z = 0 for good (Z3 = 2 Y Z in a doubling);
 *    the accumulator starts at a table point (Z = 1) and the curve has prime order (no point with
 *    Y = 0), so a final Z != 0 proves the lane exact. A lane ending with Z = 0 (an attacker's
 *    constructed input, or R at infinity) is handed back (-1) and redone by the exact scalar code
 *    (sm2_core.h). One lane never reads another lane's data.
 *  - New keys are decoded four at a time: the on-curve check, 1P..15P by co-Z additions (all
 *    of them from 2P, rescaled at each step) and one lane inversion (Fermat) shared by all the
 *    groups of a task for the affine table.
 */
#if defined(__x86_64__)
#pragma GCC target("avx2,bmi,bmi2,adx")
/* Without this GCC turns some 288-byte copies of field elements into rep movsq, whose start-up
 * cost showed in the doubling and the additions (measured: 3-7 % of a verification). */
#pragma GCC optimize("no-tree-loop-distribute-patterns")

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SM2_USE_ADX 1
#include "sm2/sm2_core.h"
#include "sm2/sm2_field_avx2x4.h"

typedef struct {
    sm2x4_fe x, y, z;
} sm2x4_jac;

/* Words of one affine table entry: x's nine limbs then y's. */
#define X4_WORDS 18

/* The comb table of sm2_impl.h in this file's form: entry (pos, j) is 18 32-bit words
 * (Montgomery form, R = 2^261, canonical); built once. */
static uint32_t *g_comb29;
static uint32_t g_top29[X4_WORDS];
static pthread_once_t g_comb29_once = PTHREAD_ONCE_INIT;

/* ---- formulas (a = -3) --------------------------------------------------------------------- */

/* dbl-2001-b: r = 2 p (r may be p), with alpha = 3 (X - delta)(X + delta) kept as a' = alpha / 3
 * so that no sum needs carrying before its product: X3 = 9 a'^2 - 8 beta, Y3 = 3 a' (4 beta -
 * X3) - 8 gamma^2, Z3 = 2 Y Z; two folds (sm2x4_sub_wide) instead of seven. Points keep X, Y in
 * T; Z may be L (it only ever enters products). The comments give each value's class
 * (sm2_field_avx2x4.h). */
static inline void x4_dbl(sm2x4_jac *r, const sm2x4_jac *p) {
    sm2x4_fe delta, gamma, beta, alpha, t0, t1;
    sm2x4_sqr(&delta, &p->z);
    sm2x4_sqr(&gamma, &p->y);
    sm2x4_mul(&beta, &p->x, &gamma);
    sm2x4_sub_lazy(&t0, &p->x, &delta); /* V */
    sm2x4_add_lazy(&t1, &p->x, &delta); /* L */
    sm2x4_mul(&alpha, &t0, &t1);        /* a' = alpha / 3 (L x V) */
    sm2x4_mul(&t0, &p->y, &p->z);
    sm2x4_add_lazy(&r->z, &t0, &t0);    /* 2 Y Z: L */
    sm2x4_sqr(&t0, &alpha);
    sm2x4_mul_small_lazy(&t0, &t0, 9);  /* 9 a'^2: limbs < 9 * 2^29 */
    sm2x4_shl_lazy(&t1, &beta, 3);      /* 8 beta: limbs < 2^32 (beta's are exact) */
    sm2x4_sub_wide(&r->x, &t0, &t1);
    sm2x4_shl_lazy(&beta, &beta, 2);    /* 4 beta: S */
    sm2x4_sub_lazy(&t0, &beta, &r->x);  /* W */
    sm2x4_mul(&t0, &alpha, &t0);        /* T x W */
    sm2x4_mul_small_lazy(&t0, &t0, 3);  /* limbs < 3 * 2^29 */
    sm2x4_sqr(&t1, &gamma);
    sm2x4_shl_lazy(&t1, &t1, 3);        /* 8 gamma^2: limbs < 2^32 */
    sm2x4_sub_wide(&r->y, &t0, &t1);
}

/* The end both additions share: X3 = rr^2 - (J + 2V), Y3 = rr (V - X3) - 2 y1 J (the first
 * point's X is not read here and y1 is read before r->y is written, so r may be the first
 * point). rr may be L; J and V are products (exact limbs), y1 in T. */
static inline void x4_add_finish(sm2x4_jac *r, const sm2x4_fe *rr, const sm2x4_fe *j,
                                 const sm2x4_fe *v, const sm2x4_fe *y1) {
    sm2x4_fe t0, t1;
    sm2x4_sqr(&t0, rr);
    sm2x4_add_lazy(&t1, v, v);
    sm2x4_add_lazy(&t1, &t1, j);       /* J + 2V: limbs < 3 * 2^29 */
    sm2x4_sub_wide(&r->x, &t0, &t1);   /* the first point's X is no longer read */
    sm2x4_sub_lazy(&t0, v, &r->x);     /* V */
    sm2x4_mul(&t0, rr, &t0);           /* L x V */
    sm2x4_add_lazy(&t1, y1, y1);       /* L */
    sm2x4_mul(&t1, &t1, j);
    sm2x4_sub(&r->y, &t0, &t1);
}

/* madd-2007-bl with Z3 = 2 Z1 H: r = p + (qx, qy) (r may be p; qx in T, qy in T or L: it only
 * enters the product with Z1). Wrong only when H = 0, and then Z3 = 0 (see the top of the
 * file). */
static inline void x4_madd(sm2x4_jac *r, const sm2x4_jac *p, const sm2x4_fe *qx,
                           const sm2x4_fe *qy) {
    sm2x4_fe z1z1, u2, s2, h, rr, hh, i, j, v, t0;
    sm2x4_sqr(&z1z1, &p->z);
    sm2x4_mul(&u2, qx, &z1z1);
    sm2x4_mul(&s2, qy, &p->z);
    sm2x4_mul(&s2, &s2, &z1z1);
    sm2x4_sub(&h, &u2, &p->x);
    sm2x4_sub(&rr, &s2, &p->y);
    sm2x4_add_lazy(&rr, &rr, &rr); /* L: enters products only */
    sm2x4_sqr(&hh, &h);
    sm2x4_shl_lazy(&i, &hh, 2); /* 4 hh: S, multiplied by h and X1 (T) only */
    sm2x4_mul(&j, &h, &i);
    sm2x4_mul(&v, &p->x, &i);
    sm2x4_mul(&t0, &p->z, &h);
    sm2x4_add_lazy(&r->z, &t0, &t0); /* L */
    x4_add_finish(r, &rr, &j, &v, &p->y);
}

/* Co-Z addition with update (Meloni), for building a key's table: p and q on the same Z, out
 * r = p + q on Z d with d = x_p - x_q (returned: the table's Z are products of these), and p
 * rescaled to that Z in place (W1 = x_p d^2, A1 = y_p d^3). 4M + 2S against 12M + 4S for a
 * general addition. r must be neither p nor q. No exceptional case arises for a point on the
 * curve: x_p = x_q would need 2P = +-(2j-1)P, so P of order dividing 2j+1 or 2j-3 (< n);
 * off the curve a zero d leaves Z = 0, which keys_many handles (the key is refused). */
static inline void x4_zaddu(sm2x4_fe *rx, sm2x4_fe *ry, sm2x4_fe *d, sm2x4_fe *px, sm2x4_fe *py,
                            const sm2x4_fe *qx, const sm2x4_fe *qy) {
    sm2x4_fe c, w1, w2, f, ff, a1, t;
    sm2x4_sub(d, px, qx);
    sm2x4_sqr(&c, d);
    sm2x4_mul(&w1, px, &c);
    sm2x4_mul(&w2, qx, &c);
    sm2x4_sub(&f, py, qy);
    sm2x4_sqr(&ff, &f);
    sm2x4_sub_lazy(&t, &w1, &w2); /* V */
    sm2x4_mul(&a1, py, &t);       /* T x V */
    sm2x4_add_lazy(&t, &w1, &w2); /* products: limbs < 2^30 */
    sm2x4_sub_wide(rx, &ff, &t);  /* X3 = F^2 - W1 - W2 */
    sm2x4_sub_lazy(&t, &w1, rx);  /* V */
    sm2x4_mul(&t, &f, &t);        /* T x V */
    sm2x4_sub(ry, &t, &a1);       /* Y3 = F (W1 - X3) - A1 */
    *px = w1;
    *py = a1;
}

/* ---- table points for the shared loop (sm2_lanes_impl.h) -------------------------------- */

/* An affine point by gathers: word w of lane l's entry at base[idx[l] + stride * w], then y
 * negated in the lanes of neg (a lane mask) as 4p - y, not carried: x exact (T), y in L (the
 * entries are canonical). */
static inline void x4_gather(sm2x4_fe *x, sm2x4_fe *y, const uint32_t *base, __m128i idx,
                             int stride, __m256i neg) {
    for (int i = 0; i < 9; i++) {
        x->v[i] = _mm256_cvtepu32_epi64(
            _mm_i32gather_epi32((const int *)(base + stride * i), idx, 4));
        y->v[i] = _mm256_cvtepu32_epi64(
            _mm_i32gather_epi32((const int *)(base + stride * (9 + i)), idx, 4));
    }
    sm2x4_fe ny;
    sm2x4_neg_lazy(&ny, y);
    sm2x4_select(y, neg, &ny, y);
}

/* The lane tables (engine_sm2_check4_avx2): entry e of lane l, word w at
 * ptab[(e * 18 + w) * 4 + l]. 2^256 P = 16^width (2^(64 (chunks-1)) P) is entry 0 of the last
 * chunk, the same entry in every lane: plain loads; y negated (folded: Y stays T) in the lanes
 * of neg. */
static inline void x4_top_t(sm2x4_jac *acc, const void *tab, int chunks, unsigned neg) {
    const uint32_t *ptab = (const uint32_t *)tab;
    const int e0 = SM2_WNAF_POINTS * (chunks - 1);
    for (int i = 0; i < 9; i++) {
        acc->x.v[i] = _mm256_cvtepu32_epi64(
            _mm_load_si128((const __m128i *)&ptab[(e0 * X4_WORDS + i) * 4]));
        acc->y.v[i] = _mm256_cvtepu32_epi64(
            _mm_load_si128((const __m128i *)&ptab[(e0 * X4_WORDS + 9 + i) * 4]));
    }
    sm2x4_fe ny;
    sm2x4_neg(&ny, &acc->y);
    sm2x4_select(&acc->y, sm2x4_mask(neg), &ny, &acc->y);
    sm2x4_const(&acc->z, SM2X4_ONE);
}

static inline void x4_point_t(sm2x4_fe *qx, sm2x4_fe *qy, const void *tab, const int32_t ent[4],
                              unsigned neg, int c) {
    __m128i e = _mm_add_epi32(_mm_load_si128((const __m128i *)ent),
                              _mm_set1_epi32(SM2_WNAF_POINTS * c));
    __m128i idx = _mm_add_epi32(_mm_mullo_epi32(e, _mm_set1_epi32(X4_WORDS * 4)),
                                _mm_set_epi32(3, 2, 1, 0));
    x4_gather(qx, qy, (const uint32_t *)tab, idx, 4, sm2x4_mask(neg));
}

/* 2^256 G, y negated lazily (it only enters a product) in the lanes of neg. */
static inline void x4_top_s(sm2x4_fe *qx, sm2x4_fe *qy, unsigned neg) {
    for (int i = 0; i < 9; i++) {
        qx->v[i] = _mm256_set1_epi64x((long long)g_top29[i]);
        qy->v[i] = _mm256_set1_epi64x((long long)g_top29[9 + i]);
    }
    sm2x4_fe ny;
    sm2x4_neg_lazy(&ny, qy);
    sm2x4_select(qy, sm2x4_mask(neg), &ny, qy);
}

static inline void x4_point_s(sm2x4_fe *qx, sm2x4_fe *qy, const int32_t ent[4], unsigned neg,
                              int pos) {
    __m128i e = _mm_add_epi32(_mm_load_si128((const __m128i *)ent),
                              _mm_set1_epi32(pos * SM2_COMB_POINTS));
    x4_gather(qx, qy, g_comb29, _mm_mullo_epi32(e, _mm_set1_epi32(X4_WORDS)), 1,
              sm2x4_mask(neg));
}

#define LN(name) x4_##name
#define LN_LANES 4
#define LN_FE sm2x4_fe
#define LN_JAC sm2x4_jac
#define LN_F(op) sm2x4_##op
#define LN_IDX int32_t
#define LN_C_B SM2X4_B
#define LN_C_R2 SM2X4_R2
#define LN_C_KIN SM2X4_K266
#define LN_C_K256 SM2X4_K256
#include "sm2/sm2_lanes_impl.h"

/* ---- conversions --------------------------------------------------------------------------- */

/* Lane l of a (limbs < 2^29) into 32-bit words dst[l][stride * i]. */
static inline void x4_store_words(uint32_t *dst0, uint32_t *dst1, uint32_t *dst2, uint32_t *dst3,
                                  const sm2x4_fe *a) {
    uint64_t tmp[9][4] __attribute__((aligned(32)));
    for (int i = 0; i < 9; i++) _mm256_store_si256((__m256i *)tmp[i], a->v[i]);
    uint32_t *dst[4] = {dst0, dst1, dst2, dst3};
    for (int l = 0; l < 4; l++)
        if (dst[l])
            for (int i = 0; i < 9; i++) dst[l][i] = (uint32_t)tmp[i][l];
}

static void build_comb29(void) {
    const size_t entries = (size_t)SM2_COMB_POSITIONS * SM2_COMB_POINTS;
    uint32_t *t = (uint32_t *)aligned_alloc(64, sizeof(uint32_t) * X4_WORDS * entries);
    if (!t) return; /* check4 then refuses (the scalar code runs) */
    for (size_t e = 0; e < entries + 1; e += 4) {
        uint64_t xs[4][4], ys[4][4];
        uint32_t *dst[4];
        for (int l = 0; l < 4; l++) {
            size_t idx = e + (size_t)l;
            const sm2_aff *a;
            if (idx < entries) {
                a = &engine_sm2_comb[idx / SM2_COMB_POINTS][idx % SM2_COMB_POINTS];
                dst[l] = t + X4_WORDS * idx;
            } else {
                a = &engine_sm2_comb_top;
                dst[l] = idx == entries ? g_top29 : NULL;
            }
            memcpy(xs[l], a->x, 32);
            memcpy(ys[l], a->y, 32);
        }
        sm2x4_fe fx, fy;
        x4_from_mont256(&fx, xs);
        x4_from_mont256(&fy, ys);
        sm2x4_canon(&fx, &fx);
        sm2x4_canon(&fy, &fy);
        x4_store_words(dst[0], dst[1], dst[2], dst[3], &fx);
        x4_store_words(dst[0] ? dst[0] + 9 : NULL, dst[1] ? dst[1] + 9 : NULL,
                       dst[2] ? dst[2] + 9 : NULL, dst[3] ? dst[3] + 9 : NULL, &fy);
    }
    g_comb29 = t;
}

/* ---- key decoding -------------------------------------------------------------------------- */

/* A group of four keys between the two halves of the decoding: the odd multiples P_(2j+1) =
 * (x[j], y[j]) in Jacobian coordinates without their Z: Z_0 = 2y (of P) and Z_j = Z_(j-1) d[j]
 * (co-Z additions), so zlast = Z_7 is the one value to invert; and the validity bits. */
typedef struct {
    sm2x4_fe x[SM2_WNAF_POINTS], y[SM2_WNAF_POINTS], d[SM2_WNAF_POINTS];
    sm2x4_fe zlast;
    unsigned on;
    uint8_t pre[4];
} x4_keygroup;

/* First half: the on-curve check and 1P..15P of up to four keys (lanes past count repeat lane
 * 0's key): 2P by the doubling (Z = 2y) and P on the same Z, (4 x y^2, 8 y^4) = (4 beta,
 * 8 gamma^2) in the doubling's terms, then (2j+1)P = (2j-1)P + 2P by co-Z additions, 2P
 * rescaled each time. */
static void x4_keys_begin(x4_keygroup *g, const uint8_t *const pks[], int count) {
    sm2x4_jac pt, twice;
    sm2x4_fe x, y;
    g->on = x4_keys_read(&x, &y, g->pre, pks, count);
    /* 2P on Z = 2y, and P on the same Z */
    pt.x = x;
    pt.y = y;
    sm2x4_const(&pt.z, SM2X4_ONE);
    x4_dbl(&twice, &pt);
    sm2x4_fe gamma, beta;
    sm2x4_sqr(&gamma, &y);
    sm2x4_mul(&beta, &x, &gamma);
    sm2x4_shl(&g->x[0], &beta, 2);
    sm2x4_sqr(&gamma, &gamma);
    sm2x4_shl(&g->y[0], &gamma, 3);
    g->zlast = twice.z; /* L */
    for (int j = 1; j < SM2_WNAF_POINTS; j++) {
        x4_zaddu(&g->x[j], &g->y[j], &g->d[j], &twice.x, &twice.y, &g->x[j - 1], &g->y[j - 1]);
        sm2x4_mul(&g->zlast, &g->zlast, &g->d[j]);
    }
}

/* Second half, given inv = 1 / zlast: the affine table into keys[l] (1 / Z_(j-1) = d[j] / Z_j)
 * and the verdicts. */
static void x4_keys_end(x4_keygroup *g, sm2x4_fe *inv, sm2_key *const keys[], const uint8_t *const pks[],
                        int count, uint8_t ok[]) {
    sm2x4_fe zinv = *inv;
    for (int j = SM2_WNAF_POINTS - 1; j >= 0; j--) {
        sm2x4_fe zinv2, ax, ay;
        sm2x4_sqr(&zinv2, &zinv);
        sm2x4_mul(&ax, &g->x[j], &zinv2);
        sm2x4_mul(&zinv2, &zinv2, &zinv);
        sm2x4_mul(&ay, &g->y[j], &zinv2);
        if (j > 0) sm2x4_mul(&zinv, &zinv, &g->d[j]);
        uint64_t vx[4][4], vy[4][4];
        x4_to_mont256(vx, &ax);
        x4_to_mont256(vy, &ay);
        for (int l = 0; l < count; l++) {
            memcpy(keys[l]->table[j].x, vx[l], 32);
            memcpy(keys[l]->table[j].y, vy[l], 32);
        }
    }
    x4_keys_finish(keys, pks, count, g->pre, g->on, ok);
}

int engine_sm2_keys4_avx2(sm2_key *const keys[8], const uint8_t *const pks[8], int count,
                          uint8_t ok[8]) {
    if (count < 1 || count > 4) return -1;
    x4_keygroup g;
    sm2x4_fe inv;
    x4_keys_begin(&g, pks, count);
    sm2x4_inv(&inv, &g.zlast);
    x4_keys_end(&g, &inv, keys, pks, count, ok);
    return 0;
}

/* Any number of keys, four at a time, with one lane inversion for all the groups (Montgomery's
 * trick once more over the groups' products): the inversion is a quarter of a group's
 * decoding. The groups' state lives on the heap (7 KiB each); -1 when there is none. */
int engine_sm2_keys_many_avx2(sm2_key *const keys[], const uint8_t *const pks[], int count,
                              uint8_t ok[]) {
    if (count < 1) return -1;
    const int groups = (count + 3) / 4;
    x4_keygroup *g = (x4_keygroup *)aligned_alloc(32, sizeof(x4_keygroup) * (size_t)groups);
    sm2x4_fe *run = (sm2x4_fe *)aligned_alloc(32, sizeof(sm2x4_fe) * (size_t)groups);
    if (!g || !run) {
        free(g);
        free(run);
        return -1;
    }
    sm2x4_fe one;
    sm2x4_const(&one, SM2X4_ONE);
    for (int k = 0; k < groups; k++) {
        int n = count - 4 * k < 4 ? count - 4 * k : 4;
        x4_keys_begin(&g[k], pks + 4 * k, n);
        /* A product of zero (a key off the curve whose multiples met Z = 0; a key on the curve
         * never does) would make the lane's inverse zero for every group: 1 in its place keeps
         * the other groups' keys in that lane exact (this key is refused anyway). zlast
         * serves nothing else. */
        sm2x4_fe *last = &g[k].zlast;
        sm2x4_select(last, sm2x4_mask(sm2x4_is_zero(last)), &one, last);
        if (k == 0)
            run[0] = g[0].zlast;
        else
            sm2x4_mul(&run[k], &run[k - 1], &g[k].zlast);
    }
    sm2x4_fe inv, ginv;
    sm2x4_inv(&inv, &run[groups - 1]);
    for (int k = groups - 1; k >= 0; k--) {
        int n = count - 4 * k < 4 ? count - 4 * k : 4;
        if (k > 0) {
            sm2x4_mul(&ginv, &inv, &run[k - 1]);
            sm2x4_mul(&inv, &inv, &g[k].zlast);
        } else {
            ginv = inv;
        }
        x4_keys_end(&g[k], &ginv, keys + 4 * k, pks + 4 * k, n, ok + 4 * k);
    }
    free(g);
    free(run);
    return 0;
}

/* ---- the check ----------------------------------------------------------------------------- */

int engine_sm2_check4_avx2(const sm2_key *const keys[8], const sm2x8_job *jobs, int count,
                           int8_t verdict[8]) {
    pthread_once(&g_comb29_once, build_comb29);
    if (!g_comb29 || count < 1 || count > 4) return -1;
    const int chunks = keys[0]->chunks;
    if (chunks != 1 && chunks != SM2_KEY_CHUNKS_MAX) return -1;
    for (int l = 1; l < count; l++)
        if (keys[l]->chunks != chunks) return -1; /* the caller groups by chunks */
    const int points = chunks * SM2_WNAF_POINTS;
    /* Lane tables: entry e of lane l, word w at ptab[(e * 18 + w) * 4 + l]. */
    uint32_t ptab[SM2_KEY_CHUNKS_MAX * SM2_WNAF_POINTS * X4_WORDS * 4] __attribute__((aligned(32)));
    for (int e = 0; e < points; e++) {
        uint64_t xs[4][4], ys[4][4];
        for (int l = 0; l < 4; l++) {
            const sm2_key *k = keys[l < count ? l : 0];
            memcpy(xs[l], k->table[e].x, 32);
            memcpy(ys[l], k->table[e].y, 32);
        }
        sm2x4_fe fx, fy;
        x4_from_mont256(&fx, xs);
        x4_from_mont256(&fy, ys);
        for (int i = 0; i < 9; i++) {
            /* limbs < 2^29: the low halves of the 64-bit lanes, packed */
            __m256i px = _mm256_permutevar8x32_epi32(fx.v[i], _mm256_set_epi32(7, 5, 3, 1, 6, 4, 2, 0));
            __m256i py = _mm256_permutevar8x32_epi32(fy.v[i], _mm256_set_epi32(7, 5, 3, 1, 6, 4, 2, 0));
            _mm_store_si128((__m128i *)&ptab[(e * X4_WORDS + i) * 4], _mm256_castsi256_si128(px));
            _mm_store_si128((__m128i *)&ptab[(e * X4_WORDS + 9 + i) * 4], _mm256_castsi256_si128(py));
        }
    }
    x4_digits dg;
    x4_recode(&dg, jobs, count);
    sm2x4_jac acc;
    x4_ladder(&acc, ptab, &dg, chunks);
    x4_verdicts(&acc, jobs, count, verdict);
    return 0;
}

/* Test hook: one field operation on four lanes of plain integers a, b < 2^256 (converted to
 * Montgomery form and back): 0 a b, 1 a^2, 2 a + b, 3 a - b, 4 a^-1, 5 -a; out canonical.
 * Op 6: the raw product of a and b taken as Montgomery residues already (their limbs as they
 * are), out = a b 2^-261 mod p. Op 7: lazy sums a + a and b + b (class L) fed to the product,
 * out = 4 a b 2^-261 mod p. Op 8: 2^4 a (sm2x4_shl). Op 9: a chain whose operands are the
 * results of additions (subtractions of subtractions, a lazy sum of two, 3 and 2^4 times one):
 * ((a - b) + (3b - a)) 48 (a - 2b). Op 10: 4a uncarried (class S) times b: 4 a b. The lazy
 * forms the point formulas use: op 11: 9 a^2 - 8 b (sm2x4_sub_wide of uncarried multiples),
 * op 12: a (4b - a) (a W operand, sm2x4_sub_lazy of S and T), op 13: 2a (a - b) (L times V),
 * op 14: 3 a (a + b) (W as 3 (a + b)), op 15: -a b (sm2x4_neg_lazy of canonical a, L). The
 * C reference of the assembly product and square (sm2x4_mul_core): op 16: a b, op 17: a^2. */
int engine_sm2_field4_avx2(int op, const uint64_t a[4][4], const uint64_t b[4][4],
                           uint64_t out[4][4]) {
    sm2x4_fe fa, fb, r;
    if (op == 6 || op == 7) {
        sm2x4_from_u256(&fa, a);
        sm2x4_from_u256(&fb, b);
        if (op == 7) {
            sm2x4_add_lazy(&fa, &fa, &fa);
            sm2x4_add_lazy(&fb, &fb, &fb);
        }
        sm2x4_mul(&r, &fa, &fb);
        sm2x4_canon(&r, &r);
        sm2x4_to_u256(out, &r);
        return 0;
    }
    x4_from_plain(&fa, a);
    x4_from_plain(&fb, b);
    switch (op) {
    case 0: sm2x4_mul(&r, &fa, &fb); break;
    case 1: sm2x4_sqr(&r, &fa); break;
    case 2: sm2x4_add(&r, &fa, &fb); break;
    case 3: sm2x4_sub(&r, &fa, &fb); break;
    case 4: sm2x4_inv(&r, &fa); break;
    case 5: sm2x4_neg(&r, &fa); break;
    case 8: sm2x4_shl(&r, &fa, 4); break;
    case 9: { /* ((a - b) + (3b - a)) 48 (a - 2b) */
        sm2x4_fe s1, s2, s3, l, u;
        sm2x4_sub(&s1, &fa, &fb);
        sm2x4_sub(&s2, &s1, &fb);
        sm2x4_sub(&s3, &fb, &s2);
        sm2x4_add_lazy(&l, &s1, &s3);
        sm2x4_mul3(&u, &s2);
        sm2x4_shl(&u, &u, 4);
        sm2x4_mul(&r, &l, &u);
        break;
    }
    case 10: /* an S operand (4a, not carried) times a T one: 4 a b */
        sm2x4_shl_lazy(&r, &fa, 2);
        sm2x4_mul(&r, &r, &fb);
        break;
    case 11: { /* 9 a^2 - 8 b */
        sm2x4_fe u, w;
        sm2x4_sqr(&u, &fa);
        sm2x4_mul_small_lazy(&u, &u, 9);
        sm2x4_shl_lazy(&w, &fb, 3);
        sm2x4_sub_wide(&r, &u, &w);
        break;
    }
    case 12: { /* a (4b - a): T x W */
        sm2x4_fe w;
        sm2x4_shl_lazy(&w, &fb, 2);
        sm2x4_sub_lazy(&w, &w, &fa);
        sm2x4_mul(&r, &fa, &w);
        break;
    }
    case 13: { /* 2a (a - b): L x V */
        sm2x4_fe l, v;
        sm2x4_add_lazy(&l, &fa, &fa);
        sm2x4_sub_lazy(&v, &fa, &fb);
        sm2x4_mul(&r, &l, &v);
        break;
    }
    case 14: { /* 3 a (a + b): T x W */
        sm2x4_fe w;
        sm2x4_add_lazy(&w, &fa, &fb);
        sm2x4_mul_small_lazy(&w, &w, 3);
        sm2x4_mul(&r, &fa, &w);
        break;
    }
    case 16: sm2x4_mul_core(&r, &fa, &fb, 0); break;
    case 17: sm2x4_mul_core(&r, &fa, &fa, 1); break;
    case 15: { /* -a b: 4p - a (a canonical) is L */
        sm2x4_fe c;
        sm2x4_canon(&c, &fa);
        sm2x4_neg_lazy(&c, &c);
        sm2x4_mul(&r, &c, &fb);
        break;
    }
    default: return -1;
    }
    sm2x4_fe one;
    sm2x4_zero(&one);
    one.v[0] = _mm256_set1_epi64x(1);
    sm2x4_mul(&r, &r, &one); /* out of Montgomery form */
    sm2x4_canon(&r, &r);
    sm2x4_to_u256(out, &r);
    return 0;
}

#endif
