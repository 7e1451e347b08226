/* SM2 curve arithmetic compiled for CPUs with BMI2 and ADX (chosen on the AVX2 and AVX-512
 * paths when the CPU has both): the same 4 x 64-bit Montgomery code, with mulx and adcx/adox
 * available to the compiler for the 64 x 64 -> 128-bit products and carry chains. */
#if defined(__x86_64__)
#pragma GCC target("bmi,bmi2,adx")
#define SM2_USE_ADX 1
#include "sm2/sm2_core.h"

SM2_DEFINE_CORE(avx2)

/* Test hook: the assembly product, square, sum and difference against the C code on random and
 * edge-case inputs below p; returns the number of wrong results. */
int engine_sm2_selftest_avx2(uint64_t seed, long iterations) {
    uint64_t s = seed | 1;
    long bad = 0;
    for (long i = 0; i < iterations; i++) {
        uint64_t a[4], b[4], want[4], got[4];
        for (int l = 0; l < 4; l++) {
            uint64_t v[2];
            for (int k = 0; k < 2; k++) {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                switch ((i + k) % 6) {
                case 1: v[k] = ~(uint64_t)0; break;
                case 2: v[k] = SM2_P_LIMBS[l]; break;
                case 3: v[k] = s & 0xFFFFFFFF00000000ULL; break;
                case 4: v[k] = s | 0xFFFFFFFF00000000ULL; break;
                default: v[k] = s;
                }
            }
            a[l] = v[0];
            b[l] = v[1];
        }
        if (!u256_less(a, SM2_P_LIMBS)) sm2_reduce_once(a, a, 0, SM2_P_LIMBS);
        if (!u256_less(b, SM2_P_LIMBS)) sm2_reduce_once(b, b, 0, SM2_P_LIMBS);
        if (i % 7 == 0) { /* p - small */
            memcpy(a, SM2_P_LIMBS, 32);
            a[0] -= 1 + (uint64_t)(i % 5);
        }
        mont_mul_p(want, a, b);
        fe_mul(got, a, b);
        bad += memcmp(want, got, 32) != 0;
        mont_mul_p(want, a, a);
        fe_sqr(got, a);
        bad += memcmp(want, got, 32) != 0;
        mod_add(want, a, b, SM2_P_LIMBS);
        fe_add(got, a, b);
        bad += memcmp(want, got, 32) != 0;
        mod_sub(want, a, b, SM2_P_LIMBS);
        fe_sub(got, a, b);
        bad += memcmp(want, got, 32) != 0;
        mod_sub(want, b, a, SM2_P_LIMBS);
        fe_sub(got, b, a);
        bad += memcmp(want, got, 32) != 0;
    }
    return (int)(bad > 0x7fffffff ? 0x7fffffff : bad);
}
#endif
