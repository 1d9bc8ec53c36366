/* crtfs tests - the engine: streaming through the simulator and real
 * descriptors, single requests, cancellation, buffer dispositions, modes,
 * suspend and resume, stop races and bad set-ups.
 *
 * Callbacks run on the loop thread or on pool workers, where a failed
 * g_assert would take the whole program down without saying much; they
 * record failures with CHECK() instead, and each test asserts at its end
 * that none were recorded (the message names the first one).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <crtfs/crtfs.h>

#include "testutil.h"

/* ---- waiting ------------------------------------------------------------ */

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

/* ---- a checked `sim:counter` read stream ---------------------------------- */

/* What a stream's callbacks saw.  The callbacks of one engine run one at a
 * time, so the plain fields need no lock; the test thread reads only the
 * atomic ones while the stream runs. */
typedef struct {
    CrtLoop *loop;
    CrtCompletion completion;
    size_t out_size;
    guint64 last_seq;
    guint64 next_counter; /* the counter the next buffer must start with */
    gint callbacks;       /* atomic */
    gint ok;              /* atomic: status 0 */
    gint cancelled;       /* atomic */
    gint failed;          /* atomic */
    gint stopping;        /* atomic: set by the test before it stops */
    gint stop_at;         /* return ENGINE_STOP for this ok count (0: never) */
} Stream;

static void stream_init(Stream *s, CrtLoop *loop, CrtCompletion completion,
                        size_t out_size)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->completion = completion;
    s->out_size = out_size;
    s->next_counter = 1;
}

/* Default callbacks run on the loop thread, passive ones never do. */
static void check_callback_thread(CrtLoop *loop, CrtCompletion completion)
{
    if (completion == CRT_COMPLETION_DEFAULT)
        CHECKF(crt_loop_is_current(loop),
               "a default-level callback ran off the loop thread");
    else
        CHECKF(!crt_loop_is_current(loop), "a passive callback ran on the loop thread");
}

/* One completion of a `sim:counter` read stream: seq grows by one per
 * callback, and the payload counters continue from buffer to buffer with
 * no gap and no repeat (the simulator only counts reads it served). */
static void stream_check(Stream *s, const CrtOutput *o)
{
    check_callback_thread(s->loop, s->completion);
    CHECKF(o->seq == s->last_seq + 1,
           "seq %" G_GUINT64_FORMAT " after %" G_GUINT64_FORMAT, o->seq, s->last_seq);
    s->last_seq = o->seq;
    if (o->status == 0) {
        const guint8 *p = o->buffer;

        CHECKF(o->length == s->out_size, "length %zu, expected %zu", o->length,
               s->out_size);
        CHECK(p != NULL);
        for (size_t i = 0; p && i + sizeof(guint64) <= o->length; i += sizeof(guint64)) {
            guint64 v;

            memcpy(&v, p + i, sizeof v);
            v = GUINT64_FROM_LE(v);
            CHECKF(v == s->next_counter,
                   "counter %" G_GUINT64_FORMAT ", expected %" G_GUINT64_FORMAT
                   " (seq %" G_GUINT64_FORMAT ")",
                   v, s->next_counter, o->seq);
            s->next_counter = v + 1;
        }
        g_atomic_int_inc(&s->ok);
    } else if (o->status == -ECANCELED) {
        CHECKF(g_atomic_int_get(&s->stopping),
               "-ECANCELED while nobody stopped (seq %" G_GUINT64_FORMAT ")", o->seq);
        g_atomic_int_inc(&s->cancelled);
    } else {
        CHECKF(FALSE, "unexpected status %d (seq %" G_GUINT64_FORMAT ")", o->status,
               o->seq);
        g_atomic_int_inc(&s->failed);
    }
    g_atomic_int_inc(&s->callbacks);
}

static CrtDisposition stream_output(CrtEngine *e, const CrtOutput *o, gpointer user_data)
{
    Stream *s = user_data;

    stream_check(s, o);
    if (o->status == 0 && s->stop_at && g_atomic_int_get(&s->ok) == s->stop_at)
        return CRT_DISPOSITION_ENGINE_STOP;
    return CRT_DISPOSITION_ENGINE_CONTINUE;
}

static void counter_config(CrtEngineConfig *cfg, CrtLoop *loop, Stream *s, guint requests,
                           guint out_count, size_t out_size, CrtCompletion completion)
{
    crt_engine_config_init(cfg);
    cfg->loop = loop;
    cfg->type = CRT_REQUEST_READ;
    cfg->request_count = requests;
    cfg->out_count = out_count;
    cfg->out_size = out_size;
    cfg->completion = completion;
    cfg->buffer_output = stream_output;
    cfg->user_data = s;
    stream_init(s, loop, completion, out_size);
}

/* The engine's counters agree with what the callbacks saw. */
static void assert_stats_match(CrtEngine *e, Stream *s)
{
    CrtEngineStats st;

    crt_engine_get_stats(e, &st);
    g_assert_cmpuint(st.completed, ==, (guint64)s->ok);
    g_assert_cmpuint(st.cancelled, ==, (guint64)s->cancelled);
    g_assert_cmpuint(st.failed, ==, (guint64)s->failed);
    g_assert_cmpuint(st.completed + st.cancelled + st.failed, ==, (guint64)s->callbacks);
    g_assert_cmpuint(st.last_seq, ==, s->last_seq);
}

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

/* ---- single requests: a recording completion ---------------------------- */

typedef struct {
    CrtLoop *loop;
    gint calls; /* atomic; the fields below are written before it */
    gint on_loop;
    int status;
    size_t in_written;
    size_t out_read;
    const void *in;
    void *out;
} SendRecord;

static void send_record_init(SendRecord *r, CrtLoop *loop)
{
    memset(r, 0, sizeof *r);
    r->loop = loop;
}

static void record_send(CrtEngine *e, gpointer request_context, const void *in,
                        size_t in_written, void *out, size_t out_read, int status)
{
    SendRecord *r = request_context;

    CHECKF(g_atomic_int_get(&r->calls) == 0, "a second completion, status %d", status);
    r->on_loop = crt_loop_is_current(r->loop);
    r->status = status;
    r->in_written = in_written;
    r->out_read = out_read;
    r->in = in;
    r->out = out;
    g_atomic_int_inc(&r->calls);
}

/* Ask the simulator to sleep `ms`; the response gets the echo. */
static int send_sleep(CrtEngine *e, guint32 *ms_and_response, guint timeout_ms,
                      CrtCompletion completion, SendRecord *r, CrtRequestId *id)
{
    return crt_engine_send_ex(e, ms_and_response, sizeof *ms_and_response,
                              ms_and_response, sizeof *ms_and_response, CRT_REQUEST_IOCTL,
                              CRT_SIM_IOCTL_SLEEP, timeout_ms, completion, record_send, r,
                              id);
}

/* ---- /engine/send-sync ---------------------------------------------------- */

static void test_send_sync(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    CrtEngineConfig cfg;
    CrtEngine *e, *lonely;
    CrtEngineStats st;
    guint32 ms, resp;
    guint8 block[64];
    char echo[16];
    size_t bytes;
    SendRecord r1, r2, r3, none;
    guint32 req1 = 50, req2 = 300, req3 = 0;

    cfg = fx->cfg;
    e = tu_engine_new(&cfg, "sim:counter");

    /* A sleep of 50 ms without a timeout succeeds and echoes its input. */
    ms = 50;
    resp = 0;
    bytes = 0;
    g_assert_cmpint(crt_engine_send_sync(e, &ms, sizeof ms, &resp, sizeof resp,
                                         CRT_REQUEST_IOCTL, CRT_SIM_IOCTL_SLEEP, 0,
                                         &bytes),
                    ==, 0);
    g_assert_cmpuint(bytes, ==, sizeof resp);
    g_assert_cmpuint(resp, ==, 50);

    /* 300 ms against a 50 ms timeout. */
    ms = 300;
    g_assert_cmpint(crt_engine_send_sync(e, &ms, sizeof ms, &resp, sizeof resp,
                                         CRT_REQUEST_IOCTL, CRT_SIM_IOCTL_SLEEP, 50,
                                         &bytes),
                    ==, -ETIMEDOUT);
    /* A timeout longer than the sleep does not fire. */
    ms = 20;
    g_assert_cmpint(crt_engine_send_sync(e, &ms, sizeof ms, &resp, sizeof resp,
                                         CRT_REQUEST_IOCTL, CRT_SIM_IOCTL_SLEEP, 5000,
                                         NULL),
                    ==, 0);

    /* A write reports the bytes written; a read the bytes read. */
    g_assert_cmpint(crt_engine_send_sync(e, "hello world", 11, NULL, 0, CRT_REQUEST_WRITE,
                                         0, 0, &bytes),
                    ==, 0);
    g_assert_cmpuint(bytes, ==, 11);
    g_assert_cmpint(crt_engine_send_sync(e, NULL, 0, block, sizeof block,
                                         CRT_REQUEST_READ, 0, 0, &bytes),
                    ==, 0);
    g_assert_cmpuint(bytes, ==, sizeof block);
    /* An internal ioctl with a code the simulator does not know is a
     * transaction: the response is the request. */
    memset(echo, 0, sizeof echo);
    g_assert_cmpint(crt_engine_send_sync(e, "abc", 3, echo, sizeof echo,
                                         CRT_REQUEST_INTERNAL_IOCTL, 0x1234, 0, &bytes),
                    ==, 0);
    g_assert_cmpuint(bytes, ==, 3);
    g_assert_cmpstr(echo, ==, "abc");
    /* An ioctl the target does not know fails with its error. */
    g_assert_cmpint(crt_engine_send_sync(e, NULL, 0, &resp, sizeof resp,
                                         CRT_REQUEST_IOCTL, 0x1234, 0, NULL),
                    ==, -ENOTTY);

    /* Asynchronous: with no timeout, and with one that fires; the
     * callback runs at default level (on the loop thread). */
    send_record_init(&r1, loop);
    send_record_init(&r2, loop);
    send_record_init(&r3, loop);
    g_assert_cmpint(crt_engine_send(e, &req1, sizeof req1, &req1, sizeof req1,
                                    CRT_REQUEST_IOCTL, CRT_SIM_IOCTL_SLEEP, 0,
                                    record_send, &r1),
                    ==, 0);
    g_assert_cmpint(crt_engine_send(e, &req2, sizeof req2, &req2, sizeof req2,
                                    CRT_REQUEST_IOCTL, CRT_SIM_IOCTL_SLEEP, 50,
                                    record_send, &r2),
                    ==, 0);
    g_assert_cmpint(crt_engine_send(e, "write me", 8, NULL, 0, CRT_REQUEST_WRITE, 0, 0,
                                    record_send, &r3),
                    ==, 0);
    TU_WAIT_FOR(g_atomic_int_get(&r1.calls) >= 1);
    TU_WAIT_FOR(g_atomic_int_get(&r2.calls) >= 1);
    TU_WAIT_FOR(g_atomic_int_get(&r3.calls) >= 1);
    g_assert_cmpint(r1.status, ==, 0);
    g_assert_cmpuint(r1.out_read, ==, sizeof req1);
    g_assert_cmpuint(r1.in_written, ==, sizeof req1);
    g_assert_true(r1.out == &req1);
    g_assert_cmpuint(req1, ==, 50);
    g_assert_true(r1.on_loop);
    g_assert_cmpint(r2.status, ==, -ETIMEDOUT);
    g_assert_true(r2.on_loop);
    g_assert_cmpint(r3.status, ==, 0);
    g_assert_cmpuint(r3.in_written, ==, 8);
    g_assert_cmpuint(r3.out_read, ==, 0);
    /* The request was copied: the callback sees the engine's copy. */
    g_assert_nonnull(r3.in);

    /* No target: refused at once, never called back. */
    send_record_init(&none, loop);
    lonely = tu_engine_new(&cfg, NULL);
    g_assert_cmpint(crt_engine_send(lonely, &req3, sizeof req3, &req3, sizeof req3,
                                    CRT_REQUEST_IOCTL, CRT_SIM_IOCTL_SLEEP, 0,
                                    record_send, &none),
                    ==, -ENOTCONN);
    g_assert_cmpint(crt_engine_send_sync(lonely, &req3, sizeof req3, &req3, sizeof req3,
                                         CRT_REQUEST_IOCTL, CRT_SIM_IOCTL_SLEEP, 0, NULL),
                    ==, -ENOTCONN);
    /* Invalid requests: refused at once, never called back. */
    g_assert_cmpint(crt_engine_send(e, &req3, sizeof req3, &req3, sizeof req3,
                                    CRT_REQUEST_INVALID, 0, 0, record_send, &none),
                    ==, -EINVAL);
    g_assert_cmpint(crt_engine_send(e, &req3, sizeof req3, &req3, sizeof req3,
                                    (CrtRequestType)99, 0, 0, record_send, &none),
                    ==, -EINVAL);
    g_assert_cmpint(crt_engine_send(e, &req3, sizeof req3, &req3, sizeof req3,
                                    CRT_REQUEST_IOCTL, 0, 0, record_send, &none),
                    ==, -EINVAL);
    g_assert_cmpint(crt_engine_send_ex(e, &req3, sizeof req3, &req3, sizeof req3,
                                       CRT_REQUEST_IOCTL, CRT_SIM_IOCTL_SLEEP, 0,
                                       (CrtCompletion)7, record_send, &none, NULL),
                    ==, -EINVAL);
    g_assert_cmpint(crt_engine_send_sync(e, &req3, sizeof req3, &req3, sizeof req3,
                                         CRT_REQUEST_INVALID, 0, 0, NULL),
                    ==, -EINVAL);
    g_usleep(50 * 1000);
    g_assert_cmpint(g_atomic_int_get(&none.calls), ==, 0);

    crt_engine_get_stats(e, &st);
    g_assert_cmpuint(st.requests_in_flight, ==, 0);
    /* Ten requests reached the target; the refused ones are not counted. */
    g_assert_cmpuint(st.sends, ==, 10);
    crt_engine_free(lonely);
    crt_engine_free(e);
}

/* ---- /engine/cancel ---------------------------------------------------------- */

#define CANCEL_BATCH 20

typedef struct {
    SendRecord rec;
    guint32 ms;
    CrtRequestId id;
    gboolean cancelled;
} CancelCase;

/* Exactly one completion, and its status agrees with what cancel said. */
static void assert_cancel_consistent(CancelCase *c, guint n, CrtCompletion completion,
                                     guint *n_true)
{
    for (guint i = 0; i < n; i++)
        TU_WAIT_FOR(g_atomic_int_get(&c[i].rec.calls) >= 1);
    g_usleep(20 * 1000); /* room for a (wrong) second completion */
    for (guint i = 0; i < n; i++) {
        g_assert_cmpint(g_atomic_int_get(&c[i].rec.calls), ==, 1);
        g_assert_cmpint(c[i].rec.on_loop, ==, completion == CRT_COMPLETION_DEFAULT);
        if (c[i].cancelled) {
            g_assert_cmpint(c[i].rec.status, ==, -ECANCELED);
            (*n_true)++;
        } else {
            g_assert_cmpint(c[i].rec.status, ==, 0);
        }
    }
}

static void cancel_races(CrtEngine *e, CrtLoop *loop, CrtCompletion completion)
{
    CancelCase *c = g_new0(CancelCase, CANCEL_BATCH);
    guint n_true = 0, n_false;

    /* (c) cancel right after sending: either answer, one completion. */
    for (guint i = 0; i < CANCEL_BATCH; i++) {
        send_record_init(&c[i].rec, loop);
        c[i].ms = 200;
        g_assert_cmpint(send_sleep(e, &c[i].ms, 0, completion, &c[i].rec, &c[i].id), ==,
                        0);
        c[i].cancelled = crt_engine_cancel(e, c[i].id);
    }
    assert_cancel_consistent(c, CANCEL_BATCH, completion, &n_true);
    g_test_message("%s: immediate cancel: %u of %u cancelled",
                   crt_completion_to_string(completion), n_true, CANCEL_BATCH);

    /* (d) cancel around the moment the request completes by itself:
     * deadlines spread over 180..218 ms, cancels at about 200 ms. */
    for (guint round = 0; round < 5; round++) {
        n_true = 0;
        for (guint i = 0; i < CANCEL_BATCH; i++) {
            send_record_init(&c[i].rec, loop);
            c[i].ms = 180 + 2 * i;
            g_assert_cmpint(send_sleep(e, &c[i].ms, 0, completion, &c[i].rec, &c[i].id),
                            ==, 0);
        }
        g_usleep(200 * 1000);
        for (guint i = 0; i < CANCEL_BATCH; i++)
            c[i].cancelled = crt_engine_cancel(e, c[i].id);
        assert_cancel_consistent(c, CANCEL_BATCH, completion, &n_true);
        n_false = CANCEL_BATCH - n_true;
        g_test_message("%s: boundary round %u: %u cancelled, %u completed",
                       crt_completion_to_string(completion), round, n_true, n_false);
        /* A cancel of a completed request says so. */
        for (guint i = 0; i < CANCEL_BATCH; i++)
            g_assert_false(crt_engine_cancel(e, c[i].id));
    }
    g_free(c);
}

static void test_cancel(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    CrtEngineStats st;
    CrtEngine *e;
    SendRecord a, b;
    guint32 ms_a = 200, ms_b = 2000;
    CrtRequestId id_a = 0, id_b = 0;

    e = tu_engine_open(fx, "sim:");

    /* (a) after the completion, cancel has nothing to cancel. */
    send_record_init(&a, loop);
    g_assert_cmpint(send_sleep(e, &ms_a, 0, CRT_COMPLETION_DEFAULT, &a, &id_a), ==, 0);
    g_assert_cmpuint(id_a, !=, 0);
    TU_WAIT_FOR(g_atomic_int_get(&a.calls) >= 1);
    g_assert_cmpint(a.status, ==, 0);
    g_assert_false(crt_engine_cancel(e, id_a));

    /* (b) well before the completion, cancel wins and the callback sees
     * -ECANCELED (the sleep is long so a slow machine cannot lose). */
    send_record_init(&b, loop);
    g_assert_cmpint(send_sleep(e, &ms_b, 0, CRT_COMPLETION_DEFAULT, &b, &id_b), ==, 0);
    g_assert_cmpuint(id_b, !=, id_a);
    g_usleep(50 * 1000);
    g_assert_true(crt_engine_cancel(e, id_b));
    TU_WAIT_FOR(g_atomic_int_get(&b.calls) >= 1);
    g_assert_cmpint(b.status, ==, -ECANCELED);
    g_assert_false(crt_engine_cancel(e, id_b));

    /* Ids nobody was given. */
    g_assert_false(crt_engine_cancel(e, 0));
    g_assert_false(crt_engine_cancel(e, id_b + 1000));

    cancel_races(e, loop, CRT_COMPLETION_DEFAULT);
    cancel_races(e, loop, CRT_COMPLETION_PASSIVE);

    crt_engine_get_stats(e, &st);
    g_assert_cmpuint(st.requests_in_flight, ==, 0);
}

/* ---- /engine/client-owned-buffers ------------------------------------------ */

#define HOLD_REQUESTS 4
#define HOLD_BUFFERS 8
#define HOLD_SIZE 64

typedef struct {
    void *buffer;
    guint8 copy[HOLD_SIZE]; /* what it held when the client took it */
} Held;

typedef struct {
    Stream s;
    GMutex lock;
    GArray *held;                    /* Held; lock */
    guint64 per_slot[HOLD_REQUESTS]; /* lock */
    gint holding;                    /* atomic: keep buffers */
} Holder;

static CrtDisposition holder_output(CrtEngine *e, const CrtOutput *o, gpointer user_data)
{
    Holder *h = user_data;
    Held held;

    stream_check(&h->s, o);
    CHECKF(o->slot < HOLD_REQUESTS, "slot %u", o->slot);
    if (o->status != 0 || o->slot >= HOLD_REQUESTS)
        return CRT_DISPOSITION_ENGINE_CONTINUE;
    g_mutex_lock(&h->lock);
    h->per_slot[o->slot]++;
    g_mutex_unlock(&h->lock);
    if (!g_atomic_int_get(&h->holding))
        return CRT_DISPOSITION_ENGINE_CONTINUE;
    held.buffer = o->buffer;
    memcpy(held.copy, o->buffer, HOLD_SIZE);
    g_mutex_lock(&h->lock);
    g_array_append_val(h->held, held);
    g_mutex_unlock(&h->lock);
    return CRT_DISPOSITION_CLIENT_CONTINUE;
}

static guint holder_count(Holder *h)
{
    guint n;

    g_mutex_lock(&h->lock);
    n = h->held->len;
    g_mutex_unlock(&h->lock);
    return n;
}

static gboolean holder_full(gpointer data)
{
    return holder_count(data) >= HOLD_BUFFERS;
}

/* Give every held buffer back, after checking nobody wrote to it while the
 * client owned it. */
static void holder_release(CrtEngine *e, Holder *h)
{
    GArray *held;

    g_mutex_lock(&h->lock);
    held = h->held;
    h->held = g_array_new(FALSE, FALSE, sizeof(Held));
    g_mutex_unlock(&h->lock);
    for (guint i = 0; i < held->len; i++) {
        Held *x = &g_array_index(held, Held, i);

        g_assert_cmpmem(x->buffer, HOLD_SIZE, x->copy, HOLD_SIZE);
        crt_engine_buffer_put(e, x->buffer);
    }
    g_array_free(held, TRUE);
}

static void test_client_owned_buffers(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    CrtEngineConfig cfg;
    CrtEngineStats st;
    CrtEngine *e;
    Holder h;
    guint64 before[HOLD_REQUESTS];
    gint seen;

    memset(&h, 0, sizeof h);
    g_mutex_init(&h.lock);
    h.held = g_array_new(FALSE, FALSE, sizeof(Held));
    g_atomic_int_set(&h.holding, 1);
    counter_config(&cfg, loop, &h.s, HOLD_REQUESTS, HOLD_BUFFERS, HOLD_SIZE,
                   CRT_COMPLETION_DEFAULT);
    cfg.buffer_output = holder_output;
    cfg.user_data = &h;
    e = tu_engine_new(&cfg, "sim:counter");
    g_assert_cmpint(crt_engine_start(e), ==, 0);

    for (int cycle = 0; cycle < 5; cycle++) {
        /* The client holds every buffer: the stream starves and waits. */
        TU_WAIT_FOR(holder_full(&h));
        seen = g_atomic_int_get(&h.s.callbacks);
        g_usleep(100 * 1000);
        g_assert_cmpint(g_atomic_int_get(&h.s.callbacks), ==, seen);
        g_assert_cmpuint(holder_count(&h), ==, HOLD_BUFFERS);
        crt_engine_get_stats(e, &st);
        g_assert_cmpuint(st.slots_waiting, ==, HOLD_REQUESTS);
        g_assert_cmpuint(st.out_pool_free, ==, 0);
        TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STREAMING);

        g_mutex_lock(&h.lock);
        memcpy(before, h.per_slot, sizeof before);
        g_mutex_unlock(&h.lock);
        /* Put back from this thread: the waiting requests re-arm, and
         * every one of them completes again before the pool runs dry. */
        holder_release(e, &h);
        TU_WAIT_FOR(holder_full(&h));
        g_mutex_lock(&h.lock);
        for (guint i = 0; i < HOLD_REQUESTS; i++) {
            g_test_message("cycle %d slot %u: %" G_GUINT64_FORMAT
                           " -> %" G_GUINT64_FORMAT,
                           cycle, i, before[i], h.per_slot[i]);
        }
        for (guint i = 0; i < HOLD_REQUESTS; i++)
            g_assert_cmpuint(h.per_slot[i], >, before[i]);
        g_mutex_unlock(&h.lock);
    }

    g_atomic_int_set(&h.s.stopping, 1);
    crt_engine_stop_and_wait(e);
    crt_engine_get_stats(e, &st);
    g_assert_cmpuint(st.out_pool_free, ==, 0);
    holder_release(e, &h);
    tu_engine_assert_drained(e);
    assert_stats_match(e, &h.s);
    crt_engine_free(e);
    g_array_free(h.held, TRUE);
    g_mutex_clear(&h.lock);
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

/* ---- /engine/dispositions ------------------------------------------------------ */

typedef struct {
    Stream s;
    CrtDisposition first; /* returned for the first successful buffer */
    gint keep_first_n;    /* CLIENT_CONTINUE for this many buffers */
    GMutex lock;
    GArray *kept; /* Held; lock */
} Dispo;

static CrtDisposition dispo_output(CrtEngine *e, const CrtOutput *o, gpointer user_data)
{
    Dispo *d = user_data;
    CrtDisposition r = CRT_DISPOSITION_ENGINE_CONTINUE;
    Held held;
    gint ok;

    stream_check(&d->s, o);
    ok = g_atomic_int_get(&d->s.ok);
    if (o->status != 0)
        return r;
    if (ok == 1)
        r = d->first;
    else if (ok <= d->keep_first_n)
        r = CRT_DISPOSITION_CLIENT_CONTINUE;
    if (r == CRT_DISPOSITION_CLIENT_CONTINUE || r == CRT_DISPOSITION_CLIENT_STOP) {
        held.buffer = o->buffer;
        memcpy(held.copy, o->buffer, HOLD_SIZE);
        g_mutex_lock(&d->lock);
        g_array_append_val(d->kept, held);
        g_mutex_unlock(&d->lock);
    }
    return r;
}

static void dispo_put_back(CrtEngine *e, Dispo *d)
{
    g_mutex_lock(&d->lock);
    for (guint i = 0; i < d->kept->len; i++) {
        Held *x = &g_array_index(d->kept, Held, i);

        /* The engine did not touch a buffer the client owned. */
        g_assert_cmpmem(x->buffer, HOLD_SIZE, x->copy, HOLD_SIZE);
        crt_engine_buffer_put(e, x->buffer);
    }
    g_array_set_size(d->kept, 0);
    g_mutex_unlock(&d->lock);
}

static CrtEngine *dispo_start(CrtLoop *loop, Dispo *d, guint requests, guint out_count,
                              gboolean lookaside, CrtDisposition first, gint keep_first_n)
{
    CrtEngineConfig cfg;
    CrtEngine *e;

    memset(d, 0, sizeof *d);
    g_mutex_init(&d->lock);
    d->kept = g_array_new(FALSE, FALSE, sizeof(Held));
    d->first = first;
    d->keep_first_n = keep_first_n;
    counter_config(&cfg, loop, &d->s, requests, out_count, HOLD_SIZE,
                   CRT_COMPLETION_DEFAULT);
    cfg.lookaside_output = lookaside;
    cfg.buffer_output = dispo_output;
    cfg.user_data = d;
    e = tu_engine_new(&cfg, "sim:counter");
    g_assert_cmpint(crt_engine_start(e), ==, 0);
    return e;
}

static void dispo_finish(CrtEngine *e, Dispo *d)
{
    g_atomic_int_set(&d->s.stopping, 1);
    crt_engine_stop_and_wait(e);
    dispo_put_back(e, d);
    tu_engine_assert_drained(e);
    assert_stats_match(e, &d->s);
    crt_engine_free(e);
    g_array_free(d->kept, TRUE);
    g_mutex_clear(&d->lock);
}

/* The stream is stopped for good: nothing more arrives. */
static void assert_stopped_quietly(CrtEngine *e, Stream *s)
{
    gint seen;

    tu_engine_wait_state(e, CRT_STATE_STOPPED);
    seen = g_atomic_int_get(&s->callbacks);
    g_usleep(50 * 1000);
    g_assert_cmpint(g_atomic_int_get(&s->callbacks), ==, seen);
    TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STOPPED);
}

static void test_dispositions(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    CrtEngineStats st;
    CrtEngine *e;
    Dispo d;

    /* ENGINE_STOP, one request: that buffer was the last. */
    e = dispo_start(loop, &d, 1, 4, FALSE, CRT_DISPOSITION_ENGINE_STOP, 0);
    g_atomic_int_set(&d.s.stopping, 1);
    assert_stopped_quietly(e, &d.s);
    g_assert_cmpint(d.s.callbacks, ==, 1);
    g_assert_cmpint(d.s.ok, ==, 1);
    tu_engine_assert_drained(e); /* the engine kept the buffer */
    /* The stream can be started again and goes on where it stopped. */
    g_assert_cmpint(crt_engine_start(e), ==, 0);
    TU_WAIT_FOR(g_atomic_int_get(&d.s.ok) >= 20);
    dispo_finish(e, &d);
    tu_checks_assert_clean();

    /* ENGINE_STOP, four requests: only buffers that had completed already
     * follow the one that stopped the stream. */
    e = dispo_start(loop, &d, 4, 8, FALSE, CRT_DISPOSITION_ENGINE_STOP, 0);
    g_atomic_int_set(&d.s.stopping, 1);
    assert_stopped_quietly(e, &d.s);
    g_assert_cmpint(d.s.ok, >=, 1);
    g_assert_cmpint(d.s.ok, <=, 4);
    tu_engine_assert_drained(e);
    dispo_finish(e, &d);
    tu_checks_assert_clean();

    /* CLIENT_STOP: the stream stops and the client has the buffer. */
    e = dispo_start(loop, &d, 1, 4, FALSE, CRT_DISPOSITION_CLIENT_STOP, 0);
    g_atomic_int_set(&d.s.stopping, 1);
    assert_stopped_quietly(e, &d.s);
    g_assert_cmpint(d.s.ok, ==, 1);
    crt_engine_get_stats(e, &st);
    g_assert_cmpuint(st.out_pool_free, ==, 3);
    g_assert_cmpuint(st.requests_in_flight, ==, 0);
    /* Streaming again while the client still holds it does not disturb
     * it (dispo_finish compares the contents). */
    g_assert_cmpint(crt_engine_start(e), ==, 0);
    TU_WAIT_FOR(g_atomic_int_get(&d.s.ok) >= 50);
    dispo_finish(e, &d);
    tu_checks_assert_clean();

    /* CLIENT_CONTINUE: the client keeps two buffers, the stream goes on
     * with the other two. */
    e = dispo_start(loop, &d, 2, 4, FALSE, CRT_DISPOSITION_CLIENT_CONTINUE, 2);
    TU_WAIT_FOR(g_atomic_int_get(&d.s.ok) >= 200);
    TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STREAMING);
    g_atomic_int_set(&d.s.stopping, 1);
    crt_engine_stop_and_wait(e);
    crt_engine_get_stats(e, &st);
    g_assert_cmpuint(st.out_pool_free, ==, 2);
    g_mutex_lock(&d.lock);
    g_assert_cmpuint(d.kept->len, ==, 2);
    g_mutex_unlock(&d.lock);
    dispo_finish(e, &d);
    tu_checks_assert_clean();

    /* ENGINE_CONTINUE: the plain case. */
    e = dispo_start(loop, &d, 2, 4, FALSE, CRT_DISPOSITION_ENGINE_CONTINUE, 0);
    TU_WAIT_FOR(g_atomic_int_get(&d.s.ok) >= 200);
    crt_engine_get_stats(e, &st);
    g_assert_cmpuint(st.out_pool_free, >=, 2);
    dispo_finish(e, &d);
}

/* ---- /engine/lookaside --------------------------------------------------------------
 */

/* With look-aside output the pool grows instead of starving the stream,
 * however many buffers the client keeps. */
static void test_lookaside(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    CrtEngineStats st;
    CrtEngine *e;
    Dispo d;
    gint want;

    e = dispo_start(loop, &d, 4, 0, TRUE, CRT_DISPOSITION_CLIENT_CONTINUE, 40);
    TU_WAIT_FOR(g_atomic_int_get(&d.s.ok) >= 200);
    crt_engine_get_stats(e, &st);
    g_assert_cmpuint(st.slots_waiting, ==, 0);
    TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STREAMING);
    g_mutex_lock(&d.lock);
    g_assert_cmpuint(d.kept->len, ==, 40);
    g_mutex_unlock(&d.lock);
    /* Put back while streaming: extra buffers go away, the stream goes on. */
    dispo_put_back(e, &d);
    want = g_atomic_int_get(&d.s.ok) + 100;
    TU_WAIT_FOR(g_atomic_int_get(&d.s.ok) >= want);
    dispo_finish(e, &d);
}

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

/* ---- /engine/input-ready ---------------------------------------------------------- */

typedef struct {
    gint tokens;   /* atomic: inputs the producer has ready */
    gint filled;   /* atomic */
    gint eagain;   /* atomic */
    gint ok;       /* atomic */
    gint stopping; /* atomic */
} Producer;

static int producer_input(CrtEngine *e, void *buffer, size_t *size, void *context,
                          gpointer user_data)
{
    Producer *p = user_data;
    gint t;

    do {
        t = g_atomic_int_get(&p->tokens);
        if (t == 0) {
            g_atomic_int_inc(&p->eagain);
            return -EAGAIN;
        }
    } while (!g_atomic_int_compare_and_exchange(&p->tokens, t, t - 1));
    CHECKF(*size == 16, "input capacity %zu", *size);
    memcpy(buffer, "0123456789abcdef", 16);
    *size = 10;
    g_atomic_int_inc(&p->filled);
    return 0;
}

static CrtDisposition producer_output(CrtEngine *e, const CrtOutput *o,
                                      gpointer user_data)
{
    Producer *p = user_data;

    CHECKF(o->status == 0 || (o->status == -ECANCELED && g_atomic_int_get(&p->stopping)),
           "status %d", o->status);
    /* A write stream has no output buffer. */
    CHECK(o->buffer == NULL);
    CHECK(o->length == 0);
    if (o->status == 0)
        g_atomic_int_inc(&p->ok);
    return CRT_DISPOSITION_ENGINE_CONTINUE;
}

/* A buffer-input callback that has nothing to send parks its request until
 * crt_engine_input_ready(). */
static void test_input_ready(TuEngine *fx, gconstpointer unused)
{
    Producer p = {0};
    CrtEngineConfig cfg;
    CrtEngineStats st;
    CrtEngine *e;

    cfg = fx->cfg;
    cfg.type = CRT_REQUEST_WRITE;
    cfg.request_count = 2;
    cfg.in_size = 16;
    cfg.in_count = 4;
    cfg.buffer_input = producer_input;
    cfg.buffer_output = producer_output;
    cfg.user_data = &p;
    e = tu_engine_new(&cfg, "sim:");
    g_assert_cmpint(crt_engine_start(e), ==, 0);
    TU_WAIT_FOR(g_atomic_int_get(&p.eagain) >= 2);
    g_usleep(50 * 1000);
    crt_engine_get_stats(e, &st);
    g_assert_cmpuint(st.slots_waiting, ==, 2);
    g_assert_cmpint(g_atomic_int_get(&p.ok), ==, 0);

    for (int round = 1; round <= 3; round++) {
        g_atomic_int_add(&p.tokens, 5);
        crt_engine_input_ready(e);
        TU_WAIT_FOR(g_atomic_int_get(&p.ok) >= 5 * round);
        g_usleep(50 * 1000);
        g_assert_cmpint(g_atomic_int_get(&p.ok), ==, 5 * round);
        crt_engine_get_stats(e, &st);
        g_assert_cmpuint(st.slots_waiting, ==, 2);
        g_assert_cmpuint(st.bytes_written, ==, (guint64)(50 * round));
    }
    g_atomic_int_set(&p.stopping, 1);
    crt_engine_stop_and_wait(e);
    tu_engine_assert_drained(e);
    g_assert_cmpint(p.filled, ==, 15);
    crt_engine_free(e);
}

/* More requests than input buffers: the requests short of one wait for an
 * input buffer to come back, and every write still goes out. */
typedef struct {
    gint written; /* atomic */
    gint stopping;
} Short;

static int short_input(CrtEngine *e, void *buf, size_t *size, void *ctx, gpointer data)
{
    memset(buf, 'w', *size);
    return 0;
}

static CrtDisposition short_output(CrtEngine *e, const CrtOutput *o, gpointer data)
{
    Short *sh = data;

    CHECKF(o->status == 0 || (o->status == -ECANCELED && g_atomic_int_get(&sh->stopping)),
           "status %d", o->status);
    if (o->status == 0)
        g_atomic_int_inc(&sh->written);
    return CRT_DISPOSITION_ENGINE_CONTINUE;
}

static void test_input_pool_short(TuEngine *fx, gconstpointer unused)
{
    Short sh = {0};
    CrtEngineConfig cfg;
    CrtEngine *e;

    cfg = fx->cfg;
    cfg.type = CRT_REQUEST_WRITE;
    cfg.request_count = 8;
    cfg.in_count = 2;
    cfg.in_size = 32;
    cfg.buffer_input = short_input;
    cfg.buffer_output = short_output;
    cfg.user_data = &sh;
    e = tu_engine_new(&cfg, "sim:");
    g_assert_cmpint(crt_engine_start(e), ==, 0);
    TU_WAIT_FOR(g_atomic_int_get(&sh.written) >= 1000);
    g_atomic_int_set(&sh.stopping, 1);
    crt_engine_stop_and_wait(e);
    tu_engine_assert_drained(e);
    crt_engine_free(e);
}

/* ---- /engine/real-targets ------------------------------------------------------------
 */

/* A read stream that keeps what it reads. */
typedef struct {
    CrtLoop *loop;
    GMutex lock;
    GByteArray *data; /* lock */
    guint64 last_seq;
    gboolean expect_zero; /* check and scribble instead of keeping */
    gint ok;              /* atomic */
    gint ended;           /* atomic: -ENODATA seen */
    gint stopping;        /* atomic */
    gint errors;          /* atomic */
    /* A `wait` target: losses and returns are expected, noted here as
     * errno names (lock). */
    gboolean markers;
    GString *marks;
} Collector;

static CrtDisposition collect_output(CrtEngine *e, const CrtOutput *o, gpointer user_data)
{
    Collector *c = user_data;
    guint8 *p = o->buffer;

    CHECKF(crt_loop_is_current(c->loop), "default-level callback off the loop thread");
    CHECKF(o->seq == c->last_seq + 1,
           "seq %" G_GUINT64_FORMAT " after %" G_GUINT64_FORMAT, o->seq, c->last_seq);
    c->last_seq = o->seq;
    if (c->markers && o->status != 0 && o->status != -ECANCELED) {
        CHECKF(o->length == 0, "a marker with %zu bytes", o->length);
        g_mutex_lock(&c->lock);
        g_string_append_printf(c->marks, "%s%s", c->marks->len ? " " : "",
                               strerrorname_np(-o->status));
        g_mutex_unlock(&c->lock);
        return CRT_DISPOSITION_ENGINE_CONTINUE;
    }
    if (o->status == 0) {
        CHECKF(!g_atomic_int_get(&c->ended), "data after the end of the stream");
        CHECK(o->length > 0);
        if (c->expect_zero) {
            for (size_t i = 0; i < o->length; i++)
                CHECKF(p[i] == 0, "byte %zu from /dev/zero is 0x%02x", i, p[i]);
            memset(p, 0xAA, o->length);
        } else {
            g_mutex_lock(&c->lock);
            g_byte_array_append(c->data, p, (guint)o->length);
            g_mutex_unlock(&c->lock);
        }
        g_atomic_int_inc(&c->ok);
    } else if (o->status == -ENODATA) {
        CHECKF(!g_atomic_int_get(&c->ended), "a second end of stream");
        g_atomic_int_set(&c->ended, 1);
    } else if (o->status == -ECANCELED) {
        CHECKF(g_atomic_int_get(&c->stopping) || g_atomic_int_get(&c->ended),
               "-ECANCELED while streaming");
    } else {
        CHECKF(FALSE, "status %d (%s)", o->status, g_strerror(-o->status));
        g_atomic_int_inc(&c->errors);
    }
    return CRT_DISPOSITION_ENGINE_CONTINUE;
}

static CrtEngine *collector_start(Collector *c, CrtLoop *loop, const char *spec,
                                  size_t out_size, gboolean expect_zero)
{
    CrtEngineConfig cfg;
    CrtEngine *e;

    memset(c, 0, sizeof *c);
    c->loop = loop;
    c->expect_zero = expect_zero;
    g_mutex_init(&c->lock);
    c->data = g_byte_array_new();
    c->marks = g_string_new(NULL);
    c->markers = strstr(spec, " wait") != NULL;
    crt_engine_config_init(&cfg);
    cfg.loop = loop;
    cfg.type = CRT_REQUEST_READ;
    cfg.request_count = 4;
    cfg.out_count = 8;
    cfg.out_size = out_size;
    cfg.buffer_output = collect_output;
    cfg.user_data = c;
    e = tu_engine_new(&cfg, spec);
    g_assert_cmpint(crt_engine_start(e), ==, 0);
    return e;
}

static void collector_finish(CrtEngine *e, Collector *c)
{
    g_atomic_int_set(&c->stopping, 1);
    crt_engine_stop_and_wait(e);
    tu_engine_assert_drained(e);
    crt_engine_free(e);
    g_byte_array_unref(c->data);
    g_string_free(c->marks, TRUE);
    g_mutex_clear(&c->lock);
}

typedef struct {
    Collector *c;
    const char *want;
} CollectorMarks;

static gboolean collector_marks_are(gpointer data)
{
    CollectorMarks *m = data;
    gboolean same;

    g_mutex_lock(&m->c->lock);
    same = strcmp(m->c->marks->str, m->want) == 0;
    g_mutex_unlock(&m->c->lock);
    return same;
}

static void collector_expect_marks(Collector *c, const char *want)
{
    CollectorMarks m = {c, want};

    tu_wait_until(collector_marks_are, &m, TU_EVENTUALLY_MS);
    g_mutex_lock(&c->lock);
    g_assert_cmpstr(c->marks->str, ==, want);
    g_mutex_unlock(&c->lock);
}

typedef struct {
    Collector *c;
    gsize len;
} CollectorHas;

static gboolean collector_has(gpointer data)
{
    CollectorHas *w = data;
    gsize n;

    g_mutex_lock(&w->c->lock);
    n = w->c->data->len;
    g_mutex_unlock(&w->c->lock);
    return n >= w->len;
}

/* Wait for `len` bytes, then check they are exactly `expected` (and that no
 * more arrive). */
static void collector_expect(Collector *c, const guint8 *expected, gsize len)
{
    CollectorHas w = {c, len};

    if (!tu_wait_until(collector_has, &w, TU_EVENTUALLY_MS)) {
        g_mutex_lock(&c->lock);
        g_test_message("collected %u of %" G_GSIZE_FORMAT " bytes", c->data->len, len);
        g_mutex_unlock(&c->lock);
    }
    g_usleep(20 * 1000);
    g_mutex_lock(&c->lock);
    g_assert_cmpmem(c->data->data, c->data->len, expected, len);
    g_mutex_unlock(&c->lock);
}

/* Bytes whose value depends on their position, so a lost, repeated or
 * reordered chunk shows. */
static guint8 *pattern_new(gsize len, guint seed)
{
    guint8 *p = g_malloc(len);

    for (gsize i = 0; i < len; i++)
        p[i] = (guint8)((i * 131u + (i >> 8) + seed) & 0xff);
    return p;
}

static void write_all(int fd, const guint8 *p, gsize len)
{
    while (len > 0) {
        gsize chunk = (gsize)g_random_int_range(1, 3000);
        ssize_t n = write(fd, p, MIN(len, chunk));

        if (n < 0 && errno == EINTR)
            continue;
        g_assert_cmpint(n, >, 0);
        p += n;
        len -= (gsize)n;
    }
}

/* (a) a FIFO with a writer that comes and goes. */
typedef struct {
    const char *path;
    const guint8 *data;
    gsize len;
} FifoWriter;

static gpointer fifo_writer(gpointer p)
{
    FifoWriter *w = p;
    int fd = open(w->path, O_WRONLY | O_CLOEXEC);

    g_assert_cmpint(fd, >=, 0);
    write_all(fd, w->data, w->len);
    close(fd);
    return NULL;
}

static void test_real_fifo(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "fifo", NULL);
    gsize len = 256 * 1024;
    guint8 *data = pattern_new(len, 1);
    FifoWriter w = {path, data, len};
    Collector c;
    CrtEngine *e;
    GThread *writer;

    g_assert_cmpint(mkfifo(path, 0600), ==, 0);
    e = collector_start(&c, loop, path, 4096, FALSE);
    /* Two writers one after the other: the target holds both ends, so the
     * first one closing is no end of stream. */
    w.len = len / 2;
    writer = g_thread_new("fifo-writer", fifo_writer, &w);
    g_thread_join(writer);
    w.data = data + len / 2;
    w.len = len - len / 2;
    writer = g_thread_new("fifo-writer", fifo_writer, &w);
    g_thread_join(writer);
    collector_expect(&c, data, len);
    g_assert_cmpint(g_atomic_int_get(&c.ended), ==, 0);
    collector_finish(e, &c);
    g_free(data);
    tu_rmrf(dir);
    g_free(path);
    g_free(dir);
}

/* `wait`: a FIFO absent at the start, then created, written, removed and
 * created again: every byte arrives in order, and each arrival (EISCONN)
 * and removal (ENOENT) is a marker between them. */
static void test_real_fifo_wait(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "fifo", NULL);
    char *spec = g_strconcat(path, " wait", NULL);
    gsize len = 128 * 1024;
    guint8 *data = pattern_new(len, 3);
    FifoWriter w = {path, data, len / 2};
    Collector c;
    CrtEngine *e = collector_start(&c, loop, spec, 4096, FALSE);

    g_assert_true(c.markers);
    for (int round = 0; round < 2; round++) {
        GThread *writer;

        g_assert_cmpint(mkfifo(path, 0600), ==, 0);
        writer = g_thread_new("fifo-writer", fifo_writer, &w); /* opens once crtfs has */
        g_thread_join(writer);
        collector_expect(&c, data, round == 0 ? len / 2 : len);
        g_assert_cmpint(unlink(path), ==, 0);
        collector_expect_marks(&c, round == 0 ? "EISCONN ENOENT"
                                              : "EISCONN ENOENT EISCONN ENOENT");
        w.data = data + len / 2;
        w.len = len - len / 2;
    }
    collector_finish(e, &c);
    g_free(data);
    tu_rmrf(dir);
    g_free(spec);
    g_free(path);
    g_free(dir);
}

static gboolean server_has_connection(gpointer data)
{
    return tu_server_connections(data) >= 1;
}

/* (b), (c) an echo server: writes through the engine come back to its
 * read stream. */
static void echo_through_engine(CrtLoop *loop, const char *spec, TuServer *server)
{
    gsize len = 64 * 1024, off = 0;
    guint8 *data = pattern_new(len, 7);
    Collector c;
    CrtEngine *e = collector_start(&c, loop, spec, 4096, FALSE);

    /* connect() returns once the kernel queued the connection; the
     * server's accept may come a little later. */
    TU_WAIT_FOR(server_has_connection(server));
    g_assert_cmpuint(tu_server_connections(server), ==, 1);
    while (off < len) {
        gsize chunk = (gsize)g_random_int_range(1, 2000);
        gsize n = MIN(len - off, chunk);
        size_t bytes = 0;

        g_assert_cmpint(crt_engine_send_sync(e, data + off, n, NULL, 0, CRT_REQUEST_WRITE,
                                             0, 0, &bytes),
                        ==, 0);
        g_assert_cmpuint(bytes, ==, n);
        off += n;
    }
    collector_expect(&c, data, len);
    collector_finish(e, &c);
    g_free(data);
}

static void test_real_unix(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "echo.sock", NULL);
    char *spec = g_strdup_printf("unix:%s", path);
    TuServer *server = tu_echo_server_unix(path);

    g_assert_nonnull(server);
    echo_through_engine(loop, spec, server);
    tu_server_stop(server);
    tu_rmrf(dir);
    g_free(spec);
    g_free(path);
    g_free(dir);
}

static void test_real_tcp(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    guint16 port = 0;
    TuServer *server = tu_echo_server_tcp(&port);
    char *spec;

    g_assert_nonnull(server);
    spec = g_strdup_printf("tcp:127.0.0.1:%u", port);
    echo_through_engine(loop, spec, server);
    tu_server_stop(server);
    g_free(spec);
}

/* (d) a pty slave configured raw, fed through the master. */
static void test_real_pty(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    gsize len = 16 * 1024;
    guint8 *data = pattern_new(len, 3);
    int master = -1;
    char *slave = NULL, *spec;
    Collector c;
    CrtEngine *e;

    g_assert_cmpint(tu_openpty(&master, &slave), ==, 0);
    spec = g_strdup_printf("%s raw baud=9600", slave);
    e = collector_start(&c, loop, spec, 4096, FALSE);
    /* A single read queued behind the stream's reads times out while the
     * line is silent, and leaves the queue intact. */
    {
        guint8 buf[16];
        size_t bytes = 1;

        g_assert_cmpint(crt_engine_send_sync(e, NULL, 0, buf, sizeof buf,
                                             CRT_REQUEST_READ, 0, 100, &bytes),
                        ==, -ETIMEDOUT);
        g_assert_cmpuint(bytes, ==, 0);
    }
    /* Every byte value passes a raw line unchanged. */
    write_all(master, data, len);
    collector_expect(&c, data, len);
    collector_finish(e, &c);
    close(master);
    g_free(spec);
    g_free(slave);
    g_free(data);
}

/* (e) /dev/zero: every buffer all zero. */
static void test_real_dev_zero(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    Collector c;
    CrtEngine *e = collector_start(&c, loop, "/dev/zero", 4096, TRUE);

    TU_WAIT_FOR(g_atomic_int_get(&c.ok) >= 1000);
    collector_finish(e, &c);
}

/* (f) a command's output, to its end. */
static void test_real_exec_seq(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    GString *expected = g_string_new(NULL);
    Collector c;
    CrtEngine *e;

    for (int i = 1; i <= 100000; i++)
        g_string_append_printf(expected, "%d\n", i);
    e = collector_start(&c, loop, "exec:seq 1 100000", 4096, FALSE);
    TU_WAIT_FOR(g_atomic_int_get(&c.ended) >= 1);
    /* The end of the stream stops it without help. */
    tu_engine_wait_state(e, CRT_STATE_STOPPED);
    g_mutex_lock(&c.lock);
    g_assert_cmpmem(c.data->data, c.data->len, expected->str, expected->len);
    g_mutex_unlock(&c.lock);
    g_assert_cmpint(c.errors, ==, 0);
    collector_finish(e, &c);
    g_string_free(expected, TRUE);
}

/* (g) ioctls on a pty: one at a time, and as a stream. */
typedef struct {
    gint value;    /* atomic: the last FIONREAD answer */
    gint ok;       /* atomic */
    gint stopping; /* atomic */
} Fionread;

static CrtDisposition fionread_output(CrtEngine *e, const CrtOutput *o,
                                      gpointer user_data)
{
    Fionread *f = user_data;
    int v;

    if (o->status != 0) {
        CHECKF(o->status == -ECANCELED && g_atomic_int_get(&f->stopping), "status %d",
               o->status);
        return CRT_DISPOSITION_ENGINE_CONTINUE;
    }
    CHECKF(o->length == sizeof v, "length %zu", o->length);
    memcpy(&v, o->buffer, sizeof v);
    g_atomic_int_set(&f->value, v);
    g_atomic_int_inc(&f->ok);
    return CRT_DISPOSITION_ENGINE_CONTINUE;
}

typedef struct {
    Fionread *f;
    gint want;
} FionreadIs;

static gboolean fionread_is(gpointer data)
{
    FionreadIs *w = data;

    return g_atomic_int_get(&w->f->value) == w->want;
}

static void test_real_pty_ioctl(TuEngine *fx, gconstpointer unused)
{
    struct winsize set = {.ws_row = 33, .ws_col = 101, .ws_xpixel = 7, .ws_ypixel = 9};
    struct winsize got;
    guint8 junk[123];
    Fionread f = {.value = -1};
    FionreadIs w = {&f, sizeof junk};
    CrtEngineConfig cfg;
    CrtEngine *e;
    int master = -1;
    char *slave = NULL, *spec;
    size_t bytes = 0;

    g_assert_cmpint(tu_openpty(&master, &slave), ==, 0);
    spec = g_strdup_printf("%s raw", slave);
    g_assert_cmpint(ioctl(master, TIOCSWINSZ, &set), ==, 0);

    cfg = fx->cfg;
    e = tu_engine_new(&cfg, spec);
    memset(&got, 0, sizeof got);
    g_assert_cmpint(crt_engine_send_sync(e, NULL, 0, &got, sizeof got, CRT_REQUEST_IOCTL,
                                         TIOCGWINSZ, 0, &bytes),
                    ==, 0);
    g_assert_cmpuint(bytes, ==, sizeof got);
    g_assert_cmpuint(got.ws_row, ==, 33);
    g_assert_cmpuint(got.ws_col, ==, 101);
    g_assert_cmpuint(got.ws_xpixel, ==, 7);
    g_assert_cmpuint(got.ws_ypixel, ==, 9);
    crt_engine_free(e);

    /* FIONREAD as the streaming request: it sees what the master wrote
     * (nobody reads the slave). */
    cfg = fx->cfg;
    cfg.type = CRT_REQUEST_IOCTL;
    cfg.ioctl = FIONREAD;
    cfg.request_count = 1;
    cfg.in_size = 0;
    cfg.in_count = 0;
    cfg.out_size = sizeof(int);
    cfg.out_count = 2;
    cfg.buffer_output = fionread_output;
    cfg.user_data = &f;
    e = tu_engine_new(&cfg, spec);
    memset(junk, 'x', sizeof junk);
    write_all(master, junk, sizeof junk);
    g_assert_cmpint(crt_engine_start(e), ==, 0);
    if (!tu_wait_until(fionread_is, &w, TU_EVENTUALLY_MS))
        g_assert_cmpint(g_atomic_int_get(&f.value), ==, sizeof junk);
    g_atomic_int_set(&f.stopping, 1);
    crt_engine_stop_and_wait(e);
    tu_engine_assert_drained(e);
    crt_engine_free(e);
    close(master);
    g_free(spec);
    g_free(slave);
}

/* (h) transactions (internal ioctls) on a socket that also carries a read
 * stream: each transaction gets exactly its own answer, and the stream gets
 * every other byte - none of the transactions', none lost to them. */
#define TXN_ROUNDS 40

static void test_real_transaction(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "echo.sock", NULL);
    char *spec = g_strdup_printf("unix:%s", path);
    TuServer *server = tu_echo_server_unix(path);
    GString *stream = g_string_new(NULL);
    Collector c;
    CrtEngine *e;

    g_assert_nonnull(server);
    e = collector_start(&c, loop, spec, 256, FALSE);
    for (int n = 0; n < TXN_ROUNDS; n++) {
        char *ping = g_strdup_printf("PING-%d\n", n);
        char *pong = g_strdup_printf("PONG-%d\n", n);
        char *chunk = g_strdup_printf("stream-%04d:%0*d\n", n, 20 + n, n);
        char resp[64], resp2[64];
        size_t bytes = 0;
        SendRecord rec;
        CollectorHas quiet = {&c, stream->len};

        /* The stream has everything written so far: no stray bytes are in
         * the socket when the transaction starts, while the stream's four
         * reads wait at the target. */
        TU_WAIT_FOR(collector_has(&quiet));
        memset(resp, 0, sizeof resp);
        g_assert_cmpint(crt_engine_send_sync(e, ping, strlen(ping), resp, strlen(ping),
                                             CRT_REQUEST_INTERNAL_IOCTL, 0, 0, &bytes),
                        ==, 0);
        g_assert_cmpuint(bytes, ==, strlen(ping));
        g_assert_cmpstr(resp, ==, ping);

        /* Stream data written right behind a transaction: the echo brings
         * both back in one piece, and the transaction must take only its
         * own bytes. */
        send_record_init(&rec, loop);
        memset(resp2, 0, sizeof resp2);
        g_assert_cmpint(crt_engine_send_ex(e, pong, strlen(pong), resp2, strlen(pong),
                                           CRT_REQUEST_INTERNAL_IOCTL, 0, 0,
                                           CRT_COMPLETION_DEFAULT, record_send, &rec,
                                           NULL),
                        ==, 0);
        g_assert_cmpint(crt_engine_send(e, chunk, strlen(chunk), NULL, 0,
                                        CRT_REQUEST_WRITE, 0, 0, NULL, NULL),
                        ==, 0);
        g_string_append(stream, chunk);
        TU_WAIT_FOR(g_atomic_int_get(&rec.calls) >= 1);
        g_assert_cmpint(rec.status, ==, 0);
        g_assert_cmpuint(rec.out_read, ==, strlen(pong));
        g_assert_cmpstr(resp2, ==, pong);
        g_free(ping);
        g_free(pong);
        g_free(chunk);
    }
    collector_expect(&c, (const guint8 *)stream->str, stream->len);
    collector_finish(e, &c);
    tu_server_stop(server);
    g_string_free(stream, TRUE);
    tu_rmrf(dir);
    g_free(spec);
    g_free(path);
    g_free(dir);
}

/* A transaction submitted while stream bytes that arrived earlier are still
 * unread (the loop thread was busy) must not take them as its response:
 * they were there before the transaction was written, and the stream's
 * reads were waiting for them.  The peer here is driven by the test, and
 * the loop is held up on purpose with a crt_loop_call() that blocks. */
typedef struct {
    CrtLoop *loop;
    GMutex lock;
    GCond cond;
    gboolean started;
    gboolean release;
} LoopBlock;

static void loop_block_fn(gpointer data)
{
    LoopBlock *b = data;

    g_mutex_lock(&b->lock);
    b->started = TRUE;
    g_cond_broadcast(&b->cond);
    while (!b->release)
        g_cond_wait(&b->cond, &b->lock);
    g_mutex_unlock(&b->lock);
}

static gpointer loop_block_thread(gpointer data)
{
    LoopBlock *b = data;

    crt_loop_call(b->loop, loop_block_fn, b);
    return NULL;
}

static int unix_listen(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpuint(strlen(path), <, sizeof sa.sun_path);
    strcpy(sa.sun_path, path);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, sizeof sa), ==, 0);
    g_assert_cmpint(listen(fd, 4), ==, 0);
    return fd;
}

/* Read exactly `len` bytes from a blocking descriptor, within the usual
 * bound. */
static void read_exactly(int fd, char *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ssize_t n;

        g_assert_cmpint(poll(&pfd, 1, TU_EVENTUALLY_MS), ==, 1);
        n = read(fd, buf + got, len - got);
        g_assert_cmpint(n, >, 0);
        got += (size_t)n;
    }
}

/* Compare without aborting, so the case fails but cleans up. */
static gboolean expect_mem(const char *what, const void *got, size_t got_len,
                           const void *expected, size_t expected_len)
{
    char *graw, *xraw, *g, *x;

    if (got_len == expected_len && memcmp(got, expected, got_len) == 0)
        return TRUE;
    graw = g_strndup(got, got_len);
    xraw = g_strndup(expected, expected_len);
    g = g_strescape(graw, NULL);
    x = g_strescape(xraw, NULL);
    g_test_message("%s: got \"%s\", expected \"%s\"", what, g, x);
    g_free(graw);
    g_free(xraw);
    g_free(g);
    g_free(x);
    g_test_fail();
    return FALSE;
}

static void test_real_transaction_busy_loop(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "peer.sock", NULL);
    char *spec = g_strdup_printf("unix:%s", path);
    int listener = unix_listen(path);
    LoopBlock b = {.loop = loop};
    char resp[32], req[4];
    SendRecord rec;
    CollectorHas first = {NULL, 9}, all = {NULL, 14};
    GThread *blocker;
    Collector c;
    CrtEngine *e;
    int peer;

    g_mutex_init(&b.lock);
    g_cond_init(&b.cond);
    e = collector_start(&c, loop, spec, 256, FALSE);
    first.c = all.c = &c;
    peer = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    g_assert_cmpint(peer, >=, 0);

    /* Unsolicited data reaches the stream. */
    g_assert_cmpint(write(peer, "stream-1;", 9), ==, 9);
    TU_WAIT_FOR(collector_has(&first));

    /* More arrives while the loop is busy; then a transaction is sent. */
    blocker = g_thread_new("loop-blocker", loop_block_thread, &b);
    g_mutex_lock(&b.lock);
    while (!b.started)
        g_cond_wait(&b.cond, &b.lock);
    g_mutex_unlock(&b.lock);
    g_assert_cmpint(write(peer, "stream-2;", 9), ==, 9);
    send_record_init(&rec, loop);
    memset(resp, 0, sizeof resp);
    g_assert_cmpint(crt_engine_send_ex(e, "REQ\n", 4, resp, sizeof resp,
                                       CRT_REQUEST_INTERNAL_IOCTL, 0, 0,
                                       CRT_COMPLETION_DEFAULT, record_send, &rec, NULL),
                    ==, 0);
    g_mutex_lock(&b.lock);
    b.release = TRUE;
    g_cond_broadcast(&b.cond);
    g_mutex_unlock(&b.lock);
    g_thread_join(blocker);

    /* The peer answers the request it received. */
    read_exactly(peer, req, sizeof req);
    g_assert_cmpmem(req, sizeof req, "REQ\n", 4);
    g_assert_cmpint(write(peer, "RESP\n", 5), ==, 5);
    TU_WAIT_FOR(g_atomic_int_get(&rec.calls) >= 1);
    g_assert_cmpint(rec.status, ==, 0);
    TU_WAIT_FOR(collector_has(&all));
    g_usleep(50 * 1000);

    expect_mem("transaction response", resp, rec.out_read, "RESP\n", 5);
    g_mutex_lock(&c.lock);
    expect_mem("stream", c.data->data, c.data->len, "stream-1;stream-2;", 18);
    g_mutex_unlock(&c.lock);

    collector_finish(e, &c);
    close(peer);
    close(listener);
    g_mutex_clear(&b.lock);
    g_cond_clear(&b.cond);
    tu_rmrf(dir);
    g_free(spec);
    g_free(path);
    g_free(dir);
}

/* ---- /engine/bad-config ------------------------------------------------------------ */

static void assert_error_message(GError *error)
{
    g_assert_nonnull(error);
    g_assert_nonnull(error->message);
    g_assert_cmpuint(strlen(error->message), >, 0);
}

/* crt_engine_new refuses with -EINVAL and words, and leaves *out alone. */
static void assert_new_invalid(const CrtEngineConfig *cfg)
{
    GError *error = NULL;
    CrtEngine *const sentinel = (CrtEngine *)&error;
    CrtEngine *e = sentinel;

    g_assert_cmpint(crt_engine_new(cfg, &e, &error), ==, -EINVAL);
    g_assert_true(e == sentinel);
    assert_error_message(error);
    g_test_message("crt_engine_new: %s", error->message);
    g_clear_error(&error);
    /* Without a GError it refuses all the same. */
    g_assert_cmpint(crt_engine_new(cfg, &e, NULL), ==, -EINVAL);
    g_assert_true(e == sentinel);
}

static void assert_invalid(const CrtEngineConfig *cfg)
{
    GError *error = NULL;

    g_assert_cmpint(crt_engine_config_validate(cfg, &error), ==, -EINVAL);
    assert_error_message(error);
    g_test_message("validate: %s", error->message);
    g_clear_error(&error);
    g_assert_cmpint(crt_engine_config_validate(cfg, NULL), ==, -EINVAL);
    assert_new_invalid(cfg);
}

typedef void (*ConfigBreaker)(CrtEngineConfig *cfg);

static void br_requests_zero(CrtEngineConfig *c)
{
    c->request_count = 0;
}

static void br_requests_huge(CrtEngineConfig *c)
{
    c->request_count = 100000;
}

static void br_ioctl_zero(CrtEngineConfig *c)
{
    c->type = CRT_REQUEST_IOCTL;
    c->ioctl = 0;
}

static void br_type_invalid(CrtEngineConfig *c)
{
    c->type = CRT_REQUEST_INVALID;
}

static void br_type_99(CrtEngineConfig *c)
{
    c->type = (CrtRequestType)99;
}

static void br_out_count_zero(CrtEngineConfig *c)
{
    c->out_count = 0;
    c->lookaside_output = FALSE;
}

static void br_in_count_zero(CrtEngineConfig *c)
{
    c->type = CRT_REQUEST_WRITE;
    c->in_size = 64;
    c->in_count = 0;
}

static void br_mode_invalid(CrtEngineConfig *c)
{
    c->mode = CRT_MODE_INVALID;
}

static void br_mode_99(CrtEngineConfig *c)
{
    c->mode = (CrtMode)99;
}

static void br_completion_7(CrtEngineConfig *c)
{
    c->completion = (CrtCompletion)7;
}

static void br_memory_5(CrtEngineConfig *c)
{
    c->out_memory = (CrtMemory)5;
}

/* Sizes and counts the buffer pools cannot hold. */
static void br_out_size_huge(CrtEngineConfig *c)
{
    c->out_size = (size_t)1 << 40;
}

static void br_out_total_huge(CrtEngineConfig *c)
{
    c->out_count = 65536;
    c->out_size = (size_t)1 << 20; /* 64 GiB in all */
}

static void br_out_size_overflow(CrtEngineConfig *c)
{
    c->out_count = 4;
    c->out_size = SIZE_MAX / 2 + 1; /* count x size wraps around */
}

static void br_out_context_overflow(CrtEngineConfig *c)
{
    c->out_size = 4096;
    c->out_context_size = SIZE_MAX - 64; /* size + context wraps around */
}

static void br_in_size_huge(CrtEngineConfig *c)
{
    c->type = CRT_REQUEST_WRITE;
    c->in_size = (size_t)1 << 40;
}

static void br_in_total_overflow(CrtEngineConfig *c)
{
    c->type = CRT_REQUEST_IOCTL;
    c->ioctl = CRT_SIM_IOCTL_SLEEP;
    c->in_count = 65536;
    c->in_size = SIZE_MAX / 65536 + 1;
}

static const ConfigBreaker config_breakers[] = {
    br_requests_zero, br_requests_huge,  br_ioctl_zero,    br_type_invalid,
    br_type_99,       br_out_count_zero, br_in_count_zero, br_mode_invalid,
    br_mode_99,       br_completion_7,   br_memory_5,
};

static const ConfigBreaker size_breakers[] = {
    br_out_size_huge,        br_out_total_huge, br_out_size_overflow,
    br_out_context_overflow, br_in_size_huge,   br_in_total_overflow,
};

static void test_bad_config(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    CrtEngineConfig cfg;
    CrtEngine *e;
    CrtTarget *t;
    GError *error = NULL;
    char *dir = tu_tmpdir();
    char *missing_sock = g_strdup_printf("unix:%s/missing.sock", dir);

    for (guint i = 0; i < G_N_ELEMENTS(config_breakers); i++) {
        cfg = fx->cfg;
        config_breakers[i](&cfg);
        g_test_message("config breaker %u", i);
        assert_invalid(&cfg);
    }
    for (guint i = 0; i < G_N_ELEMENTS(size_breakers); i++) {
        cfg = fx->cfg;
        size_breakers[i](&cfg);
        g_test_message("size breaker %u", i);
        assert_new_invalid(&cfg);
    }

    /* Look-aside output needs no preallocated buffer. */
    cfg = fx->cfg;
    cfg.out_count = 0;
    cfg.lookaside_output = TRUE;
    g_assert_cmpint(crt_engine_config_validate(&cfg, &error), ==, 0);
    g_assert_no_error(error);
    e = tu_engine_new(&cfg, NULL);
    crt_engine_free(e);

    /* Targets that cannot be opened: an error with words, no target. */
    t = (CrtTarget *)&error;
    g_assert_cmpint(
        crt_target_open_spec("/nonexistent-crtfs-dir/device", loop, &t, &error), ==,
        -ENOENT);
    assert_error_message(error);
    g_test_message("%s", error->message);
    g_clear_error(&error);
    g_assert_null(t);
    t = NULL;
    g_assert_cmpint(crt_target_open_spec(missing_sock, loop, &t, &error), <, 0);
    assert_error_message(error);
    g_test_message("%s", error->message);
    g_clear_error(&error);
    g_assert_null(t);
    g_assert_cmpint(crt_target_open_spec("bogus:thing", loop, &t, &error), ==, -EINVAL);
    assert_error_message(error);
    g_clear_error(&error);
    g_assert_null(t);

    /* Starting without a target, and twice. */
    cfg = fx->cfg;
    e = tu_engine_new(&cfg, NULL);
    g_assert_cmpint(crt_engine_start(e), ==, -ENOTCONN);
    TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STOPPED);
    tu_engine_set_spec(e, "sim:counter rate=1000");
    g_assert_cmpint(crt_engine_start(e), ==, 0);
    g_assert_cmpint(crt_engine_start(e), ==, -EALREADY);
    TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STREAMING);
    crt_engine_stop_and_wait(e);
    tu_engine_assert_drained(e);
    crt_engine_free(e);

    tu_rmrf(dir);
    g_free(dir);
    g_free(missing_sock);
}

/* crt_engine_config_validate is the check a configuration reader runs
 * before creating anything: sizes the pools will refuse must fail there
 * already, naming the member. */
static void test_bad_config_validate_sizes(TuEngine *fx, gconstpointer unused)
{
    CrtEngineConfig cfg;
    GError *error = NULL;
    guint accepted = 0;

    for (guint i = 0; i < G_N_ELEMENTS(size_breakers); i++) {
        int r;

        cfg = fx->cfg;
        size_breakers[i](&cfg);
        r = crt_engine_config_validate(&cfg, &error);
        if (r == -EINVAL && error != NULL && error->message[0] != '\0') {
            g_test_message("size breaker %u: %s", i, error->message);
        } else {
            g_test_message("size breaker %u: validate returned %d%s", i, r,
                           error ? "" : " and no error");
            accepted++;
        }
        g_clear_error(&error);
    }
    if (accepted > 0) {
        g_test_message("crt_engine_config_validate accepted %u of %u configurations that "
                       "crt_engine_new refuses",
                       accepted, (guint)G_N_ELEMENTS(size_breakers));
        g_test_fail();
    }
}

/* Waiting for a request on the loop thread would wait forever. */
typedef struct {
    CrtEngine *engine;
    int result;
} OnLoop;

static void send_sync_on_loop(gpointer data)
{
    OnLoop *o = data;
    guint32 ms = 1;

    o->result = crt_engine_send_sync(o->engine, &ms, sizeof ms, &ms, sizeof ms,
                                     CRT_REQUEST_IOCTL, CRT_SIM_IOCTL_SLEEP, 0, NULL);
}

static void test_send_sync_on_loop(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    OnLoop o = {0};

    o.engine = tu_engine_open(fx, "sim:");
    crt_loop_call(loop, send_sync_on_loop, &o);
    g_assert_cmpint(o.result, ==, -EDEADLK);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    TU_TEST_ADD_ENGINE("/engine/output-stream/default", test_output_stream_default);
    TU_TEST_ADD_ENGINE("/engine/output-stream/passive", test_output_stream_passive);
    TU_TEST_ADD_ENGINE("/engine/input-stream", test_input_stream);
    TU_TEST_ADD_ENGINE("/engine/zero-buffer-stream", test_zero_buffer_stream);
    TU_TEST_ADD_ENGINE("/engine/matrix", test_matrix);
    TU_TEST_ADD_ENGINE("/engine/send-sync", test_send_sync);
    TU_TEST_ADD_ENGINE("/engine/send-sync-on-loop", test_send_sync_on_loop);
    TU_TEST_ADD_ENGINE("/engine/cancel", test_cancel);
    TU_TEST_ADD_ENGINE("/engine/client-owned-buffers", test_client_owned_buffers);
    TU_TEST_ADD_ENGINE("/engine/ordering/default", test_ordering_default);
    TU_TEST_ADD_ENGINE("/engine/ordering/passive", test_ordering_passive);
    TU_TEST_ADD_ENGINE("/engine/stop-races/slow-callback", test_stop_race_slow_callback);
    TU_TEST_ADD_ENGINE("/engine/stop-races/start-stop-storm", test_stop_race_storm);
    TU_TEST_ADD_ENGINE("/engine/stop-races/free-in-flight", test_stop_race_free);
    TU_TEST_ADD_ENGINE("/engine/stop-races/from-callback", test_stop_race_from_callback);
    TU_TEST_ADD_ENGINE("/engine/dispositions", test_dispositions);
    TU_TEST_ADD_ENGINE("/engine/lookaside", test_lookaside);
    TU_TEST_ADD_ENGINE("/engine/target-errors", test_target_errors);
    TU_TEST_ADD_ENGINE("/engine/automatic-mode", test_automatic_mode);
    TU_TEST_ADD_ENGINE("/engine/suspend-resume", test_suspend_resume);
    TU_TEST_ADD_ENGINE("/engine/input-ready", test_input_ready);
    TU_TEST_ADD_ENGINE("/engine/input-pool-short", test_input_pool_short);
    TU_TEST_ADD_ENGINE("/engine/real-targets/fifo", test_real_fifo);
    TU_TEST_ADD_ENGINE("/engine/real-targets/fifo-wait", test_real_fifo_wait);
    TU_TEST_ADD_ENGINE("/engine/real-targets/unix", test_real_unix);
    TU_TEST_ADD_ENGINE("/engine/real-targets/tcp", test_real_tcp);
    TU_TEST_ADD_ENGINE("/engine/real-targets/pty", test_real_pty);
    TU_TEST_ADD_ENGINE("/engine/real-targets/dev-zero", test_real_dev_zero);
    TU_TEST_ADD_ENGINE("/engine/real-targets/exec-seq", test_real_exec_seq);
    TU_TEST_ADD_ENGINE("/engine/real-targets/pty-ioctl", test_real_pty_ioctl);
    TU_TEST_ADD_ENGINE("/engine/real-targets/transaction", test_real_transaction);
    TU_TEST_ADD_ENGINE("/engine/real-targets/transaction-busy-loop", test_real_transaction_busy_loop);
    TU_TEST_ADD_ENGINE("/engine/bad-config", test_bad_config);
    TU_TEST_ADD_ENGINE("/engine/bad-config/validate-sizes", test_bad_config_validate_sizes);
    return g_test_run();
}
