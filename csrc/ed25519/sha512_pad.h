/* Padding for the multi-lane SHA-512 kernels (sha512_x4_avx2.h, sha512_x8.h): each lane is
 * handed a whole padded message, so a kernel only walks blocks. ISA-neutral. */
#ifndef ENGINE_ED25519_SHA512_PAD_H
#define ENGINE_ED25519_SHA512_PAD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Blocks of a message of len bytes once padded (0x80, zeros, 128-bit length). */
static inline size_t sha512_pad_blocks(size_t len) { return (len + 17 + 127) / 128; }

/* Pad (FIPS 180-4 5.1.2) the concatenation of up to four pieces into out (blocks * 128). */
static inline void sha512_pad(uint8_t *out, const uint8_t *const pieces[4], const size_t lens[4]) {
    size_t len = 0;
    for (int i = 0; i < 4; i++) {
        if (lens[i]) memcpy(out + len, pieces[i], lens[i]);
        len += lens[i];
    }
    size_t total = sha512_pad_blocks(len) * 128;
    memset(out + len, 0, total - len);
    out[len] = 0x80;
    uint64_t bits_be = __builtin_bswap64((uint64_t)len * 8);
    memcpy(out + total - 8, &bits_be, 8);
}

#endif
