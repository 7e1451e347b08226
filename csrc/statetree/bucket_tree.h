/* The kvstore state commitment's buckets (engine/statetree.py): 4096 buckets of 64-byte
 * entries `H(key) || H(value)` sorted by key hash, and each bucket's leaf hash, the chain
 * suite's Merkle leaf hash of its entries (BLAKE3(entries), or SM3(0x00 || entries) on an
 * SM2/SM3 chain): the tree is given that function, so this file hashes nothing itself.
 * A block's writes are applied in one call: no per-write Python.
 * Not thread-safe: one caller at a time (the bindings hold the GIL). */
#ifndef ENGINE_BUCKET_TREE_H
#define ENGINE_BUCKET_TREE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { ENGINE_TREE_BUCKET_BITS = 12, ENGINE_TREE_BUCKETS = 1 << ENGINE_TREE_BUCKET_BITS,
       ENGINE_TREE_ENTRY = 64, ENGINE_TREE_HASH = 32 };

typedef struct engine_bucket_tree engine_bucket_tree;

/* The leaf hash of n buckets' bytes (inputs[i], lens[i] bytes) into out + 32 i; returns
 * ENGINE_OK (0), or nonzero on failure (ENGINE_ENOMEM, -1, when out of memory). */
typedef int (*engine_tree_leaf_hash_fn)(const uint8_t *const *inputs, const size_t *lens,
                                        size_t n, uint8_t *out);

/* A tree with every bucket empty (every leaf leaf_hash("")) whose leaves are hashed by
 * leaf_hash; NULL when out of memory or when leaf_hash fails. */
engine_bucket_tree *engine_bucket_tree_new(engine_tree_leaf_hash_fn leaf_hash);
void engine_bucket_tree_free(engine_bucket_tree *t);

/* Apply n writes to distinct keys: khs holds n key hashes (32 bytes each); live[i] != 0 writes
 * the next value hash of vhs (32 bytes each, one per live write, in order), live[i] == 0
 * deletes the key (nothing if absent); live == NULL means every write is live. The touched
 * buckets are rehashed. touched[] receives each touched bucket once (first-touch order) and
 * old_leaves[32 * j] the leaf of touched[j] before the call; both must hold min(n, 4096)
 * items; *touched_n their count. Returns ENGINE_OK, or ENGINE_ENOMEM: with the tree unchanged
 * when memory runs out (all of it is reserved before the first write); if the hashing itself
 * fails after the writes, the tree refuses every later call (its leaves would be stale). */
int engine_bucket_tree_apply(engine_bucket_tree *t, const uint8_t *khs, const uint8_t *vhs,
                             const uint8_t *live, size_t n, uint16_t *touched,
                             uint8_t *old_leaves, size_t *touched_n);

/* out[i] = 1 when the key hash khs[32 i] is in the tree, else 0 (n key hashes). */
void engine_bucket_tree_contains(const engine_bucket_tree *t, const uint8_t *khs, size_t n,
                                 uint8_t *out);

/* The 4096 leaf hashes, 32 bytes each, in bucket order. */
const uint8_t *engine_bucket_tree_leaves(const engine_bucket_tree *t);

/* Bucket b's sorted entries (*len bytes, a multiple of 64). */
const uint8_t *engine_bucket_tree_bucket(const engine_bucket_tree *t, unsigned b, size_t *len);

/* Nonzero once a failed apply left stale leaves: nothing of the tree may be used. */
int engine_bucket_tree_broken(const engine_bucket_tree *t);

/* Entries in the whole tree. */
size_t engine_bucket_tree_size(const engine_bucket_tree *t);

#ifdef __cplusplus
}
#endif

#endif
