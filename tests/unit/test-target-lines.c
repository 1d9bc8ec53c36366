/* crtfs tests - a tty's modem lines, break and line events, and the tty
 * options termios lacks (crtfs/lines.h, tty-lines.c, tty-speed.c,
 * tty-serial.c, chardelay in target-fd.c, forwarding in target-wait.c).
 *
 * There is no UART here: ptys refuse modem lines, break, RS-485 and
 * low_latency, and every refusal is checked for its errno and words.  The
 * watch thread is driven through a stand-in for its three ioctls
 * (crt_tty_line_io_set) whose wait blocks in poll(2) until the test
 * changes a line or a signal interrupts it, as TIOCMIWAIT would.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <gio/gio.h>

#include "target-fixture.h"
#include "target-private.h"
#include "tty-lines.h"
#include "tty-speed.h"

/* ---- helpers ---------------------------------------------------------- */

/* Expect `r` == -err and `error` with every one of the NULL-terminated
 * words; frees the error. */
static void assert_refused(int r, GError *error, int err, ...)
{
    va_list ap;
    const char *word;

    g_test_message("-> %d %s", r, error ? error->message : "(no error)");
    g_assert_cmpint(r, ==, -err);
    g_assert_error(error, G_IO_ERROR, (int)g_io_error_from_errno(err));
    va_start(ap, err);
    while ((word = va_arg(ap, const char *)) != NULL)
        assert_contains(error->message, word);
    va_end(ap);
    g_error_free(error);
}

static void assert_event(TuLineEvents *rec, guint i, CrtLineEventKind kind, CrtLine line,
                         gboolean up, guint64 count)
{
    CrtLineEvent ev = tu_line_events_at(rec, i);
    gint64 now = g_get_real_time() * 1000;

    g_test_message("event %u: %s %s %s %" G_GUINT64_FORMAT, i,
                   crt_line_event_kind_to_string(ev.kind),
                   crt_line_name(ev.line) ? crt_line_name(ev.line) : "-",
                   ev.up ? "up" : "down", ev.count);
    g_assert_cmpint(ev.kind, ==, kind);
    g_assert_cmpint(ev.line, ==, line);
    g_assert_cmpint(ev.up, ==, up);
    g_assert_cmpuint(ev.count, ==, count);
    g_assert_cmpint(ev.time_ns, <=, now);
    g_assert_cmpint(ev.time_ns, >, now - 60 * G_GINT64_CONSTANT(1000000000));
}

/* ---- a stand-in for TIOCMGET, TIOCGICOUNT and TIOCMIWAIT ------------- */

static GMutex fake_lock;
static int fake_tiocm;
static struct serial_icounter_struct fake_ic;
static int fake_pipe[2] = {-1, -1}; /* a byte: "a line changed" */
static int fake_wait_errno;         /* set: the wait fails at once */
static gint fake_in_wait;           /* atomic: threads in the wait now */

static int fake_get_lines(int fd, int *tiocm)
{
    g_mutex_lock(&fake_lock);
    *tiocm = fake_tiocm;
    g_mutex_unlock(&fake_lock);
    return 0;
}

static int fake_get_icount(int fd, struct serial_icounter_struct *ic)
{
    g_mutex_lock(&fake_lock);
    *ic = fake_ic;
    g_mutex_unlock(&fake_lock);
    return 0;
}

static int fake_wait(int fd, int mask)
{
    struct pollfd pfd = {.fd = fake_pipe[0], .events = POLLIN};
    char c;
    int r, err;

    g_mutex_lock(&fake_lock);
    err = fake_wait_errno;
    g_mutex_unlock(&fake_lock);
    if (err) {
        errno = err;
        return -1;
    }
    g_atomic_int_inc(&fake_in_wait);
    r = poll(&pfd, 1, -1);
    err = errno;
    if (r > 0 && read(fake_pipe[0], &c, 1) < 0)
        err = errno;
    g_atomic_int_dec_and_test(&fake_in_wait);
    errno = err;
    return r > 0 ? 0 : -1;
}

static const CrtTtyLineIo fake_io = {fake_get_lines, fake_get_icount, fake_wait};

static void fake_install(int tiocm)
{
    if (fake_pipe[0] < 0)
        g_assert_cmpint(pipe2(fake_pipe, O_CLOEXEC | O_NONBLOCK), ==, 0);
    g_mutex_lock(&fake_lock);
    fake_tiocm = tiocm;
    memset(&fake_ic, 0, sizeof fake_ic);
    fake_wait_errno = 0;
    g_mutex_unlock(&fake_lock);
    crt_tty_line_io_set(&fake_io);
}

static void fake_remove(void)
{
    char c;

    crt_tty_line_io_set(NULL);
    while (read(fake_pipe[0], &c, 1) == 1)
        ;
}

/* Change the fake lines and counters, then wake the waiter. */
static void fake_change(int tiocm, const struct serial_icounter_struct *ic)
{
    g_mutex_lock(&fake_lock);
    fake_tiocm = tiocm;
    if (ic)
        fake_ic = *ic;
    g_mutex_unlock(&fake_lock);
    g_assert_cmpint(write(fake_pipe[1], "x", 1), ==, 1);
}

/* ---- ptys and other paths refuse, in words --------------------------- */

static void test_pty_lines_get(void)
{
    Pty pty;
    GError *error = NULL;
    guint lines = 99;

    pty_open(&pty);
    CrtTarget *t = open_ok(pty.slave);
    int r = crt_target_lines_get(t, &lines, &error);
    assert_refused(r, error, ENOTTY, pty.slave, "a pseudo-terminal has no modem lines",
                   "TIOCMGET", NULL);
    g_assert_cmpuint(lines, ==, 0);
    crt_target_unref(t);
    pty_close(&pty);
}

static void test_pty_lines_set(void)
{
    Pty pty;
    GError *error = NULL;

    pty_open(&pty);
    CrtTarget *t = open_ok(pty.slave);
    int r = crt_target_lines_set(t, CRT_LINE_DTR, 0, &error);
    assert_refused(r, error, ENOTTY, pty.slave, "a pseudo-terminal has no modem lines",
                   "TIOCMBIC", NULL);
    error = NULL;
    r = crt_target_lines_set(t, CRT_LINE_DTR | CRT_LINE_RTS, CRT_LINE_RTS, &error);
    assert_refused(r, error, ENOTTY, "pseudo-terminal", "TIOCMBIS", NULL);
    error = NULL;
    r = crt_target_lines_set(t, 0, 0, &error); /* nothing to set: still no lines */
    assert_refused(r, error, ENOTTY, "pseudo-terminal", "TIOCMGET", NULL);
    error = NULL;
    r = crt_target_lines_set(t, CRT_LINE_CTS, CRT_LINE_CTS, &error);
    assert_refused(r, error, EINVAL, "only DTR and RTS", NULL);
    crt_target_unref(t);
    pty_close(&pty);
}

/* The kernel takes TIOCSBRK on a pty and sends nothing: refused here. */
static void test_pty_break(void)
{
    Pty pty;
    GError *error = NULL;

    pty_open(&pty);
    CrtTarget *t = open_ok(pty.slave);
    g_assert_cmpint(ioctl(crt_target_fd(t), TIOCSBRK), ==, 0); /* what the kernel does */
    g_assert_cmpint(ioctl(crt_target_fd(t), TIOCCBRK), ==, 0);
    int r = crt_target_send_break(t, 250, &error);
    assert_refused(r, error, ENOTTY, pty.slave, "a pseudo-terminal has no break", NULL);
    error = NULL;
    r = crt_target_send_break(t, 0, &error);
    assert_refused(r, error, EINVAL, "1 ms to 10 s", NULL);
    error = NULL;
    r = crt_target_send_break(t, 10001, &error);
    assert_refused(r, error, EINVAL, "10001", NULL);
    crt_target_unref(t);
    pty_close(&pty);
}

static void test_pty_watch(void)
{
    Pty pty;
    GError *error = NULL;
    TuLineEvents rec;

    tu_line_events_init(&rec);
    pty_open(&pty);
    CrtTarget *t = open_ok(pty.slave);
    int r = crt_target_watch_lines(t, tu_line_events_record, &rec, tu_line_events_destroy,
                                   &error);
    assert_refused(r, error, ENOTTY, pty.slave,
                   "pseudo-terminal has no modem lines to watch", "TIOCMGET", NULL);
    g_assert_cmpint(g_atomic_int_get(&rec.destroyed), ==, 1);
    crt_target_unwatch_lines(t); /* harmless */
    crt_target_unref(t);
    pty_close(&pty);
    g_assert_cmpuint(tu_line_events_count(&rec), ==, 0);
    tu_line_events_clear(&rec);
}

/* A FIFO and a character device that is no tty say what they are. */
static void test_not_a_tty(void)
{
    char *dir = tu_tmpdir();
    char *fifo = g_build_filename(dir, "fifo", NULL);
    GError *error = NULL;
    guint lines;
    TuLineEvents rec;

    tu_line_events_init(&rec);
    g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
    CrtTarget *t = open_ok(fifo);
    int r = crt_target_lines_get(t, &lines, &error);
    assert_refused(r, error, ENOTTY, fifo, "a FIFO, not a tty", "no modem lines", NULL);
    error = NULL;
    r = crt_target_send_break(t, 10, &error);
    assert_refused(r, error, ENOTTY, "a FIFO, not a tty", NULL);
    error = NULL;
    r = crt_target_watch_lines(t, tu_line_events_record, &rec, tu_line_events_destroy,
                               &error);
    assert_refused(r, error, ENOTTY, "a FIFO, not a tty", NULL);
    crt_target_unref(t);

    t = open_ok("/dev/null");
    error = NULL;
    r = crt_target_lines_set(t, CRT_LINE_DTR, CRT_LINE_DTR, &error);
    assert_refused(r, error, ENOTTY, "/dev/null is a character device that is not a tty",
                   NULL);
    crt_target_unref(t);
    g_assert_cmpint(g_atomic_int_get(&rec.destroyed), ==, 1);
    tu_line_events_clear(&rec);
    g_free(fifo);
    tu_rmrf(dir);
    g_free(dir);
}

/* ---- driver options: refusals fail the open, the tty left as found --- */

static void assert_open_refused(const char *option, const char *ioctl_name)
{
    Pty pty;
    struct termios before, after;

    pty_open(&pty);
    g_assert_cmpint(tcgetattr(pty.master, &before), ==, 0);
    char *spec = g_strdup_printf("%s raw baud=9600 %s", pty.slave, option);
    char *msg = open_fails(spec, ENOTTY);
    assert_contains(msg, pty.slave);
    assert_contains(msg, "a pseudo-terminal");
    assert_contains(msg, ioctl_name);
    /* raw and baud had been applied: the failed open put them back. */
    g_assert_cmpint(tcgetattr(pty.master, &after), ==, 0);
    g_assert_cmpuint(after.c_lflag, ==, before.c_lflag);
    g_assert_cmpuint(cfgetospeed(&after), ==, cfgetospeed(&before));
    /* And it let the tty go: a plain open works. */
    crt_target_unref(open_ok(pty.slave));
    g_free(msg);
    g_free(spec);
    pty_close(&pty);
}

static void test_rs485_pty(void)
{
    assert_open_refused("rs485", "does not support RS-485 (TIOCGRS485: ");
    assert_open_refused("rs485=rts_on_send=0,rts_after_send,delay_before=5",
                        "does not support RS-485 (TIOCGRS485: ");
}

static void test_low_latency_pty(void)
{
    assert_open_refused("low_latency", "does not support low_latency (TIOCGSERIAL: ");
}

/* ---- any baud rate ----------------------------------------------------- */

/* A pty keeps whatever termios2 rate it is given, and its master reads the
 * slave's: what arrived is visible, and so is the restore. */
static void test_bother_rate(void)
{
    static const guint rates[] = {12345, 250000, 31250, 3000000};

    for (size_t i = 0; i < G_N_ELEMENTS(rates); i++) {
        Pty pty;
        guint is0, os0, is, os;
        struct termios before, after;

        pty_open(&pty);
        g_assert_cmpint(crt_tty_speed_get(pty.master, &is0, &os0), ==, 0);
        g_assert_cmpint(tcgetattr(pty.master, &before), ==, 0);
        char *spec = g_strdup_printf("%s raw baud=%u", pty.slave, rates[i]);
        CrtTarget *t = open_ok(spec);
        g_assert_cmpint(crt_tty_speed_get(pty.master, &is, &os), ==, 0);
        g_test_message("baud=%u: ispeed %u ospeed %u (was %u/%u)", rates[i], is, os, is0,
                       os0);
        g_assert_cmpuint(os, ==, rates[i]);
        g_assert_cmpuint(is, ==, rates[i]);
        crt_target_unref(t);
        g_assert_cmpint(crt_tty_speed_get(pty.master, &is, &os), ==, 0);
        g_assert_cmpuint(os, ==, os0);
        g_assert_cmpuint(is, ==, is0);
        g_assert_cmpint(tcgetattr(pty.master, &after), ==, 0);
        g_assert_cmpuint(after.c_cflag, ==, before.c_cflag);
        g_free(spec);
        pty_close(&pty);
    }
}

/* A tty found at a BOTHER rate gets it back, which struct termios alone
 * cannot carry. */
static void test_bother_restored(void)
{
    Pty pty;
    guint actual, is, os;

    pty_open(&pty);
    g_assert_cmpint(crt_tty_speed_set(pty.master, 7777, &actual), ==, 0);
    g_assert_cmpuint(actual, ==, 7777);
    char *spec = g_strdup_printf("%s baud=115200", pty.slave);
    CrtTarget *t = open_ok(spec);
    g_assert_cmpint(crt_tty_speed_get(pty.master, &is, &os), ==, 0);
    g_assert_cmpuint(os, ==, 115200);
    crt_target_unref(t);
    g_assert_cmpint(crt_tty_speed_get(pty.master, &is, &os), ==, 0);
    g_assert_cmpuint(os, ==, 7777);
    g_assert_cmpuint(is, ==, 7777);
    g_free(spec);
    pty_close(&pty);
}

/* ---- chardelay --------------------------------------------------------- */

typedef struct {
    CrtIo io;
    gint done;      /* atomic */
    gint64 done_at; /* monotonic us, set before done */
} TestIo;

static void test_io_done(CrtIo *io)
{
    TestIo *tio = (TestIo *)io;

    tio->done_at = g_get_monotonic_time();
    g_atomic_int_set(&tio->done, 1);
}

typedef struct {
    CrtTarget *t;
    CrtIo *io;
    gboolean cancel;
    gboolean result;
} LoopCall;

static void call_on_loop(gpointer data)
{
    LoopCall *call = data;

    if (call->cancel)
        call->result = crt_target_cancel(call->t, call->io, -ECANCELED);
    else
        crt_target_submit(call->t, call->io);
}

static void submit(CrtTarget *t, TestIo *tio)
{
    LoopCall call = {t, &tio->io, FALSE, FALSE};

    crt_loop_call(test_loop, call_on_loop, &call);
}

static gboolean cancel(CrtTarget *t, TestIo *tio)
{
    LoopCall call = {t, &tio->io, TRUE, FALSE};

    crt_loop_call(test_loop, call_on_loop, &call);
    return call.result;
}

/* Read `n` bytes from `fd` into `buf`; the time the last one came. */
static gint64 read_n(int fd, char *buf, size_t n)
{
    size_t got = 0;
    gint64 last = 0;

    while (got < n) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};

        g_assert_cmpint(poll(&pfd, 1, TU_EVENTUALLY_MS), ==, 1);
        ssize_t r = read(fd, buf + got, n - got);
        g_assert_cmpint(r, >, 0);
        got += (size_t)r;
        last = g_get_monotonic_time();
    }
    return last;
}

/* Write `data` through `t` paced at `delay_ms`, read it from `peer`: the
 * bytes are right and the last one came no sooner than (n-1) delays after
 * the submit, as did the completion. */
static void assert_paced(CrtTarget *t, int peer, const char *data, guint delay_ms)
{
    size_t n = strlen(data);
    char got[64] = {0};
    TestIo w = {
        {.type = CRT_REQUEST_WRITE, .in = data, .in_len = n, .done = test_io_done}};
    gint64 min_us = (gint64)(n - 1) * delay_ms * 1000;
    gint64 start = g_get_monotonic_time();

    submit(t, &w);
    gint64 last = read_n(peer, got, n);
    TU_WAIT_FOR(g_atomic_int_get(&w.done));
    g_test_message("%zu bytes at chardelay=%ums: last byte after %" G_GINT64_FORMAT
                   " us, done after %" G_GINT64_FORMAT " us (at least %" G_GINT64_FORMAT
                   ")",
                   n, delay_ms, last - start, w.done_at - start, min_us);
    g_assert_cmpmem(got, n, data, n);
    g_assert_cmpint(w.io.status, ==, 0);
    g_assert_cmpuint(w.io.bytes_in, ==, n);
    g_assert_cmpint(last - start, >=, min_us);
    g_assert_cmpint(w.done_at - start, >=, min_us);
}

static void test_chardelay_pty(void)
{
    Pty pty;
    struct termios tio;

    pty_open(&pty);
    g_assert_cmpint(tcgetattr(pty.master, &tio), ==, 0);
    cfmakeraw(&tio);
    g_assert_cmpint(tcsetattr(pty.master, TCSANOW, &tio), ==, 0);
    char *spec = g_strdup_printf("%s raw chardelay=20ms", pty.slave);
    CrtTarget *t = open_ok(spec);
    assert_paced(t, pty.master, "abcdef", 20);
    /* The delay holds between requests too. */
    assert_paced(t, pty.master, "gh", 20);
    crt_target_unref(t);
    g_free(spec);
    pty_close(&pty);
}

/* A transaction (what `send` submits) paces its request the same way, and
 * its response still comes back to it. */
static void test_chardelay_transaction(void)
{
    Pty pty;
    struct termios tio;
    char got[8] = {0}, out[16] = {0};
    TestIo x = {{.type = CRT_REQUEST_INTERNAL_IOCTL,
                 .in = "ping",
                 .in_len = 4,
                 .out = out,
                 .out_cap = sizeof out,
                 .done = test_io_done}};

    pty_open(&pty);
    g_assert_cmpint(tcgetattr(pty.master, &tio), ==, 0);
    cfmakeraw(&tio);
    g_assert_cmpint(tcsetattr(pty.master, TCSANOW, &tio), ==, 0);
    char *spec = g_strdup_printf("%s raw chardelay=25ms", pty.slave);
    CrtTarget *t = open_ok(spec);
    gint64 start = g_get_monotonic_time();
    submit(t, &x);
    gint64 last = read_n(pty.master, got, 4);
    g_test_message("request of 4 bytes at 25 ms: last byte after %" G_GINT64_FORMAT " us",
                   last - start);
    g_assert_cmpstr(got, ==, "ping");
    g_assert_cmpint(last - start, >=, 3 * 25000);
    g_assert_cmpint(write(pty.master, "pong", 4), ==, 4);
    TU_WAIT_FOR(g_atomic_int_get(&x.done));
    g_assert_cmpint(x.io.status, ==, 0);
    g_assert_cmpuint(x.io.bytes_in, ==, 4);
    g_assert_cmpmem(out, x.io.bytes_out, "pong", 4);
    crt_target_unref(t);
    g_free(spec);
    pty_close(&pty);
}

/* A socket kind paces the same way (the fd driver is shared). */
static void test_chardelay_socket(void)
{
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "echo.sock", NULL);
    char *spec = g_strdup_printf("unix:%s chardelay=15000us", path);
    TuServer *server = tu_echo_server_unix(path);
    char out[16] = {0};
    TestIo w = {
        {.type = CRT_REQUEST_WRITE, .in = "12345", .in_len = 5, .done = test_io_done}};
    size_t got = 0;

    g_assert_nonnull(server);
    CrtTarget *t = open_ok(spec);
    gint64 start = g_get_monotonic_time();
    submit(t, &w);
    TU_WAIT_FOR(g_atomic_int_get(&w.done));
    while (got < 5) {
        TestIo r = {{.type = CRT_REQUEST_READ,
                     .out = out + got,
                     .out_cap = sizeof out - got,
                     .done = test_io_done}};
        submit(t, &r);
        TU_WAIT_FOR(g_atomic_int_get(&r.done));
        g_assert_cmpint(r.io.status, ==, 0);
        got += r.io.bytes_out;
    }
    g_test_message("5 bytes at 15 ms: written after %" G_GINT64_FORMAT " us",
                   w.done_at - start);
    g_assert_cmpstr(out, ==, "12345");
    g_assert_cmpint(w.done_at - start, >=, 4 * 15000);
    crt_target_unref(t);
    tu_server_stop(server);
    g_free(spec);
    g_free(path);
    tu_rmrf(dir);
    g_free(dir);
}

/* A paced write can be cancelled between bytes: it completes with what went
 * out, and nothing more goes. */
static void test_chardelay_cancel(void)
{
    Pty pty;
    struct termios tio;
    char got[16] = {0};
    const char *data = "0123456789";
    TestIo w = {
        {.type = CRT_REQUEST_WRITE, .in = data, .in_len = 10, .done = test_io_done}};

    pty_open(&pty);
    g_assert_cmpint(tcgetattr(pty.master, &tio), ==, 0);
    cfmakeraw(&tio);
    g_assert_cmpint(tcsetattr(pty.master, TCSANOW, &tio), ==, 0);
    char *spec = g_strdup_printf("%s raw chardelay=100ms", pty.slave);
    CrtTarget *t = open_ok(spec);
    submit(t, &w);
    read_n(pty.master, got, 1);
    g_assert_true(cancel(t, &w));
    g_assert_true(g_atomic_int_get(&w.done));
    g_assert_cmpint(w.io.status, ==, -ECANCELED);
    g_assert_cmpuint(w.io.bytes_in, >=, 1);
    g_assert_cmpuint(w.io.bytes_in, <, 10);
    g_usleep(300 * 1000); /* three delays: no byte may follow */
    int pending = -1;
    g_assert_cmpint(ioctl(pty.master, FIONREAD, &pending), ==, 0);
    g_assert_cmpint(pending, ==, (int)w.io.bytes_in - 1);
    crt_target_unref(t);
    g_free(spec);
    pty_close(&pty);
}

/* ---- the watch thread (with the stand-in ioctls) ---------------------- */

static void test_watch_events(void)
{
    Pty pty;
    GError *error = NULL;
    TuLineEvents rec;
    struct serial_icounter_struct ic = {0};

    tu_line_events_init(&rec);
    pty_open(&pty);
    fake_install(TIOCM_DTR | TIOCM_RTS | TIOCM_DSR);
    CrtTarget *t = open_ok(pty.slave);
    g_assert_cmpint(crt_target_watch_lines(t, tu_line_events_record, &rec,
                                           tu_line_events_destroy, &error),
                    ==, 0);
    g_assert_no_error(error);
    TU_WAIT_FOR(g_atomic_int_get(&fake_in_wait) == 1);
    g_assert_cmpuint(tu_line_events_count(&rec), ==, 0); /* the start is no change */

    /* CTS up, DSR down: one event each; outputs are not reported. */
    fake_change(TIOCM_CTS, NULL);
    TU_WAIT_FOR(tu_line_events_count(&rec) == 2);
    assert_event(&rec, 0, CRT_LINE_EVENT_CHANGE, CRT_LINE_CTS, TRUE, 0);
    assert_event(&rec, 1, CRT_LINE_EVENT_CHANGE, CRT_LINE_DSR, FALSE, 0);

    /* DCD went up and down again between looks: both, in order. */
    ic.dcd = 2;
    fake_change(TIOCM_CTS, &ic);
    TU_WAIT_FOR(tu_line_events_count(&rec) == 4);
    assert_event(&rec, 2, CRT_LINE_EVENT_CHANGE, CRT_LINE_DCD, TRUE, 0);
    assert_event(&rec, 3, CRT_LINE_EVENT_CHANGE, CRT_LINE_DCD, FALSE, 0);

    /* Errors come without a line change (the counters' tick finds them). */
    ic.brk = 1;
    ic.frame = 3;
    ic.parity = 2;
    ic.overrun = 4;
    ic.buf_overrun = 1;
    g_mutex_lock(&fake_lock);
    fake_ic = ic;
    g_mutex_unlock(&fake_lock);
    TU_WAIT_FOR(tu_line_events_count(&rec) == 8);
    assert_event(&rec, 4, CRT_LINE_EVENT_BREAK, 0, FALSE, 1);
    assert_event(&rec, 5, CRT_LINE_EVENT_FRAMING, 0, FALSE, 3);
    assert_event(&rec, 6, CRT_LINE_EVENT_PARITY, 0, FALSE, 2);
    assert_event(&rec, 7, CRT_LINE_EVENT_OVERRUN, 0, FALSE, 5);

    /* A ring counts once per ring, RI back down already. */
    ic.rng = 1;
    fake_change(TIOCM_CTS, &ic);
    TU_WAIT_FOR(tu_line_events_count(&rec) == 10);
    assert_event(&rec, 8, CRT_LINE_EVENT_CHANGE, CRT_LINE_RI, TRUE, 0);
    assert_event(&rec, 9, CRT_LINE_EVENT_CHANGE, CRT_LINE_RI, FALSE, 0);

    gint64 start = g_get_monotonic_time();
    crt_target_unwatch_lines(t);
    g_test_message("unwatch took %" G_GINT64_FORMAT " us",
                   g_get_monotonic_time() - start);
    g_assert_cmpint(g_atomic_int_get(&fake_in_wait), ==, 0);
    g_assert_cmpint(g_atomic_int_get(&rec.destroyed), ==, 1);
    fake_change(TIOCM_CTS | TIOCM_CD, NULL);
    g_usleep(200 * 1000);
    g_assert_cmpuint(tu_line_events_count(&rec), ==, 10);
    crt_target_unref(t);
    fake_remove();
    pty_close(&pty);
    tu_line_events_clear(&rec);
}

/* Stopping never hangs, however soon after the start (a signal that comes
 * before the thread waits is sent again). */
static void test_watch_stop_race(void)
{
    Pty pty;
    TuLineEvents rec;

    tu_line_events_init(&rec);
    pty_open(&pty);
    fake_install(0);
    CrtTarget *t = open_ok(pty.slave);
    for (int i = 0; i < 40; i++) {
        g_assert_cmpint(crt_target_watch_lines(t, tu_line_events_record, &rec,
                                               tu_line_events_destroy, NULL),
                        ==, 0);
        if (i % 2)
            g_usleep((gulong)(i * 100));
        crt_target_unwatch_lines(t);
        g_assert_cmpint(g_atomic_int_get(&fake_in_wait), ==, 0);
    }
    g_assert_cmpint(g_atomic_int_get(&rec.destroyed), ==, 40);
    /* A second watch replaces the first; the last unref stops it. */
    g_assert_cmpint(crt_target_watch_lines(t, tu_line_events_record, &rec,
                                           tu_line_events_destroy, NULL),
                    ==, 0);
    g_assert_cmpint(crt_target_watch_lines(t, tu_line_events_record, &rec,
                                           tu_line_events_destroy, NULL),
                    ==, 0);
    g_assert_cmpint(g_atomic_int_get(&rec.destroyed), ==, 41);
    crt_target_unref(t);
    g_assert_cmpint(g_atomic_int_get(&rec.destroyed), ==, 42);
    g_assert_cmpint(g_atomic_int_get(&fake_in_wait), ==, 0);
    fake_remove();
    pty_close(&pty);
    tu_line_events_clear(&rec);
}

/* A driver with modem lines but without TIOCMIWAIT is found out by the
 * first wait, and the watch is refused with it. */
static void test_watch_refused_wait(void)
{
    Pty pty;
    GError *error = NULL;
    TuLineEvents rec;

    tu_line_events_init(&rec);
    pty_open(&pty);
    fake_install(0);
    g_mutex_lock(&fake_lock);
    fake_wait_errno = EINVAL;
    g_mutex_unlock(&fake_lock);
    CrtTarget *t = open_ok(pty.slave);
    int r = crt_target_watch_lines(t, tu_line_events_record, &rec, tu_line_events_destroy,
                                   &error);
    assert_refused(r, error, EINVAL, pty.slave, "TIOCMIWAIT", "wait for line changes",
                   NULL);
    g_assert_cmpint(g_atomic_int_get(&rec.destroyed), ==, 1);
    crt_target_unref(t);
    fake_remove();
    pty_close(&pty);
    tu_line_events_clear(&rec);
}

/* ---- the wait decorator ------------------------------------------------ */

static void test_wait_forwards_refusal(void)
{
    Pty pty;
    GError *error = NULL;
    guint lines;
    TuLineEvents rec;

    tu_line_events_init(&rec);
    pty_open(&pty);
    char *spec = g_strdup_printf("%s wait", pty.slave);
    CrtTarget *t = open_ok(spec);
    int r = crt_target_lines_get(t, &lines, &error);
    assert_refused(r, error, ENOTTY, "a pseudo-terminal has no modem lines", NULL);
    error = NULL;
    r = crt_target_send_break(t, 100, &error);
    assert_refused(r, error, ENOTTY, "a pseudo-terminal has no break", NULL);
    error = NULL;
    r = crt_target_lines_set(t, CRT_LINE_RTS, CRT_LINE_RTS, &error);
    assert_refused(r, error, ENOTTY, "pseudo-terminal", NULL);
    error = NULL;
    r = crt_target_watch_lines(t, tu_line_events_record, &rec, tu_line_events_destroy,
                               &error);
    assert_refused(r, error, ENOTTY, "pseudo-terminal", NULL);
    crt_target_unref(t);
    g_free(spec);
    pty_close(&pty);
    tu_line_events_clear(&rec);
}

static void test_wait_absent(void)
{
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "ttyX", NULL);
    char *spec = g_strdup_printf("%s wait", path);
    GError *error = NULL;
    guint lines;
    TuLineEvents rec;

    tu_line_events_init(&rec);
    CrtTarget *t = open_ok(spec);
    g_assert_cmpint(crt_target_presence(t, NULL), ==, CRT_PRESENCE_WAITING);
    int r = crt_target_lines_get(t, &lines, &error);
    assert_refused(r, error, ENODEV, spec, "the device is absent", NULL);
    error = NULL;
    r = crt_target_lines_set(t, CRT_LINE_DTR, 0, &error);
    assert_refused(r, error, ENODEV, "absent", NULL);
    error = NULL;
    r = crt_target_send_break(t, 5, &error);
    assert_refused(r, error, ENODEV, "absent", NULL);
    /* A watch waits for the device like the rest. */
    g_assert_cmpint(crt_target_watch_lines(t, tu_line_events_record, &rec,
                                           tu_line_events_destroy, NULL),
                    ==, 0);
    crt_target_unwatch_lines(t);
    g_assert_cmpint(g_atomic_int_get(&rec.destroyed), ==, 1);
    crt_target_unref(t);
    tu_line_events_clear(&rec);
    g_free(spec);
    g_free(path);
    tu_rmrf(dir);
    g_free(dir);
}

/* A watch on a wait target lasts across the device going and coming back:
 * the new one is watched and its events come through. */
static void test_wait_rewatch(void)
{
    char *dir = tu_tmpdir();
    char *link = g_build_filename(dir, "ttyX", NULL);
    char *spec = g_strdup_printf("%s wait", link);
    Pty a, b;
    TuLineEvents rec;
    GError *error = NULL;
    guint lines;

    tu_line_events_init(&rec);
    pty_open(&a);
    pty_open(&b);
    fake_install(0);
    g_assert_cmpint(symlink(a.slave, link), ==, 0);
    CrtTarget *t = open_ok(spec);
    g_assert_cmpint(crt_target_watch_lines(t, tu_line_events_record, &rec,
                                           tu_line_events_destroy, NULL),
                    ==, 0);
    TU_WAIT_FOR(g_atomic_int_get(&fake_in_wait) == 1);
    fake_change(TIOCM_CTS, NULL);
    TU_WAIT_FOR(tu_line_events_count(&rec) == 1);
    assert_event(&rec, 0, CRT_LINE_EVENT_CHANGE, CRT_LINE_CTS, TRUE, 0);

    /* Gone: the watch of the old device ends with it. */
    g_assert_cmpint(unlink(link), ==, 0);
    TU_WAIT_FOR(crt_target_presence(t, NULL) == CRT_PRESENCE_WAITING);
    TU_WAIT_FOR(g_atomic_int_get(&fake_in_wait) == 0);
    int r = crt_target_lines_get(t, &lines, &error);
    assert_refused(r, error, ENODEV, spec, "the device is absent", NULL);

    /* Back, as another device: watched again, from its own levels. */
    g_assert_cmpint(symlink(b.slave, link), ==, 0);
    TU_WAIT_FOR(crt_target_presence(t, NULL) == CRT_PRESENCE_PRESENT);
    TU_WAIT_FOR(g_atomic_int_get(&fake_in_wait) == 1);
    fake_change(TIOCM_CTS | TIOCM_DSR, NULL);
    TU_WAIT_FOR(tu_line_events_count(&rec) == 2);
    assert_event(&rec, 1, CRT_LINE_EVENT_CHANGE, CRT_LINE_DSR, TRUE, 0);

    crt_target_unwatch_lines(t);
    g_assert_cmpint(g_atomic_int_get(&fake_in_wait), ==, 0);
    g_assert_cmpint(g_atomic_int_get(&rec.destroyed), ==, 1);
    crt_target_unref(t);
    fake_remove();
    pty_close(&a);
    pty_close(&b);
    tu_line_events_clear(&rec);
    g_free(spec);
    g_free(link);
    tu_rmrf(dir);
    g_free(dir);
}

int main(int argc, char **argv)
{
    target_tests_init(&argc, &argv);
    g_test_add_func("/lines/pty/get", test_pty_lines_get);
    g_test_add_func("/lines/pty/set", test_pty_lines_set);
    g_test_add_func("/lines/pty/break", test_pty_break);
    g_test_add_func("/lines/pty/watch", test_pty_watch);
    g_test_add_func("/lines/not-a-tty", test_not_a_tty);
    g_test_add_func("/lines/option/rs485-pty", test_rs485_pty);
    g_test_add_func("/lines/option/low-latency-pty", test_low_latency_pty);
    g_test_add_func("/lines/baud/bother", test_bother_rate);
    g_test_add_func("/lines/baud/bother-restored", test_bother_restored);
    g_test_add_func("/lines/chardelay/pty", test_chardelay_pty);
    g_test_add_func("/lines/chardelay/transaction", test_chardelay_transaction);
    g_test_add_func("/lines/chardelay/socket", test_chardelay_socket);
    g_test_add_func("/lines/chardelay/cancel", test_chardelay_cancel);
    g_test_add_func("/lines/watch/events", test_watch_events);
    g_test_add_func("/lines/watch/stop-race", test_watch_stop_race);
    g_test_add_func("/lines/watch/refused-wait", test_watch_refused_wait);
    g_test_add_func("/lines/wait/forwards-refusal", test_wait_forwards_refusal);
    g_test_add_func("/lines/wait/absent", test_wait_absent);
    g_test_add_func("/lines/wait/rewatch", test_wait_rewatch);
    return target_tests_run();
}
