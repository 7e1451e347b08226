/* The BLAKE3 and Merkle API the bindings call. Pure functions over buffers; no Python here.
 *
 * Every function may run on several threads (threads <= 0: one per CPU) and must be called
 * without the GIL held when it is large. Outputs are 32-byte hashes.
 */
#ifndef ENGINE_BLAKE3_H
#define ENGINE_BLAKE3_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { ENGINE_OK = 0, ENGINE_ENOMEM = -1, ENGINE_EINVAL = -2 };

/* Hash n messages (any lengths) into out[32*i]; key == NULL for the plain hash. */
int engine_blake3_many(const uint8_t *const *inputs, const size_t *lens, size_t n,
                       const uint8_t *key, uint8_t *out, int threads);

/* As engine_blake3_many, but hash i goes to outs[i] (32 bytes each, anywhere): the bindings
 * hash straight into the result objects. */
int engine_blake3_many_into(const uint8_t *const *inputs, const size_t *lens, size_t n,
                            const uint8_t *key, uint8_t *const *outs, int threads);

/* The packed form: message i is data[offsets[i] .. offsets[i+1]) (n + 1 offsets, checked by
 * the caller: non-decreasing, within data), hash i to out[32*i]. No pointer or length array is
 * built unless some message is longer than one chunk. */
int engine_blake3_many_packed(const uint8_t *data, const uint64_t *offsets, size_t n,
                              const uint8_t *key, uint8_t *out, int threads);

/* Merkle root over n 32-byte leaf hashes (DESIGN.md section 2) with node key `node_key`. */
int engine_merkle_root(const uint8_t *leaf_hashes, size_t n, const uint8_t node_key[32],
                       uint8_t out[32], int threads);

/* The audit path of leaf `index` (sibling first); writes path_len <= 64 hashes into path. */
int engine_merkle_path(const uint8_t *leaf_hashes, size_t n, size_t index,
                       const uint8_t node_key[32], uint8_t *path, size_t *path_len, int threads);

/* The path the kernels run now (honours ENGINE_FORCE_ISA and engine_blake3_force_isa). */
const char *engine_blake3_isa_name(void);

/* Test hook: run a given path (0 portable, 1 avx2, 2 avx512), or -1 to restore the default.
 * Returns ENGINE_EINVAL if this CPU cannot run it. */
int engine_blake3_force_isa(int isa);

#ifdef __cplusplus
}
#endif

#endif
