/* Ed25519 entry points over the kernel in force: one signature, and batches split across the
 * native thread pool (a large batch stays one equation with its phases spread over the pool;
 * a smaller one becomes independent batches). Also the Straus/Pippenger crossover policy. */
#include "common/pool.h"
#include "ed25519/ed25519_impl.h"

/* Each thread gets at least this many signatures: smaller chunks lose more to the per-batch
 * fixed costs (doublings, bucket sums) than they gain in parallelism. */
#define CHUNK_ITEMS_MIN 48
/* From this many signatures a multi-threaded batch is parallel inside one equation. */
#define INNER_PARALLEL_ITEMS_MIN 512

/* Straus/Pippenger crossovers, in points (2 per signature + B), measured with
 * bench/test_bench_ed25519.py (crossover lines): the scalar kernels from 64 signatures, the
 * IFMA one, whose Pippenger runs eight windows in lanes, from 6, the AVX2 one (Straus and
 * Pippenger both with parallel-form points) from AVX2_PIPPENGER_SIGS: Straus measured 10.3
 * against 11.7-12.0 us per signature at 64, even at 96 (10.3 against 10.5), behind at 160. 0 = no override (tests set one to
 * force either method). */
static size_t ed_pippenger_min_override = 0;
#define PIPPENGER_MIN_POINTS_SCALAR (2 * 64 + 1)
#define PIPPENGER_MIN_POINTS_IFMA (2 * 6 + 1)
#define AVX2_PIPPENGER_SIGS 96
#define PIPPENGER_MIN_POINTS_AVX2 (2 * AVX2_PIPPENGER_SIGS + 1)

void engine_ed25519_set_pippenger_min(size_t n) { ed_pippenger_min_override = n; }

unsigned long ed_batch_equation_failures = 0;

unsigned long engine_ed25519_batch_equation_failures(void) {
    return __atomic_load_n(&ed_batch_equation_failures, __ATOMIC_RELAXED);
}

size_t ed_pippenger_min_points(enum ed_msm_kind msm) {
    if (ed_pippenger_min_override) return ed_pippenger_min_override;
    if (msm == ED_MSM_IFMA) return PIPPENGER_MIN_POINTS_IFMA;
    if (msm == ED_MSM_AVX2) return PIPPENGER_MIN_POINTS_AVX2;
    return PIPPENGER_MIN_POINTS_SCALAR;
}

size_t engine_ed25519_pippenger_min(void) {
    return ed_pippenger_min_points(ed_kernel_selected()->msm);
}

int engine_ed25519_verify(const uint8_t pk[32], const uint8_t *msg, size_t msg_len,
                          const uint8_t sig[64]) {
    engine_ed25519_item it = {pk, sig, NULL, 0, msg, msg_len};
    uint8_t out = 0;
    if (ed_kernel_selected()->verify_chunk(&it, 1, &out, 1) != ENGINE_ED25519_OK) return 0;
    return out;
}

typedef struct {
    ed_chunk_fn kernel;
    const engine_ed25519_item *items;
    uint8_t *out;
    size_t n, chunks;
    int rc; /* first failure, atomically */
} chunk_ctx;

static void chunk_task(void *arg, size_t c) {
    chunk_ctx *ctx = (chunk_ctx *)arg;
    size_t first = ctx->n * c / ctx->chunks, last = ctx->n * (c + 1) / ctx->chunks;
    int rc = ctx->kernel(ctx->items + first, last - first, ctx->out + first, 1);
    if (rc != ENGINE_ED25519_OK) {
        int expected = ENGINE_ED25519_OK;
        __atomic_compare_exchange_n(&ctx->rc, &expected, rc, 0, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED);
    }
}

int engine_ed25519_verify_items(const engine_ed25519_item *items, size_t n, uint8_t *out,
                                int threads) {
    if (n == 0) return ENGINE_ED25519_OK;
    chunk_ctx ctx = {ed_kernel_selected()->verify_chunk, items, out, n, 1, ENGINE_ED25519_OK};
    int t = engine_threads_resolve(threads);
    if (t > 1 && n >= INNER_PARALLEL_ITEMS_MIN) return ctx.kernel(items, n, out, t);
    size_t chunks = n / CHUNK_ITEMS_MIN;
    if (chunks > (size_t)t) chunks = (size_t)t;
    if (chunks <= 1) return ctx.kernel(items, n, out, 1);
    ctx.chunks = chunks;
    engine_parallel_for(t, chunks, chunk_task, &ctx);
    return ctx.rc;
}
