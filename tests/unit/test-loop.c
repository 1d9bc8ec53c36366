/* crtfs tests - the I/O loop: tasks, cancellation, timers, calls, the
 * worker pool and the lifetime of a private loop. */
#include "config.h"

#include <string.h>

#include <crtfs/loop.h>

#include "testutil.h"

/* ---- helpers ------------------------------------------------------------ */

/* A task that blocks the loop thread until released, so tests can keep
 * other tasks queued for as long as they need. */
typedef struct {
    CrtTask task;
    GMutex lock;
    GCond cond;
    gboolean running;
    gboolean released;
} Blocker;

static void blocker_run(CrtTask *task)
{
    Blocker *b = (Blocker *)task;

    g_mutex_lock(&b->lock);
    b->running = TRUE;
    g_cond_broadcast(&b->cond);
    while (!b->released)
        g_cond_wait(&b->cond, &b->lock);
    g_mutex_unlock(&b->lock);
}

static void blocker_init(Blocker *b)
{
    memset(b, 0, sizeof *b);
    b->task.fn = blocker_run;
    g_mutex_init(&b->lock);
    g_cond_init(&b->cond);
}

/* Post the blocker and return once it occupies the loop thread. */
static void blocker_engage(CrtLoop *loop, Blocker *b)
{
    g_assert_true(crt_loop_post(loop, &b->task));
    g_mutex_lock(&b->lock);
    while (!b->running)
        g_cond_wait(&b->cond, &b->lock);
    g_mutex_unlock(&b->lock);
}

static void blocker_release(Blocker *b)
{
    g_mutex_lock(&b->lock);
    b->released = TRUE;
    g_cond_broadcast(&b->cond);
    g_mutex_unlock(&b->lock);
}

static void blocker_clear(Blocker *b)
{
    g_mutex_clear(&b->lock);
    g_cond_clear(&b->cond);
}

/* A task that counts its runs and whether they were on the loop thread. */
typedef struct {
    CrtTask task;
    CrtLoop *loop;
    gint runs;          /* atomic */
    gint off_loop_runs; /* atomic: runs not on the loop thread */
} Counted;

static void counted_run(CrtTask *task)
{
    Counted *c = (Counted *)task;

    if (!crt_loop_is_current(c->loop))
        g_atomic_int_inc(&c->off_loop_runs);
    g_atomic_int_inc(&c->runs);
}

static void counted_init(Counted *c, CrtLoop *loop)
{
    memset(c, 0, sizeof *c);
    c->task.fn = counted_run;
    c->loop = loop;
}

/* ---- /loop/post-many-threads ---------------------------------------------- */

#define POST_THREADS 8
#define POST_PER_THREAD 2000

typedef struct {
    CrtLoop *loop;
    Counted *tasks; /* POST_PER_THREAD of them, this thread's own */
    gint *done;     /* atomic, shared: tasks run */
} Poster;

static gpointer poster_thread(gpointer data)
{
    Poster *p = data;

    for (guint i = 0; i < POST_PER_THREAD; i++) {
        g_assert_true(crt_loop_post(p->loop, &p->tasks[i].task));
        if (i % 128 == 0)
            g_thread_yield();
    }
    return NULL;
}

static void test_post_many_threads(void)
{
    CrtLoop *loop = crt_loop_new();
    Poster posters[POST_THREADS];
    GThread *threads[POST_THREADS];
    gint total = 0;

    for (guint t = 0; t < POST_THREADS; t++) {
        posters[t].loop = loop;
        posters[t].tasks = g_new0(Counted, POST_PER_THREAD);
        for (guint i = 0; i < POST_PER_THREAD; i++) {
            counted_init(&posters[t].tasks[i], loop);
        }
    }
    for (guint t = 0; t < POST_THREADS; t++)
        threads[t] = g_thread_new("poster", poster_thread, &posters[t]);
    for (guint t = 0; t < POST_THREADS; t++)
        g_thread_join(threads[t]);

    /* Every task ran once; wait for the last ones, then make sure no
     * straggler runs a second time. */
    for (guint t = 0; t < POST_THREADS; t++) {
        for (guint i = 0; i < POST_PER_THREAD; i++)
            TU_WAIT_FOR(g_atomic_int_get(&posters[t].tasks[i].runs) >= 1);
    }
    g_usleep(50 * 1000);
    for (guint t = 0; t < POST_THREADS; t++) {
        for (guint i = 0; i < POST_PER_THREAD; i++) {
            Counted *c = &posters[t].tasks[i];

            g_assert_cmpint(g_atomic_int_get(&c->runs), ==, 1);
            g_assert_cmpint(g_atomic_int_get(&c->off_loop_runs), ==, 0);
            g_assert_false(c->task.queued);
            total += c->runs;
        }
        g_free(posters[t].tasks);
    }
    g_assert_cmpint(total, ==, POST_THREADS * POST_PER_THREAD);
    crt_loop_unref(loop);
}

/* ---- /loop/post-order ------------------------------------------------------ */

#define ORDER_TASKS 1000

typedef struct {
    CrtTask task;
    guint index;
    GArray *log; /* loop thread only */
} Ordered;

static void ordered_run(CrtTask *task)
{
    Ordered *o = (Ordered *)task;

    g_array_append_val(o->log, o->index);
}

/* Tasks posted from one thread run in the order they were posted, also
 * across the loop's per-dispatch budget. */
static void test_post_order(void)
{
    CrtLoop *loop = crt_loop_new();
    Ordered *tasks = g_new0(Ordered, ORDER_TASKS);
    GArray *log = g_array_new(FALSE, FALSE, sizeof(guint));
    Counted last;
    Blocker b;

    blocker_init(&b);
    counted_init(&last, loop);
    blocker_engage(loop, &b);
    for (guint i = 0; i < ORDER_TASKS; i++) {
        tasks[i] = (Ordered){.task.fn = ordered_run, .index = i, .log = log};
        g_assert_true(crt_loop_post(loop, &tasks[i].task));
    }
    g_assert_true(crt_loop_post(loop, &last.task));
    blocker_release(&b);
    TU_WAIT_FOR(g_atomic_int_get(&last.runs) >= 1);
    g_assert_cmpuint(log->len, ==, ORDER_TASKS);
    for (guint i = 0; i < ORDER_TASKS; i++)
        g_assert_cmpuint(g_array_index(log, guint, i), ==, i);
    crt_loop_unref(loop);
    g_array_free(log, TRUE);
    g_free(tasks);
    blocker_clear(&b);
}

/* ---- /loop/repost-and-cancel --------------------------------------------- */

static void test_repost_and_cancel(void)
{
    CrtLoop *loop = crt_loop_new();
    Counted a, b, c, fence;
    Blocker blk;

    blocker_init(&blk);
    counted_init(&a, loop);
    counted_init(&b, loop);
    counted_init(&c, loop);
    counted_init(&fence, loop);

    blocker_engage(loop, &blk);
    /* While the loop is busy these stay queued. */
    g_assert_true(crt_loop_post(loop, &a.task));
    g_assert_true(a.task.queued);
    g_assert_false(crt_loop_post(loop, &a.task)); /* already queued */
    g_assert_true(crt_loop_post(loop, &b.task));
    g_assert_true(crt_loop_post(loop, &c.task));

    /* Take back the middle and the last task: the queue stays intact. */
    g_assert_true(crt_loop_cancel(loop, &b.task));
    g_assert_false(b.task.queued);
    g_assert_false(crt_loop_cancel(loop, &b.task)); /* no longer queued */
    g_assert_true(crt_loop_cancel(loop, &c.task));
    /* The tail moved back to `a`: a new post must still run. */
    g_assert_true(crt_loop_post(loop, &fence.task));

    blocker_release(&blk);
    TU_WAIT_FOR(g_atomic_int_get(&fence.runs) >= 1);
    g_usleep(20 * 1000);
    g_assert_cmpint(g_atomic_int_get(&a.runs), ==, 1);
    g_assert_cmpint(g_atomic_int_get(&b.runs), ==, 0);
    g_assert_cmpint(g_atomic_int_get(&c.runs), ==, 0);
    g_assert_cmpint(g_atomic_int_get(&fence.runs), ==, 1);

    /* A task that ran can be posted again and runs again; cancelling a task
     * that is not queued is harmless. */
    g_assert_false(crt_loop_cancel(loop, &a.task));
    g_assert_true(crt_loop_post(loop, &a.task));
    TU_WAIT_FOR(g_atomic_int_get(&a.runs) >= 2);
    /* A cancelled task can be posted again too. */
    g_assert_true(crt_loop_post(loop, &b.task));
    TU_WAIT_FOR(g_atomic_int_get(&b.runs) >= 1);

    crt_loop_unref(loop);
    blocker_clear(&blk);
}

/* ---- /loop/self-repost ----------------------------------------------------- */

typedef struct {
    CrtTask task;
    CrtLoop *loop;
    gint runs; /* atomic */
    gint limit;
} SelfPoster;

static void self_poster_run(CrtTask *task)
{
    SelfPoster *s = (SelfPoster *)task;

    /* `queued` is cleared before a task runs, so it may post itself. */
    if (g_atomic_int_add(&s->runs, 1) + 1 < s->limit)
        g_assert_true(crt_loop_post(s->loop, &s->task));
}

static void test_self_repost(void)
{
    CrtLoop *loop = crt_loop_new();
    SelfPoster s = {.task.fn = self_poster_run, .loop = loop, .limit = 5000};

    g_assert_true(crt_loop_post(loop, &s.task));
    TU_WAIT_FOR(g_atomic_int_get(&s.runs) >= s.limit);
    g_usleep(20 * 1000);
    g_assert_cmpint(g_atomic_int_get(&s.runs), ==, s.limit);
    crt_loop_unref(loop);
}

/* ---- /loop/timers ------------------------------------------------------------ */

#define N_TIMERS 6

typedef struct Timers Timers;
typedef struct {
    CrtTimer timer;
    Timers *owner;
    guint index;
} TestTimer;

struct Timers {
    CrtLoop *loop;
    TestTimer t[N_TIMERS];
    GMutex lock;
    GArray *fired;    /* indexes in firing order; lock */
    gint bad;         /* atomic: fired early or still marked armed */
    gint off_loop;    /* atomic: fired off the loop thread */
    gint fired_count; /* atomic */
    gboolean stop_result[N_TIMERS];
};

static void test_timer_fired(CrtTimer *timer)
{
    TestTimer *tt = (TestTimer *)timer;
    Timers *ts = tt->owner;

    if (g_get_monotonic_time() < timer->deadline)
        g_atomic_int_inc(&ts->bad);
    if (!crt_loop_is_current(ts->loop))
        g_atomic_int_inc(&ts->off_loop);
    if (timer->armed)
        g_atomic_int_inc(&ts->bad); /* must be disarmed when it fires */
    g_mutex_lock(&ts->lock);
    g_array_append_val(ts->fired, tt->index);
    g_mutex_unlock(&ts->lock);
    g_atomic_int_inc(&ts->fired_count);
}

/* Offsets in ms from "now", in arming order (deliberately not sorted). */
static const int timer_offsets[N_TIMERS] = {60, 20, 100, 40, 80, 20};

static void arm_timers(gpointer data)
{
    Timers *ts = data;
    gint64 now = g_get_monotonic_time();

    for (guint i = 0; i < N_TIMERS; i++)
        crt_loop_timer_start(ts->loop, &ts->t[i].timer,
                             now + (gint64)timer_offsets[i] * 1000);
    /* Re-arming moves a timer: index 2 now fires first of all. */
    crt_loop_timer_start(ts->loop, &ts->t[2].timer, now + 10 * 1000);
    /* Stop two that are armed (one of them the head of the list later). */
    ts->stop_result[4] = crt_loop_timer_stop(ts->loop, &ts->t[4].timer);
    ts->stop_result[1] = crt_loop_timer_stop(ts->loop, &ts->t[1].timer);
}

static void stop_fired_timer(gpointer data)
{
    Timers *ts = data;

    /* Fired and stopped timers are not armed: stop says so. */
    ts->stop_result[0] = crt_loop_timer_stop(ts->loop, &ts->t[0].timer);
    ts->stop_result[4] = crt_loop_timer_stop(ts->loop, &ts->t[4].timer);
}

static void test_timers(void)
{
    CrtLoop *loop = crt_loop_new();
    Timers ts;
    /* Expected by deadline: 2 (10 ms), 5 (20), 3 (40), 0 (60); 1 and 4
     * stopped. */
    static const guint expected[] = {2, 5, 3, 0};

    memset(&ts, 0, sizeof ts);
    ts.loop = loop;
    g_mutex_init(&ts.lock);
    ts.fired = g_array_new(FALSE, FALSE, sizeof(guint));
    for (guint i = 0; i < N_TIMERS; i++) {
        ts.t[i].timer.fn = test_timer_fired;
        ts.t[i].owner = &ts;
        ts.t[i].index = i;
    }
    crt_loop_call(loop, arm_timers, &ts);
    g_assert_true(ts.stop_result[4]);
    g_assert_true(ts.stop_result[1]);

    TU_WAIT_FOR(g_atomic_int_get(&ts.fired_count) >= (gint)G_N_ELEMENTS(expected));
    /* Give a stopped timer every chance to fire wrongly: its deadline
     * (80 ms) is long past after this. */
    g_usleep(200 * 1000);
    g_assert_cmpint(g_atomic_int_get(&ts.fired_count), ==, G_N_ELEMENTS(expected));
    g_mutex_lock(&ts.lock);
    g_assert_cmpuint(ts.fired->len, ==, G_N_ELEMENTS(expected));
    for (guint i = 0; i < G_N_ELEMENTS(expected); i++)
        g_assert_cmpuint(g_array_index(ts.fired, guint, i), ==, expected[i]);
    g_mutex_unlock(&ts.lock);
    g_assert_cmpint(ts.bad, ==, 0);
    g_assert_cmpint(ts.off_loop, ==, 0);

    crt_loop_call(loop, stop_fired_timer, &ts);
    g_assert_false(ts.stop_result[0]);
    g_assert_false(ts.stop_result[4]);

    crt_loop_unref(loop);
    g_array_free(ts.fired, TRUE);
    g_mutex_clear(&ts.lock);
}

/* ---- /loop/timer-rearm-from-callback ------------------------------------- */

typedef struct {
    CrtTimer timer;
    CrtLoop *loop;
    gint fires; /* atomic */
} Ticker;

static void ticker_fired(CrtTimer *timer)
{
    Ticker *t = (Ticker *)timer;

    /* A timer re-armed from its own callback keeps ticking. */
    if (g_atomic_int_add(&t->fires, 1) + 1 < 10)
        crt_loop_timer_start(t->loop, &t->timer, g_get_monotonic_time() + 2000);
}

static void ticker_start(gpointer data)
{
    Ticker *t = data;

    crt_loop_timer_start(t->loop, &t->timer, g_get_monotonic_time() + 2000);
}

static void test_timer_rearm(void)
{
    CrtLoop *loop = crt_loop_new();
    Ticker t = {.timer.fn = ticker_fired, .loop = loop};

    crt_loop_call(loop, ticker_start, &t);
    TU_WAIT_FOR(g_atomic_int_get(&t.fires) >= 10);
    g_usleep(50 * 1000);
    g_assert_cmpint(g_atomic_int_get(&t.fires), ==, 10);
    g_assert_false(t.timer.armed);
    crt_loop_unref(loop);
}

/* ---- /loop/call -------------------------------------------------------------- */

typedef struct {
    CrtTask task;
    CrtLoop *loop;
    gboolean inner_ran; /* set by the inner call */
    gboolean inner_on_loop;
    gboolean inline_ok; /* the inner call ran before crt_loop_call returned */
    gint outer_done;    /* atomic */
} CallInline;

static void inner_call(gpointer data)
{
    CallInline *c = data;

    c->inner_ran = TRUE;
    c->inner_on_loop = crt_loop_is_current(c->loop);
}

static void call_from_loop(CrtTask *task)
{
    CallInline *c = (CallInline *)task;

    /* On the loop thread, crt_loop_call must run inline: posting and
     * waiting would deadlock. */
    crt_loop_call(c->loop, inner_call, c);
    c->inline_ok = c->inner_ran;
    g_atomic_int_set(&c->outer_done, 1);
}

typedef struct {
    CrtLoop *loop;
    gint ran;     /* atomic */
    gint on_loop; /* atomic */
} SlowCall;

static void slow_call(gpointer data)
{
    SlowCall *s = data;

    g_usleep(50 * 1000);
    g_atomic_int_set(&s->on_loop, crt_loop_is_current(s->loop));
    g_atomic_int_set(&s->ran, 1);
}

static void test_call(void)
{
    CrtLoop *loop = crt_loop_new();
    CallInline ci = {.task.fn = call_from_loop, .loop = loop};
    SlowCall sc = {.loop = loop};

    /* From the loop thread: inline. */
    g_assert_true(crt_loop_post(loop, &ci.task));
    TU_WAIT_FOR(g_atomic_int_get(&ci.outer_done) >= 1);
    g_assert_true(ci.inner_ran);
    g_assert_true(ci.inner_on_loop);
    g_assert_true(ci.inline_ok);

    /* From another thread: runs on the loop thread, and the call returns
     * only after fn did. */
    g_assert_false(crt_loop_is_current(loop));
    crt_loop_call(loop, slow_call, &sc);
    g_assert_cmpint(g_atomic_int_get(&sc.ran), ==, 1);
    g_assert_cmpint(g_atomic_int_get(&sc.on_loop), ==, 1);
    crt_loop_unref(loop);
}

/* ---- /loop/run-or-post -------------------------------------------------- */

typedef struct {
    CrtTask task;
    CrtLoop *loop;
    Counted inner;
    gint inline_runs; /* atomic: inner ran before run_or_post returned */
    gint done;        /* atomic */
} RunOrPost;

static void run_or_post_outer(CrtTask *task)
{
    RunOrPost *r = (RunOrPost *)task;

    crt_loop_run_or_post(r->loop, &r->inner.task);
    g_atomic_int_set(&r->inline_runs, g_atomic_int_get(&r->inner.runs));
    g_atomic_int_set(&r->done, 1);
}

static void test_run_or_post(void)
{
    CrtLoop *loop = crt_loop_new();
    RunOrPost r = {.task.fn = run_or_post_outer, .loop = loop};
    Counted off;

    counted_init(&r.inner, loop);
    counted_init(&off, loop);
    g_assert_true(crt_loop_post(loop, &r.task));
    TU_WAIT_FOR(g_atomic_int_get(&r.done) >= 1);
    g_assert_cmpint(r.inline_runs, ==, 1);
    /* From another thread it is posted, and still runs on the loop. */
    crt_loop_run_or_post(loop, &off.task);
    TU_WAIT_FOR(g_atomic_int_get(&off.runs) >= 1);
    g_assert_cmpint(off.off_loop_runs, ==, 0);
    g_assert_cmpint(r.inner.off_loop_runs, ==, 0);
    crt_loop_unref(loop);
}

/* ---- /loop/pool -------------------------------------------------------------- */

#define POOL_TASKS 64

typedef struct {
    CrtTask task;
    CrtLoop *loop;
    gint *on_loop; /* atomic */
    gint *done;    /* atomic */
    gint runs;     /* atomic */
} PoolTask;

static void pool_task_run(CrtTask *task)
{
    PoolTask *p = (PoolTask *)task;

    if (crt_loop_is_current(p->loop))
        g_atomic_int_inc(p->on_loop);
    g_usleep(1000); /* blocking is what the pool is for */
    g_atomic_int_inc(&p->runs);
    g_atomic_int_inc(p->done);
}

/* A pool task that hands its result back to the loop thread. */
typedef struct {
    CrtTask work;
    CrtTask back;
    CrtLoop *loop;
    gint back_on_loop; /* atomic */
    gint back_done;    /* atomic */
} PoolAndBack;

static void pool_back_run(CrtTask *task)
{
    PoolAndBack *p = G_STRUCT_MEMBER_P(task, -G_STRUCT_OFFSET(PoolAndBack, back));

    g_atomic_int_set(&p->back_on_loop, crt_loop_is_current(p->loop));
    g_atomic_int_set(&p->back_done, 1);
}

static void pool_work_run(CrtTask *task)
{
    PoolAndBack *p = G_STRUCT_MEMBER_P(task, -G_STRUCT_OFFSET(PoolAndBack, work));

    g_assert_true(crt_loop_post(p->loop, &p->back));
}

static void test_pool(void)
{
    CrtLoop *loop = crt_loop_new();
    PoolTask *tasks = g_new0(PoolTask, POOL_TASKS);
    PoolAndBack pb = {.work.fn = pool_work_run, .back.fn = pool_back_run, .loop = loop};
    gint on_loop = 0, done = 0;

    for (guint i = 0; i < POOL_TASKS; i++) {
        tasks[i] = (PoolTask){
            .task.fn = pool_task_run, .loop = loop, .on_loop = &on_loop, .done = &done};
        crt_loop_pool_push(loop, &tasks[i].task);
    }
    TU_WAIT_FOR(g_atomic_int_get(&done) >= POOL_TASKS);
    g_assert_cmpint(g_atomic_int_get(&on_loop), ==, 0);
    for (guint i = 0; i < POOL_TASKS; i++)
        g_assert_cmpint(g_atomic_int_get(&tasks[i].runs), ==, 1);

    crt_loop_pool_push(loop, &pb.work);
    TU_WAIT_FOR(g_atomic_int_get(&pb.back_done) >= 1);
    g_assert_cmpint(g_atomic_int_get(&pb.back_on_loop), ==, 1);

    crt_loop_unref(loop);
    g_free(tasks);
}

/* ---- /loop/unref-runs-queued ---------------------------------------------- */

#define QUEUED_TASKS 1000 /* more than one dispatch budget */

static void slow_task(CrtTask *task)
{
    g_usleep(30 * 1000);
}

static void test_unref_runs_queued(void)
{
    CrtLoop *loop = crt_loop_new();
    CrtTask slow = {.fn = slow_task};
    Counted *tasks = g_new0(Counted, QUEUED_TASKS);
    PoolTask pool_tasks[4];
    gint on_loop = 0, pool_done = 0;

    /* The slow task keeps the rest queued when unref is called. */
    g_assert_true(crt_loop_post(loop, &slow));
    for (guint i = 0; i < QUEUED_TASKS; i++) {
        counted_init(&tasks[i], loop);
        g_assert_true(crt_loop_post(loop, &tasks[i].task));
    }
    for (guint i = 0; i < G_N_ELEMENTS(pool_tasks); i++) {
        pool_tasks[i] = (PoolTask){.task.fn = pool_task_run,
                                   .loop = loop,
                                   .on_loop = &on_loop,
                                   .done = &pool_done};
        crt_loop_pool_push(loop, &pool_tasks[i].task);
    }
    crt_loop_unref(loop);
    /* Everything ran before the last unref returned, exactly once. */
    for (guint i = 0; i < QUEUED_TASKS; i++) {
        g_assert_cmpint(tasks[i].runs, ==, 1);
        g_assert_cmpint(tasks[i].off_loop_runs, ==, 0);
    }
    g_assert_cmpint(pool_done, ==, G_N_ELEMENTS(pool_tasks));
    g_assert_cmpint(on_loop, ==, 0);
    g_free(tasks);
}

/* An extra reference keeps the loop running; the last one stops it. */
static void test_ref_unref(void)
{
    CrtLoop *loop = crt_loop_new();
    Counted c;

    counted_init(&c, loop);
    g_assert_true(crt_loop_ref(loop) == loop);
    crt_loop_unref(loop);
    g_assert_true(crt_loop_post(loop, &c.task));
    TU_WAIT_FOR(g_atomic_int_get(&c.runs) >= 1);
    g_assert_nonnull(crt_loop_context(loop));
    g_assert_false(crt_loop_is_current(loop));
    crt_loop_unref(loop);
}

/* The default loop is one loop, shared, and never the caller's thread. */
static void test_default(void)
{
    CrtLoop *a = crt_loop_default();
    CrtLoop *b = crt_loop_default();
    Counted c;

    g_assert_true(a == b);
    counted_init(&c, a);
    g_assert_true(crt_loop_post(a, &c.task));
    TU_WAIT_FOR(g_atomic_int_get(&c.runs) >= 1);
    g_assert_cmpint(c.off_loop_runs, ==, 0);
    crt_loop_unref(b);
    crt_loop_unref(a);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/loop/post-many-threads", test_post_many_threads);
    g_test_add_func("/loop/post-order", test_post_order);
    g_test_add_func("/loop/repost-and-cancel", test_repost_and_cancel);
    g_test_add_func("/loop/self-repost", test_self_repost);
    g_test_add_func("/loop/timers", test_timers);
    g_test_add_func("/loop/timer-rearm", test_timer_rearm);
    g_test_add_func("/loop/call", test_call);
    g_test_add_func("/loop/run-or-post", test_run_or_post);
    g_test_add_func("/loop/pool", test_pool);
    g_test_add_func("/loop/unref-runs-queued", test_unref_runs_queued);
    g_test_add_func("/loop/ref-unref", test_ref_unref);
    g_test_add_func("/loop/default", test_default);
    return g_test_run();
}
