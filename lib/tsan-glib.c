/* crtfs - GLib synchronization made visible to ThreadSanitizer.
 *
 * Compiled only in a --enable-sanitizers=thread build, whose programs are
 * linked with -Wl,--wrap=SYMBOL for every function below (the list is
 * TSAN_GLIB_WRAP in Makefile.am): our calls then land in __wrap_SYMBOL,
 * which calls the real GLib function, __real_SYMBOL, between TSan
 * annotations.
 *
 * Why: GLib 2.74 implements GMutex and GCond on Linux with raw futexes and
 * atomics inside libglib, which is not instrumented, so TSan sees neither
 * the lock nor the happens-before it gives, and reports every access guarded
 * by a GMutex as a race.  The same holds for the hand-off of a task through
 * a GThreadPool (a GAsyncQueue, itself a GMutex and a GCond) and for the
 * release/acquire pair of g_once_init_leave()/g_once_init_enter().
 *
 * Only the calls our code makes are wrapped; GLib's own calls to these
 * functions stay unseen, which is what tests/tsan.supp is for.  A new
 * use of another primitive (GRecMutex, GRWLock, ...) needs a wrapper here and
 * a name in TSAN_GLIB_WRAP.
 */
#include "config.h"

#include <sanitizer/tsan_interface.h>

#include <glib.h>

/* The real GLib functions, resolved by the linker's --wrap. */
void __real_g_mutex_init(GMutex *mutex);
void __real_g_mutex_clear(GMutex *mutex);
void __real_g_mutex_lock(GMutex *mutex);
gboolean __real_g_mutex_trylock(GMutex *mutex);
void __real_g_mutex_unlock(GMutex *mutex);
void __real_g_cond_wait(GCond *cond, GMutex *mutex);
gboolean __real_g_cond_wait_until(GCond *cond, GMutex *mutex, gint64 end_time);
gboolean __real_g_once_init_enter(volatile void *location);
void __real_g_once_init_leave(volatile void *location, gsize result);
GThreadPool *__real_g_thread_pool_new(GFunc func, gpointer user_data, gint max_threads,
                                      gboolean exclusive, GError **error);
gboolean __real_g_thread_pool_push(GThreadPool *pool, gpointer data, GError **error);
void __real_g_thread_pool_free(GThreadPool *pool, gboolean immediate, gboolean wait_);

/* The wrappers: same signatures, called in place of the real ones. */
/* Visible outside the library: the programs' own calls (and GLib's, through
 * a DSO) are redirected here too, while the library is built with
 * -fvisibility=hidden. */
#pragma GCC visibility push(default)
void __wrap_g_mutex_init(GMutex *mutex);
void __wrap_g_mutex_clear(GMutex *mutex);
void __wrap_g_mutex_lock(GMutex *mutex);
gboolean __wrap_g_mutex_trylock(GMutex *mutex);
void __wrap_g_mutex_unlock(GMutex *mutex);
void __wrap_g_cond_wait(GCond *cond, GMutex *mutex);
gboolean __wrap_g_cond_wait_until(GCond *cond, GMutex *mutex, gint64 end_time);
gboolean __wrap_g_once_init_enter(volatile void *location);
void __wrap_g_once_init_leave(volatile void *location, gsize result);
GThreadPool *__wrap_g_thread_pool_new(GFunc func, gpointer user_data, gint max_threads,
                                      gboolean exclusive, GError **error);
gboolean __wrap_g_thread_pool_push(GThreadPool *pool, gpointer data, GError **error);
void __wrap_g_thread_pool_free(GThreadPool *pool, gboolean immediate, gboolean wait_);
#pragma GCC visibility pop

/* ---- GMutex ---------------------------------------------------------- */

/* A GMutex never initialized (a zeroed static) is fine: TSan creates its
 * state on first use.  Destroying it on clear matters for mutexes on the
 * stack, whose address is reused by the next one. */
void __wrap_g_mutex_init(GMutex *mutex)
{
    __real_g_mutex_init(mutex);
    __tsan_mutex_create(mutex, 0);
}

void __wrap_g_mutex_clear(GMutex *mutex)
{
    __tsan_mutex_destroy(mutex, 0);
    __real_g_mutex_clear(mutex);
}

void __wrap_g_mutex_lock(GMutex *mutex)
{
    __tsan_mutex_pre_lock(mutex, 0);
    __real_g_mutex_lock(mutex);
    __tsan_mutex_post_lock(mutex, 0, 0);
}

gboolean __wrap_g_mutex_trylock(GMutex *mutex)
{
    gboolean locked;

    __tsan_mutex_pre_lock(mutex, __tsan_mutex_try_lock);
    locked = __real_g_mutex_trylock(mutex);
    __tsan_mutex_post_lock(
        mutex, locked ? __tsan_mutex_try_lock : __tsan_mutex_try_lock_failed, 0);
    return locked;
}

void __wrap_g_mutex_unlock(GMutex *mutex)
{
    __tsan_mutex_pre_unlock(mutex, 0);
    __real_g_mutex_unlock(mutex);
    __tsan_mutex_post_unlock(mutex, 0);
}

/* ---- GCond ------------------------------------------------------------ */

/* A wait releases the mutex and takes it again before it returns, inside
 * libglib: the annotations say so on either side of it. */
void __wrap_g_cond_wait(GCond *cond, GMutex *mutex)
{
    __tsan_mutex_pre_unlock(mutex, 0);
    __tsan_mutex_post_unlock(mutex, 0);
    __real_g_cond_wait(cond, mutex);
    __tsan_mutex_pre_lock(mutex, 0);
    __tsan_mutex_post_lock(mutex, 0, 0);
}

gboolean __wrap_g_cond_wait_until(GCond *cond, GMutex *mutex, gint64 end_time)
{
    gboolean signalled;

    __tsan_mutex_pre_unlock(mutex, 0);
    __tsan_mutex_post_unlock(mutex, 0);
    signalled = __real_g_cond_wait_until(cond, mutex, end_time);
    __tsan_mutex_pre_lock(mutex, 0);
    __tsan_mutex_post_lock(mutex, 0, 0);
    return signalled;
}

/* ---- g_once_init ------------------------------------------------------ */

/* The g_once_init_enter() macro's fast path is an atomic load of *location
 * in our code, which TSan sees; the store that publishes the result is in
 * libglib, which it does not.  A release on the location before that store,
 * and an acquire when the slow path finds it done, give TSan the pair. */
gboolean __wrap_g_once_init_enter(volatile void *location)
{
    gboolean first = __real_g_once_init_enter(location);

    if (!first)
        __tsan_acquire((void *)location);
    return first;
}

void __wrap_g_once_init_leave(volatile void *location, gsize result)
{
    __tsan_release((void *)location);
    __real_g_once_init_leave(location, result);
}

/* ---- GThreadPool ------------------------------------------------------ */

/* The pool's function runs through a trampoline that acquires what
 * g_thread_pool_push() released on the task's address, and releases on the
 * trampoline's record when the task is done, which g_thread_pool_free()
 * acquires once it has waited for the tasks.
 *
 * The records are found by the pool's address, never through the pool:
 * GLib may free the pool on its last worker thread after
 * g_thread_pool_free() returns, ordered by locks TSan cannot see, so even a
 * read of pool->user_data before the call would be reported. */
typedef struct {
    GFunc func;
    gpointer user_data;
} PoolFunc;

static GMutex pools_lock;
static GHashTable *pools; /* GThreadPool * -> PoolFunc *, under pools_lock */

static void pool_trampoline(gpointer data, gpointer user_data)
{
    PoolFunc *pf = user_data;

    __tsan_acquire(data);
    pf->func(data, pf->user_data);
    __tsan_release(pf);
}

GThreadPool *__wrap_g_thread_pool_new(GFunc func, gpointer user_data, gint max_threads,
                                      gboolean exclusive, GError **error)
{
    PoolFunc *pf = g_new(PoolFunc, 1);
    GThreadPool *pool;

    pf->func = func;
    pf->user_data = user_data;
    pool = __real_g_thread_pool_new(pool_trampoline, pf, max_threads, exclusive, error);
    if (!pool) {
        g_free(pf);
        return NULL;
    }
    g_mutex_lock(&pools_lock);
    if (!pools)
        pools = g_hash_table_new(NULL, NULL);
    g_hash_table_insert(pools, pool, pf);
    g_mutex_unlock(&pools_lock);
    return pool;
}

gboolean __wrap_g_thread_pool_push(GThreadPool *pool, gpointer data, GError **error)
{
    __tsan_release(data);
    return __real_g_thread_pool_push(pool, data, error);
}

void __wrap_g_thread_pool_free(GThreadPool *pool, gboolean immediate, gboolean wait_)
{
    PoolFunc *pf;

    g_mutex_lock(&pools_lock);
    pf = g_hash_table_lookup(pools, pool);
    g_hash_table_remove(pools, pool);
    g_mutex_unlock(&pools_lock);
    __real_g_thread_pool_free(pool, immediate, wait_);
    /* Without wait_, tasks may still run after the call: the record stays. */
    if (wait_) {
        __tsan_acquire(pf);
        g_free(pf);
    }
}
