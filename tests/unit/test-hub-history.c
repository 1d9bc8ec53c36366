/* crtfs tests - the hub's history and replays (hub-history.h): what the
 * history keeps (by count, by age, within its byte budget), and what a
 * reader opened with a replay gets: exactly the entries it asked for that
 * are held, then the live stream with no gap and no entry twice, while the
 * other readers and the overflow policies are as without it.
 *
 * The store is tested on its own with made-up entries and times; the hub
 * is fed by a real engine streaming `sim:counter` (hub-fixture.h), whose
 * entry SEQ carries the counters 8 (SEQ - 1) + 1 to 8 SEQ.  Each case runs
 * in a child process with a time limit.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <crtfs/crtfs.h>

#include "hub-fixture.h"
#include "testutil.h"

#define MS 1000000 /* ns */

/* ---- the store -------------------------------------------------------- */

static void record_n(CrtHistory *h, guint64 first, guint64 last, gint64 t0_ns,
                     gint64 step_ns)
{
    char payload[ENTRY_SIZE] = {0};

    for (guint64 s = first; s <= last; s++)
        crt_history_record(h, s, t0_ns + (gint64)(s - first) * step_ns, 0, 0, NULL, payload,
                           sizeof payload);
}

/* history=N keeps the newest N, numbered without gaps. */
static void test_store_count(void)
{
    CrtHistory *h = crt_history_new();
    CrtHistoryLimits lim = {.last = 10, .bytes = 1 << 20};

    record_n(h, 1, 5, 0, 0); /* off: nothing kept */
    g_assert_cmpuint(crt_history_count(h), ==, 0);
    crt_history_set_limits(h, &lim, 0);
    record_n(h, 6, 100, 0, 0);
    g_assert_cmpuint(crt_history_count(h), ==, 10);
    g_assert_cmpuint(crt_history_oldest(h), ==, 91);
    lim.last = 3; /* lowered: the oldest go at once */
    crt_history_set_limits(h, &lim, 0);
    g_assert_cmpuint(crt_history_count(h), ==, 3);
    g_assert_cmpuint(crt_history_oldest(h), ==, 98);
    lim.last = 0; /* off: emptied */
    crt_history_set_limits(h, &lim, 0);
    g_assert_cmpuint(crt_history_count(h), ==, 0);
    g_assert_cmpuint(crt_history_bytes(h), ==, 0);
    crt_history_free(h);
}

/* history=DURATION keeps what is younger than it, also when the stream
 * stands still (expire at a later time). */
static void test_store_age(void)
{
    CrtHistory *h = crt_history_new();
    CrtHistoryLimits lim = {.age_ms = 500, .bytes = 1 << 20};

    crt_history_set_limits(h, &lim, 0);
    /* Entries 1..100, 10 ms apart, from t = 1 s: the last at 1.99 s. */
    record_n(h, 1, 100, 1000 * (gint64)MS, 10 * MS);
    /* At 1.99 s the ones from 1.49 s on (exclusive) are younger than 500 ms. */
    g_assert_cmpuint(crt_history_oldest(h), ==, 51);
    g_assert_cmpuint(crt_history_count(h), ==, 50);
    g_assert_cmpuint(crt_history_first_since(h, 1800 * (gint64)MS), ==, 81);
    g_assert_cmpuint(crt_history_first_since(h, 5000 * (gint64)MS), ==, 0);
    crt_history_expire(h, 2200 * (gint64)MS); /* 210 ms later, nothing came */
    g_assert_cmpuint(crt_history_oldest(h), ==, 72);
    crt_history_expire(h, 9000 * (gint64)MS);
    g_assert_cmpuint(crt_history_count(h), ==, 0);
    crt_history_free(h);
}

/* The byte budget evicts the oldest; an entry larger than the budget
 * empties the history (no gaps), and what follows is kept again. */
static void test_store_bytes(void)
{
    CrtHistory *h = crt_history_new();
    CrtHistoryLimits lim = {.last = 1000000, .bytes = 4096};
    char big[8192] = {0};
    size_t cost;

    crt_history_set_limits(h, &lim, 0);
    record_n(h, 1, 1, 0, 0);
    cost = crt_history_bytes(h);
    g_assert_cmpuint(cost, >, ENTRY_SIZE); /* the bookkeeping counts */
    record_n(h, 2, 1000, 0, 0);
    g_assert_cmpuint(crt_history_bytes(h), <=, 4096);
    g_assert_cmpuint(crt_history_count(h), ==, 4096 / cost);
    g_assert_cmpuint(crt_history_oldest(h), ==, 1000 - 4096 / cost + 1);
    crt_history_record(h, 1001, 0, 0, 0, NULL, big, sizeof big);
    g_assert_cmpuint(crt_history_count(h), ==, 0);
    record_n(h, 1002, 1003, 0, 0);
    g_assert_cmpuint(crt_history_oldest(h), ==, 1002);
    g_assert_cmpuint(crt_history_count(h), ==, 2);
    crt_history_free(h);
}

/* A cursor hands out its range with the markers, and counts what the
 * history let go before it got there; the entry it is on stays. */
static void test_store_cursor(void)
{
    CrtHistory *h = crt_history_new();
    CrtHistoryLimits lim = {.last = 10, .bytes = 1 << 20};
    CrtReplayCursor *c;
    CrtHistItem *it;
    guint64 lost = 0;

    crt_history_set_limits(h, &lim, 0);
    record_n(h, 1, 20, 0, 0);
    c = crt_replay_cursor_new(15, 21, TRUE, 0);
    it = crt_replay_cursor_current(c, h, &lost);
    g_assert_cmpstr(it->event, ==, "replay:from=15");
    g_assert_cmpuint(it->seq, ==, 0);
    crt_replay_cursor_next(c);
    it = crt_replay_cursor_current(c, h, &lost);
    g_assert_cmpuint(it->seq, ==, 15);
    record_n(h, 21, 37, 0, 0); /* 15..27 go; 15 is held by the cursor */
    g_assert_cmpuint(it->seq, ==, 15);
    g_assert_cmpuint(it->length, ==, ENTRY_SIZE);
    crt_replay_cursor_next(c);
    it = crt_replay_cursor_current(c, h, &lost);
    g_assert_cmpstr(it->event, ==, "live:from=21"); /* 16..20 were let go */
    g_assert_cmpuint(lost, ==, 5);
    crt_replay_cursor_next(c);
    g_assert_null(crt_replay_cursor_current(c, h, &lost));
    crt_replay_cursor_free(c);
    crt_history_free(h);
}

static void test_store_parse(void)
{
    CrtReplaySpec s;
    GError *error = NULL;

    g_assert_cmpint(crt_replay_parse("5", &s, NULL), ==, 0);
    g_assert_cmpint(s.mode, ==, CRT_REPLAY_LAST);
    g_assert_cmpuint(s.last, ==, 5);
    g_assert_cmpint(crt_replay_parse("30s", &s, NULL), ==, 0);
    g_assert_cmpint(s.mode, ==, CRT_REPLAY_AGE);
    g_assert_cmpuint(s.age_ms, ==, 30000);
    g_assert_cmpint(crt_replay_parse("all", &s, NULL), ==, 0);
    g_assert_cmpint(s.mode, ==, CRT_REPLAY_ALL);
    const char *bad[] = {"", "0", "-1", "5x", "all ", "1e3", "8d", "abc", "s"};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_assert_cmpint(crt_replay_parse(bad[i], &s, &error), ==, -EINVAL);
        g_assert_nonnull(strstr(error->message, "is not a replay"));
        g_clear_error(&error);
    }
}

/* ---- the hub ---------------------------------------------------------- */

static void set_history(Fix *f, guint64 last, guint64 age_ms, guint64 bytes)
{
    CrtHistoryLimits lim = {.last = last, .age_ms = age_ms, .bytes = bytes};

    crt_hub_set_history(f->hub, &lim);
}

/* What a replay reader read, checked: the marker "replay:from=FROM", the
 * entries FROM..LIVE-1, "live:from=LIVE", then entries from LIVE on without
 * a gap up to the last one read, each with its counters. */
static void assert_replay(const Records *p, guint64 from, guint64 live)
{
    char want[64];
    guint64 seq = from;
    guint i = 0;

    g_assert_cmpuint(p->recs->len, >=, 2);
    g_snprintf(want, sizeof want, "replay:from=%" G_GUINT64_FORMAT, from);
    g_assert_cmpstr(rec_at(p, 0)->status, ==, want);
    g_assert_cmpuint(rec_at(p, 0)->seq, ==, 0);
    g_assert_cmpuint(rec_at(p, 0)->length, ==, 0);
    for (i = 1; i < p->recs->len; i++) {
        const Rec *r = rec_at(p, i);

        if (r->seq == 0) {
            g_snprintf(want, sizeof want, "live:from=%" G_GUINT64_FORMAT, live);
            g_assert_cmpstr(r->status, ==, want);
            g_assert_cmpuint(seq, ==, live); /* the replay ended where live begins */
            continue;
        }
        g_assert_cmpuint(r->seq, ==, seq);
        g_assert_cmpstr(r->status, ==, "ok");
        g_assert_cmpuint(r->first, ==, 8 * (seq - 1) + 1);
        g_assert_cmpuint(r->last, ==, 8 * seq);
        seq++;
    }
    g_assert_cmpuint(seq, >, live); /* live entries came too */
}

/* Read both readers in turn (neither may starve the other under `block`)
 * until each has the record with seq `want` (a replay reader's markers have
 * seq 0, so its last record's seq is what counts). */
static void read_both_until(CrtHubReader *a, Records *pa, CrtHubReader *b, Records *pb,
                            guint64 want)
{
    char *buf = g_malloc(READ_SIZE);
    gint64 deadline = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;

    while (records_last_seq(pa) < want || records_last_seq(pb) < want) {
        gssize na = crt_hub_read(a, buf, READ_SIZE, CRT_FRAMING_STREAM);

        if (na > 0)
            records_feed(pa, buf, (size_t)na);
        gssize nb = crt_hub_read(b, buf, READ_SIZE, CRT_FRAMING_STREAM);

        if (nb > 0)
            records_feed(pb, buf, (size_t)nb);
        g_assert_null(pa->error);
        g_assert_null(pb->error);
        if (na <= 0 && nb <= 0)
            g_usleep(1000);
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
    }
    g_free(buf);
}

/* A reader opening with @5 while another reads live gets the newest five
 * (some of which the other has not read yet), then live without gap or
 * duplicate; the live reader sees an unbroken stream. */
static void test_replay_last_then_live(void)
{
    Fix f;
    Records pa, pb;
    CrtHubReader *a, *b;
    CrtReplaySpec five = {.mode = CRT_REPLAY_LAST, .last = 5};
    guint64 newest;

    fix_open(&f, &(FixOpts){.out_count = 8});
    set_history(&f, 1000, 0, 1 << 20);
    records_init(&pa);
    records_init(&pb);
    a = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    READ_RECORDS_UNTIL(&f, a, &pa, 200, CRT_FRAMING_STREAM);
    assert_paused(&f); /* a stopped reading: `block` pauses */
    newest = hub_stats(&f).last_seq;
    g_assert_cmpuint(newest, >, records_last_seq(&pa)); /* a has some unread */
    b = crt_hub_reader_new_replay(f.hub, TRUE, &five);
    read_both_until(a, &pa, b, &pb, newest + 100);
    crt_engine_stop_and_wait(f.engine);
    drain_records(a, &pa);
    drain_records(b, &pb);
    ASSERT_RECORDS(&pa, 1);
    assert_replay(&pb, newest - 4, newest + 1);
    g_assert_cmpuint(hub_stats(&f).dropped, ==, 0);
    g_assert_cmpuint(hub_stats(&f).replays, ==, 1);
    g_assert_cmpuint(hub_stats(&f).history_entries, ==,
                     MIN(1000, hub_stats(&f).last_seq));
    crt_hub_reader_free(a);
    crt_hub_reader_free(b);
    records_clear(&pa);
    records_clear(&pb);
    fix_close(&f);
}

/* Asking for more than is held gives what is held; @all everything; the
 * replay of a stopped target ends with end of file. */
static void test_replay_more_than_held(void)
{
    Fix f;
    Records pa, pb;
    CrtHubReader *a, *b;
    CrtReplaySpec many = {.mode = CRT_REPLAY_LAST, .last = 100000};
    CrtReplaySpec all = {.mode = CRT_REPLAY_ALL};
    guint64 newest;

    fix_open(&f, &(FixOpts){.out_count = 8});
    set_history(&f, 50, 0, 1 << 20);
    records_init(&pa);
    a = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    READ_RECORDS_UNTIL(&f, a, &pa, 300, CRT_FRAMING_STREAM);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_end_stream(f.hub);
    drain_records(a, &pa);
    newest = hub_stats(&f).last_seq;
    for (int k = 0; k < 2; k++) {
        records_init(&pb);
        b = crt_hub_reader_new_replay(f.hub, TRUE, k ? &all : &many);
        g_assert_cmpint(drain_records(b, &pb), ==, 0); /* end of file */
        g_assert_cmpuint(pb.recs->len, ==, 50 + 2);
        g_assert_cmpuint(rec_at(&pb, 1)->seq, ==, newest - 49);
        g_assert_cmpuint(rec_at(&pb, 50)->seq, ==, newest);
        g_assert_cmpuint(rec_at(&pb, 50)->first, ==, 8 * (newest - 1) + 1);
        crt_hub_reader_free(b);
        records_clear(&pb);
    }
    crt_hub_reader_free(a);
    records_clear(&pa);
    fix_close(&f);
}

/* A `data` replay is bytes only: the counters of the last three entries,
 * then live, without a gap; and with nobody reading, the entries kept for
 * the next reader that are older than the start are not handed out. */
static void test_replay_data_kept(void)
{
    Fix f;
    CrtHubReader *b;
    CrtReplaySpec three = {.mode = CRT_REPLAY_LAST, .last = 3};
    Counters c = {0};
    char *buf = g_malloc(READ_SIZE);
    guint64 newest;
    gssize n;

    fix_open(&f, &(FixOpts){.out_count = 8});
    set_history(&f, 1000, 0, 1 << 20);
    fix_start(&f);
    assert_paused(&f); /* nobody reads: the pool holds what is kept */
    newest = hub_stats(&f).last_seq;
    g_assert_cmpuint(hub_stats(&f).queued, >, 3);
    b = crt_hub_reader_new_replay(f.hub, FALSE, &three);
    c.next = 8 * (newest - 3) + 1;
    n = read_wait(&f, b, buf, READ_SIZE, CRT_FRAMING_STREAM, 5000);
    g_assert_cmpint(n, >, 0);
    counters_feed(&c, buf, (size_t)n); /* starts with entry newest-2 */
    g_assert_null(c.error);
    while (c.next <= 8 * (newest + 50)) {
        n = read_wait(&f, b, buf, READ_SIZE, CRT_FRAMING_STREAM, 5000);
        g_assert_cmpint(n, >, 0);
        counters_feed(&c, buf, (size_t)n);
        g_assert_null(c.error);
    }
    g_assert_cmpuint(hub_stats(&f).discarded, >=, 1); /* the older kept ones */
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(b);
    g_free(buf);
    fix_close(&f);
}

/* @DURATION: only the entries younger than that. */
static void test_replay_age(void)
{
    Fix f;
    Records pa, pb;
    CrtHubReader *a, *b;
    CrtReplaySpec young = {.mode = CRT_REPLAY_AGE, .age_ms = 300};
    gint64 open_ns;
    guint64 before;

    fix_open(&f, &(FixOpts){.out_count = 8});
    set_history(&f, 0, 60000, 1 << 20);
    records_init(&pa);
    records_init(&pb);
    a = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    READ_RECORDS_UNTIL(&f, a, &pa, 100, CRT_FRAMING_STREAM);
    assert_paused(&f);
    before = hub_stats(&f).last_seq;
    g_usleep(600 * 1000); /* what came before the pause is old now */
    READ_RECORDS_UNTIL(&f, a, &pa, before + 30, CRT_FRAMING_STREAM);
    open_ns = g_get_real_time() * 1000;
    b = crt_hub_reader_new_replay(f.hub, TRUE, &young);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_end_stream(f.hub);
    drain_records(a, &pa);
    drain_records(b, &pb);
    /* the 30 read since the pause at least: the engine may have made no more
     * before it stopped */
    g_assert_cmpuint(pb.recs->len, >=, 2 + 30);
    for (guint i = 1; i < pb.recs->len; i++) {
        const Rec *r = rec_at(&pb, i);

        if (r->seq > 0) /* younger than 300 ms at the open */
            g_assert_cmpint(open_ns - (r->sec * 1000000000 + r->nsec), <, 300 * MS);
    }
    /* and it starts right after the pause: nothing young was left out */
    g_assert_cmpuint(rec_at(&pb, 1)->seq, ==, before + 1);
    crt_hub_reader_free(a);
    crt_hub_reader_free(b);
    records_clear(&pa);
    records_clear(&pb);
    fix_close(&f);
}

/* The history holds copies, not buffers: `block` still pauses the stream
 * for a reader that does not read, and every buffer comes home. */
static void test_overflow_block_holds(void)
{
    Fix f;
    CrtHubReader *slow;

    fix_open(&f, &(FixOpts){.out_count = 8, .overflow = CRT_OVERFLOW_BLOCK});
    set_history(&f, 1000, 0, 1 << 20);
    slow = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    assert_paused(&f);
    g_assert_cmpuint(hub_stats(&f).last_seq, <, 8 + 8);
    g_assert_cmpuint(hub_stats(&f).history_entries, ==, hub_stats(&f).last_seq);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(slow);
    fix_close(&f); /* asserts the pool is full */
}

/* drop-oldest: a reader that does not read loses entries (counted) and the
 * stream goes on; a replay reader gets its replay whole, then live entries
 * in order, where each gap is one of its counted drops (the producer runs
 * free, so a reader that parses every record may fall behind too). */
static void test_overflow_drop_oldest_holds(void)
{
    Fix f;
    Records ps, pb;
    CrtHubReader *slow, *b;
    CrtReplaySpec ten = {.mode = CRT_REPLAY_LAST, .last = 10};
    char *buf = g_malloc(READ_SIZE);
    guint64 from, gaps;
    char want[64];

    fix_open(&f, &(FixOpts){.out_count = 8, .overflow = CRT_OVERFLOW_DROP_OLDEST});
    /* Copies: the reader that reads is never thousands behind, so only the
     * one that does not read loses entries, whatever the machine's load. */
    crt_hub_set_copy(f.hub, CRT_HUB_COPY_BYTES);
    set_history(&f, 100000, 0, 16 << 20); /* the replay is not overrun */
    records_init(&ps);
    records_init(&pb);
    slow = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    TU_WAIT_FOR(hub_stats(&f).last_seq > 500);
    b = crt_hub_reader_new_replay(f.hub, TRUE, &ten);
    READ_RECORDS_UNTIL(&f, b, &pb, 30000, CRT_FRAMING_STREAM);
    crt_engine_stop_and_wait(f.engine);
    drain_records(b, &pb);                         /* every drop counted is a gap now */
    g_assert_cmpuint(hub_stats(&f).dropped, >, 0); /* the slow reader's */
    from = rec_at(&pb, 1)->seq;
    g_assert_cmpuint(from, >, 500 - 10);
    g_snprintf(want, sizeof want, "replay:from=%" G_GUINT64_FORMAT, from);
    g_assert_cmpstr(rec_at(&pb, 0)->status, ==, want);
    for (guint i = 1; i <= 10; i++)
        g_assert_cmpuint(rec_at(&pb, i)->seq, ==, from + i - 1);
    g_snprintf(want, sizeof want, "live:from=%" G_GUINT64_FORMAT, from + 10);
    g_assert_cmpstr(rec_at(&pb, 11)->status, ==, want);
    gaps = 0;
    for (guint i = 12, next = 0; i < pb.recs->len; i++) {
        guint64 seq = rec_at(&pb, i)->seq, due = next ? next : from + 10;

        g_assert_cmpuint(seq, >=, due);
        g_assert_cmpuint(rec_at(&pb, i)->first, ==, 8 * (seq - 1) + 1);
        gaps += seq - due;
        next = (guint)(seq + 1);
    }
    g_test_message("replay reader: %" G_GUINT64_FORMAT " dropped", gaps);
    g_assert_cmpuint(gaps, ==, crt_hub_reader_drops(b));
    crt_hub_reader_free(slow);
    crt_hub_reader_free(b);
    records_clear(&ps);
    records_clear(&pb);
    g_free(buf);
    fix_close(&f);
}

/* The byte budget bounds the history in the hub as well. */
static void test_hub_bytes(void)
{
    Fix f;
    Records pa;
    CrtHubReader *a;
    CrtHubStats st;

    fix_open(&f, &(FixOpts){.out_count = 8});
    set_history(&f, 1000000, 0, 8192);
    records_init(&pa);
    a = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    READ_RECORDS_UNTIL(&f, a, &pa, 1000, CRT_FRAMING_STREAM);
    crt_engine_stop_and_wait(f.engine);
    st = hub_stats(&f);
    g_test_message("history: %" G_GUINT64_FORMAT " entries, %" G_GUINT64_FORMAT " bytes",
                   st.history_entries, st.history_bytes);
    g_assert_cmpuint(st.history_bytes, <=, 8192);
    g_assert_cmpuint(st.history_bytes, >, 8192 - 2 * (ENTRY_SIZE + 128));
    g_assert_cmpuint(st.history_entries, <, 8192 / ENTRY_SIZE);
    crt_hub_reader_free(a);
    records_clear(&pa);
    fix_close(&f);
}

static const TuCase cases[] = {
    {"/hub/history/store-count", test_store_count},
    {"/hub/history/store-age", test_store_age},
    {"/hub/history/store-bytes", test_store_bytes},
    {"/hub/history/store-cursor", test_store_cursor},
    {"/hub/history/parse", test_store_parse},
    {"/hub/history/replay-last-then-live", test_replay_last_then_live},
    {"/hub/history/replay-more-than-held", test_replay_more_than_held},
    {"/hub/history/replay-data-kept", test_replay_data_kept},
    {"/hub/history/replay-age", test_replay_age},
    {"/hub/history/block-holds", test_overflow_block_holds},
    {"/hub/history/drop-oldest-holds", test_overflow_drop_oldest_holds},
    {"/hub/history/bytes", test_hub_bytes},
};

int main(int argc, char **argv)
{
    return tu_run_isolated(&argc, &argv, cases, G_N_ELEMENTS(cases), TU_CASE_TIMEOUT_S);
}
