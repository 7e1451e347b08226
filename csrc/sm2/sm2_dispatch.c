/* SM2 dispatch: which curve-arithmetic build runs (CPU, ENGINE_FORCE_ISA, the test hook). */
#include "sm2/sm2.h"
#include "sm2/sm2_impl.h"

#include "common/cpu.h"

static int g_forced_isa = -1;

static enum engine_isa requested_isa(void) {
    int forced = __atomic_load_n(&g_forced_isa, __ATOMIC_RELAXED);
    return forced >= 0 ? (enum engine_isa)forced : engine_isa_selected();
}

int engine_sm2_force_isa(int isa) {
    if (isa < -1 || isa > ENGINE_ISA_AVX512) return ENGINE_SM2_EINVAL;
    if (isa >= 0 && !engine_isa_supported((enum engine_isa)isa)) return ENGINE_SM2_EINVAL;
    __atomic_store_n(&g_forced_isa, isa, __ATOMIC_RELAXED);
    return ENGINE_SM2_OK;
}

sm2_core engine_sm2_core(void) {
    sm2_core core = {engine_sm2_key_build_portable, engine_sm2_check_portable,
                     ENGINE_ISA_PORTABLE};
#if defined(__x86_64__)
    /* No SIMD kernel yet: the AVX2 and AVX-512 paths run the mulx/adx scalar build. */
    uint32_t need = ENGINE_CPU_BMI2 | ENGINE_CPU_ADX;
    if (requested_isa() >= ENGINE_ISA_AVX2 && (engine_cpu_features() & need) == need) {
        core.key_build = engine_sm2_key_build_avx2;
        core.check = engine_sm2_check_avx2;
        core.isa = ENGINE_ISA_AVX2;
    }
#endif
    return core;
}

const char *engine_sm2_isa_name(void) { return engine_isa_name((enum engine_isa)engine_sm2_core().isa); }

int engine_sm2_selftest(uint64_t seed, long iterations) {
#if defined(__x86_64__)
    uint32_t need = ENGINE_CPU_BMI2 | ENGINE_CPU_ADX;
    if ((engine_cpu_features() & need) == need) return engine_sm2_selftest_avx2(seed, iterations);
#else
    (void)seed;
    (void)iterations;
#endif
    return -1;
}
