/* Ed25519 verification with AVX-512 IFMA: the radix-2^51 kernel, with the exponentiations of
 * point decompression (the largest per-signature cost of a batch after the multi-scalar
 * multiplication) run eight at a time in IFMA lanes, radix 2^52. Selected only when the CPU has
 * AVX-512 IFMA; the x86 guard keeps aarch64 builds working. */
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx512ifma,bmi2,adx")
#include "ed25519/fe52_ifma.h"

/* FE52_GROUPS * 8 exponentiations per pass; a short last pass repeats its first element,
 * except that up to four leftovers are cheaper on the scalar path. */
static void pow_many_ifma(fe51 *out, const fe51 *in, size_t count) {
    const size_t per_pass = 8 * FE52_GROUPS;
    for (size_t first = 0; first < count; first += per_pass) {
        if (count - first <= 4) {
            fe51 base[4] = {{{0}}}, pow[4];
            for (size_t j = 0; j < 4; j++) base[j] = in[first + j < count ? first + j : first];
            fe_pow22523_x4(pow, base);
            for (size_t j = 0; first + j < count; j++) out[first + j] = pow[j];
            break;
        }
        fe51 base[8 * FE52_GROUPS], pow[8 * FE52_GROUPS];
        fe52x8 v[FE52_GROUPS], r[FE52_GROUPS];
        for (size_t j = 0; j < per_pass; j++) base[j] = in[first + j < count ? first + j : first];
        for (int g = 0; g < FE52_GROUPS; g++) fe52x8_from_fe51(&v[g], base + 8 * g);
        fe52x8_pow22523_g(r, v);
        for (int g = 0; g < FE52_GROUPS; g++) fe52x8_to_fe51(pow + 8 * g, &r[g]);
        for (size_t j = 0; j < per_pass && first + j < count; j++) out[first + j] = pow[j];
    }
}

#define ED_POW_MANY pow_many_ifma
#define ED_SUFFIX avx512
#include "ed25519/ed25519_kernel.h"
#endif
