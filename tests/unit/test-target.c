/* crtfs tests - targets: request types, the spec parser, opening a bad
 * spec and a simulator, and every kind giving back what it opened.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gio/gio.h>

#include "target-private.h"
#include "target-fixture.h"

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
    {"sim: baud=9600", "applies to sim:uart"},
    {"sim: raw", "path targets"},
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
    target_tests_init(&argc, &argv);
    g_test_add_func("/target/request-types", test_request_types);
    g_test_add_func("/target/spec/good", test_spec_good);
    g_test_add_func("/target/spec/bad", test_spec_bad);
    g_test_add_func("/target/spec/no-error-wanted", test_spec_no_error_wanted);
    g_test_add_func("/target/open/bad-spec", test_open_bad_spec);
    g_test_add_func("/target/sim/open", test_sim_open);
    g_test_add_func("/target/no-fd-leak", test_no_fd_leak);
    return target_tests_run();
}
