/* Ed25519 dispatch: picks the kernel for the selected ISA, splits batches across the native
 * thread pool, draws batch coefficients from the OS CSPRNG and parses transaction envelopes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/random.h>
#endif

#include "common/cpu.h"
#include "common/pool.h"
#include "ed25519/ed25519_impl.h"

/* Each thread gets at least this many signatures: smaller chunks lose more to the per-batch
 * fixed costs (doublings, bucket sums) than they gain in parallelism. */
#define CHUNK_ITEMS_MIN 48
/* From this many signatures a multi-threaded batch is parallel inside one equation. */
#define INNER_PARALLEL_ITEMS_MIN 512

/* Envelope v1: version u8 | sender 32 | nonce u64 | payload length u32 | payload | sig 64. */
#define TX_HEADER_BYTES (1 + 32 + 8 + 4)
#define TX_SIGNATURE_BYTES 64
#define TX_VERSION 1
static const char TX_DOMAIN[] = "engine/tx/v1";

/* Straus/Pippenger crossovers, in points (2 per signature + B), measured with
 * bench/test_bench_ed25519.py (crossover lines): the scalar kernels from 64 signatures, the
 * IFMA one, whose Pippenger runs eight windows in lanes, from 6. 0 = no override (tests set one
 * to force either method). */
static size_t ed_pippenger_min_override = 0;
#define PIPPENGER_MIN_POINTS_SCALAR (2 * 64 + 1)
#define PIPPENGER_MIN_POINTS_IFMA (2 * 6 + 1)

void engine_ed25519_set_pippenger_min(size_t n) { ed_pippenger_min_override = n; }

static int g_forced_isa = -1;

static enum engine_isa current_isa(void) {
    int forced = __atomic_load_n(&g_forced_isa, __ATOMIC_RELAXED);
    return forced >= 0 ? (enum engine_isa)forced : engine_isa_selected();
}

int engine_ed25519_force_isa(int isa) {
    if (isa < -1 || isa > ENGINE_ISA_AVX512) return ENGINE_ED25519_EINVAL;
    if (isa >= 0 && !engine_isa_supported((enum engine_isa)isa)) return ENGINE_ED25519_EINVAL;
    __atomic_store_n(&g_forced_isa, isa, __ATOMIC_RELAXED);
    return ENGINE_ED25519_OK;
}

/* The avx512 kernel needs IFMA on top of F/VL/BW; an AVX-512 CPU without it runs the avx2
 * kernel, and the reported name says so. */
static ed_chunk_fn kernel_for(enum engine_isa isa, const char **name) {
#if defined(__x86_64__)
    if (isa >= ENGINE_ISA_AVX512 && (engine_cpu_features() & ENGINE_CPU_AVX512IFMA) &&
        (engine_cpu_features() & ENGINE_CPU_AVX512DQ)) {
        *name = "avx512";
        return engine_ed25519_verify_chunk_avx512;
    }
    if (isa >= ENGINE_ISA_AVX2) {
        *name = "avx2";
        return engine_ed25519_verify_chunk_avx2;
    }
#else
    (void)isa;
#endif
    *name = "portable";
    return engine_ed25519_verify_chunk_portable;
}

size_t ed_pippenger_min_points(int ifma) {
    if (ed_pippenger_min_override) return ed_pippenger_min_override;
    return ifma ? PIPPENGER_MIN_POINTS_IFMA : PIPPENGER_MIN_POINTS_SCALAR;
}

const char *engine_ed25519_isa_name(void) {
    const char *name;
    kernel_for(current_isa(), &name);
    return name;
}

size_t engine_ed25519_pippenger_min(void) {
    const char *name;
    kernel_for(current_isa(), &name);
    return ed_pippenger_min_points(strcmp(name, "avx512") == 0);
}

int ed_random_bytes(uint8_t *buf, size_t len) {
#if defined(__linux__)
    while (len) {
        ssize_t got = getrandom(buf, len, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += got;
        len -= (size_t)got;
    }
    return 0;
#else
    arc4random_buf(buf, len);
    return 0;
#endif
}

int engine_ed25519_verify(const uint8_t pk[32], const uint8_t *msg, size_t msg_len,
                          const uint8_t sig[64]) {
    engine_ed25519_item it = {pk, sig, NULL, 0, msg, msg_len};
    uint8_t out = 0;
    const char *name;
    if (kernel_for(current_isa(), &name)(&it, 1, &out, 1) != ENGINE_ED25519_OK) return 0;
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
    const char *name;
    chunk_ctx ctx = {kernel_for(current_isa(), &name), items, out, n, 1, ENGINE_ED25519_OK};
    int t = engine_threads_resolve(threads);
    /* A large batch stays one equation, its phases spread over the pool (Pippenger's cost per
     * signature falls with size); a smaller one is split into independent batches. */
    if (t > 1 && n >= INNER_PARALLEL_ITEMS_MIN) return ctx.kernel(items, n, out, t);
    size_t chunks = n / CHUNK_ITEMS_MIN;
    if (chunks > (size_t)t) chunks = (size_t)t;
    if (chunks <= 1) return ctx.kernel(items, n, out, 1);
    ctx.chunks = chunks;
    engine_parallel_for(t, chunks, chunk_task, &ctx);
    return ctx.rc;
}

/* Fill item from one envelope; NULL pk marks a malformed envelope. */
static void parse_tx(engine_ed25519_item *it, const uint8_t *env, size_t len,
                     const uint8_t *prefix, size_t prefix_len) {
    it->pk = NULL;
    it->sig = NULL;
    it->prefix = prefix;
    it->prefix_len = prefix_len;
    it->msg = env;
    it->msg_len = 0;
    if (len < TX_HEADER_BYTES + TX_SIGNATURE_BYTES || env[0] != TX_VERSION) return;
    uint32_t payload_len;
    memcpy(&payload_len, env + 1 + 32 + 8, 4); /* little-endian host */
    if ((size_t)payload_len != len - TX_HEADER_BYTES - TX_SIGNATURE_BYTES) return;
    it->pk = env + 1;
    it->sig = env + len - TX_SIGNATURE_BYTES;
    it->msg_len = len - TX_SIGNATURE_BYTES;
}

int engine_ed25519_verify_txs(const uint8_t *const *envelopes, const size_t *lens, size_t n,
                              const uint8_t *chain_id, size_t chain_id_len, uint8_t *out,
                              int threads) {
    if (chain_id_len > 255) return ENGINE_ED25519_EINVAL;
    uint8_t prefix[sizeof TX_DOMAIN - 1 + 1 + 255];
    size_t prefix_len = sizeof TX_DOMAIN - 1;
    memcpy(prefix, TX_DOMAIN, prefix_len);
    prefix[prefix_len++] = (uint8_t)chain_id_len;
    if (chain_id_len) memcpy(prefix + prefix_len, chain_id, chain_id_len);
    prefix_len += chain_id_len;
    engine_ed25519_item *items = (engine_ed25519_item *)malloc((n ? n : 1) * sizeof *items);
    if (!items) return ENGINE_ED25519_ENOMEM;
    for (size_t i = 0; i < n; i++) parse_tx(&items[i], envelopes[i], lens[i], prefix, prefix_len);
    int rc = engine_ed25519_verify_items(items, n, out, threads);
    free(items);
    return rc;
}

int engine_ed25519_selftest(uint64_t seed, int iterations) {
#if defined(__x86_64__)
    uint32_t f = engine_cpu_features();
    if ((f & ENGINE_CPU_AVX512IFMA) && (f & ENGINE_CPU_AVX512DQ) &&
        engine_isa_supported(ENGINE_ISA_AVX512))
        return engine_ed25519_selftest_ifma(seed, iterations);
#else
    (void)seed;
    (void)iterations;
#endif
    return -1;
}
