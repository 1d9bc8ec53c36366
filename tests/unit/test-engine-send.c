/* crtfs tests - the engine's single requests: crt_engine_send and
 * send_sync with their timeouts and refusals, send_sync on the loop thread,
 * and cancellation racing completion.
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

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    TU_TEST_ADD_ENGINE("/engine/send-sync", test_send_sync);
    TU_TEST_ADD_ENGINE("/engine/send-sync-on-loop", test_send_sync_on_loop);
    TU_TEST_ADD_ENGINE("/engine/cancel", test_cancel);
    return g_test_run();
}
