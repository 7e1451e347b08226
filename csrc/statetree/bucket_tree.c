/* The state commitment's buckets (bucket_tree.h). Buckets are sorted arrays of 64-byte
 * entries: at 100,000 keys a bucket holds ~25 entries, so a write is a binary search and a
 * memmove of a few hundred bytes; the touched buckets are hashed in one many-message call. */
#include "statetree/bucket_tree.h"

#include <stdlib.h>
#include <string.h>

enum { ENGINE_OK = 0, ENGINE_ENOMEM = -1 };

typedef struct {
    uint8_t *data; /* len entries of ENGINE_TREE_ENTRY bytes */
    uint32_t len, cap;
} bucket;

struct engine_bucket_tree {
    bucket buckets[ENGINE_TREE_BUCKETS];
    uint8_t leaves[ENGINE_TREE_BUCKETS][ENGINE_TREE_HASH];
    size_t entries;
    engine_tree_leaf_hash_fn leaf_hash;
    int broken; /* a rehash failed after the entries changed: every later call refuses */
};

static unsigned bucket_of(const uint8_t *kh) {
    return ((unsigned)kh[0] << (ENGINE_TREE_BUCKET_BITS - 8)) |
           ((unsigned)kh[1] >> (16 - ENGINE_TREE_BUCKET_BITS));
}

engine_bucket_tree *engine_bucket_tree_new(engine_tree_leaf_hash_fn leaf_hash) {
    if (!leaf_hash) return NULL;
    engine_bucket_tree *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->leaf_hash = leaf_hash;
    const uint8_t *empty = (const uint8_t *)"";
    size_t zero = 0;
    uint8_t leaf[ENGINE_TREE_HASH];
    if (leaf_hash(&empty, &zero, 1, leaf) != ENGINE_OK) {
        free(t);
        return NULL;
    }
    for (unsigned b = 0; b < ENGINE_TREE_BUCKETS; b++) memcpy(t->leaves[b], leaf, sizeof leaf);
    return t;
}

void engine_bucket_tree_free(engine_bucket_tree *t) {
    if (!t) return;
    for (unsigned b = 0; b < ENGINE_TREE_BUCKETS; b++) free(t->buckets[b].data);
    free(t);
}

/* The index of the first entry whose key hash is >= kh; *found when it is equal. */
static uint32_t search(const bucket *bk, const uint8_t *kh, int *found) {
    uint32_t lo = 0, hi = bk->len;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (memcmp(bk->data + (size_t)mid * ENGINE_TREE_ENTRY, kh, ENGINE_TREE_HASH) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < bk->len &&
             memcmp(bk->data + (size_t)lo * ENGINE_TREE_ENTRY, kh, ENGINE_TREE_HASH) == 0;
    return lo;
}

static int reserve(bucket *bk, uint64_t need) {
    if (need <= bk->cap) return ENGINE_OK;
    if (need > UINT32_MAX / 2) return ENGINE_ENOMEM;
    uint32_t cap = bk->cap ? bk->cap : 4;
    while (cap < need) cap *= 2;
    uint8_t *p = realloc(bk->data, (size_t)cap * ENGINE_TREE_ENTRY);
    if (!p) return ENGINE_ENOMEM;
    bk->data = p;
    bk->cap = cap;
    return ENGINE_OK;
}

int engine_bucket_tree_apply(engine_bucket_tree *t, const uint8_t *khs, const uint8_t *vhs,
                             const uint8_t *live, size_t n, uint16_t *touched,
                             uint8_t *old_leaves, size_t *touched_n) {
    if (t->broken) return ENGINE_ENOMEM;
    /* Everything is allocated and reserved before the first write, so nothing can fail
     * half-way. seen[b] is 1 + b's index in touched; grow[b] the inserts b may take. */
    size_t cap = n < ENGINE_TREE_BUCKETS ? (n ? n : 1) : ENGINE_TREE_BUCKETS;
    uint32_t *seen = calloc(ENGINE_TREE_BUCKETS, sizeof *seen);
    uint32_t *grow = calloc(ENGINE_TREE_BUCKETS, sizeof *grow);
    const uint8_t **ptrs = malloc(cap * sizeof *ptrs);
    size_t *lens = malloc(cap * sizeof *lens);
    uint8_t *out = malloc(cap * ENGINE_TREE_HASH);
    int rc = (seen && grow && ptrs && lens && out) ? ENGINE_OK : ENGINE_ENOMEM;
    size_t count = 0;
    for (size_t i = 0; rc == ENGINE_OK && i < n; i++) {
        unsigned b = bucket_of(khs + 32 * i);
        if (!seen[b]) {
            seen[b] = (uint32_t)++count;
            touched[count - 1] = (uint16_t)b;
            memcpy(old_leaves + 32 * (count - 1), t->leaves[b], ENGINE_TREE_HASH);
        }
        if (!live || live[i]) grow[b]++;
    }
    for (size_t j = 0; rc == ENGINE_OK && j < count; j++) {
        bucket *bk = &t->buckets[touched[j]];
        rc = reserve(bk, (uint64_t)bk->len + grow[touched[j]]);
    }
    *touched_n = 0;
    if (rc == ENGINE_OK) {
        const uint8_t *vh = vhs;
        for (size_t i = 0; i < n; i++) {
            const uint8_t *kh = khs + 32 * i;
            bucket *bk = &t->buckets[bucket_of(kh)];
            int found;
            uint32_t at = search(bk, kh, &found);
            uint8_t *entry = bk->data + (size_t)at * ENGINE_TREE_ENTRY;
            if (live && !live[i]) {
                if (found) {
                    memmove(entry, entry + ENGINE_TREE_ENTRY,
                            (size_t)(bk->len - at - 1) * ENGINE_TREE_ENTRY);
                    bk->len--;
                    t->entries--;
                }
                continue;
            }
            if (!found) {
                memmove(entry + ENGINE_TREE_ENTRY, entry,
                        (size_t)(bk->len - at) * ENGINE_TREE_ENTRY);
                memcpy(entry, kh, ENGINE_TREE_HASH);
                bk->len++;
                t->entries++;
            }
            memcpy(entry + ENGINE_TREE_HASH, vh, ENGINE_TREE_HASH);
            vh += ENGINE_TREE_HASH;
        }
        /* Rehash the touched buckets in one many-message call (lanes side by side). */
        for (size_t j = 0; j < count; j++) {
            const bucket *bk = &t->buckets[touched[j]];
            ptrs[j] = bk->data ? bk->data : (const uint8_t *)"";
            lens[j] = (size_t)bk->len * ENGINE_TREE_ENTRY;
        }
        rc = count ? t->leaf_hash(ptrs, lens, count, out) : ENGINE_OK;
        if (rc != ENGINE_OK) rc = ENGINE_ENOMEM;
        if (rc == ENGINE_OK) {
            for (size_t j = 0; j < count; j++)
                memcpy(t->leaves[touched[j]], out + ENGINE_TREE_HASH * j, ENGINE_TREE_HASH);
            *touched_n = count;
        } else {
            t->broken = 1; /* entries written, leaves stale: never answer from this tree */
        }
    }
    free(seen);
    free(grow);
    free(ptrs);
    free(lens);
    free(out);
    return rc;
}

void engine_bucket_tree_contains(const engine_bucket_tree *t, const uint8_t *khs, size_t n,
                                 uint8_t *out) {
    for (size_t i = 0; i < n; i++) {
        const uint8_t *kh = khs + 32 * i;
        int found = 0;
        search(&t->buckets[bucket_of(kh)], kh, &found);
        out[i] = (uint8_t)(found != 0);
    }
}

const uint8_t *engine_bucket_tree_leaves(const engine_bucket_tree *t) {
    return &t->leaves[0][0];
}

const uint8_t *engine_bucket_tree_bucket(const engine_bucket_tree *t, unsigned b, size_t *len) {
    const bucket *bk = &t->buckets[b];
    *len = (size_t)bk->len * ENGINE_TREE_ENTRY;
    return bk->data ? bk->data : (const uint8_t *)"";
}

size_t engine_bucket_tree_size(const engine_bucket_tree *t) { return t->entries; }

int engine_bucket_tree_broken(const engine_bucket_tree *t) { return t->broken; }
