/* Random coefficients of the batch equation, and the key cache's secret: bytes from the OS
 * CSPRNG, fresh for every batch (notes/ed25519.md A.2: z must be unpredictable to whoever
 * chooses the signatures). */
#include <errno.h>
#include <stdlib.h>
#if defined(__linux__)
#include <sys/random.h>
#endif

#include "ed25519/ed25519_impl.h"

int ed_random_bytes(uint8_t *buf, size_t len) {
#if defined(__linux__)
    while (len) {
        ssize_t got = getrandom(buf, len, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += got;
        len -= (size_t)got;
    }
    return 0;
#else
    arc4random_buf(buf, len);
    return 0;
#endif
}

int ed_random_coefficients(uint8_t *z_bytes, size_t count) {
    return ed_random_bytes(z_bytes, ED_COEFF_BYTES * count);
}
