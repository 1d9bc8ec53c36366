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

static CrtChannel *channel_with_sim(void)
{
    CrtChannel *ch = crt_channel_new("ops", NULL, NULL, NULL);
    GError *error = NULL;

    g_assert_cmpint(crt_channel_set_target(ch, "sim:records size=64", NULL, &error), ==, 0);
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
static void assert_failed_as(CrtChannel *ch, int r, GError *error, int err, const char *words)
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
#define assert_failed(ch, call, error, err, words)                                      \
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
    assert_failed(ch, crt_channel_start(ch, &error), error, EALREADY, "already streaming");
    g_assert_cmpint(crt_channel_suspend(ch, NULL), ==, 0);
    g_assert_cmpint(crt_channel_state(ch), ==, CRT_STATE_SUSPENDED);
    assert_failed(ch, crt_channel_suspend(ch, &error), error, EALREADY, "already suspended");
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

    assert_failed(ch, crt_channel_start(ch, &error), error, ENOTCONN, "no target");
    assert_failed(ch, crt_channel_suspend(ch, &error), error, ENOTCONN, "suspend:");
    assert_failed(ch, crt_channel_resume(ch, &error), error, ENOTCONN, "resume:");
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
    assert_failed(ch, crt_channel_ctl(ch, "start", &error), error, ENODEV, "being removed");
    assert_failed(ch, crt_channel_ctl(ch, "bogus", &error), error, ENODEV, "being removed");
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

/* ---- send headers ----------------------------------------------------------- */

static void header_ok(const char *line, CrtRequestType type, guint64 ioctl, guint64 timeout,
                      guint64 size)
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
}

static void test_header_errors(void)
{
    header_fails("", "names no request type");
    header_fails("reed", "unknown request type \"reed\"");
    header_fails("read size=16777217", "bad header word \"size=16777217\"");
    header_fails("read timeout=-1", "bad header word");
    header_fails("ioctl ioctl=0x100000000", "bad header word");
    header_fails("read until=x", "expected ioctl=CODE");
    header_fails("size=4 read", "unknown request type");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/channel/ops/lifecycle", test_lifecycle);
    g_test_add_func("/channel/ops/without-target", test_without_target);
    g_test_add_func("/channel/ops/purge-key", test_purge_key);
    g_test_add_func("/channel/ops/after-shutdown", test_after_shutdown);
    g_test_add_func("/channel/ops/ctl-words", test_ctl_words);
    g_test_add_func("/send-header/words", test_header_words);
    g_test_add_func("/send-header/errors", test_header_errors);
    return g_test_run();
}
