/* crtfs tests - the broadcast hub behind `data` and `records`: every reader
 * gets every entry in order, entries wait for the first reader, readiness
 * and notify, and buffers going back to their engine.
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

/* ---- one and many readers -------------------------------------------------- */

/* One reader of `records` in record framing gets every entry, one per read,
 * in order, with a well-formed header. */
static void test_one_reader_records(void)
{
    Fix f;
    Records p;
    CrtHubReader *r;
    char *buf = g_malloc(READ_SIZE);

    fix_open(&f, &(FixOpts){0});
    records_init(&p);
    r = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    while (records_last_seq(&p) < 3000 && !p.error) {
        gssize n = read_wait(&f, r, buf, READ_SIZE, CRT_FRAMING_RECORD, TU_EVENTUALLY_MS);

        g_assert_cmpint(n, >, ENTRY_SIZE);
        /* One read, one whole record. */
        g_assert_cmpuint(records_feed(&p, buf, (size_t)n), ==, 1);
        g_assert_cmpuint(p.pending->len, ==, 0);
    }
    ASSERT_RECORDS(&p, 1);
    g_assert_cmpuint(rec_at(&p, 0)->first, ==, 1);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    assert_pool_full(&f);
    g_assert_cmpuint(hub_stats(&f).readers, ==, 0);
    g_assert_cmpuint(hub_stats(&f).dropped, ==, 0);
    records_clear(&p);
    g_free(buf);
    fix_close(&f);
}

/* One reader of `data` in stream framing gets the counters without a gap
 * and without a header. */
static void test_one_reader_data(void)
{
    Fix f;
    Counters c = {0};
    CrtHubReader *r;
    char *buf = g_malloc(1000); /* not a multiple of 8 on purpose */

    fix_open(&f, &(FixOpts){0});
    r = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    while (c.next < 20000 && !c.error) {
        gssize n = read_wait(&f, r, buf, 1000, CRT_FRAMING_STREAM, TU_EVENTUALLY_MS);

        g_assert_cmpint(n, >, 0);
        counters_feed(&c, buf, (size_t)n);
    }
    g_assert_cmpstr(c.error, ==, NULL);
    crt_engine_stop_and_wait(f.engine);
    g_assert_cmpuint(hub_stats(&f).delivered, >=, 20000 / 8 - 1);
    crt_hub_reader_free(r);
    g_free(buf);
    fix_close(&f);
}

typedef struct {
    Fix *f;
    CrtHubReader *reader;
    guint64 want;
    Records recs;
    char *problem;
    GThread *thread;
} ReaderJob;

static gpointer reader_job_run(gpointer data)
{
    ReaderJob *j = data;

    j->problem =
        read_records_until(j->f, j->reader, &j->recs, j->want, CRT_FRAMING_STREAM);
    return NULL;
}

/* `n` readers open before the stream starts, each on its own thread; every
 * one gets the complete stream. */
static void run_readers(guint n, guint64 want)
{
    Fix f;
    ReaderJob *jobs = g_new0(ReaderJob, n);

    fix_open(&f, &(FixOpts){0});
    for (guint i = 0; i < n; i++) {
        jobs[i].f = &f;
        jobs[i].want = want;
        jobs[i].reader = crt_hub_reader_new(f.hub, TRUE);
        records_init(&jobs[i].recs);
    }
    g_assert_cmpuint(hub_stats(&f).readers, ==, n);
    fix_start(&f);
    for (guint i = 0; i < n; i++)
        jobs[i].thread = g_thread_new("reader", reader_job_run, &jobs[i]);
    for (guint i = 0; i < n; i++) {
        g_thread_join(jobs[i].thread);
        g_test_message("reader %u: %u records", i, jobs[i].recs.recs->len);
        g_assert_cmpstr(jobs[i].problem, ==, NULL);
        ASSERT_RECORDS(&jobs[i].recs, 1);
        g_assert_cmpuint(records_last_seq(&jobs[i].recs), >=, want);
    }
    crt_engine_stop_and_wait(f.engine);
    g_assert_cmpuint(hub_stats(&f).dropped, ==, 0);
    for (guint i = 0; i < n; i++) {
        crt_hub_reader_free(jobs[i].reader);
        records_clear(&jobs[i].recs);
    }
    assert_pool_full(&f);
    g_free(jobs);
    fix_close(&f);
}

static void test_two_readers(void)
{
    run_readers(2, 3000);
}

static void test_ten_readers(void)
{
    run_readers(10, 1000);
}

/* A reader that opens while another reads starts with the next entry and
 * then misses nothing. */
static void test_late_reader(void)
{
    Fix f;
    Records early;
    CrtHubReader *r1;
    ReaderJob late = {0};
    guint64 first;

    fix_open(&f, &(FixOpts){0});
    records_init(&early);
    records_init(&late.recs);
    r1 = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    READ_RECORDS_UNTIL(&f, r1, &early, 100, CRT_FRAMING_STREAM);
    /* From now on both set the pace (block): the late one reads on a
     * thread. */
    late.f = &f;
    late.reader = crt_hub_reader_new(f.hub, TRUE);
    late.want = 1000;
    late.thread = g_thread_new("late", reader_job_run, &late);
    READ_RECORDS_UNTIL(&f, r1, &early, 1000, CRT_FRAMING_STREAM);
    g_thread_join(late.thread);
    g_assert_cmpstr(late.problem, ==, NULL);
    crt_engine_stop_and_wait(f.engine);
    drain_records(r1, &early);
    drain_records(late.reader, &late.recs);
    ASSERT_RECORDS(&early, 1);
    g_assert_cmpuint(late.recs.recs->len, >, 0);
    first = rec_at(&late.recs, 0)->seq;
    g_assert_cmpuint(first, >, 100);
    ASSERT_RECORDS(&late.recs, first);
    /* Both end at the newest entry. */
    g_assert_cmpuint(records_last_seq(&late.recs), ==, records_last_seq(&early));
    g_assert_cmpuint(records_last_seq(&early), ==, hub_stats(&f).last_seq);
    crt_hub_reader_free(r1);
    crt_hub_reader_free(late.reader);
    records_clear(&early);
    records_clear(&late.recs);
    fix_close(&f);
}

/* Entries completed while nobody reads are kept, up to the output pool (the
 * stream then pauses), and the next reader to open gets them all, first to
 * last, then the stream goes on. */
static void test_kept_without_reader(void)
{
    Fix f;
    Records p;
    CrtHubReader *r;

    fix_open(&f, &(FixOpts){.out_count = 8});
    records_init(&p);
    fix_start(&f);
    assert_paused(&f);
    g_assert_cmpuint(engine_stats(&f).completed, ==, 8);
    g_assert_cmpuint(hub_stats(&f).queued, ==, 8);
    g_assert_cmpuint(hub_stats(&f).readers, ==, 0);
    r = crt_hub_reader_new(f.hub, TRUE);
    READ_RECORDS_UNTIL(&f, r, &p, 500, CRT_FRAMING_RECORD);
    ASSERT_RECORDS(&p, 1);
    g_assert_cmpuint(rec_at(&p, 0)->first, ==, 1);
    g_assert_cmpuint(hub_stats(&f).dropped, ==, 0);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    records_clear(&p);
    fix_close(&f);
}

/* What a finished stream left behind is read to the end, then end of file;
 * with nothing left, a reader of a stopped stream waits for the next one. */
static void test_kept_after_end(void)
{
    Fix f;
    Records p;
    CrtHubReader *r, *empty;
    char buf[64];

    fix_open(&f, &(FixOpts){.out_count = 8});
    records_init(&p);
    fix_start(&f);
    assert_paused(&f);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_end_stream(f.hub);
    r = crt_hub_reader_new(f.hub, TRUE);
    g_assert_cmpint(drain_records(r, &p), ==, 0);
    ASSERT_RECORDS(&p, 1);
    g_assert_cmpuint(p.recs->len, ==, 8);
    /* End of file stays until the next stream. */
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 0);
    crt_hub_reader_free(r);
    empty = crt_hub_reader_new(f.hub, TRUE);
    g_assert_false(crt_hub_readable(empty));
    g_assert_cmpint(crt_hub_read(empty, buf, sizeof buf, CRT_FRAMING_RECORD), ==,
                    -EAGAIN);
    crt_hub_reader_free(empty);
    records_clear(&p);
    fix_close(&f);
}

/* ---- readiness, notify, buffers -------------------------------------------- */

static CrtOutput *take_captured(Fix *f, gboolean with_buffer)
{
    CrtOutput *found = NULL;

    g_mutex_lock(&f->lock);
    for (GList *l = f->captured.head; l && !found; l = l->next) {
        CrtOutput *o = l->data;

        if ((o->buffer != NULL) == with_buffer) {
            found = o;
            g_queue_delete_link(&f->captured, l);
        }
    }
    g_mutex_unlock(&f->lock);
    g_assert_nonnull(found);
    return found;
}

static guint captured_count(Fix *f)
{
    guint n;

    g_mutex_lock(&f->lock);
    n = f->captured.length;
    g_mutex_unlock(&f->lock);
    return n;
}

static void push_captured(Fix *f, CrtOutput *out)
{
    CrtDisposition d = crt_hub_push(f->hub, f->engine, out);

    g_assert_cmpint(d, ==,
                    out->buffer ? CRT_DISPOSITION_CLIENT_CONTINUE
                                : CRT_DISPOSITION_ENGINE_CONTINUE);
    g_free(out);
}

/* ASSERT_READY's `result` for "some bytes". */
#define SOME_BYTES 1

#define ASSERT_READY(r, ready, result)                                                   \
    do {                                                                                 \
        char ready_buf_[256];                                                            \
        g_assert_cmpint(crt_hub_readable(r), ==, (ready));                               \
        if ((result) == SOME_BYTES)                                                      \
            g_assert_cmpint(                                                             \
                crt_hub_read((r), ready_buf_, sizeof ready_buf_, CRT_FRAMING_RECORD), >, \
                0);                                                                      \
        else                                                                             \
            g_assert_cmpint(                                                             \
                crt_hub_read((r), ready_buf_, sizeof ready_buf_, CRT_FRAMING_RECORD),    \
                ==, (result));                                                           \
    } while (0)

/* crt_hub_readable says TRUE exactly when crt_hub_read would not answer
 * -EAGAIN, in every state; the notify callback fires for each change.  The
 * entries are pushed by hand, from a capturing engine. */
static void test_readable(void)
{
    Fix f;
    CrtHubReader *rd, *rr;
    CrtOutput *ok1, *ok2, *err;
    guint seen;

    fix_open(&f, &(FixOpts){.spec = "sim:counter fail=1 errno=EPROTO",
                            .requests = 1,
                            .out_count = 4,
                            .capture = TRUE});
    fix_start(&f);
    TU_WAIT_FOR(captured_count(&f) == 5);
    crt_engine_stop_and_wait(f.engine);
    err = take_captured(&f, FALSE);
    ok1 = take_captured(&f, TRUE);
    ok2 = take_captured(&f, TRUE);
    g_assert_cmpint(err->status, ==, -EPROTO);

    rd = crt_hub_reader_new(f.hub, FALSE);
    rr = crt_hub_reader_new(f.hub, TRUE);
    ASSERT_READY(rd, FALSE, -EAGAIN);
    ASSERT_READY(rr, FALSE, -EAGAIN);

    /* An error entry: records show it, data has nothing to read. */
    seen = tu_counter_get(&f.notified);
    push_captured(&f, err);
    g_assert_cmpuint(tu_counter_get(&f.notified), >, seen);
    ASSERT_READY(rd, FALSE, -EAGAIN);
    ASSERT_READY(rr, TRUE, SOME_BYTES);
    ASSERT_READY(rr, FALSE, -EAGAIN);

    seen = tu_counter_get(&f.notified);
    push_captured(&f, ok1);
    g_assert_cmpuint(tu_counter_get(&f.notified), >, seen);
    ASSERT_READY(rd, TRUE, SOME_BYTES);
    ASSERT_READY(rd, FALSE, -EAGAIN);
    ASSERT_READY(rr, TRUE, SOME_BYTES);
    ASSERT_READY(rr, FALSE, -EAGAIN);

    seen = tu_counter_get(&f.notified);
    crt_hub_end_stream(f.hub);
    g_assert_cmpuint(tu_counter_get(&f.notified), >, seen);
    ASSERT_READY(rd, TRUE, 0);
    ASSERT_READY(rd, TRUE, 0); /* until the next stream */
    ASSERT_READY(rr, TRUE, 0);
    ASSERT_READY(rr, TRUE, 0);

    push_captured(&f, ok2);
    ASSERT_READY(rd, TRUE, SOME_BYTES);
    ASSERT_READY(rd, FALSE, -EAGAIN);

    seen = tu_counter_get(&f.notified);
    crt_hub_close(f.hub);
    g_assert_cmpuint(tu_counter_get(&f.notified), >, seen);
    ASSERT_READY(rd, TRUE, 0);
    ASSERT_READY(rd, TRUE, 0);
    /* rr still has ok2 to read, then end of file for good. */
    ASSERT_READY(rr, TRUE, SOME_BYTES);
    ASSERT_READY(rr, TRUE, 0);
    ASSERT_READY(rr, TRUE, 0);
    crt_hub_reader_free(rd);
    crt_hub_reader_free(rr);
    fix_close(&f);
}

/* Buffers go home when the last reader that needs them closes, whether it
 * read nothing, part of an entry or everything; kept entries go home when
 * the hub is freed. */
static void test_buffers_return(void)
{
    Fix f;
    CrtHubReader *none, *part, *all;
    char buf[4096];

    fix_open(&f, &(FixOpts){.out_count = 8});
    none = crt_hub_reader_new(f.hub, FALSE);
    part = crt_hub_reader_new(f.hub, TRUE);
    all = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    assert_paused(&f);
    g_assert_cmpint(crt_hub_read(part, buf, 7, CRT_FRAMING_RECORD), ==, 7);
    g_assert_cmpint(crt_hub_read(all, buf, sizeof buf, CRT_FRAMING_STREAM), ==,
                    8 * ENTRY_SIZE);
    crt_engine_stop_and_wait(f.engine);
    g_assert_cmpuint(engine_stats(&f).out_pool_free, ==, 0);
    crt_hub_reader_free(none);
    g_assert_cmpuint(engine_stats(&f).out_pool_free, ==, 0);
    crt_hub_reader_free(part);
    assert_pool_full(&f);
    g_assert_cmpuint(hub_stats(&f).queued, ==, 0);
    crt_hub_reader_free(all);
    g_assert_cmpuint(hub_stats(&f).readers, ==, 0);
    fix_close(&f);
}

/* Entries nobody read are kept until the hub goes, then go home. */
static void test_buffers_return_kept(void)
{
    Fix f;

    fix_open(&f, &(FixOpts){.out_count = 8});
    fix_start(&f);
    assert_paused(&f);
    crt_engine_stop_and_wait(f.engine);
    g_assert_cmpuint(hub_stats(&f).queued, ==, 8);
    g_assert_cmpuint(engine_stats(&f).out_pool_free, ==, 0);
    fix_close(&f); /* frees the hub, then checks the pool */
}

/* crt_hub_release_engine: the entries of an engine about to be freed go
 * back to it, also from under a reader, which then has nothing to read. */
static void test_release_engine(void)
{
    Fix f;
    CrtHubReader *r;
    char buf[256];

    fix_open(&f, &(FixOpts){.out_count = 8});
    fix_start(&f);
    assert_paused(&f);
    crt_engine_stop_and_wait(f.engine);
    r = crt_hub_reader_new(f.hub, TRUE);
    g_assert_cmpint(crt_hub_read(r, buf, 9, CRT_FRAMING_RECORD), ==, 9);
    crt_hub_release_engine(f.hub, f.engine);
    assert_pool_full(&f);
    g_assert_cmpuint(hub_stats(&f).queued, ==, 0);
    g_assert_false(crt_hub_readable(r));
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, -EAGAIN);
    crt_hub_reader_free(r);
    fix_close(&f);
}

/* ---- main ------------------------------------------------------------------ */

static const TuCase cases[] = {
    {"/hub/one-reader/records", test_one_reader_records},
    {"/hub/one-reader/data", test_one_reader_data},
    {"/hub/readers/two", test_two_readers},
    {"/hub/readers/ten", test_ten_readers},
    {"/hub/readers/late", test_late_reader},
    {"/hub/kept-without-reader", test_kept_without_reader},
    {"/hub/kept-after-end", test_kept_after_end},
    {"/hub/readable", test_readable},
    {"/hub/buffers-return/readers", test_buffers_return},
    {"/hub/buffers-return/kept", test_buffers_return_kept},
    {"/hub/release-engine", test_release_engine},
};

int main(int argc, char **argv)
{
    return tu_run_isolated(&argc, &argv, cases, G_N_ELEMENTS(cases), TU_CASE_TIMEOUT_S);
}
