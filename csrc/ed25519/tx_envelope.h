/* Transaction envelope v1 for the native side, defined here once (engine/tx.py is the Python
 * definition; tests/crypto/test_tx.py checks that the two agree field by field).
 *
 *   version u8 = 1 | sender public key 32 | nonce u64 LE | payload length u32 LE | payload
 *   | signature 64
 *
 * The signature is Ed25519 over TX_DOMAIN || u8 len(chain_id) || chain_id || envelope without
 * its signature; the verifier hashes those pieces without building the message.
 */
#ifndef ENGINE_ED25519_TX_ENVELOPE_H
#define ENGINE_ED25519_TX_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#define ENGINE_TX_VERSION 1
#define ENGINE_TX_VERSION_OFFSET 0
#define ENGINE_TX_SENDER_OFFSET 1
#define ENGINE_TX_SENDER_BYTES 32
#define ENGINE_TX_NONCE_OFFSET (ENGINE_TX_SENDER_OFFSET + ENGINE_TX_SENDER_BYTES)
#define ENGINE_TX_NONCE_BYTES 8
#define ENGINE_TX_PAYLOAD_LEN_OFFSET (ENGINE_TX_NONCE_OFFSET + ENGINE_TX_NONCE_BYTES)
#define ENGINE_TX_PAYLOAD_LEN_BYTES 4
#define ENGINE_TX_HEADER_BYTES (ENGINE_TX_PAYLOAD_LEN_OFFSET + ENGINE_TX_PAYLOAD_LEN_BYTES)
#define ENGINE_TX_SIGNATURE_BYTES 64
#define ENGINE_TX_DOMAIN "engine/tx/v1"
#define ENGINE_TX_DOMAIN_BYTES (sizeof ENGINE_TX_DOMAIN - 1)
#define ENGINE_TX_CHAIN_ID_BYTES_MAX 255
/* domain tag, length byte, chain id */
#define ENGINE_TX_SIGN_PREFIX_BYTES_MAX (ENGINE_TX_DOMAIN_BYTES + 1 + ENGINE_TX_CHAIN_ID_BYTES_MAX)

/* The fields of a well-formed envelope, pointing into it. */
typedef struct {
    const uint8_t *sender;    /* 32 bytes */
    uint64_t nonce;
    const uint8_t *payload;
    uint32_t payload_len;
    const uint8_t *signature; /* 64 bytes */
    size_t signed_len;        /* the envelope without its signature: env[0 .. signed_len) */
} engine_tx_view;

/* 1 and *view filled if env[0..len) is a well-formed v1 envelope, else 0. */
int engine_tx_parse(const uint8_t *env, size_t len, engine_tx_view *view);

/* Writes TX_DOMAIN || u8 len(chain_id) || chain_id to prefix (at least
 * ENGINE_TX_SIGN_PREFIX_BYTES_MAX bytes) and returns its length, or 0 when chain_id is longer
 * than ENGINE_TX_CHAIN_ID_BYTES_MAX. */
size_t engine_tx_sign_prefix(uint8_t *prefix, const uint8_t *chain_id, size_t chain_id_len);

#endif
