/* Per-thread reusable scratch buffers.
 *
 * Large batches need temporary arrays of several MB. Fresh allocations of that size come from
 * mmap and every page faults on first touch, which on this class of VM costs as much as the
 * hashing itself; a per-thread buffer that is kept between calls pays that once. Buffers up to
 * ENGINE_SCRATCH_KEEP_BYTES_MAX stay cached per thread (freed when the thread exits); larger
 * requests are allocated and freed per call.
 */
#ifndef ENGINE_COMMON_SCRATCH_H
#define ENGINE_COMMON_SCRATCH_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ENGINE_SCRATCH_SLOTS 7
#define ENGINE_SCRATCH_KEEP_BYTES_MAX ((size_t)64 << 20)

/* A buffer of at least `bytes` bytes for `slot` (0 <= slot < ENGINE_SCRATCH_SLOTS) on this
 * thread, or NULL when out of memory. Contents are unspecified. Valid until the matching
 * engine_scratch_release(); a slot must not be taken twice at once on one thread. */
void *engine_scratch_take(int slot, size_t bytes);
void engine_scratch_release(int slot, void *buffer);

#ifdef __cplusplus
}
#endif

#endif
