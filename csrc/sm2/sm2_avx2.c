/* SM2 curve arithmetic compiled for CPUs with BMI2 and ADX (chosen on the AVX2 and AVX-512
 * paths when the CPU has both): the same 4 x 64-bit Montgomery code, with mulx and adcx/adox
 * available to the compiler for the 64 x 64 -> 128-bit products and carry chains. */
#if defined(__x86_64__)
#pragma GCC target("bmi,bmi2,adx")
#define SM2_USE_ADX 1
#include "sm2/sm2_core.h"

SM2_DEFINE_CORE(avx2)
#endif
