/* SHA-512 of eight messages side by side in AVX-512 registers (word t of every lane in one
 * register; rotations are single instructions). Include only from a file compiled with avx512f
 * and avx512bw. Messages are handed over already padded (sha512_x8_pad), lanes may differ in
 * block count: a lane that has finished keeps its state while the others go on.
 */
#ifndef ENGINE_ED25519_SHA512_X8_H
#define ENGINE_ED25519_SHA512_X8_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

static const uint64_t SHA512_X8_K[80] = {
    0x428a2f98d728ae22ULL, 0x7137449123ef65cdULL, 0xb5c0fbcfec4d3b2fULL, 0xe9b5dba58189dbbcULL,
    0x3956c25bf348b538ULL, 0x59f111f1b605d019ULL, 0x923f82a4af194f9bULL, 0xab1c5ed5da6d8118ULL,
    0xd807aa98a3030242ULL, 0x12835b0145706fbeULL, 0x243185be4ee4b28cULL, 0x550c7dc3d5ffb4e2ULL,
    0x72be5d74f27b896fULL, 0x80deb1fe3b1696b1ULL, 0x9bdc06a725c71235ULL, 0xc19bf174cf692694ULL,
    0xe49b69c19ef14ad2ULL, 0xefbe4786384f25e3ULL, 0x0fc19dc68b8cd5b5ULL, 0x240ca1cc77ac9c65ULL,
    0x2de92c6f592b0275ULL, 0x4a7484aa6ea6e483ULL, 0x5cb0a9dcbd41fbd4ULL, 0x76f988da831153b5ULL,
    0x983e5152ee66dfabULL, 0xa831c66d2db43210ULL, 0xb00327c898fb213fULL, 0xbf597fc7beef0ee4ULL,
    0xc6e00bf33da88fc2ULL, 0xd5a79147930aa725ULL, 0x06ca6351e003826fULL, 0x142929670a0e6e70ULL,
    0x27b70a8546d22ffcULL, 0x2e1b21385c26c926ULL, 0x4d2c6dfc5ac42aedULL, 0x53380d139d95b3dfULL,
    0x650a73548baf63deULL, 0x766a0abb3c77b2a8ULL, 0x81c2c92e47edaee6ULL, 0x92722c851482353bULL,
    0xa2bfe8a14cf10364ULL, 0xa81a664bbc423001ULL, 0xc24b8b70d0f89791ULL, 0xc76c51a30654be30ULL,
    0xd192e819d6ef5218ULL, 0xd69906245565a910ULL, 0xf40e35855771202aULL, 0x106aa07032bbd1b8ULL,
    0x19a4c116b8d2d0c8ULL, 0x1e376c085141ab53ULL, 0x2748774cdf8eeb99ULL, 0x34b0bcb5e19b48a8ULL,
    0x391c0cb3c5c95a63ULL, 0x4ed8aa4ae3418acbULL, 0x5b9cca4f7763e373ULL, 0x682e6ff3d6b2b8a3ULL,
    0x748f82ee5defb2fcULL, 0x78a5636f43172f60ULL, 0x84c87814a1f0ab72ULL, 0x8cc702081a6439ecULL,
    0x90befffa23631e28ULL, 0xa4506cebde82bde9ULL, 0xbef9a3f7b2c67915ULL, 0xc67178f2e372532bULL,
    0xca273eceea26619cULL, 0xd186b8c721c0c207ULL, 0xeada7dd6cde0eb1eULL, 0xf57d4f7fee6ed178ULL,
    0x06f067aa72176fbaULL, 0x0a637dc5a2c898a6ULL, 0x113f9804bef90daeULL, 0x1b710b35131c471bULL,
    0x28db77f523047d84ULL, 0x32caab7b40c72493ULL, 0x3c9ebe0a15c9bebcULL, 0x431d67c49c100d4cULL,
    0x4cc5d4becb3e42b6ULL, 0x597f299cfc657e2aULL, 0x5fcb6fab3ad6faecULL, 0x6c44198c4a475817ULL,
};

static const uint64_t SHA512_X8_IV[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

/* Blocks of a message of len bytes once padded. */
static inline size_t sha512_x8_blocks(size_t len) { return (len + 17 + 127) / 128; }

/* Pad (FIPS 180-4 5.1.2) the concatenation of up to four pieces into out (blocks * 128). */
static inline void sha512_x8_pad(uint8_t *out, const uint8_t *const pieces[4],
                                 const size_t lens[4]) {
    size_t len = 0;
    for (int i = 0; i < 4; i++) {
        if (lens[i]) memcpy(out + len, pieces[i], lens[i]);
        len += lens[i];
    }
    size_t total = sha512_x8_blocks(len) * 128;
    memset(out + len, 0, total - len);
    out[len] = 0x80;
    uint64_t bits_be = __builtin_bswap64((uint64_t)len * 8);
    memcpy(out + total - 8, &bits_be, 8);
}

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
    for (int i = 0; i < 8; i++) st[i] = _mm512_set1_epi64((long long)SHA512_X8_IV[i]);
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
                                         _mm512_set1_epi64((long long)SHA512_X8_K[t]), w[t])));
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
