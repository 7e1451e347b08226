/* BLAKE3 over many messages: jobs bucketed by block count and split across the thread pool.
 *
 * A message of at most 1024 bytes is one job with the ROOT flag; short messages are hashed in
 * tasks of B3_TASK_MSGS consecutive messages, each sorting its own jobs by block count in a
 * small per-thread array, so a batch of any size needs no large allocation and its jobs stay in
 * cache. Longer messages go to blake3_tree.c, which reuses b3_run_bucketed for its chunks and
 * parents.
 */
#include "blake3/blake3.h"

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
    b3_jobs_fn kernel;
    const uint32_t *key;
    uint8_t flags;
    const uint8_t *const *inputs;
    const size_t *lens;
    size_t n;
    b3_out_map out;
    int failed;
} short_ctx;

static void short_task(void *arg, size_t task) {
    short_ctx *ctx = (short_ctx *)arg;
    size_t first = task * B3_TASK_MSGS;
    size_t last = first + B3_TASK_MSGS < ctx->n ? first + B3_TASK_MSGS : ctx->n;
    b3_job *jobs =
        (b3_job *)engine_scratch_take(ENGINE_SCRATCH_B3_TASK_JOBS, B3_TASK_MSGS * sizeof *jobs);
    if (!jobs) {
        __atomic_store_n(&ctx->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    size_t starts[17] = {0}, fill[16];
    for (size_t i = first; i < last; i++)
        if (ctx->lens[i] <= B3_CHUNK_BYTES) starts[b3_job_blocks((uint32_t)ctx->lens[i])]++;
    for (int b = 0; b < 16; b++) starts[b + 1] += starts[b];
    memcpy(fill, starts, sizeof fill);
    for (size_t i = first; i < last; i++) {
        size_t len = ctx->lens[i];
        if (len > B3_CHUNK_BYTES) continue;  /* long messages are hashed separately */
        b3_job *j = &jobs[fill[b3_job_blocks((uint32_t)len) - 1]++];
        j->input = ctx->inputs[i];
        j->len = (uint32_t)len;
        j->counter = 0;
        j->flags = ctx->flags;
        j->flags_start = B3_CHUNK_START;
        j->flags_end = B3_CHUNK_END | B3_ROOT;
        j->out = b3_out_at(ctx->out, i);
    }
    for (size_t b = 0; b < 16; b++) {
        size_t count = starts[b + 1] - starts[b];
        if (count) ctx->kernel(ctx->key, jobs + starts[b], count, b + 1);
    }
    engine_scratch_release(ENGINE_SCRATCH_B3_TASK_JOBS, jobs);
}

static int hash_many(const uint8_t *const *inputs, const size_t *lens, size_t n,
                     const uint8_t *key, b3_out_map out, int threads) {
    uint32_t key_words[8];
    uint8_t flags = 0;
    if (key) {
        b3_key_words(key, key_words);
        flags = B3_KEYED_HASH;
    } else {
        memcpy(key_words, B3_IV, sizeof key_words);
    }
    short_ctx ctx = {b3_jobs_kernel(), key_words, flags, inputs, lens, n, out, 0};
    size_t tasks = (n + B3_TASK_MSGS - 1) / B3_TASK_MSGS;
    engine_parallel_for(n < B3_PARALLEL_JOBS_MIN ? 1 : threads, tasks, short_task, &ctx);
    if (ctx.failed) return ENGINE_ENOMEM;
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
