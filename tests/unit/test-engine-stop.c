/* crtfs tests - stopping the engine while it works: stop_and_wait during a
 * slow callback, a start/stop storm, free with requests in flight, and
 * stopping from inside the callbacks.
 *
 * Callbacks record failures with CHECK(); the fixture's teardown asserts
 * that none were recorded (testutil.h).
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <crtfs/crtfs.h>

#include "engine-streams.h"
#include "testutil.h"

/* ---- bounded calls ------------------------------------------------------ */

/* Run fn(data) on its own thread; a call that has not returned after
 * `timeout_ms` is a hang, and the program stops there with a message rather
 * than waiting for the harness to kill it. */
typedef struct {
    void (*fn)(gpointer data);
    gpointer data;
    gint done; /* atomic */
} Bounded;

static gpointer bounded_main(gpointer p)
{
    Bounded *b = p;

    b->fn(b->data);
    g_atomic_int_set(&b->done, 1);
    return NULL;
}

static gboolean bounded_returned(gpointer data)
{
    return g_atomic_int_get(&((Bounded *)data)->done) != 0;
}

static void run_bounded(const char *what, void (*fn)(gpointer data), gpointer data,
                        guint timeout_ms)
{
    Bounded b = {fn, data, 0};
    GThread *thread = g_thread_new("bounded", bounded_main, &b);

    if (!tu_wait_until(bounded_returned, &b, timeout_ms))
        g_error("%s did not return within %u ms (deadlock?)", what, timeout_ms);
    g_thread_join(thread);
}

static void stop_and_wait_fn(gpointer data)
{
    crt_engine_stop_and_wait(data);
}

static void engine_free_fn(gpointer data)
{
    crt_engine_free(data);
}

/* ---- /engine/stop-races ------------------------------------------------------- */

/* (a) stop-and-wait while a passive callback sleeps. */
typedef struct {
    gint started;  /* atomic */
    gint finished; /* atomic */
    gint stopping; /* atomic */
} Sleepy;

static CrtDisposition sleepy_output(CrtEngine *e, const CrtOutput *o, gpointer user_data)
{
    Sleepy *s = user_data;

    CHECKF(o->status == 0 || (o->status == -ECANCELED && g_atomic_int_get(&s->stopping)),
           "status %d", o->status);
    if (o->status != 0)
        return CRT_DISPOSITION_ENGINE_CONTINUE;
    g_atomic_int_inc(&s->started);
    g_usleep(200 * 1000);
    g_atomic_int_inc(&s->finished);
    return CRT_DISPOSITION_ENGINE_CONTINUE;
}

typedef struct {
    CrtEngine *engine;
    Sleepy *sleepy;
    gint started_at_return;
    gint finished_at_return;
    CrtEngineStats stats;
    CrtEngineState state;
} StopWhileSleeping;

static void stop_while_sleeping(gpointer data)
{
    StopWhileSleeping *w = data;

    g_atomic_int_set(&w->sleepy->stopping, 1);
    crt_engine_stop_and_wait(w->engine);
    w->started_at_return = g_atomic_int_get(&w->sleepy->started);
    w->finished_at_return = g_atomic_int_get(&w->sleepy->finished);
    crt_engine_get_stats(w->engine, &w->stats);
    w->state = crt_engine_get_state(w->engine);
}

static void stop_race_slow_callback(CrtLoop *loop)
{
    CrtEngineConfig cfg;
    Sleepy sleepy = {0};
    StopWhileSleeping w = {.sleepy = &sleepy};
    Stream config_only; /* counter_config wants one; sleepy_output counts */

    counter_config(&cfg, loop, &config_only, 4, 8, 64, CRT_COMPLETION_PASSIVE);
    cfg.buffer_output = sleepy_output;
    cfg.user_data = &sleepy;
    w.engine = tu_engine_new(&cfg, "sim:counter");
    g_assert_cmpint(crt_engine_start(w.engine), ==, 0);
    TU_WAIT_FOR(g_atomic_int_get(&sleepy.started) >= 1);
    run_bounded("stop_and_wait during a slow passive callback", stop_while_sleeping, &w,
                TU_EVENTUALLY_MS);
    /* It returned after the callback it interrupted, and every callback
     * queued behind it, had returned. */
    g_assert_cmpint(w.started_at_return, >=, 1);
    g_assert_cmpint(w.finished_at_return, ==, w.started_at_return);
    g_assert_cmpuint(w.stats.requests_in_flight, ==, 0);
    g_assert_cmpstr(crt_engine_state_to_string(w.state), ==, "stopped");
    g_assert_cmpuint(w.stats.out_pool_free, ==, w.stats.out_pool_size);
    crt_engine_free(w.engine);
}

/* (b) start and stop a thousand times while data flows. */
static void stop_race_storm(CrtLoop *loop, CrtCompletion completion)
{
    CrtEngineConfig cfg;
    CrtEngine *e;
    Stream s;

    counter_config(&cfg, loop, &s, 4, 8, 64, completion);
    g_atomic_int_set(&s.stopping, 1); /* cancellations come at any time here */
    e = tu_engine_new(&cfg, "sim:counter");
    for (int i = 0; i < 1000; i++) {
        g_assert_cmpint(crt_engine_start(e), ==, 0);
        if (i % 4 == 0)
            g_usleep((gulong)g_random_int_range(0, 300));
        if (i % 10 == 9)
            crt_engine_stop_and_wait(e);
        else
            crt_engine_stop(e);
    }
    crt_engine_stop_and_wait(e);
    tu_engine_assert_drained(e);
    assert_stats_match(e, &s);
    g_test_message("%s storm: %d buffers, %d cancelled",
                   crt_completion_to_string(completion), s.ok, s.cancelled);
    g_assert_cmpint(s.ok, >, 0);
    g_assert_cmpuint(s.next_counter, ==, (guint64)s.ok * 8 + 1);
    crt_engine_free(e);
}

/* (c) free while streaming requests and a single request are in flight. */
static int sleep100_input(CrtEngine *e, void *buffer, size_t *size, void *context,
                          gpointer user_data)
{
    guint32 ms = 100;

    memcpy(buffer, &ms, sizeof ms);
    *size = sizeof ms;
    return 0;
}

typedef struct {
    CrtLoop *loop;
    CrtCompletion completion;
    gint ok;        /* atomic */
    gint cancelled; /* atomic */
    gint freeing;   /* atomic */
    gint callbacks; /* atomic */
} FreeRace;

static CrtDisposition free_race_output(CrtEngine *e, const CrtOutput *o,
                                       gpointer user_data)
{
    FreeRace *f = user_data;

    check_callback_thread(f->loop, f->completion);
    if (o->status == 0) {
        g_atomic_int_inc(&f->ok);
    } else {
        CHECKF(o->status == -ECANCELED, "status %d", o->status);
        CHECKF(g_atomic_int_get(&f->freeing), "-ECANCELED before the free");
        g_atomic_int_inc(&f->cancelled);
    }
    g_atomic_int_inc(&f->callbacks);
    return CRT_DISPOSITION_ENGINE_CONTINUE;
}

static void stop_race_free(CrtLoop *loop, CrtCompletion stream, CrtCompletion single)
{
    FreeRace f = {.loop = loop, .completion = stream};
    CrtEngineConfig cfg;
    CrtEngine *e;
    SendRecord rec;
    guint32 ms = 1000;
    CrtRequestId id;
    gint seen;

    crt_engine_config_init(&cfg);
    cfg.loop = loop;
    cfg.type = CRT_REQUEST_IOCTL;
    cfg.ioctl = CRT_SIM_IOCTL_SLEEP;
    cfg.in_size = 4;
    cfg.in_count = 4;
    cfg.out_size = 4;
    cfg.out_count = 8;
    cfg.completion = stream;
    cfg.buffer_input = sleep100_input;
    cfg.buffer_output = free_race_output;
    cfg.user_data = &f;
    e = tu_engine_new(&cfg, "sim:");
    g_assert_cmpint(crt_engine_start(e), ==, 0);
    send_record_init(&rec, loop);
    g_assert_cmpint(send_sleep(e, &ms, 0, single, &rec, &id), ==, 0);
    TU_WAIT_FOR(g_atomic_int_get(&f.ok) >= 4);
    g_atomic_int_set(&f.freeing, 1);
    run_bounded("crt_engine_free with requests in flight", engine_free_fn, e,
                TU_EVENTUALLY_MS);
    /* Everything in flight was called back, cancelled, before free
     * returned; nothing comes afterwards. */
    g_assert_cmpint(g_atomic_int_get(&rec.calls), ==, 1);
    g_assert_cmpint(rec.status, ==, -ECANCELED);
    g_assert_cmpint(g_atomic_int_get(&f.cancelled), >=, 1);
    seen = g_atomic_int_get(&f.callbacks);
    g_usleep(150 * 1000);
    g_assert_cmpint(g_atomic_int_get(&f.callbacks), ==, seen);
    g_assert_cmpint(g_atomic_int_get(&rec.calls), ==, 1);
}

/* (d) stopping from inside the callbacks. */
typedef struct {
    Stream s;
    CrtEngine *engine;
    gboolean wait;         /* stop_and_wait instead of stop */
    gint stopper_returned; /* atomic */
    guint in_flight_after; /* what stop_and_wait left at the target */
    CrtEngineState state_after;
} SelfStop;

static CrtDisposition self_stop_output(CrtEngine *e, const CrtOutput *o,
                                       gpointer user_data)
{
    SelfStop *x = user_data;
    CrtEngineStats st;

    stream_check(&x->s, o);
    if (o->status == 0 && g_atomic_int_get(&x->s.ok) == 50) {
        g_atomic_int_set(&x->s.stopping, 1);
        if (x->wait) {
            crt_engine_stop_and_wait(e);
            crt_engine_get_stats(e, &st);
            x->in_flight_after = st.requests_in_flight;
            x->state_after = crt_engine_get_state(e);
        } else {
            crt_engine_stop(e);
        }
        g_atomic_int_set(&x->stopper_returned, 1);
    }
    return CRT_DISPOSITION_ENGINE_CONTINUE;
}

static gboolean stopper_returned(gpointer data)
{
    return g_atomic_int_get(&((SelfStop *)data)->stopper_returned) != 0;
}

static void stop_race_from_callback(CrtLoop *loop, CrtCompletion completion,
                                    gboolean wait)
{
    CrtEngineConfig cfg;
    SelfStop x;
    gint seen;

    memset(&x, 0, sizeof x);
    x.wait = wait;
    counter_config(&cfg, loop, &x.s, 4, 8, 64, completion);
    cfg.buffer_output = self_stop_output;
    cfg.user_data = &x;
    x.engine = tu_engine_new(&cfg, "sim:counter");
    g_assert_cmpint(crt_engine_start(x.engine), ==, 0);
    if (!tu_wait_until(stopper_returned, &x, TU_EVENTUALLY_MS))
        g_error("%s from a %s callback did not return (deadlock?)",
                wait ? "crt_engine_stop_and_wait" : "crt_engine_stop",
                crt_completion_to_string(completion));
    if (wait && completion == CRT_COMPLETION_PASSIVE) {
        /* From a passive callback it waited for the target to give every
         * request back (but not for the callbacks queued behind its own). */
        g_assert_cmpuint(x.in_flight_after, ==, 0);
        g_assert_true(x.state_after == CRT_STATE_STOPPING ||
                      x.state_after == CRT_STATE_STOPPED);
    }
    tu_engine_wait_state(x.engine, CRT_STATE_STOPPED);
    seen = g_atomic_int_get(&x.s.callbacks);
    g_usleep(50 * 1000);
    g_assert_cmpint(g_atomic_int_get(&x.s.callbacks), ==, seen);
    /* The stream stopped right after the 50th buffer: at most the ones
     * already completed followed it. */
    g_assert_cmpint(x.s.ok, <=, 50 + 3);
    run_bounded("stop_and_wait after a stop from a callback", stop_and_wait_fn, x.engine,
                TU_EVENTUALLY_MS);
    tu_engine_assert_drained(x.engine);
    assert_stats_match(x.engine, &x.s);
    /* And it starts again. */
    g_assert_cmpint(crt_engine_start(x.engine), ==, 0);
    TU_WAIT_FOR(g_atomic_int_get(&x.s.ok) >= 60);
    crt_engine_stop_and_wait(x.engine);
    tu_engine_assert_drained(x.engine);
    crt_engine_free(x.engine);
}

static void test_stop_race_slow_callback(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;

    stop_race_slow_callback(loop);
}

static void test_stop_race_storm(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;

    stop_race_storm(loop, CRT_COMPLETION_DEFAULT);
    tu_checks_assert_clean();
    stop_race_storm(loop, CRT_COMPLETION_PASSIVE);
}

static void test_stop_race_free(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;

    stop_race_free(loop, CRT_COMPLETION_PASSIVE, CRT_COMPLETION_DEFAULT);
    tu_checks_assert_clean();
    stop_race_free(loop, CRT_COMPLETION_DEFAULT, CRT_COMPLETION_PASSIVE);
}

/* A deadlock here would stop the whole program, so the scenario runs in a
 * subprocess: a hang fails this case (the child's message is on stderr)
 * and the other cases still run. */
static void test_stop_race_from_callback(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop;

    if (!g_test_subprocess()) {
        g_test_trap_subprocess(NULL, 60 * G_USEC_PER_SEC,
                               G_TEST_SUBPROCESS_INHERIT_STDERR);
        if (!g_test_trap_has_passed()) {
            /* Fail this case only; the child said why on stderr. */
            g_test_message("stopping from inside a callback hung or failed in the child");
            g_test_fail();
        }
        return;
    }
    loop = fx->loop;
    for (int i = 0; i < 5; i++) {
        stop_race_from_callback(loop, CRT_COMPLETION_PASSIVE, TRUE);
        tu_checks_assert_clean();
        stop_race_from_callback(loop, CRT_COMPLETION_PASSIVE, FALSE);
        tu_checks_assert_clean();
        stop_race_from_callback(loop, CRT_COMPLETION_DEFAULT, FALSE);
        tu_checks_assert_clean();
        stop_race_from_callback(loop, CRT_COMPLETION_DEFAULT, TRUE);
        tu_checks_assert_clean();
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    TU_TEST_ADD_ENGINE("/engine/stop-races/slow-callback", test_stop_race_slow_callback);
    TU_TEST_ADD_ENGINE("/engine/stop-races/start-stop-storm", test_stop_race_storm);
    TU_TEST_ADD_ENGINE("/engine/stop-races/free-in-flight", test_stop_race_free);
    TU_TEST_ADD_ENGINE("/engine/stop-races/from-callback", test_stop_race_from_callback);
    return g_test_run();
}
