/* SM3 dispatch: which kernel runs (CPU, ENGINE_FORCE_ISA and the test hook). Nothing else. */
#include "sm3/sm3.h"
#include "sm3/sm3_impl.h"

#include "common/cpu.h"

static int g_forced_isa = -1;

static enum engine_isa current_isa(void) {
    int forced = __atomic_load_n(&g_forced_isa, __ATOMIC_RELAXED);
    return forced >= 0 ? (enum engine_isa)forced : engine_isa_selected();
}

int engine_sm3_force_isa(int isa) {
    if (isa < -1 || isa > ENGINE_ISA_AVX512) return ENGINE_SM3_EINVAL;
    if (isa >= 0 && !engine_isa_supported((enum engine_isa)isa)) return ENGINE_SM3_EINVAL;
    __atomic_store_n(&g_forced_isa, isa, __ATOMIC_RELAXED);
    return ENGINE_SM3_OK;
}

const char *engine_sm3_isa_name(void) { return engine_isa_name(current_isa()); }

sm3_kernel engine_sm3_kernel(void) {
    enum engine_isa isa = current_isa();
    sm3_kernel k = {NULL, engine_sm3_compress_portable, 1, ENGINE_ISA_PORTABLE};
#if defined(__x86_64__)
    if (isa == ENGINE_ISA_AVX512) {
        k.lanes_fn = engine_sm3_lanes_avx512;
        k.compress = engine_sm3_compress_avx512;
        k.lanes = 16;
        k.isa = ENGINE_ISA_AVX512;
    } else if (isa == ENGINE_ISA_AVX2) {
        k.lanes_fn = engine_sm3_lanes_avx2;
        k.compress = engine_sm3_compress_avx2;
        k.lanes = 8;
        k.isa = ENGINE_ISA_AVX2;
    }
#else
    (void)isa;
#endif
    return k;
}
