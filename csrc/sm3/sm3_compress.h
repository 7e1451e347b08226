/* The scalar SM3 compression as static inline code, compiled by sm3_portable.c for every CPU.
 * (The AVX2 and AVX-512 paths' one-message compression is sm3_compress_vec.h.) */
#ifndef ENGINE_SM3_COMPRESS_H
#define ENGINE_SM3_COMPRESS_H

#include "sm3/sm3_impl.h"

static inline uint32_t sm3s_rotl(uint32_t x, int c) { return (x << c) | (x >> ((32 - c) & 31)); }
static inline uint32_t sm3s_p0(uint32_t x) { return x ^ sm3s_rotl(x, 9) ^ sm3s_rotl(x, 17); }
static inline uint32_t sm3s_p1(uint32_t x) { return x ^ sm3s_rotl(x, 15) ^ sm3s_rotl(x, 23); }

/* One round j: FF/GG are SM3S_XOR3 in rounds 0..15, majority / choose after. The message schedule
 * W[0..67] is kept in a 16-word ring: W[j+4] is made here, four rounds ahead of its use. */
#define SM3S_ROUND(j, FF, GG)                                                              \
    do {                                                                              \
        uint32_t a12 = sm3s_rotl(a, 12);                                                   \
        uint32_t ss1 = sm3s_rotl(a12 + e + SM3_TJ[j], 7);                                  \
        uint32_t ss2 = ss1 ^ a12;                                                     \
        uint32_t wj = w[(j) & 15];                                                    \
        if ((j) + 4 >= 16 && (j) + 4 < 68)                                            \
            w[((j) + 4) & 15] = sm3s_p1(w[((j) + 4) & 15] ^ w[((j) + 11) & 15] ^           \
                                   sm3s_rotl(w[((j) + 1) & 15], 15)) ^                     \
                                sm3s_rotl(w[((j) + 7) & 15], 7) ^ w[((j) + 14) & 15];      \
        uint32_t tt1 = FF(a, b, c) + d + ss2 + (wj ^ w[((j) + 4) & 15]);              \
        uint32_t tt2 = GG(e, f, g) + h + ss1 + wj;                                    \
        d = c;                                                                        \
        c = sm3s_rotl(b, 9);                                                               \
        b = a;                                                                        \
        a = tt1;                                                                      \
        h = g;                                                                        \
        g = sm3s_rotl(f, 19);                                                              \
        f = e;                                                                        \
        e = sm3s_p0(tt2);                                                                  \
    } while (0)

#define SM3S_XOR3(x, y, z) ((x) ^ (y) ^ (z))
#define SM3S_MAJ(x, y, z) (((x) & (y)) | ((z) & ((x) | (y))))
#define SM3S_CH(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))

static inline void sm3_compress_blocks(uint32_t state[8], const uint8_t *blocks, size_t count) {
    for (size_t blk = 0; blk < count; blk++, blocks += SM3_BLOCK_BYTES) {
        uint32_t w[16];
        for (int i = 0; i < 16; i++) w[i] = sm3_load_be32(blocks + 4 * i);
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) SM3S_ROUND(j, SM3S_XOR3, SM3S_XOR3);
#pragma GCC unroll 48
        for (int j = 16; j < 64; j++) SM3S_ROUND(j, SM3S_MAJ, SM3S_CH);
        state[0] ^= a;
        state[1] ^= b;
        state[2] ^= c;
        state[3] ^= d;
        state[4] ^= e;
        state[5] ^= f;
        state[6] ^= g;
        state[7] ^= h;
    }
}

#undef SM3S_ROUND
#undef SM3S_XOR3
#undef SM3S_MAJ
#undef SM3S_CH

#endif
