/* crtfs tests - the engine's buffers: buffers the client keeps, the four
 * dispositions, look-aside output, and input buffers (a producer that is
 * not ready, fewer input buffers than requests).
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

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    TU_TEST_ADD_ENGINE("/engine/client-owned-buffers", test_client_owned_buffers);
    TU_TEST_ADD_ENGINE("/engine/dispositions", test_dispositions);
    TU_TEST_ADD_ENGINE("/engine/lookaside", test_lookaside);
    TU_TEST_ADD_ENGINE("/engine/input-ready", test_input_ready);
    TU_TEST_ADD_ENGINE("/engine/input-pool-short", test_input_pool_short);
    return g_test_run();
}
