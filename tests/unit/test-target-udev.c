/* crtfs tests - targets by identity (usb:, udev:): the spec forms and
 * their errors, and resolution through real libudev against this
 * machine's real sysfs (/sys/class/tty: ttyS0, the virtual consoles
 * tty0..tty63; no udevd, so the properties are the kernel's uevent ones,
 * DEVNAME, MAJOR, MINOR, DEVPATH, SUBSYSTEM).  Nothing here is emulated;
 * the USB adapters are in test-target-udev-mock.c, under umockdev.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <gio/gio.h>

#include "target-fixture.h"

/* ---- spec forms ------------------------------------------------------- */

static CrtTargetSpec parse_ok(const char *line)
{
    CrtTargetSpec spec;
    GError *error = NULL;

    g_test_message("good spec: \"%s\"", line);
    g_assert_cmpint(crt_target_spec_parse(line, &spec, &error), ==, 0);
    g_assert_no_error(error);
    g_assert_cmpint(spec.kind, ==, CRT_TARGET_UDEV);
    return spec;
}

static void test_spec_usb(void)
{
    CrtTargetSpec s = parse_ok("usb:0403:6001 serial=A12345 interface=2 baud=115200 8N1 "
                               "wait shared raw");
    CrtTargetSpec c;

    g_assert_true(s.usb_ids);
    g_assert_cmpuint(s.usb_vendor, ==, 0x0403);
    g_assert_cmpuint(s.usb_product, ==, 0x6001);
    g_assert_cmpstr(s.usb_serial, ==, "A12345");
    g_assert_cmpint(s.usb_interface, ==, 2);
    g_assert_null(s.usb_path);
    g_assert_null(s.match);
    g_assert_null(s.path);
    /* The tty options are all there for the node it resolves to. */
    g_assert_cmpuint(s.baud, ==, 115200);
    g_assert_cmpuint(s.data_bits, ==, 8);
    g_assert_true(s.parity_set);
    g_assert_cmpuint(s.stop_bits, ==, 1);
    g_assert_true(s.wait && s.shared && s.raw);
    crt_target_spec_copy(&c, &s);
    crt_target_spec_clear(&s);
    g_assert_cmpstr(c.usb_serial, ==, "A12345");
    crt_target_spec_clear(&c);

    s = parse_ok("usb:67b:2303 path=1-1.4 match=ID_MODEL=*Serial*,ID_REVISION=0300 "
                 "match=DEVPATH=/devices/*");
    g_assert_cmpuint(s.usb_vendor, ==, 0x067b);
    g_assert_cmpint(s.usb_interface, ==, -1);
    g_assert_cmpstr(s.usb_path, ==, "1-1.4");
    g_assert_cmpuint(g_strv_length(s.match), ==, 3);
    g_assert_cmpstr(s.match[0], ==, "ID_MODEL=*Serial*");
    g_assert_cmpstr(s.match[2], ==, "DEVPATH=/devices/*");
    crt_target_spec_copy(&c, &s);
    crt_target_spec_clear(&s);
    g_assert_cmpstr(c.match[1], ==, "ID_REVISION=0300");
    crt_target_spec_clear(&c);
    s = parse_ok("usb:ABCD:ef01 serial=x serial=x"); /* a repeat that agrees */
    g_assert_cmpuint(s.usb_vendor, ==, 0xabcd);
    crt_target_spec_clear(&s);
}

static void test_spec_udev(void)
{
    CrtTargetSpec s = parse_ok("udev:ID_SERIAL_SHORT=A12345,SUBSYSTEM=tty baud=9600");

    g_assert_false(s.usb_ids);
    g_assert_cmpuint(g_strv_length(s.match), ==, 2);
    g_assert_cmpstr(s.match[0], ==, "ID_SERIAL_SHORT=A12345");
    g_assert_cmpuint(s.baud, ==, 9600);
    crt_target_spec_clear(&s);
    s = parse_ok("udev: path=pci-0000:00:14.0-usb-0:2:1.0");
    g_assert_null(s.match);
    g_assert_cmpstr(s.usb_path, ==, "pci-0000:00:14.0-usb-0:2:1.0");
    crt_target_spec_clear(&s);
    s = parse_ok("udev: serial=A12345");
    g_assert_cmpstr(s.usb_serial, ==, "A12345");
    crt_target_spec_clear(&s);
}

static const struct {
    const char *line;
    const char *needle;
} bad_specs[] = {
    {"usb:", "expected usb:VID:PID"},
    {"usb:0403", "expected usb:VID:PID"},
    {"usb:0403:", "expected usb:VID:PID"},
    {"usb::6001", "expected usb:VID:PID"},
    {"usb:0403:6001:1", "expected usb:VID:PID"},
    {"usb:04030:6001", "in hex as lsusb prints them"},
    {"usb:zz:6001", "\"usb:zz:6001\""},
    {"usb:0403:6001 serial=", "needs a value"},
    {"usb:0403:6001 serial", "needs a value (serial=...)"},
    {"usb:0403:6001 serial=A serial=B", "\"serial=B\" conflicts with \"serial=A\""},
    {"usb:0403:6001 interface=256", "from 0 to 255"},
    {"usb:0403:6001 interface=x", "invalid value \"x\" for interface"},
    {"usb:0403:6001 interface=0 interface=1", "conflicts"},
    {"usb:0403:6001 match=FOO", "invalid match \"FOO\""},
    {"usb:0403:6001 match=FOO=", "expected KEY=VALUE"},
    {"usb:0403:6001 match==x", "invalid match \"=x\""},
    {"usb:0403:6001 match=A=1,,B=2", "invalid match \"\""},
    {"usb:0403:6001 baud=0", "rate in bits per second"},
    {"usb:0403:6001 rate=10", "applies to sim targets, not to a udev target"},
    {"usb:0403:6001 bogus", "unknown option \"bogus\" for a udev target"},
    {"udev:", "udev: needs something to match"},
    {"udev: baud=9600", "udev: needs something to match"},
    {"udev:ID_SERIAL", "invalid match \"ID_SERIAL\" in \"udev:ID_SERIAL\""},
    {"udev:A B=1", "invalid match \"A\""},
    {"/dev/ttyS0 serial=A12345",
     "applies to usb: and udev: targets, not to a path target"},
    {"sim: match=A=1", "applies to usb: and udev: targets"},
    {"tcp:h:1 interface=0", "applies to usb: and udev: targets"},
};

static void test_spec_bad(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(bad_specs); i++) {
        GError *error = NULL;
        CrtTargetSpec spec;

        g_assert_cmpint(crt_target_spec_parse(bad_specs[i].line, &spec, &error), ==,
                        -EINVAL);
        g_test_message("bad spec \"%s\": %s", bad_specs[i].line, error->message);
        g_assert_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
        assert_contains(error->message, bad_specs[i].needle);
        g_assert_null(spec.text);
        g_assert_null(spec.match);
        g_assert_null(spec.usb_serial);
        g_clear_error(&error);
    }
}

/* ---- resolution on this machine's sysfs ------------------------------- */

static char *presence_of(CrtTarget *t)
{
    char *reason = NULL;

    crt_target_presence(t, &reason);
    g_assert_nonnull(reason);
    return reason;
}

/* One real tty by its uevent properties: resolved to /dev/ttyS0, opened
 * with the tty options (a real 8250 port's termios), named in presence. */
static void test_real_one_match(void)
{
    struct stat st;
    CrtTarget *t;
    char *p, *spec;

    /* The properties the spec names, read the way a user would. */
    g_assert_cmpint(stat("/dev/ttyS0", &st), ==, 0);
    spec = g_strdup_printf("udev:MAJOR=%u,MINOR=%u baud=9600 raw shared",
                           major(st.st_rdev), minor(st.st_rdev));
    t = open_ok(spec);
    p = presence_of(t);
    g_test_message("presence: %s", p);
    assert_contains(p, "present (/dev/ttyS0, matched udev:MAJOR=");
    g_assert_true(isatty(crt_target_fd(t)));
    g_assert_true(crt_target_holds_file(t, "/dev/ttyS0"));
    g_assert_cmpstr(crt_target_describe(t), ==, spec);
    g_free(p);
    crt_target_unref(t);
    g_free(spec);

    t = open_ok("udev:DEVNAME=/dev/ttyS0 match=SUBSYSTEM=tty shared");
    p = presence_of(t);
    g_assert_cmpstr(
        p, ==, "present (/dev/ttyS0, matched udev:DEVNAME=/dev/ttyS0,SUBSYSTEM=tty)");
    g_free(p);
    crt_target_unref(t);
}

static void test_real_no_match(void)
{
    char *msg = open_fails("udev:DEVNAME=/dev/ttyNOSUCH9", ENOENT);

    g_assert_cmpstr(msg, ==, "no tty matches udev:DEVNAME=/dev/ttyNOSUCH9");
    g_free(msg);
    /* No USB here: the sysattr path finds no adapter. */
    msg = open_fails("usb:0403:6001 serial=A12345 baud=115200", ENOENT);
    g_assert_cmpstr(msg, ==, "no tty matches usb:0403:6001 serial=A12345");
    g_free(msg);
    /* Without udevd no ID_* property exists: a match on one finds nothing. */
    if (access("/run/udev/control", F_OK) != 0) {
        msg = open_fails("udev:ID_SERIAL_SHORT=*", ENOENT);
        g_free(msg);
    }
}

/* Several ttys match: the error names them all, and none is opened
 * (the virtual consoles tty1, tty10..tty19 would be). */
static void test_real_ambiguous(void)
{
    char *msg = open_fails("udev:DEVNAME=/dev/tty1*", ENOTUNIQ);
    CrtTargetSpec spec;
    GError *error = NULL;
    char *node = NULL;

    assert_contains(msg,
                    "11 ttys match udev:DEVNAME=/dev/tty1*: /dev/tty1, /dev/tty10, ");
    assert_contains(msg,
                    "/dev/tty19; say which with serial=, interface=, path= or match=");
    g_free(msg);
    /* The daemon's question gets the same answer. */
    g_assert_cmpint(crt_target_spec_parse("udev:DEVNAME=/dev/tty1*", &spec, NULL), ==, 0);
    g_assert_cmpint(crt_target_spec_node(&spec, &node, &error), ==, -ENOTUNIQ);
    g_assert_null(node);
    g_clear_error(&error);
    crt_target_spec_clear(&spec);
    /* A `wait` target takes several as a refusal, not as absence. */
    msg = open_fails("udev:DEVNAME=/dev/tty1* wait", ENOTUNIQ);
    g_free(msg);
}

/* `wait` with nothing to find: the open succeeds, waiting, and presence
 * says what it waits for; one that finds ttyS0 is present at once. */
static void test_real_wait(void)
{
    CrtTarget *t = open_ok("usb:0403:6001 wait");
    char *p = presence_of(t);

    g_assert_cmpint(crt_target_presence(t, NULL), ==, CRT_PRESENCE_WAITING);
    assert_contains(p, "absent, waiting since ");
    assert_contains(p, ": no tty matches usb:0403:6001 (lost 0, back 0)");
    g_free(p);
    crt_target_unref(t);
    t = open_ok("udev:DEVNAME=/dev/ttyS0 wait shared");
    p = presence_of(t);
    g_assert_cmpstr(
        p, ==, "present (/dev/ttyS0, matched udev:DEVNAME=/dev/ttyS0) (lost 0, back 0)");
    g_assert_true(crt_target_holds_file(t, "/dev/ttyS0"));
    g_free(p);
    crt_target_unref(t);
}

int main(int argc, char **argv)
{
    target_tests_init(&argc, &argv);
    g_test_add_func("/target-udev/spec/usb", test_spec_usb);
    g_test_add_func("/target-udev/spec/udev", test_spec_udev);
    g_test_add_func("/target-udev/spec/bad", test_spec_bad);
    g_test_add_func("/target-udev/real/one-match", test_real_one_match);
    g_test_add_func("/target-udev/real/no-match", test_real_no_match);
    g_test_add_func("/target-udev/real/ambiguous", test_real_ambiguous);
    g_test_add_func("/target-udev/real/wait", test_real_wait);
    return target_tests_run();
}
