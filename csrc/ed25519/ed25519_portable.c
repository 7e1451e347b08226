/* Ed25519 verification, portable C: radix-2^51 field with 128-bit products. Always built and
 * the last resort of the dispatcher. */
#define ED_SUFFIX portable
#include "ed25519/ed25519_verify_template.h"
