/* crtfs tests - how hub readers read: record and stream framing, reading
 * at an offset (continuing, packing small entries) and replaying within
 * the retained window.
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

/* ---- framing --------------------------------------------------------------- */

/* Open a reader, start, and wait until the pool is all in the hub. */
static CrtHubReader *paused_stream(Fix *f, gboolean records)
{
    CrtHubReader *r;

    fix_open(f, &(FixOpts){.out_count = 8});
    r = crt_hub_reader_new(f->hub, records);
    fix_start(f);
    assert_paused(f);
    return r;
}

/* `record`: one read returns at most one buffer; the rest of a partly read
 * buffer comes next, on its own. */
static void test_framing_record(void)
{
    Fix f;
    Counters c = {0};
    CrtHubReader *r = paused_stream(&f, FALSE);
    char buf[1000];

    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, ENTRY_SIZE);
    counters_feed(&c, buf, ENTRY_SIZE);
    g_assert_cmpint(crt_hub_read(r, buf, 10, CRT_FRAMING_RECORD), ==, 10);
    counters_feed(&c, buf, 10);
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==,
                    ENTRY_SIZE - 10);
    counters_feed(&c, buf, ENTRY_SIZE - 10);
    for (int i = 0; i < 20; i++) {
        gssize n =
            read_wait(&f, r, buf, sizeof buf, CRT_FRAMING_RECORD, TU_EVENTUALLY_MS);

        g_assert_cmpint(n, ==, ENTRY_SIZE);
        counters_feed(&c, buf, (size_t)n);
    }
    g_assert_cmpstr(c.error, ==, NULL);
    g_assert_cmpuint(c.next, ==, 22 * 8 + 1);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    fix_close(&f);
}

/* `stream`: a read packs as many whole or partial buffers as fit. */
static void test_framing_stream(void)
{
    Fix f;
    Counters c = {0};
    CrtHubReader *r = paused_stream(&f, FALSE);
    char buf[4096];
    gssize n;

    /* Half of one buffer, then the rest of it with two more and a half. */
    g_assert_cmpint(crt_hub_read(r, buf, 32, CRT_FRAMING_STREAM), ==, 32);
    counters_feed(&c, buf, 32);
    g_assert_cmpint(crt_hub_read(r, buf, 32 + 2 * ENTRY_SIZE + 32, CRT_FRAMING_STREAM),
                    ==, 32 + 2 * ENTRY_SIZE + 32);
    counters_feed(&c, buf, 32 + 2 * ENTRY_SIZE + 32);
    /* At least the four and a half buffers still queued. */
    n = crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_STREAM);
    g_assert_cmpint(n, >=, 4 * ENTRY_SIZE + 32);
    counters_feed(&c, buf, (size_t)n);
    g_assert_cmpstr(c.error, ==, NULL);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    fix_close(&f);
}

/* `records` in both framings: a header before each buffer; `record` framing
 * returns one header and its buffer (a partly read header goes on next),
 * `stream` framing packs whole records. */
static void test_framing_records(void)
{
    Fix f;
    Records p;
    CrtHubReader *r = paused_stream(&f, TRUE);
    char buf[4096];
    gssize n;

    records_init(&p);
    g_assert_cmpint(crt_hub_read(r, buf, 5, CRT_FRAMING_RECORD), ==, 5);
    g_assert_cmpuint(records_feed(&p, buf, 5), ==, 0);
    n = crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD);
    g_assert_cmpuint(records_feed(&p, buf, (size_t)n), ==, 1);
    g_assert_cmpuint(p.pending->len, ==, 0);
    n = crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_STREAM);
    g_assert_cmpuint(records_feed(&p, buf, (size_t)n), >=, 7);
    g_assert_cmpuint(p.pending->len, ==, 0);
    ASSERT_RECORDS(&p, 1);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    records_clear(&p);
    fix_close(&f);
}

/* ---- reading at an offset: continuing and replaying ----------------------- */

/* Concatenate what crt_hub_read_at described. */
static GByteArray *iov_bytes(const struct iovec *iov, int n)
{
    GByteArray *b = g_byte_array_new();

    for (int i = 0; i < n; i++)
        g_byte_array_append(b, iov[i].iov_base, (guint)iov[i].iov_len);
    return b;
}

/* crt_hub_read_at at `off`, its bytes in a new array (NULL when it
 * returned no bytes; *ret its return value), then crt_hub_read_done as the
 * filesystem calls it once the reply has left. */
static GByteArray *read_at(CrtHubReader *r, guint64 off, size_t size, CrtFraming framing,
                           gssize *ret)
{
    struct iovec iov[CRT_HUB_MAX_IOV];
    GByteArray *bytes;
    int niov;

    *ret = crt_hub_read_at(r, off, size, framing, iov, &niov);
    if (*ret <= 0)
        return NULL;
    g_assert_cmpint(niov, >, 0);
    g_assert_cmpint(niov, <=, CRT_HUB_MAX_IOV);
    bytes = iov_bytes(iov, niov);
    crt_hub_read_done(r);
    return bytes;
}

static guint64 window_end(CrtHubReader *r)
{
    guint64 start, end;

    crt_hub_reader_window(r, CRT_FRAMING_STREAM, &start, &end);
    return end;
}

/* A read at the position describes exactly what crt_hub_read copies for
 * another reader, headers included, and moves the position by its bytes. */
static void test_read_at_continues(void)
{
    Fix f;
    CrtHubReader *a, *b;
    char buf[4096];
    gssize n, m;
    GByteArray *seen;

    fix_open(&f, &(FixOpts){.out_count = 8});
    a = crt_hub_reader_new(f.hub, TRUE);
    b = crt_hub_reader_new(f.hub, TRUE);
    g_assert_null(read_at(a, 0, sizeof buf, CRT_FRAMING_RECORD, &n));
    g_assert_cmpint(n, ==, -EAGAIN);
    fix_start(&f);
    assert_paused(&f);
    for (int round = 0; round < 3; round++) {
        CrtFraming framing = round == 1 ? CRT_FRAMING_STREAM : CRT_FRAMING_RECORD;
        size_t size = round == 2 ? 10 : sizeof buf;
        guint64 pos = window_end(a);

        /* The buffer the last round let go is refilled first: nothing may
         * arrive between the two readers' reads (a stream read packs all). */
        assert_paused(&f);
        TU_WAIT_FOR(crt_hub_readable(a) && crt_hub_readable(b));
        seen = read_at(a, pos, size, framing, &n);
        m = crt_hub_read(b, buf, size, framing);
        g_assert_cmpint(n, >, 0);
        g_assert_cmpint(n, ==, m);
        g_assert_cmpmem(seen->data, seen->len, buf, (size_t)m);
        g_assert_cmpuint(window_end(a), ==, pos + (guint64)n);
        g_byte_array_unref(seen);
    }
    crt_hub_reader_free(a);
    crt_hub_reader_free(b);
    fix_close(&f);
}

/* Small buffers: a stream-framing read packs them, copied into the
 * reader's window (at most two pieces); every counter arrives once. */
static void test_read_at_packs_small(void)
{
    Fix f;
    CrtHubReader *r;
    struct iovec iov[CRT_HUB_MAX_IOV];
    Counters c = {0};
    int niov;
    gssize n;

    fix_open(&f, &(FixOpts){.out_count = 8});
    r = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    assert_paused(&f);
    n = crt_hub_read_at(r, 0, 4096, CRT_FRAMING_STREAM, iov, &niov);
    g_assert_cmpint(n, ==, 8 * ENTRY_SIZE);
    g_assert_cmpint(niov, <=, 2);
    for (int i = 0; i < niov; i++)
        counters_feed(&c, iov[i].iov_base, iov[i].iov_len);
    /* The buffers went back at once: the pool refills. */
    TU_WAIT_FOR(hub_stats(&f).queued == 8);
    n = crt_hub_read_at(r, (guint64)n, 100, CRT_FRAMING_STREAM, iov, &niov);
    g_assert_cmpint(n, ==, 100);
    for (int i = 0; i < niov; i++)
        counters_feed(&c, iov[i].iov_base, iov[i].iov_len);
    g_assert_cmpstr(c.error, ==, NULL);
    g_assert_cmpuint(c.next, ==, 8 * 8 + 100 / 8 + 1);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    fix_close(&f);
}

/* After copied reads a seek back replays the bytes from the reader's
 * window without moving it; offsets outside the window are -ESPIPE, and
 * nothing is lost or repeated afterwards. */
static void test_replay_window(void)
{
    Fix f;
    CrtHubReader *r;
    GByteArray *all = g_byte_array_new(), *got;
    Counters c = {0};
    guint64 pos = 0;
    gssize n;

    fix_open(&f, &(FixOpts){.out_count = 8});
    r = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    /* More than the window, in reads of up to 4 KiB. */
    while (pos < 2 * CRT_HUB_WINDOW) {
        TU_WAIT_FOR(crt_hub_readable(r));
        got = read_at(r, pos, 4096, CRT_FRAMING_STREAM, &n);
        g_assert_nonnull(got);
        g_byte_array_append(all, got->data, got->len);
        g_byte_array_unref(got);
        pos += (guint64)n;
    }
    g_assert_cmpuint(window_end(r), ==, pos);
    /* The last read's bytes, part of them, and the whole window. */
    got = read_at(r, pos - 100, 4096, CRT_FRAMING_STREAM, &n);
    g_assert_cmpint(n, ==, 100);
    g_assert_cmpmem(got->data, got->len, all->data + pos - 100, 100);
    g_byte_array_unref(got);
    got = read_at(r, pos - CRT_HUB_WINDOW, 1000, CRT_FRAMING_STREAM, &n);
    g_assert_cmpint(n, ==, 1000);
    g_assert_cmpmem(got->data, got->len, all->data + pos - CRT_HUB_WINDOW, 1000);
    g_byte_array_unref(got);
    g_assert_cmpuint(window_end(r), ==, pos);
    /* Before the window, and after the position. */
    g_assert_null(read_at(r, pos - CRT_HUB_WINDOW - 1, 10, CRT_FRAMING_STREAM, &n));
    g_assert_cmpint(n, ==, -ESPIPE);
    g_assert_null(read_at(r, 0, 10, CRT_FRAMING_STREAM, &n));
    g_assert_cmpint(n, ==, -ESPIPE);
    g_assert_null(read_at(r, pos + 1, 10, CRT_FRAMING_STREAM, &n));
    g_assert_cmpint(n, ==, -ESPIPE);
    /* The stream goes on right after the position. */
    TU_WAIT_FOR(crt_hub_readable(r));
    got = read_at(r, pos, 4096, CRT_FRAMING_STREAM, &n);
    g_assert_nonnull(got);
    g_byte_array_append(all, got->data, got->len);
    g_byte_array_unref(got);
    counters_feed(&c, (const char *)all->data, all->len);
    g_assert_cmpstr(c.error, ==, NULL);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    g_byte_array_unref(all);
    fix_close(&f);
}

/* Record framing replays only within the entry the last read came from (a
 * read never spans two records); stream framing the whole window. */
static void test_replay_record_framing(void)
{
    Fix f;
    CrtHubReader *r;
    GByteArray *got;
    gssize n;

    fix_open(&f, &(FixOpts){.out_count = 8});
    r = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    assert_paused(&f);
    got = read_at(r, 0, 3 * ENTRY_SIZE, CRT_FRAMING_STREAM, &n);
    g_assert_cmpint(n, ==, 3 * ENTRY_SIZE);
    g_byte_array_unref(got);
    got = read_at(r, 3 * ENTRY_SIZE - 10, 4096, CRT_FRAMING_RECORD, &n);
    g_assert_cmpint(n, ==, 10);
    g_byte_array_unref(got);
    got = read_at(r, 2 * ENTRY_SIZE, 4096, CRT_FRAMING_RECORD, &n);
    g_assert_cmpint(n, ==, ENTRY_SIZE);
    g_byte_array_unref(got);
    g_assert_null(read_at(r, 2 * ENTRY_SIZE - 1, 4096, CRT_FRAMING_RECORD, &n));
    g_assert_cmpint(n, ==, -ESPIPE);
    got = read_at(r, 2 * ENTRY_SIZE - 1, 4096, CRT_FRAMING_STREAM, &n);
    g_assert_cmpint(n, ==, ENTRY_SIZE + 1);
    g_byte_array_unref(got);
    /* Half an entry in record framing: the window is that half. */
    got = read_at(r, 3 * ENTRY_SIZE, ENTRY_SIZE / 2, CRT_FRAMING_RECORD, &n);
    g_assert_cmpint(n, ==, ENTRY_SIZE / 2);
    g_byte_array_unref(got);
    got = read_at(r, 3 * ENTRY_SIZE, 4096, CRT_FRAMING_RECORD, &n);
    g_assert_cmpint(n, ==, ENTRY_SIZE / 2);
    g_byte_array_unref(got);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    fix_close(&f);
}

/* Large buffers go out zero-copy and the window keeps them (the engine gets
 * them back at the next read at the position); a replay hands out the same
 * bytes, in `records` with the same header line. */
static void replay_zero_copy(gboolean records)
{
    const size_t big = 32 * 1024;
    Fix f;
    CrtHubReader *r, *twin;
    GByteArray *first, *again;
    char *copy = g_malloc(4 * big);
    guint64 completed;
    gssize n, m;

    fix_open(&f, &(FixOpts){.out_count = 4, .requests = 2, .out_size = big});
    r = crt_hub_reader_new(f.hub, records);
    twin = crt_hub_reader_new(f.hub, records);
    fix_start(&f);
    assert_paused(&f);
    /* Two of the four buffers (one for `records`, a read of which holds one
     * entry and its header line). */
    first = read_at(r, 0, 2 * big, CRT_FRAMING_STREAM, &n);
    g_assert_cmpint(n, >=, (gssize)big);
    m = crt_hub_read(twin, copy, (size_t)n, CRT_FRAMING_STREAM);
    g_assert_cmpint(m, ==, n);
    g_assert_cmpmem(first->data, first->len, copy, (size_t)m);
    /* The twin let go; the window still holds what it read, so the engine
     * gets no buffer back. */
    assert_paused(&f);
    again = read_at(r, (guint64)n - 1000, 4096, CRT_FRAMING_STREAM, &m);
    g_assert_cmpint(m, ==, 1000);
    g_assert_cmpmem(again->data, again->len, first->data + n - 1000, 1000);
    g_byte_array_unref(again);
    again = read_at(r, 0, 2 * big, CRT_FRAMING_STREAM, &m);
    g_assert_cmpint(m, ==, n);
    g_assert_cmpmem(again->data, again->len, first->data, first->len);
    g_byte_array_unref(again);
    /* The next read at the position lets the window's buffers go. */
    completed = engine_stats(&f).completed;
    again = read_at(r, (guint64)n, 10, CRT_FRAMING_STREAM, &m);
    g_assert_cmpint(m, ==, 10);
    g_byte_array_unref(again);
    g_assert_cmpint(crt_hub_read(twin, copy, 10, CRT_FRAMING_STREAM), ==, 10);
    TU_WAIT_FOR(engine_stats(&f).completed > completed);
    g_assert_null(read_at(r, 0, 10, CRT_FRAMING_STREAM, &m));
    g_assert_cmpint(m, ==, -ESPIPE);
    g_byte_array_unref(first);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    crt_hub_reader_free(twin);
    g_free(copy);
    fix_close(&f);
}

static void test_replay_zero_copy_data(void)
{
    replay_zero_copy(FALSE);
}

static void test_replay_zero_copy_records(void)
{
    replay_zero_copy(TRUE);
}

/* An end of file empties the window: a seek back over it is -ESPIPE; the
 * end of file stays until the next stream. */
static void test_replay_end_of_file(void)
{
    Fix f;
    CrtHubReader *r;
    GByteArray *got;
    gssize n;
    guint64 pos = 0;

    fix_open(&f, &(FixOpts){.out_count = 8});
    r = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    assert_paused(&f);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_end_stream(f.hub);
    while ((got = read_at(r, pos, 4096, CRT_FRAMING_STREAM, &n))) {
        pos += (guint64)n;
        g_byte_array_unref(got);
    }
    g_assert_cmpint(n, ==, 0);
    g_assert_cmpuint(pos, ==, 8 * ENTRY_SIZE);
    g_assert_null(read_at(r, pos - 1, 10, CRT_FRAMING_STREAM, &n));
    g_assert_cmpint(n, ==, -ESPIPE);
    g_assert_null(read_at(r, pos, 10, CRT_FRAMING_STREAM, &n));
    g_assert_cmpint(n, ==, 0);
    crt_hub_reader_free(r);
    fix_close(&f);
}

/* drop-oldest with a window that keeps an entry: the kept entry is not
 * dropped (the replay still works), the reader's drops are counted as the
 * hub counts them, and what it reads next continues in order. */
static void test_replay_drop_oldest(void)
{
    const size_t big = 32 * 1024;
    Fix f;
    CrtHubReader *r;
    GByteArray *first, *again;
    guint64 drops;
    gssize n, m;

    fix_open(&f, &(FixOpts){.out_count = 4,
                            .requests = 1,
                            .out_size = big,
                            .overflow = CRT_OVERFLOW_DROP_OLDEST});
    r = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    TU_WAIT_FOR(crt_hub_readable(r));
    first = read_at(r, 0, big, CRT_FRAMING_RECORD, &n);
    g_assert_cmpint(n, ==, (gssize)big);
    /* Drops after this read: on a loaded machine some may have come before
     * it (then `first` is not entry 1, and its successor may still be
     * there). */
    drops = hub_stats(&f).dropped;
    TU_WAIT_FOR(hub_stats(&f).dropped >= drops + 10);
    again = read_at(r, 0, big, CRT_FRAMING_RECORD, &m);
    g_assert_cmpint(m, ==, n);
    g_assert_cmpmem(again->data, again->len, first->data, first->len);
    g_byte_array_unref(again);
    crt_engine_stop_and_wait(f.engine);
    g_assert_cmpuint(crt_hub_reader_drops(r), ==, hub_stats(&f).dropped);
    again = read_at(r, (guint64)n, big, CRT_FRAMING_RECORD, &m);
    g_assert_cmpint(m, ==, (gssize)big);
    g_assert_cmpuint(counter_at(again->data), >, counter_at(first->data + big - 8) + 1);
    g_byte_array_unref(again);
    g_byte_array_unref(first);
    crt_hub_reader_free(r);
    fix_close(&f);
}

/* ---- main ------------------------------------------------------------------ */

static const TuCase cases[] = {
    {"/hub/framing/record", test_framing_record},
    {"/hub/framing/stream", test_framing_stream},
    {"/hub/framing/records", test_framing_records},
    {"/hub/read-at/continues", test_read_at_continues},
    {"/hub/read-at/packs-small", test_read_at_packs_small},
    {"/hub/replay/window", test_replay_window},
    {"/hub/replay/record-framing", test_replay_record_framing},
    {"/hub/replay/zero-copy/data", test_replay_zero_copy_data},
    {"/hub/replay/zero-copy/records", test_replay_zero_copy_records},
    {"/hub/replay/end-of-file", test_replay_end_of_file},
    {"/hub/replay/drop-oldest", test_replay_drop_oldest},
};

int main(int argc, char **argv)
{
    return tu_run_isolated(&argc, &argv, cases, G_N_ELEMENTS(cases), TU_CASE_TIMEOUT_S);
}
