/* crtfs tests - one target directory without FUSE, its control side:
 * `ctl` commands and `state`, `target`, `config/` (bad values, changes
 * while streaming, rebuilds), shutdown, and what it logs.
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

/* ---- ctl, target, state ---------------------------------------------------- */

/* `start` without a target: EDESTADDRREQ, and `state` says why. */
static void test_ctl_start_without_target(void)
{
    Chan c;
    char *target;

    chan_open(&c);
    ASSERT_STATE(&c, "stopped");
    target = state_line(&c, "target");
    g_assert_cmpstr(target, ==, "none");
    g_free(target);
    ctl_fails(&c, "start", EDESTADDRREQ);
    ASSERT_ERROR_LINE(&c, "no target");
    ASSERT_STATE(&c, "stopped");
    /* suspend and resume need a target too. */
    ctl_fails(&c, "suspend", EDESTADDRREQ);
    ctl_fails(&c, "resume", EDESTADDRREQ);
    chan_close(&c);
}

/* The life of a target: set (stopped), start (streaming), stop-wait
 * (stopped), start again, stop (stopped soon), suspend and resume. */
static void test_ctl_lifecycle(void)
{
    Chan c;
    char *line, *text;

    chan_open(&c);
    target_ok(&c, "sim:counter\n");
    ASSERT_STATE(&c, "stopped");
    line = state_line(&c, "target");
    g_assert_cmpstr(line, ==, "sim:counter");
    g_free(line);
    text = crt_channel_target_text(c.ch);
    g_assert_cmpstr(text, ==, "sim:counter\n");
    g_free(text);
    line = state_line(&c, "error");
    g_assert_cmpstr(line, ==, "none");
    g_free(line);

    ctl_ok(&c, "start\n");
    ASSERT_STATE(&c, "streaming");
    g_assert_cmpint(crt_channel_state(c.ch), ==, CRT_STATE_STREAMING);
    ctl_fails(&c, "start", EALREADY);
    ASSERT_STATE(&c, "streaming");
    TU_WAIT_FOR(stat_of(&c, "completed") > 0);
    ctl_ok(&c, "stop-wait");
    ASSERT_STATE(&c, "stopped");
    g_assert_cmpuint(stat_of(&c, "requests_in_flight"), ==, 0);

    ctl_ok(&c, "  start  ");
    ASSERT_STATE(&c, "streaming");
    ctl_ok(&c, "stop");
    TU_WAIT_FOR(state_is(&c, "stopped"));
    ctl_ok(&c, "stop"); /* stopping what stands still is fine */

    ctl_ok(&c, "start");
    ctl_ok(&c, "suspend");
    ASSERT_STATE(&c, "suspended");
    ctl_fails(&c, "suspend", EALREADY);
    ASSERT_ERROR_LINE(&c, "already suspended");
    ctl_ok(&c, "resume");
    ASSERT_STATE(&c, "streaming");
    ctl_fails(&c, "resume", EALREADY);
    ctl_ok(&c, "stop-wait");
    ASSERT_STATE(&c, "stopped");
    chan_close(&c);
}

/* An unknown command: EINVAL, the error line names it, nothing changes. */
static void test_ctl_unknown_command(void)
{
    Chan c;

    chan_open(&c);
    target_ok(&c, "sim:counter");
    ctl_ok(&c, "start");
    ctl_fails(&c, "frobnicate", EINVAL);
    ASSERT_ERROR_LINE(&c, "frobnicate");
    ASSERT_STATE(&c, "streaming");
    ctl_fails(&c, "", EINVAL);
    ctl_fails(&c, "start now", EINVAL);
    ASSERT_STATE(&c, "streaming");
    /* What the writer wrote is quoted as one readable line (found by
     * fuzz/fuzz-ctl.c): a newline cannot forge lines of `state`. */
    ctl_fails(&c, "x\nstopped\ntarget: none\x1b[2J\xff", EINVAL);
    ASSERT_ERROR_LINE(&c, "x\\nstopped\\ntarget: none\\x1b[2J\\xff");
    {
        char *state = crt_channel_state_text(c.ch);
        guint lines = 0;

        for (const char *p = state; *p; p++)
            lines += *p == '\n';
        g_assert_cmpuint(lines, ==, 8);
        g_free(state);
    }
    ASSERT_STATE(&c, "streaming");
    ctl_ok(&c, "stop-wait");
    chan_close(&c);
}

/* An empty line clears the target; a bad spec or one that cannot open
 * fails and leaves the target as it was. */
static void test_target_set_and_clear(void)
{
    Chan c;
    GError *error = NULL;
    char *text;

    chan_open(&c);
    target_ok(&c, "sim:counter");
    g_assert_cmpint(crt_channel_set_target(c.ch, "sim:counter rate=banana", NULL, &error),
                    ==, -EINVAL);
    g_assert_nonnull(error);
    g_clear_error(&error);
    g_assert_cmpint(crt_channel_set_target(c.ch, "/nonexistent/crtfs-test", NULL, &error),
                    <, 0);
    g_assert_nonnull(error);
    g_clear_error(&error);
    text = crt_channel_target_text(c.ch);
    g_assert_cmpstr(text, ==, "sim:counter\n");
    g_free(text);

    /* A new target replaces the old one while streaming. */
    ctl_ok(&c, "start");
    target_ok(&c, "sim:zero");
    text = crt_channel_target_text(c.ch);
    g_assert_cmpstr(text, ==, "sim:zero\n");
    g_free(text);

    target_ok(&c, "\n");
    text = crt_channel_target_text(c.ch);
    g_assert_cmpstr(text, ==, "");
    g_free(text);
    text = state_line(&c, "target");
    g_assert_cmpstr(text, ==, "none");
    g_free(text);
    ASSERT_STATE(&c, "stopped");
    ctl_fails(&c, "start", EDESTADDRREQ);
    target_ok(&c, ""); /* clearing nothing is fine */
    chan_close(&c);
}

/* A target write that fails changes nothing: here the configuration cannot
 * make an engine (type ioctl without a code), so either the write succeeds
 * or the target stays unset. */
static void test_target_set_with_bad_config(void)
{
    Chan c;
    GError *error = NULL;
    char *text;
    int r;

    chan_open(&c);
    config_ok(&c, "type", "ioctl");
    r = crt_channel_set_target(c.ch, "sim:counter", NULL, &error);
    text = crt_channel_target_text(c.ch);
    g_test_message("set_target: %d (%s), target now \"%s\"", r,
                   error ? error->message : "no error", text);
    if (r < 0) {
        g_assert_nonnull(error);
        g_assert_cmpstr(text, ==, "");
    } else {
        g_assert_no_error(error);
        ctl_fails(&c, "start", EINVAL);
        ASSERT_ERROR_LINE(&c, "ioctl");
    }
    g_clear_error(&error);
    g_free(text);
    chan_close(&c);
}

/* The same with a target set already (and an engine built for it): a
 * failed write leaves that target in place. */
static void test_target_replace_with_bad_config(void)
{
    Chan c;
    GError *error = NULL;
    char *text;
    int r;

    chan_open(&c);
    target_ok(&c, "sim:counter");
    config_ok(&c, "type", "ioctl");
    r = crt_channel_set_target(c.ch, "sim:zero", NULL, &error);
    text = crt_channel_target_text(c.ch);
    g_test_message("set_target: %d (%s), target now \"%s\"", r,
                   error ? error->message : "no error", text);
    if (r < 0) {
        g_assert_nonnull(error);
        g_assert_cmpstr(text, ==, "sim:counter\n");
    } else {
        g_assert_no_error(error);
        g_assert_cmpstr(text, ==, "sim:zero\n");
    }
    g_clear_error(&error);
    g_free(text);
    chan_close(&c);
}

/* ---- config ---------------------------------------------------------------- */

/* A bad value: EINVAL, the value stays, the error line names the key. */
static void test_config_bad_value(void)
{
    Chan c;
    GError *error = NULL;

    chan_open(&c);
    assert_config(&c, "out_size", "4096\n");
    g_assert_cmpint(crt_channel_config_set(c.ch, "out_size", "12x", &error), ==, -EINVAL);
    g_assert_nonnull(error);
    g_clear_error(&error);
    assert_config(&c, "out_size", "4096\n");
    ASSERT_ERROR_LINE(&c, "out_size");
    g_assert_cmpint(crt_channel_config_set(c.ch, "overflow", "sometimes", &error), ==,
                    -EINVAL);
    g_clear_error(&error);
    assert_config(&c, "overflow", "block\n");
    g_assert_cmpint(crt_channel_config_set(c.ch, "no_such_key", "1", &error), <, 0);
    g_clear_error(&error);
    config_ok(&c, "out_size", "256\n");
    assert_config(&c, "out_size", "256\n");
    chan_close(&c);
}

/* While streaming: a key that needs a stopped target fails with EBUSY and
 * stays; the live keys (framing, overflow, payload) apply at once. */
static void test_config_while_streaming(void)
{
    Chan c;
    GError *error = NULL;

    chan_open(&c);
    target_ok(&c, "sim:counter");
    ctl_ok(&c, "start");
    g_assert_cmpint(crt_channel_config_set(c.ch, "out_size", "256", &error), ==, -EBUSY);
    g_assert_nonnull(error);
    g_clear_error(&error);
    assert_config(&c, "out_size", "4096\n");
    ASSERT_ERROR_LINE(&c, "out_size");
    g_assert_cmpint(crt_channel_config_set(c.ch, "requests", "2", &error), ==, -EBUSY);
    g_clear_error(&error);
    assert_config(&c, "requests", "4\n");
    ASSERT_STATE(&c, "streaming");

    g_assert_cmpint(crt_channel_framing(c.ch), ==, CRT_FRAMING_RECORD);
    config_ok(&c, "framing", "stream");
    assert_config(&c, "framing", "stream\n");
    g_assert_cmpint(crt_channel_framing(c.ch), ==, CRT_FRAMING_STREAM);
    config_ok(&c, "overflow", "drop-oldest");
    assert_config(&c, "overflow", "drop-oldest\n");
    config_ok(&c, "payload", "ping");
    ASSERT_STATE(&c, "streaming");
    ctl_ok(&c, "stop-wait");
    config_ok(&c, "out_size", "256");
    assert_config(&c, "out_size", "256\n");
    chan_close(&c);
}

/* A configuration change while stopped takes effect at the next start: the
 * engine is rebuilt and streams buffers of the new size. */
static void test_config_rebuild(void)
{
    Chan c;
    CrtHubReader *r;
    GArray *recs;

    chan_open(&c);
    /* Slow enough that the pool is never exhausted at the stop (see
     * /channel/config/rebuild-after-pause for that case). */
    target_ok(&c, "sim:counter rate=2000");
    r = crt_hub_reader_new(crt_channel_hub(c.ch), TRUE);
    ctl_ok(&c, "start");
    recs = read_records(&c, r, 20);
    g_assert_cmpuint(recs->len, ==, 20);
    for (guint i = 0; i < recs->len; i++)
        g_assert_cmpuint(rec_at(recs, i)->length, ==, 4096);
    g_array_unref(recs);
    ctl_ok(&c, "stop-wait");
    /* What came before the stop, then end of file. */
    recs = read_records(&c, r, G_MAXUINT);
    g_array_unref(recs);

    config_ok(&c, "out_size", "64");
    ctl_ok(&c, "start");
    ASSERT_STATE(&c, "streaming");
    recs = read_records(&c, r, 50);
    g_assert_cmpuint(recs->len, ==, 50);
    for (guint i = 0; i < recs->len; i++) {
        g_assert_cmpstr(rec_at(recs, i)->status, ==, "ok");
        g_assert_cmpuint(rec_at(recs, i)->length, ==, 64);
    }
    g_array_unref(recs);
    g_assert_cmpuint(stat_of(&c, "out_pool_size"), ==, 16);
    ctl_ok(&c, "stop-wait");
    crt_hub_reader_free(r);
    chan_close(&c);
}

/* The admin's usual order: start with nobody reading (the stream pauses
 * once the pool is kept in the hub), stop, change out_size, start, then
 * read: the kept buffers come first, then the new engine's. */
static void test_config_rebuild_after_pause(void)
{
    Chan c;
    CrtHubReader *r;
    GArray *recs;
    guint i = 0;

    chan_open(&c);
    config_ok(&c, "out_count", "8");
    target_ok(&c, "sim:counter");
    ctl_ok(&c, "start");
    TU_WAIT_FOR(stat_of(&c, "slots_waiting") > 0);
    g_assert_cmpuint(stat_of(&c, "buffers_queued"), ==, 8);
    ctl_ok(&c, "stop-wait");
    config_ok(&c, "out_size", "64");
    ctl_ok(&c, "start");
    r = crt_hub_reader_new(crt_channel_hub(c.ch), TRUE);
    recs = read_records(&c, r, 8 + 50);
    g_test_message("%u records read", recs->len);
    g_assert_cmpuint(recs->len, ==, 8 + 50);
    for (; i < 8; i++)
        g_assert_cmpuint(rec_at(recs, i)->length, ==, 4096);
    for (; i < recs->len; i++)
        g_assert_cmpuint(rec_at(recs, i)->length, ==, 64);
    g_array_unref(recs);
    ctl_ok(&c, "stop-wait");
    crt_hub_reader_free(r);
    chan_close(&c);
}

/* ---- shutdown --------------------------------------------------------------- */

/* After crt_channel_shutdown every control write fails with ENODEV and
 * every read ends. */
static void test_shutdown(void)
{
    Chan c;
    CrtHubReader *r;
    CrtSendSession *s;
    GError *error = NULL;
    char buf[64];

    chan_open(&c);
    target_ok(&c, "sim:counter");
    r = crt_hub_reader_new(crt_channel_hub(c.ch), FALSE);
    s = crt_send_open(c.ch);
    ctl_ok(&c, "start");
    crt_channel_shutdown(c.ch);
    crt_channel_shutdown(c.ch); /* twice is fine */
    ASSERT_STATE(&c, "stopped");
    ctl_fails(&c, "start", ENODEV);
    ctl_fails(&c, "stop", ENODEV);
    g_assert_cmpint(crt_channel_set_target(c.ch, "sim:counter", NULL, &error), ==,
                    -ENODEV);
    g_clear_error(&error);
    g_assert_cmpint(crt_channel_config_set(c.ch, "framing", "stream", &error), ==,
                    -ENODEV);
    g_clear_error(&error);
    ASSERT_ERROR_LINE(&c, "removed");
    while (crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_STREAM) > 0)
        ;
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_STREAM), ==, 0);
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_STREAM), ==, 0);
    g_assert_cmpint(crt_send_write(s, "read\n", 5, &error), <, 0);
    g_clear_error(&error);
    g_assert_cmpint(crt_send_read(s, buf, sizeof buf), ==, 0);
    crt_send_close(s);
    crt_hub_reader_free(r);
    chan_close(&c);
}

/* ---- logging --------------------------------------------------------------- */

/* The target log domain: lines as the daemon's log would get them. */
typedef struct {
    GMutex lock;
    GPtrArray *lines; /* "W text" or "M text" */
} Logged;

static void capture_log(const char *domain, GLogLevelFlags level, const char *msg,
                        gpointer data)
{
    Logged *l = data;

    g_mutex_lock(&l->lock);
    g_ptr_array_add(
        l->lines, g_strdup_printf("%c %s", level & G_LOG_LEVEL_WARNING ? 'W' : 'M', msg));
    g_mutex_unlock(&l->lock);
}

static guint logged_matching(Logged *l, const char *prefix)
{
    guint n = 0;

    g_mutex_lock(&l->lock);
    for (guint i = 0; i < l->lines->len; i++)
        n += g_str_has_prefix(g_ptr_array_index(l->lines, i), prefix);
    g_mutex_unlock(&l->lock);
    return n;
}

/* One line per state change (notice) and per error (warning); twelve
 * errors in a row: five are logged, the rest held back. */
static void test_log_events(void)
{
    Logged l = {.lines = g_ptr_array_new_with_free_func(g_free)};
    Chan c;
    guint id;

    g_mutex_init(&l.lock);
    id = g_log_set_handler(CRT_TARGET_LOG_DOMAIN, G_LOG_LEVEL_MASK, capture_log, &l);
    chan_open(&c);
    target_ok(&c, "sim:records fail=1 errno=EIO fatal");
    g_assert_cmpuint(logged_matching(&l, "M test: target sim:records fail=1"), ==, 1);
    for (int i = 0; i < 12; i++) {
        ctl_ok(&c, "start"); /* opens the dead target again: fails at once */
        TU_WAIT_FOR(state_is(&c, "stopped"));
        TU_WAIT_FOR(logged_matching(&l, "W ") >= (guint)MIN(i + 1, 5));
    }
    g_usleep(100 * 1000); /* a sixth line would be there by now */
    g_assert_cmpuint(logged_matching(&l, "W test: stream ended: Input/output error"), ==,
                     5);
    g_assert_cmpuint(logged_matching(&l, "M test: streaming"), >=, 1);
    chan_close(&c);
    g_log_remove_handler(CRT_TARGET_LOG_DOMAIN, id);
    g_ptr_array_unref(l.lines);
    g_mutex_clear(&l.lock);
}

/* ---- main ------------------------------------------------------------------ */

static const TuCase cases[] = {
    {"/channel/ctl/start-without-target", test_ctl_start_without_target},
    {"/channel/ctl/lifecycle", test_ctl_lifecycle},
    {"/channel/ctl/unknown-command", test_ctl_unknown_command},
    {"/channel/target/set-and-clear", test_target_set_and_clear},
    {"/channel/target/bad-config", test_target_set_with_bad_config},
    {"/channel/target/bad-config-replacing", test_target_replace_with_bad_config},
    {"/channel/config/bad-value", test_config_bad_value},
    {"/channel/config/while-streaming", test_config_while_streaming},
    {"/channel/config/rebuild", test_config_rebuild},
    {"/channel/config/rebuild-after-pause", test_config_rebuild_after_pause},
    {"/channel/shutdown", test_shutdown},
    {"/channel/log/events-and-burst", test_log_events},
};

int main(int argc, char **argv)
{
    return tu_run_isolated(&argc, &argv, cases, G_N_ELEMENTS(cases), TU_CASE_TIMEOUT_S);
}
