/* Per-thread scratch buffers; see scratch.h. */
#include "common/scratch.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct {
    void *buffer[ENGINE_SCRATCH_SLOTS];
    size_t bytes[ENGINE_SCRATCH_SLOTS];
    int taken[ENGINE_SCRATCH_SLOTS];  /* a re-entrant second take gets a fresh allocation */
} scratch_set;

static pthread_key_t g_key;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

static void free_set(void *p) {
    scratch_set *set = (scratch_set *)p;
    for (int i = 0; i < ENGINE_SCRATCH_SLOTS; i++) free(set->buffer[i]);
    free(set);
}

static void make_key(void) { pthread_key_create(&g_key, free_set); }

static scratch_set *thread_set(void) {
    pthread_once(&g_key_once, make_key);
    scratch_set *set = (scratch_set *)pthread_getspecific(g_key);
    if (!set) {
        set = (scratch_set *)calloc(1, sizeof *set);
        if (set && pthread_setspecific(g_key, set) != 0) {
            free(set);
            set = NULL;
        }
    }
    return set;
}

void *engine_scratch_take(enum engine_scratch_slot slot, size_t bytes) {
    if (bytes == 0) bytes = 1;
    if ((int)slot < 0 || slot >= ENGINE_SCRATCH_SLOTS || bytes > ENGINE_SCRATCH_KEEP_BYTES_MAX)
        return malloc(bytes);
    scratch_set *set = thread_set();
    if (!set || set->taken[slot]) return malloc(bytes);
    if (set->bytes[slot] < bytes) {
        free(set->buffer[slot]);
        set->buffer[slot] = malloc(bytes);
        set->bytes[slot] = set->buffer[slot] ? bytes : 0;
    }
    if (set->buffer[slot]) set->taken[slot] = 1;
    return set->buffer[slot];
}

void engine_scratch_release(enum engine_scratch_slot slot, void *buffer) {
    if (!buffer) return;
    if ((int)slot >= 0 && slot < ENGINE_SCRATCH_SLOTS) {
        pthread_once(&g_key_once, make_key);
        scratch_set *set = (scratch_set *)pthread_getspecific(g_key);
        if (set && set->buffer[slot] == buffer) {  /* kept for the next call */
            set->taken[slot] = 0;
            return;
        }
    }
    free(buffer);
}
