/* crtfs tests - the hub's copy path: buffers shorter than CRT_HUB_COPY_MAX
 * are copied when they arrive and go back to the engine at once, up to the
 * hub's copy budget (crt_hub_set_copy); beyond it entries hold their
 * buffers again and the pool bounds the stream as before.
 *
 * The hub is fed by a real engine streaming `sim:counter` (hub-fixture.h).
 * Each case runs in a child process with a time limit.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <crtfs/crtfs.h>

#include "hub-fixture.h"
#include "testutil.h"

/* Room for a few dozen copied 64-byte entries, whatever an entry's own
 * size: small enough to fill in a moment, large enough to see. */
#define SMALL_BUDGET 8192

static void open_copying(Fix *f, const FixOpts *o, size_t budget)
{
    fix_open(f, o);
    crt_hub_set_copy(f->hub, budget);
}

/* With copies the pool does not bound what waits: a reader that does not
 * read holds more than out_count entries; under `block` the stream pauses
 * once the budget is spent and the pool is out, and reading gets every
 * record in order, none dropped. */
static void test_copy_block(void)
{
    Fix f;
    Records p;
    CrtHubReader *r;
    guint64 queued;

    open_copying(&f, &(FixOpts){.out_count = 8, .overflow = CRT_OVERFLOW_BLOCK},
                 SMALL_BUDGET);
    records_init(&p);
    r = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    assert_paused(&f);
    queued = hub_stats(&f).queued;
    g_test_message("queued while paused: %" G_GUINT64_FORMAT, queued);
    g_assert_cmpuint(queued, >, 8 + 8); /* copies, then the pool */
    g_assert_cmpuint(queued, <, 8 + SMALL_BUDGET / ENTRY_SIZE); /* bounded */
    READ_RECORDS_UNTIL(&f, r, &p, 5000, CRT_FRAMING_STREAM);
    assert_paused(&f); /* stopped reading: it pauses again */
    crt_engine_stop_and_wait(f.engine);
    drain_records(r, &p);
    ASSERT_RECORDS(&p, 1);
    g_assert_cmpuint(hub_stats(&f).dropped, ==, 0);
    crt_hub_reader_free(r);
    records_clear(&p);
    fix_close(&f);
}

/* One stream read carries more than the pool holds. */
static void test_copy_read_not_bound_by_pool(void)
{
    Fix f;
    CrtHubReader *r;
    Counters c = {0};
    char *buf = g_malloc(READ_SIZE);
    gssize n;

    open_copying(&f, &(FixOpts){.out_count = 8}, CRT_HUB_COPY_BYTES);
    r = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    assert_paused(&f);
    n = crt_hub_read(r, buf, READ_SIZE, CRT_FRAMING_STREAM);
    g_test_message("one read: %zd bytes", n);
    g_assert_cmpint(n, >, 8 * ENTRY_SIZE * 4);
    counters_feed(&c, buf, (size_t)n);
    g_assert_cmpstr(c.error, ==, NULL);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    g_free(buf);
    fix_close(&f);
}

/* drop-oldest: a stalled reader's oldest copies go (counted, gaps in SEQ),
 * the stream never pauses, and a reader that keeps up loses nothing. */
static void test_copy_drop_oldest(void)
{
    Fix f;
    Records active, stalled;
    CrtHubReader *ra, *rs;
    guint64 drops;

    /* A paced stream and a budget of 0.65 s of it: the active reader (it
     * reads everything there is at each read) keeps up on a loaded machine,
     * in ASan and TSan builds too, the stalled one falls behind within the
     * first second. */
    open_copying(&f,
                 &(FixOpts){.spec = "sim:counter rate=10000",
                            .out_count = 8,
                            .overflow = CRT_OVERFLOW_DROP_OLDEST},
                 CRT_HUB_COPY_BYTES);
    records_init(&active);
    records_init(&stalled);
    ra = crt_hub_reader_new(f.hub, TRUE);
    rs = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    READ_RECORDS_UNTIL(&f, ra, &active, 15000, CRT_FRAMING_STREAM);
    crt_engine_stop_and_wait(f.engine);
    drain_records(ra, &active);
    drain_records(rs, &stalled);
    ASSERT_RECORDS(&active, 1);
    drops = crt_hub_reader_drops(rs);
    g_test_message("stalled reader: %u records, drops %" G_GUINT64_FORMAT,
                   stalled.recs->len, drops);
    g_assert_cmpuint(drops, >, 0);
    g_assert_cmpuint(crt_hub_reader_drops(ra), ==, 0);
    /* Whole records in order; every missing one counted. */
    for (guint i = 1; i < stalled.recs->len; i++)
        g_assert_cmpuint(rec_at(&stalled, i)->seq, >, rec_at(&stalled, i - 1)->seq);
    g_assert_cmpuint(records_last_seq(&stalled) - stalled.recs->len, ==, drops);
    g_assert_cmpuint(records_last_seq(&stalled), ==, records_last_seq(&active));
    crt_hub_reader_free(ra);
    crt_hub_reader_free(rs);
    records_clear(&active);
    records_clear(&stalled);
    fix_close(&f);
}

/* The threshold: a buffer one counter short of CRT_HUB_COPY_MAX is copied
 * (more than out_count wait), one of CRT_HUB_COPY_MAX is held (out_count
 * wait, as without copies). */
static void check_threshold(size_t out_size, gboolean copied)
{
    Fix f;
    CrtHubReader *r;
    guint64 queued;

    open_copying(&f, &(FixOpts){.out_count = 4, .out_size = out_size}, 256 * 1024);
    r = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    assert_paused(&f);
    queued = hub_stats(&f).queued;
    g_test_message("out_size %zu: %" G_GUINT64_FORMAT " queued", out_size, queued);
    if (copied)
        g_assert_cmpuint(queued, >, 4);
    else
        g_assert_cmpuint(queued, ==, 4);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    fix_close(&f);
}

static void test_copy_threshold(void)
{
    check_threshold(CRT_HUB_COPY_MAX - 8, TRUE);
    check_threshold(CRT_HUB_COPY_MAX, FALSE);
}

/* Re-reads inside the window across copied entries: the same bytes again,
 * the position stays; before the window -ESPIPE. */
static void test_copy_replay(void)
{
    Fix f;
    CrtHubReader *r;
    char first[1000], again[1000], next[64];
    guint64 start, end;
    Counters c = {0};
    gssize n;

    open_copying(&f, &(FixOpts){.out_count = 8}, CRT_HUB_COPY_BYTES);
    r = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    assert_paused(&f);
    g_assert_cmpint(crt_hub_read(r, first, sizeof first, CRT_FRAMING_STREAM), ==,
                    sizeof first);
    crt_hub_reader_window(r, CRT_FRAMING_STREAM, &start, &end);
    g_assert_cmpuint(start, ==, 0);
    g_assert_cmpuint(end, ==, sizeof first);
    {
        struct iovec iov[CRT_HUB_MAX_IOV];
        int niov;
        size_t done = 0;

        n = crt_hub_read_at(r, 300, 700, CRT_FRAMING_STREAM, iov, &niov);
        g_assert_cmpint(n, ==, 700);
        for (int i = 0; i < niov; i++) {
            memcpy(again + done, iov[i].iov_base, iov[i].iov_len);
            done += iov[i].iov_len;
        }
        g_assert_cmpmem(again, 700, first + 300, 700);
        crt_hub_read_done(r);
        g_assert_cmpint(crt_hub_read_at(r, 2000, 10, CRT_FRAMING_STREAM, iov, &niov), ==,
                        -ESPIPE);
    }
    /* The stream goes on where the first read ended. */
    g_assert_cmpint(crt_hub_read(r, next, sizeof next, CRT_FRAMING_STREAM), ==,
                    sizeof next);
    counters_feed(&c, first, sizeof first);
    counters_feed(&c, next, sizeof next);
    g_assert_cmpstr(c.error, ==, NULL);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    fix_close(&f);
}

/* Line events (bufferless) pushed while copied entries stream keep their
 * place: SEQ runs without a gap across both, each event once. */
static void test_copy_mixed_events(void)
{
    Fix f;
    Records p;
    CrtHubReader *r;
    guint events = 0;

    open_copying(&f, &(FixOpts){.out_count = 8}, CRT_HUB_COPY_BYTES);
    records_init(&p);
    r = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    for (int i = 0; i < 50; i++) {
        char buf[4096];
        gssize n;

        crt_hub_push_event(f.hub, "line:cts=1", g_get_real_time() * 1000);
        n = read_wait(&f, r, buf, sizeof buf, CRT_FRAMING_STREAM, 5000);
        g_assert_cmpint(n, >, 0);
        records_feed(&p, buf, (size_t)n);
    }
    crt_engine_stop_and_wait(f.engine);
    drain_records(r, &p);
    g_assert_cmpstr(p.error, ==, NULL);
    for (guint i = 0; i < p.recs->len; i++) {
        if (i > 0)
            g_assert_cmpuint(rec_at(&p, i)->seq, ==, rec_at(&p, i - 1)->seq + 1);
        events += strcmp(rec_at(&p, i)->status, "line:cts=1") == 0;
    }
    g_assert_cmpuint(events, ==, 50);
    g_assert_cmpuint(hub_stats(&f).dropped, ==, 0);
    crt_hub_reader_free(r);
    records_clear(&p);
    fix_close(&f);
}

/* Kept while nobody reads: the copies too, bounded by the budget, and the
 * first reader gets them from the beginning. */
static void test_copy_kept(void)
{
    Fix f;
    Records p;
    CrtHubReader *r;

    open_copying(&f, &(FixOpts){.out_count = 8}, SMALL_BUDGET);
    records_init(&p);
    fix_start(&f);
    assert_paused(&f);
    g_assert_cmpuint(hub_stats(&f).queued, >, 8 + 8);
    r = crt_hub_reader_new(f.hub, TRUE);
    READ_RECORDS_UNTIL(&f, r, &p, 1000, CRT_FRAMING_STREAM);
    crt_engine_stop_and_wait(f.engine);
    drain_records(r, &p);
    ASSERT_RECORDS(&p, 1);
    crt_hub_reader_free(r);
    records_clear(&p);
    fix_close(&f);
}

static const TuCase cases[] = {
    {"/hub/copy/block", test_copy_block},
    {"/hub/copy/read-not-bound-by-pool", test_copy_read_not_bound_by_pool},
    {"/hub/copy/drop-oldest", test_copy_drop_oldest},
    {"/hub/copy/threshold", test_copy_threshold},
    {"/hub/copy/replay", test_copy_replay},
    {"/hub/copy/mixed-events", test_copy_mixed_events},
    {"/hub/copy/kept", test_copy_kept},
};

int main(int argc, char **argv)
{
    return tu_run_isolated(&argc, &argv, cases, G_N_ELEMENTS(cases), TU_CASE_TIMEOUT_S);
}
