/* The body of the Ed25519 verification kernel: a template, not a header. Each ISA file
 * (ed25519_portable.c, ed25519_avx2.c, ed25519_avx512.c) defines ED_SUFFIX, optionally its own
 * replacements for the hot parts (ED_POW_MANY, ED_MSM_PIPPENGER, ED_CHALLENGES), and includes
 * this file once under its own target pragma, so the one algorithm is written once and compiled
 * once per instruction set with every static function renamed by ED_NAME(). It keeps the .h
 * suffix so that the build (setup.py depends, Makefile SOURCES) rebuilds on a change to it.
 *
 * Theory of operation, per chunk of items (one thread):
 *   1. prepare: S < L, decompress A (or copy it from the key cache) and R, k = SHA-512(R||A||M)
 *      mod L. An entry failing here is invalid and leaves the batch.
 *   2. one random linear combination of the remaining entries, with fresh 128-bit z_i from the
 *      OS CSPRNG: [8]([sum z_i S_i]B - sum [z_i]R_i - sum [z_i k_i]A_i) == O, computed as a
 *      multi-scalar multiplication (Straus below ed_pippenger_min_points points, else
 *      Pippenger). Valid entries always pass (the cofactor kills every torsion defect).
 *   3. when it fails, bisect with fresh coefficients; a lone entry gets the single cofactored
 *      check, so every verdict equals what single verification says.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/pool.h"
#include "ed25519/ed25519_impl.h"
#include "ed25519/ge.h"
#include "ed25519/scalar.h"
#include "ed25519/sha512.h"

#define ED_CAT2(a, b) a##_##b
#define ED_CAT(a, b) ED_CAT2(a, b)
#define ED_NAME(name) ED_CAT(name, ED_SUFFIX)

/* Odd multiples [1, 3, ..., 127]B for width-8 NAF of the base-point scalar. */
#define BASE_TABLE_SIZE 64

static ge_niels ED_NAME(g_base_table)[BASE_TABLE_SIZE];
/* and of [2^128]B, for split scalars */
static ge_niels ED_NAME(g_base_hi_table)[BASE_TABLE_SIZE];
static pthread_once_t ED_NAME(g_base_once) = PTHREAD_ONCE_INIT;

static const fe51 ED_NAME(BASE_X) = {{0x62d608f25d51a, 0x412a4b4f6592a, 0x75b7171a4b31d,
                                      0x1ff60527118fe, 0x216936d3cd6e5}};
static const fe51 ED_NAME(BASE_Y) = {{0x6666666666658, 0x4cccccccccccc, 0x1999999999999,
                                      0x3333333333333, 0x6666666666666}};

static void ED_NAME(p3_to_affine)(fe51 *x, fe51 *y, const ge_p3 *p) {
    fe51 zi;
    fe_invert(&zi, &p->Z);
    fe_mul(x, &p->X, &zi);
    fe_mul(y, &p->Y, &zi);
}

/* Odd multiples [1, 3, ..., 2 size - 1]P as affine niels points. */
static void ED_NAME(odd_multiples_niels)(ge_niels *table, int size, const ge_p3 *p) {
    ge_p3 p2, cur = *p;
    ge_p1p1 t;
    ge_cached p2c;
    ge_p3_dbl(&t, p);
    ge_p1p1_to_p3(&p2, &t);
    ge_p3_to_cached(&p2c, &p2);
    for (int i = 0; i < size; i++) {
        fe51 x, y;
        ED_NAME(p3_to_affine)(&x, &y, &cur);
        ge_niels_from_affine(&table[i], &x, &y);
        ge_add(&t, &cur, &p2c);
        ge_p1p1_to_p3(&cur, &t);
    }
}

static void ED_NAME(dbl_times)(ge_p3 *r, const ge_p3 *p, int times) {
    ge_p1p1 t;
    ge_p2 q;
    ge_p3_to_p2(&q, p);
    for (int i = 0; i < times - 1; i++) {
        ge_p2_dbl(&t, &q);
        ge_p1p1_to_p2(&q, &t);
    }
    ge_p2_dbl(&t, &q);
    ge_p1p1_to_p3(r, &t);
}

static void ED_NAME(base_init)(void) {
    ge_p3 b, b_hi;
    ge_p3_from_niels_affine(&b, &ED_NAME(BASE_X), &ED_NAME(BASE_Y));
    ED_NAME(odd_multiples_niels)(ED_NAME(g_base_table), BASE_TABLE_SIZE, &b);
    ED_NAME(dbl_times)(&b_hi, &b, 128);
    ED_NAME(odd_multiples_niels)(ED_NAME(g_base_hi_table), BASE_TABLE_SIZE, &b_hi);
}

static const ge_niels *ED_NAME(base_table)(void) {
    pthread_once(&ED_NAME(g_base_once), ED_NAME(base_init));
    return ED_NAME(g_base_table);
}

/* ---- scalar recoding ------------------------------------------------------------------ */

/* Width-w NAF of s < 2^253: digits odd with |d| <= 2^(w-1) - 1, or 0, at least w - 1 zeros
 * after each non-zero one. One pass, reading w bits at a time where a digit starts and jumping
 * over runs of zero bits (the bit-by-bit merging this replaced cost about 3 % of a single check;
 * a 128-bit coefficient of a batch has half its positions in the run above its top bit).
 * Returns the index of the top nonzero digit, or -1. */
static int ED_NAME(wnaf)(int8_t naf[256], const sc256 *s, int w) {
    const uint64_t limbs[5] = {s->v[0], s->v[1], s->v[2], s->v[3], 0};
    const int width = 1 << w, half = width >> 1;
    const uint64_t mask = (uint64_t)width - 1;
    int carry = 0, top = -1;
    memset(naf, 0, 256);
    for (int pos = 0; pos < 256;) {
        int limb = pos >> 6, shift = pos & 63;
        uint64_t bits = limbs[limb] >> shift;
        if (!carry && !(bits & 1)) {
            /* a run of zero digits: on to the next set bit (or the next limb) */
            pos = bits ? pos + __builtin_ctzll(bits) : (limb + 1) << 6;
            continue;
        }
        if (shift + w > 64) bits |= limbs[limb + 1] << (64 - shift);
        int window = carry + (int)(bits & mask);
        if ((window & 1) == 0) {
            /* an even window: this digit is 0 and the carry moves on to the next bit */
            pos++;
            continue;
        }
        if (window < half) {
            naf[pos] = (int8_t)window;
            carry = 0;
        } else {
            naf[pos] = (int8_t)(window - width);
            carry = 1;
        }
        top = pos;
        pos += w;
    }
    return top;
}

/* ---- single verification ----------------------------------------------------------------- */

/* A prepared entry: negated affine A and R, challenge k and S, and the key's encoding (entries
 * of one key share one point in the batch equation). */
typedef struct ED_NAME(prepared) {
    ge_niels neg_a, neg_r;
    sc256 k, s;
    const uint8_t *pk;
} ED_NAME(prepared);

/* The affine point of a niels form, negated when neg, as an extended point: (y+x) - (y-x) = 2x
 * and (y+x) + (y-x) = 2y, so (4x : 4y : 4 : 4xy) needs no division by 2. */
static void ED_NAME(p3_from_niels_signed)(ge_p3 *r, const ge_niels *p, int neg) {
    fe51 two_x, two_y;
    if (neg) fe_sub(&two_x, &p->ymx, &p->ypx);
    else fe_sub(&two_x, &p->ypx, &p->ymx);
    fe_add(&two_y, &p->ypx, &p->ymx);
    fe_mul(&two_x, &two_x, &FE_ONE);
    fe_mul(&two_y, &two_y, &FE_ONE);
    fe_add(&r->X, &two_x, &two_x);
    fe_add(&r->Y, &two_y, &two_y);
    r->Z = (fe51){{4, 0, 0, 0, 0}};
    fe_mul(&r->T, &two_x, &two_y);
}

static void ED_NAME(p3_from_niels)(ge_p3 *r, const ge_niels *p) {
    ED_NAME(p3_from_niels_signed)(r, p, 0);
}

static void ED_NAME(table_from_p3)(ge_cached table[ED_KEY_TABLE_SIZE], const ge_p3 *p) {
    ge_p3 p2x, cur = *p;
    ge_p1p1 t;
    ge_cached c;
    ge_p3_to_cached(&table[0], p);
    ge_p3_dbl(&t, p);
    ge_p1p1_to_p3(&p2x, &t);
    ge_p3_to_cached(&c, &p2x);
    for (int i = 1; i < ED_KEY_TABLE_SIZE; i++) {
        ge_add(&t, &cur, &c);
        ge_p1p1_to_p3(&cur, &t);
        ge_p3_to_cached(&table[i], &cur);
    }
}

static void ED_NAME(table_from_niels)(ge_cached table[ED_KEY_TABLE_SIZE], const ge_niels *p) {
    ge_p3 p3;
    ED_NAME(p3_from_niels)(&p3, p);
    ED_NAME(table_from_p3)(table, &p3);
}

/* Odd multiples of -[2^128]A, for split-scalar single checks of a cached key. */
static void ED_NAME(hi_table_from_niels)(ge_cached table[ED_KEY_TABLE_SIZE], const ge_niels *p) {
    ge_p3 p3, hi;
    ED_NAME(p3_from_niels)(&p3, p);
    ED_NAME(dbl_times)(&hi, &p3, 128);
    ED_NAME(table_from_p3)(table, &hi);
}

#ifdef ED_SINGLE_CHECK
/* the file supplies the joint multiplication of a single check */
#define ED_NAME_SINGLE_CHECK ED_SINGLE_CHECK
#else
/* [8]([s]B + [k](-A) + (-R)) == O. With only the table of -A the scalars are used whole (253
 * doublings); with the table of -[2^128]A as well (cached keys), each scalar is split into
 * 128-bit halves against A, [2^128]A, B and [2^128]B, which halves the doublings. */
typedef struct {
    int8_t naf[256];
    const ge_niels *niels;   /* affine odd multiples (base point), or */
    const ge_cached *cached; /* projective odd multiples (keys) */
} ED_NAME(term);

static void ED_NAME(half)(sc256 *lo, sc256 *hi, const sc256 *s) {
    *lo = (sc256){{s->v[0], s->v[1], 0, 0}};
    *hi = (sc256){{s->v[2], s->v[3], 0, 0}};
}

/* sum of the terms' multiples by a shared-doubling scan from the top digit. Results stay in
 * completed form until the next operation says what it needs: T (4M) only before an addition,
 * (X : Y : Z) (3M) before a doubling. */
static void ED_NAME(joint_mult)(ge_p3 *acc, const ED_NAME(term) *terms, int count, int top) {
    ge_p2 q;
    ge_p1p1 t;
    ge_p3_identity(acc);
    if (top < 0) return;
    ge_p3_to_p2(&q, acc);
    for (int i = top; i >= 0; i--) {
        ge_p2_dbl(&t, &q);
        for (int j = 0; j < count; j++) {
            int d = terms[j].naf[i];
            if (!d) continue;
            ge_p1p1_to_p3(acc, &t);
            if (terms[j].niels) {
                if (d > 0) ge_madd(&t, acc, &terms[j].niels[d >> 1]);
                else ge_msub(&t, acc, &terms[j].niels[(-d) >> 1]);
            } else {
                if (d > 0) ge_add(&t, acc, &terms[j].cached[d >> 1]);
                else ge_sub(&t, acc, &terms[j].cached[(-d) >> 1]);
            }
        }
        if (i > 0) ge_p1p1_to_p2(&q, &t);
    }
    ge_p1p1_to_p3(acc, &t);
}

static int ED_NAME(single_check)(const ed_key *key, const sc256 *k, const sc256 *s,
                                 const ge_niels *neg_r) {
    ED_NAME(term) terms[4];
    sc256 parts[4];
    int count, top = -1;
    if (key->has_hi) {
        ED_NAME(half)(&parts[0], &parts[1], s);
        ED_NAME(half)(&parts[2], &parts[3], k);
        terms[0].niels = ED_NAME(base_table)();
        terms[1].niels = ED_NAME(g_base_hi_table);
        terms[2].niels = terms[3].niels = NULL;
        terms[2].cached = key->neg_table;
        terms[3].cached = key->neg_hi_table;
        count = 4;
    } else {
        parts[0] = *s;
        parts[2] = *k;
        terms[0].niels = ED_NAME(base_table)();
        terms[1].niels = NULL;
        terms[1].cached = key->neg_table;
        parts[1] = parts[2];
        count = 2;
    }
    for (int j = 0; j < count; j++) {
        int t = ED_NAME(wnaf)(terms[j].naf, &parts[j], terms[j].niels ? 8 : 5);
        if (t > top) top = t;
    }
    ge_p3 acc;
    ge_p1p1 t;
    ED_NAME(joint_mult)(&acc, terms, count, top);
    ge_madd(&t, &acc, neg_r);
    ge_p1p1_to_p3(&acc, &t);
    return ge_p3_is_small_order_identity_x8(&acc);
}
#define ED_NAME_SINGLE_CHECK ED_NAME(single_check)
#endif

/* ---- preparation --------------------------------------------------------------------------- */

static void ED_NAME(challenge)(sc256 *k, const engine_ed25519_item *it) {
    engine_sha512_ctx h;
    uint8_t digest[64];
    engine_sha512_init(&h);
    engine_sha512_update(&h, it->sig, 32);
    engine_sha512_update(&h, it->pk, 32);
    if (it->prefix_len) engine_sha512_update(&h, it->prefix, it->prefix_len);
    engine_sha512_update(&h, it->msg, it->msg_len);
    engine_sha512_final(&h, digest);
    engine_sc_reduce512(k, digest);
}

/* Negated key with its tables for a single check, from the cache or computed: a key not in the
 * cache gets its table; a key seen before gets whatever it still lacks. */
static int ED_NAME(load_key)(ed_key *key, const uint8_t pk[32]) {
    int hit = ed_cache_get(pk, key, 1);
    if (hit && key->has_table && key->has_hi) return 1;
    if (!hit) {
        fe51 x, y;
        if (!ge_decompress(&x, &y, pk)) return 0;
        ge_niels a;
        ge_niels_from_affine(&a, &x, &y);
        ge_niels_neg(&key->neg_affine, &a);
        key->has_table = key->has_hi = 0;
    } else if (!key->has_hi) {
        ED_NAME(hi_table_from_niels)(key->neg_hi_table, &key->neg_affine);
        key->has_hi = 1;
    }
    if (!key->has_table) ED_NAME(table_from_niels)(key->neg_table, &key->neg_affine);
    key->has_table = 1;
    ed_cache_put(pk, key);
    return 1;
}

static void ED_NAME(negated_niels)(ge_niels *out, const fe51 *x, const fe51 *y) {
    ge_niels p;
    ge_niels_from_affine(&p, x, y);
    ge_niels_neg(out, &p);
}

/* out[j] = in[j]^((p-5)/8) for count elements: the costly part of decompression. A file may
 * supply ED_POW_MANY (8 lanes of IFMA); the default interleaves four scalar chains, since the
 * 250 dependent squarings of one chain leave the multiplier idle most of the time. */
#ifdef ED_POW_MANY
#define ED_NAME_POW_MANY ED_POW_MANY
#else
static void ED_NAME(pow_many)(fe51 *out, const fe51 *in, size_t count) {
    for (size_t first = 0; first < count; first += 4) {
        fe51 base[4] = {{{0}}}, pow[4];
        for (size_t j = 0; j < 4; j++) base[j] = in[first + j < count ? first + j : first];
        fe_pow22523_x4(pow, base);
        for (size_t j = 0; j < 4 && first + j < count; j++) out[first + j] = pow[j];
    }
}
#define ED_NAME_POW_MANY ED_NAME(pow_many)
#endif

/* Decompress enc[j] for every job; ok[j] = 0 where there is no such point. */
static int ED_NAME(decompress_many)(ge_niels *neg_out, uint8_t *ok, const uint8_t *const *enc,
                                    size_t count) {
    ge_decompress_state *st = (ge_decompress_state *)malloc((count ? count : 1) * sizeof *st);
    fe51 *base = (fe51 *)calloc(count ? count : 1, sizeof *base);
    fe51 *pow = (fe51 *)malloc((count ? count : 1) * sizeof *pow);
    if (!st || !base || !pow) {
        free(st);
        free(base);
        free(pow);
        return 0;
    }
    for (size_t j = 0; j < count; j++) {
        ge_decompress_begin(&st[j], enc[j]);
        base[j] = st[j].base;
    }
    ED_NAME_POW_MANY(pow, base, count);
    for (size_t j = 0; j < count; j++) {
        fe51 x, y;
        ok[j] = (uint8_t)ge_decompress_end(&x, &y, &st[j], &pow[j], enc[j]);
        if (ok[j]) ED_NAME(negated_niels)(&neg_out[j], &x, &y);
    }
    free(st);
    free(base);
    free(pow);
    return 1;
}

#define ED_JOB_IS_KEY ((size_t)1 << (sizeof(size_t) * 8 - 1))

/* Prepare items[0..n): range checks, keys from the cache or decompressed, R decompressed,
 * k hashed. Writes the live entries' indexes to idx and returns their count, or -1 when out
 * of memory. */
static long ED_NAME(prepare_all)(ED_NAME(prepared) *prep, size_t *idx,
                                 const engine_ed25519_item *items, size_t n) {
    /* Jobs: every live R, and every key missing from the cache (owner's top bit set). */
    const uint8_t **enc = (const uint8_t **)calloc(2 * n, sizeof *enc);
    size_t *owner = (size_t *)malloc(2 * n * sizeof *owner);
    ge_niels *points = (ge_niels *)malloc(2 * n * sizeof *points);
    uint8_t *ok = (uint8_t *)malloc(2 * n);
    uint8_t *live = (uint8_t *)malloc(n);
    long count = -1;
    if (!enc || !owner || !points || !ok || !live) goto done;
    size_t jobs = 0;
    for (size_t i = 0; i < n; i++) {
        const engine_ed25519_item *it = &items[i];
        live[i] = it->pk && engine_sc_is_canonical(it->sig + 32);
        if (!live[i]) continue;
        ed_key key;
        owner[jobs] = i;
        enc[jobs++] = it->sig;
        if (ed_cache_get(it->pk, &key, 0)) {
            prep[i].neg_a = key.neg_affine;
        } else {
            owner[jobs] = i | ED_JOB_IS_KEY;
            enc[jobs++] = it->pk;
        }
    }
    if (!ED_NAME(decompress_many)(points, ok, enc, jobs)) {
        count = -1;
        goto done;
    }
    for (size_t j = 0; j < jobs; j++) {
        size_t i = owner[j] & ~ED_JOB_IS_KEY;
        if (!ok[j]) {
            live[i] = 0;
        } else if (owner[j] & ED_JOB_IS_KEY) {
            ed_key key;
            key.neg_affine = points[j];
            key.has_table = key.has_hi = 0;
            prep[i].neg_a = points[j];
            ed_cache_put(items[i].pk, &key);
        } else {
            prep[i].neg_r = points[j];
        }
    }
    count = 0;
    for (size_t i = 0; i < n; i++) {
        if (!live[i]) continue;
        engine_sc_from_bytes(&prep[i].s, items[i].sig + 32);
        prep[i].pk = items[i].pk;
        idx[count++] = i;
    }
#ifdef ED_CHALLENGES
    if (!ED_CHALLENGES(prep, idx, (size_t)count, items)) count = -1;
#else
    for (long j = 0; j < count; j++) ED_NAME(challenge)(&prep[idx[j]].k, &items[idx[j]]);
#endif
done:
    free(enc);
    free(owner);
    free(points);
    free(ok);
    free(live);
    return count;
}

static int ED_NAME(verify_item)(const engine_ed25519_item *it) {
    if (!it->pk || !engine_sc_is_canonical(it->sig + 32)) return 0;
    ed_key key;
    if (!ED_NAME(load_key)(&key, it->pk)) return 0;
    fe51 x, y;
    if (!ge_decompress(&x, &y, it->sig)) return 0;
    ge_niels neg_r;
    ED_NAME(negated_niels)(&neg_r, &x, &y);
    sc256 k, s;
    engine_sc_from_bytes(&s, it->sig + 32);
    ED_NAME(challenge)(&k, it);
    return ED_NAME_SINGLE_CHECK(&key, &k, &s, &neg_r);
}

/* ---- multi-scalar multiplication ------------------------------------------------------------ */

#ifdef ED_MSM_STRAUS
#define ED_NAME_MSM_STRAUS ED_MSM_STRAUS
#else
/* sum [scalars[i]] points[i] for affine points; Straus with per-point width-5 tables. */
static int ED_NAME(msm_straus)(ge_p3 *out, const ge_niels *points, const sc256 *scalars,
                               size_t n) {
    ge_cached *tables = (ge_cached *)malloc(n * ED_KEY_TABLE_SIZE * sizeof(ge_cached));
    int8_t *nafs = (int8_t *)malloc(n * 256);
    if (!tables || !nafs) {
        free(tables);
        free(nafs);
        return ENGINE_ED25519_ENOMEM;
    }
    int top = -1;
    for (size_t i = 0; i < n; i++) {
        ED_NAME(table_from_niels)(tables + i * ED_KEY_TABLE_SIZE, &points[i]);
        int t = ED_NAME(wnaf)(nafs + i * 256, &scalars[i], 5);
        if (t > top) top = t;
    }
    /* Completed results are converted lazily, as in joint_mult. */
    ge_p3 acc;
    ge_p1p1 t;
    ge_p2 acc2;
    ge_p3_identity(&acc);
    ge_p3_to_p2(&acc2, &acc);
    for (int b = top; b >= 0; b--) {
        ge_p2_dbl(&t, &acc2);
        for (size_t i = 0; i < n; i++) {
            int d = nafs[i * 256 + b];
            if (!d) continue;
            ge_p1p1_to_p3(&acc, &t);
            if (d > 0) ge_add(&t, &acc, &tables[i * ED_KEY_TABLE_SIZE + (d >> 1)]);
            else ge_sub(&t, &acc, &tables[i * ED_KEY_TABLE_SIZE + ((-d) >> 1)]);
        }
        if (b > 0) ge_p1p1_to_p2(&acc2, &t);
    }
    if (top >= 0) ge_p1p1_to_p3(&acc, &t);
    *out = acc;
    free(tables);
    free(nafs);
    return ENGINE_ED25519_OK;
}
#define ED_NAME_MSM_STRAUS ED_NAME(msm_straus)
#endif

/* Signed radix-2^c digits in [-2^(c-1), 2^(c-1)] of s < 2^253, windows digits. */
static void ED_NAME(signed_digits)(int16_t *digits, const sc256 *s, int c, int windows) {
    int carry = 0;
    int half = 1 << (c - 1);
    for (int w = 0; w < windows; w++) {
        int pos = w * c;
        uint64_t bits = 0;
        if (pos < 256) {
            int limb = pos >> 6, shift = pos & 63;
            bits = s->v[limb] >> shift;
            if (shift + c > 64 && limb < 3) bits |= s->v[limb + 1] << (64 - shift);
        }
        int d = (int)(bits & (uint64_t)((1 << c) - 1)) + carry;
        carry = d > half;
        if (d > half) d -= 1 << c;
        digits[w] = (int16_t)d;
    }
}

/* Horner over per-window sums, top window first: acc = 2^c acc + sums[w]. */
static void ED_NAME(horner)(ge_p3 *out, const ge_p3 *sums, int windows, int c) {
    ge_p3 acc = sums[windows - 1];
    ge_p1p1 t;
    ge_p2 q;
    ge_cached cached;
    for (int w = windows - 2; w >= 0; w--) {
        ge_p3_to_p2(&q, &acc);
        for (int j = 0; j < c - 1; j++) {
            ge_p2_dbl(&t, &q);
            ge_p1p1_to_p2(&q, &t);
        }
        ge_p2_dbl(&t, &q);
        ge_p1p1_to_p3(&acc, &t);
        ge_p3_to_cached(&cached, &sums[w]);
        ge_add(&t, &acc, &cached);
        ge_p1p1_to_p3(&acc, &t);
    }
    *out = acc;
}

/* The window width c in [4, c_max] for which cost(c, arg) is least. */
static __attribute__((unused)) int ED_NAME(cheapest_window)(double (*cost)(int c, const void *arg),
                                                            const void *arg, int c_max) {
    int best_c = 4;
    double best = 1e300;
    for (int c = 4; c <= c_max; c++) {
        double v = cost(c, arg);
        if (v < best) {
            best = v;
            best_c = c;
        }
    }
    return best_c;
}

/* A file that supplies ED_MSM_PIPPENGER names its kind (ED_MSM_KIND) for the crossover. */
#ifndef ED_MSM_KIND
#define ED_MSM_KIND ED_MSM_SCALAR
#endif
#ifndef ED_MSM_PIPPENGER
/* Window width for Pippenger over n points of about 253 bits, from a cost model counted in
 * field multiplications: per window n mixed additions (7M) plus 2^(c-1) bucket sums (2 x 9M). */
static double ED_NAME(pippenger_cost)(int c, const void *arg) {
    double n = (double)*(const size_t *)arg;
    return (double)((253 + c) / c) * (n * 7.0 + (double)(1 << (c - 1)) * 18.0 + c * 7.0);
}

static int ED_NAME(pippenger_window)(size_t n) {
    return ED_NAME(cheapest_window)(ED_NAME(pippenger_cost), &n, 15);
}

typedef struct {
    const ge_niels *points;
    const int16_t *digits;
    size_t n;
    int windows, c;
    ge_p3 *sums;
    int rc;
} ED_NAME(pippenger_ctx);

/* One window: its bucket sums, independent of every other window (a pool task). */
static void ED_NAME(pippenger_window_task)(void *arg, size_t w) {
    ED_NAME(pippenger_ctx) *ctx = (ED_NAME(pippenger_ctx) *)arg;
    size_t buckets_count = (size_t)1 << (ctx->c - 1);
    ge_p3 *buckets = (ge_p3 *)malloc(buckets_count * sizeof(ge_p3));
    uint8_t *used = (uint8_t *)calloc(buckets_count, 1);
    if (!buckets || !used) {
        free(buckets);
        free(used);
        __atomic_store_n(&ctx->rc, ENGINE_ED25519_ENOMEM, __ATOMIC_RELAXED);
        return;
    }
    ge_p1p1 t;
    ge_cached cached;
    for (size_t i = 0; i < ctx->n; i++) {
        int d = ctx->digits[i * (size_t)ctx->windows + w];
        if (d == 0) continue;
        size_t b = (size_t)(d > 0 ? d : -d) - 1;
        if (!used[b]) {
            /* A bucket's first point is copied in (3M) rather than added to the identity. */
            ED_NAME(p3_from_niels_signed)(&buckets[b], &ctx->points[i], d < 0);
            used[b] = 1;
            continue;
        }
        if (d > 0) ge_madd(&t, &buckets[b], &ctx->points[i]);
        else ge_msub(&t, &buckets[b], &ctx->points[i]);
        ge_p1p1_to_p3(&buckets[b], &t);
    }
    /* sum_j (j+1) * bucket[j] by running sums from the top bucket down. */
    ge_p3 running, sum;
    int started = 0;
    ge_p3_identity(&running);
    ge_p3_identity(&sum);
    for (size_t j = buckets_count; j-- > 0;) {
        if (used[j]) {
            if (!started) {
                running = buckets[j];
                started = 1;
            } else {
                ge_p3_to_cached(&cached, &buckets[j]);
                ge_add(&t, &running, &cached);
                ge_p1p1_to_p3(&running, &t);
            }
        }
        if (started == 1) {
            sum = running; /* the first addition would be to the identity */
            started = 2;
        } else if (started) {
            ge_p3_to_cached(&cached, &running);
            ge_add(&t, &sum, &cached);
            ge_p1p1_to_p3(&sum, &t);
        }
    }
    ctx->sums[w] = sum;
    free(buckets);
    free(used);
}

/* Pippenger's method; the windows are independent pool tasks when threads > 1. */
static int ED_NAME(msm_pippenger)(ge_p3 *out, const ge_niels *points, const sc256 *scalars,
                                  size_t n, int threads) {
    int c = ED_NAME(pippenger_window)(n);
    int windows = (253 + c) / c + 1;
    int16_t *digits = (int16_t *)malloc(n * (size_t)windows * sizeof(int16_t));
    ge_p3 *sums = (ge_p3 *)malloc((size_t)windows * sizeof(ge_p3));
    if (!digits || !sums) {
        free(digits);
        free(sums);
        return ENGINE_ED25519_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        ED_NAME(signed_digits)(digits + i * (size_t)windows, &scalars[i], c, windows);
    ED_NAME(pippenger_ctx) ctx = {points, digits, n, windows, c, sums, ENGINE_ED25519_OK};
    engine_parallel_for(threads, (size_t)windows, ED_NAME(pippenger_window_task), &ctx);
    if (ctx.rc == ENGINE_ED25519_OK) ED_NAME(horner)(out, sums, windows, c);
    free(digits);
    free(sums);
    return ctx.rc;
}

#define ED_MSM_PIPPENGER ED_NAME(msm_pippenger)
#endif


/* ---- batch equation and bisection ------------------------------------------------------------ */

/* Points and scalars of the combination, built in ranges (pool tasks): z_i for -R_i at i, z_i k_i
 * for -A_i in zk (summed per key afterwards), and each range's share of sum z_i S_i. */
typedef struct {
    const ED_NAME(prepared) *prep;
    const size_t *idx;
    const uint8_t *z_bytes;
    ge_niels *points;
    sc256 *scalars;
    sc256 *zk;
    sc256 *b_parts;
    size_t n, ranges;
} ED_NAME(terms_ctx);

static void ED_NAME(terms_task)(void *arg, size_t r) {
    ED_NAME(terms_ctx) *ctx = (ED_NAME(terms_ctx) *)arg;
    size_t lo = ctx->n * r / ctx->ranges, hi = ctx->n * (r + 1) / ctx->ranges;
    sc256 b_part = {{0, 0, 0, 0}};
    for (size_t j = lo; j < hi; j++) {
        const ED_NAME(prepared) *p = &ctx->prep[ctx->idx[j]];
        sc256 z = {{0, 0, 0, 0}}, zs;
        memcpy(z.v, ctx->z_bytes + ED_COEFF_BYTES * j, ED_COEFF_BYTES);
        ctx->points[j] = p->neg_r;
        ctx->scalars[j] = z;
        engine_sc_mul(&ctx->zk[j], &z, &p->k);
        engine_sc_mul(&zs, &z, &p->s);
        engine_sc_add(&b_part, &b_part, &zs);
    }
    ctx->b_parts[r] = b_part;
}

/* Entries signed by one key share its point: [z_i k_i](-A) + [z_j k_j](-A) = [z_i k_i + z_j k_j]
 * (-A), so the equation has one A term per distinct key (the same sum, fewer points: a batch
 * of 20,000 transactions from 1,000 senders has 21,001 points instead of 40,001). Keys are
 * told apart by their 32-byte encodings (one point may have two encodings; those stay two
 * terms, which only costs their merge), found through an open-addressing table probed with the
 * key cache's keyed hash (a sender cannot make its keys collide). Writes each entry's key slot
 * and each slot's first entry; returns the number of distinct keys, or 0 when out of memory. */
static size_t ED_NAME(key_slots)(const ED_NAME(prepared) *prep, const size_t *idx, size_t n,
                                 uint32_t *slot, uint32_t *first) {
    if (n >= UINT32_MAX / 2) return 0; /* indexes are 32-bit (such a batch would not fit anyway) */
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    uint32_t *table = (uint32_t *)calloc(cap, sizeof *table); /* slot + 1; 0 = empty */
    if (!table) return 0;
    size_t keys = 0;
    for (size_t j = 0; j < n; j++) {
        const uint8_t *pk = prep[idx[j]].pk;
        size_t at = (size_t)ed_key_hash(pk) & (cap - 1);
        for (;;) {
            uint32_t t = table[at];
            if (t == 0) {
                table[at] = (uint32_t)keys + 1;
                first[keys] = (uint32_t)j;
                slot[j] = (uint32_t)keys++;
                break;
            }
            if (memcmp(prep[idx[first[t - 1]]].pk, pk, 32) == 0) {
                slot[j] = t - 1;
                break;
            }
            at = (at + 1) & (cap - 1);
        }
    }
    free(table);
    return keys;
}

/* The randomized cofactored equation over prepared entries idx[0..n). *ok = 1 if it holds. */
static int ED_NAME(batch_check)(const ED_NAME(prepared) *prep, const size_t *idx, size_t n,
                                int *ok, int threads) {
    size_t ranges = threads > 1 && n >= 64 ? (size_t)threads * 4 : 1;
    /* at most n + n + 1 points: -R_i, one -A per key, B */
    ge_niels *points = (ge_niels *)malloc((2 * n + 1) * sizeof(ge_niels));
    sc256 *scalars = (sc256 *)malloc((2 * n + 1) * sizeof(sc256));
    sc256 *zk = (sc256 *)malloc(n * sizeof(sc256));
    sc256 *b_parts = (sc256 *)malloc(ranges * sizeof(sc256));
    uint8_t *z_bytes = (uint8_t *)malloc(ED_COEFF_BYTES * n);
    uint32_t *slot = (uint32_t *)malloc(n * sizeof(uint32_t));
    uint32_t *first = (uint32_t *)malloc(n * sizeof(uint32_t));
    int rc = ENGINE_ED25519_ENOMEM;
    if (!points || !scalars || !zk || !b_parts || !z_bytes || !slot || !first) goto done;
    size_t keys = ED_NAME(key_slots)(prep, idx, n, slot, first);
    if (keys == 0) goto done;
    rc = ENGINE_ED25519_ERANDOM;
    if (ed_random_coefficients(z_bytes, n) != 0) goto done;
    ED_NAME(terms_ctx) ctx = {prep, idx, z_bytes, points, scalars, zk, b_parts, n, ranges};
    engine_parallel_for(threads, ranges, ED_NAME(terms_task), &ctx);
    sc256 *key_scalars = scalars + n;
    for (size_t u = 0; u < keys; u++) {
        points[n + u] = prep[idx[first[u]]].neg_a;
        key_scalars[u] = (sc256){{0, 0, 0, 0}};
    }
    for (size_t j = 0; j < n; j++) engine_sc_add(&key_scalars[slot[j]], &key_scalars[slot[j]], &zk[j]);
    sc256 b_scalar = {{0, 0, 0, 0}};
    for (size_t r = 0; r < ranges; r++) engine_sc_add(&b_scalar, &b_scalar, &b_parts[r]);
    size_t points_count = n + keys + 1;
    points[points_count - 1] = ED_NAME(base_table)()[0];
    scalars[points_count - 1] = b_scalar;
    ge_p3 sum;
    if (points_count >= ed_pippenger_min_points(ED_MSM_KIND))
        rc = ED_MSM_PIPPENGER(&sum, points, scalars, points_count, threads);
    else
        rc = ED_NAME_MSM_STRAUS(&sum, points, scalars, points_count);
    if (rc == ENGINE_ED25519_OK) *ok = ge_p3_is_small_order_identity_x8(&sum);
    if (rc == ENGINE_ED25519_OK && !*ok)
        __atomic_add_fetch(&ed_batch_equation_failures, 1, __ATOMIC_RELAXED);
done:
    free(points);
    free(scalars);
    free(zk);
    free(b_parts);
    free(z_bytes);
    free(slot);
    free(first);
    return rc;
}

static int ED_NAME(single_prepared)(const ED_NAME(prepared) *p) {
    ed_key key;
    key.has_hi = 0;
    key.has_table = 1;
    ED_NAME(table_from_niels)(key.neg_table, &p->neg_a);
    return ED_NAME_SINGLE_CHECK(&key, &p->k, &p->s, &p->neg_r);
}

/* Verdicts for entries idx[0..n): a passing batch accepts all; a failing one is split. */
static int ED_NAME(resolve)(const ED_NAME(prepared) *prep, const size_t *idx, size_t n,
                            uint8_t *out, int threads) {
    if (n == 0) return ENGINE_ED25519_OK;
    if (n <= 2) {
        for (size_t j = 0; j < n; j++) out[idx[j]] = (uint8_t)ED_NAME(single_prepared)(&prep[idx[j]]);
        return ENGINE_ED25519_OK;
    }
    int ok = 0;
    int rc = ED_NAME(batch_check)(prep, idx, n, &ok, threads);
    if (rc != ENGINE_ED25519_OK) return rc;
    if (ok) {
        for (size_t j = 0; j < n; j++) out[idx[j]] = 1;
        return ENGINE_ED25519_OK;
    }
    size_t half = n / 2;
    rc = ED_NAME(resolve)(prep, idx, half, out, threads);
    if (rc != ENGINE_ED25519_OK) return rc;
    return ED_NAME(resolve)(prep, idx + half, n - half, out, threads);
}

/* Preparation split in ranges, one pool task each. */
typedef struct {
    ED_NAME(prepared) *prep;
    size_t *idx;
    const engine_ed25519_item *items;
    size_t n, ranges;
    long *counts;
} ED_NAME(prepare_ctx);

static void ED_NAME(prepare_task)(void *arg, size_t r) {
    ED_NAME(prepare_ctx) *ctx = (ED_NAME(prepare_ctx) *)arg;
    size_t lo = ctx->n * r / ctx->ranges, hi = ctx->n * (r + 1) / ctx->ranges;
    ctx->counts[r] = ED_NAME(prepare_all)(ctx->prep + lo, ctx->idx + lo, ctx->items + lo, hi - lo);
}

/* Live entries' indexes into idx in order, their count, or -1 when out of memory. */
static long ED_NAME(prepare_parallel)(ED_NAME(prepared) *prep, size_t *idx,
                                      const engine_ed25519_item *items, size_t n, int threads) {
    size_t ranges = threads > 1 ? (size_t)threads * 2 : 1;
    if (ranges > n) ranges = n ? n : 1;
    long counts_small[2 * ENGINE_POOL_THREADS_MAX];
    ED_NAME(prepare_ctx) ctx = {prep, idx, items, n, ranges, counts_small};
    engine_parallel_for(threads, ranges, ED_NAME(prepare_task), &ctx);
    long live = 0;
    for (size_t r = 0; r < ranges; r++) {
        size_t lo = n * r / ranges;
        if (counts_small[r] < 0) return -1;
        /* compact in place: the write position never passes the read position */
        for (long j = 0; j < counts_small[r]; j++) idx[live++] = lo + idx[lo + (size_t)j];
    }
    return live;
}

int ED_NAME(engine_ed25519_verify_chunk)(const engine_ed25519_item *items, size_t n,
                                         uint8_t *out, int threads) {
    if (n == 1) {
        out[0] = (uint8_t)ED_NAME(verify_item)(&items[0]);
        return ENGINE_ED25519_OK;
    }
    ED_NAME(prepared) *prep = (ED_NAME(prepared) *)malloc((n ? n : 1) * sizeof *prep);
    size_t *idx = (size_t *)malloc((n ? n : 1) * sizeof(size_t));
    if (!prep || !idx) {
        free(prep);
        free(idx);
        return ENGINE_ED25519_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) out[i] = 0;
    long live = ED_NAME(prepare_parallel)(prep, idx, items, n, threads);
    int rc = live < 0 ? ENGINE_ED25519_ENOMEM
                      : ED_NAME(resolve)(prep, idx, (size_t)live, out, threads);
    free(prep);
    free(idx);
    return rc;
}
