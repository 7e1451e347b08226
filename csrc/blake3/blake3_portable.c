/* BLAKE3 compression and the one-lane job kernel in portable C (the path every CPU has). */
#include "blake3/blake3_impl.h"

static inline uint32_t rotr32(uint32_t x, int c) { return (x >> c) | (x << (32 - c)); }

#define B3_G(a, b, c, d, x, y)                 \
    do {                                       \
        a = a + b + (x);                       \
        d = rotr32(d ^ a, 16);                 \
        c = c + d;                             \
        b = rotr32(b ^ c, 12);                 \
        a = a + b + (y);                       \
        d = rotr32(d ^ a, 8);                  \
        c = c + d;                             \
        b = rotr32(b ^ c, 7);                  \
    } while (0)

void engine_blake3_compress_portable(uint32_t cv[8], const uint8_t block[64], uint32_t block_len,
                                     uint64_t counter, uint32_t flags) {
    uint32_t m[16];
    for (int i = 0; i < 16; i++) m[i] = b3_load32(block + 4 * i);
    uint32_t v[16] = {
        cv[0], cv[1], cv[2], cv[3], cv[4], cv[5], cv[6], cv[7],
        B3_IV[0], B3_IV[1], B3_IV[2], B3_IV[3],
        (uint32_t)counter, (uint32_t)(counter >> 32), block_len, flags,
    };
    for (int r = 0; r < 7; r++) B3_ROUND(B3_G, v, m, r);
    for (int i = 0; i < 8; i++) cv[i] = v[i] ^ v[i + 8];
}

void engine_blake3_jobs_portable(const uint32_t key[8], const b3_job *jobs, size_t n,
                                 size_t blocks) {
    uint8_t scratch[B3_BLOCK_BYTES];
    for (size_t j = 0; j < n; j++) {
        uint32_t cv[8];
        memcpy(cv, key, sizeof cv);
        for (size_t b = 0; b < blocks; b++) {
            uint32_t block_len, flags;
            const uint8_t *block = b3_lane_block(&jobs[j], b, blocks, scratch, &block_len, &flags);
            engine_blake3_compress_portable(cv, block, block_len, jobs[j].counter, flags);
        }
        for (int i = 0; i < 8; i++) b3_store32(jobs[j].out + 4 * i, cv[i]);
    }
}

void engine_blake3_nodes_portable(const uint32_t key[8], const uint8_t *src, size_t count,
                                  uint32_t flags, uint8_t *dst) {
    for (size_t i = 0; i < count; i++) {
        uint32_t cv[8];
        memcpy(cv, key, sizeof cv);
        engine_blake3_compress_portable(cv, src + B3_BLOCK_BYTES * i, B3_BLOCK_BYTES, 0, flags);
        for (int w = 0; w < 8; w++) b3_store32(dst + B3_OUT_BYTES * i + 4 * w, cv[w]);
    }
}
