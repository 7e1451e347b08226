/* Native thread pool; see pool.h for the contract. */
#include "common/pool.h"

#include <pthread.h>
#include <stdint.h>

#include "common/cpu.h"

struct pool {
    pthread_mutex_t submit_lock;   /* one parallel-for at a time */
    pthread_mutex_t lock;          /* guards every field below */
    pthread_cond_t wake;           /* a new job is posted */
    pthread_cond_t done;           /* the last helper of a job left */
    int workers_count;
    uint64_t generation;           /* bumped per job */
    engine_task_fn fn;
    void *ctx;
    size_t tasks_count;
    size_t next_task;              /* atomic */
    int helpers_wanted;            /* workers with id < this join the job */
    int helpers_active;
};

static struct pool g_pool = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
    0, 0, 0, 0, 0, 0, 0, 0,
};

static void run_tasks(engine_task_fn fn, void *ctx, size_t tasks_count) {
    for (;;) {
        size_t i = __atomic_fetch_add(&g_pool.next_task, 1, __ATOMIC_RELAXED);
        if (i >= tasks_count) return;
        fn(ctx, i);
    }
}

static void *worker_main(void *arg) {
    int id = (int)(intptr_t)arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&g_pool.lock);
    seen = g_pool.generation;
    for (;;) {
        while (g_pool.generation == seen) pthread_cond_wait(&g_pool.wake, &g_pool.lock);
        seen = g_pool.generation;
        if (id >= g_pool.helpers_wanted) continue;
        engine_task_fn fn = g_pool.fn;
        void *ctx = g_pool.ctx;
        size_t n = g_pool.tasks_count;
        g_pool.helpers_active++;
        pthread_mutex_unlock(&g_pool.lock);
        run_tasks(fn, ctx, n);
        pthread_mutex_lock(&g_pool.lock);
        if (--g_pool.helpers_active == 0) pthread_cond_broadcast(&g_pool.done);
    }
    return NULL;
}

static void ensure_workers(int wanted) {
    while (g_pool.workers_count < wanted) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, worker_main, (void *)(intptr_t)g_pool.workers_count);
        pthread_attr_destroy(&attr);
        if (rc != 0) break;  /* fewer helpers: the caller still finishes every task */
        g_pool.workers_count++;
    }
}

static void reset_after_fork(void) {
    /* Only the forking thread exists in the child: start from an empty pool. */
    pthread_mutex_init(&g_pool.submit_lock, NULL);
    pthread_mutex_init(&g_pool.lock, NULL);
    pthread_cond_init(&g_pool.wake, NULL);
    pthread_cond_init(&g_pool.done, NULL);
    g_pool.workers_count = 0;
    g_pool.helpers_active = 0;
    g_pool.helpers_wanted = 0;
}

static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;
static void install_atfork(void) { pthread_atfork(NULL, NULL, reset_after_fork); }

int engine_threads_resolve(int threads) {
    if (threads <= 0) threads = engine_cpu_count();
    if (threads > ENGINE_POOL_THREADS_MAX) threads = ENGINE_POOL_THREADS_MAX;
    return threads;
}

void engine_parallel_for(int threads, size_t tasks_count, engine_task_fn fn, void *ctx) {
    threads = engine_threads_resolve(threads);
    if ((size_t)threads > tasks_count) threads = (int)tasks_count;
    if (threads <= 1) {
        for (size_t i = 0; i < tasks_count; i++) fn(ctx, i);
        return;
    }
    pthread_once(&g_atfork_once, install_atfork);
    pthread_mutex_lock(&g_pool.submit_lock);
    pthread_mutex_lock(&g_pool.lock);
    ensure_workers(threads - 1);
    g_pool.fn = fn;
    g_pool.ctx = ctx;
    g_pool.tasks_count = tasks_count;
    __atomic_store_n(&g_pool.next_task, 0, __ATOMIC_RELAXED);
    g_pool.helpers_wanted = threads - 1;
    g_pool.generation++;
    pthread_cond_broadcast(&g_pool.wake);
    pthread_mutex_unlock(&g_pool.lock);

    run_tasks(fn, ctx, tasks_count);

    /* Every task has been claimed; wait for helpers still running theirs. A helper that wakes
     * late finds no task left and leaves at once. */
    pthread_mutex_lock(&g_pool.lock);
    while (g_pool.helpers_active > 0) pthread_cond_wait(&g_pool.done, &g_pool.lock);
    g_pool.helpers_wanted = 0;
    pthread_mutex_unlock(&g_pool.lock);
    pthread_mutex_unlock(&g_pool.submit_lock);
}
