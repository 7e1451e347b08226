/* BLAKE3 dispatch: chooses the kernel, turns messages into jobs, buckets them by block count,
 * splits the work across the thread pool, and reduces chunk values and Merkle levels.
 *
 * A message of at most 1024 bytes is one job with the ROOT flag. A longer one becomes one job
 * per chunk (counter = chunk index) followed by rounds of parent jobs; BLAKE3's tree and the
 * engine's Merkle tree share one shape (the left subtree holds the largest power of two below
 * n), which bottom-up pairing with the odd last node promoted unchanged produces exactly. Every
 * round of parents, across all long messages, is one more batch for the same kernels.
 */
#include "blake3/blake3.h"

#include <stdlib.h>

#include "blake3/blake3_impl.h"
#include "common/cpu.h"
#include "common/pool.h"
#include "common/scratch.h"

/* Scratch slots (csrc/common/scratch.h); the bindings use 0..2. */
enum { SLOT_TASK_JOBS = 3, SLOT_LEVEL_A = 4, SLOT_LEVEL_B = 5 };

/* Jobs per pool task: large enough to amortise the atomic claim, small enough to balance. */
#define JOBS_PER_TASK 512
/* Below this many jobs a batch runs on the calling thread only. */
#define PARALLEL_JOBS_MIN 2048

static int g_forced_isa = -1;

static enum engine_isa current_isa(void) {
    int forced = __atomic_load_n(&g_forced_isa, __ATOMIC_RELAXED);
    return forced >= 0 ? (enum engine_isa)forced : engine_isa_selected();
}

int engine_blake3_force_isa(int isa) {
    if (isa < -1 || isa > ENGINE_ISA_AVX512) return ENGINE_EINVAL;
    if (isa >= 0 && !engine_isa_supported((enum engine_isa)isa)) return ENGINE_EINVAL;
    __atomic_store_n(&g_forced_isa, isa, __ATOMIC_RELAXED);
    return ENGINE_OK;
}

const char *engine_blake3_isa_name(void) { return engine_isa_name(current_isa()); }

static b3_jobs_fn kernel_for(enum engine_isa isa) {
#if defined(__x86_64__)
    if (isa == ENGINE_ISA_AVX512) return engine_blake3_jobs_avx512;
    if (isa == ENGINE_ISA_AVX2) return engine_blake3_jobs_avx2;
#else
    (void)isa;
#endif
    return engine_blake3_jobs_portable;
}

static b3_nodes_fn nodes_kernel_for(enum engine_isa isa) {
#if defined(__x86_64__)
    if (isa == ENGINE_ISA_AVX512) return engine_blake3_nodes_avx512;
    if (isa == ENGINE_ISA_AVX2) return engine_blake3_nodes_avx2;
#else
    (void)isa;
#endif
    return engine_blake3_nodes_portable;
}

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

/* Run jobs that are already grouped by block count: bucket_start[b] .. bucket_start[b+1] hold
 * the jobs of b+1 blocks (17 boundaries). */
static int run_bucketed(const uint32_t key[8], const b3_job *jobs, const size_t bucket_start[17],
                        int threads) {
    b3_jobs_fn kernel = kernel_for(current_isa());
    size_t total = bucket_start[16];
    if (threads == 1 || total < PARALLEL_JOBS_MIN) {
        for (size_t b = 0; b < 16; b++) {
            size_t n = bucket_start[b + 1] - bucket_start[b];
            if (n) kernel(key, jobs + bucket_start[b], n, b + 1);
        }
        return ENGINE_OK;
    }
    size_t ranges_max = total / JOBS_PER_TASK + 17;
    job_range *ranges = (job_range *)malloc(ranges_max * sizeof *ranges);
    if (!ranges) return ENGINE_ENOMEM;
    size_t ranges_count = 0;
    for (size_t b = 0; b < 16; b++) {
        for (size_t i = bucket_start[b]; i < bucket_start[b + 1]; i += JOBS_PER_TASK) {
            size_t n = bucket_start[b + 1] - i;
            ranges[ranges_count].first = i;
            ranges[ranges_count].count = n < JOBS_PER_TASK ? n : JOBS_PER_TASK;
            ranges[ranges_count].blocks = b + 1;
            ranges_count++;
        }
    }
    batch_ctx ctx = {kernel, key, jobs, ranges};
    engine_parallel_for(threads, ranges_count, batch_task, &ctx);
    free(ranges);
    return ENGINE_OK;
}

/* Jobs that all take one block (parents, Merkle nodes). */
static int run_single_block(const uint32_t key[8], const b3_job *jobs, size_t n, int threads) {
    size_t starts[17];
    starts[0] = 0;
    for (int b = 1; b <= 16; b++) starts[b] = n;
    return run_bucketed(key, jobs, starts, threads);
}

/* ---- many messages -------------------------------------------------------------------------- */

/* Where hash i goes: outs[i] when the caller gave one pointer per message, else out + 32 i. */
typedef struct {
    uint8_t *out;
    uint8_t *const *outs;
} out_map;

static inline uint8_t *out_at(out_map map, size_t i) {
    return map.outs ? map.outs[i] : map.out + (size_t)B3_OUT_BYTES * i;
}

static size_t chunks_of(size_t len) { return (len + B3_CHUNK_BYTES - 1) / B3_CHUNK_BYTES; }

/* Reduce the chunk values of every long message to its root, one round of parents at a time.
 * cvs holds each long message's chunk values back to back; spare is as large as cvs. */
static int reduce_long(const uint32_t key[8], uint8_t flags, size_t long_count,
                       const size_t *long_index, const size_t *long_chunks, uint8_t *cvs,
                       uint8_t *spare, out_map out, int threads) {
    size_t total_chunks = 0;
    for (size_t m = 0; m < long_count; m++) total_chunks += long_chunks[m];
    size_t *level = (size_t *)malloc(long_count * sizeof *level);
    b3_job *jobs = (b3_job *)malloc((total_chunks / 2 + 1) * sizeof *jobs);
    if (!level || !jobs) {
        free(level);
        free(jobs);
        return ENGINE_ENOMEM;
    }
    for (size_t m = 0; m < long_count; m++) level[m] = long_chunks[m];
    uint8_t *cur = cvs, *next = spare;
    int rc = ENGINE_OK;
    for (;;) {
        size_t n = 0, offset = 0;
        for (size_t m = 0; m < long_count; m++) {
            size_t c = level[m];
            uint8_t *src = cur + 32 * offset, *dst = next + 32 * offset;
            offset += long_chunks[m];
            if (c < 2) continue;
            int is_root = (c == 2);
            for (size_t i = 0; i + 1 < c; i += 2) {
                b3_job *j = &jobs[n++];
                j->input = src + 32 * i;
                j->len = 64;
                j->counter = 0;
                j->flags = (uint8_t)(flags | B3_PARENT);
                j->flags_start = 0;
                j->flags_end = is_root ? B3_ROOT : 0;
                j->out = is_root ? out_at(out, long_index[m]) : dst + 16 * i;
            }
            if (c & 1) memcpy(dst + 32 * (c / 2), src + 32 * (c - 1), 32);
            level[m] = (c + 1) / 2;
        }
        if (n == 0) break;
        rc = run_single_block(key, jobs, n, threads);
        if (rc) break;
        uint8_t *t = cur;
        cur = next;
        next = t;
    }
    free(level);
    free(jobs);
    return rc;
}

/* Short messages (at most one chunk) are hashed in tasks of SHORT_TASK_MSGS consecutive
 * messages: each task sorts its own jobs by block count in a small local array, so a batch of
 * any size needs no large allocation and its jobs stay in cache. */
#define SHORT_TASK_MSGS 1024

typedef struct {
    b3_jobs_fn kernel;
    const uint32_t *key;
    uint8_t flags;
    const uint8_t *const *inputs;
    const size_t *lens;
    size_t n;
    out_map out;
    int failed;
} short_ctx;

static void short_task(void *arg, size_t task) {
    short_ctx *ctx = (short_ctx *)arg;
    size_t first = task * SHORT_TASK_MSGS;
    size_t last = first + SHORT_TASK_MSGS < ctx->n ? first + SHORT_TASK_MSGS : ctx->n;
    b3_job *jobs = (b3_job *)engine_scratch_take(SLOT_TASK_JOBS, SHORT_TASK_MSGS * sizeof *jobs);
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
        j->out = out_at(ctx->out, i);
    }
    for (size_t b = 0; b < 16; b++) {
        size_t count = starts[b + 1] - starts[b];
        if (count) ctx->kernel(ctx->key, jobs + starts[b], count, b + 1);
    }
    engine_scratch_release(SLOT_TASK_JOBS, jobs);
}

/* Messages over one chunk: one job per chunk (counter = chunk index), then parent rounds. */
static int hash_long(const uint32_t key_words[8], uint8_t flags, const uint8_t *const *inputs,
                     const size_t *lens, size_t n, out_map out, int threads) {
    size_t counts[16] = {0}, long_count = 0, total_chunks = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = lens[i];
        if (len <= B3_CHUNK_BYTES) continue;
        size_t c = chunks_of(len);
        long_count++;
        total_chunks += c;
        counts[15] += c - 1;
        counts[b3_job_blocks((uint32_t)(len - (c - 1) * B3_CHUNK_BYTES)) - 1]++;
    }
    if (long_count == 0) return ENGINE_OK;
    size_t starts[17], fill[16];
    starts[0] = 0;
    for (int b = 0; b < 16; b++) starts[b + 1] = starts[b] + counts[b];
    memcpy(fill, starts, sizeof fill);

    b3_job *jobs = (b3_job *)malloc(total_chunks * sizeof *jobs);
    size_t *long_index = (size_t *)malloc(long_count * sizeof(size_t));
    size_t *long_chunks = (size_t *)malloc(long_count * sizeof(size_t));
    uint8_t *cvs = (uint8_t *)malloc(64 * total_chunks);
    int rc = ENGINE_ENOMEM;
    if (!jobs || !long_index || !long_chunks || !cvs) goto done;

    size_t m = 0, cv_offset = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = lens[i];
        if (len <= B3_CHUNK_BYTES) continue;
        size_t c = chunks_of(len);
        long_index[m] = i;
        long_chunks[m] = c;
        for (size_t k = 0; k < c; k++) {
            size_t piece = k + 1 < c ? B3_CHUNK_BYTES : len - k * B3_CHUNK_BYTES;
            b3_job *j = &jobs[fill[b3_job_blocks((uint32_t)piece) - 1]++];
            j->input = inputs[i] + k * B3_CHUNK_BYTES;
            j->len = (uint32_t)piece;
            j->counter = k;
            j->flags = flags;
            j->flags_start = B3_CHUNK_START;
            j->flags_end = B3_CHUNK_END;
            j->out = cvs + 32 * (cv_offset + k);
        }
        cv_offset += c;
        m++;
    }
    rc = run_bucketed(key_words, jobs, starts, threads);
    if (rc == ENGINE_OK)
        rc = reduce_long(key_words, flags, long_count, long_index, long_chunks, cvs,
                         cvs + 32 * total_chunks, out, threads);
done:
    free(jobs);
    free(long_index);
    free(long_chunks);
    free(cvs);
    return rc;
}

static int hash_many(const uint8_t *const *inputs, const size_t *lens, size_t n,
                     const uint8_t *key, out_map out, int threads) {
    uint32_t key_words[8];
    uint8_t flags = 0;
    if (key) {
        b3_key_words(key, key_words);
        flags = B3_KEYED_HASH;
    } else {
        memcpy(key_words, B3_IV, sizeof key_words);
    }
    short_ctx ctx = {kernel_for(current_isa()), key_words, flags, inputs, lens, n, out, 0};
    size_t tasks = (n + SHORT_TASK_MSGS - 1) / SHORT_TASK_MSGS;
    engine_parallel_for(n < PARALLEL_JOBS_MIN ? 1 : threads, tasks, short_task, &ctx);
    if (ctx.failed) return ENGINE_ENOMEM;
    return hash_long(key_words, flags, inputs, lens, n, out, threads);
}

int engine_blake3_many(const uint8_t *const *inputs, const size_t *lens, size_t n,
                       const uint8_t *key, uint8_t *out, int threads) {
    out_map map = {out, NULL};
    return hash_many(inputs, lens, n, key, map, threads);
}

int engine_blake3_many_into(const uint8_t *const *inputs, const size_t *lens, size_t n,
                            const uint8_t *key, uint8_t *const *outs, int threads) {
    out_map map = {NULL, outs};
    return hash_many(inputs, lens, n, key, map, threads);
}

/* ---- Merkle trees --------------------------------------------------------------------------- */

/* One level up: count nodes at `src` become (count + 1) / 2 at `dst` (the odd last promoted).
 * Pairs are contiguous 64-byte blocks and their parents contiguous 32-byte values, so the nodes
 * kernel hashes them in tasks of SHORT_TASK_MSGS pairs with no job descriptions. */
typedef struct {
    b3_nodes_fn kernel;
    const uint32_t *key;
    const uint8_t *src;
    uint8_t *dst;
    size_t pairs;
} level_ctx;

static void level_task(void *arg, size_t task) {
    const level_ctx *ctx = (const level_ctx *)arg;
    size_t first = task * SHORT_TASK_MSGS;
    size_t count = ctx->pairs - first < SHORT_TASK_MSGS ? ctx->pairs - first : SHORT_TASK_MSGS;
    ctx->kernel(ctx->key, ctx->src + 2 * B3_OUT_BYTES * first, count,
                B3_KEYED_HASH | B3_CHUNK_START | B3_CHUNK_END | B3_ROOT,
                ctx->dst + B3_OUT_BYTES * first);
}

static int merkle_level(const uint32_t key[8], const uint8_t *src, size_t count, uint8_t *dst,
                        int threads) {
    size_t pairs = count / 2;
    if (count & 1) memcpy(dst + 32 * pairs, src + 32 * (count - 1), 32);
    level_ctx ctx = {nodes_kernel_for(current_isa()), key, src, dst, pairs};
    size_t tasks = (pairs + SHORT_TASK_MSGS - 1) / SHORT_TASK_MSGS;
    engine_parallel_for(pairs < PARALLEL_JOBS_MIN ? 1 : threads, tasks, level_task, &ctx);
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
    uint8_t *a = (uint8_t *)engine_scratch_take(SLOT_LEVEL_A, 32 * half);
    uint8_t *b = (uint8_t *)engine_scratch_take(SLOT_LEVEL_B, 32 * ((half + 1) / 2));
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
    engine_scratch_release(SLOT_LEVEL_A, a);
    engine_scratch_release(SLOT_LEVEL_B, b);
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
