/* BLAKE3 over many messages: jobs bucketed by block count and split across the thread pool.
 *
 * A message of at most 1024 bytes is one job with the ROOT flag; short messages are hashed in
 * tasks of B3_TASK_MSGS consecutive messages, each sorting its own jobs by block count in a
 * small per-thread array, so a batch of any size needs no large allocation and its jobs stay in
 * cache. On a path with a message kernel (avx2) short messages, listed or packed, need no job
 * records at all: a task of one block count is one kernel call over the run, any other task
 * sorts 4-byte indices.
 * Longer messages go to blake3_tree.c, which reuses b3_run_bucketed for its chunks and parents.
 */
#include "blake3/blake3.h"

#include <stdint.h>
#include <stdlib.h>

#include "blake3/blake3_impl.h"
#include "common/pool.h"
#include "common/scratch.h"

/* ---- running a batch of jobs ------------------------------------------------------------ */

typedef struct {
    size_t first, count, blocks;
} job_range;

typedef struct {
    b3_jobs_fn kernel;
    const uint32_t *key;
    const b3_job *jobs;
    const job_range *ranges;
} batch_ctx;

static void batch_task(void *arg, size_t i) {
    const batch_ctx *ctx = (const batch_ctx *)arg;
    const job_range *r = &ctx->ranges[i];
    ctx->kernel(ctx->key, ctx->jobs + r->first, r->count, r->blocks);
}

int b3_run_bucketed(const uint32_t key[8], const b3_job *jobs, const size_t bucket_start[17],
                    int threads) {
    b3_jobs_fn kernel = b3_jobs_kernel();
    size_t total = bucket_start[16];
    if (threads == 1 || total < B3_PARALLEL_JOBS_MIN) {
        for (size_t b = 0; b < 16; b++) {
            size_t n = bucket_start[b + 1] - bucket_start[b];
            if (n) kernel(key, jobs + bucket_start[b], n, b + 1);
        }
        return ENGINE_OK;
    }
    size_t ranges_max = total / B3_JOBS_PER_TASK + 17;
    job_range *ranges = (job_range *)malloc(ranges_max * sizeof *ranges);
    if (!ranges) return ENGINE_ENOMEM;
    size_t ranges_count = 0;
    for (size_t b = 0; b < 16; b++) {
        for (size_t i = bucket_start[b]; i < bucket_start[b + 1]; i += B3_JOBS_PER_TASK) {
            size_t n = bucket_start[b + 1] - i;
            ranges[ranges_count].first = i;
            ranges[ranges_count].count = n < B3_JOBS_PER_TASK ? n : B3_JOBS_PER_TASK;
            ranges[ranges_count].blocks = b + 1;
            ranges_count++;
        }
    }
    batch_ctx ctx = {kernel, key, jobs, ranges};
    engine_parallel_for(threads, ranges_count, batch_task, &ctx);
    free(ranges);
    return ENGINE_OK;
}

int b3_run_single_block(const uint32_t key[8], const b3_job *jobs, size_t n, int threads) {
    size_t starts[17];
    starts[0] = 0;
    for (int b = 1; b <= 16; b++) starts[b] = n;
    return b3_run_bucketed(key, jobs, starts, threads);
}

/* ---- short messages ------------------------------------------------------------------------- */

typedef struct {
    b3_jobs_fn kernel;       /* the path's jobs kernel, used when it has no message kernel */
    b3_msgs_fn msgs_kernel;  /* NULL on such a path */
    const uint32_t *key;
    uint8_t flags;
    b3_msgs msgs;
    size_t n;
    int failed;
    int long_seen;           /* some message is over one chunk: b3_hash_long has work */
} short_ctx;

/* Messages first .. last-1 as job descriptions in block-count order, for a path's jobs kernel. */
static int short_as_jobs(const short_ctx *ctx, size_t first, size_t last,
                         const size_t starts[17]) {
    b3_job *jobs =
        (b3_job *)engine_scratch_take(ENGINE_SCRATCH_B3_TASK_JOBS, B3_TASK_MSGS * sizeof *jobs);
    if (!jobs) return ENGINE_ENOMEM;
    size_t fill[16];
    memcpy(fill, starts, sizeof fill);
    for (size_t i = first; i < last; i++) {
        size_t len = b3_msg_len(&ctx->msgs, i);
        if (len > B3_CHUNK_BYTES) continue;  /* long messages are hashed separately */
        b3_job *j = &jobs[fill[b3_job_blocks((uint32_t)len) - 1]++];
        j->input = b3_msg_ptr(&ctx->msgs, i);
        j->len = (uint32_t)len;
        j->counter = 0;
        j->flags = ctx->flags;
        j->flags_start = B3_CHUNK_START;
        j->flags_end = B3_CHUNK_END | B3_ROOT;
        j->out = b3_out_at(ctx->msgs.out, i);
    }
    for (size_t b = 0; b < 16; b++) {
        size_t count = starts[b + 1] - starts[b];
        if (count) ctx->kernel(ctx->key, jobs + starts[b], count, b + 1);
    }
    engine_scratch_release(ENGINE_SCRATCH_B3_TASK_JOBS, jobs);
    return ENGINE_OK;
}

/* The same for a message kernel: the messages' indices (4 bytes each, no record) sorted by
 * block count. */
static int short_as_msgs(const short_ctx *ctx, size_t first, size_t last,
                         const size_t starts[17]) {
    uint32_t *idx = (uint32_t *)engine_scratch_take(ENGINE_SCRATCH_B3_TASK_JOBS,
                                                    B3_TASK_MSGS * sizeof *idx);
    if (!idx) return ENGINE_ENOMEM;
    size_t fill[16];
    memcpy(fill, starts, sizeof fill);
    for (size_t i = first; i < last; i++) {
        size_t len = b3_msg_len(&ctx->msgs, i);
        if (len <= B3_CHUNK_BYTES) idx[fill[b3_job_blocks((uint32_t)len) - 1]++] = (uint32_t)(i - first);
    }
    for (size_t b = 0; b < 16; b++) {
        size_t count = starts[b + 1] - starts[b];
        if (count) ctx->msgs_kernel(ctx->key, ctx->flags, &ctx->msgs, idx + starts[b], first, count, b + 1);
    }
    engine_scratch_release(ENGINE_SCRATCH_B3_TASK_JOBS, idx);
    return ENGINE_OK;
}

/* The block count shared by messages first .. last-1, or 0 when they differ or one is long. */
static size_t same_blocks(const b3_msgs *msgs, size_t first, size_t last) {
    size_t shortest = SIZE_MAX, longest = 0;
    for (size_t i = first; i < last; i++) {
        size_t len = b3_msg_len(msgs, i);
        shortest = len < shortest ? len : shortest;
        longest = len > longest ? len : longest;
    }
    if (longest > B3_CHUNK_BYTES) return 0;
    size_t blocks = b3_job_blocks((uint32_t)longest);
    return b3_job_blocks((uint32_t)shortest) == blocks ? blocks : 0;
}

static void short_task(void *arg, size_t task) {
    short_ctx *ctx = (short_ctx *)arg;
    size_t first = task * B3_TASK_MSGS;
    size_t last = first + B3_TASK_MSGS < ctx->n ? first + B3_TASK_MSGS : ctx->n;
    /* A run of one block count (a batch of equal lengths: the common case) is one call of a
     * message kernel, found without sorting. */
    size_t blocks = ctx->msgs_kernel ? same_blocks(&ctx->msgs, first, last) : 0;
    if (blocks) {
        ctx->msgs_kernel(ctx->key, ctx->flags, &ctx->msgs, NULL, first, last - first, blocks);
        return;
    }
    /* starts[b] .. starts[b+1]: where the messages of b+1 blocks go, in block-count order */
    size_t starts[17] = {0};
    int long_seen = 0;
    for (size_t i = first; i < last; i++) {
        size_t len = b3_msg_len(&ctx->msgs, i);
        if (len > B3_CHUNK_BYTES)
            long_seen = 1;
        else
            starts[b3_job_blocks((uint32_t)len)]++;
    }
    for (int b = 0; b < 16; b++) starts[b + 1] += starts[b];
    if (long_seen) __atomic_store_n(&ctx->long_seen, 1, __ATOMIC_RELAXED);
    int rc = ctx->msgs_kernel ? short_as_msgs(ctx, first, last, starts)
                              : short_as_jobs(ctx, first, last, starts);
    if (rc) __atomic_store_n(&ctx->failed, 1, __ATOMIC_RELAXED);
}

static void key_setup(const uint8_t *key, uint32_t key_words[8], uint8_t *flags) {
    if (key) {
        b3_key_words(key, key_words);
        *flags = B3_KEYED_HASH;
    } else {
        memcpy(key_words, B3_IV, sizeof key_words[0] * 8);
        *flags = 0;
    }
}

/* Hash the short messages of `msgs` in tasks over the pool; report whether long ones remain. */
static int hash_short(const uint32_t key_words[8], uint8_t flags, const b3_msgs *msgs, size_t n,
                      int threads, int *long_seen) {
    /* Lists and packed buffers alike go to the message kernel where the path has one (avx2).
     * Lists used to keep the jobs kernel, which copies each message's blocks to L1 first: the
     * message kernel measured 10-15 % slower on lists then, an effect of its burst of
     * prefetches before each group; with them spread over the compressions it is the faster
     * on lists too (README, "Fourth round"). */
    short_ctx ctx = {b3_jobs_kernel(), b3_msgs_kernel(), key_words, flags,
                     *msgs, n, 0, 0};
    size_t tasks = (n + B3_TASK_MSGS - 1) / B3_TASK_MSGS;
    engine_parallel_for(n < B3_PARALLEL_JOBS_MIN ? 1 : threads, tasks, short_task, &ctx);
    *long_seen = ctx.long_seen;
    return ctx.failed ? ENGINE_ENOMEM : ENGINE_OK;
}

static int hash_many(const uint8_t *const *inputs, const size_t *lens, size_t n,
                     const uint8_t *key, b3_out_map out, int threads) {
    uint32_t key_words[8];
    uint8_t flags;
    key_setup(key, key_words, &flags);
    b3_msgs msgs = {inputs, lens, NULL, NULL, out};
    int long_seen;
    int rc = hash_short(key_words, flags, &msgs, n, threads, &long_seen);
    if (rc || !long_seen) return rc;
    return b3_hash_long(key_words, flags, inputs, lens, n, out, threads);
}

int engine_blake3_many(const uint8_t *const *inputs, const size_t *lens, size_t n,
                       const uint8_t *key, uint8_t *out, int threads) {
    b3_out_map map = {out, NULL};
    return hash_many(inputs, lens, n, key, map, threads);
}

int engine_blake3_many_into(const uint8_t *const *inputs, const size_t *lens, size_t n,
                            const uint8_t *key, uint8_t *const *outs, int threads) {
    b3_out_map map = {NULL, outs};
    return hash_many(inputs, lens, n, key, map, threads);
}

int engine_blake3_many_packed(const uint8_t *data, const uint64_t *offsets, size_t n,
                              const uint8_t *key, uint8_t *out, int threads) {
    uint32_t key_words[8];
    uint8_t flags;
    key_setup(key, key_words, &flags);
    b3_out_map map = {out, NULL};
    b3_msgs msgs = {NULL, NULL, data, offsets, map};
    int long_seen;
    int rc = hash_short(key_words, flags, &msgs, n, threads, &long_seen);
    if (rc || !long_seen) return rc;
    /* The tree code for long messages reads pointers and lengths; they are built only now. */
    const uint8_t **ptrs = (const uint8_t **)malloc(n * sizeof *ptrs);
    size_t *lens = (size_t *)malloc(n * sizeof *lens);
    rc = ENGINE_ENOMEM;
    if (ptrs && lens) {
        for (size_t i = 0; i < n; i++) {
            ptrs[i] = data + offsets[i];
            lens[i] = (size_t)(offsets[i + 1] - offsets[i]);
        }
        rc = b3_hash_long(key_words, flags, ptrs, lens, n, map, threads);
    }
    free(ptrs);
    free(lens);
    return rc;
}
