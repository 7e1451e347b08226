/* SM3 compression of 16 independent blocks side by side in AVX-512 registers (F + VL + BW).
 *
 * Word-sliced like the AVX2 file; AVX-512 adds native rotates (vprold) and three-input logic
 * (vpternlogd) for the boolean functions and the P0/P1 permutations. Each lane's block is one
 * 512-bit row, byte-swapped and transposed in registers (16 x 16 words).
 */
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512vl,avx512bw")
#include <immintrin.h>

#include "sm3/sm3_impl.h"

#define LANES 16

#define ADD(a, b) _mm512_add_epi32(a, b)
#define XOR(a, b) _mm512_xor_si512(a, b)
#define ROL(x, c) _mm512_rol_epi32(x, c)
#define XOR3(x, y, z) _mm512_ternarylogic_epi32(x, y, z, 0x96)
#define MAJ(x, y, z) _mm512_ternarylogic_epi32(x, y, z, 0xE8)
#define CH(x, y, z) _mm512_ternarylogic_epi32(x, y, z, 0xCA)
#define P0(x) XOR3(x, ROL(x, 9), ROL(x, 17))
#define P1(x) XOR3(x, ROL(x, 15), ROL(x, 23))

#define ROUND(j, FF, GG)                                                                     \
    do {                                                                                     \
        __m512i a12 = ROL(a, 12);                                                            \
        __m512i ss1 = ROL(ADD(ADD(a12, e), _mm512_set1_epi32((int)SM3_TJ[j])), 7);          \
        __m512i ss2 = XOR(ss1, a12);                                                         \
        __m512i wj = w[(j) & 15];                                                            \
        if ((j) + 4 >= 16 && (j) + 4 < 68) {                                                 \
            __m512i x = XOR3(w[((j) + 4) & 15], w[((j) + 11) & 15], ROL(w[((j) + 1) & 15], 15)); \
            w[((j) + 4) & 15] = XOR3(P1(x), ROL(w[((j) + 7) & 15], 7), w[((j) + 14) & 15]); \
        }                                                                                    \
        __m512i tt1 = ADD(ADD(FF(a, b, c), d), ADD(ss2, XOR(wj, w[((j) + 4) & 15])));        \
        __m512i tt2 = ADD(ADD(GG(e, f, g), h), ADD(ss1, wj));                                \
        d = c;                                                                               \
        c = ROL(b, 9);                                                                       \
        b = a;                                                                               \
        a = tt1;                                                                             \
        h = g;                                                                               \
        g = ROL(f, 19);                                                                      \
        f = e;                                                                               \
        e = P0(tt2);                                                                         \
    } while (0)

/* r[j] = 16 words of lane j; m[w] = word w of every lane. */
static inline void transpose16(const __m512i r[16], __m512i m[16]) {
    __m512i u[4][4];
    for (int g = 0; g < 4; g++) {
        const __m512i *rg = r + 4 * g;
        __m512i t0 = _mm512_unpacklo_epi32(rg[0], rg[1]);
        __m512i t1 = _mm512_unpackhi_epi32(rg[0], rg[1]);
        __m512i t2 = _mm512_unpacklo_epi32(rg[2], rg[3]);
        __m512i t3 = _mm512_unpackhi_epi32(rg[2], rg[3]);
        /* u[g][k]: in 128-bit chunk c, word 4c+k of rows 4g..4g+3 */
        u[g][0] = _mm512_unpacklo_epi64(t0, t2);
        u[g][1] = _mm512_unpackhi_epi64(t0, t2);
        u[g][2] = _mm512_unpacklo_epi64(t1, t3);
        u[g][3] = _mm512_unpackhi_epi64(t1, t3);
    }
    for (int k = 0; k < 4; k++) {
        __m512i x01 = _mm512_shuffle_i32x4(u[0][k], u[1][k], 0x44);
        __m512i y01 = _mm512_shuffle_i32x4(u[2][k], u[3][k], 0x44);
        __m512i x23 = _mm512_shuffle_i32x4(u[0][k], u[1][k], 0xEE);
        __m512i y23 = _mm512_shuffle_i32x4(u[2][k], u[3][k], 0xEE);
        m[k] = _mm512_shuffle_i32x4(x01, y01, 0x88);
        m[4 + k] = _mm512_shuffle_i32x4(x01, y01, 0xDD);
        m[8 + k] = _mm512_shuffle_i32x4(x23, y23, 0x88);
        m[12 + k] = _mm512_shuffle_i32x4(x23, y23, 0xDD);
    }
}

void engine_sm3_lanes_avx512(uint32_t *state, const uint8_t *const *blocks) {
    const __m512i bswap = _mm512_set4_epi32(0x0C0D0E0F, 0x08090A0B, 0x04050607, 0x00010203);
    __m512i rows[LANES], w[16];
    for (int l = 0; l < LANES; l++)
        rows[l] = _mm512_shuffle_epi8(_mm512_loadu_si512(blocks[l]), bswap);
    transpose16(rows, w);
    __m512i s[8];
    for (int i = 0; i < 8; i++) s[i] = _mm512_load_si512(state + LANES * i);
    __m512i a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++) ROUND(j, XOR3, XOR3);
#pragma GCC unroll 48
    for (int j = 16; j < 64; j++) ROUND(j, MAJ, CH);
    __m512i r[8] = {a, b, c, d, e, f, g, h};
    for (int i = 0; i < 8; i++) _mm512_store_si512(state + LANES * i, XOR(s[i], r[i]));
}
/* The one-message compression: scalar rounds under BMI2 (rorx), the message expansion in
 * 128-bit registers with vprold and vpternlogd (AVX-512VL; sm3_compress_vec.h). */
#pragma GCC target("avx512f,avx512vl,avx512bw,bmi,bmi2")
#define SM3V_ROL(x, c) _mm_rol_epi32(x, c)
#define SM3V_XOR3(x, y, z) _mm_ternarylogic_epi32(x, y, z, 0x96)
#define SM3V_FN engine_sm3_compress_avx512
#include "sm3/sm3_compress_vec.h"
#endif
