/* Four field elements mod the SM2 prime p = 2^256 - 2^224 - 2^96 + 2^64 - 1 side by side, one
 * per 64-bit lane of an AVX2 register, in radix 2^29: nine limbs, limb i of the four lanes in
 * one __m256i. Products use vpmuludq (_mm256_mul_epu32: the low 32 bits of each lane, 64-bit
 * product). AVX2 has no 64-bit arithmetic shift, so every value that is ever shifted right is
 * kept nonnegative (below).
 *
 * Representation: Montgomery form x R mod p with R = 2^261 (9 x 29 bits). p = -1 mod 2^29, so
 * -p^-1 = 1 mod 2^29 and a reduction round's multiplier q is the low 29 bits of the running
 * column; q p = q (2^256 - 2^224 - 2^96 + 2^64 - 1) is four shifted copies of q: +q << 6 two
 * columns up (2^64 = 2^(2*29+6)), -q << 9 three up (2^96 = 2^(3*29+9)), -q << 21 seven up
 * (2^224 = 2^(7*29+21)), +q << 24 eight up (2^256 = 2^(8*29+24)), and -q in the column itself,
 * which leaves it a multiple of 2^29 whose carry is the column >> 29. No multiplication.
 *
 * Limb classes (every function states which it takes and gives):
 *  - T ("tight"): limbs 0..7 in [0, 2^29 + 2^6), limb 8 in [0, 2^25), value < 2p. What mul,
 *    sqr, add, sub, sub_wide, neg and the shifts return. The products' limbs are exact
 *    (< 2^29); the sums' carry pass runs over all limbs at once, not limb after limb, so a limb
 *    may keep a carry < 2^6 (sm2x4_fold_carry). sm2x4_canon carries exactly first.
 *  - L ("lazy"): sm2x4_add_lazy of two T values, not carried: limbs < 2^30 + 2^7, value < 4p.
 *    Also 4p - y for a table's y (< p, exact limbs), sm2x4_neg_lazy. Only fed to products (and
 *    to add / sub, whose bounds below allow it).
 *  - S ("shifted"): sm2x4_shl_lazy of a T value by k <= 2, not carried: limbs < 2^31 + 2^8,
 *    value < 8p. Only fed to a product whose other operand is T, and to add / sub / sub_lazy
 *    (as their first operand).
 *  - W ("wide"): limbs < 3 * 2^30 + 2^9, value < 12p: 3 (x + y) for x, y in T, or
 *    sm2x4_sub_lazy(a, b) of an S value a and a T value b. Only fed to a product whose other
 *    operand is T.
 *  - V: sm2x4_sub_lazy(a, b) of T values: limbs < 3 * 2^29 + 2^6, value < 6p. Only fed to a
 *    product whose other operand is T or L.
 *
 * Proofs of the bounds:
 *  - sm2x4_mul / sm2x4_sqr take a, b in T x T, L x L, T x L, T x S, T x W, T x V or L x V.
 *    Every limb product a_i b_j is then below 3 * 2^59 + 2^40 (the largest: T x W,
 *    (2^29 + 2^6)(3 * 2^30 + 2^9), and L x V, (2^30 + 2^7)(3 * 2^29 + 2^6); L x L and T x S are
 *    below 2^60 + 2^39) and the values' product below 24 p^2 (T x W: 2p 12p; L x V: 4p 6p). A
 *    product column k holds at most 9 terms (squaring: the sum of at most 4 cross products,
 *    doubled, plus a square: the same column value), so < 27 * 2^59 + 2^44 < 13.6 * 2^60. The
 *    reduction then adds to a column a carry < 2^64 / 2^29 = 2^35, q << 6 < 2^35 and
 *    q << 24 < 2^53 and subtracts q << 9 < 2^38 and q << 21 < 2^50. To keep every column
 *    nonnegative when it is shifted, the columns start from a zero-valued bias: 2^51 in column
 *    0, 2^51 - 2^22 in columns 1..16, -2^22 in column 17 (2^51 in column k equals 2^22 in
 *    column k + 1, so the sum is 0, and 2^51 = 0 mod 2^29 does not change a q). By induction on
 *    the column, a column's true value when shifted is at least 2^51 - 2^22 - 2^50 - 2^38 > 0
 *    (the carry into it is nonnegative), and at most 13.6 * 2^60 + 2^51 + 2^35 + 2^35 + 2^53
 *    < 2^64: the unsigned 64-bit lanes hold it exactly (the subtractions may wrap in between;
 *    the value that is shifted is in range). Column 17 is never shifted: it ends as the top of
 *    a nonnegative value. The result (a b + Q p) / 2^261 with Q < 2^261 is below
 *    24 p^2 / 2^261 + p < 2p (24 p < 2^261), with every limb exact: T.
 *  - sm2x4_fold_carry, the end of add, sub, sub_wide, shl and mul3, takes nonnegative limbs
 *    < 2^34 (any value). It replaces the bits of limb 8 at 2^256 and above, h = limb 8 >> 24
 *    < 2^10, by h (2^224 + 2^96 - 2^64 + 1), p's congruence for 2^256, written with
 *    nonnegative terms (h << 21 in limb 7, h (2^38 - 2^6) in limb 2, = h 2^96 - h 2^64, h in
 *    limb 0), so limb 2 is below 2^34 + 2^48 and the others below 2^34 + 2^31. Then every limb
 *    i < 8 at once keeps its low 29 bits and passes the rest (< 2^5 + 2^2 + 1, from limb 2
 *    < 2^19 + 2^6) to limb i + 1; limb 3 passes once more (at most 1) to limb 4. Limbs 0..7
 *    end below 2^29 + 2^5 + 2, limb 8 below 2^24 + 2^6, the value (unchanged by the carries)
 *    below 2^256 + 2^238 < 2p: T.
 *  - sm2x4_add (limbs of the sum < 2^34: T + T, L + T, L + L, ...), sm2x4_shl (a 2^k < 2^34),
 *    sm2x4_mul3 (3a, a in T or L): the fold.
 *  - sm2x4_sub: a - b + 4p for b in T and a with limbs < 2^33. 4p is written with every limb
 *    in [2^29 + 254, 2^30) below the top (SM2X4_4P) and top 2^26 - 2 > b's limb 8 (< 2^25), so
 *    every limb of a - b + 4p is nonnegative and below 2^34: folded: T. sm2x4_neg is 0 - a.
 *    sm2x4_sub_lazy is the same sum not folded: limbs below a's + 2^30 (V for a in T, W for a
 *    in S), value below a's + 4p. sm2x4_neg_lazy: 4p - y for y < p with exact limbs (limbs
 *    < 2^30, value < 4p: L).
 *  - sm2x4_sub_wide: a - b + 32p, folded, for b with limbs 0..7 <= 2^33 - 16 and limb 8
 *    <= 2^29 - 17 (e.g. 8x or x + 2y uncarried for x, y products, whose limbs are exact) and a
 *    with limbs 0..7 below 7 * 2^30 and limb 8 below 2^33 (e.g. 9x or 3x uncarried for x a
 *    product, or T, or S). 32p is written (SM2X4_32P) with limbs 0..7 in [2^33 - 16, 2^33 +
 *    2^29) and limb 8 = 2^29 - 17, so every limb of a - b + 32p is nonnegative and below 2^34:
 *    folded: T.
 *  - sm2x4_canon: T in; carried limb after limb first (exact limbs, limb 8 < 2^25 as the value
 *    is below 2p), then the representative in [0, p) out, every limb exact.
 * Nothing here branches on lane values.
 */
#ifndef ENGINE_SM2_FIELD_AVX2X4_H
#define ENGINE_SM2_FIELD_AVX2X4_H

#include <immintrin.h>
#include <stdint.h>

#define SM2X4_INLINE static inline __attribute__((always_inline))
#define SM2X4_M29 ((1u << 29) - 1)

typedef struct {
    __m256i v[9];
} sm2x4_fe;

static const uint32_t SM2X4_P_LIMBS[9] = {0x1fffffff, 0x1fffffff, 0x0000003f, 0x1ffffe00, 0x1fffffff,
                                          0x1fffffff, 0x1fffffff, 0x1fdfffff, 0x00ffffff};
/* 4p with limbs 0..7 in [2^29, 2^30) (see sm2x4_sub). */
static const uint64_t SM2X4_4P[9] = {0x3ffffffc, 0x3ffffffe, 0x200000fe, 0x3ffff7ff, 0x3ffffffe,
                                     0x3ffffffe, 0x3ffffffe, 0x3f7ffffe, 0x03fffffe};
/* 32p with limbs 0..7 in [2^33 - 16, 2^33 + 2^29) and limb 8 = 2^29 - 17 (see sm2x4_sub_wide). */
static const uint64_t SM2X4_32P[9] = {0x21fffffe0ull, 0x21fffffefull, 0x2000007efull, 0x21fffbff0ull,
                                      0x21fffffefull, 0x21fffffefull, 0x21fffffefull, 0x21bffffefull,
                                      0x1fffffefull};
/* 2^261 - p (canon adds it: a >= p exactly when a + 2^261 - p reaches 2^261). */
static const uint32_t SM2X4_RMINP[9] = {0x00000001, 0x00000000, 0x1fffffc0, 0x000001ff, 0,
                                        0,          0,          0x00200000, 0x1f000000};
/* R^2 mod p (a plain integer into Montgomery form). */
static const uint32_t SM2X4_R2[9] = {0x00000c00, 0x00004000, 0x1fff0000, 0x0017ffff, 0x00400000,
                                     0x02000000, 0x00000000, 0x00000001, 0x00000010};
/* R mod p: 1 in Montgomery form. */
static const uint32_t SM2X4_ONE[9] = {0x00000020, 0, 0x1ffff800, 0x00003fff, 0, 0, 0, 0x04000000, 0};
/* b R mod p (a = -3 is built into the formulas). */
static const uint32_t SM2X4_B[9] = {0x181ba844, 0x1230632b, 0x09bd5b86, 0x0de6c26d, 0x1878e39e,
                                    0x1505ea51, 0x04293cc0, 0x0368838b, 0x0081fc31};
/* 2^266 mod p: times sm2_field.h's x 2^256 gives x 2^261 after the division by 2^261. */
static const uint32_t SM2X4_K266[9] = {0x00000400, 0, 0x1fff0000, 0x0007ffff, 0, 0, 0, 0, 0x00000004};
/* 2^256 mod p: the way back (x 2^261 -> x 2^256). */
static const uint32_t SM2X4_K256[9] = {0x00000001, 0, 0x1fffffc0, 0x000001ff, 0, 0, 0, 0x00200000, 0};

SM2X4_INLINE void sm2x4_const(sm2x4_fe *r, const uint32_t limbs[9]) {
    for (int i = 0; i < 9; i++) r->v[i] = _mm256_set1_epi64x((long long)limbs[i]);
}

SM2X4_INLINE void sm2x4_zero(sm2x4_fe *r) {
    for (int i = 0; i < 9; i++) r->v[i] = _mm256_setzero_si256();
}

/* Carry propagation over limbs 0..8, all nonnegative (limb 8 keeps what is left). */
SM2X4_INLINE void sm2x4_carry(__m256i l[9]) {
    const __m256i m = _mm256_set1_epi64x(SM2X4_M29);
    for (int i = 0; i < 8; i++) {
        l[i + 1] = _mm256_add_epi64(l[i + 1], _mm256_srli_epi64(l[i], 29));
        l[i] = _mm256_and_si256(l[i], m);
    }
}

/* Nonnegative limbs < 2^34 in (any such value): the bits of limb 8 at 2^256 and above,
 * h = limb 8 >> 24 < 2^10, are replaced by h (2^224 + 2^96 - 2^64 + 1) (p's congruence for
 * 2^256, with nonnegative terms: h << 21 in limb 7, h (2^38 - 2^6) in limb 2, h in limb 0),
 * then every limb passes its bits above 2^29 to the next at once (not one after the other:
 * the carries are independent, so the pass is three instructions deep instead of sixteen),
 * and limb 3, which may have received up to 2^19 from limb 2, passes once more. T out (the
 * bounds are at the top of the file). */
SM2X4_INLINE void sm2x4_fold_carry(__m256i l[9]) {
    const __m256i m = _mm256_set1_epi64x(SM2X4_M29);
    __m256i h = _mm256_srli_epi64(l[8], 24);
    l[8] = _mm256_and_si256(l[8], _mm256_set1_epi64x((1 << 24) - 1));
    l[7] = _mm256_add_epi64(l[7], _mm256_slli_epi64(h, 21));                      /* 2^224 */
    l[2] = _mm256_add_epi64(l[2], _mm256_sub_epi64(_mm256_slli_epi64(h, 38),      /* 2^96 */
                                                   _mm256_slli_epi64(h, 6)));     /* -2^64 */
    l[0] = _mm256_add_epi64(l[0], h);                                             /* +1 */
    __m256i c[8];
    for (int i = 0; i < 8; i++) c[i] = _mm256_srli_epi64(l[i], 29);
    for (int i = 0; i < 8; i++) l[i] = _mm256_and_si256(l[i], m);
    for (int i = 0; i < 8; i++) l[i + 1] = _mm256_add_epi64(l[i + 1], c[i]);
    l[4] = _mm256_add_epi64(l[4], _mm256_srli_epi64(l[3], 29));
    l[3] = _mm256_and_si256(l[3], m);
}

/* a + b, limbs of the sum < 2^34 (T + T, L + T, L + L, ...): T. */
SM2X4_INLINE void sm2x4_add(sm2x4_fe *r, const sm2x4_fe *a, const sm2x4_fe *b) {
    __m256i l[9];
    for (int i = 0; i < 9; i++) l[i] = _mm256_add_epi64(a->v[i], b->v[i]);
    sm2x4_fold_carry(l);
    for (int i = 0; i < 9; i++) r->v[i] = l[i];
}

/* a + b, not carried (T + T -> L). */
SM2X4_INLINE void sm2x4_add_lazy(sm2x4_fe *r, const sm2x4_fe *a, const sm2x4_fe *b) {
    for (int i = 0; i < 9; i++) r->v[i] = _mm256_add_epi64(a->v[i], b->v[i]);
}

/* a 2^k for a in T, k <= 2, not carried: S. */
SM2X4_INLINE void sm2x4_shl_lazy(sm2x4_fe *r, const sm2x4_fe *a, int k) {
    for (int i = 0; i < 9; i++) r->v[i] = _mm256_slli_epi64(a->v[i], k);
}

/* a 2^k for a in T (or L with k <= 3), k <= 4: limbs < 2^34; T. */
SM2X4_INLINE void sm2x4_shl(sm2x4_fe *r, const sm2x4_fe *a, int k) {
    __m256i l[9];
    for (int i = 0; i < 9; i++) l[i] = _mm256_slli_epi64(a->v[i], k);
    sm2x4_fold_carry(l);
    for (int i = 0; i < 9; i++) r->v[i] = l[i];
}

/* 3 a for a in T or L: limbs < 2^32; T. */
SM2X4_INLINE void sm2x4_mul3(sm2x4_fe *r, const sm2x4_fe *a) {
    __m256i l[9];
    for (int i = 0; i < 9; i++) l[i] = _mm256_add_epi64(a->v[i], _mm256_add_epi64(a->v[i], a->v[i]));
    sm2x4_fold_carry(l);
    for (int i = 0; i < 9; i++) r->v[i] = l[i];
}

/* a - b + k for k one of the multiples of p written for it (SM2X4_4P, SM2X4_32P): the limbs
 * not carried. */
SM2X4_INLINE void sm2x4_sub_plus(__m256i l[9], const sm2x4_fe *a, const sm2x4_fe *b,
                                 const uint64_t k[9]) {
    for (int i = 0; i < 9; i++)
        l[i] = _mm256_add_epi64(_mm256_sub_epi64(a->v[i], b->v[i]), _mm256_set1_epi64x((long long)k[i]));
}

/* a - b + 4p (bounds above). */
SM2X4_INLINE void sm2x4_sub(sm2x4_fe *r, const sm2x4_fe *a, const sm2x4_fe *b) {
    __m256i l[9];
    sm2x4_sub_plus(l, a, b, SM2X4_4P);
    sm2x4_fold_carry(l);
    for (int i = 0; i < 9; i++) r->v[i] = l[i];
}

SM2X4_INLINE void sm2x4_neg(sm2x4_fe *r, const sm2x4_fe *a) {
    sm2x4_fe z;
    sm2x4_zero(&z);
    sm2x4_sub(r, &z, a);
}

/* a - b + 4p, not folded (b in T): V for a in T, W for a in S. */
SM2X4_INLINE void sm2x4_sub_lazy(sm2x4_fe *r, const sm2x4_fe *a, const sm2x4_fe *b) {
    sm2x4_sub_plus(r->v, a, b, SM2X4_4P);
}

/* 4p - y for y < p with exact limbs (a table entry): L. */
SM2X4_INLINE void sm2x4_neg_lazy(sm2x4_fe *r, const sm2x4_fe *y) {
    for (int i = 0; i < 9; i++)
        r->v[i] = _mm256_sub_epi64(_mm256_set1_epi64x((long long)SM2X4_4P[i]), y->v[i]);
}

/* a - b + 32p, folded (the operands' bounds are at the top of the file): T. */
SM2X4_INLINE void sm2x4_sub_wide(sm2x4_fe *r, const sm2x4_fe *a, const sm2x4_fe *b) {
    __m256i l[9];
    sm2x4_sub_plus(l, a, b, SM2X4_32P);
    sm2x4_fold_carry(l);
    for (int i = 0; i < 9; i++) r->v[i] = l[i];
}

/* k a, not carried, for k = 3 or 9 (the bounds of the results are the callers'). */
SM2X4_INLINE void sm2x4_mul_small_lazy(sm2x4_fe *r, const sm2x4_fe *a, int k) {
    for (int i = 0; i < 9; i++) {
        __m256i x = a->v[i];
        r->v[i] = k == 9 ? _mm256_add_epi64(_mm256_slli_epi64(x, 3), x)
                         : _mm256_add_epi64(_mm256_add_epi64(x, x), x);
    }
}

/* r = a in the lanes where mask is all ones, else b. */
SM2X4_INLINE void sm2x4_select(sm2x4_fe *r, __m256i take_a, const sm2x4_fe *a, const sm2x4_fe *b) {
    for (int i = 0; i < 9; i++) r->v[i] = _mm256_blendv_epi8(b->v[i], a->v[i], take_a);
}

/* Lane mask (all ones per 64-bit lane) from the low four bits of m. */
SM2X4_INLINE __m256i sm2x4_mask(unsigned m) {
    const __m256i bits = _mm256_set_epi64x(8, 4, 2, 1);
    __m256i v = _mm256_and_si256(_mm256_set1_epi64x((long long)m), bits);
    return _mm256_cmpeq_epi64(v, bits);
}

/* Montgomery product a b / 2^261 mod p (bounds above), by product scanning: column j is the
 * bias of the top of the file, the carry from column j - 1, the products a_i b_(j-i), and the
 * reduction terms of the earlier multipliers q_(j-2) << 6, -q_(j-3) << 9, -q_(j-7) << 21 and
 * q_(j-8) << 24; columns 0..8 give q_j (low 29 bits) and their carry, columns 9..16 give the
 * result's limbs 0..7 and their carry, column 17 (no products) limb 8. One accumulator live at
 * a time (AVX2 has 16 registers); the inputs are read from memory. sq selects squaring:
 * the cross products once, doubled, plus the squares. */
SM2X4_INLINE void sm2x4_mul_core(sm2x4_fe *r, const sm2x4_fe *a, const sm2x4_fe *b, int sq) {
    const __m256i m = _mm256_set1_epi64x(SM2X4_M29);
    __m256i q[9], carry = _mm256_setzero_si256();
#pragma GCC unroll 18
    for (int j = 0; j < 18; j++) {
        /* The terms of column j other than the carry, summed as a tree (four partial sums) so
         * that the carry, the only input on the serial path from column to column, comes last. */
        __m256i part[4];
        int np = 0;
#define SM2X4_TERM(x)                                                                           \
    do {                                                                                        \
        __m256i term_ = (x);                                                                    \
        if (np < 4) part[np] = term_;                                                           \
        else part[np & 3] = _mm256_add_epi64(part[np & 3], term_);                              \
        np++;                                                                                   \
    } while (0)
        if (j == 0)
            SM2X4_TERM(_mm256_set1_epi64x((long long)1 << 51));
        else if (j == 17)
            SM2X4_TERM(_mm256_set1_epi64x(-((long long)1 << 22)));
        else
            SM2X4_TERM(_mm256_set1_epi64x(((long long)1 << 51) - ((long long)1 << 22)));
        const int lo = j > 8 ? j - 8 : 0, hi = j < 8 ? j : 8;
        if (sq) {
            __m256i cross[2];
            int nc = 0;
#pragma GCC unroll 9
            for (int i = lo; i <= hi; i++)
                if (i < j - i) {
                    __m256i pr = _mm256_mul_epu32(a->v[i], a->v[j - i]);
                    cross[nc & 1] = nc < 2 ? pr : _mm256_add_epi64(cross[nc & 1], pr);
                    nc++;
                }
            if (nc) {
                __m256i c = nc > 1 ? _mm256_add_epi64(cross[0], cross[1]) : cross[0];
                SM2X4_TERM(_mm256_add_epi64(c, c));
            }
            if ((j & 1) == 0 && j / 2 <= 8)
                SM2X4_TERM(_mm256_mul_epu32(a->v[j / 2], a->v[j / 2]));
        } else {
#pragma GCC unroll 9
            for (int i = lo; i <= hi; i++) SM2X4_TERM(_mm256_mul_epu32(a->v[i], b->v[j - i]));
        }
        if (j >= 2 && j - 2 <= 8) SM2X4_TERM(_mm256_slli_epi64(q[j - 2], 6));
        if (j >= 8 && j - 8 <= 8) SM2X4_TERM(_mm256_slli_epi64(q[j - 8], 24));
#undef SM2X4_TERM
        __m256i acc = part[0];
        if (np > 2) {
            __m256i u = np > 3 ? _mm256_add_epi64(part[2], part[3]) : part[2];
            acc = _mm256_add_epi64(_mm256_add_epi64(part[0], part[1]), u);
        } else if (np == 2) {
            acc = _mm256_add_epi64(part[0], part[1]);
        }
        if (j >= 3 && j - 3 <= 8) acc = _mm256_sub_epi64(acc, _mm256_slli_epi64(q[j - 3], 9));
        if (j >= 7 && j - 7 <= 8) acc = _mm256_sub_epi64(acc, _mm256_slli_epi64(q[j - 7], 21));
        if (j > 0) acc = _mm256_add_epi64(acc, carry);
        if (j < 17) {
            if (j <= 8)
                q[j] = _mm256_and_si256(acc, m);
            else /* limb j - 9 of a and b is not read from column j on: r may be a or b */
                r->v[j - 9] = _mm256_and_si256(acc, m);
            carry = _mm256_srli_epi64(acc, 29);
        } else {
            r->v[8] = acc;
        }
    }
}

/* The same product and square in inline assembly (sm2_avx2x4_mul.inc, written by
 * gen_sm2_avx2x4_mul.py, which says why): column for column the arithmetic above, with a's
 * limbs held in registers. About 86 and 65 cycles on Zen 4 against 103 and 83 for the C
 * (tests/sm/test_sm2_avx2_lanes.py checks both against Python integers). */
#include "sm2/sm2_avx2x4_mul.inc"

/* Called, not inlined: one copy of each body (about 2 KiB of code) serves every call site, so
 * the point formulas' code fits the instruction caches (inlined, the doubling and the
 * addition came to about 40 KiB, more than the 32 KiB L1i of Zen 4). */
__attribute__((noinline)) static void sm2x4_mul(sm2x4_fe *r, const sm2x4_fe *a, const sm2x4_fe *b) {
    sm2x4_mul_asm(r, a, b);
}

__attribute__((noinline)) static void sm2x4_sqr(sm2x4_fe *r, const sm2x4_fe *a) { sm2x4_sqr_asm(r, a); }

/* T in: the representative in [0, p), every limb exact (T). */
SM2X4_INLINE void sm2x4_canon(sm2x4_fe *r, const sm2x4_fe *a) {
    __m256i x[9], w[9];
    for (int i = 0; i < 9; i++) x[i] = a->v[i];
    sm2x4_carry(x); /* exact limbs; the value (< 2p) is unchanged, so limb 8 < 2^25 */
    for (int i = 0; i < 9; i++)
        w[i] = _mm256_add_epi64(x[i], _mm256_set1_epi64x((long long)SM2X4_RMINP[i]));
    sm2x4_carry(w); /* a + 2^261 - p < 2^262: limb 8 < 2^30 */
    __m256i ge = _mm256_cmpgt_epi64(w[8], _mm256_set1_epi64x(SM2X4_M29)); /* a >= p */
    w[8] = _mm256_and_si256(w[8], _mm256_set1_epi64x(SM2X4_M29));
    for (int i = 0; i < 9; i++) r->v[i] = _mm256_blendv_epi8(x[i], w[i], ge);
}

/* Bit l set where lane l of a == b (mod p); T inputs. */
SM2X4_INLINE unsigned sm2x4_equal(const sm2x4_fe *a, const sm2x4_fe *b) {
    sm2x4_fe ca, cb;
    sm2x4_canon(&ca, a);
    sm2x4_canon(&cb, b);
    __m256i eq = _mm256_cmpeq_epi64(ca.v[0], cb.v[0]);
    for (int i = 1; i < 9; i++) eq = _mm256_and_si256(eq, _mm256_cmpeq_epi64(ca.v[i], cb.v[i]));
    return (unsigned)_mm256_movemask_pd(_mm256_castsi256_pd(eq));
}

SM2X4_INLINE unsigned sm2x4_is_zero(const sm2x4_fe *a) {
    sm2x4_fe z;
    sm2x4_zero(&z);
    return sm2x4_equal(a, &z);
}

SM2X4_INLINE void sm2x4_sqr_n(sm2x4_fe *r, const sm2x4_fe *a, int n) {
    sm2x4_sqr(r, a);
    for (int i = 1; i < n; i++) sm2x4_sqr(r, r);
}

/* a^(p-2) = a^-1 (0 for 0) by an addition chain over the public exponent
 * p - 2 = 2^256 - 2^224 - 2^96 + 2^64 - 3 (binary: 31 ones, a zero, 128 ones, 32 zeros,
 * 62 ones, a zero, a one), with x_k = a^(2^k - 1): 256 squarings and 15 products. */
static inline void sm2x4_inv(sm2x4_fe *r, const sm2x4_fe *a) {
    sm2x4_fe x2, x3, x6, x12, x24, x30, x31, x32, t;
    sm2x4_sqr(&x2, a);
    sm2x4_mul(&x2, &x2, a);
    sm2x4_sqr(&x3, &x2);
    sm2x4_mul(&x3, &x3, a);
    sm2x4_sqr_n(&x6, &x3, 3);
    sm2x4_mul(&x6, &x6, &x3);
    sm2x4_sqr_n(&x12, &x6, 6);
    sm2x4_mul(&x12, &x12, &x6);
    sm2x4_sqr_n(&x24, &x12, 12);
    sm2x4_mul(&x24, &x24, &x12);
    sm2x4_sqr_n(&x30, &x24, 6);
    sm2x4_mul(&x30, &x30, &x6);
    sm2x4_sqr(&x31, &x30);
    sm2x4_mul(&x31, &x31, a);
    sm2x4_sqr(&x32, &x31);
    sm2x4_mul(&x32, &x32, a);
    sm2x4_sqr(&t, &x31); /* 31 ones, then the zero */
    for (int i = 0; i < 4; i++) { /* 128 ones */
        sm2x4_sqr_n(&t, &t, 32);
        sm2x4_mul(&t, &t, &x32);
    }
    sm2x4_sqr_n(&t, &t, 32); /* 32 zeros */
    sm2x4_sqr_n(&t, &t, 32); /* 32 ones */
    sm2x4_mul(&t, &t, &x32);
    sm2x4_sqr_n(&t, &t, 30); /* 30 ones */
    sm2x4_mul(&t, &t, &x30);
    sm2x4_sqr_n(&t, &t, 2); /* 0, 1 */
    sm2x4_mul(r, &t, a);
}

/* Limb i (29 bits; the top one 24) of a 256-bit integer (four little-endian 64-bit words). */
static inline uint32_t sm2x4_limb_of(const uint64_t x[4], int i) {
    int bit = 29 * i, w = bit >> 6, s = bit & 63;
    uint64_t v = x[w] >> s;
    if (s > 35 && w < 3) v |= x[w + 1] << (64 - s);
    return (uint32_t)(v & SM2X4_M29);
}

/* Lane l of r from the 256-bit integer v[l] (< 2^256). */
static inline void sm2x4_from_u256(sm2x4_fe *r, const uint64_t v[4][4]) {
    for (int i = 0; i < 9; i++)
        r->v[i] = _mm256_set_epi64x(sm2x4_limb_of(v[3], i), sm2x4_limb_of(v[2], i),
                                    sm2x4_limb_of(v[1], i), sm2x4_limb_of(v[0], i));
}

/* The inverse of sm2x4_from_u256 for limbs < 2^29 and a value < 2^256 (e.g. canonical). */
static inline void sm2x4_to_u256(uint64_t v[4][4], const sm2x4_fe *a) {
    uint64_t tmp[9][4] __attribute__((aligned(32)));
    for (int i = 0; i < 9; i++) _mm256_store_si256((__m256i *)tmp[i], a->v[i]);
    for (int l = 0; l < 4; l++) {
        uint64_t x[5] = {0, 0, 0, 0, 0};
        for (int i = 0; i < 9; i++) {
            int bit = 29 * i, w = bit >> 6, s = bit & 63;
            x[w] |= tmp[i][l] << s;
            if (s > 35) x[w + 1] |= tmp[i][l] >> (64 - s);
        }
        for (int k = 0; k < 4; k++) v[l][k] = x[k];
    }
}

#endif
