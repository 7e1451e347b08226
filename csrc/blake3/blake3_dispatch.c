/* BLAKE3 dispatch: which kernel file runs. The ISA is chosen once (csrc/common/cpu.c, which
 * honours ENGINE_FORCE_ISA), a test may override it, and the callers (blake3_batch.c,
 * blake3_tree.c, blake3_merkle.c) ask here for the kernel of the path in force. Nothing else. */
#include "blake3/blake3.h"
#include "blake3/blake3_impl.h"
#include "common/cpu.h"

static int g_forced_isa = -1;

static enum engine_isa current_isa(void) {
    int forced = __atomic_load_n(&g_forced_isa, __ATOMIC_RELAXED);
    return forced >= 0 ? (enum engine_isa)forced : engine_isa_selected();
}

int engine_blake3_force_isa(int isa) {
    if (isa < -1 || isa > ENGINE_ISA_AVX512) return ENGINE_EINVAL;
    if (isa >= 0 && !engine_isa_supported((enum engine_isa)isa)) return ENGINE_EINVAL;
    __atomic_store_n(&g_forced_isa, isa, __ATOMIC_RELAXED);
    return ENGINE_OK;
}

const char *engine_blake3_isa_name(void) { return engine_isa_name(current_isa()); }

b3_jobs_fn b3_jobs_kernel(void) {
#if defined(__x86_64__)
    enum engine_isa isa = current_isa();
    if (isa == ENGINE_ISA_AVX512) return engine_blake3_jobs_avx512;
    if (isa == ENGINE_ISA_AVX2) return engine_blake3_jobs_avx2;
#endif
    return engine_blake3_jobs_portable;
}

b3_nodes_fn b3_nodes_kernel(void) {
#if defined(__x86_64__)
    enum engine_isa isa = current_isa();
    if (isa == ENGINE_ISA_AVX512) return engine_blake3_nodes_avx512;
    if (isa == ENGINE_ISA_AVX2) return engine_blake3_nodes_avx2;
#endif
    return engine_blake3_nodes_portable;
}

b3_msgs_fn b3_msgs_kernel(void) {
#if defined(__x86_64__)
    if (current_isa() == ENGINE_ISA_AVX2) return engine_blake3_msgs_avx2;
#endif
    return NULL;
}
