/* Ed25519 verification with AVX2: four-lane field arithmetic in radix 2^25.5 (fe25_avx2.h) for
 * the two largest costs of a batch on a CPU without IFMA:
 *   - the exponentiations of point decompression, eight at a time (two groups of four lanes);
 *   - Pippenger's multi-scalar multiplication with every point in "parallel" form: the four
 *     lanes hold X, Y, Z, T of one point and an addition is two four-way multiplications (the
 *     extended-coordinates formulas of Hisil, Wong, Carter and Dawson, 2008, for a = -1, whose
 *     multiplications come in independent groups of four). Buckets and points are plain arrays,
 *     so there is no gather or scatter.
 *   - single checks (and a bisection's lone entries) and Straus's method, in the same parallel
 *     form (ge25_avx2.h): the shared doublings too, B's odd multiples packed in the lane layout;
 * and SHA-512 of the challenges four messages at a time (sha512_x4_avx2.h). Everything else
 * (scalars, the ends of decompression, the final Horner steps) is the radix-2^51 kernel
 * compiled for BMI2/ADX. Selected when the CPU has AVX2; the x86 guard keeps aarch64 builds
 * working. The avx512 kernel borrows the single check (engine_ed25519_single_check_avx2v). */
#if defined(__x86_64__)
#pragma GCC target("avx2,bmi,bmi2,adx")
#include <stdint.h>
#include <stdlib.h>

#include "common/pool.h"
#include "ed25519/ed25519_impl.h"
#include "ed25519/fe25_avx2.h"
#include "ed25519/ge.h"
#include "ed25519/ge25_avx2.h"
#include "ed25519/scalar.h"
#include "ed25519/sha512_x4_avx2.h"

/* ---- decompression ------------------------------------------------------------------------ */

/* 8 exponentiations per pass; a short last pass repeats its first element, except that up to
 * four leftovers are cheaper on the scalar path. */
static void pow_many_avx2v(fe51 *out, const fe51 *in, size_t count) {
    const size_t per_pass = 4 * FE25_POW_GROUPS;
    for (size_t first = 0; first < count; first += per_pass) {
        if (count - first <= 2) {
            fe51 base[4] = {{{0}}}, pow[4];
            for (size_t j = 0; j < 4; j++) base[j] = in[first + j < count ? first + j : first];
            fe_pow22523_x4(pow, base);
            for (size_t j = 0; first + j < count; j++) out[first + j] = pow[j];
            break;
        }
        fe51 base[4 * FE25_POW_GROUPS], pow[4 * FE25_POW_GROUPS];
        fe25x4 v[FE25_POW_GROUPS], r[FE25_POW_GROUPS];
        for (size_t j = 0; j < per_pass; j++) base[j] = in[first + j < count ? first + j : first];
        for (int g = 0; g < FE25_POW_GROUPS; g++)
            fe25x4_from_fe51(&v[g], &base[4 * g], &base[4 * g + 1], &base[4 * g + 2],
                             &base[4 * g + 3]);
        fe25x4_pow22523_g(r, v);
        for (int g = 0; g < FE25_POW_GROUPS; g++) fe25x4_to_fe51(pow + 4 * g, &r[g]);
        for (size_t j = 0; j < per_pass && first + j < count; j++) out[first + j] = pow[j];
    }
}

static int msm_pippenger_avx2v(ge_p3 *out, const ge_niels *points, const sc256 *scalars, size_t n,
                               int threads);
struct prepared_avx2;
static int challenges_x4(struct prepared_avx2 *prep, const size_t *idx, size_t count,
                         const engine_ed25519_item *items);

static int single_check_avx2v(const ed_key *key, const sc256 *k, const sc256 *s,
                              const ge_niels *neg_r);
static int msm_straus_avx2v(ge_p3 *out, const ge_niels *points, const sc256 *scalars, size_t n);

#define ED_SINGLE_CHECK single_check_avx2v
#define ED_MSM_STRAUS msm_straus_avx2v
#define ED_POW_MANY pow_many_avx2v
#define ED_MSM_PIPPENGER msm_pippenger_avx2v
#define ED_MSM_KIND ED_MSM_AVX2
#define ED_CHALLENGES challenges_x4
#define ED_SUFFIX avx2
#include "ed25519/ed25519_verify_template.h"

/* ---- challenges ---------------------------------------------------------------------------- */

/* k = SHA-512(R || A || prefix || M) mod L for the live entries, four messages per pass (a last
 * lone message takes the scalar hash, which costs less than a pass with three idle lanes).
 * Returns 0 when out of memory. */
static int challenges_x4(struct prepared_avx2 *prep_, const size_t *idx, size_t count,
                         const engine_ed25519_item *items) {
    prepared_avx2 *prep = (prepared_avx2 *)prep_;
    size_t most = 0;
    for (size_t j = 0; j < count; j++) {
        const engine_ed25519_item *it = &items[idx[j]];
        size_t bytes = sha512_pad_blocks(64 + it->prefix_len + it->msg_len) * 128;
        most = bytes > most ? bytes : most;
    }
    uint8_t *padded = (uint8_t *)malloc(4 * most + 1);
    if (!padded) return 0;
    size_t first = 0;
    for (; first + 1 < count; first += 4) {
        const uint8_t *msgs[4];
        size_t blocks[4];
        uint8_t digests[4][64];
        for (size_t l = 0; l < 4; l++) {
            if (first + l >= count) {
                msgs[l] = padded;
                blocks[l] = 0;
                continue;
            }
            const engine_ed25519_item *it = &items[idx[first + l]];
            const uint8_t *pieces[4] = {it->sig, it->pk, it->prefix, it->msg};
            size_t lens[4] = {32, 32, it->prefix_len, it->msg_len};
            msgs[l] = padded + l * most;
            sha512_pad(padded + l * most, pieces, lens);
            blocks[l] = sha512_pad_blocks(64 + it->prefix_len + it->msg_len);
        }
        sha512_x4(digests, msgs, blocks);
        for (size_t l = 0; l < 4 && first + l < count; l++)
            engine_sc_reduce512(&prep[idx[first + l]].k, digests[l]);
    }
    if (first < count) challenge_avx2(&prep[idx[first]].k, &items[idx[first]]);
    free(padded);
    return 1;
}

/* ---- points in parallel form --------------------------------------------------------------- */

/* ---- Pippenger ----------------------------------------------------------------------------- */

/* A point's cached forms packed as 32-bit limbs: [sign][limb][lane], 80 words per sign. The
 * affine point (y + x, y - x, 2dxy) gives (y - x, y + x, 2, 2dxy); its negation swaps the first
 * two lanes and negates the last. */
#define PACKED_WORDS 80

static void pack_cached(uint32_t *w, const fe25x4 *c) {
    _Alignas(32) uint64_t lanes[4];
    for (int k = 0; k < 10; k++) {
        _mm256_store_si256((__m256i *)lanes, c->l[k]);
        for (int j = 0; j < 4; j++) w[4 * k + j] = (uint32_t)lanes[j];
    }
}

static inline __attribute__((always_inline)) void unpack_cached(fe25x4 *c, const uint32_t *w) {
    for (int k = 0; k < 10; k++)
        c->l[k] = _mm256_cvtepu32_epi64(_mm_loadu_si128((const __m128i *)(w + 4 * k)));
}

static void point_words(uint32_t w[2 * PACKED_WORDS], const ge_niels *p) {
    fe51 two = {{2, 0, 0, 0, 0}}, neg;
    fe_neg(&neg, &p->xy2d);
    fe_mul(&neg, &neg, &FE_ONE);
    fe25x4 c;
    fe25x4_from_fe51(&c, &p->ymx, &p->ypx, &two, &p->xy2d);
    pack_cached(w, &c);
    fe25x4_from_fe51(&c, &p->ypx, &p->ymx, &two, &neg);
    pack_cached(w + PACKED_WORDS, &c);
}

/* Window width from a cost model in point additions: per window, one addition per point whose
 * digit there may be non-zero (the 128-bit coefficients have none above bit 128), and about
 * three per bucket for the running sums (two additions and a conversion). */
typedef struct {
    size_t n, short_count;
} window_cost_arg;

static double avx2v_window_cost(int c, const void *arg) {
    const window_cost_arg *a = (const window_cost_arg *)arg;
    int windows = (253 + c) / c + 1;
    double cost = 0;
    for (int w = 0; w < windows; w++)
        cost += (double)(a->n - a->short_count + (w * c <= 129 ? a->short_count : 0)) +
                (double)(1 << (c - 1)) * 3.0;
    return cost;
}

static int avx2v_window(const sc256 *scalars, size_t n) {
    window_cost_arg arg = {n, 0};
    for (size_t i = 0; i < n; i++) arg.short_count += (scalars[i].v[2] | scalars[i].v[3]) == 0;
    return cheapest_window_avx2(avx2v_window_cost, &arg, 14);
}

typedef struct {
    const ge_niels *points;
    const sc256 *scalars;
    int16_t *digits;
    uint32_t *words;
    size_t n, windows, ranges;
    int c;
} inputs_ctx;

static void inputs_task(void *arg, size_t r) {
    inputs_ctx *ctx = (inputs_ctx *)arg;
    size_t lo = ctx->n * r / ctx->ranges, hi = ctx->n * (r + 1) / ctx->ranges;
    for (size_t i = lo; i < hi; i++) {
        signed_digits_avx2(ctx->digits + i * ctx->windows, &ctx->scalars[i], ctx->c,
                           (int)ctx->windows);
        point_words(ctx->words + i * 2 * PACKED_WORDS, &ctx->points[i]);
    }
}

typedef struct {
    const uint32_t *words;
    const int16_t *digits;
    size_t n, windows, half;
    ge_p3 *sums;
    int rc;
} window_ctx;

/* One window: its buckets filled, then sum_b b * bucket[b] by running sums from the top. */
static void window_task(void *arg, size_t w) {
    window_ctx *ctx = (window_ctx *)arg;
    ge25_ext *buckets = (ge25_ext *)aligned_alloc(32, ctx->half * sizeof(ge25_ext));
    if (!buckets) {
        __atomic_store_n(&ctx->rc, ENGINE_ED25519_ENOMEM, __ATOMIC_RELAXED);
        return;
    }
    ge25_ext identity;
    ge25_identity(&identity);
    for (size_t b = 0; b < ctx->half; b++) buckets[b] = identity;
    /* Two additions at a time (interleaved, they overlap) whenever the next two non-zero digits
     * name different buckets; a pending one waits for a partner. */
    size_t pending = SIZE_MAX;
    for (size_t i = 0; i < ctx->n; i++) {
        int d = ctx->digits[i * ctx->windows + w];
        if (d == 0) continue;
        if (pending == SIZE_MAX) {
            pending = i;
            continue;
        }
        int e = ctx->digits[pending * ctx->windows + w];
        size_t bd = (size_t)(d > 0 ? d : -d) - 1, be = (size_t)(e > 0 ? e : -e) - 1;
        ge25_cached q[2];
        unpack_cached(&q[0], ctx->words + pending * 2 * PACKED_WORDS + (e < 0 ? PACKED_WORDS : 0));
        unpack_cached(&q[1], ctx->words + i * 2 * PACKED_WORDS + (d < 0 ? PACKED_WORDS : 0));
        if (bd == be) {
            ge25_add(&buckets[be], &buckets[be], &q[0]);
            pending = i; /* the second waits */
            continue;
        }
        ge25_ext *const r[2] = {&buckets[be], &buckets[bd]};
        const ge25_cached *const qs[2] = {&q[0], &q[1]};
        ge25_add_n(r, (const ge25_ext *const *)r, qs, 2);
        pending = SIZE_MAX;
    }
    if (pending != SIZE_MAX) {
        int e = ctx->digits[pending * ctx->windows + w];
        size_t be = (size_t)(e > 0 ? e : -e) - 1;
        ge25_cached q;
        unpack_cached(&q, ctx->words + pending * 2 * PACKED_WORDS + (e < 0 ? PACKED_WORDS : 0));
        ge25_add(&buckets[be], &buckets[be], &q);
    }
    /* running = sum of buckets j.., sum += running; pipelined by one step so that the two
     * additions of a step are independent: sum takes the running sum of the step before. */
    ge25_ext running = identity, sum = identity;
    ge25_cached c[2];
    for (size_t j = ctx->half; j-- > 0;) {
        ge25_to_cached(&c[0], &buckets[j]);
        ge25_to_cached(&c[1], &running); /* running of buckets j+1.. */
        ge25_ext *const r[2] = {&running, &sum};
        const ge25_cached *const qs[2] = {&c[0], &c[1]};
        ge25_add_n(r, (const ge25_ext *const *)r, qs, 2);
    }
    ge25_to_cached(&c[1], &running); /* the last running sum, buckets 0.. */
    ge25_add(&sum, &sum, &c[1]);
    ge25_to_p3(&ctx->sums[w], &sum);
    free(buckets);
}

static int msm_pippenger_avx2v(ge_p3 *out, const ge_niels *points, const sc256 *scalars,
                               size_t n, int threads) {
    int c = avx2v_window(scalars, n);
    size_t windows = (size_t)((253 + c) / c + 1);
    int16_t *digits = (int16_t *)malloc(n * windows * sizeof(int16_t));
    uint32_t *words = (uint32_t *)malloc(n * 2 * PACKED_WORDS * sizeof(uint32_t));
    ge_p3 *sums = (ge_p3 *)malloc(windows * sizeof(ge_p3));
    if (!digits || !words || !sums) {
        free(digits);
        free(words);
        free(sums);
        return ENGINE_ED25519_ENOMEM;
    }
    inputs_ctx in = {points, scalars, digits, words, n, windows,
                     threads > 1 ? (size_t)threads * 4 : 1, c};
    engine_parallel_for(threads, in.ranges, inputs_task, &in);
    window_ctx ctx = {words, digits, n, windows, (size_t)1 << (c - 1), sums, ENGINE_ED25519_OK};
    engine_parallel_for(threads, windows, window_task, &ctx);
    if (ctx.rc == ENGINE_ED25519_OK) horner_avx2(out, sums, (int)windows, c);
    free(digits);
    free(words);
    free(sums);
    return ctx.rc;
}

/* ---- single checks and Straus in parallel form ------------------------------------------- */

/* Odd multiples [1, 3, ..., 127] of B and of [2^128]B in operand form, packed as 32-bit limbs
 * (PACKED_WORDS / 2 = 40 words an entry), 20 KiB for both: the width-8 NAF of a single check. */
#define ENTRY_WORDS (PACKED_WORDS / 2)
static uint32_t g_base25[2][BASE_TABLE_SIZE * ENTRY_WORDS] __attribute__((aligned(64)));
static pthread_once_t g_base25_once = PTHREAD_ONCE_INIT;

static void base25_init(void) {
    const ge_niels *tables[2] = {base_table_avx2(), g_base_hi_table_avx2};
    for (int t = 0; t < 2; t++) {
        for (int i = 0; i < BASE_TABLE_SIZE; i++) {
            ge25_cached c;
            ge25_cached_from_niels(&c, &tables[t][i]);
            pack_cached(g_base25[t] + i * ENTRY_WORDS, &c);
        }
    }
}

/* One scalar of a joint multiplication: its NAF and its odd multiples, packed or in lanes. */
typedef struct {
    int8_t naf[256];
    const uint32_t *packed;
    const ge25_cached *lanes;
} term25;

/* acc += [d] entry for an odd digit d of a term (d != 0). */
static inline __attribute__((always_inline)) void add_digit25(ge25_ext *acc, const term25 *t,
                                                              int d) {
    ge25_cached unpacked;
    const ge25_cached *q;
    int index = (d > 0 ? d : -d) >> 1;
    if (t->packed) {
        unpack_cached(&unpacked, t->packed + index * ENTRY_WORDS);
        q = &unpacked;
    } else {
        q = &t->lanes[index];
    }
    /* A branch on the sign: measured faster than selecting the lanes with variable permutes
     * and blends (23.6-24.3 against 24.6-25.0 us a single check, interleaved runs). */
    if (d > 0) ge25_add(acc, acc, q);
    else ge25_sub(acc, acc, q);
}

/* sum of the terms' multiples: one doubling per digit position from the top (shared), the
 * additions of each term's non-zero digits in between. */
static void joint_mult25(ge25_ext *acc, const term25 *terms, int count, int top) {
    ge25_identity(acc);
    for (int i = top; i >= 0; i--) {
        ge25_dbl(acc, acc);
        for (int j = 0; j < count; j++) {
            int d = terms[j].naf[i];
            if (d) add_digit25(acc, &terms[j], d);
        }
    }
}

/* [8]([s]B + [k](-A) + (-R)) == O, as the template's single_check (same split of the scalars
 * when the key has its table of -[2^128]A), with every doubling and addition in parallel form:
 * B's odd multiples from g_base25 (width 8), the key's from its radix-2^51 tables (width 5). */
static int single_check_avx2v(const ed_key *key, const sc256 *k, const sc256 *s,
                              const ge_niels *neg_r) {
    pthread_once(&g_base25_once, base25_init);
    ge25_cached a_lanes[2][ED_KEY_TABLE_SIZE];
    term25 terms[4];
    sc256 parts[4];
    int count = key->has_hi ? 4 : 2;
    if (key->has_hi) {
        parts[0] = (sc256){{s->v[0], s->v[1], 0, 0}};
        parts[1] = (sc256){{s->v[2], s->v[3], 0, 0}};
        parts[2] = (sc256){{k->v[0], k->v[1], 0, 0}};
        parts[3] = (sc256){{k->v[2], k->v[3], 0, 0}};
        terms[0].packed = g_base25[0];
        terms[1].packed = g_base25[1];
        terms[2].packed = terms[3].packed = NULL;
        terms[2].lanes = a_lanes[0];
        terms[3].lanes = a_lanes[1];
        for (int i = 0; i < ED_KEY_TABLE_SIZE; i++) {
            ge25_cached_from_ge(&a_lanes[0][i], &key->neg_table[i]);
            ge25_cached_from_ge(&a_lanes[1][i], &key->neg_hi_table[i]);
        }
    } else {
        parts[0] = *s;
        parts[1] = *k;
        terms[0].packed = g_base25[0];
        terms[1].packed = NULL;
        terms[1].lanes = a_lanes[0];
        for (int i = 0; i < ED_KEY_TABLE_SIZE; i++)
            ge25_cached_from_ge(&a_lanes[0][i], &key->neg_table[i]);
    }
    int top = -1;
    for (int j = 0; j < count; j++) {
        int t = wnaf_avx2(terms[j].naf, &parts[j], terms[j].packed ? 8 : 5);
        if (t > top) top = t;
    }
    ge25_ext acc;
    ge25_cached r;
    joint_mult25(&acc, terms, count, top);
    ge25_cached_from_niels(&r, neg_r);
    ge25_add(&acc, &acc, &r);
    for (int i = 0; i < 3; i++) ge25_dbl(&acc, &acc);
    ge_p3 p;
    ge25_to_p3(&p, &acc);
    return fe_iszero(&p.X) && fe_equal(&p.Y, &p.Z);
}

int engine_ed25519_single_check_avx2v(const ed_key *key, const sc256 *k, const sc256 *s,
                                      const ge_niels *neg_r) {
    return single_check_avx2v(key, k, s, neg_r);
}

/* Odd multiples [1, 3, ..., 15]P of an affine point in operand form (scaled, see
 * ge25_to_cached), packed: one doubling and seven additions in parallel form. */
static void odd_multiples25(uint32_t *words, const ge_niels *p) {
    ge_p3 p3;
    p3_from_niels_avx2(&p3, p);
    ge25_ext cur, twice;
    ge25_cached c, twice_c;
    ge25_from_p3(&cur, &p3);
    ge25_dbl(&twice, &cur);
    ge25_to_cached(&twice_c, &twice);
    for (int i = 0; i < ED_KEY_TABLE_SIZE; i++) {
        ge25_to_cached(&c, &cur);
        pack_cached(words + i * ENTRY_WORDS, &c);
        if (i + 1 < ED_KEY_TABLE_SIZE) ge25_add(&cur, &cur, &twice_c);
    }
}

/* sum [scalars[i]] points[i]: Straus with per-point width-5 tables, in parallel form. */
static int msm_straus_avx2v(ge_p3 *out, const ge_niels *points, const sc256 *scalars, size_t n) {
    uint32_t *words = (uint32_t *)malloc(n * ED_KEY_TABLE_SIZE * ENTRY_WORDS * sizeof(uint32_t));
    term25 *terms = (term25 *)malloc(n * sizeof(term25));
    if (!words || !terms) {
        free(words);
        free(terms);
        return ENGINE_ED25519_ENOMEM;
    }
    int top = -1;
    for (size_t i = 0; i < n; i++) {
        terms[i].packed = words + i * ED_KEY_TABLE_SIZE * ENTRY_WORDS;
        terms[i].lanes = NULL;
        odd_multiples25(words + i * ED_KEY_TABLE_SIZE * ENTRY_WORDS, &points[i]);
        int t = wnaf_avx2(terms[i].naf, &scalars[i], 5);
        if (t > top) top = t;
    }
    ge25_ext acc;
    joint_mult25(&acc, terms, (int)n, top);
    ge25_to_p3(out, &acc);
    free(words);
    free(terms);
    return ENGINE_ED25519_OK;
}

/* ---- self-check ---------------------------------------------------------------------------- */

static int p3_equal_exact(const ge_p3 *a, const ge_p3 *b) {
    return fe_equal(&a->X, &b->X) && fe_equal(&a->Y, &b->Y) && fe_equal(&a->Z, &b->Z) &&
           fe_equal(&a->T, &b->T);
}

/* X a.Z = X b.Z and so on: the same projective point, for formulas that may scale. */
static int p3_equal_projective(const ge_p3 *a, const ge_p3 *b) {
    fe51 l, r;
    const fe51 *ac[3] = {&a->X, &a->Y, &a->T}, *bc[3] = {&b->X, &b->Y, &b->T};
    int ok = 1;
    for (int k = 0; k < 3; k++) {
        fe_mul(&l, ac[k], &b->Z);
        fe_mul(&r, bc[k], &a->Z);
        ok &= fe_equal(&l, &r);
    }
    return ok;
}

/* Wrong results of the parallel-form operations on (p, q) against radix 2^51: p + q with q's
 * operand form scaled (Pippenger's, Straus's), exact and converted from a radix-2^51 table entry
 * (single checks), and through the packed layout; p - q with the last two; 2p. The exact forms
 * must give the very same coordinates (the formulas are the same up to signs that cancel). */
static int point_ops_mismatches(const ge_p3 *p, const ge_p3 *q) {
    ge_cached qc;
    ge_p1p1 t;
    ge_p3 want_add, want_sub, want_dbl, got;
    ge_p3_to_cached(&qc, q);
    ge_add(&t, p, &qc);
    ge_p1p1_to_p3(&want_add, &t);
    ge_sub(&t, p, &qc);
    ge_p1p1_to_p3(&want_sub, &t);
    ge_p3_dbl(&t, p);
    ge_p1p1_to_p3(&want_dbl, &t);
    ge25_ext vp, vq, vr;
    ge25_cached scaled, exact, converted, unpacked;
    uint32_t words[ENTRY_WORDS];
    ge25_from_p3(&vp, p);
    ge25_from_p3(&vq, q);
    ge25_to_cached(&scaled, &vq);
    ge25_to_cached_exact(&exact, &vq);
    ge25_cached_from_ge(&converted, &qc);
    pack_cached(words, &exact);
    unpack_cached(&unpacked, words);
    int bad = 0;
    ge25_add(&vr, &vp, &scaled);
    ge25_to_p3(&got, &vr);
    bad += !p3_equal_projective(&got, &want_add);
    const ge25_cached *forms[3] = {&exact, &converted, &unpacked};
    for (int f = 0; f < 3; f++) {
        ge25_add(&vr, &vp, forms[f]);
        ge25_to_p3(&got, &vr);
        bad += !p3_equal_exact(&got, &want_add);
        ge25_sub(&vr, &vp, forms[f]);
        ge25_to_p3(&got, &vr);
        bad += !p3_equal_exact(&got, &want_sub);
    }
    ge25_dbl(&vr, &vp);
    ge25_to_p3(&got, &vr);
    bad += !p3_equal_exact(&got, &want_dbl);
    /* and chained: 2(p + q) - q, every output fed back as an input */
    ge25_add(&vr, &vp, &exact);
    ge25_dbl(&vr, &vr);
    ge25_sub(&vr, &vr, &exact);
    ge_p3 w;
    ge_p3_to_cached(&qc, q);
    ge_p3_dbl(&t, &want_add);
    ge_p1p1_to_p3(&w, &t);
    ge_sub(&t, &w, &qc);
    ge_p1p1_to_p3(&w, &t);
    ge25_to_p3(&got, &vr);
    bad += !p3_equal_exact(&got, &w);
    return bad;
}

/* The operations on every pair of points decoded from count 32-byte encodings (ZIP-215 rules;
 * the caller passes decodable ones: identity, small-order points, honest keys). Returns the
 * number of wrong results, or -1 when an encoding does not decode. */
int engine_ed25519_selftest_avx2_points(const uint8_t *encodings, size_t count) {
    int bad = 0;
    for (size_t i = 0; i < count; i++) {
        fe51 x, y;
        if (!ge_decompress(&x, &y, encodings + 32 * i)) return -1;
        ge_p3 p;
        ge_p3_from_niels_affine(&p, &x, &y);
        for (size_t j = 0; j < count; j++) {
            fe51 x2, y2;
            if (!ge_decompress(&x2, &y2, encodings + 32 * j)) return -1;
            ge_p3 q;
            ge_p3_from_niels_affine(&q, &x2, &y2);
            bad += point_ops_mismatches(&p, &q);
        }
    }
    return bad;
}


/* The four-lane field and point addition against the radix-2^51 code on limbs at the edges of
 * their bounds (all-ones limbs, zero, 1, p - 1, values whose sums ripple through every limb);
 * returns the number of wrong results (a test hook: the vectors rarely reach these corners). */
int engine_ed25519_selftest_avx2(uint64_t seed, int iterations) {
    const uint64_t m = FE_MASK51;
    const uint64_t edges[6] = {m, 0, 1, m - 18, m - 1, (UINT64_C(1) << 51) + 8191};
    uint64_t x = seed | 1;
    int bad = 0;
    for (int it = 0; it < iterations; it++) {
        fe51 a[4], b[4];
        for (int j = 0; j < 4; j++) {
            for (int k = 0; k < 5; k++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
                a[j].v[k] = (x % 7) < 5 ? edges[x % 6] : (x >> 13) & m;
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                b[j].v[k] = (x % 7) < 5 ? edges[(x >> 3) % 6] : (x >> 13) & m;
            }
        }
        fe25x4 va, vb, r[4];
        fe25x4_from_fe51(&va, &a[0], &a[1], &a[2], &a[3]);
        fe25x4_from_fe51(&vb, &b[0], &b[1], &b[2], &b[3]);
        fe25x4 s;
        fe25x4_add(&s, &va, &vb);
        fe25x4_mul(&r[0], &s, &vb);  /* (a + b) b: a sum as a multiplication input */
        fe25x4_sub(&s, &va, &vb);
        fe25x4_sq(&r[1], &s);        /* (a - b)^2 */
        fe25x4_mul(&r[2], &va, &vb);
        fe25x4_sq(&r[3], &va);
        fe51 got[4][4];
        for (int op = 0; op < 4; op++) fe25x4_to_fe51(got[op], &r[op]);
        for (int j = 0; j < 4; j++) {
            fe51 e, t;
            fe_add(&t, &a[j], &b[j]);
            fe_mul(&e, &t, &b[j]);
            bad += !fe_equal(&e, &got[0][j]);
            fe_sub(&t, &a[j], &b[j]);
            fe_sq(&e, &t);
            bad += !fe_equal(&e, &got[1][j]);
            fe_mul(&e, &a[j], &b[j]);
            bad += !fe_equal(&e, &got[2][j]);
            fe_sq(&e, &a[j]);
            bad += !fe_equal(&e, &got[3][j]);
        }
        /* The point operations: P = (a0 : a1 : a2 : a3) need not be on the curve for the
         * formulas to be compared with the radix-2^51 ones. */
        ge_p3 p = {a[0], a[1], a[2], a[3]}, q = {b[0], b[1], b[2], b[3]};
        bad += point_ops_mismatches(&p, &q);
    }
    return bad;
}
#endif
