/* crtfs - the I/O loop (see include/crtfs/loop.h).
 *
 * One thread iterates a GMainContext.  A single custom source carries the
 * loop's own work: an eventfd wakes it when another thread posts a task, and
 * its ready time follows the earliest timer.  Tasks and timers are intrusive
 * (embedded in their owners), so posting and arming never allocate: the
 * engine's steady state stays allocation-free.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <crtfs/loop.h>

/* Tasks run per dispatch before the loop looks at descriptors again, so a
 * busy producer cannot starve the targets' file descriptors. */
#define TASK_BUDGET 256
#define POOL_MAX_THREADS 64

typedef struct {
    GSource base;
    CrtLoop *loop;
} LoopSource;

struct CrtLoop {
    gint ref;
    GMainContext *ctx;
    GThread *thread;
    LoopSource *source;
    int efd;
    gint quit;        /* atomic */
    gint wake_posted; /* atomic: an eventfd write is pending */
    GMutex lock;      /* guards head, tail and every CrtTask.queued/next */
    CrtTask *head, *tail;
    CrtTimer *timers; /* sorted by deadline; loop thread only */
    GThreadPool *pool;
};

/* The loop whose thread this is, for a lock-free crt_loop_is_current(). */
static _Thread_local CrtLoop *current_loop;
/* This thread runs its loop's tasks now (run_tasks): a task posted from
 * here runs in the same round without a wake-up. */
static _Thread_local gboolean in_tasks;

static void loop_wake(CrtLoop *loop)
{
    uint64_t one = 1;

    /* One write per burst of posts: the dispatch clears the flag before it
     * drains, so a post racing with the drain writes again. */
    if (g_atomic_int_compare_and_exchange(&loop->wake_posted, 0, 1)) {
        while (write(loop->efd, &one, sizeof one) < 0 && errno == EINTR)
            ;
    }
}

static void loop_update_ready_time(CrtLoop *loop)
{
    g_source_set_ready_time(&loop->source->base,
                            loop->timers ? loop->timers->deadline : -1);
}

static void run_due_timers(CrtLoop *loop)
{
    gint64 now = g_get_monotonic_time();

    while (loop->timers && loop->timers->deadline <= now) {
        CrtTimer *t = loop->timers;

        loop->timers = t->next;
        t->next = NULL;
        t->armed = FALSE;
        t->fn(t);
    }
    loop_update_ready_time(loop);
}

static CrtTask *pop_task(CrtLoop *loop)
{
    CrtTask *task;

    g_mutex_lock(&loop->lock);
    task = loop->head;
    if (task) {
        loop->head = task->next;
        if (!loop->head)
            loop->tail = NULL;
        task->next = NULL;
        /* Cleared before it runs, so the task may post itself again. */
        task->queued = FALSE;
    }
    g_mutex_unlock(&loop->lock);
    return task;
}

static gboolean run_tasks(CrtLoop *loop)
{
    gboolean more = TRUE;

    in_tasks = TRUE;
    for (int i = 0; i < TASK_BUDGET && more; i++) {
        CrtTask *task = pop_task(loop);

        if (task)
            task->fn(task);
        more = task != NULL;
    }
    in_tasks = FALSE;
    return more;
}

static gboolean loop_source_dispatch(GSource *source, GSourceFunc cb, gpointer data)
{
    CrtLoop *loop = ((LoopSource *)source)->loop;
    uint64_t n;

    if (read(loop->efd, &n, sizeof n) < 0 && errno != EAGAIN && errno != EINTR)
        g_error("crtfs loop: eventfd read failed: %s", g_strerror(errno));
    g_atomic_int_set(&loop->wake_posted, 0);
    run_due_timers(loop);
    if (run_tasks(loop))
        loop_wake(loop);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs loop_source_funcs = {
    .dispatch = loop_source_dispatch,
};

static gpointer loop_thread(gpointer data)
{
    CrtLoop *loop = data;
    sigset_t set;

    /* A write to a pipe or socket whose reader is gone must fail with EPIPE
     * on this thread instead of killing the process. */
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    current_loop = loop;
    g_main_context_acquire(loop->ctx);
    g_main_context_push_thread_default(loop->ctx);
    while (!g_atomic_int_get(&loop->quit))
        g_main_context_iteration(loop->ctx, TRUE);
    /* Tasks posted before the last unref still run. */
    while (run_tasks(loop))
        ;
    g_main_context_pop_thread_default(loop->ctx);
    g_main_context_release(loop->ctx);
    return NULL;
}

static void pool_run(gpointer data, gpointer user_data)
{
    CrtTask *task = data;

    task->fn(task);
}

CrtLoop *crt_loop_new(void)
{
    CrtLoop *loop = g_new0(CrtLoop, 1);

    loop->ref = 1;
    g_mutex_init(&loop->lock);
    loop->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->efd < 0)
        g_error("crtfs loop: eventfd: %s", g_strerror(errno));
    loop->ctx = g_main_context_new();
    loop->source = (LoopSource *)g_source_new(&loop_source_funcs, sizeof(LoopSource));
    loop->source->loop = loop;
    g_source_set_name(&loop->source->base, "crtfs-loop");
    /* Only the loop thread iterates the context and never from a dispatch,
     * so recursion cannot happen; allowing it spares GLib from blocking and
     * unblocking the source around each dispatch, which allocates and
     * wakes the context every time. */
    g_source_set_can_recurse(&loop->source->base, TRUE);
    g_source_add_unix_fd(&loop->source->base, loop->efd, G_IO_IN);
    g_source_attach(&loop->source->base, loop->ctx);
    loop->pool = g_thread_pool_new(pool_run, loop, POOL_MAX_THREADS, FALSE, NULL);
    loop->thread = g_thread_new("crtfs-io", loop_thread, loop);
    return loop;
}

CrtLoop *crt_loop_default(void)
{
    static GMutex lock;
    static CrtLoop *loop;

    g_mutex_lock(&lock);
    if (!loop)
        loop = crt_loop_new(); /* the process keeps this reference */
    g_mutex_unlock(&lock);
    return crt_loop_ref(loop);
}

CrtLoop *crt_loop_ref(CrtLoop *loop)
{
    g_atomic_int_inc(&loop->ref);
    return loop;
}

void crt_loop_unref(CrtLoop *loop)
{
    if (!g_atomic_int_dec_and_test(&loop->ref))
        return;
    g_return_if_fail(!crt_loop_is_current(loop));
    /* Workers may post back to the loop, so they finish first. */
    g_thread_pool_free(loop->pool, FALSE, TRUE);
    g_atomic_int_set(&loop->quit, 1);
    g_atomic_int_set(&loop->wake_posted, 0);
    loop_wake(loop);
    g_thread_join(loop->thread);
    g_source_destroy(&loop->source->base);
    g_source_unref(&loop->source->base);
    g_main_context_unref(loop->ctx);
    close(loop->efd);
    g_mutex_clear(&loop->lock);
    g_free(loop);
}

GMainContext *crt_loop_context(CrtLoop *loop)
{
    return loop->ctx;
}

gboolean crt_loop_is_current(CrtLoop *loop)
{
    return current_loop == loop;
}

gboolean crt_loop_post(CrtLoop *loop, CrtTask *task)
{
    gboolean was_empty;

    g_mutex_lock(&loop->lock);
    if (task->queued) {
        g_mutex_unlock(&loop->lock);
        return FALSE;
    }
    task->queued = TRUE;
    task->next = NULL;
    was_empty = loop->head == NULL;
    if (loop->tail)
        loop->tail->next = task;
    else
        loop->head = task;
    loop->tail = task;
    g_mutex_unlock(&loop->lock);
    /* From a task on the loop thread, run_tasks pops it in this round, or
     * wakes the loop itself when its budget runs out. */
    if (was_empty && !(in_tasks && crt_loop_is_current(loop)))
        loop_wake(loop);
    return TRUE;
}

gboolean crt_loop_cancel(CrtLoop *loop, CrtTask *task)
{
    CrtTask **link, *prev = NULL;
    gboolean found = FALSE;

    g_mutex_lock(&loop->lock);
    for (link = &loop->head; task->queued && *link; link = &(*link)->next) {
        if (*link == task) {
            *link = task->next;
            if (loop->tail == task)
                loop->tail = prev;
            task->next = NULL;
            task->queued = FALSE;
            found = TRUE;
            break;
        }
        prev = *link;
    }
    g_mutex_unlock(&loop->lock);
    return found;
}

void crt_loop_run_or_post(CrtLoop *loop, CrtTask *task)
{
    if (crt_loop_is_current(loop))
        task->fn(task);
    else
        crt_loop_post(loop, task);
}

void crt_loop_after_task(CrtLoop *loop, CrtTask *task)
{
    if (in_tasks && crt_loop_is_current(loop))
        crt_loop_post(loop, task);
    else
        task->fn(task);
}

typedef struct {
    CrtTask task;
    void (*fn)(gpointer);
    gpointer data;
    GMutex lock;
    GCond cond;
    gboolean done;
} LoopCall;

static void loop_call_run(CrtTask *task)
{
    LoopCall *call = (LoopCall *)task;

    call->fn(call->data);
    g_mutex_lock(&call->lock);
    call->done = TRUE;
    g_cond_signal(&call->cond);
    g_mutex_unlock(&call->lock);
}

void crt_loop_call(CrtLoop *loop, void (*fn)(gpointer data), gpointer data)
{
    LoopCall call = {.task.fn = loop_call_run, .fn = fn, .data = data};

    if (crt_loop_is_current(loop)) {
        fn(data);
        return;
    }
    g_mutex_init(&call.lock);
    g_cond_init(&call.cond);
    crt_loop_post(loop, &call.task);
    g_mutex_lock(&call.lock);
    while (!call.done)
        g_cond_wait(&call.cond, &call.lock);
    g_mutex_unlock(&call.lock);
    g_mutex_clear(&call.lock);
    g_cond_clear(&call.cond);
}

void crt_loop_pool_push(CrtLoop *loop, CrtTask *task)
{
    GError *error = NULL;

    if (!g_thread_pool_push(loop->pool, task, &error))
        g_error("crtfs loop: cannot start a worker: %s", error->message);
}

void crt_loop_timer_start(CrtLoop *loop, CrtTimer *timer, gint64 deadline)
{
    CrtTimer **link;

    g_return_if_fail(crt_loop_is_current(loop));
    if (timer->armed)
        crt_loop_timer_stop(loop, timer);
    timer->deadline = deadline;
    /* Sorted insert: equal deadlines fire in arming order.  The list holds
     * at most one timer per pending single request or sim delay. */
    for (link = &loop->timers; *link && (*link)->deadline <= deadline;
         link = &(*link)->next)
        ;
    timer->next = *link;
    *link = timer;
    timer->armed = TRUE;
    if (loop->timers == timer)
        loop_update_ready_time(loop);
}

gboolean crt_loop_timer_stop(CrtLoop *loop, CrtTimer *timer)
{
    CrtTimer **link;

    g_return_val_if_fail(crt_loop_is_current(loop), FALSE);
    if (!timer->armed)
        return FALSE;
    for (link = &loop->timers; *link; link = &(*link)->next) {
        if (*link == timer) {
            gboolean was_head = link == &loop->timers;

            *link = timer->next;
            timer->next = NULL;
            timer->armed = FALSE;
            if (was_head)
                loop_update_ready_time(loop);
            return TRUE;
        }
    }
    g_assert_not_reached();
}
