/* CPU feature detection, read once per process; see cpu.h. */
#include "common/cpu.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define ENGINE_X86 1
#endif

static uint32_t detect_features(void) {
    uint32_t f = 0;
#ifdef ENGINE_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (c & (1u << 19)) f |= ENGINE_CPU_SSE41;
    int osxsave = (c & (1u << 27)) != 0;
    int avx = (c & (1u << 28)) != 0;
    uint64_t xcr0 = 0;
    if (osxsave) {
        uint32_t lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = ((uint64_t)hi << 32) | lo;
    }
    int ymm_ok = (xcr0 & 0x6) == 0x6;        /* XMM and YMM state saved by the OS */
    int zmm_ok = (xcr0 & 0xe6) == 0xe6;      /* plus opmask and ZMM state */
    if (avx && ymm_ok) f |= ENGINE_CPU_AVX;
    if (__get_cpuid_max(0, 0) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        if ((b & (1u << 5)) && (f & ENGINE_CPU_AVX)) f |= ENGINE_CPU_AVX2;
        if (b & (1u << 3)) f |= ENGINE_CPU_BMI1;
        if (b & (1u << 8)) f |= ENGINE_CPU_BMI2;
        if (b & (1u << 19)) f |= ENGINE_CPU_ADX;
        if (b & (1u << 29)) f |= ENGINE_CPU_SHA;
        if (zmm_ok) {
            if (b & (1u << 16)) f |= ENGINE_CPU_AVX512F;
            if (b & (1u << 17)) f |= ENGINE_CPU_AVX512DQ;
            if (b & (1u << 21)) f |= ENGINE_CPU_AVX512IFMA;
            if (b & (1u << 30)) f |= ENGINE_CPU_AVX512BW;
            if (b & (1u << 31)) f |= ENGINE_CPU_AVX512VL;
        }
    }
#endif
    return f;
}

static uint32_t g_features;
static int g_forced = -1;
static int g_ready;

static void init_once(void) {
    if (__atomic_load_n(&g_ready, __ATOMIC_ACQUIRE)) return;
    uint32_t f = detect_features();
    int forced = -1;
    const char *env = getenv("ENGINE_FORCE_ISA");
    if (env && *env) {
        if (strcmp(env, "portable") == 0) forced = ENGINE_ISA_PORTABLE;
        else if (strcmp(env, "avx2") == 0) forced = ENGINE_ISA_AVX2;
        else if (strcmp(env, "avx512") == 0) forced = ENGINE_ISA_AVX512;
        else forced = -2;
    }
    /* Benign race: every thread computes the same values. */
    g_features = f;
    g_forced = forced;
    __atomic_store_n(&g_ready, 1, __ATOMIC_RELEASE);
}

uint32_t engine_cpu_features(void) {
    init_once();
    return g_features;
}

int engine_isa_forced(void) {
    init_once();
    return g_forced;
}

int engine_isa_supported(enum engine_isa isa) {
    uint32_t f = engine_cpu_features();
    switch (isa) {
    case ENGINE_ISA_PORTABLE: return 1;
    case ENGINE_ISA_AVX2: {
        /* The avx2 builds also use BMI1 (andn) and BMI2 (rorx, mulx): every AVX2 CPU known
           has both, but a CPU (or a VM's CPUID) without them must not be handed that code. */
        uint32_t need = ENGINE_CPU_AVX2 | ENGINE_CPU_BMI1 | ENGINE_CPU_BMI2;
        return (f & need) == need;
    }
    case ENGINE_ISA_AVX512: {
        /* The avx512 kernels fall back to avx2-built code for some steps. */
        uint32_t need = ENGINE_CPU_AVX512F | ENGINE_CPU_AVX512VL | ENGINE_CPU_AVX512BW |
                        ENGINE_CPU_AVX2 | ENGINE_CPU_BMI1 | ENGINE_CPU_BMI2;
        return (f & need) == need;
    }
    }
    return 0;
}

enum engine_isa engine_isa_selected(void) {
    int cap = engine_isa_forced();
    if (cap < 0) cap = ENGINE_ISA_AVX512;
    for (int isa = cap; isa > ENGINE_ISA_PORTABLE; isa--)
        if (engine_isa_supported((enum engine_isa)isa)) return (enum engine_isa)isa;
    return ENGINE_ISA_PORTABLE;
}

const char *engine_isa_name(enum engine_isa isa) {
    switch (isa) {
    case ENGINE_ISA_PORTABLE: return "portable";
    case ENGINE_ISA_AVX2: return "avx2";
    case ENGINE_ISA_AVX512: return "avx512";
    }
    return "unknown";
}

int engine_cpu_feature_names(const char **names, int capacity) {
    static const struct { uint32_t bit; const char *name; } table[] = {
        {ENGINE_CPU_SSE41, "sse4.1"},   {ENGINE_CPU_AVX, "avx"},
        {ENGINE_CPU_AVX2, "avx2"},      {ENGINE_CPU_BMI1, "bmi1"},
        {ENGINE_CPU_BMI2, "bmi2"},
        {ENGINE_CPU_ADX, "adx"},        {ENGINE_CPU_AVX512F, "avx512f"},
        {ENGINE_CPU_AVX512VL, "avx512vl"}, {ENGINE_CPU_AVX512BW, "avx512bw"},
        {ENGINE_CPU_AVX512DQ, "avx512dq"}, {ENGINE_CPU_AVX512IFMA, "avx512ifma"},
        {ENGINE_CPU_SHA, "sha"},
    };
    uint32_t f = engine_cpu_features();
    int n = 0;
    for (size_t i = 0; i < sizeof table / sizeof table[0] && n < capacity - 1; i++)
        if (f & table[i].bit) names[n++] = table[i].name;
    if (capacity > 0) names[n] = NULL;
    return n;
}

int engine_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}
