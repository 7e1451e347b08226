/* SM3 compression of 8 independent blocks side by side in AVX2 registers.
 *
 * Word-sliced: vector i holds state word i of the 8 lanes (the scheduler keeps the state in that
 * layout, so no transposes of the state). Each lane's block is loaded as two 256-bit rows,
 * byte-swapped to big-endian words and transposed in registers. AVX2 has no rotate: each
 * rotation is a shift pair.
 */
#if defined(__x86_64__)
#pragma GCC target("avx2,bmi,bmi2")
#include <immintrin.h>

#include "sm3/sm3_impl.h"

#define LANES 8

#define ADD(a, b) _mm256_add_epi32(a, b)
#define XOR(a, b) _mm256_xor_si256(a, b)
#define AND(a, b) _mm256_and_si256(a, b)
#define OR(a, b) _mm256_or_si256(a, b)
#define ROL(x, c) OR(_mm256_slli_epi32(x, c), _mm256_srli_epi32(x, 32 - (c)))
#define P0(x) XOR(XOR(x, ROL(x, 9)), ROL(x, 17))
#define P1(x) XOR(XOR(x, ROL(x, 15)), ROL(x, 23))
#define XOR3(x, y, z) XOR(XOR(x, y), z)
#define MAJ(x, y, z) OR(AND(x, y), AND(z, OR(x, y)))
#define CH(x, y, z) XOR(z, AND(x, XOR(y, z)))

#define ROUND(j, FF, GG)                                                                     \
    do {                                                                                     \
        __m256i a12 = ROL(a, 12);                                                            \
        __m256i ss1 = ROL(ADD(ADD(a12, e), _mm256_set1_epi32((int)SM3_TJ[j])), 7);          \
        __m256i ss2 = XOR(ss1, a12);                                                         \
        __m256i wj = w[(j) & 15];                                                            \
        if ((j) + 4 >= 16 && (j) + 4 < 68) {                                                 \
            __m256i x = XOR3(w[((j) + 4) & 15], w[((j) + 11) & 15], ROL(w[((j) + 1) & 15], 15)); \
            w[((j) + 4) & 15] = XOR3(P1(x), ROL(w[((j) + 7) & 15], 7), w[((j) + 14) & 15]); \
        }                                                                                    \
        __m256i tt1 = ADD(ADD(FF(a, b, c), d), ADD(ss2, XOR(wj, w[((j) + 4) & 15])));        \
        __m256i tt2 = ADD(ADD(GG(e, f, g), h), ADD(ss1, wj));                                \
        d = c;                                                                               \
        c = ROL(b, 9);                                                                       \
        b = a;                                                                               \
        a = tt1;                                                                             \
        h = g;                                                                               \
        g = ROL(f, 19);                                                                      \
        f = e;                                                                               \
        e = P0(tt2);                                                                         \
    } while (0)

/* r[j] = 8 words of lane j; out[w] = word w of every lane. */
static inline void transpose8(const __m256i r[8], __m256i out[8]) {
    __m256i u[2][4];
    for (int g = 0; g < 2; g++) {
        const __m256i *rg = r + 4 * g;
        __m256i t0 = _mm256_unpacklo_epi32(rg[0], rg[1]);
        __m256i t1 = _mm256_unpackhi_epi32(rg[0], rg[1]);
        __m256i t2 = _mm256_unpacklo_epi32(rg[2], rg[3]);
        __m256i t3 = _mm256_unpackhi_epi32(rg[2], rg[3]);
        u[g][0] = _mm256_unpacklo_epi64(t0, t2);
        u[g][1] = _mm256_unpackhi_epi64(t0, t2);
        u[g][2] = _mm256_unpacklo_epi64(t1, t3);
        u[g][3] = _mm256_unpackhi_epi64(t1, t3);
    }
    for (int k = 0; k < 4; k++) {
        out[k] = _mm256_permute2x128_si256(u[0][k], u[1][k], 0x20);
        out[4 + k] = _mm256_permute2x128_si256(u[0][k], u[1][k], 0x31);
    }
}

void engine_sm3_lanes_avx2(uint32_t *state, const uint8_t *const *blocks) {
    const __m256i bswap = _mm256_setr_epi8(3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12,
                                           3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12);
    __m256i lo[LANES], hi[LANES], w[16];
    for (int l = 0; l < LANES; l++) {
        lo[l] = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)blocks[l]), bswap);
        hi[l] = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(blocks[l] + 32)), bswap);
    }
    transpose8(lo, w);
    transpose8(hi, w + 8);
    __m256i s[8];
    for (int i = 0; i < 8; i++) s[i] = _mm256_load_si256((const __m256i *)(state + LANES * i));
    __m256i a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++) ROUND(j, XOR3, XOR3);
#pragma GCC unroll 48
    for (int j = 16; j < 64; j++) ROUND(j, MAJ, CH);
    __m256i r[8] = {a, b, c, d, e, f, g, h};
    for (int i = 0; i < 8; i++)
        _mm256_store_si256((__m256i *)(state + LANES * i), XOR(s[i], r[i]));
}

/* The one-message compression: scalar rounds under BMI2 (rorx), the message expansion in SSE
 * registers (sm3_compress_vec.h; AVX2 has no vector rotate: shift pairs). */
#define SM3V_ROL(x, c) _mm_or_si128(_mm_slli_epi32(x, c), _mm_srli_epi32(x, 32 - (c)))
#define SM3V_XOR3(x, y, z) _mm_xor_si128(_mm_xor_si128(x, y), z)
#define SM3V_FN engine_sm3_compress_avx2
#include "sm3/sm3_compress_vec.h"
#endif
