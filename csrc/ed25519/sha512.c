/* SHA-512 (FIPS 180-4): a plain portable implementation. This CPU has no SHA-512 instructions
 * and the challenge hash is a small share of a verification, so one scalar version serves every
 * ISA path. */
#include "ed25519/sha512.h"

#include <string.h>

#include "ed25519/sha512_constants.h"

static inline uint64_t rotr(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }

static inline uint64_t load_be64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return __builtin_bswap64(v);
}

static void compress(uint64_t state[8], const uint8_t block[128]) {
    uint64_t w[80];
    for (int i = 0; i < 16; i++) w[i] = load_be64(block + 8 * i);
    for (int i = 16; i < 80; i++) {
        uint64_t s0 = rotr(w[i - 15], 1) ^ rotr(w[i - 15], 8) ^ (w[i - 15] >> 7);
        uint64_t s1 = rotr(w[i - 2], 19) ^ rotr(w[i - 2], 61) ^ (w[i - 2] >> 6);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint64_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint64_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int i = 0; i < 80; i++) {
        uint64_t S1 = rotr(e, 14) ^ rotr(e, 18) ^ rotr(e, 41);
        uint64_t ch = (e & f) ^ (~e & g);
        uint64_t t1 = h + S1 + ch + SHA512_K[i] + w[i];
        uint64_t S0 = rotr(a, 28) ^ rotr(a, 34) ^ rotr(a, 39);
        uint64_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint64_t t2 = S0 + maj;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

void engine_sha512_init(engine_sha512_ctx *ctx) {
    memcpy(ctx->state, SHA512_IV, sizeof SHA512_IV);
    ctx->bytes_total = 0;
    ctx->block_len = 0;
}

void engine_sha512_update(engine_sha512_ctx *ctx, const uint8_t *data, size_t len) {
    ctx->bytes_total += len;
    if (ctx->block_len) {
        size_t take = 128 - ctx->block_len;
        if (take > len) take = len;
        memcpy(ctx->block + ctx->block_len, data, take);
        ctx->block_len += take;
        data += take;
        len -= take;
        if (ctx->block_len < 128) return;
        compress(ctx->state, ctx->block);
        ctx->block_len = 0;
    }
    while (len >= 128) {
        compress(ctx->state, data);
        data += 128;
        len -= 128;
    }
    if (len) {
        memcpy(ctx->block, data, len);
        ctx->block_len = len;
    }
}

void engine_sha512_final(engine_sha512_ctx *ctx, uint8_t out[64]) {
    uint64_t bits = ctx->bytes_total * 8;
    ctx->block[ctx->block_len++] = 0x80;
    if (ctx->block_len > 112) {
        memset(ctx->block + ctx->block_len, 0, 128 - ctx->block_len);
        compress(ctx->state, ctx->block);
        ctx->block_len = 0;
    }
    memset(ctx->block + ctx->block_len, 0, 120 - ctx->block_len);
    /* Message length in bits as a 128-bit big-endian number; inputs stay below 2^61 bytes. */
    uint64_t be = __builtin_bswap64(bits);
    memcpy(ctx->block + 120, &be, 8);
    compress(ctx->state, ctx->block);
    for (int i = 0; i < 8; i++) {
        uint64_t v = __builtin_bswap64(ctx->state[i]);
        memcpy(out + 8 * i, &v, 8);
    }
}
