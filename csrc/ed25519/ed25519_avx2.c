/* Ed25519 verification, the same radix-2^51 kernel compiled for Haswell-class CPUs (BMI2 mulx
 * and ADX, AVX2 for the compiler's own vectorisation). The x86 guard keeps aarch64 builds
 * working. */
#if defined(__x86_64__)
#pragma GCC target("avx2,bmi,bmi2,adx")
#define ED_SUFFIX avx2
#include "ed25519/ed25519_verify_template.h"
#endif
