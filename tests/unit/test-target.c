/* crtfs tests - targets: the spec parser, and opening each kind of target
 * (paths, ttys, sockets, commands) with its locking, termios and clean-up.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <gio/gio.h>

#include "target-private.h"
#include "testutil.h"

/* One private loop for the whole program, so a leak of a target's loop
 * reference shows up when main drops it. */
static CrtLoop *test_loop;

/* ---- helpers ---------------------------------------------------------- */

static CrtTarget *open_ok(const char *spec)
{
    return tu_target_open(spec, test_loop);
}

/* Open `spec`, expect -err, and return the message (g_free). */
static char *open_fails(const char *spec, int err)
{
    GError *error = NULL;
    CrtTarget *t = (CrtTarget *)&error; /* must be overwritten with NULL */
    int r = crt_target_open_spec(spec, test_loop, &t, &error);

    g_test_message("%s -> %d %s", spec, r, error ? error->message : "(no error)");
    g_assert_cmpint(r, ==, -err);
    g_assert_null(t);
    g_assert_error(error, G_IO_ERROR, (int)g_io_error_from_errno(err));
    g_assert_cmpstr(error->message, !=, "");
    char *msg = g_strdup(error->message);
    g_error_free(error);
    return msg;
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (strstr(haystack, needle) == NULL)
        g_error("\"%s\" does not contain \"%s\"", haystack, needle);
}

/* Wait until `fd` is readable and read what is there, NUL-terminated. */
static char *read_some(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    char buf[256];

    g_assert_cmpint(poll(&pfd, 1, TU_EVENTUALLY_MS), ==, 1);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    g_assert_cmpint(n, >, 0);
    return g_strndup(buf, (gsize)n);
}

static void assert_no_children(void)
{
    int status;

    g_assert_cmpint(waitpid(-1, &status, WNOHANG), ==, -1);
    g_assert_cmpint(errno, ==, ECHILD);
}

/* ---- request types ---------------------------------------------------- */

static void test_request_types(void)
{
    static const char *const names[] = {"read", "write", "ioctl", "internal-ioctl"};
    CrtRequestType type = CRT_REQUEST_INVALID;

    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        g_assert_cmpint(crt_request_type_from_string(names[i], &type), ==, 0);
        g_assert_cmpstr(crt_request_type_to_string(type), ==, names[i]);
    }
    g_assert_cmpint(crt_request_type_from_string("READ", &type), ==, -EINVAL);
    g_assert_cmpint(crt_request_type_from_string("", &type), ==, -EINVAL);
    g_assert_cmpint(crt_request_type_from_string(NULL, &type), ==, -EINVAL);

    g_assert_true(crt_request_type_has_output(CRT_REQUEST_READ));
    g_assert_false(crt_request_type_has_input(CRT_REQUEST_READ));
    g_assert_true(crt_request_type_has_input(CRT_REQUEST_WRITE));
    g_assert_false(crt_request_type_has_output(CRT_REQUEST_WRITE));
    g_assert_true(crt_request_type_has_input(CRT_REQUEST_IOCTL));
    g_assert_true(crt_request_type_has_output(CRT_REQUEST_IOCTL));
    g_assert_true(crt_request_type_has_input(CRT_REQUEST_INTERNAL_IOCTL));
    g_assert_true(crt_request_type_has_output(CRT_REQUEST_INTERNAL_IOCTL));
    g_assert_false(crt_request_type_has_input(CRT_REQUEST_INVALID));
    g_assert_false(crt_request_type_has_output(CRT_REQUEST_INVALID));
}

/* ---- spec parsing ----------------------------------------------------- */

typedef struct {
    const char *line;
    CrtTargetSpec want; /* .sim_fail_errno 0 stands for the default, EIO */
} GoodSpec;

#define PATH(p) .kind = CRT_TARGET_PATH, .path = (char *)(p)
#define SIM(g) .kind = CRT_TARGET_SIM, .sim_gen = (g)

static const GoodSpec good_specs[] = {
    {"/dev/null", {PATH("/dev/null"), .text = (char *)"/dev/null"}},
    {"  /dev/ttyUSB0 baud=115200 raw\n",
     {PATH("/dev/ttyUSB0"), .text = (char *)"/dev/ttyUSB0 baud=115200 raw",
      .baud = 115200, .raw = TRUE}},
    {"/dev/ttyS0 baud=9600 8N1",
     {PATH("/dev/ttyS0"), .baud = 9600, .data_bits = 8, .parity_set = TRUE,
      .stop_bits = 1}},
    {"/dev/ttyS0 7e2",
     {PATH("/dev/ttyS0"), .data_bits = 7, .parity = CRT_PARITY_EVEN, .parity_set = TRUE,
      .stop_bits = 2}},
    {"/dev/ttyS0 8O1",
     {PATH("/dev/ttyS0"), .data_bits = 8, .parity = CRT_PARITY_ODD, .parity_set = TRUE,
      .stop_bits = 1}},
    {"/dev/ttyS0 cs7 parity=odd stopbits=2",
     {PATH("/dev/ttyS0"), .data_bits = 7, .parity = CRT_PARITY_ODD, .parity_set = TRUE,
      .stop_bits = 2}},
    {"/dev/ttyS0 databits=6 flow=rtscts shared",
     {PATH("/dev/ttyS0"), .data_bits = 6, .flow = CRT_FLOW_RTSCTS, .flow_set = TRUE,
      .shared = TRUE}},
    {"/dev/ttyS0 xonxoff",
     {PATH("/dev/ttyS0"), .flow = CRT_FLOW_XONXOFF, .flow_set = TRUE}},
    {"/dev/ttyS0 rtscts flow=rtscts",
     {PATH("/dev/ttyS0"), .flow = CRT_FLOW_RTSCTS, .flow_set = TRUE}},
    {"/dev/ttyS0 flow=none parity=none",
     {PATH("/dev/ttyS0"), .flow_set = TRUE, .parity_set = TRUE}},
    {"/dev/ttyS0\tbaud=4000000  raw raw",
     {PATH("/dev/ttyS0"), .baud = 4000000, .raw = TRUE}},
    {"/dev/ttyS0 baud=50 cs8 databits=8",
     {PATH("/dev/ttyS0"), .baud = 50, .data_bits = 8}},
    {"/run/fifo", {PATH("/run/fifo")}},
    {"/dev/ttyACM0 raw wait wait", {PATH("/dev/ttyACM0"), .raw = TRUE, .wait = TRUE}},
    {"unix:/run/app.sock wait", {.kind = CRT_TARGET_UNIX, .path = (char *)"/run/app.sock",
                                 .wait = TRUE}},
    {"tcp:[::1]:7 wait", {.kind = CRT_TARGET_TCP, .host = (char *)"::1", .port = 7,
                          .wait = TRUE}},
    {"unix:/run/app.sock",
     {.kind = CRT_TARGET_UNIX,
      .path = (char *)"/run/app.sock",
      .text = (char *)"unix:/run/app.sock"}},
    {"unix:@abstract", {.kind = CRT_TARGET_UNIX, .path = (char *)"@abstract"}},
    {"tcp:localhost:8080",
     {.kind = CRT_TARGET_TCP, .host = (char *)"localhost", .port = 8080}},
    {"tcp:192.168.1.10:1",
     {.kind = CRT_TARGET_TCP, .host = (char *)"192.168.1.10", .port = 1}},
    {"tcp:[::1]:65535", {.kind = CRT_TARGET_TCP, .host = (char *)"::1", .port = 65535}},
    {"tcp:[fe80::1%eth0]:502",
     {.kind = CRT_TARGET_TCP, .host = (char *)"fe80::1%eth0", .port = 502}},
    {"exec:echo hi", {.kind = CRT_TARGET_EXEC, .command = (char *)"echo hi"}},
    {"exec:   cat -u  | tr a b  \n",
     {.kind = CRT_TARGET_EXEC,
      .command = (char *)"cat -u  | tr a b",
      .text = (char *)"exec:   cat -u  | tr a b"}},
    {"exec:stty baud=9600 raw",
     {.kind = CRT_TARGET_EXEC, .command = (char *)"stty baud=9600 raw"}},
    {"sim:", {SIM(CRT_SIM_GEN_RECORDS), .text = (char *)"sim:"}},
    {"sim:counter", {SIM(CRT_SIM_GEN_COUNTER)}},
    {"sim:zero", {SIM(CRT_SIM_GEN_ZERO)}},
    {"sim:echo", {SIM(CRT_SIM_GEN_ECHO)}},
    {"sim:records rate=100 size=64 delay=5-50 fail=3 errno=ETIMEDOUT fatal limit=1000",
     {SIM(CRT_SIM_GEN_RECORDS), .sim_rate = 100, .sim_size = 64, .sim_delay_min = 5,
      .sim_delay_max = 50, .sim_fail_after = 3, .sim_fail_errno = ETIMEDOUT,
      .sim_fail_fatal = TRUE, .sim_limit = 1000}},
    {"sim: delay=7", {SIM(CRT_SIM_GEN_RECORDS), .sim_delay_min = 7, .sim_delay_max = 7}},
    {"sim:zero errno=eproto", {SIM(CRT_SIM_GEN_ZERO), .sim_fail_errno = EPROTO}},
    {"sim: errno=71", {SIM(CRT_SIM_GEN_RECORDS), .sim_fail_errno = 71}},
    {"sim: errno=ENODEV", {SIM(CRT_SIM_GEN_RECORDS), .sim_fail_errno = ENODEV}},
    {"sim:rate=10", {SIM(CRT_SIM_GEN_RECORDS), .sim_rate = 10}},
    {"sim: rate=0 size=1048576 delay=0-3600000 limit=0",
     {SIM(CRT_SIM_GEN_RECORDS), .sim_size = 1048576, .sim_delay_max = 3600000}},
    {"sim: fail=18446744073709551615",
     {SIM(CRT_SIM_GEN_RECORDS), .sim_fail_after = G_MAXUINT64}},
};

static void assert_spec_equal(const CrtTargetSpec *got, const CrtTargetSpec *want)
{
    g_assert_cmpint(got->kind, ==, want->kind);
    g_assert_cmpstr(got->path, ==, want->path);
    g_assert_cmpstr(got->host, ==, want->host);
    g_assert_cmpuint(got->port, ==, want->port);
    g_assert_cmpstr(got->command, ==, want->command);
    g_assert_cmpuint(got->baud, ==, want->baud);
    g_assert_cmpint(got->raw, ==, want->raw);
    g_assert_cmpuint(got->data_bits, ==, want->data_bits);
    g_assert_cmpint(got->parity, ==, want->parity);
    g_assert_cmpint(got->parity_set, ==, want->parity_set);
    g_assert_cmpuint(got->stop_bits, ==, want->stop_bits);
    g_assert_cmpint(got->flow, ==, want->flow);
    g_assert_cmpint(got->flow_set, ==, want->flow_set);
    g_assert_cmpint(got->shared, ==, want->shared);
    g_assert_cmpint(got->wait, ==, want->wait);
    g_assert_cmpint(got->sim_gen, ==, want->sim_gen);
    g_assert_cmpuint(got->sim_rate, ==, want->sim_rate);
    g_assert_cmpuint(got->sim_size, ==, want->sim_size);
    g_assert_cmpuint(got->sim_delay_min, ==, want->sim_delay_min);
    g_assert_cmpuint(got->sim_delay_max, ==, want->sim_delay_max);
    g_assert_cmpuint(got->sim_fail_after, ==, want->sim_fail_after);
    g_assert_cmpint(got->sim_fail_errno, ==,
                    want->sim_fail_errno ? want->sim_fail_errno : EIO);
    g_assert_cmpint(got->sim_fail_fatal, ==, want->sim_fail_fatal);
    g_assert_cmpuint(got->sim_limit, ==, want->sim_limit);
}

static void test_spec_good(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(good_specs); i++) {
        const GoodSpec *g = &good_specs[i];
        GError *error = NULL;
        CrtTargetSpec spec;

        g_test_message("good spec: \"%s\"", g->line);
        g_assert_cmpint(crt_target_spec_parse(g->line, &spec, &error), ==, 0);
        g_assert_no_error(error);
        assert_spec_equal(&spec, &g->want);
        if (g->want.text != NULL)
            g_assert_cmpstr(spec.text, ==, g->want.text);
        crt_target_spec_clear(&spec);
        g_assert_null(spec.text);
        g_assert_null(spec.path);
    }
}

/* A bad spec and, where it matters, words its message must contain. */
static const struct {
    const char *line;
    const char *needle;
} bad_specs[] = {
    {"", "empty"},
    {"   \n", "empty"},
    {"foo:bar", "unknown target kind"},
    {"dev/ttyS0", "unknown target kind"},
    {"tcp:host", NULL},
    {"tcp:h:0", "port"},
    {"tcp:h:70000", "70000"},
    {"tcp:h:12x", "12x"},
    {"tcp:h:+80", NULL},
    {"tcp:h:", NULL},
    {"tcp::80", NULL},
    {"tcp:::1:80", "brackets"},
    {"tcp:[::1]80", NULL},
    {"tcp:[::1:80", NULL},
    {"tcp:h:80 raw", "raw"},
    {"/dev/x baud=12345", "12345"},
    {"/dev/x baud=", "baud"},
    {"/dev/x baud", "needs a value"},
    {"/dev/x baud=-9600", NULL},
    {"/dev/x baud=+9600", NULL},
    {"/dev/x baud=0x2580", NULL},
    {"/dev/x baud=9600 baud=19200", "conflicts"},
    {"/dev/x cs7 8N1", "conflicts"},
    {"/dev/x rtscts xonxoff", "conflicts"},
    {"/dev/x parity=maybe", "maybe"},
    {"/dev/x cs9", "cs9"},
    {"/dev/x databits=9", NULL},
    {"/dev/x stopbits=3", NULL},
    {"/dev/x flow=hardware", "hardware"},
    {"/dev/x 9N1", "9N1"},
    {"/dev/x 8X1", "8X1"},
    {"/dev/x 8N3", "8N3"},
    {"/dev/x raw=1", "takes no value"},
    {"/dev/x wait=yes", "takes no value"},
    {"sim: wait", "path and socket targets"},
    {"tcp:h:1 foo", "take only \"wait\""},
    {"/dev/x unknownopt", "unknown option \"unknownopt\" for a path target"},
    {"/dev/x rate=5", "sim targets"},
    {"sim:bogus", "bogus"},
    {"sim: rate=-1", "-1"},
    {"sim: rate=1000001", NULL},
    {"sim: size=0", "size"},
    {"sim: size=1048577", NULL},
    {"sim: delay=5-1", "delay"},
    {"sim: delay=-5", NULL},
    {"sim: delay=5-", NULL},
    {"sim: delay=3600001", NULL},
    {"sim: delay=", NULL},
    {"sim: fail=0", NULL},
    {"sim: errno=ENOTANERRNO", "ENOTANERRNO"},
    {"sim: errno=0", NULL},
    {"sim: errno=-5", NULL},
    {"sim: rate=99999999999999999999", "99999999999999999999"},
    {"sim: limit=99999999999999999999999", NULL},
    {"sim: baud=9600", "path targets"},
    {"sim: fatal=yes", NULL},
    {"sim: rate=5 rate=6", "conflicts"},
    {"sim:\nrate=5", "single line"},
    {"exec:", "command"},
    {"exec:   \t", "command"},
    {"unix:", NULL},
    {"unix:relative.sock", "absolute"},
    {"unix:@", NULL},
    {"unix:/x foo", "foo"},
};

static void test_spec_bad(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(bad_specs); i++) {
        GError *error = NULL;
        CrtTargetSpec spec;

        g_assert_cmpint(crt_target_spec_parse(bad_specs[i].line, &spec, &error), ==,
                        -EINVAL);
        g_test_message("bad spec \"%s\": %s", bad_specs[i].line,
                       error ? error->message : "(no error)");
        g_assert_error(error, G_IO_ERROR, (int)G_IO_ERROR_INVALID_ARGUMENT);
        g_assert_cmpstr(error->message, !=, "");
        if (bad_specs[i].needle != NULL)
            assert_contains(error->message, bad_specs[i].needle);
        /* A failed parse leaves nothing to clear. */
        g_assert_null(spec.text);
        g_assert_null(spec.path);
        g_assert_null(spec.host);
        g_assert_null(spec.command);
        g_error_free(error);
    }
}

static void test_spec_no_error_wanted(void)
{
    CrtTargetSpec spec;

    g_assert_cmpint(crt_target_spec_parse("nonsense", &spec, NULL), ==, -EINVAL);
    g_assert_cmpint(crt_target_spec_parse("sim: size=0", &spec, NULL), ==, -EINVAL);
}

/* ---- paths ------------------------------------------------------------ */

static void test_open_dev_null(void)
{
    CrtTarget *t = open_ok("/dev/null");
    CrtTargetCounters c;

    g_assert_cmpint(crt_target_kind(t), ==, CRT_TARGET_PATH);
    g_assert_cmpstr(crt_target_describe(t), ==, "/dev/null");
    g_assert_cmpint(crt_target_fd(t), >=, 0);
    crt_target_get_counters(t, &c);
    g_assert_false(c.has_icount);
    g_assert_cmpuint(c.bytes_read, ==, 0);
    g_assert_cmpuint(c.bytes_written, ==, 0);
    g_assert_true(crt_target_ref(t) == t);
    crt_target_unref(t);
    crt_target_unref(t);
}

static void test_open_default_loop(void)
{
    CrtTarget *t = NULL;

    g_assert_cmpint(crt_target_open_spec("/dev/zero", NULL, &t, NULL), ==, 0);
    g_assert_cmpint(crt_target_fd(t), >=, 0);
    crt_target_unref(t);
}

static void test_open_missing(void)
{
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "missing", NULL);
    char *msg = open_fails(path, ENOENT);

    assert_contains(msg, path);
    g_free(msg);
    g_free(path);
    tu_rmrf(dir);
    g_free(dir);
}

static void test_open_directory(void)
{
    char *dir = tu_tmpdir();
    char *msg = open_fails(dir, EISDIR);

    assert_contains(msg, dir);
    g_free(msg);
    tu_rmrf(dir);
    g_free(dir);
}

/* A FIFO opens at once, without a writer on the other side. */
static void test_open_fifo(void)
{
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "fifo", NULL);

    g_assert_cmpint(mkfifo(path, 0600), ==, 0);
    CrtTarget *t = open_ok(path);
    g_assert_cmpint(crt_target_fd(t), >=, 0);
    crt_target_unref(t);
    g_free(path);
    tu_rmrf(dir);
    g_free(dir);
}

/* A socket given as a path is refused with a hint to write unix:. */
static void test_open_socket_as_path(void)
{
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "sock", NULL);
    TuServer *server = tu_echo_server_unix(path);

    g_assert_nonnull(server);
    char *msg = open_fails(path, ENXIO);
    assert_contains(msg, "unix:");
    g_free(msg);
    tu_server_stop(server);
    g_free(path);
    tu_rmrf(dir);
    g_free(dir);
}

/* ---- ttys ------------------------------------------------------------- */

typedef struct {
    int master;
    char *slave;
} Pty;

static void pty_open(Pty *pty)
{
    g_assert_cmpint(tu_openpty(&pty->master, &pty->slave), ==, 0);
}

static void pty_close(Pty *pty)
{
    close(pty->master);
    g_free(pty->slave);
}

/* The master of a pty reads the slave's termios: it sees our changes
 * whatever locks the target holds on the slave. */
static void test_tty_termios(void)
{
    Pty pty;
    struct termios before, during, after;

    pty_open(&pty);
    g_assert_cmpint(tcgetattr(pty.master, &before), ==, 0);
    g_assert_cmpint(before.c_lflag & ICANON, !=, 0); /* a fresh pty is cooked */

    char *spec = g_strdup_printf("%s raw baud=9600 8N1", pty.slave);
    CrtTarget *t = open_ok(spec);
    g_assert_cmpint(tcgetattr(pty.master, &during), ==, 0);
    g_assert_cmpuint(cfgetospeed(&during), ==, B9600);
    g_assert_cmpuint(cfgetispeed(&during), ==, B9600);
    g_assert_cmpuint(during.c_cflag & CSIZE, ==, CS8);
    g_assert_cmpuint(during.c_cflag & (PARENB | CSTOPB), ==, 0);
    g_assert_cmpuint(during.c_cflag & (CLOCAL | CREAD), ==, CLOCAL | CREAD);
    g_assert_cmpuint(during.c_lflag & (ICANON | ECHO | ISIG | IEXTEN), ==, 0);
    g_assert_cmpuint(during.c_oflag & OPOST, ==, 0);
    g_assert_cmpuint(during.c_cc[VMIN], ==, 1);
    g_assert_cmpuint(during.c_cc[VTIME], ==, 0);
    crt_target_unref(t);

    g_assert_cmpint(tcgetattr(pty.master, &after), ==, 0);
    g_assert_cmpuint(after.c_cflag, ==, before.c_cflag);
    g_assert_cmpuint(after.c_lflag, ==, before.c_lflag);
    g_assert_cmpuint(after.c_iflag, ==, before.c_iflag);
    g_assert_cmpuint(after.c_oflag, ==, before.c_oflag);
    g_assert_cmpuint(cfgetospeed(&after), ==, cfgetospeed(&before));
    g_free(spec);
    pty_close(&pty);
}

static void test_tty_parity_and_flow(void)
{
    Pty pty;
    struct termios tio;

    pty_open(&pty);
    char *spec = g_strdup_printf("%s baud=115200 7O2 rtscts", pty.slave);
    CrtTarget *t = open_ok(spec);
    g_assert_cmpint(tcgetattr(pty.master, &tio), ==, 0);
    g_assert_cmpuint(cfgetospeed(&tio), ==, B115200);
    /* A pty forces CS8 and clears PARENB whatever it is told, so only the
     * flags it keeps can be checked here. */
    g_assert_cmpuint(tio.c_cflag & (PARODD | CSTOPB), ==, PARODD | CSTOPB);
    g_assert_cmpuint(tio.c_cflag & CRTSCTS, ==, CRTSCTS);
    crt_target_unref(t);
    g_free(spec);
    pty_close(&pty);
}

/* A second opener is told who holds the tty; once released it may open. */
static void test_tty_lock(void)
{
    Pty pty;

    pty_open(&pty);
    CrtTarget *first = open_ok(pty.slave);
    char *msg = open_fails(pty.slave, EBUSY);
    char *pid = g_strdup_printf("%d", (int)getpid());

    assert_contains(msg, pty.slave);
    assert_contains(msg, pid);
    assert_contains(msg, "shared");
    crt_target_unref(first);

    CrtTarget *again = open_ok(pty.slave);
    crt_target_unref(again);
    g_free(pid);
    g_free(msg);
    pty_close(&pty);
}

/* Another program holding the tty with TIOCEXCL alone (no flock) keeps
 * even a root daemon out, and is found among the open descriptors. */
static void test_tty_foreign_exclusive(void)
{
    Pty pty;

    pty_open(&pty);
    int fd = open(pty.slave, O_RDWR | O_NOCTTY | O_CLOEXEC);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ioctl(fd, TIOCEXCL), ==, 0);
    char *msg = open_fails(pty.slave, EBUSY);
    char *pid = g_strdup_printf("pid %d", (int)getpid());
    assert_contains(msg, pid);
    /* On a pty the flag outlives the descriptor (the master keeps the tty
     * alive), so the holder clears it as a well-behaved program does. */
    g_assert_cmpint(ioctl(fd, TIOCNXCL), ==, 0);
    close(fd);

    CrtTarget *t = open_ok(pty.slave);
    crt_target_unref(t);
    g_free(pid);
    g_free(msg);
    pty_close(&pty);
}

static void test_tty_shared(void)
{
    Pty pty;

    pty_open(&pty);
    char *spec = g_strdup_printf("%s shared", pty.slave);
    CrtTarget *a = open_ok(spec);
    CrtTarget *b = open_ok(spec);
    crt_target_unref(a);
    crt_target_unref(b);
    /* Shared openers leave no lock behind. */
    CrtTarget *c = open_ok(pty.slave);
    crt_target_unref(c);
    g_free(spec);
    pty_close(&pty);
}

/* A pty has no UART counters; asking must still be safe. */
static void test_tty_counters(void)
{
    Pty pty;
    CrtTargetCounters c;

    pty_open(&pty);
    CrtTarget *t = open_ok(pty.slave);
    crt_target_get_counters(t, &c);
    if (!c.has_icount) {
        g_assert_cmpuint(c.overruns, ==, 0);
        g_assert_cmpuint(c.framing, ==, 0);
        g_assert_cmpuint(c.parity, ==, 0);
        g_assert_cmpuint(c.breaks, ==, 0);
    }
    crt_target_unref(t);
    pty_close(&pty);
}

/* ---- sockets ---------------------------------------------------------- */

typedef struct {
    TuServer *server;
    guint want;
} ConnWait;

static gboolean has_connections(gpointer data)
{
    ConnWait *w = data;

    return tu_server_connections(w->server) >= w->want;
}

static void test_unix_connect(void)
{
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "echo.sock", NULL);
    char *spec = g_strdup_printf("unix:%s", path);
    ConnWait w = {tu_echo_server_unix(path), 1};

    g_assert_nonnull(w.server);
    CrtTarget *t = open_ok(spec);
    g_assert_cmpint(crt_target_kind(t), ==, CRT_TARGET_UNIX);
    g_assert_cmpint(crt_target_fd(t), >=, 0);
    TU_WAIT_FOR(has_connections(&w));
    crt_target_unref(t);
    tu_server_stop(w.server);
    g_free(spec);
    g_free(path);
    tu_rmrf(dir);
    g_free(dir);
}

typedef struct {
    CrtIo io;
    gint done; /* atomic */
} TestIo;

static void test_io_done(CrtIo *io)
{
    TestIo *tio = (TestIo *)io;

    g_atomic_int_set(&tio->done, 1);
}

static gboolean io_is_done(gpointer data)
{
    return g_atomic_int_get(&((TestIo *)data)->done) != 0;
}

typedef struct {
    CrtTarget *t;
    CrtIo *io;
} SubmitCall;

static void submit_on_loop(gpointer data)
{
    SubmitCall *call = data;

    crt_target_submit(call->t, call->io);
}

static void submit(CrtTarget *t, TestIo *tio)
{
    SubmitCall call = {t, &tio->io};

    crt_loop_call(test_loop, submit_on_loop, &call);
}

/* A write and a read through the fd driver come back from the echo server,
 * and the byte counters see both. */
static void test_unix_echo_roundtrip(void)
{
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "echo.sock", NULL);
    char *spec = g_strdup_printf("unix:%s", path);
    TuServer *server = tu_echo_server_unix(path);
    char out[64] = {0};
    TestIo w = {
        {.type = CRT_REQUEST_WRITE, .in = "ping", .in_len = 4, .done = test_io_done}};
    TestIo r = {{.type = CRT_REQUEST_READ,
                 .out = out,
                 .out_cap = sizeof out,
                 .done = test_io_done}};
    CrtTargetCounters c;

    g_assert_nonnull(server);
    CrtTarget *t = open_ok(spec);
    submit(t, &w);
    TU_WAIT_FOR(io_is_done(&w));
    g_assert_cmpint(w.io.status, ==, 0);
    g_assert_cmpuint(w.io.bytes_in, ==, 4);
    submit(t, &r);
    TU_WAIT_FOR(io_is_done(&r));
    g_assert_cmpint(r.io.status, ==, 0);
    g_assert_cmpmem(out, r.io.bytes_out, "ping", r.io.bytes_out);
    crt_target_get_counters(t, &c);
    g_assert_cmpuint(c.bytes_written, ==, 4);
    g_assert_cmpuint(c.bytes_read, ==, r.io.bytes_out);
    crt_target_unref(t);
    tu_server_stop(server);
    g_free(spec);
    g_free(path);
    tu_rmrf(dir);
    g_free(dir);
}

static void test_unix_missing(void)
{
    char *dir = tu_tmpdir();
    char *spec = g_strdup_printf("unix:%s/nobody.sock", dir);
    char *msg = open_fails(spec, ENOENT);

    assert_contains(msg, dir);
    g_free(msg);
    g_free(spec);
    tu_rmrf(dir);
    g_free(dir);
}

/* A socket file left behind by a dead server refuses connections. */
static void test_unix_refused(void)
{
    char *dir = tu_tmpdir();
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    g_snprintf(sa.sun_path, sizeof sa.sun_path, "%s/stale.sock", dir);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, sizeof sa), ==, 0);
    close(fd);
    char *spec = g_strdup_printf("unix:%s", sa.sun_path);
    g_free(open_fails(spec, ECONNREFUSED));
    g_free(spec);
    tu_rmrf(dir);
    g_free(dir);
}

static void test_unix_too_long(void)
{
    char *spec = g_strdup_printf("unix:/%0200d", 0);

    g_free(open_fails(spec, ENAMETOOLONG));
    g_free(spec);
}

static void test_unix_abstract(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char *name = g_strdup_printf("crtfs-test-%d", (int)getpid());
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t len =
        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));

    memcpy(sa.sun_path + 1, name, strlen(name));
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, len), ==, 0);
    g_assert_cmpint(listen(fd, 4), ==, 0);
    char *spec = g_strdup_printf("unix:@%s", name);
    CrtTarget *t = open_ok(spec);
    crt_target_unref(t);
    close(fd);
    g_free(spec);
    g_free(name);
}

static void check_tcp_connect(const char *host)
{
    guint16 port = 0;
    ConnWait w = {tu_echo_server_tcp(&port), 1};

    g_assert_nonnull(w.server);
    char *spec = g_strdup_printf("tcp:%s:%u", host, port);
    CrtTarget *t = open_ok(spec);
    g_assert_cmpint(crt_target_kind(t), ==, CRT_TARGET_TCP);
    g_assert_cmpint(crt_target_fd(t), >=, 0);
    TU_WAIT_FOR(has_connections(&w));
    crt_target_unref(t);
    tu_server_stop(w.server);
    g_free(spec);
}

static void test_tcp_connect(void)
{
    check_tcp_connect("127.0.0.1");
}

/* `localhost` may resolve to ::1 first, where nobody listens: the next
 * address is tried. */
static void test_tcp_localhost(void)
{
    check_tcp_connect("localhost");
}

static void test_tcp_refused(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, sizeof sa), ==, 0);
    g_assert_cmpint(getsockname(fd, (struct sockaddr *)&sa, &len), ==, 0);
    close(fd);
    char *where = g_strdup_printf("127.0.0.1:%u", ntohs(sa.sin_port));
    char *spec = g_strdup_printf("tcp:%s", where);
    char *msg = open_fails(spec, ECONNREFUSED);
    assert_contains(msg, where);
    g_free(msg);
    g_free(spec);
    g_free(where);
}

/* ---- commands --------------------------------------------------------- */

static void test_exec_reaped(void)
{
    CrtTarget *t = open_ok("exec:echo hi");

    g_assert_cmpint(crt_target_kind(t), ==, CRT_TARGET_EXEC);
    char *got = read_some(crt_target_fd(t));
    g_assert_cmpstr(got, ==, "hi\n");
    crt_target_unref(t);
    assert_no_children();
    g_free(got);
}

static gboolean group_is_gone(gpointer data)
{
    return kill(-GPOINTER_TO_INT(data), 0) < 0 && errno == ESRCH;
}

/* A command that ignores SIGTERM, and its own child, are killed anyway. */
static void test_exec_stubborn(void)
{
    CrtTarget *t = open_ok("exec:trap '' TERM; echo $$; sleep 100; true");
    char *got = read_some(crt_target_fd(t)); /* the trap is set by now */
    int pgid = atoi(got);
    gint64 start = g_get_monotonic_time();

    g_assert_cmpint(pgid, >, 1);
    crt_target_unref(t);
    g_assert_cmpint(g_get_monotonic_time() - start, <, 10 * G_USEC_PER_SEC);
    assert_no_children();
    /* SIGKILL is delivered asynchronously, and the orphaned `sleep` is
     * reaped by init: the group disappears soon, not at once. */
    TU_WAIT_FOR(group_is_gone(GINT_TO_POINTER(pgid)));
    g_free(got);
}

/* The command's stdin and stdout are the target's two descriptors. */
static void test_exec_stdin(void)
{
    CrtTarget *t = open_ok("exec:read line; echo \"got $line\"");

    g_assert_cmpint(write(t->write_fd, "shout\n", 6), ==, 6);
    char *got = read_some(crt_target_fd(t));
    g_assert_cmpstr(got, ==, "got shout\n");
    crt_target_unref(t);
    assert_no_children();
    g_free(got);
}

/* Wait until the command behind `t` has closed its stdout. */
static void wait_hangup(CrtTarget *t)
{
    struct pollfd pfd = {.fd = crt_target_fd(t), .events = POLLIN};
    char buf[64];

    do {
        g_assert_cmpint(poll(&pfd, 1, TU_EVENTUALLY_MS), ==, 1);
    } while (read(pfd.fd, buf, sizeof buf) > 0);
}

static gint64 cpu_time_us(void)
{
    struct rusage ru;

    g_assert_cmpint(getrusage(RUSAGE_SELF, &ru), ==, 0);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * G_USEC_PER_SEC +
           ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

/* A hung-up descriptor with no request waiting costs no CPU: nothing
 * polls it in a loop. */
static void test_exec_idle_after_exit(void)
{
    CrtTarget *t = open_ok("exec:true");

    wait_hangup(t);
    gint64 cpu = cpu_time_us();
    g_usleep(G_USEC_PER_SEC / 2);
    /* Idle is ~0; half of the wall time is a bound only a busy loop
     * reaches. */
    g_assert_cmpint(cpu_time_us() - cpu, <, G_USEC_PER_SEC / 4);
    crt_target_unref(t);
    assert_no_children();
}

/* Tearing down a target whose command is gone, or going, races nothing on the loop
 * thread; repeated to give a race a chance to show under a sanitizer. */
static void test_exec_unref_after_exit(void)
{
    for (int i = 0; i < 40; i++) {
        CrtTarget *t = open_ok("exec:true");

        /* Half the time the hang-up arrives during the teardown. */
        if (i % 2 == 0)
            wait_hangup(t);
        crt_target_unref(t);
    }
    assert_no_children();
}

/* ---- sim (the kind lives elsewhere; opening goes through here) -------- */

static void test_sim_open(void)
{
    CrtTarget *t = open_ok("sim:counter rate=10");

    g_assert_cmpint(crt_target_kind(t), ==, CRT_TARGET_SIM);
    g_assert_cmpint(crt_target_fd(t), ==, -1);
    g_assert_cmpstr(crt_target_describe(t), ==, "sim:counter rate=10");
    crt_target_unref(t);
}

static guint count_fds(void)
{
    GDir *dir = g_dir_open("/proc/self/fd", 0, NULL);
    guint n = 0;

    g_assert_nonnull(dir);
    while (g_dir_read_name(dir) != NULL)
        n++;
    g_dir_close(dir);
    return n;
}

static gboolean servers_idle(gpointer data)
{
    TuServer **servers = data;

    return tu_server_active(servers[0]) == 0 && tu_server_active(servers[1]) == 0;
}

static void open_and_unref_all(char **specs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        crt_target_unref(open_ok(specs[i]));
}

/* Every kind gives back every descriptor it opened.  A first round lets
 * GLib and the loop create what they create once. */
static void test_no_fd_leak(void)
{
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "echo.sock", NULL);
    char *specs[6];
    guint16 port = 0;
    TuServer *servers[2] = {tu_echo_server_unix(path), tu_echo_server_tcp(&port)};
    Pty pty;

    g_assert_nonnull(servers[0]);
    g_assert_nonnull(servers[1]);
    pty_open(&pty);
    specs[0] = g_strdup("/dev/null");
    specs[1] = g_strdup_printf("%s raw baud=9600", pty.slave);
    specs[2] = g_strdup_printf("unix:%s", path);
    specs[3] = g_strdup_printf("tcp:127.0.0.1:%u", port);
    specs[4] = g_strdup("exec:cat");
    specs[5] = g_strdup("sim:echo");
    open_and_unref_all(specs, G_N_ELEMENTS(specs));
    /* The servers close their side when they see our EOF. */
    TU_WAIT_FOR(servers_idle(servers));
    guint before = count_fds();
    open_and_unref_all(specs, G_N_ELEMENTS(specs));
    TU_WAIT_FOR(servers_idle(servers));
    g_assert_cmpuint(count_fds(), ==, before);
    assert_no_children();

    for (size_t i = 0; i < G_N_ELEMENTS(specs); i++)
        g_free(specs[i]);
    pty_close(&pty);
    tu_server_stop(servers[1]);
    tu_server_stop(servers[0]);
    g_free(path);
    tu_rmrf(dir);
    g_free(dir);
}

static void test_open_bad_spec(void)
{
    g_free(open_fails("foo:bar", EINVAL));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* Writes to a socket or pipe whose peer has gone must fail, not kill
     * the test program. */
    signal(SIGPIPE, SIG_IGN);
    test_loop = crt_loop_new();

    g_test_add_func("/target/request-types", test_request_types);
    g_test_add_func("/target/spec/good", test_spec_good);
    g_test_add_func("/target/spec/bad", test_spec_bad);
    g_test_add_func("/target/spec/no-error-wanted", test_spec_no_error_wanted);
    g_test_add_func("/target/open/bad-spec", test_open_bad_spec);
    g_test_add_func("/target/open/dev-null", test_open_dev_null);
    g_test_add_func("/target/open/default-loop", test_open_default_loop);
    g_test_add_func("/target/open/missing", test_open_missing);
    g_test_add_func("/target/open/directory", test_open_directory);
    g_test_add_func("/target/open/fifo", test_open_fifo);
    g_test_add_func("/target/open/socket-as-path", test_open_socket_as_path);
    g_test_add_func("/target/tty/termios", test_tty_termios);
    g_test_add_func("/target/tty/parity-and-flow", test_tty_parity_and_flow);
    g_test_add_func("/target/tty/lock", test_tty_lock);
    g_test_add_func("/target/tty/foreign-exclusive", test_tty_foreign_exclusive);
    g_test_add_func("/target/tty/shared", test_tty_shared);
    g_test_add_func("/target/tty/counters", test_tty_counters);
    g_test_add_func("/target/unix/connect", test_unix_connect);
    g_test_add_func("/target/unix/echo-roundtrip", test_unix_echo_roundtrip);
    g_test_add_func("/target/unix/missing", test_unix_missing);
    g_test_add_func("/target/unix/refused", test_unix_refused);
    g_test_add_func("/target/unix/too-long", test_unix_too_long);
    g_test_add_func("/target/unix/abstract", test_unix_abstract);
    g_test_add_func("/target/tcp/connect", test_tcp_connect);
    g_test_add_func("/target/tcp/localhost", test_tcp_localhost);
    g_test_add_func("/target/tcp/refused", test_tcp_refused);
    g_test_add_func("/target/exec/reaped", test_exec_reaped);
    g_test_add_func("/target/exec/stubborn", test_exec_stubborn);
    g_test_add_func("/target/exec/stdin", test_exec_stdin);
    g_test_add_func("/target/exec/idle-after-exit", test_exec_idle_after_exit);
    g_test_add_func("/target/exec/unref-after-exit", test_exec_unref_after_exit);
    g_test_add_func("/target/sim/open", test_sim_open);
    g_test_add_func("/target/no-fd-leak", test_no_fd_leak);

    int r = g_test_run();
    crt_loop_unref(test_loop);
    return r;
}
