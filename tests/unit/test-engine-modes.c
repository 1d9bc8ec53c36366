/* crtfs tests - how the engine lives with its target: target errors (one
 * failed request, a fatal failure), automatic mode (set starts, clear
 * stops, replacing a streaming target), suspend and resume.
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

/* ---- /engine/target-errors ------------------------------------------------------------
 */

typedef struct {
    Stream s;
    int expect;  /* the injected status */
    gint errors; /* atomic */
    guint64 error_seq;
    gint ok_after_error; /* atomic */
} ErrStream;

static CrtDisposition err_output(CrtEngine *e, const CrtOutput *o, gpointer user_data)
{
    ErrStream *x = user_data;

    if (o->status == x->expect) {
        /* Keep the seq check going; the error carries no data. */
        CHECKF(o->seq == x->s.last_seq + 1,
               "seq %" G_GUINT64_FORMAT " after %" G_GUINT64_FORMAT, o->seq,
               x->s.last_seq);
        x->s.last_seq = o->seq;
        CHECK(o->length == 0);
        x->error_seq = o->seq;
        g_atomic_int_inc(&x->errors);
        g_atomic_int_inc(&x->s.failed);
        g_atomic_int_inc(&x->s.callbacks);
        return CRT_DISPOSITION_ENGINE_CONTINUE;
    }
    stream_check(&x->s, o);
    if (o->status == 0 && g_atomic_int_get(&x->errors) > 0)
        g_atomic_int_inc(&x->ok_after_error);
    return CRT_DISPOSITION_ENGINE_CONTINUE;
}

static CrtEngine *err_start(CrtLoop *loop, ErrStream *x, const char *spec, int expect)
{
    CrtEngineConfig cfg;
    CrtEngine *e;

    memset(x, 0, sizeof *x);
    counter_config(&cfg, loop, &x->s, 4, 8, 64, CRT_COMPLETION_DEFAULT);
    x->expect = expect;
    cfg.buffer_output = err_output;
    cfg.user_data = x;
    e = tu_engine_new(&cfg, spec);
    g_assert_cmpint(crt_engine_start(e), ==, 0);
    return e;
}

static void test_target_errors(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    CrtEngineStats st;
    CrtEngine *e;
    ErrStream x;

    /* A failed request is reported and the stream goes on. */
    e = err_start(loop, &x, "sim:counter fail=10", -EIO);
    TU_WAIT_FOR(g_atomic_int_get(&x.ok_after_error) >= 100);
    TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STREAMING);
    g_atomic_int_set(&x.s.stopping, 1);
    crt_engine_stop_and_wait(e);
    tu_engine_assert_drained(e);
    assert_stats_match(e, &x.s);
    crt_engine_get_stats(e, &st);
    g_assert_cmpint(x.errors, ==, 1);
    g_assert_cmpuint(st.failed, ==, 1);
    g_assert_cmpint(st.last_error, ==, -EIO);
    crt_engine_free(e);
    tu_checks_assert_clean();

    /* A fatal failure ends the stream by itself: nothing but cancellations
     * after it.  The simulated device stays dead: a new start fails the
     * same way and stops again. */
    e = err_start(loop, &x, "sim:counter fail=10 errno=EPROTO fatal", -EPROTO);
    g_atomic_int_set(&x.s.stopping, 1);
    TU_WAIT_FOR(g_atomic_int_get(&x.errors) >= 1);
    tu_engine_wait_state(e, CRT_STATE_STOPPED);
    g_assert_cmpint(x.errors, ==, 1);
    g_assert_cmpint(x.ok_after_error, ==, 0);
    crt_engine_get_stats(e, &st);
    g_assert_cmpint(st.last_error, ==, -EPROTO);
    g_assert_cmpuint(st.requests_in_flight, ==, 0);
    g_assert_cmpint(crt_engine_start(e), ==, 0);
    TU_WAIT_FOR(g_atomic_int_get(&x.errors) >= 2);
    tu_engine_wait_state(e, CRT_STATE_STOPPED);
    g_assert_cmpint(x.ok_after_error, ==, 0);
    crt_engine_stop_and_wait(e);
    tu_engine_assert_drained(e);
    assert_stats_match(e, &x.s);
    crt_engine_free(e);
}

/* ---- /engine/automatic-mode ------------------------------------------------------- */

typedef struct {
    Stream s;         /* seq and thread checks only */
    gint nonzero;     /* atomic: buffers that were not all zero */
    gint zero_target; /* atomic: the test set the zero target */
    gint wrong;       /* atomic: a non-zero buffer after that */
} Auto;

static CrtDisposition auto_output(CrtEngine *e, const CrtOutput *o, gpointer user_data)
{
    Auto *a = user_data;
    const guint8 *p = o->buffer;
    gboolean zero = TRUE;

    check_callback_thread(a->s.loop, a->s.completion);
    CHECKF(o->seq == a->s.last_seq + 1,
           "seq %" G_GUINT64_FORMAT " after %" G_GUINT64_FORMAT, o->seq, a->s.last_seq);
    a->s.last_seq = o->seq;
    if (o->status == 0) {
        for (size_t i = 0; i < o->length; i++)
            zero = zero && p[i] == 0;
        if (!zero)
            g_atomic_int_inc(&a->nonzero);
        /* Everything the first target produced was delivered before the
         * second was set. */
        CHECKF(zero || !g_atomic_int_get(&a->zero_target),
               "data from the replaced target (seq %" G_GUINT64_FORMAT ")", o->seq);
        g_atomic_int_inc(&a->s.ok);
    } else {
        CHECKF(o->status == -ECANCELED, "status %d", o->status);
        CHECKF(g_atomic_int_get(&a->s.stopping), "-ECANCELED while streaming");
        g_atomic_int_inc(&a->s.cancelled);
    }
    g_atomic_int_inc(&a->s.callbacks);
    return CRT_DISPOSITION_ENGINE_CONTINUE;
}

static void test_automatic_mode(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    CrtEngineConfig cfg;
    CrtEngineStats st;
    CrtTargetCounters before, after;
    CrtTarget *first;
    CrtEngine *e;
    Auto a;
    gint want;

    memset(&a, 0, sizeof a);
    counter_config(&cfg, loop, &a.s, 4, 8, 64, CRT_COMPLETION_DEFAULT);
    cfg.mode = CRT_MODE_AUTOMATIC;
    cfg.buffer_output = auto_output;
    cfg.user_data = &a;
    e = tu_engine_new(&cfg, NULL);
    TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STOPPED);
    g_assert_false(crt_engine_has_target(e));

    /* Set starts, clear stops and waits. */
    g_atomic_int_set(&a.s.stopping, 1);
    tu_engine_set_spec(e, "sim:counter");
    g_assert_true(crt_engine_has_target(e));
    TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STREAMING);
    TU_WAIT_FOR(g_atomic_int_get(&a.s.ok) >= 100);
    crt_engine_io_target_clear(e);
    g_assert_false(crt_engine_has_target(e));
    TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STOPPED);
    crt_engine_get_stats(e, &st);
    g_assert_cmpuint(st.requests_in_flight, ==, 0);
    g_assert_cmpuint(st.out_pool_free, ==, st.out_pool_size);
    g_assert_cmpint(crt_engine_start(e), ==, -ENOTCONN);
    /* Clearing twice is harmless. */
    crt_engine_io_target_clear(e);

    /* Set again; then replace the target while it streams: the first is
     * stopped and let go, the second streams. */
    first = tu_target_open("sim:counter", loop);
    crt_target_ref(first); /* ours, to watch its counters */
    g_assert_cmpint(crt_engine_io_target_set(e, first), ==, 0);
    TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STREAMING);
    TU_WAIT_FOR(g_atomic_int_get(&a.nonzero) >= 200);
    tu_engine_set_spec(e, "sim:zero");
    g_atomic_int_set(&a.zero_target, 1);
    TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STREAMING);
    crt_target_get_counters(first, &before);
    want = g_atomic_int_get(&a.s.ok) + 200;
    TU_WAIT_FOR(g_atomic_int_get(&a.s.ok) >= want);
    crt_target_get_counters(first, &after);
    g_assert_cmpuint(after.bytes_read, ==, before.bytes_read);
    crt_target_unref(first);

    crt_engine_io_target_clear(e);
    tu_engine_assert_drained(e);
    assert_stats_match(e, &a.s);
    crt_engine_free(e);
}

/* ---- /engine/suspend-resume ----------------------------------------------------- */

static void suspend_resume_purge(CrtLoop *loop, CrtCompletion completion)
{
    CrtEngineConfig cfg;
    CrtEngineStats st;
    CrtEngine *e;
    SendRecord rec;
    guint32 ms = 10;
    Stream s;
    gint seen;
    gint want;

    counter_config(&cfg, loop, &s, 4, 8, 64, completion);
    cfg.purge_on_suspend = TRUE;
    e = tu_engine_new(&cfg, "sim:counter rate=2000");
    g_assert_cmpint(crt_engine_resume(e), ==, -EALREADY);
    g_assert_cmpint(crt_engine_start(e), ==, 0);
    TU_WAIT_FOR(g_atomic_int_get(&s.ok) >= 50);

    g_atomic_int_set(&s.stopping, 1);
    g_assert_cmpint(crt_engine_suspend(e), ==, 0);
    TU_ASSERT_ENGINE_STATE(e, CRT_STATE_SUSPENDED);
    crt_engine_get_stats(e, &st);
    g_assert_cmpuint(st.requests_in_flight, ==, 0);
    g_assert_cmpuint(st.out_pool_free, ==, st.out_pool_size);
    seen = g_atomic_int_get(&s.callbacks);
    g_usleep(200 * 1000);
    g_assert_cmpint(g_atomic_int_get(&s.callbacks), ==, seen);
    g_assert_cmpint(crt_engine_suspend(e), ==, -EALREADY);
    /* While suspended nothing may start. */
    send_record_init(&rec, loop);
    g_assert_cmpint(crt_engine_start(e), ==, -ESHUTDOWN);
    g_assert_cmpint(crt_engine_send(e, &ms, sizeof ms, &ms, sizeof ms, CRT_REQUEST_IOCTL,
                                    CRT_SIM_IOCTL_SLEEP, 0, record_send, &rec),
                    ==, -ESHUTDOWN);
    g_assert_cmpint(crt_engine_send_sync(e, &ms, sizeof ms, &ms, sizeof ms,
                                         CRT_REQUEST_IOCTL, CRT_SIM_IOCTL_SLEEP, 0, NULL),
                    ==, -ESHUTDOWN);
    TU_ASSERT_ENGINE_STATE(e, CRT_STATE_SUSPENDED);

    /* Resume restarts the stream it stopped. */
    g_assert_cmpint(crt_engine_resume(e), ==, 0);
    TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STREAMING);
    want = g_atomic_int_get(&s.ok) + 50;
    TU_WAIT_FOR(g_atomic_int_get(&s.ok) >= want);
    g_assert_cmpint(crt_engine_send_sync(e, &ms, sizeof ms, &ms, sizeof ms,
                                         CRT_REQUEST_IOCTL, CRT_SIM_IOCTL_SLEEP, 0, NULL),
                    ==, 0);

    /* A stopped engine stays stopped across suspend and resume. */
    crt_engine_stop_and_wait(e);
    g_assert_cmpint(crt_engine_suspend(e), ==, 0);
    g_assert_cmpint(crt_engine_resume(e), ==, 0);
    TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STOPPED);

    tu_engine_assert_drained(e);
    assert_stats_match(e, &s);
    g_usleep(50 * 1000);
    g_assert_cmpint(g_atomic_int_get(&rec.calls), ==, 0);
    crt_engine_free(e);
}

static void suspend_resume_no_purge(CrtLoop *loop)
{
    CrtEngineConfig cfg;
    CrtEngine *e;
    guint32 ms = 10;
    Stream s;
    gint want;

    counter_config(&cfg, loop, &s, 4, 8, 64, CRT_COMPLETION_DEFAULT);
    cfg.purge_on_suspend = FALSE;
    e = tu_engine_new(&cfg, "sim:counter rate=2000");
    g_assert_cmpint(crt_engine_start(e), ==, 0);
    TU_WAIT_FOR(g_atomic_int_get(&s.ok) >= 50);
    /* Without purge, suspend is bookkeeping: the stream keeps going and
     * single requests still work. */
    g_assert_cmpint(crt_engine_suspend(e), ==, 0);
    want = g_atomic_int_get(&s.ok) + 100;
    TU_WAIT_FOR(g_atomic_int_get(&s.ok) >= want);
    g_assert_cmpint(crt_engine_send_sync(e, &ms, sizeof ms, &ms, sizeof ms,
                                         CRT_REQUEST_IOCTL, CRT_SIM_IOCTL_SLEEP, 0, NULL),
                    ==, 0);
    g_assert_cmpint(crt_engine_resume(e), ==, 0);
    TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STREAMING);
    want = g_atomic_int_get(&s.ok) + 50;
    TU_WAIT_FOR(g_atomic_int_get(&s.ok) >= want);
    g_atomic_int_set(&s.stopping, 1);
    crt_engine_stop_and_wait(e);
    tu_engine_assert_drained(e);
    assert_stats_match(e, &s);
    g_assert_cmpint(s.cancelled + s.ok, ==, s.callbacks);
    crt_engine_free(e);
}

static void test_suspend_resume(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;

    suspend_resume_purge(loop, CRT_COMPLETION_DEFAULT);
    tu_checks_assert_clean();
    suspend_resume_purge(loop, CRT_COMPLETION_PASSIVE);
    tu_checks_assert_clean();
    suspend_resume_no_purge(loop);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    TU_TEST_ADD_ENGINE("/engine/target-errors", test_target_errors);
    TU_TEST_ADD_ENGINE("/engine/automatic-mode", test_automatic_mode);
    TU_TEST_ADD_ENGINE("/engine/suspend-resume", test_suspend_resume);
    return g_test_run();
}
