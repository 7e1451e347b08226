/* Ed25519 verification with AVX-512 IFMA, radix 2^52 in eight lanes, for the two largest costs
 * of a batch:
 *   - the exponentiations of point decompression, sixteen at a time;
 *   - Pippenger's multi-scalar multiplication with one window per lane: each point is added to
 *     the buckets of eight windows at once (gathered and scattered per lane, so lanes never share
 *     a bucket), and the eight bucket sums run side by side too.
 * Everything else is the radix-2^51 kernel. Selected only when the CPU has AVX-512 IFMA; the x86
 * guard keeps aarch64 builds working. */
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx512ifma,bmi2,adx")
#include "ed25519/fe52_ifma.h"
#include "ed25519/ge.h"
#include "ed25519/scalar.h"
#include "ed25519/ed25519.h"
#include "ed25519/sha512_x8.h"

/* FE52_GROUPS * 8 exponentiations per pass; a short last pass repeats its first element,
 * except that up to four leftovers are cheaper on the scalar path. */
static void pow_many_ifma(fe51 *out, const fe51 *in, size_t count) {
    const size_t per_pass = 8 * FE52_GROUPS;
    for (size_t first = 0; first < count; first += per_pass) {
        if (count - first <= 4) {
            fe51 base[4] = {{{0}}}, pow[4];
            for (size_t j = 0; j < 4; j++) base[j] = in[first + j < count ? first + j : first];
            fe_pow22523_x4(pow, base);
            for (size_t j = 0; first + j < count; j++) out[first + j] = pow[j];
            break;
        }
        fe51 base[8 * FE52_GROUPS], pow[8 * FE52_GROUPS];
        fe52x8 v[FE52_GROUPS], r[FE52_GROUPS];
        for (size_t j = 0; j < per_pass; j++) base[j] = in[first + j < count ? first + j : first];
        for (int g = 0; g < FE52_GROUPS; g++) fe52x8_from_fe51(&v[g], base + 8 * g);
        fe52x8_pow22523_g(r, v);
        for (int g = 0; g < FE52_GROUPS; g++) fe52x8_to_fe51(pow + 8 * g, &r[g]);
        for (size_t j = 0; j < per_pass && first + j < count; j++) out[first + j] = pow[j];
    }
}

static int msm_pippenger_ifma(ge_p3 *out, const ge_niels *points, const sc256 *scalars, size_t n,
                              int threads);
struct prepared_avx512;
static int challenges_x8(struct prepared_avx512 *prep, const size_t *idx, size_t count,
                         const engine_ed25519_item *items);

/* The single check (and a bisection's lone entries) in the AVX2 parallel form of
 * ed25519_avx2.c: its four-lane doublings and additions beat radix 2^51 on IFMA CPUs too. */
#define ED_SINGLE_CHECK engine_ed25519_single_check_avx2v
#define ED_POW_MANY pow_many_ifma
#define ED_MSM_PIPPENGER msm_pippenger_ifma
#define ED_MSM_KIND ED_MSM_IFMA
#define ED_CHALLENGES challenges_x8
#define ED_SUFFIX avx512
#include "ed25519/ed25519_verify_template.h"

/* Bucket storage: [bucket][coordinate X Y Z T][limb][lane], 160 words per bucket. Bucket 0
 * takes the additions of lanes whose digit is 0 and is never read. */
#define BUCKET_WORDS 160
#define POINT_WORDS 20 /* ypx, ymx, xy2d, -xy2d: five limbs each */

/* Window width from a cost model in gathered mixed additions: per group of eight windows, one
 * per point whose digits there are not all zero (128-bit coefficients have none above bit 128),
 * plus two bucket additions per bucket, each worth about two mixed additions (measured). The
 * groups are pool tasks, so with several threads the cost is the busiest thread's share
 * (groups handed out in order to the least loaded thread, as the pool does). */
static int ifma_window(const sc256 *scalars, size_t n, int threads) {
    size_t short_count = 0;
    for (size_t i = 0; i < n; i++) short_count += (scalars[i].v[2] | scalars[i].v[3]) == 0;
    int workers = threads < 1 ? 1 : threads > 8 ? 8 : threads;
    int best_c = 4;
    double best = 1e300;
    for (int c = 4; c <= 14; c++) {
        int groups = ((253 + c) / c + 1 + 7) / 8;
        double load[8] = {0};
        for (int g = 0; g < groups; g++) {
            size_t active = n - short_count + (g * 8 * c <= 129 ? short_count : 0);
            int least = 0;
            for (int w = 1; w < workers; w++) least = load[w] < load[least] ? w : least;
            load[least] += (double)active + (double)(1 << (c - 1)) * 4.0;
        }
        double cost = 0;
        for (int w = 0; w < workers; w++) cost = load[w] > cost ? load[w] : cost;
        if (cost < best) {
            best = cost;
            best_c = c;
        }
    }
    return best_c;
}

static void point_words(uint64_t w[POINT_WORDS], const ge_niels *p) {
    fe51 neg;
    fe_neg(&neg, &p->xy2d);
    fe52_limbs_from_fe51(w, &p->ypx);
    fe52_limbs_from_fe51(w + 5, &p->ymx);
    fe52_limbs_from_fe51(w + 10, &p->xy2d);
    fe52_limbs_from_fe51(w + 15, &neg);
}

static void gather_p3(ge52x8_p3 *p, const uint64_t *buckets, __m512i vindex) {
    fe52x8 *coords[4] = {&p->X, &p->Y, &p->Z, &p->T};
    for (int c = 0; c < 4; c++)
        for (int k = 0; k < 5; k++)
            coords[c]->l[k] = _mm512_i64gather_epi64(vindex, buckets + c * 40 + k * 8, 8);
}

static void scatter_p3(uint64_t *buckets, __m512i vindex, const ge52x8_p3 *p) {
    const fe52x8 *coords[4] = {&p->X, &p->Y, &p->Z, &p->T};
    for (int c = 0; c < 4; c++)
        for (int k = 0; k < 5; k++)
            _mm512_i64scatter_epi64(buckets + c * 40 + k * 8, vindex, coords[c]->l[k], 8);
}

static void load_p3(ge52x8_p3 *p, const uint64_t *bucket) {
    fe52x8 *coords[4] = {&p->X, &p->Y, &p->Z, &p->T};
    for (int c = 0; c < 4; c++)
        for (int k = 0; k < 5; k++) coords[c]->l[k] = _mm512_load_si512(bucket + c * 40 + k * 8);
}

static void store_p3(uint64_t *bucket, const ge52x8_p3 *p) {
    const fe52x8 *coords[4] = {&p->X, &p->Y, &p->Z, &p->T};
    for (int c = 0; c < 4; c++)
        for (int k = 0; k < 5; k++) _mm512_store_si512(bucket + c * 40 + k * 8, coords[c]->l[k]);
}

/* The eight lanes of p as radix-2^51 points. */
static void lanes_to_p3(ge_p3 out[8], const ge52x8_p3 *p) {
    fe51 x[8], y[8], z[8], t[8];
    fe52x8_to_fe51(x, &p->X);
    fe52x8_to_fe51(y, &p->Y);
    fe52x8_to_fe51(z, &p->Z);
    fe52x8_to_fe51(t, &p->T);
    for (int l = 0; l < 8; l++) {
        out[l].X = x[l];
        out[l].Y = y[l];
        out[l].Z = z[l];
        out[l].T = t[l];
    }
}

/* Add every point, with its digit of each of eight windows, into those windows' buckets. */
static void fill_buckets(uint64_t *buckets, const uint64_t *words, const int16_t *digits,
                         size_t n, size_t stride, size_t first_window) {
    const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i bucket_words = _mm512_set1_epi64(BUCKET_WORDS);
    for (size_t i = 0; i < n; i++) {
        __m128i d16 = _mm_loadu_si128((const __m128i *)(digits + i * stride + first_window));
        __m512i d = _mm512_cvtepi16_epi64(d16);
        if (_mm512_test_epi64_mask(d, d) == 0) continue;
        __mmask8 neg = _mm512_movepi64_mask(d);
        __m512i vindex = _mm512_add_epi64(_mm512_mullo_epi64(_mm512_abs_epi64(d), bucket_words),
                                          lane);
        const uint64_t *w = words + i * POINT_WORDS;
        ge52x8_niels q;
        for (int k = 0; k < 5; k++) {
            __m512i ypx = _mm512_set1_epi64((long long)w[k]);
            __m512i ymx = _mm512_set1_epi64((long long)w[5 + k]);
            q.ypx.l[k] = _mm512_mask_blend_epi64(neg, ypx, ymx);
            q.ymx.l[k] = _mm512_mask_blend_epi64(neg, ymx, ypx);
            q.xy2d.l[k] = _mm512_mask_blend_epi64(neg, _mm512_set1_epi64((long long)w[10 + k]),
                                                  _mm512_set1_epi64((long long)w[15 + k]));
        }
        ge52x8_p3 acc;
        gather_p3(&acc, buckets, vindex);
        ge52x8_madd(&acc, &acc, &q);
        scatter_p3(buckets, vindex, &acc);
    }
}

/* sum_b b * bucket[b] for each lane, by running sums from the top bucket down. */
static void sum_buckets(ge52x8_p3 *sum, const uint64_t *buckets, size_t half, const fe52x8 *d2) {
    ge52x8_p3 running, b;
    ge52x8_cached c;
    ge52x8_identity(&running);
    ge52x8_identity(sum);
    for (size_t j = half; j >= 1; j--) {
        load_p3(&b, buckets + j * BUCKET_WORDS);
        ge52x8_to_cached(&c, &b, d2);
        ge52x8_add(&running, &running, &c);
        ge52x8_to_cached(&c, &running, d2);
        ge52x8_add(sum, sum, &c);
    }
}

/* Digits and radix-2^52 words of every point, in ranges (pool tasks). */
typedef struct {
    const ge_niels *points;
    const sc256 *scalars;
    int16_t *digits;
    uint64_t *words;
    size_t n, stride, windows;
    int c;
    size_t ranges;
} inputs_ctx;

static void inputs_task(void *arg, size_t r) {
    inputs_ctx *ctx = (inputs_ctx *)arg;
    size_t lo = ctx->n * r / ctx->ranges, hi = ctx->n * (r + 1) / ctx->ranges;
    for (size_t i = lo; i < hi; i++) {
        signed_digits_avx512(ctx->digits + i * ctx->stride, &ctx->scalars[i], ctx->c,
                             (int)ctx->windows);
        point_words(ctx->words + i * POINT_WORDS, &ctx->points[i]);
    }
}

typedef struct {
    const uint64_t *words;
    const int16_t *digits;
    size_t n, stride, half;
    const fe52x8 *d2;
    ge_p3 *sums;
    int rc;
} ifma_ctx;

/* One group of eight windows with its own buckets (a pool task). */
static void ifma_group_task(void *arg, size_t g) {
    ifma_ctx *ctx = (ifma_ctx *)arg;
    uint64_t *buckets =
        (uint64_t *)aligned_alloc(64, (ctx->half + 1) * BUCKET_WORDS * sizeof(uint64_t));
    if (!buckets) {
        __atomic_store_n(&ctx->rc, ENGINE_ED25519_ENOMEM, __ATOMIC_RELAXED);
        return;
    }
    ge52x8_p3 identity, sum;
    ge52x8_identity(&identity);
    for (size_t b = 0; b <= ctx->half; b++) store_p3(buckets + b * BUCKET_WORDS, &identity);
    fill_buckets(buckets, ctx->words, ctx->digits, ctx->n, ctx->stride, 8 * g);
    sum_buckets(&sum, buckets, ctx->half, ctx->d2);
    lanes_to_p3(ctx->sums + 8 * g, &sum);
    free(buckets);
}

static int msm_pippenger_ifma(ge_p3 *out, const ge_niels *points, const sc256 *scalars,
                              size_t n, int threads) {
    int c = ifma_window(scalars, n, threads);
    size_t windows = (size_t)((253 + c) / c + 1);
    size_t stride = (windows + 7) / 8 * 8;
    int16_t *digits = (int16_t *)calloc(n * stride, sizeof(int16_t));
    uint64_t *words = (uint64_t *)malloc(n * POINT_WORDS * sizeof(uint64_t));
    ge_p3 *sums = (ge_p3 *)malloc(stride * sizeof(ge_p3));
    if (!digits || !words || !sums) {
        free(digits);
        free(words);
        free(sums);
        return ENGINE_ED25519_ENOMEM;
    }
    inputs_ctx in = {points, scalars, digits, words, n, stride, windows, c,
                     threads > 1 ? (size_t)threads * 4 : 1};
    engine_parallel_for(threads, in.ranges, inputs_task, &in);
    uint64_t d2_limbs[5];
    fe52_limbs_from_fe51(d2_limbs, &FE_D2);
    fe52x8 d2;
    fe52x8_set1(&d2, d2_limbs);
    ifma_ctx ctx = {words, digits, n, stride, (size_t)1 << (c - 1), &d2, sums,
                    ENGINE_ED25519_OK};
    engine_parallel_for(threads, stride / 8, ifma_group_task, &ctx);
    if (ctx.rc == ENGINE_ED25519_OK) horner_avx512(out, sums, (int)windows, c);
    free(digits);
    free(words);
    free(sums);
    return ctx.rc;
}

/* k = SHA-512(R || A || prefix || M) mod L for every live entry, eight hashes at a time. */
static int challenges_x8(struct prepared_avx512 *prep_, const size_t *idx, size_t count,
                         const engine_ed25519_item *items) {
    prepared_avx512 *prep = (prepared_avx512 *)prep_;
    size_t total = 0;
    for (size_t j = 0; j < count; j++) {
        const engine_ed25519_item *it = &items[idx[j]];
        total += sha512_pad_blocks(64 + it->prefix_len + it->msg_len) * 128;
    }
    uint8_t *padded = (uint8_t *)malloc(total ? total : 1);
    if (!padded) return 0;
    for (size_t first = 0; first < count; first += 8) {
        const uint8_t *msgs[8];
        size_t blocks[8];
        uint8_t digests[8][64];
        uint8_t *cursor = padded;
        for (size_t l = 0; l < 8; l++) {
            if (first + l >= count) {
                msgs[l] = msgs[0];
                blocks[l] = 0;
                continue;
            }
            const engine_ed25519_item *it = &items[idx[first + l]];
            const uint8_t *pieces[4] = {it->sig, it->pk, it->prefix, it->msg};
            size_t lens[4] = {32, 32, it->prefix_len, it->msg_len};
            sha512_pad(cursor, pieces, lens);
            msgs[l] = cursor;
            blocks[l] = sha512_pad_blocks(64 + it->prefix_len + it->msg_len);
            cursor += blocks[l] * 128;
        }
        sha512_x8(digests, msgs, blocks);
        for (size_t l = 0; l < 8 && first + l < count; l++)
            engine_sc_reduce512(&prep[idx[first + l]].k, digests[l]);
    }
    free(padded);
    return 1;
}
/* Self-check of the IFMA field against the radix-2^51 one on limbs at the edges (0, 1, 2^52 - 1,
 * 2^52 - 2, values that make sums ripple through every limb and wrap past 2^260), where the rare
 * second carry pass runs. Returns the number of wrong results or out-of-range limbs (a test
 * hook: the vectors rarely reach these corners). */
int engine_ed25519_selftest_ifma(uint64_t seed, int iterations) {
    const uint64_t m = FE52_MASK;
    const uint64_t edges[6] = {m, 0, 1, m - 1, m - 607, 608};
    uint64_t x = seed | 1;
    int bad = 0;
    for (int it = 0; it < iterations; it++) {
        uint64_t la[5][8], lb[5][8];
        for (int j = 0; j < 8; j++) {
            for (int k = 0; k < 5; k++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
                la[k][j] = (x % 7) < 6 ? edges[x % 6] : (x >> 12) & m;
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                lb[k][j] = (x % 7) < 6 ? edges[(x >> 3) % 6] : (x >> 12) & m;
            }
        }
        fe52x8 a, b, r[3];
        for (int k = 0; k < 5; k++) {
            a.l[k] = _mm512_loadu_si512((const void *)la[k]);
            b.l[k] = _mm512_loadu_si512((const void *)lb[k]);
        }
        fe52x8_add(&r[0], &a, &b);
        fe52x8_sub(&r[1], &a, &b);
        fe52x8_mul(&r[2], &a, &b);
        fe51 fa[8], fb[8], fr[3][8];
        fe52x8_to_fe51(fa, &a);
        fe52x8_to_fe51(fb, &b);
        for (int op = 0; op < 3; op++) {
            uint64_t limbs[5][8];
            for (int k = 0; k < 5; k++) {
                _mm512_storeu_si512((void *)limbs[k], r[op].l[k]);
                for (int j = 0; j < 8; j++) bad += limbs[k][j] > m;
            }
            fe52x8_to_fe51(fr[op], &r[op]);
        }
        for (int j = 0; j < 8; j++) {
            fe51 e;
            fe_add(&e, &fa[j], &fb[j]);
            bad += !fe_equal(&e, &fr[0][j]);
            fe_sub(&e, &fa[j], &fb[j]);
            bad += !fe_equal(&e, &fr[1][j]);
            fe_mul(&e, &fa[j], &fb[j]);
            bad += !fe_equal(&e, &fr[2][j]);
        }
    }
    return bad;
}
#endif
