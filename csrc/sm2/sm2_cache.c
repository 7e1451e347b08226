/* A bounded cache of decoded SM2 public keys with their multiplication tables and Z_A.
 *
 * Validators and busy senders sign again and again; a key's tables cost about as much as one
 * verification and let the next ones skip three quarters of the doublings. Set-associative
 * (8 ways, least recently used way replaced) with a spinlock per set; the set is chosen by a
 * hash keyed with a random secret, so a peer cannot aim many keys at one set. Entries are copied
 * out under the lock (an entry may be evicted the moment it drops); a resize takes the write
 * side of a reader-writer lock.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>

#include "sm2/sm2.h"
#include "sm2/sm2_impl.h"

#define WAYS 8
#define CACHE_KEYS_DEFAULT 4096

typedef struct {
    uint64_t stamp; /* 0 = empty */
    sm2_key key;
} entry;

typedef struct {
    int lock;
    entry ways[WAYS];
} set;

static pthread_rwlock_t g_resize = PTHREAD_RWLOCK_INITIALIZER;
static set *g_sets;
static size_t g_sets_count;
static size_t g_capacity = CACHE_KEYS_DEFAULT;
static int g_allocated;
static uint64_t g_secret[2];
static uint64_t g_clock, g_hits, g_misses;

#if defined(__x86_64__)
#define CPU_RELAX() __builtin_ia32_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

static void spin_lock(int *l) {
    while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
        while (__atomic_load_n(l, __ATOMIC_RELAXED)) CPU_RELAX();
}

static void spin_unlock(int *l) { __atomic_store_n(l, 0, __ATOMIC_RELEASE); }

static uint64_t mix(uint64_t x) {
    x ^= x >> 31;
    x *= 0x9e3779b97f4a7c15ULL;
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 32;
    return x;
}

static size_t set_of(const uint8_t pk[64]) {
    uint64_t w[8], h = g_secret[0];
    memcpy(w, pk, 64);
    for (int i = 0; i < 8; i++) h = mix(h ^ w[i] ^ (i & 1 ? g_secret[1] : 0));
    return (size_t)(h % g_sets_count);
}

/* Called with the write lock held. */
static void allocate(void) {
    free(g_sets);
    g_sets = NULL;
    g_sets_count = 0;
    if (g_capacity) {
        size_t count = (g_capacity + WAYS - 1) / WAYS;
        g_sets = (set *)calloc(count, sizeof *g_sets);
        if (g_sets) g_sets_count = count;
    }
    if (!g_secret[0] && !g_secret[1]) {
        if (getrandom(g_secret, sizeof g_secret, 0) != (ssize_t)sizeof g_secret) {
            g_secret[0] = mix((uint64_t)(uintptr_t)&g_secret ^ 0x5a5a5a5aULL);
            g_secret[1] = mix(g_secret[0]);
        }
    }
    g_allocated = 1;
}

/* Take the read lock with the table allocated (allocation is lazy: no memory until used). */
static void read_lock(void) {
    pthread_rwlock_rdlock(&g_resize);
    while (!__atomic_load_n(&g_allocated, __ATOMIC_ACQUIRE)) {
        pthread_rwlock_unlock(&g_resize);
        pthread_rwlock_wrlock(&g_resize);
        if (!g_allocated) allocate();
        pthread_rwlock_unlock(&g_resize);
        pthread_rwlock_rdlock(&g_resize);
    }
}

int engine_sm2_cache_enabled(void) { return __atomic_load_n(&g_capacity, __ATOMIC_RELAXED) != 0; }

int engine_sm2_cache_get(const uint8_t pk[64], sm2_key *out) {
    read_lock();
    int hit = 0;
    if (g_sets_count) {
        set *s = &g_sets[set_of(pk)];
        spin_lock(&s->lock);
        for (int w = 0; w < WAYS; w++) {
            entry *e = &s->ways[w];
            if (e->stamp && memcmp(e->key.pk, pk, 64) == 0) {
                e->stamp = __atomic_add_fetch(&g_clock, 1, __ATOMIC_RELAXED);
                *out = e->key;
                hit = 1;
                break;
            }
        }
        spin_unlock(&s->lock);
        __atomic_add_fetch(hit ? &g_hits : &g_misses, 1, __ATOMIC_RELAXED);
    }
    pthread_rwlock_unlock(&g_resize);
    return hit;
}

void engine_sm2_cache_put(const sm2_key *key) {
    read_lock();
    if (g_sets_count) {
        set *s = &g_sets[set_of(key->pk)];
        spin_lock(&s->lock);
        entry *victim = &s->ways[0];
        for (int w = 0; w < WAYS; w++) {
            entry *e = &s->ways[w];
            if (e->stamp && memcmp(e->key.pk, key->pk, 64) == 0) {
                victim = e; /* another thread put it meanwhile: refresh */
                break;
            }
            if (e->stamp < victim->stamp) victim = e;
        }
        victim->key = *key;
        victim->stamp = __atomic_add_fetch(&g_clock, 1, __ATOMIC_RELAXED);
        spin_unlock(&s->lock);
    }
    pthread_rwlock_unlock(&g_resize);
}

int engine_sm2_cache_set_capacity(size_t keys) {
    pthread_rwlock_wrlock(&g_resize);
    __atomic_store_n(&g_capacity, keys, __ATOMIC_RELAXED);
    allocate();
    int rc = (keys && !g_sets_count) ? ENGINE_SM2_ENOMEM : ENGINE_SM2_OK;
    __atomic_store_n(&g_hits, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&g_misses, 0, __ATOMIC_RELAXED);
    pthread_rwlock_unlock(&g_resize);
    return rc;
}

size_t engine_sm2_cache_capacity(void) { return __atomic_load_n(&g_capacity, __ATOMIC_RELAXED); }

void engine_sm2_cache_stats(uint64_t *hits, uint64_t *misses, size_t *entries) {
    read_lock();
    size_t count = 0;
    for (size_t i = 0; i < g_sets_count; i++) {
        set *s = &g_sets[i];
        spin_lock(&s->lock);
        for (int w = 0; w < WAYS; w++) count += s->ways[w].stamp != 0;
        spin_unlock(&s->lock);
    }
    pthread_rwlock_unlock(&g_resize);
    *hits = __atomic_load_n(&g_hits, __ATOMIC_RELAXED);
    *misses = __atomic_load_n(&g_misses, __ATOMIC_RELAXED);
    *entries = count;
}

void engine_sm2_cache_clear(void) { engine_sm2_cache_set_capacity(engine_sm2_cache_capacity()); }
