/* A small native thread pool: parallel-for over task indices, shared by all kernels.
 *
 * The calling thread always takes part, so threads=1 runs inline with no synchronisation.
 * Workers are created lazily the first time a call needs them and then park on a condition
 * variable. One parallel-for runs at a time; a second caller waits for the pool. After fork()
 * the child starts with an empty pool (workers do not survive fork).
 * Callers must not hold the Python GIL inside task functions.
 */
#ifndef ENGINE_COMMON_POOL_H
#define ENGINE_COMMON_POOL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Upper bound on threads one call may use (callers asking for more get this many). */
#define ENGINE_POOL_THREADS_MAX 64

typedef void (*engine_task_fn)(void *ctx, size_t task_index);

/* Run fn(ctx, i) for every i in [0, tasks_count) on up to `threads` threads; returns when all
 * tasks are done. threads <= 0 means one per online CPU. */
void engine_parallel_for(int threads, size_t tasks_count, engine_task_fn fn, void *ctx);

/* Resolve a user's thread request: <= 0 means all CPUs; capped at ENGINE_POOL_THREADS_MAX. */
int engine_threads_resolve(int threads);

#ifdef __cplusplus
}
#endif

#endif
