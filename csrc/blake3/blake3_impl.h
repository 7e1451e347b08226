/* BLAKE3 internals shared by the portable, AVX2 and AVX-512 files and the dispatcher.
 *
 * The unit of work is a *job*: one chunk-sized piece (at most 1024 bytes) hashed as a chain of
 * 64-byte blocks into a 32-byte chaining value. A short message is one job with the ROOT flag;
 * a long message is one job per chunk plus parent jobs; a Merkle node is one 64-byte job.
 * Kernels hash many jobs side by side, one per SIMD lane. All jobs handed to one kernel call
 * have the same number of blocks (the dispatcher buckets them), while each lane keeps its own
 * length, counter and flags, so messages of different sizes share lanes.
 */
#ifndef ENGINE_BLAKE3_IMPL_H
#define ENGINE_BLAKE3_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define B3_BLOCK_BYTES 64
#define B3_CHUNK_BYTES 1024
#define B3_OUT_BYTES 32
#define B3_BLOCKS_PER_CHUNK 16

enum {
    B3_CHUNK_START = 1 << 0,
    B3_CHUNK_END = 1 << 1,
    B3_PARENT = 1 << 2,
    B3_ROOT = 1 << 3,
    B3_KEYED_HASH = 1 << 4,
    B3_DERIVE_KEY_CONTEXT = 1 << 5,
    B3_DERIVE_KEY_MATERIAL = 1 << 6,
};

typedef struct {
    const uint8_t *input;  /* `len` bytes; may be NULL when len == 0 */
    uint8_t *out;          /* 32 bytes of chaining value / hash */
    uint64_t counter;      /* chunk index (0 for parents and single-chunk messages) */
    uint32_t len;          /* 0..1024 */
    uint8_t flags;         /* on every block (KEYED_HASH, PARENT, ...) */
    uint8_t flags_start;   /* added on the first block */
    uint8_t flags_end;     /* added on the last block */
} b3_job;

static const uint32_t B3_IV[8] = {
    0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
    0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u,
};

/* Message word order per round: round 0 is the identity and each round applies the spec's
 * fixed permutation to the previous one. */
static const uint8_t B3_SCHEDULE[7][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8},
    {3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1},
    {10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6},
    {12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4},
    {9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7},
    {11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13},
};

/* One round: G on the four columns, then on the four diagonals, with the message words of round
 * `r` in schedule order. `G(a, b, c, d, x, y)` is the ISA's quarter-round; v and m are arrays of
 * 16 state words and 16 message words (scalars or word-sliced vectors). */
#define B3_ROUND(G, v, m, r)                                                 \
    do {                                                                     \
        const uint8_t *s_ = B3_SCHEDULE[r];                                  \
        G(v[0], v[4], v[8], v[12], m[s_[0]], m[s_[1]]);                      \
        G(v[1], v[5], v[9], v[13], m[s_[2]], m[s_[3]]);                      \
        G(v[2], v[6], v[10], v[14], m[s_[4]], m[s_[5]]);                     \
        G(v[3], v[7], v[11], v[15], m[s_[6]], m[s_[7]]);                     \
        G(v[0], v[5], v[10], v[15], m[s_[8]], m[s_[9]]);                     \
        G(v[1], v[6], v[11], v[12], m[s_[10]], m[s_[11]]);                   \
        G(v[2], v[7], v[8], v[13], m[s_[12]], m[s_[13]]);                    \
        G(v[3], v[4], v[9], v[14], m[s_[14]], m[s_[15]]);                    \
    } while (0)

static inline uint32_t b3_load32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline void b3_store32(uint8_t *p, uint32_t w) {
    p[0] = (uint8_t)w;
    p[1] = (uint8_t)(w >> 8);
    p[2] = (uint8_t)(w >> 16);
    p[3] = (uint8_t)(w >> 24);
}

static inline void b3_key_words(const uint8_t key[32], uint32_t words[8]) {
    for (int i = 0; i < 8; i++) words[i] = b3_load32(key + 4 * i);
}

/* Number of 64-byte blocks a job of `len` bytes takes (an empty input is one empty block). */
static inline size_t b3_job_blocks(uint32_t len) {
    return len == 0 ? 1 : (len + B3_BLOCK_BYTES - 1) / B3_BLOCK_BYTES;
}

/* Fill `block` with block `b` of a job, zero-padded; return its length. */
static inline uint32_t b3_job_block(const b3_job *job, size_t b, uint8_t block[64]) {
    uint32_t offset = (uint32_t)(b * B3_BLOCK_BYTES);
    uint32_t take = job->len - offset;
    if (take > B3_BLOCK_BYTES) take = B3_BLOCK_BYTES;
    memset(block, 0, B3_BLOCK_BYTES);
    if (take) memcpy(block, job->input + offset, take);
    return take;
}

/* One compression, updating the chaining value in place (portable C). */
void engine_blake3_compress_portable(uint32_t cv[8], const uint8_t block[64], uint32_t block_len,
                                     uint64_t counter, uint32_t flags);

/* Hash `n` jobs that all take `blocks` blocks; one file per ISA. */
typedef void (*b3_jobs_fn)(const uint32_t key[8], const b3_job *jobs, size_t n, size_t blocks);
void engine_blake3_jobs_portable(const uint32_t key[8], const b3_job *jobs, size_t n, size_t blocks);
void engine_blake3_jobs_avx2(const uint32_t key[8], const b3_job *jobs, size_t n, size_t blocks);
void engine_blake3_jobs_avx512(const uint32_t key[8], const b3_job *jobs, size_t n, size_t blocks);

/* Hash `count` one-block messages of 64 bytes each, src[64 i ..] -> dst[32 i ..], all with the
 * same flags (start, end and root included) and counter 0: the Merkle node levels, whose inputs
 * and outputs are contiguous, so no job descriptions are needed. */
typedef void (*b3_nodes_fn)(const uint32_t key[8], const uint8_t *src, size_t count,
                            uint32_t flags, uint8_t *dst);
void engine_blake3_nodes_portable(const uint32_t key[8], const uint8_t *src, size_t count,
                                  uint32_t flags, uint8_t *dst);
void engine_blake3_nodes_avx2(const uint32_t key[8], const uint8_t *src, size_t count,
                              uint32_t flags, uint8_t *dst);
void engine_blake3_nodes_avx512(const uint32_t key[8], const uint8_t *src, size_t count,
                                uint32_t flags, uint8_t *dst);

/* Where hash i goes: outs[i] when the caller gave one pointer per message, else out + 32 i. */
typedef struct {
    uint8_t *out;
    uint8_t *const *outs;
} b3_out_map;

static inline uint8_t *b3_out_at(b3_out_map map, size_t i) {
    return map.outs ? map.outs[i] : map.out + (size_t)B3_OUT_BYTES * i;
}

/* Many messages as the short-message path reads them, by index: either one pointer and length
 * per message (`inputs`, `lens`), or the packed form, one buffer and n + 1 byte offsets
 * (`inputs` NULL; message i is base[offsets[i] .. offsets[i+1])). Either way no record per
 * message is built: the kernels read pointer and length when they fill a lane. */
typedef struct {
    const uint8_t *const *inputs;
    const size_t *lens;
    const uint8_t *base;
    const uint64_t *offsets;
    b3_out_map out;
} b3_msgs;

static inline const uint8_t *b3_msg_ptr(const b3_msgs *m, size_t i) {
    return m->inputs ? m->inputs[i] : m->base + m->offsets[i];
}

static inline size_t b3_msg_len(const b3_msgs *m, size_t i) {
    return m->inputs ? m->lens[i] : (size_t)(m->offsets[i + 1] - m->offsets[i]);
}

/* Hash n short messages (at most one chunk each, all taking `blocks` blocks) as root chunks
 * with `flags` on every block (0 or KEYED_HASH): messages idx[0..n) of `msgs`, or first ..
 * first + n - 1 when idx is NULL (a run of equal block counts needs no index). */
typedef void (*b3_msgs_fn)(const uint32_t key[8], uint32_t flags, const b3_msgs *msgs,
                           const uint32_t *idx, size_t first, size_t n, size_t blocks);
void engine_blake3_msgs_avx2(const uint32_t key[8], uint32_t flags, const b3_msgs *msgs,
                             const uint32_t *idx, size_t first, size_t n, size_t blocks);

/* The kernels of the path in force (blake3_dispatch.c). b3_msgs_kernel is NULL on a path
 * without a message kernel: there the short messages become job descriptions for its jobs
 * kernel (blake3_batch.c). */
b3_jobs_fn b3_jobs_kernel(void);
b3_nodes_fn b3_nodes_kernel(void);
b3_msgs_fn b3_msgs_kernel(void);

/* ---- splitting work across the pool (blake3_batch.c, blake3_tree.c, blake3_merkle.c) ---- */

/* Jobs per pool task: large enough to amortise the atomic claim, small enough to balance. */
#define B3_JOBS_PER_TASK 512
/* Below this many jobs a batch runs on the calling thread only. */
#define B3_PARALLEL_JOBS_MIN 2048
/* Short messages and Merkle pairs are handled in tasks of this many consecutive items. */
#define B3_TASK_MSGS 1024

/* Run jobs already grouped by block count: bucket_start[b] .. bucket_start[b+1] hold the jobs
 * of b+1 blocks (17 boundaries); large batches are split across the pool. */
int b3_run_bucketed(const uint32_t key[8], const b3_job *jobs, const size_t bucket_start[17],
                    int threads);
/* Jobs that all take one block (parents). */
int b3_run_single_block(const uint32_t key[8], const b3_job *jobs, size_t n, int threads);

/* Hash every message longer than one chunk among inputs[0..n) (blake3_tree.c): one job per
 * chunk, then rounds of parents; shorter messages are skipped. */
int b3_hash_long(const uint32_t key_words[8], uint8_t flags, const uint8_t *const *inputs,
                 const size_t *lens, size_t n, b3_out_map out, int threads);

/* Per-lane helpers for the SIMD files: the block pointer of lane `job` for block `b` (a
 * zero-padded copy in `scratch` when the block is partial), its length and its flags. */
static inline const uint8_t *b3_lane_block(const b3_job *job, size_t b, size_t blocks,
                                           uint8_t scratch[64], uint32_t *block_len,
                                           uint32_t *flags) {
    uint32_t f = job->flags;
    if (b == 0) f |= job->flags_start;
    if (b + 1 == blocks) f |= job->flags_end;
    *flags = f;
    uint32_t offset = (uint32_t)(b * B3_BLOCK_BYTES);
    if (job->len >= offset + B3_BLOCK_BYTES) {
        *block_len = B3_BLOCK_BYTES;
        return job->input + offset;
    }
    *block_len = b3_job_block(job, b, scratch);
    return scratch;
}

#endif
