/* Test harness: hashes the messages given as hex arguments with the C kernels (no Python), so
 * the portable build can be compiled for another architecture and run under emulation.
 * Prints one hash per message, then the Merkle root of the messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blake3/blake3.h"

static size_t unhex(const char *s, unsigned char *out) {
    size_t n = strlen(s) / 2;
    for (size_t i = 0; i < n; i++) sscanf(s + 2 * i, "%2hhx", &out[i]);
    return n;
}

static void print_hash(const unsigned char *h) {
    for (int i = 0; i < 32; i++) printf("%02x", h[i]);
    printf("\n");
}

int main(int argc, char **argv) {
    size_t n = (size_t)(argc - 2);
    unsigned char node_key[32];
    unhex(argv[1], node_key);
    const unsigned char **ptrs = calloc(n + 1, sizeof *ptrs);
    size_t *lens = calloc(n + 1, sizeof *lens);
    unsigned char *out = calloc(n + 1, 32);
    for (size_t i = 0; i < n; i++) {
        unsigned char *buf = malloc(strlen(argv[i + 2]) / 2 + 1);
        lens[i] = unhex(argv[i + 2], buf);
        ptrs[i] = buf;
    }
    if (engine_blake3_many(ptrs, lens, n, NULL, out, 2) != ENGINE_OK) return 1;
    for (size_t i = 0; i < n; i++) print_hash(out + 32 * i);
    unsigned char root[32];
    if (engine_merkle_root(out, n, node_key, root, 2) != ENGINE_OK) return 1;
    print_hash(root);
    printf("%s\n", engine_blake3_isa_name());
    return 0;
}
