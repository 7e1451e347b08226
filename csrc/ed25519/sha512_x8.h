/* SHA-512 of eight messages side by side in AVX-512 registers (word t of every lane in one
 * register; rotations are single instructions). Include only from a file compiled with avx512f
 * and avx512bw. Messages are handed over already padded (sha512_pad), lanes may differ in
 * block count: a lane that has finished keeps its state while the others go on.
 */
#ifndef ENGINE_ED25519_SHA512_X8_H
#define ENGINE_ED25519_SHA512_X8_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "ed25519/sha512_constants.h"
#include "ed25519/sha512_pad.h"

#define SHA_ROTR(x, n) _mm512_ror_epi64(x, n)

/* Digests of eight padded messages: msgs[l] holds blocks[l] blocks; out[l] gets 64 bytes. */
static inline void sha512_x8(uint8_t out[8][64], const uint8_t *const msgs[8],
                             const size_t blocks[8]) {
    static const uint8_t zero_block[128];
    const __m512i bswap = _mm512_set_epi8(
        8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1,
        2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    __m512i st[8];
    size_t most = 0;
    for (int i = 0; i < 8; i++) st[i] = _mm512_set1_epi64((long long)SHA512_IV[i]);
    for (int l = 0; l < 8; l++) most = blocks[l] > most ? blocks[l] : most;
    for (size_t b = 0; b < most; b++) {
        __mmask8 active = 0;
        long long addr[8];
        for (int l = 0; l < 8; l++) {
            int on = b < blocks[l];
            active |= (__mmask8)(on << l);
            addr[l] = (long long)(intptr_t)(on ? msgs[l] + 128 * b : zero_block);
        }
        __m512i base = _mm512_loadu_si512((const void *)addr);
        __m512i w[80];
        for (int t = 0; t < 16; t++) {
            __m512i v = _mm512_i64gather_epi64(base, (const void *)(intptr_t)(8 * t), 1);
            w[t] = _mm512_shuffle_epi8(v, bswap);
        }
        for (int t = 16; t < 80; t++) {
            __m512i s0 = _mm512_xor_si512(_mm512_xor_si512(SHA_ROTR(w[t - 15], 1),
                                                           SHA_ROTR(w[t - 15], 8)),
                                          _mm512_srli_epi64(w[t - 15], 7));
            __m512i s1 = _mm512_xor_si512(_mm512_xor_si512(SHA_ROTR(w[t - 2], 19),
                                                           SHA_ROTR(w[t - 2], 61)),
                                          _mm512_srli_epi64(w[t - 2], 6));
            w[t] = _mm512_add_epi64(_mm512_add_epi64(w[t - 16], s0),
                                    _mm512_add_epi64(w[t - 7], s1));
        }
        __m512i a = st[0], bb = st[1], c = st[2], d = st[3];
        __m512i e = st[4], f = st[5], g = st[6], h = st[7];
        for (int t = 0; t < 80; t++) {
            __m512i S1 = _mm512_xor_si512(_mm512_xor_si512(SHA_ROTR(e, 14), SHA_ROTR(e, 18)),
                                          SHA_ROTR(e, 41));
            __m512i ch = _mm512_ternarylogic_epi64(e, f, g, 0xca); /* e ? f : g */
            __m512i t1 = _mm512_add_epi64(
                _mm512_add_epi64(h, S1),
                _mm512_add_epi64(ch, _mm512_add_epi64(
                                         _mm512_set1_epi64((long long)SHA512_K[t]), w[t])));
            __m512i S0 = _mm512_xor_si512(_mm512_xor_si512(SHA_ROTR(a, 28), SHA_ROTR(a, 34)),
                                          SHA_ROTR(a, 39));
            __m512i maj = _mm512_ternarylogic_epi64(a, bb, c, 0xe8); /* majority */
            __m512i t2 = _mm512_add_epi64(S0, maj);
            h = g;
            g = f;
            f = e;
            e = _mm512_add_epi64(d, t1);
            d = c;
            c = bb;
            bb = a;
            a = _mm512_add_epi64(t1, t2);
        }
        __m512i nv[8] = {a, bb, c, d, e, f, g, h};
        for (int i = 0; i < 8; i++)
            st[i] = _mm512_mask_add_epi64(st[i], active, st[i], nv[i]);
    }
    uint64_t words[8][8];
    for (int i = 0; i < 8; i++) _mm512_storeu_si512((void *)words[i], st[i]);
    for (int l = 0; l < 8; l++)
        for (int i = 0; i < 8; i++) {
            uint64_t be = __builtin_bswap64(words[i][l]);
            memcpy(out[l] + 8 * i, &be, 8);
        }
}

#endif
