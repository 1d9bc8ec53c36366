/* crtfs unit tests - the channel's typed control operations
 * (crt_channel_start, _stop, _suspend, _resume, _purges_on_suspend) and the
 * `ctl` words as a thin layer on them; the `send` header parser
 * (daemon/send-header.c).  The ctl file's behaviour as users see it is in
 * test-channel.c. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <gio/gio.h>

#include "channel.h"
#include "send-header.h"
#include "testutil.h"

#include <glib/gstdio.h>

static CrtChannel *channel_with_sim(void)
{
    CrtChannel *ch = crt_channel_new("ops", NULL, NULL, NULL);
    GError *error = NULL;

    g_assert_cmpint(crt_channel_set_target(ch, "sim:records size=64", NULL, &error), ==,
                    0);
    g_assert_no_error(error);
    return ch;
}

/* The `error:` line of `state`. */
static char *error_line(CrtChannel *ch)
{
    char *text = crt_channel_state_text(ch);
    char *line = strstr(text, "\nerror: ");
    char *value;

    g_assert_nonnull(line);
    value = g_strndup(line + 8, strcspn(line + 8, "\n"));
    g_free(text);
    return value;
}

/* `r` is -err with a GError whose message is also the `error:` line and
 * contains `words`; the error is freed. */
static void assert_failed_as(CrtChannel *ch, int r, GError *error, int err,
                             const char *words)
{
    char *line = error_line(ch);

    g_assert_cmpint(r, ==, -err);
    g_assert_nonnull(error);
    g_assert_nonnull(strstr(error->message, words));
    g_assert_cmpstr(line, ==, error->message);
    g_free(line);
    g_error_free(error);
}

/* `call` (which sets `error`) fails so. */
#define assert_failed(ch, call, error, err, words)                                       \
    do {                                                                                 \
        int r_ = (call);                                                                 \
        assert_failed_as(ch, r_, error, err, words);                                     \
        error = NULL;                                                                    \
    } while (0)

static void test_lifecycle(void)
{
    CrtChannel *ch = channel_with_sim();
    GError *error = NULL;

    g_assert_cmpint(crt_channel_start(ch, &error), ==, 0);
    g_assert_no_error(error);
    g_assert_cmpint(crt_channel_state(ch), ==, CRT_STATE_STREAMING);
    assert_failed(ch, crt_channel_start(ch, &error), error, EALREADY,
                  "already streaming");
    g_assert_cmpint(crt_channel_suspend(ch, NULL), ==, 0);
    g_assert_cmpint(crt_channel_state(ch), ==, CRT_STATE_SUSPENDED);
    assert_failed(ch, crt_channel_suspend(ch, &error), error, EALREADY,
                  "already suspended");
    g_assert_cmpint(crt_channel_resume(ch, NULL), ==, 0);
    g_assert_cmpint(crt_channel_state(ch), ==, CRT_STATE_STREAMING);
    assert_failed(ch, crt_channel_resume(ch, &error), error, EALREADY, "not suspended");
    g_assert_cmpint(crt_channel_stop(ch, TRUE, NULL), ==, 0);
    g_assert_cmpint(crt_channel_state(ch), ==, CRT_STATE_STOPPED);
    /* stop is idempotent, as `echo stop > ctl` twice is */
    g_assert_cmpint(crt_channel_stop(ch, FALSE, NULL), ==, 0);
    crt_channel_free(ch);
}

static void test_without_target(void)
{
    CrtChannel *ch = crt_channel_new("ops", NULL, NULL, NULL);
    GError *error = NULL;

    assert_failed(ch, crt_channel_start(ch, &error), error, EDESTADDRREQ, "no target");
    assert_failed(ch, crt_channel_suspend(ch, &error), error, EDESTADDRREQ, "suspend:");
    assert_failed(ch, crt_channel_resume(ch, &error), error, EDESTADDRREQ, "resume:");
    crt_channel_free(ch);
}

static void test_purge_key(void)
{
    CrtChannel *ch = crt_channel_new("ops", NULL, NULL, NULL);

    g_assert_false(crt_channel_purges_on_suspend(ch));
    g_assert_cmpint(crt_channel_config_set(ch, "purge_on_suspend", "1", NULL), ==, 0);
    g_assert_true(crt_channel_purges_on_suspend(ch));
    g_assert_cmpint(crt_channel_config_set(ch, "purge_on_suspend", "0", NULL), ==, 0);
    g_assert_false(crt_channel_purges_on_suspend(ch));
    crt_channel_free(ch);
}

/* After shutdown every operation, typed or text, fails with ENODEV. */
static void test_after_shutdown(void)
{
    CrtChannel *ch = channel_with_sim();
    GError *error = NULL;

    crt_channel_shutdown(ch);
    assert_failed(ch, crt_channel_start(ch, &error), error, ENODEV, "being removed");
    assert_failed(ch, crt_channel_stop(ch, TRUE, &error), error, ENODEV, "being removed");
    assert_failed(ch, crt_channel_suspend(ch, &error), error, ENODEV, "being removed");
    assert_failed(ch, crt_channel_resume(ch, &error), error, ENODEV, "being removed");
    assert_failed(ch, crt_channel_config_set(ch, "out_count", "4", &error), error, ENODEV,
                  "being removed");
    assert_failed(ch, crt_channel_set_target(ch, "sim:zero", NULL, &error), error, ENODEV,
                  "being removed");
    assert_failed(ch, crt_channel_ctl(ch, "start", &error), error, ENODEV,
                  "being removed");
    assert_failed(ch, crt_channel_ctl(ch, "bogus", &error), error, ENODEV,
                  "being removed");
    crt_channel_free(ch);
}

/* Each word reaches its operation; anything else is EINVAL. */
static void test_ctl_words(void)
{
    CrtChannel *ch = channel_with_sim();
    GError *error = NULL;

    g_assert_cmpint(crt_channel_ctl(ch, " start\n", NULL), ==, 0);
    g_assert_cmpint(crt_channel_state(ch), ==, CRT_STATE_STREAMING);
    g_assert_cmpint(crt_channel_ctl(ch, "suspend", NULL), ==, 0);
    g_assert_cmpint(crt_channel_state(ch), ==, CRT_STATE_SUSPENDED);
    g_assert_cmpint(crt_channel_ctl(ch, "resume", NULL), ==, 0);
    g_assert_cmpint(crt_channel_state(ch), ==, CRT_STATE_STREAMING);
    g_assert_cmpint(crt_channel_ctl(ch, "stop-wait", NULL), ==, 0);
    g_assert_cmpint(crt_channel_state(ch), ==, CRT_STATE_STOPPED);
    assert_failed(ch, crt_channel_ctl(ch, "Start", &error), error, EINVAL,
                  "unknown command \"Start\"");
    assert_failed(ch, crt_channel_ctl(ch, "start now", &error), error, EINVAL,
                  "expected start, stop");
    crt_channel_free(ch);
}

/* The value of the `key: value` line of `state` (newly allocated). */
static char *state_value(CrtChannel *ch, const char *key)
{
    char *text = crt_channel_state_text(ch);
    char *prefix = g_strdup_printf("\n%s: ", key);
    char *line = strstr(text, prefix);
    char *value;

    g_assert_nonnull(line);
    line += strlen(prefix);
    value = g_strndup(line, strcspn(line, "\n"));
    g_free(prefix);
    g_free(text);
    return value;
}

static gboolean not_streaming(gpointer data)
{
    return crt_channel_state(data) != CRT_STATE_STREAMING;
}

/* `error:` has a time, and clears once the target streams again. */
static void test_error_clears(void)
{
    CrtChannel *ch = crt_channel_new("ops", NULL, NULL, NULL);
    gint64 before = g_get_real_time() / G_USEC_PER_SEC;
    char *at, *err;

    g_assert_cmpint(crt_channel_start(ch, NULL), ==, -EDESTADDRREQ);
    err = state_value(ch, "error");
    at = state_value(ch, "error_at");
    g_assert_nonnull(strstr(err, "no target"));
    {
        GDateTime *t = g_date_time_new_from_iso8601(at, NULL);

        g_assert_nonnull(t); /* ISO 8601 with the zone */
        g_assert_cmpint(g_date_time_to_unix(t), >=, before);
        g_assert_cmpint(g_date_time_to_unix(t), <=, before + 60);
        g_date_time_unref(t);
    }
    g_free(err);
    g_free(at);
    g_assert_cmpint(crt_channel_set_target(ch, "sim:zero", NULL, NULL), ==, 0);
    err = state_value(ch, "error");
    at = state_value(ch, "error_at");
    g_assert_cmpstr(err, ==, "none");
    g_assert_cmpstr(at, ==, "none");
    g_free(err);
    g_free(at);
    g_assert_cmpint(crt_channel_resume(ch, NULL), ==, -EALREADY);
    err = state_value(ch, "error");
    g_assert_cmpstr(err, ==, "resume: not suspended");
    g_free(err);
    g_assert_cmpint(crt_channel_start(ch, NULL), ==, 0);
    err = state_value(ch, "error");
    g_assert_cmpstr(err, ==, "none");
    g_free(err);
    crt_channel_free(ch);
}

/* A target whose stream ended by itself is absent until `start` opens it
 * again, and says why. */
static void test_presence_ended(void)
{
    CrtChannel *ch = crt_channel_new("ops", NULL, NULL, NULL);
    char *p;

    g_assert_false(crt_channel_present(ch));
    g_assert_cmpint(crt_channel_set_target(ch, "sim:records limit=3", NULL, NULL), ==, 0);
    g_assert_true(crt_channel_present(ch));
    g_assert_cmpint(crt_channel_start(ch, NULL), ==, 0);
    g_assert_true(tu_wait_until(not_streaming, ch, 10000));
    g_assert_false(crt_channel_present(ch));
    p = state_value(ch, "presence");
    g_assert_true(g_str_has_prefix(p, "absent (stream ended: end of file"));
    g_assert_nonnull(strstr(p, "`start` opens it again"));
    g_free(p);
    g_assert_cmpint(crt_channel_stop(ch, TRUE, NULL), ==, 0);
    g_assert_cmpint(crt_channel_start(ch, NULL), ==, 0);
    g_assert_true(tu_wait_until(not_streaming, ch, 10000)); /* three records again */
    g_assert_cmpint(crt_channel_set_target(ch, "sim:zero", NULL, NULL), ==, 0);
    g_assert_true(crt_channel_present(ch));
    crt_channel_free(ch);
}

/* A path that now names nothing: absent, and a start that cannot open it
 * says why in `presence:` too. */
static void test_presence_path_gone(void)
{
    char *dir = tu_tmpdir(), *path = g_build_filename(dir, "dev", NULL);
    char *spec = g_strconcat(path, NULL), *p;
    CrtChannel *ch = crt_channel_new("ops", NULL, NULL, NULL);

    g_assert_true(g_file_set_contents(path, "abc", 3, NULL));
    g_assert_cmpint(crt_channel_set_target(ch, spec, NULL, NULL), ==, 0);
    g_assert_true(crt_channel_present(ch));
    g_assert_cmpint(g_unlink(path), ==, 0);
    g_assert_false(crt_channel_present(ch));
    p = state_value(ch, "presence");
    g_assert_true(g_str_has_prefix(p, "absent (the path names another file now"));
    g_free(p);
    g_assert_cmpint(crt_channel_start(ch, NULL), ==, -ENOENT);
    g_assert_false(crt_channel_present(ch));
    p = state_value(ch, "presence");
    g_assert_true(g_str_has_prefix(p, "absent (cannot open "));
    g_assert_nonnull(strstr(p, path));
    g_assert_nonnull(strstr(p, "No such file or directory"));
    g_free(p);
    crt_channel_free(ch);
    tu_rmrf(dir);
    g_free(spec);
    g_free(path);
    g_free(dir);
}

/* ---- send requests in pieces (payload=) ------------------------------------------ */

static gboolean send_readable(gpointer s)
{
    return crt_send_readable(s);
}

/* The next reply of `s`, whole (newly allocated). */
static char *send_reply(CrtSendSession *s)
{
    char buf[256];
    gssize n;

    g_assert_true(tu_wait_until(send_readable, s, 10000));
    n = crt_send_read(s, buf, sizeof buf - 1);
    g_assert_cmpint(n, >, 0);
    buf[n] = '\0';
    return g_strdup(buf);
}

static void send_ok(CrtSendSession *s, const char *bytes)
{
    GError *error = NULL;

    g_assert_cmpint(crt_send_write(s, bytes, strlen(bytes), &error), ==, 0);
    g_assert_no_error(error);
}

/* A header with payload= waits for the rest of its payload (bash's printf
 * writes header and payload as two writes). */
static void test_send_pieces(void)
{
    CrtChannel *ch = crt_channel_new("ops", NULL, NULL, NULL);
    CrtSendSession *s;
    GError *error = NULL;
    char *reply;

    g_assert_cmpint(crt_channel_set_target(ch, "sim:echo", NULL, NULL), ==, 0);
    g_assert_cmpint(crt_channel_start(ch, NULL), ==, 0);
    g_assert_cmpint(crt_channel_stop(ch, TRUE, NULL), ==, 0);
    s = crt_send_open(ch);
    send_ok(s, "write payload=11\n");
    g_assert_false(crt_send_readable(s)); /* it waits for its payload */
    g_assert_cmpint(crt_send_read(s, (char[8]){0}, 8), ==, -EAGAIN);
    send_ok(s, "hello");
    send_ok(s, " world");
    reply = send_reply(s);
    g_assert_cmpstr(reply, ==, "ok 11\n");
    g_free(reply);
    send_ok(s, "read size=11");
    reply = send_reply(s);
    g_assert_cmpstr(reply, ==, "ok 11\nhello world");
    g_free(reply);
    /* payload=0 and a whole payload in one write go at once, as before */
    send_ok(s, "write payload=3\nabc");
    reply = send_reply(s);
    g_assert_cmpstr(reply, ==, "ok 3\n");
    g_free(reply);
    /* more than payload= says: refused, nothing sent */
    g_assert_cmpint(crt_send_write(s, "write payload=2\nabc", 19, &error), ==, -EINVAL);
    g_assert_nonnull(strstr(error->message, "payload=2"));
    g_clear_error(&error);
    send_ok(s, "write payload=4\nab");
    g_assert_cmpint(crt_send_write(s, "cde", 3, &error), ==, -EINVAL);
    g_assert_nonnull(strstr(error->message, "dropped"));
    g_clear_error(&error);
    g_assert_true(crt_send_readable(s)); /* nothing pending: end of file */
    g_assert_cmpint(crt_send_read(s, (char[8]){0}, 8), ==, 0);
    g_assert_cmpint(crt_send_write(s, "write payload=16777217", 22, &error), ==, -EINVAL);
    g_clear_error(&error);
    send_ok(s, "write payload=5\nab"); /* closed before the rest: nothing sent */
    crt_send_close(s);
    crt_channel_free(ch);
}

/* ---- send headers ----------------------------------------------------------- */

static void header_ok(const char *line, CrtRequestType type, guint64 ioctl,
                      guint64 timeout, guint64 size)
{
    CrtSendHeader h;
    GError *error = NULL;

    g_assert_cmpint(crt_send_header_parse(line, 4099, &h, &error), ==, 0);
    g_assert_no_error(error);
    g_assert_cmpint(h.type, ==, type);
    g_assert_cmpuint(h.ioctl, ==, ioctl);
    g_assert_cmpuint(h.timeout, ==, timeout);
    g_assert_cmpuint(h.size, ==, size);
}

static void header_fails(const char *line, const char *words)
{
    CrtSendHeader h;
    GError *error = NULL;

    g_assert_cmpint(crt_send_header_parse(line, 4099, &h, &error), ==, -EINVAL);
    g_assert_nonnull(error);
    g_assert_nonnull(strstr(error->message, words));
    g_error_free(error);
}

static void test_header_words(void)
{
    header_ok("read", CRT_REQUEST_READ, 0, 0, 4099);
    header_ok("write  timeout=250", CRT_REQUEST_WRITE, 0, 250, 4099);
    header_ok("ioctl ioctl=0x5401 size=60", CRT_REQUEST_IOCTL, 0x5401, 0, 60);
    header_ok("internal-ioctl\tioctl=17 size=0", CRT_REQUEST_INTERNAL_IOCTL, 17, 0, 0);
    header_ok("read size=16777216", CRT_REQUEST_READ, 0, 0, CRT_SEND_MAX_RESPONSE);
    {
        CrtSendHeader h;

        g_assert_cmpint(crt_send_header_parse("write payload=7", 1, &h, NULL), ==, 0);
        g_assert_true(h.has_len);
        g_assert_cmpuint(h.len, ==, 7);
        g_assert_cmpint(crt_send_header_parse("write", 1, &h, NULL), ==, 0);
        g_assert_false(h.has_len);
        g_assert_false(h.has_end);
        g_assert_cmpint(crt_send_header_parse("internal-ioctl until=\\r\\n\\x7e gap=5ms "
                                              "len=4:2:-6 exact=9",
                                              1, &h, NULL),
                        ==, 0);
        g_assert_true(h.has_end);
        g_assert_cmpuint(h.end.until_len, ==, 3);
        g_assert_cmpmem(h.end.until, 3, "\r\n\x7e", 3);
        g_assert_cmpuint(h.end.gap_ms, ==, 5);
        g_assert_cmpuint(h.end.len_offset, ==, 4);
        g_assert_cmpuint(h.end.len_width, ==, 2);
        g_assert_cmpint(h.end.len_adjust, ==, -6);
        g_assert_cmpuint(h.end.size, ==, 9);
        g_assert_cmpuint(h.size, ==, 9); /* raised from 1 to fit exact= */
        g_assert_cmpint(crt_send_header_parse("internal-ioctl gap=2s", 1, &h, NULL), ==, 0);
        g_assert_cmpuint(h.end.gap_ms, ==, 2000);
    }
}

static void test_header_errors(void)
{
    header_fails("", "names no request type");
    header_fails("reed", "unknown request type \"reed\"");
    header_fails("read size=16777217", "bad header word \"size=16777217\"");
    header_fails("read timeout=-1", "bad header word");
    header_fails("ioctl ioctl=0x100000000", "bad header word");
    header_fails("write payload=x", "bad header word \"payload=x\"");
    header_fails("read until=x", "internal-ioctl only");
    header_fails("internal-ioctl until=01234567890123456", "bad header word");
    header_fails("internal-ioctl until=\\q", "bad header word");
    header_fails("internal-ioctl len=4:3:0", "bad header word");
    header_fails("internal-ioctl len=4:2", "bad header word");
    header_fails("internal-ioctl gap=0ms", "bad header word");
    header_fails("internal-ioctl gap=61s", "bad header word");
    header_fails("size=4 read", "unknown request type");
}

static const TuCase cases[] = {
    {"/channel/ops/lifecycle", test_lifecycle},
    {"/channel/ops/without-target", test_without_target},
    {"/channel/ops/purge-key", test_purge_key},
    {"/channel/ops/after-shutdown", test_after_shutdown},
    {"/channel/ops/ctl-words", test_ctl_words},
    {"/channel/ops/error-clears", test_error_clears},
    {"/channel/ops/presence-ended", test_presence_ended},
    {"/channel/ops/presence-path-gone", test_presence_path_gone},
    {"/channel/ops/send-pieces", test_send_pieces},
    {"/send-header/words", test_header_words},
    {"/send-header/errors", test_header_errors},
};

int main(int argc, char **argv)
{
    return tu_run_isolated(&argc, &argv, cases, G_N_ELEMENTS(cases), 120);
}
