/* CPU feature detection and the ISA choice shared by every native kernel.
 *
 * Features are read once (CPUID + XGETBV on x86-64: the OS must also save the wide registers).
 * ENGINE_FORCE_ISA=portable|avx2|avx512 caps the choice so that tests run every path this CPU
 * has; forcing a path the CPU lacks falls back to the best one it has below it, never above.
 */
#ifndef ENGINE_COMMON_CPU_H
#define ENGINE_COMMON_CPU_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum engine_isa {
    ENGINE_ISA_PORTABLE = 0,
    ENGINE_ISA_AVX2 = 1,
    ENGINE_ISA_AVX512 = 2,
};

/* Bits of engine_cpu_features(). */
enum {
    ENGINE_CPU_SSE41 = 1u << 0,
    ENGINE_CPU_AVX = 1u << 1,
    ENGINE_CPU_AVX2 = 1u << 2,
    ENGINE_CPU_BMI2 = 1u << 3,
    ENGINE_CPU_ADX = 1u << 4,
    ENGINE_CPU_AVX512F = 1u << 5,
    ENGINE_CPU_AVX512VL = 1u << 6,
    ENGINE_CPU_AVX512BW = 1u << 7,
    ENGINE_CPU_AVX512DQ = 1u << 8,
    ENGINE_CPU_AVX512IFMA = 1u << 9,
    ENGINE_CPU_SHA = 1u << 10,
    ENGINE_CPU_BMI1 = 1u << 11,
};

/* Features the CPU and OS support (ignores ENGINE_FORCE_ISA). */
uint32_t engine_cpu_features(void);

/* Names of the features, for reporting: writes a NULL-terminated list of static strings. */
int engine_cpu_feature_names(const char **names, int capacity);

/* The widest ISA the CPU supports, capped by ENGINE_FORCE_ISA (read once). */
enum engine_isa engine_isa_selected(void);

/* The ISA ENGINE_FORCE_ISA asked for, or -1 when unset; -2 when set to an unknown value. */
int engine_isa_forced(void);

/* Whether the CPU can run a given ISA path at all (avx512 means F+VL+BW here). */
int engine_isa_supported(enum engine_isa isa);

const char *engine_isa_name(enum engine_isa isa);

/* Number of online CPUs (at least 1). */
int engine_cpu_count(void);

#ifdef __cplusplus
}
#endif

#endif
