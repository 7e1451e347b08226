/* SM2 curve arithmetic compiled for any x86-64 or aarch64 CPU (the path every CPU has). */
#include "sm2/sm2_core.h"

SM2_DEFINE_CORE(portable)
