/* Ed25519 verification under ZIP-215 (DESIGN.md section 2): single, batch and transaction
 * envelopes. Every entry point gives each signature the verdict of the single cofactored check
 * [8][S]B == [8]R + [8][k]A; batches only make reaching it cheaper.
 */
#ifndef ENGINE_ED25519_H
#define ENGINE_ED25519_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    ENGINE_ED25519_OK = 0,
    ENGINE_ED25519_ENOMEM = -1,
    ENGINE_ED25519_EINVAL = -2,
    ENGINE_ED25519_ERANDOM = -3, /* the OS CSPRNG failed */
};

/* One signature to check. The signed message is prefix || msg (prefix may be empty), so a
 * transaction's domain tag needs no copy. A NULL pk marks an entry that is already invalid
 * (a malformed envelope): its verdict is 0. */
typedef struct {
    const uint8_t *pk;  /* 32 bytes */
    const uint8_t *sig; /* 64 bytes */
    const uint8_t *prefix;
    size_t prefix_len;
    const uint8_t *msg;
    size_t msg_len;
} engine_ed25519_item;

/* 1 if valid, 0 if not. */
int engine_ed25519_verify(const uint8_t pk[32], const uint8_t *msg, size_t msg_len,
                          const uint8_t sig[64]);

/* out[i] = verdict of items[i]; threads <= 0 means all CPUs. Returns a status code. */
int engine_ed25519_verify_items(const engine_ed25519_item *items, size_t n, uint8_t *out,
                                int threads);

/* Parse and verify n transaction envelopes v1 (DESIGN.md section 2) for chain_id (< 256 bytes);
 * a malformed envelope gets 0. */
int engine_ed25519_verify_txs(const uint8_t *const *envelopes, const size_t *lens, size_t n,
                              const uint8_t *chain_id, size_t chain_id_len, uint8_t *out,
                              int threads);

/* Path choice: -1 = automatic, else an engine_isa the CPU supports. */
int engine_ed25519_force_isa(int isa);
const char *engine_ed25519_isa_name(void);

/* The decompressed public-key cache. Capacity 0 disables it. */
int engine_ed25519_cache_set_capacity(size_t keys);
size_t engine_ed25519_cache_capacity(void);
void engine_ed25519_cache_stats(uint64_t *hits, uint64_t *misses, size_t *entries);
void engine_ed25519_cache_clear(void);

/* Batch equations over at least this many points (2 per signature + 1) use Pippenger's method
 * instead of Straus's; the getter answers for the kernel selected now. Setting 0 restores the
 * measured defaults (a test hook). */
void engine_ed25519_set_pippenger_min(size_t points);
size_t engine_ed25519_pippenger_min(void);

/* Test hook: how many batch equations have failed in this process (each sends its batch to
 * bisection, which keeps the verdicts right but hides a wrong multi-scalar multiplication). */
unsigned long engine_ed25519_batch_equation_failures(void);

/* Test hook: the IFMA field against the radix-2^51 one on edge-case limbs; returns the number
 * of wrong results, or -1 when this build or CPU has no IFMA kernel. */
int engine_ed25519_selftest(uint64_t seed, int iterations);

/* Test hook: the AVX2 four-lane field and the parallel-form point addition, subtraction and
 * doubling against the radix-2^51 ones on edge-case limbs; the number of wrong results, or -1
 * when this build or CPU has no AVX2. */
int engine_ed25519_selftest_vector(uint64_t seed, int iterations);

/* Test hook: the AVX2 parallel-form point operations (addition, subtraction, doubling, every
 * operand form) against radix 2^51 on every pair of the points decoded from count 32-byte
 * encodings; the number of wrong results, -1 without AVX2, -2 when an encoding does not
 * decode. */
int engine_ed25519_selftest_vector_points(const uint8_t *encodings, size_t count);

#ifdef __cplusplus
}
#endif

#endif
