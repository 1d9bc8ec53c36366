/* crtfs tests - targets by USB identity against emulated adapters: run
 * under umockdev-wrapper (tests/unit/udev-mock.sh), which diverts /sys,
 * /dev and the uevent netlink socket into a umockdev testbed.  The FTDI
 * adapters here are fake (sysfs attributes written by libumockdev, a tty
 * node backed by a pty); libudev, the resolution, the open of the node
 * with its tty options and the wait target's monitor are crtfs's real
 * code.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <umockdev.h>

#include "target-fixture.h"
#include "target-private.h"

static UMockdevTestbed *tb;

/* A usb_device at `port` with one interface per entry of `ttys`, each
 * with its tty: an FTDI adapter as the ftdi_sio driver shows it in sysfs,
 * written as an umockdev-record description (the `N:` line makes the tty
 * node, a pty).  Returns the syspath of the last tty (g_free). */
static char *add_adapter(const char *port, const char *vid, const char *pid,
                         const char *serial, const char *const *ttys, guint minor)
{
    GString *rec = g_string_new(NULL);
    GError *error = NULL;
    char *last = NULL;

    g_string_append_printf(rec,
                           "P: /devices/%s\nE: SUBSYSTEM=usb\nE: DEVTYPE=usb_device\n"
                           "A: idVendor=%s\nA: idProduct=%s\nA: serial=%s\n\n",
                           port, vid, pid, serial);
    for (guint i = 0; ttys[i]; i++) {
        g_string_append_printf(rec,
                               "P: /devices/%s/%s:1.%u\nE: SUBSYSTEM=usb\n"
                               "E: DEVTYPE=usb_interface\nA: bInterfaceNumber=%02x\n\n",
                               port, port, i, i);
        g_string_append_printf(rec,
                               "P: /devices/%s/%s:1.%u/%s\nN: %s\nE: SUBSYSTEM=tty\n"
                               "E: DEVNAME=/dev/%s\nE: MAJOR=188\nE: MINOR=%u\n"
                               "A: dev=188:%u\n\n",
                               port, port, i, ttys[i], ttys[i], ttys[i], minor + i,
                               minor + i);
        g_free(last);
        last = g_strdup_printf("/sys/devices/%s/%s:1.%u/%s", port, port, i, ttys[i]);
    }
    g_assert_true(umockdev_testbed_add_from_string(tb, rec->str, &error));
    g_assert_no_error(error);
    g_string_free(rec, TRUE);
    return last;
}

static char *presence_of(CrtTarget *t)
{
    char *reason = NULL;

    crt_target_presence(t, &reason);
    g_assert_nonnull(reason);
    return reason;
}

/* The adapter with the serial asked for resolves, opens with the spec's
 * tty options, and `presence:` names the node; the daemon's busy check
 * finds the node through crt_target_spec_node and holds_file. */
static void test_resolves_and_opens(void)
{
    CrtTarget *t = open_ok("usb:0403:6001 serial=A12345 baud=115200 raw shared");
    CrtTargetSpec spec;
    char *p = presence_of(t), *node = NULL, *got;

    g_assert_cmpstr(p, ==, "present (/dev/ttyUSB0, matched usb:0403:6001 serial=A12345)");
    g_assert_cmpint(crt_target_kind(t), ==, CRT_TARGET_UDEV);
    g_assert_cmpstr(crt_target_describe(t), ==,
                    "usb:0403:6001 serial=A12345 baud=115200 raw shared");
    /* Bytes the adapter sends (the pty master behind the emulated node)
     * arrive on the descriptor crtfs opened. */
    g_assert_cmpint(
        write(umockdev_testbed_get_dev_fd(tb, "/dev/ttyUSB0"), "A12345 says hi\n", 15),
        ==, 15);
    got = read_some(crt_target_fd(t));
    g_assert_cmpstr(got, ==, "A12345 says hi\n");
    g_free(got);
    g_assert_true(crt_target_holds_file(t, "/dev/ttyUSB0"));
    g_assert_false(crt_target_holds_file(t, "/dev/ttyUSB1"));
    g_assert_cmpint(crt_target_spec_parse("usb:0403:6001 serial=A12345", &spec, NULL), ==,
                    0);
    g_assert_cmpint(crt_target_spec_node(&spec, &node, NULL), ==, 0);
    g_assert_cmpstr(node, ==, "/dev/ttyUSB0");
    g_free(node);
    crt_target_spec_clear(&spec);
    g_free(p);
    crt_target_unref(t);
}

/* Two identical adapters: the bare ids are ambiguous (both named, neither
 * opened), serial= picks each one, and a serial nobody has matches none. */
static void test_serial_distinguishes(void)
{
    char *msg = open_fails("usb:0403:6001", ENOTUNIQ);
    CrtTarget *t;
    char *p;

    assert_contains(msg, "2 ttys match usb:0403:6001: /dev/ttyUSB0, /dev/ttyUSB1");
    assert_contains(msg, "serial=");
    g_free(msg);
    t = open_ok("usb:0403:6001 serial=B67890 shared");
    p = presence_of(t);
    g_assert_cmpstr(p, ==, "present (/dev/ttyUSB1, matched usb:0403:6001 serial=B67890)");
    g_assert_false(crt_target_holds_file(t, "/dev/ttyUSB0"));
    g_free(p);
    crt_target_unref(t);
    msg = open_fails("usb:0403:6001 serial=Z00000", ENOENT);
    g_assert_cmpstr(msg, ==, "no tty matches usb:0403:6001 serial=Z00000");
    g_free(msg);
    msg = open_fails("usb:067b:2303", ENOENT); /* a Prolific nobody plugged in */
    g_assert_cmpstr(msg, ==, "no tty matches usb:067b:2303");
    g_free(msg);
}

/* A dual-port FT2232 (0403:6010): interface= picks its port, path= picks
 * an adapter by the USB port it is plugged into. */
static void test_interface_and_port(void)
{
    CrtTarget *t = open_ok("usb:0403:6010 interface=1 shared");
    char *p = presence_of(t), *msg;

    g_assert_cmpstr(p, ==, "present (/dev/ttyUSB3, matched usb:0403:6010 interface=1)");
    g_free(p);
    crt_target_unref(t);
    msg = open_fails("usb:0403:6010", ENOTUNIQ);
    assert_contains(msg, "/dev/ttyUSB2, /dev/ttyUSB3");
    g_free(msg);
    t = open_ok("usb:0403:6001 path=1-2 shared");
    p = presence_of(t);
    g_assert_cmpstr(p, ==, "present (/dev/ttyUSB1, matched usb:0403:6001 path=1-2)");
    g_free(p);
    crt_target_unref(t);
    /* udev properties of the tty itself (here the uevent's MINOR). */
    t = open_ok("udev:MAJOR=188,MINOR=3 shared");
    p = presence_of(t);
    g_assert_cmpstr(p, ==, "present (/dev/ttyUSB3, matched udev:MAJOR=188,MINOR=3)");
    g_free(p);
    crt_target_unref(t);
}

/* `wait`: absent at the start with the reason in presence; the adapter is
 * plugged in later and its uevent alone (no request is pending, so no
 * retry timer runs) makes the target resolve and open it.  Unplugged (in
 * the kernel's order: the node goes, the remove event, then sysfs), the
 * target is lost; plugged into another port it comes back as another node,
 * which the reopen resolves to. */
static void test_wait_for_adapter(void)
{
    static const char *const first[] = {"ttyUSB7", NULL}, *const second[] = {"ttyUSB8",
                                                                             NULL};
    CrtTarget *t = open_ok("usb:0403:6001 serial=LATER1 wait shared");
    char *p = presence_of(t), *tty, *node, *usb, *root;

    g_assert_cmpint(crt_target_presence(t, NULL), ==, CRT_PRESENCE_WAITING);
    assert_contains(p, "absent, waiting since ");
    assert_contains(p, ": no tty matches usb:0403:6001 serial=LATER1 (lost 0, back 0)");
    g_free(p);
    g_usleep(300 * 1000); /* past the first backoff: only the event can wake it */
    g_assert_cmpint(crt_target_presence(t, NULL), ==, CRT_PRESENCE_WAITING);
    tty = add_adapter("1-7", "0403", "6001", "LATER1", first, 7);
    umockdev_testbed_uevent(tb, tty, "add");
    TU_WAIT_FOR(crt_target_presence(t, NULL) == CRT_PRESENCE_PRESENT);
    p = presence_of(t);
    g_assert_cmpstr(
        p, ==,
        "present (/dev/ttyUSB7, matched usb:0403:6001 serial=LATER1) (lost 0, "
        "back 1)");
    g_assert_true(crt_target_holds_file(t, "/dev/ttyUSB7"));
    g_free(p);

    root = umockdev_testbed_get_root_dir(tb);
    node = g_build_filename(root, "dev", "ttyUSB7", NULL);
    g_assert_cmpint(unlink(node), ==, 0);
    umockdev_testbed_uevent(tb, tty, "remove");
    usb = g_strdup("/sys/devices/1-7");
    umockdev_testbed_remove_device(tb, usb);
    TU_WAIT_FOR(crt_target_presence(t, NULL) == CRT_PRESENCE_WAITING);
    p = presence_of(t);
    assert_contains(p, "(lost 1, back 1)");
    g_free(p);
    g_free(tty);
    tty = add_adapter("1-8", "0403", "6001", "LATER1", second, 8);
    umockdev_testbed_uevent(tb, tty, "add");
    TU_WAIT_FOR(crt_target_presence(t, NULL) == CRT_PRESENCE_PRESENT);
    p = presence_of(t);
    g_assert_cmpstr(
        p, ==,
        "present (/dev/ttyUSB8, matched usb:0403:6001 serial=LATER1) (lost 1, "
        "back 2)");
    g_assert_true(crt_target_holds_file(t, "/dev/ttyUSB8"));
    g_free(p);
    g_free(usb);
    g_free(node);
    g_free(root);
    g_free(tty);
    crt_target_unref(t);
}

int main(int argc, char **argv)
{
    static const char *const one[] = {"ttyUSB0", NULL}, *const two[] = {"ttyUSB1", NULL},
                             *const dual[] = {"ttyUSB2", "ttyUSB3", NULL};
    int r;

    target_tests_init(&argc, &argv);
    if (strstr(g_getenv("LD_PRELOAD") ? g_getenv("LD_PRELOAD") : "", "umockdev") ==
        NULL) {
        g_printerr("run me under umockdev-wrapper (tests/unit/udev-mock.sh)\n");
        return 1;
    }
    tb = umockdev_testbed_new();
    g_free(add_adapter("1-1", "0403", "6001", "A12345", one, 0));
    g_free(add_adapter("1-2", "0403", "6001", "B67890", two, 1));
    g_free(add_adapter("1-3", "0403", "6010", "D11111", dual, 2));
    g_test_add_func("/udev-mock/resolves-and-opens", test_resolves_and_opens);
    g_test_add_func("/udev-mock/serial-distinguishes", test_serial_distinguishes);
    g_test_add_func("/udev-mock/interface-and-port", test_interface_and_port);
    g_test_add_func("/udev-mock/wait-for-adapter", test_wait_for_adapter);
    r = target_tests_run();
    g_object_unref(tb);
    return r;
}
