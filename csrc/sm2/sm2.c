/* SM2: the comb table for G, Z_A, batch verification split across the pool, and the native
 * parts of signing (constant-time [k]G and the arithmetic mod n).
 *
 * A batch is cut into tasks of TASK_ITEMS signatures. Each task first checks r and s, finds
 * every key in the cache (or decodes it and builds its tables), then hashes e = SM3(Z || M) for
 * all its signatures side by side in the SM3 lanes, and finally runs the curve check of each.
 */
#include "sm2/sm2.h"

#include <pthread.h>
#include <stdlib.h>

#include "common/pool.h"
#include "common/scratch.h"
#include "sm2/sm2_core.h"
#include "sm3/sm3.h"
#include "sm3/sm3_impl.h"

/* Scratch slot for a task's keys: slot 4 is also SM3's Merkle level buffer, which never runs
 * on the same thread at the same time. */

#define TASK_ITEMS 64

/* The lane kernels cost about the same whatever number of lanes is in use; below these counts
 * the scalar code is cheaper. Measured on the machine of the README's figures (AMD EPYC Zen 4,
 * one thread, 2026-12-05): one scalar verification about 60 us with a new key and 26 us with a
 * four-quarter key; an eight-lane AVX-512 group about 127 us with new keys (2.1 scalar ones) and
 * 65 us with four-quarter keys (2.5); a four-lane AVX2 group about 103 us with new keys (1.7) and
 * 55 us with four-quarter keys (2.1). A lane key decoding costs about one scalar decoding. */
#define LANES_MIN_NEW 3
#define LANES_MIN_WARM 3
#define LANES_MIN_KEYS 2
#define LANES4_MIN_NEW 2
#define LANES4_MIN_WARM 3
#define LANES4_MIN_KEYS 2

sm2_aff engine_sm2_comb[SM2_COMB_POSITIONS][SM2_COMB_POINTS];
sm2_aff engine_sm2_comb_top;

/* a || b || xG || yG, big-endian, as Z_A hashes them. */
static uint8_t g_curve_bytes[128];

static pthread_once_t g_tables_once = PTHREAD_ONCE_INIT;

static void build_tables(void) {
    static sm2_jac row[SM2_COMB_POINTS];
    static uint64_t prod[SM2_COMB_POINTS][4];
    sm2_jac base, twice;
    sm2_aff g;
    to_mont(g.x, SM2_GX, &SM2_P);
    to_mont(g.y, SM2_GY, &SM2_P);
    jac_from_aff(&base, &g);
    for (int i = 0; i <= SM2_COMB_POSITIONS; i++) {
        if (i > 0)
            for (int k = 0; k < 8; k++) jac_dbl(&base, &base);
        if (i == SM2_COMB_POSITIONS) { /* 2^256 G */
            aff_from_jac(&engine_sm2_comb_top, &base);
            break;
        }
        row[0] = base;
        jac_dbl(&twice, &base);
        for (int j = 1; j < SM2_COMB_POINTS; j++) jac_add(&row[j], &row[j - 1], &twice);
        jac_to_aff_many(engine_sm2_comb[i], row, SM2_COMB_POINTS, prod);
    }
    uint64_t a[4];
    memcpy(a, SM2_P.m, 32);
    a[0] -= 3; /* p - 3; p's low limb is all ones */
    uint64_t b[4];
    from_mont(b, SM2_B_MONT, &SM2_P);
    u256_to_be(g_curve_bytes, a);
    u256_to_be(g_curve_bytes + 32, b);
    u256_to_be(g_curve_bytes + 64, SM2_GX);
    u256_to_be(g_curve_bytes + 96, SM2_GY);
}

void engine_sm2_tables_init(void) { pthread_once(&g_tables_once, build_tables); }

/* ---- Z_A ------------------------------------------------------------------------------------ */

int engine_sm2_z(const uint8_t pk[64], const uint8_t *uid, size_t uid_len, uint8_t z[32]) {
    if (uid_len > ENGINE_SM2_UID_BYTES_MAX) return ENGINE_SM2_EINVAL;
    engine_sm2_tables_init();
    uint8_t buf[2 + ENGINE_SM2_UID_BYTES_MAX + 192];
    size_t bits = uid_len * 8;
    buf[0] = (uint8_t)(bits >> 8);
    buf[1] = (uint8_t)bits;
    if (uid_len) memcpy(buf + 2, uid, uid_len);
    memcpy(buf + 2 + uid_len, g_curve_bytes, 128);
    memcpy(buf + 2 + uid_len + 128, pk, 64);
    engine_sm3(buf, 2 + uid_len + 192, z);
    return ENGINE_SM2_OK;
}

/* ---- verification -------------------------------------------------------------------------- */

typedef struct {
    sm2_key key;
    uint64_t s[4], t[4], r[4], c[4];
    uint8_t e[32];
} task_item;

typedef struct {
    const engine_sm2_item *items;
    size_t n;
    const uint8_t *uid;
    size_t uid_len;
    uint8_t *out;
    sm2_core core;
    sm3_kernel sm3;
    int failed;
} verify_ctx;

/* r, s in [1, n-1] and t = (r + s) mod n != 0; fills r, s, t. */
static int parse_signature(task_item *it, const uint8_t sig[64]) {
    u256_from_be(it->r, sig);
    u256_from_be(it->s, sig + 32);
    if (u256_is_zero(it->r) || u256_is_zero(it->s)) return 0;
    if (!u256_less(it->r, SM2_N.m) || !u256_less(it->s, SM2_N.m)) return 0;
    mod_add(it->t, it->r, it->s, SM2_N.m);
    return !u256_is_zero(it->t);
}

/* The key with its tables and Z for this uid, from the cache: 1 found (and ready), 0 not
 * cached, -1 invalid. A key seen for the first time is decoded with the small table (one
 * quarter: 256 doublings per verification) and cached so; seen again, it gets the four-quarter
 * tables (64 doublings per verification), which cost about 200 doublings once: a stream of
 * one-off keys never pays for tables it will not reuse. */
static int find_cached(const verify_ctx *ctx, const uint8_t pk[64], sm2_key *key) {
    const uint8_t *uid = ctx->uid;
    size_t uid_len = ctx->uid_len;
    if (!engine_sm2_cache_enabled() || !engine_sm2_cache_get(pk, key)) return 0;
    if (key->chunks < SM2_KEY_CHUNKS_MAX) {
        if (!ctx->core.key_build(key, pk, SM2_KEY_CHUNKS_MAX)) return -1; /* not cached if invalid */
        engine_sm2_cache_put(key);
    }
    if (!(key->has_z && key->uid_len == uid_len && memcmp(key->uid, uid, uid_len) == 0))
        engine_sm2_z(pk, uid, uid_len, key->z);
    return 1;
}

/* A key just decoded (one quarter): its Z, then into the cache. */
static void finish_new_key(const verify_ctx *ctx, const uint8_t pk[64], sm2_key *key) {
    size_t uid_len = ctx->uid_len;
    engine_sm2_z(pk, ctx->uid, uid_len, key->z);
    key->has_z = uid_len <= SM2_UID_CACHED_MAX;
    key->uid_len = uid_len;
    if (key->has_z && uid_len) memcpy(key->uid, ctx->uid, uid_len);
    if (engine_sm2_cache_enabled()) engine_sm2_cache_put(key);
}

static int find_key(const verify_ctx *ctx, const uint8_t pk[64], sm2_key *key) {
    int found = find_cached(ctx, pk, key);
    if (found) return found > 0;
    if (!ctx->core.key_build(key, pk, 1)) return 0;
    finish_new_key(ctx, pk, key);
    return 1;
}

/* New keys of a task decoded core.lanes at a time (AVX-512: 8, AVX2: 4; on AVX2 all of them in
 * one keys_many call, which shares one inversion); live[i] cleared for the invalid ones. The
 * Z of the valid keys are then hashed eight at a time. */
static void decode_new_keys(const verify_ctx *ctx, size_t first, task_item *its, uint8_t *live,
                            const size_t *idx, size_t count) {
    const size_t width = (size_t)ctx->core.lanes;
    const int lanes_min = width == 8 ? LANES_MIN_KEYS : LANES4_MIN_KEYS;
    /* AVX2: all the task's new keys at once, one lane inversion for all (count <= TASK_ITEMS) */
    uint8_t ok_all[TASK_ITEMS];
    int all = 0;
    if (ctx->core.keys_many && count >= (size_t)lanes_min) {
        sm2_key *keys[TASK_ITEMS];
        const uint8_t *pks[TASK_ITEMS];
        for (size_t k = 0; k < count; k++) {
            keys[k] = &its[idx[k]].key;
            pks[k] = ctx->items[first + idx[k]].pk;
        }
        all = ctx->core.keys_many(keys, pks, (int)count, ok_all) == 0;
    }
    for (size_t g = 0; g < count; g += width) {
        int lanes = (int)(count - g < width ? count - g : width);
        if (!all && lanes < lanes_min) { /* one key: the scalar decoding costs less */
            for (int l = 0; l < lanes; l++) {
                size_t i = idx[g + (size_t)l];
                const uint8_t *pk = ctx->items[first + i].pk;
                if (ctx->core.key_build(&its[i].key, pk, 1))
                    finish_new_key(ctx, pk, &its[i].key);
                else
                    live[i] = 0;
            }
            continue;
        }
        sm2_key *keys[8];
        const uint8_t *pks[8];
        uint8_t ok[8];
        for (int l = 0; l < lanes; l++) {
            size_t i = idx[g + (size_t)l];
            keys[l] = &its[i].key;
            pks[l] = ctx->items[first + i].pk;
        }
        if (all)
            memcpy(ok, ok_all + g, (size_t)lanes);
        else
            ctx->core.keys8(keys, pks, lanes, ok);
        /* Z of the valid keys side by side in the SM3 lanes (user IDs short enough to be
         * cached; a longer one goes through finish_new_key) */
        uint8_t zbuf[8][2 + SM2_UID_CACHED_MAX + 192];
        sm3_job zjobs[8];
        size_t zcount = 0, uid_len = ctx->uid_len;
        for (int l = 0; l < lanes; l++) {
            size_t i = idx[g + (size_t)l];
            if (!ok[l]) {
                live[i] = 0;
                continue;
            }
            if (uid_len > SM2_UID_CACHED_MAX) {
                finish_new_key(ctx, pks[l], keys[l]);
                continue;
            }
            uint8_t *b = zbuf[zcount];
            b[0] = (uint8_t)((uid_len * 8) >> 8);
            b[1] = (uint8_t)(uid_len * 8);
            if (uid_len) memcpy(b + 2, ctx->uid, uid_len);
            memcpy(b + 2 + uid_len, g_curve_bytes, 128);
            memcpy(b + 2 + uid_len + 128, pks[l], 64);
            sm3_job *j = &zjobs[zcount++];
            j->prefix = NULL;
            j->prefix_len = 0;
            j->data = b;
            j->len = 2 + uid_len + 192;
            j->out = keys[l]->z;
        }
        engine_sm3_run_jobs(ctx->sm3, zjobs, zcount);
        for (int l = 0; l < lanes; l++) {
            if (!ok[l] || uid_len > SM2_UID_CACHED_MAX) continue;
            keys[l]->has_z = 1;
            keys[l]->uid_len = uid_len;
            if (uid_len) memcpy(keys[l]->uid, ctx->uid, uid_len);
            if (engine_sm2_cache_enabled()) engine_sm2_cache_put(keys[l]);
        }
    }
}

/* The curve checks of the listed items core.lanes at a time (all their keys have the same
 * chunks); a lane the kernel hands back (-1) is redone by the scalar check. */
static void check_lanes(const verify_ctx *ctx, size_t first, task_item *its, const size_t *idx,
                        size_t count, int lanes_min) {
    const size_t width = (size_t)ctx->core.lanes;
    for (size_t g = 0; g < count; g += width) {
        int lanes = (int)(count - g < width ? count - g : width);
        const sm2_key *keys[8];
        sm2x8_job jobs[8];
        int8_t verdict[8];
        if (lanes < lanes_min) { /* a few leftovers: the scalar checks cost less */
            for (int l = 0; l < lanes; l++) {
                size_t i = idx[g + (size_t)l];
                task_item *it = &its[i];
                ctx->out[first + i] = (uint8_t)ctx->core.check(&it->key, it->s, it->t, it->c);
            }
            continue;
        }
        for (int l = 0; l < lanes; l++) {
            task_item *it = &its[idx[g + (size_t)l]];
            keys[l] = &it->key;
            memcpy(jobs[l].s, it->s, 32);
            memcpy(jobs[l].t, it->t, 32);
            memcpy(jobs[l].c, it->c, 32);
        }
        if (ctx->core.check8(keys, jobs, lanes, verdict) != 0)
            for (int l = 0; l < lanes; l++) verdict[l] = -1;
        for (int l = 0; l < lanes; l++) {
            size_t i = idx[g + (size_t)l];
            task_item *it = &its[i];
            if (verdict[l] < 0) verdict[l] = (int8_t)ctx->core.check(&it->key, it->s, it->t, it->c);
            ctx->out[first + i] = (uint8_t)verdict[l];
        }
    }
}

static void verify_task(void *arg, size_t task) {
    verify_ctx *ctx = (verify_ctx *)arg;
    size_t first = task * TASK_ITEMS;
    size_t count = ctx->n - first < TASK_ITEMS ? ctx->n - first : TASK_ITEMS;
    size_t bytes = TASK_ITEMS * (sizeof(task_item) + sizeof(sm3_job) + sizeof(uint8_t));
    uint8_t *mem = (uint8_t *)engine_scratch_take(ENGINE_SCRATCH_SM2_TASK, bytes);
    if (!mem) {
        __atomic_store_n(&ctx->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    task_item *its = (task_item *)mem;
    sm3_job *jobs = (sm3_job *)(its + TASK_ITEMS);
    uint8_t *live = (uint8_t *)(jobs + TASK_ITEMS);
    size_t fresh[TASK_ITEMS], fresh_count = 0;
    for (size_t i = 0; i < count; i++) {
        const engine_sm2_item *item = &ctx->items[first + i];
        task_item *it = &its[i];
        ctx->out[first + i] = 0;
        live[i] = item->pk && parse_signature(it, item->sig);
        if (!live[i]) continue;
        if (ctx->core.keys8) {
            int found = find_cached(ctx, item->pk, &it->key);
            if (found == 0) fresh[fresh_count++] = i;
            live[i] = found >= 0;
        } else {
            live[i] = (uint8_t)find_key(ctx, item->pk, &it->key);
        }
    }
    if (fresh_count) decode_new_keys(ctx, first, its, live, fresh, fresh_count);
    size_t jobs_count = 0;
    for (size_t i = 0; i < count; i++) {
        if (!live[i]) continue;
        sm3_job *j = &jobs[jobs_count++];
        j->prefix = its[i].key.z;
        j->prefix_len = 32;
        j->data = ctx->items[first + i].msg;
        j->len = ctx->items[first + i].msg_len;
        j->out = its[i].e;
    }
    engine_sm3_run_jobs(ctx->sm3, jobs, jobs_count);
    size_t by_chunks[2][TASK_ITEMS], counts[2] = {0, 0};
    for (size_t i = 0; i < count; i++) {
        if (!live[i]) continue;
        task_item *it = &its[i];
        uint64_t e[4];
        u256_from_be(e, it->e);
        sm2_reduce_once(e, e, 0, SM2_N.m); /* e < 2^256 < 2n */
        mod_sub(it->c, it->r, e, SM2_N.m);
        if (ctx->core.check8) {
            int w = it->key.chunks == SM2_KEY_CHUNKS_MAX;
            by_chunks[w][counts[w]++] = i;
        } else {
            ctx->out[first + i] = (uint8_t)ctx->core.check(&it->key, it->s, it->t, it->c);
        }
    }
    for (int w = 0; w < 2; w++)
        if (counts[w])
            check_lanes(ctx, first, its, by_chunks[w], counts[w],
                        ctx->core.lanes == 8 ? (w ? LANES_MIN_WARM : LANES_MIN_NEW)
                                             : (w ? LANES4_MIN_WARM : LANES4_MIN_NEW));
    engine_scratch_release(ENGINE_SCRATCH_SM2_TASK, mem);
}

int engine_sm2_verify_items(const engine_sm2_item *items, size_t n, const uint8_t *uid,
                            size_t uid_len, uint8_t *out, int threads) {
    if (uid_len > ENGINE_SM2_UID_BYTES_MAX) return ENGINE_SM2_EINVAL;
    if (n == 0) return ENGINE_SM2_OK;
    engine_sm2_tables_init();
    verify_ctx ctx = {items, n, uid, uid_len, out, engine_sm2_core(), engine_sm3_kernel(), 0};
    size_t tasks = (n + TASK_ITEMS - 1) / TASK_ITEMS;
    engine_parallel_for(threads, tasks, verify_task, &ctx);
    return ctx.failed ? ENGINE_SM2_ENOMEM : ENGINE_SM2_OK;
}

int engine_sm2_verify(const uint8_t pk[64], const uint8_t *uid, size_t uid_len,
                      const uint8_t *msg, size_t msg_len, const uint8_t sig[64]) {
    engine_sm2_item item = {pk, sig, msg, msg_len};
    uint8_t verdict = 0;
    if (engine_sm2_verify_items(&item, 1, uid, uid_len, &verdict, 1) != ENGINE_SM2_OK) return 0;
    return verdict;
}

int engine_sm2_check_raw(const uint8_t pk[64], const uint8_t s_be[32], const uint8_t t_be[32],
                         const uint8_t c_be[32], int chunks, int scalar) {
    if (chunks != 1 && chunks != SM2_KEY_CHUNKS_MAX) return ENGINE_SM2_EINVAL;
    engine_sm2_tables_init();
    sm2_core core = engine_sm2_core();
    sm2_key key;
    if (!core.key_build(&key, pk, chunks)) return -1;
    uint64_t s[4], t[4], c[4];
    u256_from_be(s, s_be);
    u256_from_be(t, t_be);
    u256_from_be(c, c_be);
    if (core.check8 && !scalar) {
        const sm2_key *keys[8] = {&key};
        sm2x8_job job;
        int8_t verdict[8];
        memcpy(job.s, s, 32);
        memcpy(job.t, t, 32);
        memcpy(job.c, c, 32);
        if (core.check8(keys, &job, 1, verdict) == 0 && verdict[0] >= 0) return verdict[0];
    }
    return core.check(&key, s, t, c);
}

/* ---- signing ------------------------------------------------------------------------------- */

static uint64_t mask_of(int bit) { return (uint64_t)0 - (uint64_t)(bit & 1); }

static void select4(uint64_t r[4], const uint64_t a[4], const uint64_t b[4], uint64_t take_b) {
    for (int i = 0; i < 4; i++) r[i] = (a[i] & ~take_b) | (b[i] & take_b);
}

/* entry idx of comb position pos, every entry read (no secret-dependent address). */
static void comb_select(sm2_aff *out, int pos, unsigned idx) {
    memset(out, 0, sizeof *out);
    for (unsigned j = 0; j < SM2_COMB_POINTS; j++) {
        uint64_t m = mask_of((j ^ idx) == 0);
        const sm2_aff *e = &engine_sm2_comb[pos][j];
        for (int l = 0; l < 4; l++) {
            out->x[l] |= e->x[l] & m;
            out->y[l] |= e->y[l] & m;
        }
    }
}

/* [k]G for secret k in [1, n-1] without branches or table indices that depend on k. Returns
 * 0 if an exceptional addition (equal or opposite points, probability about 2^-220 for a
 * random k) occurred, in which case the result is unusable and the caller takes another k. */
static int base_mul_ct(sm2_jac *r, const uint64_t k_in[4]) {
    uint64_t k[4], nk[4];
    uint64_t odd = mask_of((int)(k_in[0] & 1));
    mod_sub(nk, SM2_N.m, k_in, SM2_N.m);
    select4(k, nk, k_in, odd); /* odd k, negated at the end when k was even */
    int16_t digits[SM2_COMB_POSITIONS];
    comb_recode(digits, k);
    sm2_jac acc;
    jac_from_aff(&acc, &engine_sm2_comb_top);
    uint64_t exceptional = 0;
    for (int i = 0; i < SM2_COMB_POSITIONS; i++) {
        int d = digits[i];
        uint64_t neg = mask_of((int)((unsigned)d >> 15)); /* d < 0 */
        unsigned mag = (unsigned)((d ^ (int)(int16_t)neg) - (int)(int16_t)neg);
        sm2_aff pt;
        comb_select(&pt, i, mag >> 1);
        uint64_t ny[4];
        fe_neg(ny, pt.y);
        select4(pt.y, pt.y, ny, neg);
        uint64_t z1z1[4], u2[4], s2[4], h[4], rr[4];
        fe_sqr(z1z1, acc.z);
        fe_mul(u2, pt.x, z1z1);
        fe_mul(s2, pt.y, acc.z);
        fe_mul(s2, s2, z1z1);
        fe_sub(h, u2, acc.x);
        fe_sub(rr, s2, acc.y);
        exceptional |= (uint64_t)u256_is_zero(h);
        fe_add(rr, rr, rr);
        madd_finish(&acc, &acc, z1z1, h, rr);
    }
    uint64_t ny[4];
    fe_neg(ny, acc.y);
    select4(acc.y, ny, acc.y, odd);
    *r = acc;
    return exceptional == 0;
}

/* Affine x and y of a Jacobian point (plain integers). */
static void jac_affine(uint64_t x[4], uint64_t y[4], const sm2_jac *p) {
    uint64_t zinv[4], zinv2[4], t[4];
    fe_inv(zinv, p->z);
    fe_sqr(zinv2, zinv);
    fe_mul(t, p->x, zinv2);
    from_mont(x, t, &SM2_P);
    if (y) {
        fe_mul(zinv2, zinv2, zinv);
        fe_mul(t, p->y, zinv2);
        from_mont(y, t, &SM2_P);
    }
}

/* d in [1, n-2]. */
static int private_ok(const uint64_t d[4]) {
    uint64_t n1[4];
    memcpy(n1, SM2_N.m, 32);
    n1[0] -= 1; /* n's low limb is odd and nonzero */
    return !u256_is_zero(d) && u256_less(d, n1);
}

int engine_sm2_public_key(const uint8_t d_be[32], uint8_t pk[64]) {
    uint64_t d[4];
    u256_from_be(d, d_be);
    if (!private_ok(d)) return ENGINE_SM2_EINVAL;
    engine_sm2_tables_init();
    sm2_jac q;
    if (!base_mul_ct(&q, d)) return ENGINE_SM2_RETRY;
    uint64_t x[4], y[4];
    jac_affine(x, y, &q);
    u256_to_be(pk, x);
    u256_to_be(pk + 32, y);
    return ENGINE_SM2_OK;
}

int engine_sm2_sign_digest(const uint8_t d_be[32], const uint8_t e_be[32], const uint8_t k_be[32],
                           uint8_t sig[64]) {
    uint64_t d[4], e[4], k[4];
    u256_from_be(d, d_be);
    u256_from_be(e, e_be);
    u256_from_be(k, k_be);
    if (!private_ok(d)) return ENGINE_SM2_EINVAL;
    if (u256_is_zero(k) || !u256_less(k, SM2_N.m)) return ENGINE_SM2_EINVAL;
    engine_sm2_tables_init();
    sm2_jac kg;
    if (!base_mul_ct(&kg, k)) return ENGINE_SM2_RETRY;
    uint64_t x1[4], r[4];
    jac_affine(x1, NULL, &kg);
    sm2_reduce_once(x1, x1, 0, SM2_N.m);
    sm2_reduce_once(e, e, 0, SM2_N.m);
    mod_add(r, e, x1, SM2_N.m);
    uint64_t rk[4];
    mod_add(rk, r, k, SM2_N.m);
    if (u256_is_zero(r) || u256_is_zero(rk)) return ENGINE_SM2_RETRY;
    /* s = (1 + d)^-1 (k - r d) mod n, in Montgomery form mod n */
    static const uint64_t one[4] = {1, 0, 0, 0};
    uint64_t dm[4], km[4], rm[4], t[4], inv[4], s[4];
    to_mont(dm, d, &SM2_N);
    to_mont(km, k, &SM2_N);
    to_mont(rm, r, &SM2_N);
    mod_add(t, d, one, SM2_N.m);
    to_mont(t, t, &SM2_N);
    mont_inv(inv, t, &SM2_N);
    mont_mul(t, rm, dm, &SM2_N);
    mod_sub(t, km, t, SM2_N.m);
    mont_mul(s, inv, t, &SM2_N);
    from_mont(s, s, &SM2_N);
    if (u256_is_zero(s)) return ENGINE_SM2_RETRY;
    u256_to_be(sig, r);
    u256_to_be(sig + 32, s);
    return ENGINE_SM2_OK;
}
