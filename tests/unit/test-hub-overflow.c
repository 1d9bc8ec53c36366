/* crtfs tests - the hub's two overflow policies: `block` pauses the stream
 * for the slowest reader, `drop-oldest` never pauses and counts what a
 * stalled reader lost.
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

/* ---- overflow -------------------------------------------------------------- */

/* `block`: a reader that does not read pauses the stream once the pool is
 * out; reading resumes it and nothing is lost. */
static void test_overflow_block(void)
{
    Fix f;
    Records p;
    CrtHubReader *r;
    guint64 completed;

    fix_open(&f, &(FixOpts){.out_count = 8, .overflow = CRT_OVERFLOW_BLOCK});
    records_init(&p);
    r = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    assert_paused(&f);
    completed = engine_stats(&f).completed;
    g_assert_cmpuint(completed, ==, 8);
    g_assert_cmpuint(hub_stats(&f).queued, ==, 8);
    READ_RECORDS_UNTIL(&f, r, &p, 2000, CRT_FRAMING_STREAM);
    g_assert_cmpuint(engine_stats(&f).completed, >=, 2000);
    /* Stop reading again: it pauses again. */
    assert_paused(&f);
    crt_engine_stop_and_wait(f.engine);
    drain_records(r, &p);
    ASSERT_RECORDS(&p, 1);
    g_assert_cmpuint(records_last_seq(&p), ==, hub_stats(&f).last_seq);
    g_assert_cmpuint(hub_stats(&f).dropped, ==, 0);
    g_assert_cmpuint(crt_hub_reader_drops(r), ==, 0);
    crt_hub_reader_free(r);
    records_clear(&p);
    fix_close(&f);
}

/* `block`: the stream paused for the reader, then stopped; the reader
 * catches up while it is stopped (the buffers go home with no request at
 * the target), and the next start streams again. */
static void test_overflow_block_stop_read_start(void)
{
    Fix f;
    Records p, p2;
    CrtHubReader *r;
    guint64 second;

    fix_open(&f, &(FixOpts){.out_count = 8});
    records_init(&p);
    records_init(&p2);
    r = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    assert_paused(&f);
    crt_engine_stop_and_wait(f.engine);
    g_assert_cmpint(drain_records(r, &p), ==, -EAGAIN);
    ASSERT_RECORDS(&p, 1);
    g_assert_cmpuint(records_last_seq(&p), ==, 8);
    assert_pool_full(&f);
    fix_start(&f);
    READ_RECORDS_UNTIL(&f, r, &p2, 108, CRT_FRAMING_STREAM);
    crt_engine_stop_and_wait(f.engine);
    drain_records(r, &p2);
    second = rec_at(&p2, 0)->seq;
    /* The hub numbers entries: the stop's cancelled requests leave no gap. */
    g_assert_cmpuint(second, ==, records_last_seq(&p) + 1);
    ASSERT_RECORDS(&p2, second);
    g_assert_cmpuint(rec_at(&p2, 0)->first, ==, 8 * 8 + 1);
    crt_hub_reader_free(r);
    records_clear(&p);
    records_clear(&p2);
    fix_close(&f);
}

/* `block` with two readers: the slowest one sets the pace, and closing it
 * lets the other go on. */
static void test_overflow_block_slowest(void)
{
    Fix f;
    Records fast;
    CrtHubReader *rf, *rs;

    fix_open(&f, &(FixOpts){.out_count = 8});
    records_init(&fast);
    rf = crt_hub_reader_new(f.hub, TRUE);
    rs = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    READ_RECORDS_UNTIL(&f, rf, &fast, 8, CRT_FRAMING_STREAM);
    assert_paused(&f);
    /* The fast reader has all there is; the slow one holds the pool. */
    g_assert_cmpint(crt_hub_read(rf, (char[64]){0}, 64, CRT_FRAMING_STREAM), ==, -EAGAIN);
    g_assert_cmpuint(engine_stats(&f).completed, ==, 8);
    crt_hub_reader_free(rs);
    READ_RECORDS_UNTIL(&f, rf, &fast, 1000, CRT_FRAMING_STREAM);
    crt_engine_stop_and_wait(f.engine);
    drain_records(rf, &fast);
    ASSERT_RECORDS(&fast, 1);
    crt_hub_reader_free(rf);
    records_clear(&fast);
    fix_close(&f);
}

/* Sequence numbers missing from a reader's records, up to the newest. */
static guint64 records_missing(const Records *p, guint64 newest)
{
    return newest - p->recs->len;
}

/* Strictly increasing sequence numbers, whatever the gaps. */
static void assert_increasing(const Records *p)
{
    g_assert_cmpstr(p->error, ==, NULL);
    g_assert_cmpuint(p->pending->len, ==, 0);
    for (guint i = 1; i < p->recs->len; i++)
        g_assert_cmpuint(rec_at(p, i)->seq, >, rec_at(p, i - 1)->seq);
}

/* `drop-oldest`: a stalled reader and an active one.  The active reader
 * loses nothing; the stalled one skips its oldest entries, and each skip is
 * counted and shows as a gap in its records.  The stream never pauses. */
static void test_overflow_drop_oldest(void)
{
    Fix f;
    Records active, stalled;
    CrtHubReader *ra, *rs;
    guint64 newest;

    /* Rate-limited, so the active reader keeps up on a slow machine: it
     * would have to fall 64 entries (256 ms) behind to lose one. */
    fix_open(&f, &(FixOpts){.spec = "sim:counter rate=250",
                            .out_count = 64,
                            .overflow = CRT_OVERFLOW_DROP_OLDEST});
    records_init(&active);
    records_init(&stalled);
    ra = crt_hub_reader_new(f.hub, TRUE);
    rs = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    READ_RECORDS_UNTIL(&f, ra, &active, 300, CRT_FRAMING_STREAM);
    g_assert_cmpuint(engine_stats(&f).slots_waiting, ==, 0);
    crt_engine_stop_and_wait(f.engine);
    drain_records(ra, &active);
    drain_records(rs, &stalled);
    newest = hub_stats(&f).last_seq;

    ASSERT_RECORDS(&active, 1);
    g_assert_cmpuint(records_last_seq(&active), ==, newest);
    g_assert_cmpuint(crt_hub_reader_drops(ra), ==, 0);

    assert_increasing(&stalled);
    g_assert_cmpuint(stalled.recs->len, >, 0);
    g_assert_cmpuint(stalled.recs->len, <=, 64);
    g_assert_cmpuint(records_last_seq(&stalled), ==, newest);
    g_assert_cmpuint(rec_at(&stalled, 0)->seq, >, 1);
    g_assert_cmpuint(crt_hub_reader_drops(rs), >, 0);
    g_assert_cmpuint(crt_hub_reader_drops(rs), ==, records_missing(&stalled, newest));
    g_assert_cmpuint(hub_stats(&f).dropped, ==, crt_hub_reader_drops(rs));

    crt_hub_reader_free(ra);
    crt_hub_reader_free(rs);
    records_clear(&active);
    records_clear(&stalled);
    fix_close(&f);
}

/* `drop-oldest` with nobody reading: the oldest kept entries go (counted
 * in the hub's stats, no reader's), the stream goes on, and the next reader
 * gets the newest ones. */
static void test_overflow_drop_oldest_kept(void)
{
    Fix f;
    Records p;
    CrtHubReader *r;
    guint64 newest, first;

    fix_open(&f, &(FixOpts){.spec = "sim:counter rate=1000",
                            .out_count = 16,
                            .overflow = CRT_OVERFLOW_DROP_OLDEST});
    records_init(&p);
    fix_start(&f);
    TU_WAIT_FOR(engine_stats(&f).completed >= 100);
    g_assert_cmpuint(engine_stats(&f).slots_waiting, ==, 0);
    g_assert_cmpuint(hub_stats(&f).dropped, >, 0);
    g_assert_cmpuint(hub_stats(&f).queued, <=, 16);
    r = crt_hub_reader_new(f.hub, TRUE);
    crt_engine_stop_and_wait(f.engine);
    drain_records(r, &p);
    newest = hub_stats(&f).last_seq;
    g_assert_cmpuint(p.recs->len, >, 0);
    first = rec_at(&p, 0)->seq;
    g_assert_cmpuint(first, >, 1);
    g_assert_cmpuint(records_last_seq(&p), ==, newest);
    assert_increasing(&p);
    /* Dropped while kept, or from under the reader before the stop. */
    g_assert_cmpuint(hub_stats(&f).dropped, ==, records_missing(&p, newest));
    crt_hub_reader_free(r);
    records_clear(&p);
    fix_close(&f);
}

/* `drop-oldest` when a failed completion (which carries no buffer) is the
 * stalled reader's oldest entry: the policy must still make room, so the
 * active reader goes on getting entries. */
static void test_overflow_drop_oldest_error_entry(void)
{
    Fix f;
    Records active, stalled;
    CrtHubReader *ra, *rs;
    char *problem;

    /* 64 buffers at 1000/s: the active reader keeps up even under a
     * sanitizer on a loaded machine. */
    fix_open(&f, &(FixOpts){.spec = "sim:counter rate=1000 fail=2 errno=EPROTO",
                            .out_count = 64,
                            .overflow = CRT_OVERFLOW_DROP_OLDEST});
    records_init(&active);
    records_init(&stalled);
    ra = crt_hub_reader_new(f.hub, TRUE);
    rs = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    problem = read_records_until(&f, ra, &active, 200, CRT_FRAMING_STREAM);
    if (problem)
        g_test_message(
            "engine: completed %" G_GUINT64_FORMAT " failed %" G_GUINT64_FORMAT
            " slots_waiting %u out_pool_free %u; hub: queued %" G_GUINT64_FORMAT
            " dropped %" G_GUINT64_FORMAT,
            engine_stats(&f).completed, engine_stats(&f).failed,
            engine_stats(&f).slots_waiting, engine_stats(&f).out_pool_free,
            hub_stats(&f).queued, hub_stats(&f).dropped);
    g_assert_cmpstr(problem, ==, NULL);
    crt_engine_stop_and_wait(f.engine);
    drain_records(ra, &active);
    drain_records(rs, &stalled);
    ASSERT_RECORDS(&active, 1);
    assert_increasing(&stalled);
    g_assert_cmpuint(crt_hub_reader_drops(rs), ==,
                     records_missing(&stalled, hub_stats(&f).last_seq));
    crt_hub_reader_free(ra);
    crt_hub_reader_free(rs);
    records_clear(&active);
    records_clear(&stalled);
    fix_close(&f);
}

/* `drop-oldest` when the stalled reader stopped in the middle of an entry:
 * what it reads stays well-formed `records` (a header, then exactly LENGTH
 * bytes), whatever it skips. */
static void test_overflow_drop_oldest_partial_read(void)
{
    Fix f;
    Records active, stalled;
    CrtHubReader *ra, *rs;
    char head[10];

    /* 64 buffers at 250/s: the active reader has 256 ms to come back, and
     * keeps up under a sanitizer on a loaded machine (16 at 1000/s did
     * not). */
    fix_open(&f, &(FixOpts){.spec = "sim:counter rate=250",
                            .out_count = 64,
                            .overflow = CRT_OVERFLOW_DROP_OLDEST});
    records_init(&active);
    records_init(&stalled);
    ra = crt_hub_reader_new(f.hub, TRUE);
    rs = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    /* The stalled reader takes the first 10 bytes of the first header. */
    g_assert_cmpint(
        read_wait(&f, rs, head, sizeof head, CRT_FRAMING_RECORD, TU_EVENTUALLY_MS), ==,
        sizeof head);
    records_feed(&stalled, head, sizeof head);
    READ_RECORDS_UNTIL(&f, ra, &active, 200, CRT_FRAMING_STREAM);
    crt_engine_stop_and_wait(f.engine);
    drain_records(ra, &active);
    drain_records(rs, &stalled);
    ASSERT_RECORDS(&active, 1);
    g_test_message("stalled reader: drops %" G_GUINT64_FORMAT, crt_hub_reader_drops(rs));
    g_assert_cmpuint(crt_hub_reader_drops(rs), >, 0);
    assert_increasing(&stalled);
    g_assert_cmpuint(rec_at(&stalled, 0)->seq, ==, 1);
    crt_hub_reader_free(ra);
    crt_hub_reader_free(rs);
    records_clear(&active);
    records_clear(&stalled);
    fix_close(&f);
}

/* ---- main ------------------------------------------------------------------ */

static const TuCase cases[] = {
    {"/hub/overflow/block", test_overflow_block},
    {"/hub/overflow/block-slowest", test_overflow_block_slowest},
    {"/hub/overflow/block-stop-read-start", test_overflow_block_stop_read_start},
    {"/hub/overflow/drop-oldest", test_overflow_drop_oldest},
    {"/hub/overflow/drop-oldest-kept", test_overflow_drop_oldest_kept},
    {"/hub/overflow/drop-oldest-error-entry", test_overflow_drop_oldest_error_entry},
    {"/hub/overflow/drop-oldest-partial-read", test_overflow_drop_oldest_partial_read},
};

int main(int argc, char **argv)
{
    return tu_run_isolated(&argc, &argv, cases, G_N_ELEMENTS(cases), TU_CASE_TIMEOUT_S);
}
