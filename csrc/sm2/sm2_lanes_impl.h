/* The parts of the SM2 lane kernels that do not depend on the field's representation, shared by
 * sm2_avx512.c (eight lanes, sm2_field_ifma.h) and sm2_avx2x4.c (four lanes,
 * sm2_field_avx2x4.h): the conversions, the key reading and on-curve check, the recoding of the
 * scalars, the loop R = [s]G + [t]P and the final comparison. Each file includes it once, after
 * its point formulas, having defined:
 *   LN(name)       its prefix for the functions here (x8_name, x4_name)
 *   LN_LANES       the lane count (8, 4)
 *   LN_FE, LN_JAC  its field element and Jacobian point types
 *   LN_F(op)       its field operation op (sm2x8_op, sm2x4_op): const, mul, sqr, add, sub,
 *                  canon, equal, is_zero, from_u256, to_u256 (equal and is_zero return a lane
 *                  bit mask)
 *   LN_IDX         the integer type of a digit's table entry as its gathers load it
 *   LN_C_B, LN_C_R2, LN_C_KIN, LN_C_K256   the limb constants b, R^2, R^2 / 2^256 and 2^256
 *                  (all mod p, in its Montgomery form with its R)
 * and the functions the loop calls: LN(dbl), LN(madd), and for the table points
 *   LN(top_t)(acc, tab, chunks, neg)        acc = 2^256 P (negated in the lanes of neg), Z = 1
 *   LN(point_t)(qx, qy, tab, ent, neg, c)   each lane's entry ent[l] of its chunk c table
 *   LN(top_s)(qx, qy, neg), LN(point_s)(qx, qy, ent, neg, pos)   the same for s and the G
 *                                           table's position pos.
 * Nothing here branches on a lane's values; every lane runs the same sequence.
 */

/* From sm2_field.h's Montgomery form (x 2^256, < p) to the lanes' (x R). */
static inline void LN(from_mont256)(LN_FE *r, const uint64_t v[LN_LANES][4]) {
    LN_FE k;
    LN_F(from_u256)(r, v);
    LN_F(const)(&k, LN_C_KIN);
    LN_F(mul)(r, r, &k);
}

/* And back, canonical. */
static inline void LN(to_mont256)(uint64_t v[LN_LANES][4], const LN_FE *a) {
    LN_FE k, t;
    LN_F(const)(&k, LN_C_K256);
    LN_F(mul)(&t, a, &k);
    LN_F(canon)(&t, &t);
    LN_F(to_u256)(v, &t);
}

/* Plain integers < 2^256 into Montgomery form. */
static inline void LN(from_plain)(LN_FE *r, const uint64_t v[LN_LANES][4]) {
    LN_FE k;
    LN_F(from_u256)(r, v);
    LN_F(const)(&k, LN_C_R2);
    LN_F(mul)(r, r, &k);
}

/* The public keys of a group (lanes past count repeat lane 0's key) as Montgomery x and y;
 * pre[l] when both coordinates are below p. Returns the lanes whose point is on the curve,
 * y^2 = x^3 - 3x + b. */
static inline unsigned LN(keys_read)(LN_FE *x, LN_FE *y, uint8_t pre[LN_LANES],
                                     const uint8_t *const pks[], int count) {
    uint64_t xs[LN_LANES][4], ys[LN_LANES][4];
    for (int l = 0; l < LN_LANES; l++) {
        int src = l < count ? l : 0;
        u256_from_be(xs[l], pks[src]);
        u256_from_be(ys[l], pks[src] + 32);
        pre[l] = u256_less(xs[l], SM2_P.m) && u256_less(ys[l], SM2_P.m);
    }
    LN_FE y2, x3, t, b;
    LN(from_plain)(x, xs);
    LN(from_plain)(y, ys);
    LN_F(sqr)(&y2, y);
    LN_F(sqr)(&x3, x);
    LN_F(mul)(&x3, &x3, x);
    LN_F(add)(&t, x, x);
    LN_F(add)(&t, &t, x);
    LN_F(sub)(&x3, &x3, &t);
    LN_F(const)(&b, LN_C_B);
    LN_F(add)(&x3, &x3, &b);
    return (unsigned)LN_F(equal)(&x3, &y2);
}

/* A group's verdicts (coordinates below p and on the curve); a valid key gets its pk and the
 * one-quarter table mark (the caller has written the table). */
static inline void LN(keys_finish)(sm2_key *const keys[], const uint8_t *const pks[], int count,
                                   const uint8_t pre[LN_LANES], unsigned on, uint8_t ok[]) {
    for (int l = 0; l < count; l++) {
        ok[l] = pre[l] && ((on >> l) & 1);
        if (ok[l]) {
            memcpy(keys[l]->pk, pks[l], 64);
            keys[l]->chunks = 1;
        }
    }
}

/* Every lane's digits: t (or n - t when t is even, negating the sum) as 64 signed odd
 * radix-16 digits plus a final 1 (regular_recode, sm2_core.h), s likewise as the comb's 32
 * radix-2^8 digits; for each digit the lane's table entry |d| >> 1 (within its chunk), and for
 * each position the lanes that negate their point. */
typedef struct {
    LN_IDX t_ent[64][LN_LANES] __attribute__((aligned(64)));
    LN_IDX s_ent[SM2_COMB_POSITIONS][LN_LANES] __attribute__((aligned(64)));
    uint8_t t_neg[64], s_neg[SM2_COMB_POSITIONS];
    unsigned t_even, s_even;
} LN(digits);

static inline void LN(recode)(LN(digits) *dg, const sm2x8_job *jobs, int count) {
    memset(dg->t_neg, 0, sizeof dg->t_neg);
    memset(dg->s_neg, 0, sizeof dg->s_neg);
    dg->t_even = dg->s_even = 0;
    for (int l = 0; l < LN_LANES; l++) {
        const sm2x8_job *jb = &jobs[l < count ? l : 0];
        uint64_t k[4];
        int16_t d[64];
        int ev = make_odd(k, jb->t);
        regular_recode(d, 4, k); /* radix 16 */
        dg->t_even |= (unsigned)ev << l;
        for (int i = 0; i < 64; i++) {
            int v = d[i];
            dg->t_ent[i][l] = (LN_IDX)((v < 0 ? -v : v) >> 1);
            dg->t_neg[i] |= (uint8_t)(((v < 0) ^ ev) << l);
        }
        int16_t cd[SM2_COMB_POSITIONS];
        ev = make_odd(k, jb->s);
        comb_recode(cd, k);
        dg->s_even |= (unsigned)ev << l;
        for (int i = 0; i < SM2_COMB_POSITIONS; i++) {
            int v = cd[i];
            dg->s_ent[i][l] = (LN_IDX)((v < 0 ? -v : v) >> 1);
            dg->s_neg[i] |= (uint8_t)(((v < 0) ^ ev) << l);
        }
    }
}

/* R = [s]G + [t]P: 2^256 P, then per radix-16 position four doublings and one mixed addition
 * per chunk (64 / chunks positions), then 2^256 G and the 32 comb positions. */
static inline void LN(ladder)(LN_JAC *acc, const void *tab, const LN(digits) *dg, int chunks) {
    const int width = 64 / chunks;
    LN_FE qx, qy;
    LN(top_t)(acc, tab, chunks, dg->t_even);
    for (int j = width - 1; j >= 0; j--) {
        for (int k = 0; k < 4; k++) LN(dbl)(acc, acc);
        for (int c = 0; c < chunks; c++) {
            const int pos = width * c + j;
            LN(point_t)(&qx, &qy, tab, dg->t_ent[pos], dg->t_neg[pos], c);
            LN(madd)(acc, acc, &qx, &qy);
        }
    }
    LN(top_s)(&qx, &qy, dg->s_even);
    LN(madd)(acc, acc, &qx, &qy);
    for (int pos = 0; pos < SM2_COMB_POSITIONS; pos++) {
        LN(point_s)(&qx, &qy, dg->s_ent[pos], dg->s_neg[pos], pos);
        LN(madd)(acc, acc, &qx, &qy);
    }
}

/* x(R) == c or c + n (the latter only when below p), as X == c Z^2 (R is never made affine);
 * a lane with Z = 0 (an exceptional addition, or R at infinity) gets -1: the caller redoes it
 * with the exact scalar code. */
static inline void LN(verdicts)(const LN_JAC *acc, const sm2x8_job *jobs, int count,
                                int8_t verdict[]) {
    uint64_t cs[LN_LANES][4], cns[LN_LANES][4];
    unsigned cn_ok = 0;
    for (int l = 0; l < LN_LANES; l++) {
        const sm2x8_job *jb = &jobs[l < count ? l : 0];
        memcpy(cs[l], jb->c, 32);
        u128 cy = 0;
        for (int i = 0; i < 4; i++) {
            cy = (u128)jb->c[i] + SM2_N.m[i] + (uint64_t)(cy >> 64);
            cns[l][i] = (uint64_t)cy;
        }
        if (!(uint64_t)(cy >> 64) && u256_less(cns[l], SM2_P.m)) cn_ok |= 1u << l;
        else memset(cns[l], 0, 32);
    }
    LN_FE z2, c, want;
    LN_F(sqr)(&z2, &acc->z);
    unsigned zero = (unsigned)LN_F(is_zero)(&z2); /* Z = 0 iff Z^2 = 0; Z itself is lazy */
    LN(from_plain)(&c, cs);
    LN_F(mul)(&want, &c, &z2);
    unsigned yes = (unsigned)LN_F(equal)(&want, &acc->x);
    LN(from_plain)(&c, cns);
    LN_F(mul)(&want, &c, &z2);
    yes |= (unsigned)LN_F(equal)(&want, &acc->x) & cn_ok;
    for (int l = 0; l < count; l++)
        verdict[l] = (int8_t)(((zero >> l) & 1) ? -1 : (int)((yes >> l) & 1));
}
