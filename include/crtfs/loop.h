/* crtfs - the I/O loop: one thread that owns every target's file descriptors,
 * the timers of single requests, and a shared worker pool for blocking work.
 *
 * Every engine and target in a process shares one loop (crt_loop_default()),
 * so a thousand idle targets cost memory, not threads: there is no thread per
 * target and none per request.
 *
 * Threads: tasks and timers run on the loop thread, one at a time, in the
 * order they were posted.  Work pushed to the pool runs on worker threads.
 */
#ifndef CRTFS_LOOP_H
#define CRTFS_LOOP_H

#include <glib.h>

#include <crtfs/export.h>

G_BEGIN_DECLS

typedef struct CrtLoop CrtLoop;
typedef struct CrtTask CrtTask;
typedef struct CrtTimer CrtTimer;

typedef void (*CrtTaskFn)(CrtTask *task);
typedef void (*CrtTimerFn)(CrtTimer *timer);

/* A unit of work posted to the loop or the pool.  The caller embeds it in
 * its own structure (no allocation per post) and recovers that structure with
 * G_STRUCT_MEMBER_P/container arithmetic.  A task may be queued at most once
 * at a time; `queued` tells whether it is (guarded by the loop's lock). */
struct CrtTask {
    CrtTaskFn fn;
    CrtTask *next;
    gboolean queued;
};

/* A one-shot timer on the loop.  Embedded like a task; started and stopped
 * only on the loop thread. */
struct CrtTimer {
    CrtTimerFn fn;   /* called on the loop thread at expiry */
    gint64 deadline; /* g_get_monotonic_time() microseconds */
    CrtTimer *next;
    gboolean armed;
};

/* The process-wide loop, created on first use (its thread starts then).
 * Returns a new reference.  Thread-safe. */
CRT_API CrtLoop *crt_loop_default(void);

/* A private loop with its own thread and pool (tests, benchmarks). */
CRT_API CrtLoop *crt_loop_new(void);
CRT_API CrtLoop *crt_loop_ref(CrtLoop *loop);
/* Dropping the last reference stops the thread (it must not be the loop
 * thread) and waits for the pool's running work.  Queued tasks are run first. */
CRT_API void crt_loop_unref(CrtLoop *loop);

/* The GMainContext the loop thread iterates; sources attached to it are
 * dispatched on the loop thread. */
CRT_API GMainContext *crt_loop_context(CrtLoop *loop);

/* TRUE when the calling thread is the loop's thread. */
CRT_API gboolean crt_loop_is_current(CrtLoop *loop);

/* Queue `task` to run on the loop thread.  Any thread; never blocks, never
 * allocates.  Posting a task that is already queued does nothing and returns
 * FALSE. */
CRT_API gboolean crt_loop_post(CrtLoop *loop, CrtTask *task);

/* Take a queued task back; TRUE if it was queued (it will not run).  Any
 * thread.  A task already running is not waited for. */
CRT_API gboolean crt_loop_cancel(CrtLoop *loop, CrtTask *task);

/* Run `task` now if called on the loop thread, else post it. */
CRT_API void crt_loop_run_or_post(CrtLoop *loop, CrtTask *task);

/* Run `task` once the task running on the loop thread now is done: from
 * a task on the loop thread it is posted (queued once however often it is
 * asked for, so a batch of work leaves one run of it: a wake-up for what
 * a batch of completions made ready); anywhere else (another thread, a
 * source's dispatch) it runs now, on the calling thread.  A posted one
 * runs after the tasks already queued. */
CRT_API void crt_loop_after_task(CrtLoop *loop, CrtTask *task);

/* Run fn(data) on the loop thread and wait for it to return.  Runs inline on
 * the loop thread.  Any thread; blocks until done. */
CRT_API void crt_loop_call(CrtLoop *loop, void (*fn)(gpointer data), gpointer data);

/* Push `task` to the worker pool: it runs on some worker thread.  Any
 * thread.  The task must not already be queued anywhere. */
CRT_API void crt_loop_pool_push(CrtLoop *loop, CrtTask *task);

/* Arm or re-arm `timer` to fire at `deadline` (monotonic microseconds).
 * Loop thread only. */
CRT_API void crt_loop_timer_start(CrtLoop *loop, CrtTimer *timer, gint64 deadline);
/* Disarm; returns TRUE if it was armed (so it will not fire).  Loop thread
 * only. */
CRT_API gboolean crt_loop_timer_stop(CrtLoop *loop, CrtTimer *timer);

G_END_DECLS

#endif
