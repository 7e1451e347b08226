/* SM3: single messages, the lane scheduler for many messages, thread splitting and the Merkle
 * tree (docs/formats.md, "SM3 Merkle tree").
 *
 * Many messages: each lane of the SIMD kernel holds one job; after every block the lanes whose
 * message ended write their digest and take the next job, so lanes never wait for the longest
 * message of a group. When no job is left and few lanes still run (one long message, say), those
 * finish on the one-message compression, which is as fast per lane. Batches are cut into tasks of
 * consecutive messages (bounded in count and bytes) that the native pool runs in parallel.
 */
#include "sm3/sm3.h"

#include <stdlib.h>

#include "common/pool.h"
#include "common/scratch.h"
#include "sm3/sm3_impl.h"


#define TASK_MSGS_MAX 1024
#define TASK_BYTES_MAX ((size_t)1 << 20)
/* Below this many bytes (messages + per-message overhead) a batch stays on the calling thread. */
#define PARALLEL_BYTES_MIN ((size_t)1 << 17)
#define MSG_OVERHEAD_BYTES 64

static void output(const uint32_t st[8], uint8_t out[32]) {
    for (int i = 0; i < 8; i++) sm3_store_be32(out + 4 * i, st[i]);
}

static void hash_job(sm3_compress_fn compress, const sm3_job *job) {
    uint32_t st[8];
    memcpy(st, SM3_IV, sizeof st);
    uint8_t buf[SM3_BLOCK_BYTES];
    size_t blocks = sm3_job_blocks(job);
    size_t b = 0;
    /* Whole data blocks go to the compression in one run. */
    while (b < blocks) {
        const uint8_t *p = sm3_job_block(job, b, blocks, buf);
        if (p != buf) {
            size_t start = b * SM3_BLOCK_BYTES - job->prefix_len;
            size_t run = (job->len - start) / SM3_BLOCK_BYTES;
            compress(st, p, run);
            b += run;
        } else {
            compress(st, p, 1);
            b++;
        }
    }
    output(st, job->out);
}

void engine_sm3_prefixed(const uint8_t *prefix, size_t prefix_len, const uint8_t *data,
                         size_t len, uint8_t out[32]) {
    sm3_job job = {prefix, data, len, prefix_len, out};
    hash_job(engine_sm3_kernel().compress, &job);
}

void engine_sm3(const uint8_t *data, size_t len, uint8_t out[32]) {
    engine_sm3_prefixed(NULL, 0, data, len, out);
}

/* ---- the lane scheduler ------------------------------------------------------------------ */

typedef struct {
    const sm3_job *job; /* NULL: idle */
    size_t block, blocks;
    _Alignas(64) uint8_t buf[SM3_BLOCK_BYTES];
} lane;

static const _Alignas(64) uint8_t ZERO_BLOCK[SM3_BLOCK_BYTES];

void engine_sm3_run_jobs(sm3_kernel kernel, const sm3_job *jobs, size_t n) {
    const int L = kernel.lanes;
    /* Too few jobs to fill a third of the lanes: one message at a time is as fast. */
    if (L == 1 || n * 3 < (size_t)L) {
        for (size_t i = 0; i < n; i++) hash_job(kernel.compress, &jobs[i]);
        return;
    }
    _Alignas(64) uint32_t st[8 * SM3_LANES_MAX];
    lane lanes[SM3_LANES_MAX];
    const uint8_t *ptrs[SM3_LANES_MAX];
    size_t next = 0;
    int active = 0;
    for (int l = 0; l < L; l++) {
        lanes[l].job = next < n ? &jobs[next++] : NULL;
        if (lanes[l].job) {
            lanes[l].block = 0;
            lanes[l].blocks = sm3_job_blocks(lanes[l].job);
            active++;
        }
        for (int w = 0; w < 8; w++) st[w * L + l] = SM3_IV[w];
    }
    const int active_min = L / 4 + 1;
    while (active >= active_min) {
        for (int l = 0; l < L; l++) {
            lane *ln = &lanes[l];
            ptrs[l] = ln->job ? sm3_job_block(ln->job, ln->block, ln->blocks, ln->buf) : ZERO_BLOCK;
        }
        kernel.lanes_fn(st, ptrs);
        for (int l = 0; l < L; l++) {
            lane *ln = &lanes[l];
            if (!ln->job || ++ln->block < ln->blocks) continue;
            uint32_t out[8];
            for (int w = 0; w < 8; w++) {
                out[w] = st[w * L + l];
                st[w * L + l] = SM3_IV[w];
            }
            output(out, ln->job->out);
            if (next < n) {
                ln->job = &jobs[next++];
                ln->block = 0;
                ln->blocks = sm3_job_blocks(ln->job);
            } else {
                ln->job = NULL;
                active--;
            }
        }
    }
    /* The stragglers finish one lane at a time. */
    for (int l = 0; l < L; l++) {
        lane *ln = &lanes[l];
        if (!ln->job) continue;
        uint32_t s[8];
        for (int w = 0; w < 8; w++) s[w] = st[w * L + l];
        for (; ln->block < ln->blocks; ln->block++)
            kernel.compress(s, sm3_job_block(ln->job, ln->block, ln->blocks, ln->buf), 1);
        output(s, ln->job->out);
    }
}

/* ---- many messages, split into tasks -------------------------------------------------------- */

typedef struct {
    sm3_kernel kernel;
    const uint8_t *const *inputs;
    const size_t *lens;
    const uint8_t *prefix;
    size_t prefix_len;
    uint8_t *out;
    uint8_t *const *outs;
    const size_t *bounds; /* task t hashes messages bounds[t] .. bounds[t+1]-1 */
    int failed;
} many_ctx;

static void many_task(void *arg, size_t t) {
    many_ctx *ctx = (many_ctx *)arg;
    size_t first = ctx->bounds[t], last = ctx->bounds[t + 1];
    sm3_job *jobs = (sm3_job *)engine_scratch_take(ENGINE_SCRATCH_SM3_TASK_JOBS, TASK_MSGS_MAX * sizeof *jobs);
    if (!jobs) {
        __atomic_store_n(&ctx->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    for (size_t i = first; i < last; i++) {
        sm3_job *j = &jobs[i - first];
        j->prefix = ctx->prefix;
        j->prefix_len = ctx->prefix_len;
        j->data = ctx->inputs[i];
        j->len = ctx->lens[i];
        j->out = ctx->outs ? ctx->outs[i] : ctx->out + (size_t)ENGINE_SM3_BYTES * i;
    }
    engine_sm3_run_jobs(ctx->kernel, jobs, last - first);
    engine_scratch_release(ENGINE_SCRATCH_SM3_TASK_JOBS, jobs);
}

int engine_sm3_many(const uint8_t *const *inputs, const size_t *lens, size_t n,
                    const uint8_t *prefix, size_t prefix_len, uint8_t *out,
                    uint8_t *const *outs, int threads) {
    if (prefix_len > SM3_BLOCK_BYTES) return ENGINE_SM3_EINVAL;
    if (n == 0) return ENGINE_SM3_OK;
    /* Task boundaries: at most TASK_MSGS_MAX messages and about TASK_BYTES_MAX bytes each. */
    size_t *bounds = (size_t *)malloc((n + 1) * sizeof *bounds);
    if (!bounds) return ENGINE_SM3_ENOMEM;
    size_t tasks = 0, bytes = 0, count = 0, total = 0;
    bounds[0] = 0;
    for (size_t i = 0; i < n; i++) {
        size_t cost = lens[i] + MSG_OVERHEAD_BYTES;
        if (count && (count == TASK_MSGS_MAX || bytes + cost > TASK_BYTES_MAX)) {
            bounds[++tasks] = i;
            bytes = count = 0;
        }
        bytes += cost;
        total += cost;
        count++;
    }
    bounds[++tasks] = n;
    many_ctx ctx = {engine_sm3_kernel(), inputs, lens, prefix, prefix_len, out, outs, bounds, 0};
    engine_parallel_for(total < PARALLEL_BYTES_MIN ? 1 : threads, tasks, many_task, &ctx);
    free(bounds);
    return ctx.failed ? ENGINE_SM3_ENOMEM : ENGINE_SM3_OK;
}

/* ---- Merkle tree ------------------------------------------------------------------------------ */

static const uint8_t NODE_PREFIX[1] = {0x01};

/* One level up: count hashes at src become (count + 1) / 2 at dst, the odd last one promoted.
 * Node i is SM3(0x01 || src[64 i .. 64 i + 64)): pairs are contiguous, so no copies. */
typedef struct {
    sm3_kernel kernel;
    const uint8_t *src;
    uint8_t *dst;
    size_t pairs;
    int failed;
} level_ctx;

static void level_task(void *arg, size_t t) {
    level_ctx *ctx = (level_ctx *)arg;
    size_t first = t * TASK_MSGS_MAX;
    size_t count = ctx->pairs - first < TASK_MSGS_MAX ? ctx->pairs - first : TASK_MSGS_MAX;
    sm3_job *jobs = (sm3_job *)engine_scratch_take(ENGINE_SCRATCH_SM3_TASK_JOBS, TASK_MSGS_MAX * sizeof *jobs);
    if (!jobs) {
        __atomic_store_n(&ctx->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    for (size_t i = 0; i < count; i++) {
        sm3_job *j = &jobs[i];
        j->prefix = NODE_PREFIX;
        j->prefix_len = 1;
        j->data = ctx->src + 64 * (first + i);
        j->len = 64;
        j->out = ctx->dst + 32 * (first + i);
    }
    engine_sm3_run_jobs(ctx->kernel, jobs, count);
    engine_scratch_release(ENGINE_SCRATCH_SM3_TASK_JOBS, jobs);
}

static int merkle_level(const uint8_t *src, size_t count, uint8_t *dst, int threads) {
    size_t pairs = count / 2;
    if (count & 1) memcpy(dst + 32 * pairs, src + 32 * (count - 1), 32);
    level_ctx ctx = {engine_sm3_kernel(), src, dst, pairs, 0};
    size_t tasks = (pairs + TASK_MSGS_MAX - 1) / TASK_MSGS_MAX;
    engine_parallel_for(pairs * 128 < PARALLEL_BYTES_MIN ? 1 : threads, tasks, level_task, &ctx);
    return ctx.failed ? ENGINE_SM3_ENOMEM : ENGINE_SM3_OK;
}

static int merkle_walk(const uint8_t *leaf_hashes, size_t n, size_t index, uint8_t *root,
                       uint8_t *path, size_t *path_len, int threads) {
    if (path_len) *path_len = 0;
    if (n == 0) {
        engine_sm3(NULL, 0, root); /* root([]) = SM3("") */
        return ENGINE_SM3_OK;
    }
    if (n == 1) {
        memcpy(root, leaf_hashes, 32);
        return ENGINE_SM3_OK;
    }
    size_t half = (n + 1) / 2;
    uint8_t *a = (uint8_t *)engine_scratch_take(ENGINE_SCRATCH_SM3_LEVEL_A, 32 * half);
    uint8_t *b = (uint8_t *)engine_scratch_take(ENGINE_SCRATCH_SM3_LEVEL_B, 32 * ((half + 1) / 2));
    int rc = ENGINE_SM3_ENOMEM;
    if (a && b) {
        const uint8_t *src = leaf_hashes;
        uint8_t *dst = a;
        size_t count = n;
        rc = ENGINE_SM3_OK;
        while (count > 1 && rc == ENGINE_SM3_OK) {
            if (path) {
                size_t sibling = index ^ 1;
                if (sibling < count) memcpy(path + 32 * (*path_len)++, src + 32 * sibling, 32);
                index >>= 1;
            }
            rc = merkle_level(src, count, dst, threads);
            count = (count + 1) / 2;
            src = dst;
            dst = (dst == a) ? b : a;
        }
        if (rc == ENGINE_SM3_OK) memcpy(root, src, 32);
    }
    engine_scratch_release(ENGINE_SCRATCH_SM3_LEVEL_A, a);
    engine_scratch_release(ENGINE_SCRATCH_SM3_LEVEL_B, b);
    return rc;
}

int engine_sm3_merkle_root(const uint8_t *leaf_hashes, size_t n, uint8_t out[32], int threads) {
    return merkle_walk(leaf_hashes, n, 0, out, NULL, NULL, threads);
}

int engine_sm3_merkle_path(const uint8_t *leaf_hashes, size_t n, size_t index, uint8_t *path,
                           size_t *path_len, int threads) {
    if (index >= n) return ENGINE_SM3_EINVAL;
    uint8_t root[32];
    return merkle_walk(leaf_hashes, n, index, root, path, path_len, threads);
}
