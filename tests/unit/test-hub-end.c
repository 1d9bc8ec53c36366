/* crtfs tests - how a hub stream ends: end of stream and close, error
 * completions, and completions without a buffer (kept, bounded, paced).
 *
 * The hub is fed by a real engine streaming `sim:counter` (hub-fixture.h).
 * Each case runs in a child process with a time limit, so a stream that
 * hangs or an assertion that fails costs that case alone.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <crtfs/crtfs.h>

#include "hub-fixture.h"
#include "testutil.h"

/* ---- end of stream, close, errors ----------------------------------------- */

/* crt_hub_end_stream: a reader that has read everything gets end of file
 * once, then -EAGAIN again; one with entries left gets them first; a new
 * stream brings data again. */
/* A reader that has not read all of a stream when the next one starts gets
 * its end of file where the first ended, before the second's entries (found
 * by bench/soak: stop-wait and start in quick succession). */
static void test_end_of_stream_before_next(void)
{
    Fix f;
    Records p, q;
    CrtHubReader *r;
    guint64 last_first;
    gssize n;

    fix_open(&f, &(FixOpts){.spec = "sim:counter rate=2000", .out_count = 64});
    records_init(&p);
    records_init(&q);
    r = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    TU_WAIT_FOR(hub_stats(&f).queued >= 10); /* r reads nothing yet */
    crt_engine_stop_and_wait(f.engine);
    crt_hub_end_stream(f.hub);
    last_first = hub_stats(&f).last_seq;
    fix_start(&f);
    TU_WAIT_FOR(hub_stats(&f).last_seq >= last_first + 10);
    /* Now r reads: the first stream, end of file, then the second. */
    n = drain_records(r, &p);
    g_assert_cmpint(n, ==, 0);
    g_assert_cmpuint(records_last_seq(&p), ==, last_first);
    crt_engine_stop_and_wait(f.engine);
    g_assert_cmpint(drain_records(r, &q), ==, -EAGAIN);
    g_assert_cmpuint(q.recs->len, >, 0);
    g_assert_cmpuint(rec_at(&q, 0)->seq, ==, last_first + 1);
    crt_hub_reader_free(r);
    records_clear(&p);
    records_clear(&q);
    fix_close(&f);
}

static void test_end_of_stream(void)
{
    Fix f;
    Records p, p2, q;
    CrtHubReader *r, *slow, *later;
    char buf[256];
    guint64 last, second;

    /* Slow enough that the stop never finds the pool exhausted (see
     * /hub/overflow/block-stop-read-start for that case). */
    fix_open(&f, &(FixOpts){.spec = "sim:counter rate=2000", .out_count = 64});
    records_init(&p);
    records_init(&p2);
    records_init(&q);
    r = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    READ_RECORDS_UNTIL(&f, r, &p, 50, CRT_FRAMING_STREAM);
    crt_engine_stop_and_wait(f.engine);
    g_assert_cmpint(drain_records(r, &p), ==, -EAGAIN);
    slow = crt_hub_reader_new(f.hub, TRUE); /* opens after the last entry */
    crt_hub_end_stream(f.hub);
    g_assert_true(crt_hub_readable(r));
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 0);
    /* End of file stays, as on a pipe, until the next stream begins. */
    g_assert_true(crt_hub_readable(r));
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 0);
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 0);
    g_assert_cmpint(crt_hub_read(slow, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 0);
    g_assert_cmpint(crt_hub_read(slow, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 0);
    /* A reader opened after the stream ended waits for the next one. */
    later = crt_hub_reader_new(f.hub, TRUE);
    g_assert_false(crt_hub_readable(later));
    g_assert_cmpint(crt_hub_read(later, buf, sizeof buf, CRT_FRAMING_RECORD), ==,
                    -EAGAIN);
    crt_hub_reader_free(later);

    /* A second stream: its entries come, numbered on (the requests the stop
     * cancelled took numbers too), the counters without a gap. */
    ASSERT_RECORDS(&p, 1);
    last = records_last_seq(&p);
    fix_start(&f);
    READ_RECORDS_UNTIL(&f, r, &p2, last + 50, CRT_FRAMING_STREAM);
    crt_engine_stop_and_wait(f.engine);
    drain_records(r, &p2);
    g_assert_cmpuint(p2.recs->len, >, 0);
    second = rec_at(&p2, 0)->seq;
    g_assert_cmpuint(second, >, last);
    ASSERT_RECORDS(&p2, second);
    g_assert_cmpuint(rec_at(&p2, 0)->first, ==, rec_at(&p, p.recs->len - 1)->last + 1);
    /* `slow` has not read the second stream: data first, then end of file. */
    crt_hub_end_stream(f.hub);
    g_assert_cmpint(drain_records(slow, &q), ==, 0);
    ASSERT_RECORDS(&q, second);
    g_assert_cmpuint(records_last_seq(&q), ==, records_last_seq(&p2));
    g_assert_cmpint(crt_hub_read(slow, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 0);
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 0);
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 0);
    /* A new stream begins (before its engine runs): the readers wait for
     * its data. */
    crt_hub_begin_stream(f.hub);
    g_assert_false(crt_hub_readable(r));
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, -EAGAIN);
    crt_hub_end_stream(f.hub);
    crt_hub_reader_free(r);
    crt_hub_reader_free(slow);
    records_clear(&p);
    records_clear(&p2);
    records_clear(&q);
    fix_close(&f);
}

/* crt_hub_close: every read ends, for good, after what is queued; later
 * completions are not entries (the stream runs on, reaching nobody). */
static void test_close(void)
{
    Fix f;
    Records p;
    CrtHubReader *r, *idle;
    char buf[256];
    guint64 last_seq, completed;

    fix_open(&f, &(FixOpts){.out_count = 8});
    records_init(&p);
    r = crt_hub_reader_new(f.hub, TRUE);
    idle = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    /* `idle` holds every entry: the stream pauses after the pool's worth. */
    READ_RECORDS_UNTIL(&f, r, &p, 8, CRT_FRAMING_STREAM);
    assert_paused(&f);
    crt_hub_close(f.hub);
    g_assert_cmpint(drain_records(r, &p), ==, 0);
    ASSERT_RECORDS(&p, 1);
    for (int i = 0; i < 3; i++) {
        g_assert_true(crt_hub_readable(r));
        g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 0);
    }
    /* The idle reader gets its queued data first, then end of file. */
    g_assert_true(crt_hub_readable(idle));
    g_assert_cmpint(crt_hub_read(idle, buf, sizeof buf, CRT_FRAMING_STREAM), >, 0);
    while (crt_hub_read(idle, buf, sizeof buf, CRT_FRAMING_STREAM) > 0)
        ;
    g_assert_cmpint(crt_hub_read(idle, buf, sizeof buf, CRT_FRAMING_STREAM), ==, 0);
    g_assert_true(crt_hub_readable(idle));

    /* The buffers are home, the stream resumes and reaches nobody. */
    last_seq = hub_stats(&f).last_seq;
    completed = engine_stats(&f).completed;
    TU_WAIT_FOR(engine_stats(&f).completed >= completed + 100);
    crt_engine_stop_and_wait(f.engine);
    g_assert_cmpuint(hub_stats(&f).last_seq, ==, last_seq);
    g_assert_cmpuint(hub_stats(&f).queued, ==, 0);
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 0);
    assert_pool_full(&f);
    crt_hub_reader_free(r);
    crt_hub_reader_free(idle);
    records_clear(&p);
    fix_close(&f);
}

/* An error completion is an entry: `records` shows it with the errno's
 * name and length 0, `data` skips it and the bytes run on. */
static void test_error_completions(void)
{
    Fix f;
    Records p;
    Counters c = {0};
    CrtHubReader *rr, *rd;
    char buf[4096];
    guint errors = 0;

    fix_open(&f, &(FixOpts){.spec = "sim:counter fail=3 errno=EPROTO", .out_count = 64});
    records_init(&p);
    rr = crt_hub_reader_new(f.hub, TRUE);
    rd = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    /* Each reader holds the other back by at most the pool (block). */
    READ_RECORDS_UNTIL(&f, rr, &p, 50, CRT_FRAMING_RECORD);
    while (c.next < 45 * 8) {
        gssize n =
            read_wait(&f, rd, buf, sizeof buf, CRT_FRAMING_STREAM, TU_EVENTUALLY_MS);

        g_assert_cmpint(n, >, 0);
        counters_feed(&c, buf, (size_t)n);
    }
    g_assert_cmpstr(c.error, ==, NULL);
    READ_RECORDS_UNTIL(&f, rr, &p, 100, CRT_FRAMING_RECORD);
    ASSERT_RECORDS(&p, 1);
    for (guint i = 0; i < p.recs->len; i++) {
        const Rec *rec = rec_at(&p, i);

        if (strcmp(rec->status, "ok") != 0) {
            g_assert_cmpstr(rec->status, ==, "EPROTO");
            g_assert_cmpuint(rec->length, ==, 0);
            errors++;
        }
    }
    g_assert_cmpuint(errors, ==, 1);
    g_assert_cmpuint(engine_stats(&f).failed, ==, 1);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(rr);
    crt_hub_reader_free(rd);
    records_clear(&p);
    fix_close(&f);
}

/* Line events are entries without data: `records` shows their word as
 * STATUS with LENGTH 0, numbered in arrival order among the engine's
 * entries; `data` sees nothing of them; kept for a reader that opens
 * later; freed with the hub. */
static void test_line_events(void)
{
    static const char *const words[] = {"line:cts=1", "line:framing+3", "line:break+1"};
    Fix f;
    Records p;
    CrtHubReader *rr, *rd, *late;
    char buf[4096];

    fix_open(&f, &(FixOpts){0});
    records_init(&p);
    rr = crt_hub_reader_new(f.hub, TRUE);
    rd = crt_hub_reader_new(f.hub, FALSE);
    for (size_t i = 0; i < G_N_ELEMENTS(words); i++)
        crt_hub_push_event(f.hub, words[i], g_get_real_time() * 1000);
    drain_records(rr, &p);
    g_assert_cmpstr(p.error, ==, NULL);
    g_assert_cmpuint(p.recs->len, ==, G_N_ELEMENTS(words));
    for (guint i = 0; i < p.recs->len; i++) {
        g_assert_cmpuint(rec_at(&p, i)->seq, ==, i + 1);
        g_assert_cmpstr(rec_at(&p, i)->status, ==, words[i]);
        g_assert_cmpuint(rec_at(&p, i)->length, ==, 0);
    }
    g_assert_cmpint(crt_hub_read(rd, buf, sizeof buf, CRT_FRAMING_STREAM), ==, -EAGAIN);
    g_assert_cmpuint(hub_stats(&f).last_seq, ==, 3);
    /* Streamed buffers are numbered after them. */
    fix_start(&f);
    READ_RECORDS_UNTIL(&f, rr, &p, 6, CRT_FRAMING_RECORD);
    g_assert_cmpstr(rec_at(&p, 3)->status, ==, "ok");
    g_assert_cmpuint(rec_at(&p, 3)->seq, ==, 4);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(rr);
    crt_hub_reader_free(rd);
    /* Nobody reads: an event waits for the next reader (keep all). */
    crt_hub_push_event(f.hub, "line:dcd=0", g_get_real_time() * 1000);
    late = crt_hub_reader_new(f.hub, TRUE);
    records_clear(&p);
    records_init(&p);
    drain_records(late, &p);
    g_assert_cmpuint(p.recs->len, >=, 1);
    g_assert_cmpstr(rec_at(&p, p.recs->len - 1)->status, ==, "line:dcd=0");
    crt_hub_reader_free(late);
    crt_hub_push_event(f.hub, "line:ri=1",
                       g_get_real_time() * 1000); /* freed by the hub */
    records_clear(&p);
    fix_close(&f);
}

/* Completions without a buffer (out_size 0) are entries the hub allocates
 * and frees itself: a reader may free one the moment the push lets go of
 * the lock, and the push must not look at it after that. */
static void test_bufferless_entries(void)
{
    Fix f;
    Records p;
    CrtHubReader *r;

    fix_open(&f, &(FixOpts){.no_buffers = TRUE, .requests = 1});
    records_init(&p);
    r = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    READ_RECORDS_UNTIL(&f, r, &p, 200000, CRT_FRAMING_RECORD);
    crt_engine_stop_and_wait(f.engine);
    drain_records(r, &p);
    g_assert_cmpstr(p.error, ==, NULL);
    /* Bufferless completions never pause the stream; a reader more than
     * 4096 behind loses the oldest, counted as drops, so the sequence may
     * have gaps only when drops were counted. */
    for (guint i = 0; i < p.recs->len; i++) {
        if (i > 0)
            g_assert_cmpuint(rec_at(&p, i)->seq, >, rec_at(&p, i - 1)->seq);
        if (crt_hub_reader_drops(r) == 0)
            g_assert_cmpuint(rec_at(&p, i)->seq, ==, i + 1);
        g_assert_cmpstr(rec_at(&p, i)->status, ==, "ok");
        g_assert_cmpuint(rec_at(&p, i)->length, ==, 0);
    }
    g_assert_cmpuint(p.recs->len + crt_hub_reader_drops(r), ==,
                     rec_at(&p, p.recs->len - 1)->seq);
    crt_hub_reader_free(r);
    g_assert_cmpuint(hub_stats(&f).queued, ==, 0);
    records_clear(&p);
    fix_close(&f);
}

/* Entries without a buffer kept for a future reader stay bounded, as the
 * output pool bounds the others, instead of growing with every completion
 * (a write stream, or out_size 0, with nobody reading). */
static void test_bufferless_kept_bounded(void)
{
    Fix f;

    fix_open(&f, &(FixOpts){.no_buffers = TRUE, .requests = 1});
    fix_start(&f);
    TU_WAIT_FOR(engine_stats(&f).completed >= 1000);
    g_usleep(300 * 1000);
    g_test_message("completed %" G_GUINT64_FORMAT ", kept %" G_GUINT64_FORMAT,
                   engine_stats(&f).completed, hub_stats(&f).queued);
    g_assert_cmpuint(hub_stats(&f).queued, <=, 65536);
    fix_close(&f);
}

/* Under `block`, a write stream (bufferless completions) waits for its
 * slowest reader as a read stream does: a reader that reads slowly loses
 * nothing, and the hub never holds much more than the cap. */
static void test_bufferless_block_paces(void)
{
    const guint cap = 16, requests = 4;
    Fix f;
    Records p;
    CrtHubReader *r;
    guint64 most_queued = 0;

    fix_open(&f, &(FixOpts){.write_stream = TRUE,
                            .requests = requests,
                            .bufferless_cap = cap,
                            .spec = "sim:zero"});
    records_init(&p);
    r = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    /* Slow: one record at a time with pauses, while the target could
     * complete millions a second. */
    gint64 deadline = g_get_monotonic_time() + TU_EVENTUALLY_MS * 1000;

    while (p.recs->len < 300 && g_get_monotonic_time() < deadline) {
        char buf[256];
        gssize n = crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD);

        most_queued = MAX(most_queued, hub_stats(&f).queued);
        if (n > 0)
            records_feed(&p, buf, (size_t)n);
        g_usleep(n > 0 && p.recs->len % 50 == 0 ? 20000 : 200);
    }
    g_assert_cmpuint(p.recs->len, >=, 300);
    crt_engine_stop_and_wait(f.engine);
    drain_records(r, &p);
    g_assert_cmpstr(p.error, ==, NULL);
    g_test_message("records %u, most queued %" G_GUINT64_FORMAT, p.recs->len,
                   most_queued);
    g_assert_cmpuint(crt_hub_reader_drops(r), ==, 0);
    g_assert_cmpuint(hub_stats(&f).dropped, ==, 0);
    for (guint i = 0; i < p.recs->len; i++)
        g_assert_cmpuint(rec_at(&p, i)->seq, ==, i + 1);
    g_assert_cmpuint(most_queued, <=, cap + requests);
    crt_hub_reader_free(r);
    records_clear(&p);
    fix_close(&f);
}

/* With nobody reading, a write stream under `block` does not pause (nobody
 * would ever let it go on): the newest `cap` completions are kept for the
 * next reader, the older ones are counted as drops. */
static void test_bufferless_no_reader_flows(void)
{
    const guint cap = 16;
    Fix f;

    fix_open(&f,
             &(FixOpts){.write_stream = TRUE, .bufferless_cap = cap, .spec = "sim:zero"});
    fix_start(&f);
    TU_WAIT_FOR(engine_stats(&f).completed >= 1000);
    g_assert_cmpuint(hub_stats(&f).queued, <=, cap);
    g_assert_cmpuint(hub_stats(&f).dropped, >=, 1000 - cap);
    fix_close(&f);
}

/* A reader that goes away lets a paused write stream go on. */
static void test_bufferless_reader_leaves(void)
{
    const guint cap = 8;
    Fix f;
    CrtHubReader *r;
    guint64 before;

    fix_open(&f,
             &(FixOpts){.write_stream = TRUE, .bufferless_cap = cap, .spec = "sim:zero"});
    r = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    TU_WAIT_FOR(hub_stats(&f).queued >= cap);
    g_usleep(100 * 1000);
    before = engine_stats(&f).completed;
    g_usleep(100 * 1000);
    g_assert_cmpuint(engine_stats(&f).completed, ==, before); /* paused */
    crt_hub_reader_free(r);
    TU_WAIT_FOR(engine_stats(&f).completed >= before + 1000);
    fix_close(&f);
}

/* The end of a stream the target reported (sim limit: -ENODATA) is an entry
 * too, named in `records`. */
static void test_error_end_of_data(void)
{
    Fix f;
    Records p;
    CrtHubReader *r;

    fix_open(&f, &(FixOpts){.spec = "sim:counter limit=20", .requests = 1});
    records_init(&p);
    r = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    READ_RECORDS_UNTIL(&f, r, &p, 21, CRT_FRAMING_STREAM);
    ASSERT_RECORDS(&p, 1);
    g_assert_cmpstr(rec_at(&p, 20)->status, ==, "ENODATA");
    g_assert_cmpuint(rec_at(&p, 20)->length, ==, 0);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    records_clear(&p);
    fix_close(&f);
}

/* ---- main ------------------------------------------------------------------ */

static const TuCase cases[] = {
    {"/hub/end-of-stream", test_end_of_stream},
    {"/hub/close", test_close},
    {"/hub/errors/completion", test_error_completions},
    {"/hub/errors/end-of-data", test_error_end_of_data},
    {"/hub/end-of-stream/before-the-next", test_end_of_stream_before_next},
    {"/hub/errors/bufferless-entries", test_bufferless_entries},
    {"/hub/errors/bufferless-kept-bounded", test_bufferless_kept_bounded},
    {"/hub/overflow/bufferless-block-paces", test_bufferless_block_paces},
    {"/hub/overflow/bufferless-no-reader-flows", test_bufferless_no_reader_flows},
    {"/hub/overflow/bufferless-reader-leaves", test_bufferless_reader_leaves},
    {"/hub/line-events", test_line_events},
};

int main(int argc, char **argv)
{
    return tu_run_isolated(&argc, &argv, cases, G_N_ELEMENTS(cases), TU_CASE_TIMEOUT_S);
}
