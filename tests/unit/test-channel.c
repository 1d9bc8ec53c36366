/* crtfs tests - one target directory without FUSE: `ctl` commands and
 * state, `target`, `config/`, `stats`, `send` sessions, `input`, the
 * broadcast hub as the channel feeds it, and shutdown.
 *
 * The channel runs on the default loop and opens targets as the daemon
 * (NULL credentials); every target here is the simulator.  Each case runs in
 * a child process with a time limit, so a hang or a failed assertion costs
 * that case alone.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <gio/gio.h>

#include <crtfs/crtfs.h>

#include "channel.h"
#include "channel-private.h"
#include "testutil.h"

/* A case that runs longer than this has hung. */
#define CASE_TIMEOUT_S 120

/* ---- a channel and its notify callback ------------------------------------- */

typedef struct {
    CrtChannel *ch;
    TuCounter notified;
} Chan;

static void on_notify(CrtChannel *ch, gpointer data)
{
    tu_counter_bump(&((Chan *)data)->notified);
}

static void chan_open(Chan *c)
{
    memset(c, 0, sizeof *c);
    tu_counter_init(&c->notified);
    c->ch = crt_channel_new("test", NULL, on_notify, c);
    g_assert_cmpstr(crt_channel_name(c->ch), ==, "test");
}

static void chan_close(Chan *c)
{
    crt_channel_free(c->ch);
    tu_counter_clear(&c->notified);
}

static void ctl_ok(Chan *c, const char *line)
{
    GError *error = NULL;

    g_assert_cmpint(crt_channel_ctl(c->ch, line, &error), ==, 0);
    g_assert_no_error(error);
}

/* The command fails with `err`, with a GError and an error line. */
static void ctl_fails(Chan *c, const char *line, int err)
{
    GError *error = NULL;

    g_assert_cmpint(crt_channel_ctl(c->ch, line, &error), ==, -err);
    g_assert_nonnull(error);
    g_error_free(error);
}

static void target_ok(Chan *c, const char *spec)
{
    GError *error = NULL;

    g_assert_cmpint(crt_channel_set_target(c->ch, spec, NULL, &error), ==, 0);
    g_assert_no_error(error);
}

static void config_ok(Chan *c, const char *key, const char *value)
{
    GError *error = NULL;

    g_assert_cmpint(crt_channel_config_set(c->ch, key, value, &error), ==, 0);
    g_assert_no_error(error);
}

static void assert_config(Chan *c, const char *key, const char *shown)
{
    char *value = crt_channel_config_get(c->ch, key);

    g_assert_cmpstr(value, ==, shown);
    g_free(value);
}

/* The value of the `key: value` line of `state`, or NULL. */
static char *state_line(Chan *c, const char *key)
{
    char *text = crt_channel_state_text(c->ch);
    char **lines = g_strsplit(text, "\n", -1);
    char *prefix = g_strconcat(key, ": ", NULL);
    char *value = NULL;

    for (guint i = 1; lines[i] && !value; i++) {
        if (g_str_has_prefix(lines[i], prefix))
            value = g_strdup(lines[i] + strlen(prefix));
    }
    g_free(prefix);
    g_strfreev(lines);
    g_free(text);
    return value;
}

/* The first line of `state`. */
static char *state_word(Chan *c)
{
    char *text = crt_channel_state_text(c->ch);
    char *nl = strchr(text, '\n');

    g_assert_nonnull(nl);
    *nl = '\0';
    return text;
}

#define ASSERT_STATE(c, word)                                                            \
    do {                                                                                 \
        char *state_word_ = state_word(c);                                               \
        g_assert_cmpstr(state_word_, ==, (word));                                        \
        g_free(state_word_);                                                             \
    } while (0)

static gboolean state_is(Chan *c, const char *word)
{
    char *w = state_word(c);
    gboolean same = strcmp(w, word) == 0;

    g_free(w);
    return same;
}

/* The `error:` line contains `needle`. */
#define ASSERT_ERROR_LINE(c, needle)                                                     \
    do {                                                                                 \
        char *error_line_ = state_line((c), "error");                                    \
        g_assert_nonnull(error_line_);                                                   \
        if (!strstr(error_line_, (needle)))                                              \
            g_assert_cmpstr(error_line_, ==, (needle));                                  \
        g_free(error_line_);                                                             \
    } while (0)

/* The number on the `key value` line of `stats`; fails if it is missing. */
static guint64 stat_of(Chan *c, const char *key)
{
    char *text = crt_channel_stats_text(c->ch);
    char **lines = g_strsplit(text, "\n", -1);
    guint64 value = 0;
    gboolean found = FALSE;

    for (guint i = 0; lines[i] && !found; i++) {
        char **kv = g_strsplit(lines[i], " ", -1);

        if (g_strv_length(kv) == 2 && strcmp(kv[0], key) == 0) {
            found = TRUE;
            g_assert_true(
                g_ascii_string_to_unsigned(kv[1], 10, 0, G_MAXUINT64, &value, NULL));
        }
        g_strfreev(kv);
    }
    if (!found)
        g_test_message("stats:\n%s", text);
    g_strfreev(lines);
    g_free(text);
    g_assert_true(found);
    return value;
}

/* ---- records of the channel's hub ------------------------------------------ */

typedef struct {
    guint64 seq;
    char status[32];
    size_t length;
} Rec;

/* Read the channel's `records` until `want` records came (or the stream
 * ended); each header is checked, each payload skipped. */
static GArray *read_records(Chan *c, CrtHubReader *r, guint want)
{
    GArray *recs = g_array_new(FALSE, TRUE, sizeof(Rec));
    GByteArray *pending = g_byte_array_new();
    char *buf = g_malloc(65536);
    gint64 deadline = g_get_monotonic_time() + TU_EVENTUALLY_MS * 1000;

    while (recs->len < want) {
        guint seen = tu_counter_get(&c->notified);
        gssize n = crt_hub_read(r, buf, 65536, crt_channel_framing(c->ch));
        const guint8 *nl;

        if (n == 0)
            break;
        if (n == -EAGAIN) {
            g_assert_cmpint(g_get_monotonic_time(), <, deadline);
            tu_counter_wait(&c->notified, seen, 10);
            continue;
        }
        g_assert_cmpint(n, >, 0);
        g_byte_array_append(pending, (guint8 *)buf, (guint)n);
        while ((nl = memchr(pending->data, '\n', pending->len))) {
            size_t hlen = (size_t)(nl - pending->data);
            char *line = g_strndup((char *)pending->data, hlen);
            char **w = g_strsplit(line, " ", -1);
            Rec rec = {0};
            guint64 len;

            g_assert_cmpuint(g_strv_length(w), ==, 4);
            g_assert_true(
                g_ascii_string_to_unsigned(w[0], 10, 1, G_MAXUINT64, &rec.seq, NULL));
            g_assert_true(
                g_ascii_string_to_unsigned(w[3], 10, 0, G_MAXUINT64, &len, NULL));
            g_assert_cmpuint(strlen(w[2]), <, sizeof rec.status);
            strcpy(rec.status, w[2]);
            rec.length = (size_t)len;
            g_strfreev(w);
            g_free(line);
            if (pending->len < hlen + 1 + rec.length)
                break;
            g_byte_array_remove_range(pending, 0, (guint)(hlen + 1 + rec.length));
            g_array_append_val(recs, rec);
        }
    }
    g_free(buf);
    g_byte_array_unref(pending);
    return recs;
}

static const Rec *rec_at(GArray *recs, guint i)
{
    return &g_array_index(recs, Rec, i);
}

/* ---- ctl, target, state ---------------------------------------------------- */

/* `start` without a target: ENOTCONN, and `state` says why. */
static void test_ctl_start_without_target(void)
{
    Chan c;
    char *target;

    chan_open(&c);
    ASSERT_STATE(&c, "stopped");
    target = state_line(&c, "target");
    g_assert_cmpstr(target, ==, "none");
    g_free(target);
    ctl_fails(&c, "start", ENOTCONN);
    ASSERT_ERROR_LINE(&c, "no target");
    ASSERT_STATE(&c, "stopped");
    /* suspend and resume need a target too. */
    ctl_fails(&c, "suspend", ENOTCONN);
    ctl_fails(&c, "resume", ENOTCONN);
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
        g_assert_cmpuint(lines, ==, 6);
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
    ctl_fails(&c, "start", ENOTCONN);
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

/* ---- send ------------------------------------------------------------------ */

static void send_ok(CrtSendSession *s, const void *buf, size_t len)
{
    GError *error = NULL;

    g_assert_cmpint(crt_send_write(s, buf, len, &error), ==, 0);
    g_assert_no_error(error);
}

/* The next reply, waiting for it; newly allocated. */
static GBytes *send_reply(Chan *c, CrtSendSession *s)
{
    char buf[4096];
    gint64 deadline = g_get_monotonic_time() + TU_EVENTUALLY_MS * 1000;

    for (;;) {
        guint seen = tu_counter_get(&c->notified);
        gssize n = crt_send_read(s, buf, sizeof buf);

        if (n != -EAGAIN) {
            g_assert_cmpint(n, >, 0);
            return g_bytes_new(buf, (gsize)n);
        }
        /* The reply may complete between that read and this question:
         * then the next read must return it (above). */
        if (crt_send_readable(s))
            continue;
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        tu_counter_wait(&c->notified, seen, 10);
    }
}

#define ASSERT_REPLY(c, s, want, want_len)                                               \
    do {                                                                                 \
        GBytes *reply_ = send_reply((c), (s));                                           \
        gsize reply_len_;                                                                \
        const char *reply_data_ = g_bytes_get_data(reply_, &reply_len_);                 \
        g_assert_cmpmem(reply_data_, reply_len_, (want), (want_len));                    \
        g_bytes_unref(reply_);                                                           \
    } while (0)

/* A sleep ioctl request for `ms` milliseconds: header line, then the uint32
 * argument. */
static size_t sleep_request(char *buf, size_t size, guint32 ms, const char *extra)
{
    int n =
        g_snprintf(buf, size, "ioctl ioctl=0x%x%s size=4\n", CRT_SIM_IOCTL_SLEEP, extra);

    memcpy(buf + n, &ms, sizeof ms);
    return (size_t)n + sizeof ms;
}

/* A transaction on the echo simulator: `ok N` and the N bytes back; then
 * end of file, nothing being pending. */
static void test_send_transaction(void)
{
    Chan c;
    CrtSendSession *s;
    static const char req[] = "internal-ioctl size=16\nhello";
    char buf[64];

    chan_open(&c);
    target_ok(&c, "sim:echo");
    s = crt_send_open(c.ch);
    g_assert_cmpint(crt_send_read(s, buf, sizeof buf), ==, 0);
    g_assert_true(crt_send_readable(s));
    send_ok(s, req, strlen(req));
    ASSERT_REPLY(&c, s, "ok 5\nhello", 10);
    g_assert_cmpint(crt_send_read(s, buf, sizeof buf), ==, 0);
    /* The response buffer bounds what comes back. */
    send_ok(s, "internal-ioctl size=3\nhello", 27);
    ASSERT_REPLY(&c, s, "ok 3\nhel", 8);
    crt_send_close(s);
    chan_close(&c);
}

/* Replies come in submission order, each on its own read, even when the
 * later request completes first; a reply may be read in pieces. */
static void test_send_order(void)
{
    Chan c;
    CrtSendSession *s;
    char req[128], buf[64];
    size_t len = sleep_request(req, sizeof req, 200, "");
    guint32 ms = 200;

    chan_open(&c);
    target_ok(&c, "sim:echo");
    s = crt_send_open(c.ch);
    send_ok(s, req, len);
    send_ok(s, "internal-ioctl\nhello", 20);
    /* The first reply in two reads: its line, then its 4 bytes. */
    TU_WAIT_FOR(crt_send_readable(s));
    g_assert_cmpint(crt_send_read(s, buf, 5), ==, 5);
    g_assert_cmpmem(buf, 5, "ok 4\n", 5);
    g_assert_cmpint(crt_send_read(s, buf, sizeof buf), ==, 4);
    g_assert_cmpmem(buf, 4, &ms, 4);
    ASSERT_REPLY(&c, s, "ok 5\nhello", 10);
    g_assert_cmpint(crt_send_read(s, buf, sizeof buf), ==, 0);
    crt_send_close(s);
    chan_close(&c);
}

/* A request that outlives its timeout completes with ETIMEDOUT. */
static void test_send_timeout(void)
{
    Chan c;
    CrtSendSession *s;
    char req[128];
    size_t len = sleep_request(req, sizeof req, 300, " timeout=20");

    chan_open(&c);
    target_ok(&c, "sim:echo");
    s = crt_send_open(c.ch);
    send_ok(s, req, len);
    ASSERT_REPLY(&c, s, "ETIMEDOUT 0\n", 12);
    crt_send_close(s);
    chan_close(&c);
}

/* `cancel` cancels the session's pending requests. */
static void test_send_cancel(void)
{
    Chan c;
    CrtSendSession *s;
    char req[128], buf[64];
    size_t len = sleep_request(req, sizeof req, 5000, "");
    gint64 t0;

    chan_open(&c);
    target_ok(&c, "sim:echo");
    s = crt_send_open(c.ch);
    send_ok(s, req, len);
    g_assert_cmpint(crt_send_read(s, buf, sizeof buf), ==, -EAGAIN);
    g_assert_false(crt_send_readable(s));
    t0 = g_get_monotonic_time();
    send_ok(s, "cancel\n", 7);
    ASSERT_REPLY(&c, s, "ECANCELED 0\n", 12);
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 2 * G_USEC_PER_SEC);
    g_assert_cmpint(crt_send_read(s, buf, sizeof buf), ==, 0);
    send_ok(s, "cancel", 6); /* nothing pending: nothing happens */
    g_assert_cmpint(crt_send_read(s, buf, sizeof buf), ==, 0);
    crt_send_close(s);
    chan_close(&c);
}

/* A bad header fails the write with EINVAL and an error line; nothing is
 * submitted. */
static void test_send_bad_header(void)
{
    static const char *const bad[] = {
        "frobnicate\n",
        "read size=abc\n",
        "read size=99999999999\n",
        "ioctl ioctl=0xzz\n",
        "read timeout=-1\n",
        "read bogus=1\n",
        "size=4 read\n",
        "\n",
    };
    Chan c;
    CrtSendSession *s;
    char buf[64];

    chan_open(&c);
    target_ok(&c, "sim:echo");
    s = crt_send_open(c.ch);
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        GError *error = NULL;

        g_test_message("header %s", bad[i]);
        g_assert_cmpint(crt_send_write(s, bad[i], strlen(bad[i]), &error), ==, -EINVAL);
        g_assert_nonnull(error);
        g_clear_error(&error);
    }
    ASSERT_ERROR_LINE(&c, "send:");
    g_assert_cmpint(crt_send_read(s, buf, sizeof buf), ==, 0);
    g_assert_cmpuint(stat_of(&c, "sends"), ==, 0);
    crt_send_close(s);
    chan_close(&c);
}

/* Without a target a request fails at once. */
static void test_send_without_target(void)
{
    Chan c;
    CrtSendSession *s;
    GError *error = NULL;
    char buf[16];

    chan_open(&c);
    s = crt_send_open(c.ch);
    g_assert_cmpint(crt_send_write(s, "read\n", 5, &error), ==, -ENOTCONN);
    g_assert_nonnull(error);
    g_clear_error(&error);
    g_assert_cmpint(crt_send_read(s, buf, sizeof buf), ==, 0);
    crt_send_close(s);
    chan_close(&c);
}

/* Closing a session with a request pending cancels it: nothing waits for
 * the second it would take, nothing leaks. */
static void test_send_close_pending(void)
{
    Chan c;
    CrtSendSession *s, *other;
    char req[128];
    size_t len = sleep_request(req, sizeof req, 1000, "");
    gint64 t0;

    chan_open(&c);
    target_ok(&c, "sim:echo");
    s = crt_send_open(c.ch);
    other = crt_send_open(c.ch);
    send_ok(s, req, len);
    send_ok(s, "internal-ioctl\nhi", 17);
    send_ok(other, "internal-ioctl\nyo", 17);
    t0 = g_get_monotonic_time();
    crt_send_close(s);
    /* Another session is not affected. */
    ASSERT_REPLY(&c, other, "ok 2\nyo", 7);
    crt_send_close(other);
    TU_WAIT_FOR(stat_of(&c, "requests_in_flight") == 0);
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 900 * G_TIME_SPAN_MILLISECOND);
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

/* ---- main ------------------------------------------------------------------ */

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
    {"/channel/stats/keys", test_stats_keys},
    {"/channel/stream/stop-ends-readers", test_stop_ends_readers},
    {"/channel/stream/error-reported", test_error_completion_reported},
    {"/channel/stream/fatal-error", test_fatal_completion},
    {"/channel/stream/write-kept-bounded", test_write_stream_kept_bounded},
    {"/channel/send/transaction", test_send_transaction},
    {"/channel/send/order", test_send_order},
    {"/channel/send/timeout", test_send_timeout},
    {"/channel/send/cancel", test_send_cancel},
    {"/channel/send/bad-header", test_send_bad_header},
    {"/channel/send/without-target", test_send_without_target},
    {"/channel/send/close-pending", test_send_close_pending},
    {"/channel/input", test_input},
    {"/channel/shutdown", test_shutdown},
    {"/channel/log/events-and-burst", test_log_events},
};

int main(int argc, char **argv)
{
    return tu_run_isolated(&argc, &argv, cases, G_N_ELEMENTS(cases), CASE_TIMEOUT_S);
}
