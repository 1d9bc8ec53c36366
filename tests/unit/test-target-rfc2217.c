/* crtfs tests - rfc2217: targets against a scripted RFC 2217 server on
 * 127.0.0.1 (a thread of this program): the spec, the line settings the
 * open sends and waits for, a server that refuses COM-PORT-OPTION or a
 * setting, data both ways byte-exact through the socketpair (0xFF and
 * commands split across the server's writes), bounded buffers, the end of
 * the connection as the end of the stream, and the lines API: DTR/RTS and
 * break as SET-CONTROL, the inputs from NOTIFY-MODEMSTATE, line events
 * from NOTIFY-MODEMSTATE/LINESTATE, and an unanswered command.  The real
 * ser2net is tests/fs/target-rfc2217.sh's.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "target-fixture.h"
#include "target-private.h"
#include "telnet.h"

enum { IAC = 255, SB = 250, SE = 240 };

/* ---- the scripted server ---------------------------------------------- */

typedef struct {
    int lfd;
    guint16 port;
    GThread *thread;
    gboolean refuse_comport; /* set before the client connects */
    gboolean bad_baud;       /* answer SET-BAUDRATE with another rate */
    gboolean mute_lines;     /* no answer to DTR/RTS commands */

    GMutex lock; /* guards the rest */
    GCond cond;
    int cfd; /* the connection, -1 */
    gboolean stop, closed;
    CrtTelnet *tn;
    GByteArray *data; /* decoded data received */
    GByteArray *cmds; /* COM-PORT-OPTION commands received: cmd, value byte */
    gint64 break_on, break_off;
} Fake;

static void fake_send_unlocked(Fake *f, const guint8 *p, size_t len)
{
    while (len > 0 && f->cfd >= 0) {
        ssize_t n = send(f->cfd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EAGAIN) {
            struct pollfd pfd = {.fd = f->cfd, .events = POLLOUT};
            poll(&pfd, 1, 100);
            continue;
        }
        g_assert_cmpint(n, >, 0);
        p += n;
        len -= (size_t)n;
    }
}

static void answer(Fake *f, guint8 cmd, const guint8 *value, size_t len)
{
    guint8 p[8] = {(guint8)(cmd + 100)};
    GByteArray *out = g_byte_array_new();

    memcpy(p + 1, value, len);
    crt_telnet_subneg(CRT_TNOPT_COM_PORT, p, len + 1, out);
    fake_send_unlocked(f, out->data, out->len);
    g_byte_array_unref(out);
}

/* The server's side of COM-PORT-OPTION (under `lock`, in decode). */
static void fake_subneg(guint8 option, const guint8 *p, size_t len, gboolean truncated,
                        gpointer data)
{
    Fake *f = data;
    guint8 v[4];

    if (option != CRT_TNOPT_COM_PORT || len < 2)
        return;
    g_byte_array_append(f->cmds, p, 2);
    g_cond_broadcast(&f->cond);
    memcpy(v, p + 1, MIN(len - 1, sizeof v));
    switch (p[0]) {
    case 1:
        if (f->bad_baud)
            v[3] ^= 1;
        answer(f, p[0], v, 4);
        break;
    case 2:
    case 3:
    case 4:
        answer(f, p[0], v, 1);
        break;
    case 5:
        if (v[0] == 5)
            f->break_on = g_get_monotonic_time();
        if (v[0] == 6)
            f->break_off = g_get_monotonic_time();
        if (f->mute_lines && (v[0] == 8 || v[0] == 9 || v[0] == 11 || v[0] == 12))
            break;
        answer(f, p[0], v, 1);
        break;
    default: /* the masks: like ser2net, no answer */
        break;
    }
}

static void fake_serve(Fake *f, int cfd)
{
    static const int local[] = {0, 3, -1};
    static const int remote_all[] = {0, 3, 44, -1};
    static const int remote_nocp[] = {0, 3, -1};
    guint8 buf[4096];

    g_mutex_lock(&f->lock);
    f->cfd = cfd;
    f->tn = crt_telnet_new(local, f->refuse_comport ? remote_nocp : remote_all,
                           fake_subneg, f);
    crt_telnet_start(f->tn);
    g_cond_broadcast(&f->cond);
    for (;;) {
        GByteArray *pending = crt_telnet_pending(f->tn);
        struct pollfd pfd = {.fd = cfd, .events = POLLIN};
        ssize_t n;

        fake_send_unlocked(f, pending->data, pending->len);
        g_byte_array_set_size(pending, 0);
        if (f->stop || f->closed)
            break;
        g_mutex_unlock(&f->lock);
        poll(&pfd, 1, 50);
        g_mutex_lock(&f->lock);
        n = recv(cfd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            break;
        if (n > 0) {
            size_t d = crt_telnet_decode(f->tn, buf, (size_t)n, buf);
            g_byte_array_append(f->data, buf, (guint)d);
            g_cond_broadcast(&f->cond);
        }
    }
    close(cfd);
    f->cfd = -1;
    f->closed = TRUE;
    g_cond_broadcast(&f->cond);
    g_mutex_unlock(&f->lock);
}

static gpointer fake_thread(gpointer data)
{
    Fake *f = data;
    struct pollfd pfd = {.fd = f->lfd, .events = POLLIN};

    while (poll(&pfd, 1, 50) >= 0) {
        g_mutex_lock(&f->lock);
        gboolean stop = f->stop;
        g_mutex_unlock(&f->lock);
        if (stop)
            break;
        if (pfd.revents & POLLIN) {
            int cfd = accept(f->lfd, NULL, NULL);

            g_assert_cmpint(cfd, >=, 0);
            fake_serve(f, cfd);
            break; /* one connection per server */
        }
    }
    return NULL;
}

static Fake *fake_new(gboolean refuse_comport, gboolean bad_baud, gboolean mute_lines)
{
    Fake *f = g_new0(Fake, 1);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t len = sizeof sa;

    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa), ==, 0);
    g_assert_cmpint(listen(f->lfd, 4), ==, 0);
    g_assert_cmpint(getsockname(f->lfd, (struct sockaddr *)&sa, &len), ==, 0);
    f->port = ntohs(sa.sin_port);
    f->cfd = -1;
    f->refuse_comport = refuse_comport;
    f->bad_baud = bad_baud;
    f->mute_lines = mute_lines;
    f->data = g_byte_array_new();
    f->cmds = g_byte_array_new();
    g_mutex_init(&f->lock);
    g_cond_init(&f->cond);
    f->thread = g_thread_new("fake-rfc2217", fake_thread, f);
    return f;
}

static void fake_free(Fake *f)
{
    g_mutex_lock(&f->lock);
    f->stop = TRUE;
    g_mutex_unlock(&f->lock);
    if (f->thread)
        g_thread_join(f->thread);
    close(f->lfd);
    crt_telnet_free(f->tn);
    g_byte_array_unref(f->data);
    g_byte_array_unref(f->cmds);
    g_mutex_clear(&f->lock);
    g_cond_clear(&f->cond);
    g_free(f);
}

static char *fake_spec(Fake *f, const char *options)
{
    return g_strdup_printf("rfc2217:127.0.0.1:%u %s", f->port, options);
}

/* Send raw protocol bytes to the client, in pieces of `piece` bytes. */
static void fake_raw(Fake *f, const guint8 *p, size_t len, size_t piece)
{
    g_mutex_lock(&f->lock);
    while (f->cfd < 0 && !f->closed)
        g_cond_wait(&f->cond, &f->lock);
    for (size_t i = 0; i < len; i += piece) {
        fake_send_unlocked(f, p + i, MIN(piece, len - i));
        g_mutex_unlock(&f->lock);
        g_usleep(200); /* separate segments */
        g_mutex_lock(&f->lock);
    }
    g_mutex_unlock(&f->lock);
}

static void fake_notify(Fake *f, guint8 cmd, guint8 value)
{
    guint8 p[7] = {IAC, SB, 44, cmd, value, IAC, SE};

    fake_raw(f, p, sizeof p, sizeof p);
}

static void fake_close(Fake *f)
{
    g_mutex_lock(&f->lock);
    f->closed = TRUE;
    while (f->cfd >= 0)
        g_cond_wait(&f->cond, &f->lock);
    g_mutex_unlock(&f->lock);
}

/* Whether the server received command `cmd` with `value` (the nth time). */
static gboolean fake_got(Fake *f, guint8 cmd, guint8 value)
{
    gboolean got = FALSE;

    g_mutex_lock(&f->lock);
    for (guint i = 0; i + 1 < f->cmds->len && !got; i += 2)
        got = f->cmds->data[i] == cmd && f->cmds->data[i + 1] == value;
    g_mutex_unlock(&f->lock);
    return got;
}

static guint fake_data_len(Fake *f)
{
    guint n;

    g_mutex_lock(&f->lock);
    n = f->data->len;
    g_mutex_unlock(&f->lock);
    return n;
}

/* Read exactly `len` bytes from a target's descriptor. */
static void read_exactly(int fd, guint8 *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        g_assert_cmpint(poll(&pfd, 1, TU_EVENTUALLY_MS), ==, 1);
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EAGAIN)
            continue;
        g_assert_cmpint(n, >, 0);
        got += (size_t)n;
    }
}

/* ---- the spec --------------------------------------------------------- */

static void test_spec(void)
{
    CrtTargetSpec s;
    GError *error = NULL;

    g_assert_cmpint(crt_target_spec_parse("rfc2217:ser.example:2217 baud=9600 7E2 rtscts "
                                          "wait",
                                          &s, NULL),
                    ==, 0);
    g_assert_cmpint(s.kind, ==, CRT_TARGET_RFC2217);
    g_assert_cmpstr(s.host, ==, "ser.example");
    g_assert_cmpuint(s.port, ==, 2217);
    g_assert_cmpuint(s.baud, ==, 9600);
    g_assert_cmpuint(s.data_bits, ==, 7);
    g_assert_true(s.parity_set && s.parity == CRT_PARITY_EVEN);
    g_assert_cmpuint(s.stop_bits, ==, 2);
    g_assert_true(s.flow_set && s.flow == CRT_FLOW_RTSCTS);
    g_assert_true(s.wait);
    g_assert_cmpstr(crt_target_kind_to_string(s.kind), ==, "rfc2217");
    crt_target_spec_clear(&s);
    g_assert_cmpint(crt_target_spec_parse("rfc2217:[::1]:7000 databits=8 parity=odd "
                                          "stopbits=1 flow=xonxoff",
                                          &s, NULL),
                    ==, 0);
    g_assert_cmpstr(s.host, ==, "::1");
    g_assert_true(s.parity == CRT_PARITY_ODD && s.flow == CRT_FLOW_XONXOFF);
    crt_target_spec_clear(&s);
    /* Any rate (the protocol carries 32 bits), and write pacing. */
    g_assert_cmpint(
        crt_target_spec_parse("rfc2217:h:1 baud=250000 chardelay=2ms", &s, NULL), ==, 0);
    g_assert_cmpuint(s.baud, ==, 250000);
    g_assert_cmpuint(s.chardelay_us, ==, 2000);
    crt_target_spec_clear(&s);

    static const struct {
        const char *spec, *words;
    } bad[] = {
        {"rfc2217:host", "expected rfc2217:HOST:PORT"},
        {"rfc2217:host:0", "invalid port"},
        {"rfc2217:::1:5", "in brackets, as rfc2217:[ADDRESS]:PORT"},
        {"rfc2217:h:1 raw", "applies to local ttys"},
        {"rfc2217:h:1 shared", "applies to local ttys"},
        {"rfc2217:h:1 rate=5", "applies to sim targets"},
        {"rfc2217:h:1 baud=0", "rate in bits per second"},
        {"rfc2217:h:1 9X1", "invalid line format"},
        {"rfc2217:h:1 baud=9600 baud=19200", "conflicts"},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_assert_cmpint(crt_target_spec_parse(bad[i].spec, &s, &error), ==, -EINVAL);
        assert_contains(error->message, bad[i].words);
        g_clear_error(&error);
    }
}

/* ---- opening ---------------------------------------------------------- */

static void test_settings_sent(void)
{
    Fake *f = fake_new(FALSE, FALSE, FALSE);
    char *spec = fake_spec(f, "baud=57600 7E2 rtscts");
    CrtTarget *t = open_ok(spec);

    g_assert_cmpint(crt_target_kind(t), ==, CRT_TARGET_RFC2217);
    /* Each confirmed before the open returned. */
    g_assert_true(fake_got(f, 1, 0)); /* 57600 = 0x0000E100: first byte 0 */
    g_assert_true(fake_got(f, 2, 7));
    g_assert_true(fake_got(f, 3, 3)); /* even */
    g_assert_true(fake_got(f, 4, 2));
    g_assert_true(fake_got(f, 5, 3)); /* hardware flow control */
    /* The masks follow, unanswered. */
    TU_WAIT_FOR(fake_got(f, 10, 0x1e) && fake_got(f, 11, 0xff));
    crt_target_unref(t);
    fake_free(f);
    g_free(spec);
}

static void test_no_options_sends_nothing(void)
{
    Fake *f = fake_new(FALSE, FALSE, FALSE);
    char *spec = fake_spec(f, "");
    CrtTarget *t = open_ok(spec);

    TU_WAIT_FOR(fake_got(f, 11, 0xff));
    for (guint8 c = 1; c <= 5; c++)
        g_assert_false(fake_got(f, c, 0) || fake_got(f, c, 1) || fake_got(f, c, 3));
    crt_target_unref(t);
    fake_free(f);
    g_free(spec);
}

static void test_comport_refused(void)
{
    Fake *f = fake_new(TRUE, FALSE, FALSE);
    char *spec = fake_spec(f, "baud=9600");
    char *msg = open_fails(spec, EPROTONOSUPPORT);

    assert_contains(msg, "refuses COM-PORT-OPTION");
    fake_free(f);
    g_free(msg);
    g_free(spec);

    /* Without line options it is a plain Telnet byte stream, without
     * modem lines. */
    f = fake_new(TRUE, FALSE, FALSE);
    spec = fake_spec(f, "");
    CrtTarget *t = open_ok(spec);
    GError *error = NULL;
    guint lines;
    g_assert_cmpint(crt_target_lines_get(t, &lines, &error), ==, -ENOTTY);
    assert_contains(error->message, "refused COM-PORT-OPTION");
    g_clear_error(&error);
    static const guint8 hello[] = {'h', IAC, IAC, 'i'};
    guint8 buf[3];
    fake_raw(f, hello, sizeof hello, 1);
    read_exactly(crt_target_fd(t), buf, 3);
    g_assert_cmpmem(buf, 3, "h\xffi", 3);
    crt_target_unref(t);
    fake_free(f);
    g_free(spec);
}

static void test_setting_refused(void)
{
    Fake *f = fake_new(FALSE, TRUE, FALSE);
    char *spec = fake_spec(f, "baud=115200");
    char *msg = open_fails(spec, EINVAL);

    assert_contains(msg, "refused baud 115200");
    fake_free(f);
    g_free(msg);
    g_free(spec);
}

/* A server that says nothing (a plain tcp accepter): no Telnet. */
static void test_not_telnet(void)
{
    Fake *f = fake_new(FALSE, FALSE, FALSE);
    char *spec = fake_spec(f, "baud=9600");
    char *msg;

    /* Stop its thread first: connections wait in the backlog, unanswered. */
    g_mutex_lock(&f->lock);
    f->stop = TRUE;
    g_mutex_unlock(&f->lock);
    g_thread_join(f->thread);
    f->thread = NULL;
    msg = open_fails(spec, EPROTO);
    assert_contains(msg, "does not negotiate Telnet options");
    fake_free(f);
    g_free(msg);
    g_free(spec);
}

/* ---- data ------------------------------------------------------------- */

static void test_data_both_ways(void)
{
    Fake *f = fake_new(FALSE, FALSE, FALSE);
    char *spec = fake_spec(f, "baud=9600");
    CrtTarget *t = open_ok(spec);
    int fd = crt_target_fd(t);
    guint8 all[512], got[512];
    GByteArray *wire = g_byte_array_new();
    static const guint8 notify[] = {IAC, SB, 44, 107, IAC, IAC, IAC, SE};

    for (int i = 0; i < 512; i++)
        all[i] = (guint8)(i < 256 ? i : 511 - i);
    /* Server to us: the bytes escaped, a notification in the middle, in
     * pieces of 3 so every IAC pair and the subnegotiation are split. */
    for (int i = 0; i < 512; i++) {
        if (i == 300)
            g_byte_array_append(wire, notify, sizeof notify);
        g_byte_array_append(wire, &all[i], 1);
        if (all[i] == IAC)
            g_byte_array_append(wire, &all[i], 1);
    }
    fake_raw(f, wire->data, wire->len, 3);
    read_exactly(fd, got, sizeof got);
    g_assert_cmpmem(got, sizeof got, all, sizeof all);
    /* The notification was taken out, and read: all inputs up. */
    guint lines = 0;
    g_assert_cmpint(crt_target_lines_get(t, &lines, NULL), ==, 0);
    g_assert_cmphex(lines, ==, CRT_LINES_ALL);

    /* Us to the server: every byte value arrives once, IAC undoubled by
     * the server's decoder. */
    for (size_t off = 0; off < sizeof all;) {
        ssize_t n = write(fd, all + off, sizeof all - off);
        if (n > 0)
            off += (size_t)n;
    }
    TU_WAIT_FOR(fake_data_len(f) >= sizeof all);
    g_mutex_lock(&f->lock);
    g_assert_cmpmem(f->data->data, f->data->len, all, sizeof all);
    g_mutex_unlock(&f->lock);
    g_byte_array_unref(wire);
    crt_target_unref(t);
    fake_free(f);
    g_free(spec);
}

/* Nobody reads the target: the server can only put so much into the
 * connection before it blocks (the shuttle's bounded buffer plus the
 * kernel's); then every byte comes out, in order. */
static void test_backpressure(void)
{
    Fake *f = fake_new(FALSE, FALSE, FALSE);
    char *spec = fake_spec(f, "");
    CrtTarget *t = open_ok(spec);
    const size_t total = 32u << 20;
    guint8 *want = g_malloc(total), *got = g_malloc(total);
    size_t sent = 0;
    int cfd;

    for (size_t i = 0; i < total; i++)
        want[i] = (guint8)((i * 7 + i / 251) % 255); /* no 0xFF: one byte a byte */
    g_mutex_lock(&f->lock);
    while (f->cfd < 0)
        g_cond_wait(&f->cond, &f->lock);
    cfd = f->cfd;
    /* Until the connection has taken nothing for half a second. */
    for (gint64 quiet = g_get_monotonic_time();
         sent < total && g_get_monotonic_time() - quiet < G_USEC_PER_SEC / 2;) {
        ssize_t n = send(cfd, want + sent, total - sent, MSG_DONTWAIT | MSG_NOSIGNAL);

        if (n > 0) {
            sent += (size_t)n;
            quiet = g_get_monotonic_time();
        } else {
            g_usleep(10000);
        }
    }
    g_test_message("the connection took %zu bytes with nobody reading", sent);
    g_assert_cmpuint(sent, <, total);
    g_mutex_unlock(&f->lock);
    /* Now read it all while the server sends the rest. */
    size_t rd = 0;
    int tfd = crt_target_fd(t);
    while (rd < total) {
        struct pollfd pfd[2] = {{.fd = tfd, .events = POLLIN},
                                {.fd = cfd, .events = sent < total ? POLLOUT : 0}};
        g_assert_cmpint(poll(pfd, 2, TU_EVENTUALLY_MS), >, 0);
        if (pfd[1].revents & POLLOUT) {
            g_mutex_lock(&f->lock);
            ssize_t n = send(cfd, want + sent, MIN(total - sent, 65536),
                             MSG_DONTWAIT | MSG_NOSIGNAL);
            g_mutex_unlock(&f->lock);
            if (n > 0)
                sent += (size_t)n;
        }
        ssize_t n = read(tfd, got + rd, total - rd);
        if (n > 0)
            rd += (size_t)n;
    }
    g_assert_true(memcmp(got, want, total) == 0);
    crt_target_unref(t);
    fake_free(f);
    g_free(want);
    g_free(got);
    g_free(spec);
}

static void test_end_of_connection(void)
{
    Fake *f = fake_new(FALSE, FALSE, FALSE);
    char *spec = fake_spec(f, "");
    CrtTarget *t = open_ok(spec);
    int fd = crt_target_fd(t);
    guint8 buf[8];
    GError *error = NULL;

    fake_raw(f, (const guint8 *)"last", 4, 4);
    fake_close(f);
    read_exactly(fd, buf, 4);
    g_assert_cmpmem(buf, 4, "last", 4);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    g_assert_cmpint(poll(&pfd, 1, TU_EVENTUALLY_MS), ==, 1);
    g_assert_cmpint(read(fd, buf, sizeof buf), ==, 0); /* end of stream */
    g_assert_cmpint(crt_target_lines_set(t, CRT_LINE_DTR, 0, &error), ==, -ENOTCONN);
    g_clear_error(&error);
    crt_target_unref(t);
    fake_free(f);
    g_free(spec);
}

/* ---- lines ------------------------------------------------------------ */

static void test_lines(void)
{
    Fake *f = fake_new(FALSE, FALSE, FALSE);
    char *spec = fake_spec(f, "");
    CrtTarget *t = open_ok(spec);
    GError *error = NULL;
    guint lines = 0;

    /* Outputs are up until set; inputs as the server last said. */
    g_assert_cmpint(crt_target_lines_get(t, &lines, &error), ==, 0);
    g_assert_cmphex(lines, ==, CRT_LINES_OUTPUTS);
    fake_notify(f, 107, 0x80 | 0x10); /* DCD, CTS */
    TU_WAIT_FOR(crt_target_lines_get(t, &lines, NULL) == 0 &&
                lines == (CRT_LINES_OUTPUTS | CRT_LINE_DCD | CRT_LINE_CTS));

    g_assert_cmpint(crt_target_lines_set(t, CRT_LINE_DTR, 0, &error), ==, 0);
    g_assert_true(fake_got(f, 5, 9));
    g_assert_cmpint(crt_target_lines_set(t, CRT_LINES_OUTPUTS, CRT_LINE_DTR, &error), ==,
                    0);
    g_assert_true(fake_got(f, 5, 8) && fake_got(f, 5, 12));
    g_assert_cmpint(crt_target_lines_get(t, &lines, &error), ==, 0);
    g_assert_cmphex(lines, ==, CRT_LINE_DTR | CRT_LINE_DCD | CRT_LINE_CTS);

    g_assert_cmpint(crt_target_send_break(t, 60, &error), ==, 0);
    g_assert_true(fake_got(f, 5, 5) && fake_got(f, 5, 6));
    g_mutex_lock(&f->lock);
    /* A lower bound only: the break lasts at least about what was asked. */
    g_assert_cmpint(f->break_off - f->break_on, >=, 50 * 1000);
    g_mutex_unlock(&f->lock);
    crt_target_unref(t);
    fake_free(f);
    g_free(spec);
}

static void test_unanswered_times_out(void)
{
    Fake *f = fake_new(FALSE, FALSE, TRUE);
    char *spec = fake_spec(f, "");
    CrtTarget *t = open_ok(spec);
    GError *error = NULL;
    guint lines;

    g_assert_cmpint(crt_target_lines_set(t, CRT_LINE_RTS, 0, &error), ==, -ETIMEDOUT);
    assert_contains(error->message, "did not confirm RTS off");
    g_clear_error(&error);
    g_assert_true(fake_got(f, 5, 12));
    /* What was not confirmed is not reported as set. */
    g_assert_cmpint(crt_target_lines_get(t, &lines, NULL), ==, 0);
    g_assert_true(lines & CRT_LINE_RTS);
    crt_target_unref(t);
    fake_free(f);
    g_free(spec);
}

static void test_line_events(void)
{
    Fake *f = fake_new(FALSE, FALSE, FALSE);
    char *spec = fake_spec(f, "");
    CrtTarget *t = open_ok(spec);
    TuLineEvents e;
    CrtTargetCounters c;

    tu_line_events_init(&e);
    g_assert_cmpint(crt_target_watch_lines(t, tu_line_events_record, &e, NULL, NULL), ==,
                    0);
    fake_notify(f, 107, 0x10 | 0x01); /* CTS up (and its delta bit) */
    fake_notify(f, 107, 0x30 | 0x02); /* DSR up */
    fake_notify(f, 106, 0x10 | 0x08); /* a break, with a framing error */
    fake_notify(f, 107, 0x20 | 0x01); /* CTS down */
    TU_WAIT_FOR(tu_line_events_count(&e) >= 5);
    g_mutex_lock(&e.lock);
    CrtLineEvent *ev = (CrtLineEvent *)e.events->data;
    g_assert_cmpuint(e.events->len, ==, 5);
    g_assert_true(ev[0].kind == CRT_LINE_EVENT_CHANGE && ev[0].line == CRT_LINE_CTS &&
                  ev[0].up);
    g_assert_true(ev[1].kind == CRT_LINE_EVENT_CHANGE && ev[1].line == CRT_LINE_DSR &&
                  ev[1].up);
    g_assert_true(ev[2].kind == CRT_LINE_EVENT_BREAK && ev[2].count == 1);
    g_assert_true(ev[3].kind == CRT_LINE_EVENT_FRAMING && ev[3].count == 1);
    g_assert_true(ev[4].kind == CRT_LINE_EVENT_CHANGE && ev[4].line == CRT_LINE_CTS &&
                  !ev[4].up);
    g_assert_true(e.thread != g_thread_self());
    g_mutex_unlock(&e.lock);
    crt_target_get_counters(t, &c);
    g_assert_true(c.has_icount);
    g_assert_cmpuint(c.breaks, ==, 1);
    g_assert_cmpuint(c.framing, ==, 1);
    crt_target_unwatch_lines(t);
    fake_notify(f, 107, 0x00);
    g_usleep(100 * 1000);
    g_assert_cmpuint(tu_line_events_count(&e), ==, 5); /* none after unwatch */
    /* A watch left on is stopped by the last unref. */
    g_assert_cmpint(crt_target_watch_lines(t, tu_line_events_record, &e, NULL, NULL), ==,
                    0);
    crt_target_unref(t);
    fake_free(f);
    tu_line_events_clear(&e);
    g_free(spec);
}

/* Through `wait`: the lines and line events of the connection there now;
 * none while it is gone. */
static void test_lines_through_wait(void)
{
    Fake *f = fake_new(FALSE, FALSE, FALSE);
    char *spec = fake_spec(f, "wait");
    CrtTarget *t = open_ok(spec);
    GError *error = NULL;
    guint lines = 0;
    TuLineEvents e;

    tu_line_events_init(&e);
    g_assert_cmpint(crt_target_presence(t, NULL), ==, CRT_PRESENCE_PRESENT);
    g_assert_cmpint(crt_target_lines_get(t, &lines, &error), ==, 0);
    g_assert_cmphex(lines, ==, CRT_LINES_OUTPUTS);
    g_assert_cmpint(crt_target_lines_set(t, CRT_LINE_DTR, 0, &error), ==, 0);
    g_assert_true(fake_got(f, 5, 9));
    g_assert_cmpint(crt_target_send_break(t, 5, &error), ==, 0);
    g_assert_cmpint(crt_target_watch_lines(t, tu_line_events_record, &e, NULL, &error),
                    ==, 0);
    fake_notify(f, 107, 0x10); /* NOTIFY-MODEMSTATE: CTS up */
    TU_WAIT_FOR(tu_line_events_count(&e) >= 1);
    g_mutex_lock(&e.lock);
    {
        CrtLineEvent *ev = &g_array_index(e.events, CrtLineEvent, 0);

        g_assert_true(ev->kind == CRT_LINE_EVENT_CHANGE && ev->line == CRT_LINE_CTS &&
                      ev->up);
    }
    g_mutex_unlock(&e.lock);
    crt_target_unref(t);

    /* Nobody listens: absent, and so are its lines. */
    guint16 port = f->port;
    fake_free(f);
    f = NULL;
    g_free(spec);
    spec = g_strdup_printf("rfc2217:127.0.0.1:%u wait", port);
    t = open_ok(spec);
    g_assert_cmpint(crt_target_presence(t, NULL), ==, CRT_PRESENCE_WAITING);
    g_assert_cmpint(crt_target_lines_get(t, &lines, &error), ==, -ENODEV);
    assert_contains(error->message, "absent");
    g_clear_error(&error);
    crt_target_unref(t);
    tu_line_events_clear(&e);
    g_free(spec);
}

/* ---- the real ser2net ------------------------------------------------ */

static GPid spawn(const char *const *argv)
{
    GError *error = NULL;
    GPid pid = 0;

    if (!g_spawn_async(NULL, (char **)argv, NULL,
                       G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD |
                           G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL,
                       NULL, NULL, &pid, &error))
        g_error("cannot run %s (scripts/deps.sh installs it): %s", argv[0],
                error->message);
    return pid;
}

static void stop_child(GPid pid)
{
    int status;

    kill(pid, SIGTERM);
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
}

static gboolean exists(gpointer path)
{
    return g_file_test(path, G_FILE_TEST_EXISTS);
}

/* What ser2net 4.3 does with the lines API on a pty connector (a port
 * without modem lines): the inputs read as it notifies them (all down),
 * a break is confirmed, DTR and RTS changes are not answered at all. */
static void test_ser2net_pty_lines(void)
{
    char *dir = tu_tmpdir();
    char *a = g_build_filename(dir, "a", NULL), *b = g_build_filename(dir, "b", NULL);
    char *pa = g_strdup_printf("pty,raw,echo=0,link=%s", a);
    char *pb = g_strdup_printf("pty,raw,echo=0,link=%s", b);
    const char *socat_argv[] = {"socat", pa, pb, NULL};
    GPid socat = spawn(socat_argv);
    Fake *probe = fake_new(FALSE, FALSE, FALSE); /* a free port */
    guint16 port = probe->port;
    char *yaml = g_build_filename(dir, "ser2net.yaml", NULL);
    char *pidfile = g_build_filename(dir, "ser2net.pid", NULL);
    char *conf =
        g_strdup_printf("connection: &p\n  accepter: telnet(rfc2217),tcp,127.0.0."
                        "1,%u\n  connector: serialdev,%s,9600n81,local\n",
                        port, a);
    const char *s2n_argv[] = {"ser2net", "-n", "-c", yaml, "-P", pidfile, NULL};
    char *spec = g_strdup_printf("rfc2217:127.0.0.1:%u baud=38400", port);
    CrtTarget *t = NULL;
    GError *error = NULL;
    guint lines = 0;
    GPid s2n;

    fake_free(probe);
    g_assert_true(tu_wait_until(exists, a, TU_EVENTUALLY_MS));
    g_assert_true(g_file_set_contents(yaml, conf, -1, NULL));
    s2n = spawn(s2n_argv);
    for (gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
         !t && g_get_monotonic_time() < end; g_usleep(50 * 1000)) {
        g_clear_error(&error);
        crt_target_open_spec(spec, test_loop, &t, &error);
    }
    g_assert_no_error(error);
    g_assert_nonnull(t);

    g_assert_cmpint(crt_target_lines_get(t, &lines, &error), ==, 0);
    g_test_message("ser2net on a pty: lines 0x%x", lines);
    g_assert_cmphex(lines & CRT_LINES_INPUTS, ==, 0);
    g_assert_cmpint(crt_target_send_break(t, 20, &error), ==, 0);
    g_assert_cmpint(crt_target_lines_set(t, CRT_LINE_DTR, 0, &error), ==, -ETIMEDOUT);
    g_test_message("ser2net on a pty: %s", error->message);
    assert_contains(error->message, "did not confirm DTR off");
    g_clear_error(&error);

    crt_target_unref(t);
    stop_child(s2n);
    stop_child(socat);
    tu_rmrf(dir);
    g_free(dir);
    g_free(a);
    g_free(b);
    g_free(pa);
    g_free(pb);
    g_free(yaml);
    g_free(pidfile);
    g_free(conf);
    g_free(spec);
}

int main(int argc, char **argv)
{
    target_tests_init(&argc, &argv);
    g_test_add_func("/rfc2217/spec", test_spec);
    g_test_add_func("/rfc2217/settings-sent-and-confirmed", test_settings_sent);
    g_test_add_func("/rfc2217/no-options-sends-no-settings",
                    test_no_options_sends_nothing);
    g_test_add_func("/rfc2217/com-port-refused", test_comport_refused);
    g_test_add_func("/rfc2217/setting-refused", test_setting_refused);
    g_test_add_func("/rfc2217/not-telnet", test_not_telnet);
    g_test_add_func("/rfc2217/data-both-ways", test_data_both_ways);
    g_test_add_func("/rfc2217/backpressure", test_backpressure);
    g_test_add_func("/rfc2217/end-of-connection", test_end_of_connection);
    g_test_add_func("/rfc2217/lines", test_lines);
    g_test_add_func("/rfc2217/unanswered-command-times-out", test_unanswered_times_out);
    g_test_add_func("/rfc2217/line-events", test_line_events);
    g_test_add_func("/rfc2217/lines-through-wait", test_lines_through_wait);
    g_test_add_func("/rfc2217/ser2net-pty-lines", test_ser2net_pty_lines);
    return target_tests_run();
}
