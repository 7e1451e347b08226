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
                     ENGINE_ISA_PORTABLE, NULL, NULL, 0, NULL};
#if defined(__x86_64__)
    /* AVX2: the four-lane kernels (radix 2^29, vpmuludq), with the mulx/adx scalar build for
     * the rest (single signatures, cache upgrades, redone lanes). AVX-512 with IFMA: the
     * eight-lane kernels, with the same scalar code for the rest. engine_cpu_features() already
     * requires the OS to save the YMM / ZMM state (XGETBV). */
    uint32_t f = engine_cpu_features(), need = ENGINE_CPU_BMI2 | ENGINE_CPU_ADX;
    uint32_t need256 = need | ENGINE_CPU_AVX2;
    uint32_t need512 = need | ENGINE_CPU_AVX512F | ENGINE_CPU_AVX512VL | ENGINE_CPU_AVX512BW |
                       ENGINE_CPU_AVX512DQ | ENGINE_CPU_AVX512IFMA;
    enum engine_isa want = requested_isa();
    if (want >= ENGINE_ISA_AVX2 && (f & need) == need) {
        core.key_build = engine_sm2_key_build_avx2;
        core.check = engine_sm2_check_avx2;
        core.isa = ENGINE_ISA_AVX2;
    }
    if (want >= ENGINE_ISA_AVX2 && (f & need256) == need256) {
        core.keys8 = engine_sm2_keys4_avx2;
        core.check8 = engine_sm2_check4_avx2;
        core.lanes = 4;
        core.keys_many = engine_sm2_keys_many_avx2;
    }
    if (want >= ENGINE_ISA_AVX512 && (f & need512) == need512) {
        core.keys8 = engine_sm2_keys8_avx512;
        core.check8 = engine_sm2_check8_avx512;
        core.lanes = 8;
        core.keys_many = NULL;
        core.isa = ENGINE_ISA_AVX512;
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

static void lanes_from_bytes(uint64_t v[][4], const uint8_t *b, int lanes) {
    for (int l = 0; l < lanes; l++)
        for (int i = 0; i < 4; i++) {
            uint64_t x = 0;
            for (int k = 7; k >= 0; k--) x = (x << 8) | b[32 * l + 8 * i + k];
            v[l][i] = x;
        }
}

static void lanes_to_bytes(uint8_t *b, const uint64_t v[][4], int lanes) {
    for (int l = 0; l < lanes; l++)
        for (int i = 0; i < 4; i++)
            for (int k = 0; k < 8; k++) b[32 * l + 8 * i + k] = (uint8_t)(v[l][i] >> (8 * k));
}

int engine_sm2_lane_field(int op, const uint8_t a[256], const uint8_t b[256], uint8_t out[256]) {
#if defined(__x86_64__)
    uint64_t va[8][4], vb[8][4], vo[8][4];
    lanes_from_bytes(va, a, 8);
    lanes_from_bytes(vb, b, 8);
    if (op >= 16) { /* the AVX2 four-lane field, run on lanes 0..3 and then 4..7 */
        uint32_t need = ENGINE_CPU_AVX2 | ENGINE_CPU_BMI2 | ENGINE_CPU_ADX;
        if ((engine_cpu_features() & need) != need || op > 33) return -1;
        for (int h = 0; h < 8; h += 4)
            if (engine_sm2_field4_avx2(op - 16, (const uint64_t(*)[4])(va + h),
                                       (const uint64_t(*)[4])(vb + h), vo + h) != 0)
                return -1;
        lanes_to_bytes(out, (const uint64_t(*)[4])vo, 8);
        return 0;
    }
    uint32_t need = ENGINE_CPU_AVX512F | ENGINE_CPU_AVX512VL | ENGINE_CPU_AVX512BW |
                    ENGINE_CPU_AVX512DQ | ENGINE_CPU_AVX512IFMA;
    if ((engine_cpu_features() & need) != need || op < 0 || op > 6) return -1;
    engine_sm2_field8_avx512(op, (const uint64_t(*)[4])va, (const uint64_t(*)[4])vb, vo);
    lanes_to_bytes(out, (const uint64_t(*)[4])vo, 8);
    return 0;
#else
    (void)op;
    (void)a;
    (void)b;
    (void)out;
    return -1;
#endif
}
