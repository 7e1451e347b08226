/* SM3 compression in portable C (the path every CPU has). */
#include "sm3/sm3_compress.h"

void engine_sm3_compress_portable(uint32_t state[8], const uint8_t *blocks, size_t count) {
    sm3_compress_blocks(state, blocks, count);
}
