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

/* Every slot and its one owner, in one place: two callers sharing a slot on one thread would
 * hand each other's buffer out (a second take of a taken slot falls back to malloc, but the
 * slots are meant to be kept). */
enum engine_scratch_slot {
    ENGINE_SCRATCH_BIND_PTRS = 0,    /* bindings: item pointers of a buffer list */
    ENGINE_SCRATCH_BIND_LENS = 1,    /* bindings: item lengths of a buffer list */
    ENGINE_SCRATCH_BIND_OUT = 2,     /* bindings: output arrays */
    ENGINE_SCRATCH_B3_TASK_JOBS = 3, /* blake3_batch.c: one task's job descriptions */
    ENGINE_SCRATCH_B3_LEVEL_A = 4,   /* blake3_merkle.c: the two alternating levels */
    ENGINE_SCRATCH_B3_LEVEL_B = 5,
    ENGINE_SCRATCH_BIND_HELD = 6,    /* bindings: references held on list items */
    ENGINE_SCRATCH_SM3_TASK_JOBS = 7, /* sm3.c: one task's job descriptions */
    ENGINE_SCRATCH_SM3_LEVEL_A = 8,  /* sm3.c: the two alternating Merkle levels */
    ENGINE_SCRATCH_SM3_LEVEL_B = 9,
    ENGINE_SCRATCH_SM2_TASK = 10,    /* sm2.c: one task's verification state */
    ENGINE_SCRATCH_SLOTS = 11
};
#define ENGINE_SCRATCH_KEEP_BYTES_MAX ((size_t)64 << 20)

/* A buffer of at least `bytes` bytes for `slot` (0 <= slot < ENGINE_SCRATCH_SLOTS) on this
 * thread, or NULL when out of memory. Contents are unspecified. Valid until the matching
 * engine_scratch_release(); a slot must not be taken twice at once on one thread. */
void *engine_scratch_take(enum engine_scratch_slot slot, size_t bytes);
void engine_scratch_release(enum engine_scratch_slot slot, void *buffer);

#ifdef __cplusplus
}
#endif

#endif
