/* BLAKE3's own tree for messages longer than one chunk (1024 bytes).
 *
 * A long message becomes one job per chunk (counter = chunk index) followed by rounds of parent
 * jobs; BLAKE3's tree and the engine's Merkle tree share one shape (the left subtree holds the
 * largest power of two below n), which bottom-up pairing with the odd last node promoted
 * unchanged produces exactly. Every round of parents, across all long messages, is one more
 * batch for the same kernels (b3_run_single_block in blake3_batch.c).
 */
#include "blake3/blake3.h"

#include <stdlib.h>

#include "blake3/blake3_impl.h"

static size_t chunks_of(size_t len) { return (len + B3_CHUNK_BYTES - 1) / B3_CHUNK_BYTES; }

/* Reduce the chunk values of every long message to its root, one round of parents at a time.
 * cvs holds each long message's chunk values back to back; spare is as large as cvs. */
static int reduce_long(const uint32_t key[8], uint8_t flags, size_t long_count,
                       const size_t *long_index, const size_t *long_chunks, uint8_t *cvs,
                       uint8_t *spare, b3_out_map out, int threads) {
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
                j->out = is_root ? b3_out_at(out, long_index[m]) : dst + 16 * i;
            }
            if (c & 1) memcpy(dst + 32 * (c / 2), src + 32 * (c - 1), 32);
            level[m] = (c + 1) / 2;
        }
        if (n == 0) break;
        rc = b3_run_single_block(key, jobs, n, threads);
        if (rc) break;
        uint8_t *t = cur;
        cur = next;
        next = t;
    }
    free(level);
    free(jobs);
    return rc;
}

/* Messages over one chunk: one job per chunk (counter = chunk index), then parent rounds. */
int b3_hash_long(const uint32_t key_words[8], uint8_t flags, const uint8_t *const *inputs,
                 const size_t *lens, size_t n, b3_out_map out, int threads) {
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
    rc = b3_run_bucketed(key_words, jobs, starts, threads);
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
