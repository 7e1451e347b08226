/* SM3 internals shared by the portable, AVX2 and AVX-512 files, the lane scheduler (sm3.c) and
 * the dispatcher.
 *
 * The unit of work is a *job*: one message, optionally preceded by a prefix (SM2's Z, a Merkle
 * domain byte), hashed as a chain of 64-byte blocks. The SIMD kernels compress one block for
 * each of 8 or 16 lanes at once; the scheduler gives every lane its own job and refills a lane
 * with the next job the moment its message ends, so messages of any lengths share lanes.
 */
#ifndef ENGINE_SM3_IMPL_H
#define ENGINE_SM3_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SM3_BLOCK_BYTES 64
#define SM3_LANES_MAX 16

typedef struct {
    const uint8_t *prefix; /* prefix_len bytes hashed before data */
    const uint8_t *data;   /* len bytes; may be NULL when len == 0 */
    size_t len;
    size_t prefix_len;     /* at most 64 */
    uint8_t *out;          /* 32 bytes */
} sm3_job;

static const uint32_t SM3_IV[8] = {
    0x7380166Fu, 0x4914B2B9u, 0x172442D7u, 0xDA8A0600u,
    0xA96F30BCu, 0x163138AAu, 0xE38DEE4Du, 0xB0FB0E4Eu,
};

/* T_j <<< (j mod 32), the round constants as the compression adds them. */
static const uint32_t SM3_TJ[64] = {
    0x79CC4519u, 0xF3988A32u, 0xE7311465u, 0xCE6228CBu, 0x9CC45197u, 0x3988A32Fu, 0x7311465Eu,
    0xE6228CBCu, 0xCC451979u, 0x988A32F3u, 0x311465E7u, 0x6228CBCEu, 0xC451979Cu, 0x88A32F39u,
    0x11465E73u, 0x228CBCE6u, 0x9D8A7A87u, 0x3B14F50Fu, 0x7629EA1Eu, 0xEC53D43Cu, 0xD8A7A879u,
    0xB14F50F3u, 0x629EA1E7u, 0xC53D43CEu, 0x8A7A879Du, 0x14F50F3Bu, 0x29EA1E76u, 0x53D43CECu,
    0xA7A879D8u, 0x4F50F3B1u, 0x9EA1E762u, 0x3D43CEC5u, 0x7A879D8Au, 0xF50F3B14u, 0xEA1E7629u,
    0xD43CEC53u, 0xA879D8A7u, 0x50F3B14Fu, 0xA1E7629Eu, 0x43CEC53Du, 0x879D8A7Au, 0x0F3B14F5u,
    0x1E7629EAu, 0x3CEC53D4u, 0x79D8A7A8u, 0xF3B14F50u, 0xE7629EA1u, 0xCEC53D43u, 0x9D8A7A87u,
    0x3B14F50Fu, 0x7629EA1Eu, 0xEC53D43Cu, 0xD8A7A879u, 0xB14F50F3u, 0x629EA1E7u, 0xC53D43CEu,
    0x8A7A879Du, 0x14F50F3Bu, 0x29EA1E76u, 0x53D43CECu, 0xA7A879D8u, 0x4F50F3B1u, 0x9EA1E762u,
    0x3D43CEC5u,
};

static inline uint32_t sm3_load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void sm3_store_be32(uint8_t *p, uint32_t w) {
    p[0] = (uint8_t)(w >> 24);
    p[1] = (uint8_t)(w >> 16);
    p[2] = (uint8_t)(w >> 8);
    p[3] = (uint8_t)w;
}

/* Blocks of the padded message prefix || data (length L bytes: L + 1 + 8 bytes rounded up). */
static inline size_t sm3_job_blocks(const sm3_job *job) {
    return (job->prefix_len + job->len + 8) / SM3_BLOCK_BYTES + 1;
}

/* Block `b` of a job's padded message: a pointer into the data when the block lies wholly in
 * it, else the block assembled in `buf` (prefix bytes, data, 0x80, zeros, bit length). */
static inline const uint8_t *sm3_job_block(const sm3_job *job, size_t b, size_t blocks,
                                           uint8_t buf[SM3_BLOCK_BYTES]) {
    size_t start = b * SM3_BLOCK_BYTES, plen = job->prefix_len, total = plen + job->len;
    if (start >= plen && start + SM3_BLOCK_BYTES <= total) return job->data + (start - plen);
    size_t k = 0;
    if (start < plen) {
        size_t take = plen - start < SM3_BLOCK_BYTES ? plen - start : SM3_BLOCK_BYTES;
        memcpy(buf, job->prefix + start, take);
        k = take;
    }
    if (k < SM3_BLOCK_BYTES && start + k < total) {
        size_t from = start + k - plen, take = total - (start + k);
        if (take > SM3_BLOCK_BYTES - k) take = SM3_BLOCK_BYTES - k;
        memcpy(buf + k, job->data + from, take);
        k += take;
    }
    if (k < SM3_BLOCK_BYTES) {
        memset(buf + k, 0, SM3_BLOCK_BYTES - k);
        if (start + k == total) buf[k] = 0x80;
    }
    if (b + 1 == blocks) {
        uint64_t bits = (uint64_t)total << 3;
        for (int i = 0; i < 8; i++) buf[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    }
    return buf;
}

/* Compress `count` consecutive 64-byte blocks into one state: portable C, and on the AVX2 and
 * AVX-512 paths scalar BMI2 rounds with a vectorised message expansion (sm3_compress_vec.h). */
typedef void (*sm3_compress_fn)(uint32_t state[8], const uint8_t *blocks, size_t count);
void engine_sm3_compress_portable(uint32_t state[8], const uint8_t *blocks, size_t count);
void engine_sm3_compress_avx2(uint32_t state[8], const uint8_t *blocks, size_t count);
void engine_sm3_compress_avx512(uint32_t state[8], const uint8_t *blocks, size_t count);

/* Compress one block for every lane: state[w * LANES + lane] is word w of a lane's chaining
 * value, blocks[lane] its block (lanes without work point at any readable block). */
typedef void (*sm3_lanes_fn)(uint32_t *state, const uint8_t *const *blocks);
void engine_sm3_lanes_avx2(uint32_t *state, const uint8_t *const *blocks);   /* 8 lanes */
void engine_sm3_lanes_avx512(uint32_t *state, const uint8_t *const *blocks); /* 16 lanes */

/* The kernel the dispatcher chose: `lanes` 1 means the portable path (lanes_fn NULL). */
typedef struct {
    sm3_lanes_fn lanes_fn;
    sm3_compress_fn compress; /* one message */
    int lanes;
    int isa;
} sm3_kernel;

sm3_kernel engine_sm3_kernel(void);

/* Hash n jobs with the given kernel on the calling thread (sm3.c). */
void engine_sm3_run_jobs(sm3_kernel kernel, const sm3_job *jobs, size_t n);

#endif
