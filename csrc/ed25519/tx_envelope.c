/* Transaction envelopes v1 (layout in tx_envelope.h): parsing, and verification of many
 * envelopes as one batch of signatures whose messages are the sign prefix plus the envelope. */
#include "ed25519/tx_envelope.h"

#include <stdlib.h>
#include <string.h>

#include "ed25519/ed25519.h"

static uint64_t load_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

int engine_tx_parse(const uint8_t *env, size_t len, engine_tx_view *view) {
    if (len < ENGINE_TX_HEADER_BYTES + ENGINE_TX_SIGNATURE_BYTES) return 0;
    if (env[ENGINE_TX_VERSION_OFFSET] != ENGINE_TX_VERSION) return 0;
    uint64_t payload_len = load_le(env + ENGINE_TX_PAYLOAD_LEN_OFFSET, ENGINE_TX_PAYLOAD_LEN_BYTES);
    if (payload_len != len - ENGINE_TX_HEADER_BYTES - ENGINE_TX_SIGNATURE_BYTES) return 0;
    view->sender = env + ENGINE_TX_SENDER_OFFSET;
    view->nonce = load_le(env + ENGINE_TX_NONCE_OFFSET, ENGINE_TX_NONCE_BYTES);
    view->payload = env + ENGINE_TX_HEADER_BYTES;
    view->payload_len = (uint32_t)payload_len;
    view->signature = env + len - ENGINE_TX_SIGNATURE_BYTES;
    view->signed_len = len - ENGINE_TX_SIGNATURE_BYTES;
    return 1;
}

size_t engine_tx_sign_prefix(uint8_t *prefix, const uint8_t *chain_id, size_t chain_id_len) {
    if (chain_id_len > ENGINE_TX_CHAIN_ID_BYTES_MAX) return 0;
    size_t n = ENGINE_TX_DOMAIN_BYTES;
    memcpy(prefix, ENGINE_TX_DOMAIN, n);
    prefix[n++] = (uint8_t)chain_id_len;
    if (chain_id_len) memcpy(prefix + n, chain_id, chain_id_len);
    return n + chain_id_len;
}

/* The signature item of one envelope; a NULL pk marks a malformed one (verdict 0). */
static void tx_item(engine_ed25519_item *it, const uint8_t *env, size_t len,
                    const uint8_t *prefix, size_t prefix_len) {
    engine_tx_view view;
    int ok = engine_tx_parse(env, len, &view);
    it->pk = ok ? view.sender : NULL;
    it->sig = ok ? view.signature : NULL;
    it->prefix = prefix;
    it->prefix_len = prefix_len;
    it->msg = env;
    it->msg_len = ok ? view.signed_len : 0;
}

int engine_ed25519_verify_txs(const uint8_t *const *envelopes, const size_t *lens, size_t n,
                              const uint8_t *chain_id, size_t chain_id_len, uint8_t *out,
                              int threads) {
    uint8_t prefix[ENGINE_TX_SIGN_PREFIX_BYTES_MAX];
    size_t prefix_len = engine_tx_sign_prefix(prefix, chain_id, chain_id_len);
    if (prefix_len == 0) return ENGINE_ED25519_EINVAL;
    engine_ed25519_item *items = (engine_ed25519_item *)malloc((n ? n : 1) * sizeof *items);
    if (!items) return ENGINE_ED25519_ENOMEM;
    for (size_t i = 0; i < n; i++) tx_item(&items[i], envelopes[i], lens[i], prefix, prefix_len);
    int rc = engine_ed25519_verify_items(items, n, out, threads);
    free(items);
    return rc;
}
