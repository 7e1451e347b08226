/* SM3 (GB/T 32905-2016) and the SM3 Merkle tree: the API the bindings and the SM2 verifier call.
 *
 * Pure functions over buffers; no Python here. Functions taking `threads` may run on several
 * threads (threads <= 0: one per CPU) and must be called without the GIL held when the input is
 * large. Outputs are 32-byte digests.
 */
#ifndef ENGINE_SM3_H
#define ENGINE_SM3_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { ENGINE_SM3_OK = 0, ENGINE_SM3_ENOMEM = -1, ENGINE_SM3_EINVAL = -2 };

#define ENGINE_SM3_BYTES 32

/* SM3 of one message (one thread, any length). */
void engine_sm3(const uint8_t *data, size_t len, uint8_t out[32]);

/* SM3 of prefix || data: the prefix needs no copy (SM2's e = SM3(Z || M), Merkle leaves). */
void engine_sm3_prefixed(const uint8_t *prefix, size_t prefix_len, const uint8_t *data,
                         size_t len, uint8_t out[32]);

/* SM3 of every message, side by side in SIMD lanes: hash i goes to out + 32 i (outs == NULL) or
 * to outs[i]. With prefix_len > 0 every message is hashed as prefix || message. */
int engine_sm3_many(const uint8_t *const *inputs, const size_t *lens, size_t n,
                    const uint8_t *prefix, size_t prefix_len, uint8_t *out,
                    uint8_t *const *outs, int threads);

/* The SM3 Merkle tree (docs/formats.md): leaf(x) = SM3(0x00 || x), node(l, r) =
 * SM3(0x01 || l || r), root([]) = SM3(""), root([x]) = leaf(x), RFC 6962 shape.
 * Root over n leaf hashes (already leaf(x)). */
int engine_sm3_merkle_root(const uint8_t *leaf_hashes, size_t n, uint8_t out[32], int threads);

/* The audit path of leaf `index` (sibling first); writes path_len <= 64 hashes into path. */
int engine_sm3_merkle_path(const uint8_t *leaf_hashes, size_t n, size_t index, uint8_t *path,
                           size_t *path_len, int threads);

/* The path the kernels run now, and a test hook forcing one (0 portable, 1 avx2, 2 avx512,
 * -1 automatic); ENGINE_SM3_EINVAL if this CPU cannot run it. */
const char *engine_sm3_isa_name(void);
int engine_sm3_force_isa(int isa);

#ifdef __cplusplus
}
#endif

#endif
