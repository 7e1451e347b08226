/* SHA-512 of four messages side by side in AVX2 registers: word t of every lane in one 256-bit
 * register, so the 80 rounds run once for four messages. AVX2 has no 64-bit rotation: a rotation
 * is two shifts and an OR, and the three rotations of each Sigma share their XOR tree; the
 * rotation by 8 of the message schedule is a byte shuffle. Blocks are loaded as 4x4 tiles of
 * words and transposed in registers (no gathers, which are slow on AMD cores).
 *
 * Include only from a file compiled with avx2. Messages are handed over already padded
 * (sha512_pad); lanes may differ in block count: a lane that has finished keeps its state while
 * the others go on (its rounds run on a zero block and are discarded).
 */
#ifndef ENGINE_ED25519_SHA512_X4_AVX2_H
#define ENGINE_ED25519_SHA512_X4_AVX2_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "ed25519/sha512_constants.h"
#include "ed25519/sha512_pad.h"

#define SHA4_SHR(x, n) _mm256_srli_epi64(x, n)
#define SHA4_SHL(x, n) _mm256_slli_epi64(x, n)
#define SHA4_XOR(a, b) _mm256_xor_si256(a, b)
#define SHA4_ADD(a, b) _mm256_add_epi64(a, b)

/* Sigma1(e) = rotr14 ^ rotr18 ^ rotr41; Sigma0(a) = rotr28 ^ rotr34 ^ rotr39. */
static inline __attribute__((always_inline)) __m256i sha4_big_sigma1(__m256i e) {
    __m256i r = SHA4_XOR(SHA4_XOR(SHA4_SHR(e, 14), SHA4_SHR(e, 18)), SHA4_SHR(e, 41));
    __m256i l = SHA4_XOR(SHA4_XOR(SHA4_SHL(e, 50), SHA4_SHL(e, 46)), SHA4_SHL(e, 23));
    return SHA4_XOR(r, l);
}

static inline __attribute__((always_inline)) __m256i sha4_big_sigma0(__m256i a) {
    __m256i r = SHA4_XOR(SHA4_XOR(SHA4_SHR(a, 28), SHA4_SHR(a, 34)), SHA4_SHR(a, 39));
    __m256i l = SHA4_XOR(SHA4_XOR(SHA4_SHL(a, 36), SHA4_SHL(a, 30)), SHA4_SHL(a, 25));
    return SHA4_XOR(r, l);
}

/* sigma0(w) = rotr1 ^ rotr8 ^ shr7 (rotr8 a byte shuffle); sigma1(w) = rotr19 ^ rotr61 ^ shr6. */
static inline __attribute__((always_inline)) __m256i sha4_small_sigma0(__m256i w, __m256i rot8) {
    __m256i r1 = _mm256_or_si256(SHA4_SHR(w, 1), SHA4_SHL(w, 63));
    return SHA4_XOR(SHA4_XOR(r1, _mm256_shuffle_epi8(w, rot8)), SHA4_SHR(w, 7));
}

static inline __attribute__((always_inline)) __m256i sha4_small_sigma1(__m256i w) {
    __m256i r = SHA4_XOR(SHA4_XOR(SHA4_SHR(w, 19), SHA4_SHR(w, 61)), SHA4_SHR(w, 6));
    __m256i l = SHA4_XOR(SHA4_SHL(w, 45), SHA4_SHL(w, 3));
    return SHA4_XOR(r, l);
}

/* Digests of four padded messages: msgs[l] holds blocks[l] blocks; out[l] gets 64 bytes. */
static inline void sha512_x4(uint8_t out[4][64], const uint8_t *const msgs[4],
                             const size_t blocks[4]) {
    static const uint8_t zero_block[128];
    /* Byte order within each 64-bit word: reversed (big-endian load), rotated right by 8. */
    const __m256i bswap = _mm256_set_epi8(8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7,
                                          8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i rot8 = _mm256_set_epi8(8, 15, 14, 13, 12, 11, 10, 9, 0, 7, 6, 5, 4, 3, 2, 1,
                                         8, 15, 14, 13, 12, 11, 10, 9, 0, 7, 6, 5, 4, 3, 2, 1);
    __m256i st[8];
    size_t most = 0;
    for (int i = 0; i < 8; i++) st[i] = _mm256_set1_epi64x((long long)SHA512_IV[i]);
    for (int l = 0; l < 4; l++) most = blocks[l] > most ? blocks[l] : most;
    for (size_t b = 0; b < most; b++) {
        const uint8_t *p[4];
        long long on[4];
        for (int l = 0; l < 4; l++) {
            on[l] = b < blocks[l] ? -1 : 0;
            p[l] = on[l] ? msgs[l] + 128 * b : zero_block;
        }
        const __m256i active = _mm256_set_epi64x(on[3], on[2], on[1], on[0]);
        __m256i w[80];
        for (int q = 0; q < 4; q++) {
            /* Row l holds words 4q..4q+3 of lane l; transpose to word-major. */
            __m256i r0 = _mm256_loadu_si256((const __m256i *)(const void *)(p[0] + 32 * q));
            __m256i r1 = _mm256_loadu_si256((const __m256i *)(const void *)(p[1] + 32 * q));
            __m256i r2 = _mm256_loadu_si256((const __m256i *)(const void *)(p[2] + 32 * q));
            __m256i r3 = _mm256_loadu_si256((const __m256i *)(const void *)(p[3] + 32 * q));
            __m256i t0 = _mm256_unpacklo_epi64(r0, r1); /* (r0[0], r1[0], r0[2], r1[2]) */
            __m256i t1 = _mm256_unpackhi_epi64(r0, r1); /* (r0[1], r1[1], r0[3], r1[3]) */
            __m256i t2 = _mm256_unpacklo_epi64(r2, r3);
            __m256i t3 = _mm256_unpackhi_epi64(r2, r3);
            w[4 * q + 0] = _mm256_shuffle_epi8(_mm256_permute2x128_si256(t0, t2, 0x20), bswap);
            w[4 * q + 1] = _mm256_shuffle_epi8(_mm256_permute2x128_si256(t1, t3, 0x20), bswap);
            w[4 * q + 2] = _mm256_shuffle_epi8(_mm256_permute2x128_si256(t0, t2, 0x31), bswap);
            w[4 * q + 3] = _mm256_shuffle_epi8(_mm256_permute2x128_si256(t1, t3, 0x31), bswap);
        }
        for (int t = 16; t < 80; t++)
            w[t] = SHA4_ADD(SHA4_ADD(w[t - 16], sha4_small_sigma0(w[t - 15], rot8)),
                            SHA4_ADD(w[t - 7], sha4_small_sigma1(w[t - 2])));
        __m256i a = st[0], bb = st[1], c = st[2], d = st[3];
        __m256i e = st[4], f = st[5], g = st[6], h = st[7];
        __m256i b_xor_c = SHA4_XOR(bb, c);
        for (int t = 0; t < 80; t++) {
            /* Ch(e, f, g) = g ^ (e & (f ^ g)); Maj(a, b, c) = b ^ ((a ^ b) & (b ^ c)), where
             * b ^ c is the previous round's a ^ b. */
            __m256i ch = SHA4_XOR(g, _mm256_and_si256(e, SHA4_XOR(f, g)));
            __m256i t1 = SHA4_ADD(SHA4_ADD(h, sha4_big_sigma1(e)),
                                  SHA4_ADD(ch, SHA4_ADD(_mm256_set1_epi64x((long long)SHA512_K[t]),
                                                        w[t])));
            __m256i a_xor_b = SHA4_XOR(a, bb);
            __m256i maj = SHA4_XOR(bb, _mm256_and_si256(a_xor_b, b_xor_c));
            __m256i t2 = SHA4_ADD(sha4_big_sigma0(a), maj);
            b_xor_c = a_xor_b;
            h = g;
            g = f;
            f = e;
            e = SHA4_ADD(d, t1);
            d = c;
            c = bb;
            bb = a;
            a = SHA4_ADD(t1, t2);
        }
        const __m256i nv[8] = {a, bb, c, d, e, f, g, h};
        for (int i = 0; i < 8; i++)
            st[i] = _mm256_blendv_epi8(st[i], SHA4_ADD(st[i], nv[i]), active);
    }
    uint64_t words[8][4];
    for (int i = 0; i < 8; i++) _mm256_storeu_si256((__m256i *)(void *)words[i], st[i]);
    for (int l = 0; l < 4; l++)
        for (int i = 0; i < 8; i++) {
            uint64_t be = __builtin_bswap64(words[i][l]);
            memcpy(out[l] + 8 * i, &be, 8);
        }
}

#undef SHA4_SHR
#undef SHA4_SHL
#undef SHA4_XOR
#undef SHA4_ADD

#endif
