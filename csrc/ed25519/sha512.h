/* SHA-512 (FIPS 180-4), incremental; used for the Ed25519 challenge k = H(R || A || M). */
#ifndef ENGINE_ED25519_SHA512_H
#define ENGINE_ED25519_SHA512_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t state[8];
    uint64_t bytes_total;
    uint8_t block[128];
    size_t block_len;
} engine_sha512_ctx;

void engine_sha512_init(engine_sha512_ctx *ctx);
void engine_sha512_update(engine_sha512_ctx *ctx, const uint8_t *data, size_t len);
void engine_sha512_final(engine_sha512_ctx *ctx, uint8_t out[64]);

#endif
