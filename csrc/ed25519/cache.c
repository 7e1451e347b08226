/* A bounded cache of decompressed public keys and their odd-multiple tables.
 *
 * Validators and busy senders sign again and again; decompression costs about a quarter of a
 * cached batch verification. Set-associative (8 ways, least recently used way replaced) with a
 * spinlock per set, so threads verifying one batch rarely contend. Set choice uses a hash keyed
 * by a random secret, so a peer cannot aim many keys at one set. Entries are copied out under the
 * lock: an entry may be evicted the moment the lock drops.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ed25519/ed25519_impl.h"

#define WAYS 8
#define CACHE_KEYS_DEFAULT 12288

typedef struct {
    uint8_t pk[32];
    uint64_t stamp; /* 0 = empty */
    ed_key key;
} entry;

typedef struct {
    int lock; /* spinlock */
    entry ways[WAYS];
} set;

static pthread_rwlock_t g_resize = PTHREAD_RWLOCK_INITIALIZER;
static set *g_sets;
static size_t g_sets_count;
static size_t g_capacity = CACHE_KEYS_DEFAULT;
static int g_initialised;
static uint64_t g_hash_key[4];
static uint64_t g_clock, g_hits, g_misses;

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

static void spin_lock(int *l) {
    while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE)) {
        while (__atomic_load_n(l, __ATOMIC_RELAXED)) CPU_RELAX();
    }
}

static void spin_unlock(int *l) { __atomic_store_n(l, 0, __ATOMIC_RELEASE); }

/* Copy only the parts that exist (and are wanted): tables are 2.5 KiB, the point 120 bytes. */
static void copy_key(ed_key *dst, const ed_key *src, int with_tables) {
    dst->neg_affine = src->neg_affine;
    dst->has_table = with_tables && src->has_table;
    dst->has_hi = with_tables && src->has_hi;
    if (dst->has_table) memcpy(dst->neg_table, src->neg_table, sizeof dst->neg_table);
    if (dst->has_hi) memcpy(dst->neg_hi_table, src->neg_hi_table, sizeof dst->neg_hi_table);
}

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t keyed_hash(const uint8_t pk[32]) {
    uint64_t w[4], h = 0;
    memcpy(w, pk, 32);
    for (int i = 0; i < 4; i++) h = mix(h ^ w[i] ^ g_hash_key[i]);
    return h;
}

static size_t set_of(const uint8_t pk[32]) { return (size_t)(keyed_hash(pk) % g_sets_count); }

/* Allocate the sets for g_capacity; called with the write lock held (or once at start). */
static void allocate(void) {
    free(g_sets);
    g_sets = NULL;
    g_sets_count = 0;
    if (g_capacity == 0) return;
    size_t count = (g_capacity + WAYS - 1) / WAYS;
    g_sets = (set *)calloc(count, sizeof(set));
    if (g_sets) g_sets_count = count;
}

static void ensure_initialised(void) {
    if (__atomic_load_n(&g_initialised, __ATOMIC_ACQUIRE)) return;
    pthread_rwlock_wrlock(&g_resize);
    if (!g_initialised) {
        if (ed_random_bytes((uint8_t *)g_hash_key, sizeof g_hash_key) != 0)
            memset(g_hash_key, 0x5a, sizeof g_hash_key);
        allocate();
        __atomic_store_n(&g_initialised, 1, __ATOMIC_RELEASE);
    }
    pthread_rwlock_unlock(&g_resize);
}

uint64_t ed_key_hash(const uint8_t pk[32]) {
    ensure_initialised();
    return keyed_hash(pk);
}

int ed_cache_get(const uint8_t pk[32], ed_key *out, int want_table) {
    ensure_initialised();
    int hit = 0;
    pthread_rwlock_rdlock(&g_resize);
    if (g_sets_count) {
        set *s = &g_sets[set_of(pk)];
        spin_lock(&s->lock);
        for (int i = 0; i < WAYS; i++) {
            entry *e = &s->ways[i];
            if (e->stamp && memcmp(e->pk, pk, 32) == 0) {
                e->stamp = __atomic_add_fetch(&g_clock, 1, __ATOMIC_RELAXED);
                copy_key(out, &e->key, want_table);
                hit = 1;
                break;
            }
        }
        spin_unlock(&s->lock);
    }
    pthread_rwlock_unlock(&g_resize);
    __atomic_add_fetch(hit ? &g_hits : &g_misses, 1, __ATOMIC_RELAXED);
    return hit;
}

void ed_cache_put(const uint8_t pk[32], const ed_key *key) {
    ensure_initialised();
    pthread_rwlock_rdlock(&g_resize);
    if (g_sets_count) {
        set *s = &g_sets[set_of(pk)];
        spin_lock(&s->lock);
        entry *victim = &s->ways[0];
        for (int i = 0; i < WAYS; i++) {
            entry *e = &s->ways[i];
            if (e->stamp && memcmp(e->pk, pk, 32) == 0) {
                /* present already (another thread was first): add a table it lacks */
                if (key->has_table + key->has_hi > e->key.has_table + e->key.has_hi)
                    copy_key(&e->key, key, 1);
                victim = NULL;
                break;
            }
            if (e->stamp < victim->stamp) victim = e;
        }
        if (victim) {
            memcpy(victim->pk, pk, 32);
            copy_key(&victim->key, key, 1);
            victim->stamp = __atomic_add_fetch(&g_clock, 1, __ATOMIC_RELAXED);
        }
        spin_unlock(&s->lock);
    }
    pthread_rwlock_unlock(&g_resize);
}

int engine_ed25519_cache_set_capacity(size_t keys) {
    ensure_initialised();
    pthread_rwlock_wrlock(&g_resize);
    g_capacity = keys;
    allocate();
    int ok = keys == 0 || g_sets_count != 0;
    pthread_rwlock_unlock(&g_resize);
    return ok ? ENGINE_ED25519_OK : ENGINE_ED25519_ENOMEM;
}

size_t engine_ed25519_cache_capacity(void) {
    ensure_initialised();
    return g_sets_count * WAYS;
}

void engine_ed25519_cache_stats(uint64_t *hits, uint64_t *misses, size_t *entries) {
    ensure_initialised();
    *hits = __atomic_load_n(&g_hits, __ATOMIC_RELAXED);
    *misses = __atomic_load_n(&g_misses, __ATOMIC_RELAXED);
    size_t count = 0;
    pthread_rwlock_rdlock(&g_resize);
    for (size_t s = 0; s < g_sets_count; s++)
        for (int i = 0; i < WAYS; i++) count += g_sets[s].ways[i].stamp != 0;
    pthread_rwlock_unlock(&g_resize);
    *entries = count;
}

void engine_ed25519_cache_clear(void) {
    ensure_initialised();
    pthread_rwlock_wrlock(&g_resize);
    allocate();
    g_hits = g_misses = 0;
    pthread_rwlock_unlock(&g_resize);
}
