/* Declarations shared between the Ed25519 dispatcher, the batch splitter, the key cache and the
 * per-ISA kernels. */
#ifndef ENGINE_ED25519_IMPL_H
#define ENGINE_ED25519_IMPL_H

#include "ed25519/ed25519.h"
#include "ed25519/ed25519_types.h"
#include "ed25519/scalar.h"

/* Verify items as one batch; out[i] gets each verdict. With threads > 1 the kernel spreads its
 * own phases (preparation, Pippenger windows) over the pool, so it must not run inside a pool
 * task then. Returns a status code. */
typedef int (*ed_chunk_fn)(const engine_ed25519_item *items, size_t n, uint8_t *out, int threads);

int engine_ed25519_verify_chunk_portable(const engine_ed25519_item *items, size_t n, uint8_t *out,
                                         int threads);
#if defined(__x86_64__)
int engine_ed25519_verify_chunk_avx2(const engine_ed25519_item *items, size_t n, uint8_t *out,
                                         int threads);
int engine_ed25519_selftest_ifma(uint64_t seed, int iterations);
int engine_ed25519_selftest_avx2(uint64_t seed, int iterations);
int engine_ed25519_selftest_avx2_points(const uint8_t *encodings, size_t count);
/* [8]([s]B + [k](-A) + (-R)) == O in the AVX2 parallel form (ed25519_avx2.c), which the avx512
 * kernel shares; key holds -A with its tables. */
int engine_ed25519_single_check_avx2v(const ed_key *key, const sc256 *k, const sc256 *s,
                                      const ge_niels *neg_r);
int engine_ed25519_verify_chunk_avx512(const engine_ed25519_item *items, size_t n, uint8_t *out,
                                         int threads);
#endif

/* Which multi-scalar multiplication a kernel runs: its Straus/Pippenger crossover differs. */
enum ed_msm_kind { ED_MSM_SCALAR = 0, ED_MSM_IFMA = 1, ED_MSM_AVX2 = 2 };

/* A kernel file as the dispatcher hands it out (ed25519_dispatch.c). */
typedef struct {
    const char *name; /* the path reported by engine_ed25519_isa_name() */
    ed_chunk_fn verify_chunk;
    enum ed_msm_kind msm;
} ed_kernel;

/* The kernel of the path in force. */
const ed_kernel *ed_kernel_selected(void);

/* Key cache (cache.c): copy a cached key out (with its table when want_table); 1 on a hit. */
int ed_cache_get(const uint8_t pk[32], ed_key *out, int want_table);
/* The cache's hash of a key, keyed by the process's random secret (batches probe with it too:
 * keys chosen to share bytes do not pile up on one slot). */
uint64_t ed_key_hash(const uint8_t pk[32]);
void ed_cache_put(const uint8_t pk[32], const ed_key *key);

/* Random bytes and batch coefficients (ed25519_coeffs.c), from the OS CSPRNG; 0 on success.
 * A coefficient is ED_COEFF_BYTES little-endian bytes (128 bits). */
#define ED_COEFF_BYTES 16
int ed_random_bytes(uint8_t *buf, size_t len);
int ed_random_coefficients(uint8_t *z_bytes, size_t count);

/* Batch equations that did not hold, since the process started (ed25519_batch.c): each one
 * sends its batch to bisection. A test hook: honest batches must never add to it. */
extern unsigned long ed_batch_equation_failures;

/* Points from which a batch uses Pippenger rather than Straus (ed25519_batch.c). */
size_t ed_pippenger_min_points(enum ed_msm_kind msm);

#endif
