/* Ed25519 dispatch: which kernel file runs. The ISA is read once (csrc/common/cpu.c, which
 * honours ENGINE_FORCE_ISA); a test may force another path; the entry points (ed25519_batch.c,
 * tx_envelope.c) ask here for the kernel in force. Nothing else. */
#include "common/cpu.h"
#include "ed25519/ed25519_impl.h"

static const ed_kernel KERNEL_PORTABLE = {"portable", engine_ed25519_verify_chunk_portable,
                                          ED_MSM_SCALAR};
#if defined(__x86_64__)
static const ed_kernel KERNEL_AVX2 = {"avx2", engine_ed25519_verify_chunk_avx2, ED_MSM_AVX2};
static const ed_kernel KERNEL_AVX512 = {"avx512", engine_ed25519_verify_chunk_avx512,
                                        ED_MSM_IFMA};
#endif

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

#if defined(__x86_64__)
static int cpu_has_ifma(void) {
    uint32_t f = engine_cpu_features();
    return (f & ENGINE_CPU_AVX512IFMA) && (f & ENGINE_CPU_AVX512DQ);
}
#endif

/* The avx512 kernel needs IFMA on top of F/VL/BW; an AVX-512 CPU without it runs the avx2
 * kernel, and the reported name says so. */
const ed_kernel *ed_kernel_selected(void) {
#if defined(__x86_64__)
    enum engine_isa isa = current_isa();
    if (isa >= ENGINE_ISA_AVX512 && cpu_has_ifma()) return &KERNEL_AVX512;
    if (isa >= ENGINE_ISA_AVX2) return &KERNEL_AVX2;
#endif
    return &KERNEL_PORTABLE;
}

const char *engine_ed25519_isa_name(void) { return ed_kernel_selected()->name; }

int engine_ed25519_selftest(uint64_t seed, int iterations) {
#if defined(__x86_64__)
    if (cpu_has_ifma() && engine_isa_supported(ENGINE_ISA_AVX512))
        return engine_ed25519_selftest_ifma(seed, iterations);
#else
    (void)seed;
    (void)iterations;
#endif
    return -1;
}

int engine_ed25519_selftest_vector(uint64_t seed, int iterations) {
#if defined(__x86_64__)
    if (engine_isa_supported(ENGINE_ISA_AVX2)) return engine_ed25519_selftest_avx2(seed, iterations);
#else
    (void)seed;
    (void)iterations;
#endif
    return -1;
}

int engine_ed25519_selftest_vector_points(const uint8_t *encodings, size_t count) {
#if defined(__x86_64__)
    if (engine_isa_supported(ENGINE_ISA_AVX2)) {
        int bad = engine_ed25519_selftest_avx2_points(encodings, count);
        return bad < 0 ? -2 : bad;
    }
#else
    (void)encodings;
    (void)count;
#endif
    return -1;
}
