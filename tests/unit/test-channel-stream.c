/* crtfs tests - one target directory without FUSE, its data side: `stats`,
 * the broadcast hub as the channel feeds it (stop, error and fatal
 * completions, a write stream's kept entries), and `input`.
 *
 * The channel runs on the default loop with simulator targets
 * (channel-fixture.h).  Each case runs in a child process with a time
 * limit, so a hang or a failed assertion costs that case alone.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <gio/gio.h>

#include <crtfs/crtfs.h>

#include "channel-fixture.h"
#include "testutil.h"

/* ---- stats and the hub ----------------------------------------------------- */

/* `stats` has every key the filesystem promises, with numbers that follow
 * the stream. */
static void test_stats_keys(void)
{
    static const char *const keys[] = {
        "requests_in_flight", "completed",     "failed",         "cancelled",
        "bytes_read",         "bytes_written", "buffers_queued", "buffers_delivered",
        "buffers_dropped",    "out_pool_free", "out_pool_size",  "readers",
        "last_seq",
    };
    Chan c;
    CrtHubReader *r;
    char buf[4096];

    chan_open(&c);
    for (size_t i = 0; i < G_N_ELEMENTS(keys); i++)
        g_assert_cmpuint(stat_of(&c, keys[i]), ==, 0);
    target_ok(&c, "sim:counter");
    r = crt_hub_reader_new(crt_channel_hub(c.ch), FALSE);
    g_assert_cmpuint(stat_of(&c, "readers"), ==, 1);
    ctl_ok(&c, "start");
    TU_WAIT_FOR(stat_of(&c, "completed") >= 16);
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 4096);
    ctl_ok(&c, "stop-wait");
    for (size_t i = 0; i < G_N_ELEMENTS(keys); i++)
        (void)stat_of(&c, keys[i]);
    g_assert_cmpuint(stat_of(&c, "requests_in_flight"), ==, 0);
    g_assert_cmpuint(stat_of(&c, "bytes_read"), ==, stat_of(&c, "completed") * 4096);
    g_assert_cmpuint(stat_of(&c, "failed"), ==, 0);
    g_assert_cmpuint(stat_of(&c, "cancelled"), >, 0);
    g_assert_cmpuint(stat_of(&c, "buffers_delivered"), ==, 1);
    g_assert_cmpuint(stat_of(&c, "buffers_queued"), >, 0);
    g_assert_cmpuint(stat_of(&c, "buffers_dropped"), ==, 0);
    g_assert_cmpuint(stat_of(&c, "out_pool_size"), ==, 16);
    g_assert_cmpuint(stat_of(&c, "out_pool_free") + stat_of(&c, "buffers_queued"), ==,
                     16);
    g_assert_cmpuint(stat_of(&c, "last_seq"), >=, stat_of(&c, "completed"));
    g_assert_cmpuint(tu_counter_get(&c.notified), >, 0);
    crt_hub_reader_free(r);
    g_assert_cmpuint(stat_of(&c, "readers"), ==, 0);
    g_assert_cmpuint(stat_of(&c, "out_pool_free"), ==, 16);
    chan_close(&c);
}

/* `stop` ends the readers' stream: what is queued, then end of file. */
static void test_stop_ends_readers(void)
{
    Chan c;
    CrtHubReader *r;
    char buf[65536];
    gssize n;

    chan_open(&c);
    target_ok(&c, "sim:counter");
    r = crt_hub_reader_new(crt_channel_hub(c.ch), FALSE);
    ctl_ok(&c, "start");
    TU_WAIT_FOR(crt_hub_readable(r));
    ctl_ok(&c, "stop-wait");
    while ((n = crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_STREAM)) > 0)
        ;
    g_assert_cmpint(n, ==, 0);
    /* End of file stays while the target is stopped; a start ends it. */
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_STREAM), ==, 0);
    ctl_ok(&c, "start");
    TU_WAIT_FOR(crt_hub_readable(r));
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_STREAM), >, 0);
    ctl_ok(&c, "stop-wait");
    crt_hub_reader_free(r);
    chan_close(&c);
}

/* A completion with an error status is counted and reported in `state`,
 * while the stream goes on. */
static void test_error_completion_reported(void)
{
    Chan c;
    CrtHubReader *r;
    GArray *recs;
    char *text, **lines;
    gboolean reported = FALSE;
    guint errors = 0;

    chan_open(&c);
    target_ok(&c, "sim:counter fail=3 errno=EPROTO");
    r = crt_hub_reader_new(crt_channel_hub(c.ch), TRUE);
    ctl_ok(&c, "start");
    recs = read_records(&c, r, 20);
    for (guint i = 0; i < recs->len; i++)
        errors += strcmp(rec_at(recs, i)->status, "EPROTO") == 0;
    g_assert_cmpuint(errors, ==, 1);
    g_array_unref(recs);
    ASSERT_STATE(&c, "streaming");
    g_assert_cmpuint(stat_of(&c, "failed"), ==, 1);
    /* Somewhere in `state` other than the target's own spec. */
    text = crt_channel_state_text(c.ch);
    g_test_message("state:\n%s", text);
    lines = g_strsplit(text, "\n", -1);
    for (guint i = 0; lines[i]; i++) {
        if (!g_str_has_prefix(lines[i], "target:") &&
            (strstr(lines[i], "EPROTO") || strstr(lines[i], g_strerror(EPROTO))))
            reported = TRUE;
    }
    g_strfreev(lines);
    g_free(text);
    g_assert_true(reported);
    ctl_ok(&c, "stop-wait");
    crt_hub_reader_free(r);
    chan_close(&c);
}

/* A fatal completion ends the stream by itself: `state` says why and the
 * readers get end of file after the data. */
static void test_fatal_completion(void)
{
    Chan c;
    CrtHubReader *r;
    GArray *recs;

    chan_open(&c);
    target_ok(&c, "sim:counter limit=10");
    r = crt_hub_reader_new(crt_channel_hub(c.ch), TRUE);
    ctl_ok(&c, "start");
    recs = read_records(&c, r, G_MAXUINT); /* until end of file */
    g_assert_cmpuint(recs->len, ==, 11);
    g_assert_cmpstr(rec_at(recs, 10)->status, ==, "ENODATA");
    g_array_unref(recs);
    TU_WAIT_FOR(state_is(&c, "stopped"));
    ASSERT_ERROR_LINE(&c, "stream ended: end of file");
    /* The target stays set: a new start streams again. */
    ctl_ok(&c, "start");
    ctl_ok(&c, "stop-wait");
    crt_hub_reader_free(r);
    chan_close(&c);
}

/* A write stream with nobody reading `records`: its completions carry no
 * buffer, and the ones kept for a future reader must stay bounded (the
 * output pool bounds a read stream's) instead of growing with every write. */
static void test_write_stream_kept_bounded(void)
{
    Chan c;

    chan_open(&c);
    config_ok(&c, "type", "write");
    config_ok(&c, "payload", "tick");
    target_ok(&c, "sim:echo");
    ctl_ok(&c, "start");
    TU_WAIT_FOR(stat_of(&c, "completed") >= 1000);
    g_usleep(300 * 1000);
    g_test_message("completed %" G_GUINT64_FORMAT ", kept %" G_GUINT64_FORMAT,
                   stat_of(&c, "completed"), stat_of(&c, "buffers_queued"));
    g_assert_cmpuint(stat_of(&c, "buffers_queued"), <=, 65536);
    ctl_ok(&c, "stop-wait");
    chan_close(&c);
}

/* ---- input ------------------------------------------------------------------ */

/* `input` feeds a write stream: one write, one input buffer; the queue
 * holds in_count writes and then says EAGAIN until the stream takes them. */
static void test_input(void)
{
    Chan c;
    GError *error = NULL;
    guint seen;

    chan_open(&c);
    g_assert_cmpint(crt_channel_input_write(c.ch, "x", 1, &error), ==, -EINVAL);
    g_clear_error(&error);
    config_ok(&c, "type", "write");
    config_ok(&c, "in_count", "2");
    config_ok(&c, "in_size", "16");
    target_ok(&c, "sim:echo");
    g_assert_cmpint(crt_channel_input_write(c.ch, "0123456789abcdefX", 17, &error), ==,
                    -EMSGSIZE);
    g_clear_error(&error);
    g_assert_true(crt_channel_input_writable(c.ch));
    g_assert_cmpint(crt_channel_input_write(c.ch, "first", 5, &error), ==, 0);
    g_assert_cmpint(crt_channel_input_write(c.ch, "second", 6, &error), ==, 0);
    g_assert_no_error(error);
    g_assert_false(crt_channel_input_writable(c.ch));
    g_assert_cmpint(crt_channel_input_write(c.ch, "third", 5, &error), ==, -EAGAIN);
    g_clear_error(&error);

    seen = tu_counter_get(&c.notified);
    ctl_ok(&c, "start");
    TU_WAIT_FOR(crt_channel_input_writable(c.ch));
    TU_WAIT_FOR(stat_of(&c, "bytes_written") == 11);
    g_assert_cmpuint(tu_counter_get(&c.notified), >, seen);
    g_assert_cmpint(crt_channel_input_write(c.ch, "third", 5, &error), ==, 0);
    g_assert_no_error(error);
    TU_WAIT_FOR(stat_of(&c, "bytes_written") == 16);
    g_assert_cmpuint(stat_of(&c, "completed"), ==, 3);
    /* Nothing more to send: the stream waits, it does not spin. */
    g_usleep(50 * 1000);
    g_assert_cmpuint(stat_of(&c, "completed"), ==, 3);
    ctl_ok(&c, "stop-wait");
    chan_close(&c);
}

/* ---- main ------------------------------------------------------------------ */

static const TuCase cases[] = {
    {"/channel/stats/keys", test_stats_keys},
    {"/channel/stream/stop-ends-readers", test_stop_ends_readers},
    {"/channel/stream/error-reported", test_error_completion_reported},
    {"/channel/stream/fatal-error", test_fatal_completion},
    {"/channel/stream/write-kept-bounded", test_write_stream_kept_bounded},
    {"/channel/input", test_input},
};

int main(int argc, char **argv)
{
    return tu_run_isolated(&argc, &argv, cases, G_N_ELEMENTS(cases), TU_CASE_TIMEOUT_S);
}
