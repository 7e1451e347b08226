/* The engine's Merkle tree (DESIGN.md section 2) over 32-byte leaf hashes: levels of keyed
 * 64-byte nodes hashed with the nodes kernel of the path in force, the odd last node promoted
 * unchanged, each level split across the thread pool. */
#include "blake3/blake3.h"

#include "blake3/blake3_impl.h"
#include "common/pool.h"
#include "common/scratch.h"

/* One level up: count nodes at `src` become (count + 1) / 2 at `dst` (the odd last promoted).
 * Pairs are contiguous 64-byte blocks and their parents contiguous 32-byte values, so the nodes
 * kernel hashes them in tasks of B3_TASK_MSGS pairs with no job descriptions. */
typedef struct {
    b3_nodes_fn kernel;
    const uint32_t *key;
    const uint8_t *src;
    uint8_t *dst;
    size_t pairs;
} level_ctx;

static void level_task(void *arg, size_t task) {
    const level_ctx *ctx = (const level_ctx *)arg;
    size_t first = task * B3_TASK_MSGS;
    size_t count = ctx->pairs - first < B3_TASK_MSGS ? ctx->pairs - first : B3_TASK_MSGS;
    ctx->kernel(ctx->key, ctx->src + 2 * B3_OUT_BYTES * first, count,
                B3_KEYED_HASH | B3_CHUNK_START | B3_CHUNK_END | B3_ROOT,
                ctx->dst + B3_OUT_BYTES * first);
}

static int merkle_level(const uint32_t key[8], const uint8_t *src, size_t count, uint8_t *dst,
                        int threads) {
    size_t pairs = count / 2;
    if (count & 1) memcpy(dst + 32 * pairs, src + 32 * (count - 1), 32);
    level_ctx ctx = {b3_nodes_kernel(), key, src, dst, pairs};
    size_t tasks = (pairs + B3_TASK_MSGS - 1) / B3_TASK_MSGS;
    engine_parallel_for(pairs < B3_PARALLEL_JOBS_MIN ? 1 : threads, tasks, level_task, &ctx);
    return ENGINE_OK;
}

static int merkle_walk(const uint8_t *leaf_hashes, size_t n, const uint8_t node_key[32],
                       size_t index, uint8_t *root, uint8_t *path, size_t *path_len,
                       int threads) {
    uint32_t key[8];
    b3_key_words(node_key, key);
    if (path_len) *path_len = 0;
    if (n == 0) {
        /* root([]) = BLAKE3_keyed(NODE_KEY, "") */
        b3_job j = {NULL, root, 0, 0, B3_KEYED_HASH, B3_CHUNK_START, B3_CHUNK_END | B3_ROOT};
        engine_blake3_jobs_portable(key, &j, 1, 1);
        return ENGINE_OK;
    }
    if (n == 1) {
        memcpy(root, leaf_hashes, 32);
        return ENGINE_OK;
    }
    /* Levels alternate between two buffers (a level cannot be built in place when several
     * threads write it). Level 1 needs ceil(n/2) hashes, level 2 ceil(n/4). */
    size_t half = (n + 1) / 2;
    uint8_t *a = (uint8_t *)engine_scratch_take(ENGINE_SCRATCH_B3_LEVEL_A, 32 * half);
    uint8_t *b = (uint8_t *)engine_scratch_take(ENGINE_SCRATCH_B3_LEVEL_B, 32 * ((half + 1) / 2));
    int rc = ENGINE_ENOMEM;
    if (!a || !b) goto done;
    const uint8_t *src = leaf_hashes;
    uint8_t *dst = a;
    size_t count = n;
    while (count > 1) {
        if (path) {
            size_t sibling = index ^ 1;
            if (sibling < count) memcpy(path + 32 * (*path_len)++, src + 32 * sibling, 32);
            index >>= 1;
        }
        rc = merkle_level(key, src, count, dst, threads);
        if (rc) goto done;
        count = (count + 1) / 2;
        src = dst;
        dst = (dst == a) ? b : a;
    }
    memcpy(root, src, 32);
    rc = ENGINE_OK;
done:
    engine_scratch_release(ENGINE_SCRATCH_B3_LEVEL_A, a);
    engine_scratch_release(ENGINE_SCRATCH_B3_LEVEL_B, b);
    return rc;
}

int engine_merkle_root(const uint8_t *leaf_hashes, size_t n, const uint8_t node_key[32],
                       uint8_t out[32], int threads) {
    return merkle_walk(leaf_hashes, n, node_key, 0, out, NULL, NULL, threads);
}

int engine_merkle_path(const uint8_t *leaf_hashes, size_t n, size_t index,
                       const uint8_t node_key[32], uint8_t *path, size_t *path_len, int threads) {
    if (index >= n) return ENGINE_EINVAL;
    uint8_t root[32];
    return merkle_walk(leaf_hashes, n, node_key, index, root, path, path_len, threads);
}
