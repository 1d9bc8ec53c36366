/* crtfs tests - one target directory without FUSE, its `send` sessions:
 * transactions and their order, timeouts, cancellation, bad headers, no
 * target, and closing with requests pending.
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
    g_assert_cmpint(crt_send_write(s, "read\n", 5, &error), ==, -EDESTADDRREQ);
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

/* ---- main ------------------------------------------------------------------ */

static const TuCase cases[] = {
    {"/channel/send/transaction", test_send_transaction},
    {"/channel/send/order", test_send_order},
    {"/channel/send/timeout", test_send_timeout},
    {"/channel/send/cancel", test_send_cancel},
    {"/channel/send/bad-header", test_send_bad_header},
    {"/channel/send/without-target", test_send_without_target},
    {"/channel/send/close-pending", test_send_close_pending},
};

int main(int argc, char **argv)
{
    return tu_run_isolated(&argc, &argv, cases, G_N_ELEMENTS(cases), TU_CASE_TIMEOUT_S);
}
