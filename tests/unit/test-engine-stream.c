/* crtfs tests - the engine's streams through the simulator: output and
 * input streams, streams without buffers, the memory x completion x mode
 * matrix, and ordering over a long stream.
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

/* ---- /engine/output-stream ------------------------------------------------ */

typedef struct {
    CrtLoop *loop;
    CrtCompletion completion;
    gint callbacks; /* atomic */
    gint ok;        /* atomic */
    gint cancelled; /* atomic */
    gint stopping;  /* atomic */
} ZeroIoctl;

static CrtDisposition zero_ioctl_output(CrtEngine *e, const CrtOutput *o,
                                        gpointer user_data)
{
    ZeroIoctl *z = user_data;
    guint8 *b = o->buffer;

    check_callback_thread(z->loop, z->completion);
    CHECK(b != NULL);
    if (o->status == 0 && b != NULL) {
        CHECKF(o->length == 4, "length %zu", o->length);
        for (size_t i = 0; i < 4; i++)
            CHECKF(b[i] == 0,
                   "byte %zu of a zeroed buffer is 0x%02x (seq %" G_GUINT64_FORMAT ")", i,
                   b[i], o->seq);
        /* If a later request hands this buffer back without zeroing it,
         * the check above sees the scribble. */
        memset(b, 0xAA, 4);
        g_atomic_int_inc(&z->ok);
    } else {
        CHECKF(o->status == -ECANCELED, "status %d", o->status);
        CHECKF(g_atomic_int_get(&z->stopping), "-ECANCELED before the stop");
        g_atomic_int_inc(&z->cancelled);
    }
    g_atomic_int_inc(&z->callbacks);
    return CRT_DISPOSITION_ENGINE_CONTINUE;
}

static void output_stream(TuEngine *fx, CrtCompletion completion)
{
    CrtLoop *loop = fx->loop;
    ZeroIoctl z = {.loop = loop, .completion = completion};
    CrtEngineConfig cfg;
    CrtEngineStats st;
    CrtEngine *e;

    cfg = fx->cfg;
    cfg.request_count = 32;
    cfg.type = CRT_REQUEST_IOCTL;
    cfg.ioctl = CRT_SIM_IOCTL_ZERO;
    cfg.in_size = 0;
    cfg.in_count = 0;
    cfg.out_size = 4;
    cfg.out_count = 64;
    cfg.completion = completion;
    cfg.buffer_output = zero_ioctl_output;
    cfg.user_data = &z;
    e = tu_engine_new(&cfg, "sim: delay=0-50");
    g_assert_cmpint(crt_engine_start(e), ==, 0);
    TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STREAMING);
    g_usleep(3 * G_USEC_PER_SEC);
    g_atomic_int_set(&z.stopping, 1);
    crt_engine_stop_and_wait(e);

    crt_engine_get_stats(e, &st);
    g_assert_cmpuint(st.requests_in_flight, ==, 0);
    TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STOPPED);
    g_assert_cmpuint(st.out_pool_size, ==, 64);
    g_assert_cmpuint(st.out_pool_free, ==, st.out_pool_size);
    /* 32 requests of at most 50 ms for 3 s: far more than 32, even on a
     * crowded machine. */
    g_assert_cmpint(z.ok, >, 32);
    g_assert_cmpuint(st.completed, ==, (guint64)z.ok);
    g_assert_cmpuint(st.cancelled, ==, (guint64)z.cancelled);
    g_assert_cmpuint(st.failed, ==, 0);
    g_assert_cmpuint(st.completed + st.cancelled + st.failed, ==, (guint64)z.callbacks);
    g_test_message("%d zeroed buffers, %d cancelled at the stop", z.ok, z.cancelled);
    crt_engine_free(e);
}

static void test_output_stream_default(TuEngine *fx, gconstpointer unused)
{
    output_stream(fx, CRT_COMPLETION_DEFAULT);
}

static void test_output_stream_passive(TuEngine *fx, gconstpointer unused)
{
    output_stream(fx, CRT_COMPLETION_PASSIVE);
}

/* ---- /engine/input-stream ------------------------------------------------- */

#define SLEEP_MIN_MS 10
#define SLEEP_MAX_MS 40

typedef struct {
    GMutex lock;
    /* Send times (gint64 *) per requested sleep, oldest first; lock.  The
     * echoed sleep says which queue a completion belongs to. */
    GQueue sent[SLEEP_MAX_MS + 1];
    gint inputs;    /* atomic */
    gint ok;        /* atomic */
    gint cancelled; /* atomic */
    gint stopping;  /* atomic */
} SleepStream;

/* The input context (sizeof(gint64) + 4 bytes) records when the request was
 * filled and for how long it asks the simulator to sleep. */
static int sleep_input(CrtEngine *e, void *buffer, size_t *size, void *context,
                       gpointer user_data)
{
    SleepStream *s = user_data;
    guint32 ms = (guint32)g_random_int_range(SLEEP_MIN_MS, SLEEP_MAX_MS + 1);
    gint64 sent = g_get_monotonic_time();
    gint64 *when;

    CHECKF(*size == 4, "input capacity %zu", *size);
    CHECK(buffer != NULL);
    CHECK(context != NULL);
    if (buffer == NULL || context == NULL)
        return 0;
    memcpy(buffer, &ms, sizeof ms);
    *size = sizeof ms;
    memcpy(context, &sent, sizeof sent);
    memcpy((char *)context + sizeof sent, &ms, sizeof ms);
    when = g_new(gint64, 1);
    *when = sent;
    g_mutex_lock(&s->lock);
    g_queue_push_tail(&s->sent[ms], when);
    g_mutex_unlock(&s->lock);
    g_atomic_int_inc(&s->inputs);
    return 0;
}

static CrtDisposition sleep_output(CrtEngine *e, const CrtOutput *o, gpointer user_data)
{
    SleepStream *s = user_data;
    gint64 now = g_get_monotonic_time();
    gint64 *when = NULL;
    guint32 ms;

    if (o->status != 0) {
        CHECKF(o->status == -ECANCELED, "status %d", o->status);
        CHECKF(g_atomic_int_get(&s->stopping), "-ECANCELED before the stop");
        g_atomic_int_inc(&s->cancelled);
        return CRT_DISPOSITION_ENGINE_CONTINUE;
    }
    CHECKF(o->length == 4, "length %zu", o->length);
    memcpy(&ms, o->buffer, sizeof ms);
    CHECKF(ms >= SLEEP_MIN_MS && ms <= SLEEP_MAX_MS, "echoed sleep %u", ms);
    if (ms <= SLEEP_MAX_MS) {
        g_mutex_lock(&s->lock);
        when = g_queue_pop_head(&s->sent[ms]);
        g_mutex_unlock(&s->lock);
    }
    CHECKF(when != NULL, "echo of a %u ms sleep nobody asked for", ms);
    if (when) {
        /* Taking the oldest request of that length can only make the check
         * weaker, never fail a correct engine. */
        CHECKF(now - *when >= (gint64)ms * 1000,
               "a %u ms sleep completed after %" G_GINT64_FORMAT " us", ms, now - *when);
        g_free(when);
    }
    g_atomic_int_inc(&s->ok);
    return CRT_DISPOSITION_ENGINE_CONTINUE;
}

static void test_input_stream(TuEngine *fx, gconstpointer unused)
{
    SleepStream s;
    CrtEngineConfig cfg;
    CrtEngine *e;

    memset(&s, 0, sizeof s);
    g_mutex_init(&s.lock);
    cfg = fx->cfg;
    cfg.request_count = 8;
    cfg.type = CRT_REQUEST_IOCTL;
    cfg.ioctl = CRT_SIM_IOCTL_SLEEP;
    cfg.in_size = 4;
    cfg.in_count = 8;
    cfg.in_context_size = sizeof(gint64) + 4;
    cfg.out_size = 4;
    cfg.out_count = 8;
    cfg.buffer_input = sleep_input;
    cfg.buffer_output = sleep_output;
    cfg.user_data = &s;
    e = tu_engine_new(&cfg, "sim:");
    g_assert_cmpint(crt_engine_start(e), ==, 0);
    g_usleep(2 * G_USEC_PER_SEC);
    g_atomic_int_set(&s.stopping, 1);
    crt_engine_stop_and_wait(e);
    tu_engine_assert_drained(e);

    /* 8 requests of at most 40 ms for 2 s. */
    g_assert_cmpint(s.ok, >, 8);
    /* Every request that was filled came back exactly once. */
    g_assert_cmpint(s.inputs, ==, s.ok + s.cancelled);
    crt_engine_free(e);
    for (guint i = 0; i <= SLEEP_MAX_MS; i++)
        g_queue_clear_full(&s.sent[i], g_free);
    g_mutex_clear(&s.lock);
}

/* ---- /engine/zero-buffer-stream ------------------------------------------ */

typedef struct {
    gint callbacks; /* atomic */
    gint ok;        /* atomic */
    gint stopping;  /* atomic */
} Empty;

static CrtDisposition empty_output(CrtEngine *e, const CrtOutput *o, gpointer user_data)
{
    Empty *z = user_data;

    CHECKF(o->status == 0 || (o->status == -ECANCELED && g_atomic_int_get(&z->stopping)),
           "status %d", o->status);
    CHECKF(o->length == 0, "length %zu", o->length);
    CHECK(o->buffer == NULL);
    CHECK(o->context == NULL);
    if (o->status == 0)
        g_atomic_int_inc(&z->ok);
    g_atomic_int_inc(&z->callbacks);
    return CRT_DISPOSITION_ENGINE_CONTINUE;
}

static void test_zero_buffer_stream(TuEngine *fx, gconstpointer unused)
{
    Empty z = {0};
    CrtEngineConfig cfg;
    CrtEngineStats st;
    CrtEngine *e;

    cfg = fx->cfg;
    cfg.type = CRT_REQUEST_IOCTL;
    cfg.ioctl = CRT_SIM_IOCTL_ZERO_BYTES;
    cfg.in_size = 0;
    cfg.in_count = 0;
    cfg.out_size = 0;
    cfg.out_count = 0;
    cfg.buffer_output = empty_output;
    cfg.user_data = &z;
    e = tu_engine_new(&cfg, "sim:");
    g_assert_cmpint(crt_engine_start(e), ==, 0);
    TU_WAIT_FOR(g_atomic_int_get(&z.ok) >= 5000);
    g_atomic_int_set(&z.stopping, 1);
    crt_engine_stop_and_wait(e);
    tu_engine_assert_drained(e);
    crt_engine_get_stats(e, &st);
    g_assert_cmpuint(st.out_pool_size, ==, 0);
    g_assert_cmpuint(st.completed + st.cancelled + st.failed, ==, (guint64)z.callbacks);
    g_assert_cmpuint(st.bytes_read, ==, 0);
    crt_engine_free(e);
}

/* ---- /engine/matrix --------------------------------------------------------- */

static void matrix_one(CrtLoop *loop, CrtMemory memory, CrtCompletion completion,
                       CrtMode mode)
{
    Stream s;
    CrtEngineConfig cfg;
    CrtEngine *e;
    gint seen;

    g_test_message("memory %s, completion %s, mode %s", crt_memory_to_string(memory),
                   crt_completion_to_string(completion), crt_mode_to_string(mode));
    counter_config(&cfg, loop, &s, 4, 8, 64, completion);
    cfg.out_memory = memory;
    cfg.mode = mode;
    e = tu_engine_new(&cfg, "sim:counter");
    if (mode == CRT_MODE_AUTOMATIC) {
        /* Setting the target started the stream. */
        TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STREAMING);
        g_assert_cmpint(crt_engine_start(e), ==, -EALREADY);
    } else {
        TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STOPPED);
        g_usleep(20 * 1000);
        g_assert_cmpint(g_atomic_int_get(&s.callbacks), ==, 0);
        g_assert_cmpint(crt_engine_start(e), ==, 0);
        TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STREAMING);
    }
    TU_WAIT_FOR(g_atomic_int_get(&s.ok) >= 300);
    g_atomic_int_set(&s.stopping, 1);
    if (mode == CRT_MODE_AUTOMATIC) {
        crt_engine_io_target_clear(e);
        g_assert_false(crt_engine_has_target(e));
        g_assert_cmpint(crt_engine_start(e), ==, -ENOTCONN);
    } else {
        crt_engine_stop_and_wait(e);
        g_assert_true(crt_engine_has_target(e));
    }
    tu_engine_assert_drained(e);
    assert_stats_match(e, &s);
    seen = g_atomic_int_get(&s.callbacks);
    g_usleep(20 * 1000);
    g_assert_cmpint(g_atomic_int_get(&s.callbacks), ==, seen);
    crt_engine_free(e);
    tu_checks_assert_clean();
}

static void test_matrix(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;

    for (int m = 0; m < 2; m++) {
        for (int c = 0; c < 2; c++) {
            matrix_one(loop, m ? CRT_MEMORY_LOCKED : CRT_MEMORY_NORMAL,
                       c ? CRT_COMPLETION_PASSIVE : CRT_COMPLETION_DEFAULT,
                       CRT_MODE_AUTOMATIC);
            matrix_one(loop, m ? CRT_MEMORY_LOCKED : CRT_MEMORY_NORMAL,
                       c ? CRT_COMPLETION_PASSIVE : CRT_COMPLETION_DEFAULT,
                       CRT_MODE_MANUAL);
        }
    }
}

/* ---- /engine/ordering --------------------------------------------------------- */

#define ORDERING_BUFFERS 100000

static gboolean ordering_done(gpointer data)
{
    return g_atomic_int_get(&((Stream *)data)->ok) >= ORDERING_BUFFERS;
}

static void ordering(TuEngine *fx, CrtCompletion completion)
{
    CrtLoop *loop = fx->loop;
    CrtEngineConfig cfg;
    CrtEngine *e;
    Stream s;

    counter_config(&cfg, loop, &s, 16, 32, 64, completion);
    s.stop_at = ORDERING_BUFFERS;
    e = tu_engine_new(&cfg, "sim:counter");
    /* The callback's ENGINE_STOP ends the stream; completions still in the
     * queue then come with status 0 or -ECANCELED. */
    g_atomic_int_set(&s.stopping, 1);
    g_assert_cmpint(crt_engine_start(e), ==, 0);
    if (!tu_wait_until(ordering_done, &s, 60000))
        g_assert_cmpint(g_atomic_int_get(&s.ok), >=, ORDERING_BUFFERS);
    tu_engine_wait_state(e, CRT_STATE_STOPPED);
    crt_engine_stop_and_wait(e);
    tu_engine_assert_drained(e);
    assert_stats_match(e, &s);
    /* Only buffers already completed when the stream stopped may follow
     * the one that stopped it. */
    g_assert_cmpint(s.ok, <=, ORDERING_BUFFERS + 16 - 1);
    g_assert_cmpuint(s.next_counter, ==, (guint64)s.ok * 8 + 1);
    crt_engine_free(e);
}

static void test_ordering_default(TuEngine *fx, gconstpointer unused)
{
    ordering(fx, CRT_COMPLETION_DEFAULT);
}

static void test_ordering_passive(TuEngine *fx, gconstpointer unused)
{
    ordering(fx, CRT_COMPLETION_PASSIVE);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    TU_TEST_ADD_ENGINE("/engine/output-stream/default", test_output_stream_default);
    TU_TEST_ADD_ENGINE("/engine/output-stream/passive", test_output_stream_passive);
    TU_TEST_ADD_ENGINE("/engine/input-stream", test_input_stream);
    TU_TEST_ADD_ENGINE("/engine/zero-buffer-stream", test_zero_buffer_stream);
    TU_TEST_ADD_ENGINE("/engine/matrix", test_matrix);
    TU_TEST_ADD_ENGINE("/engine/ordering/default", test_ordering_default);
    TU_TEST_ADD_ENGINE("/engine/ordering/passive", test_ordering_passive);
    return g_test_run();
}
