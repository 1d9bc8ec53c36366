/* crtfs - targets by identity: a `usb:` or `udev:` spec (kind "udev")
 * resolved through libudev to the one tty node it matches.
 *
 * Resolution enumerates the `tty` subsystem and keeps the devices that
 * have a node and pass every criterion the spec gives:
 *
 *   usb:VID:PID   idVendor/idProduct of the usb_device ancestor (sysfs)
 *   serial=S      `serial` of that usb_device (sysfs)
 *   interface=N   bInterfaceNumber of the usb_interface ancestor (sysfs)
 *   path=P        the ID_PATH property, the tty's DEVPATH, or the USB
 *                 port: the usb_device's name (1-1.4) or DEVPATH
 *   match=K=V     udev property K of the tty matches glob V
 *
 * The sysfs criteria come first because they work without udevd: with no
 * udevd running (/run/udev absent, as in containers), libudev still reads
 * sysfs attributes and the kernel's uevent properties (DEVNAME, MAJOR,
 * MINOR, DEVPATH, SUBSYSTEM), but none of the ID_* properties udev rules
 * add; a `match=` on those then matches nothing.
 *
 * Exactly one device: its node is what target.c opens as a path.  None:
 * -ENOENT "no tty matches ...".  Several: -ENOTUNIQ naming the candidates,
 * for the spec to say which (serial=, interface=, path=).  target.c checks
 * after the open that the descriptor is that device's node (major:minor),
 * so a node that changed hands in between is never used.
 *
 * The monitor wakes a waiting target when a tty appears: libudev's netlink
 * monitor on the `tty` subsystem, from udevd ("udev" source: after its
 * rules ran, so permissions and properties are in place) when udevd runs,
 * else straight from the kernel ("kernel" source; devtmpfs has made the
 * node by the time the event is sent).
 *
 * Threads: resolution runs on the caller's thread (an open's: the caller's
 * or a pool thread), each call with its own struct udev (libudev contexts
 * are not thread-safe); a monitor belongs to the loop thread it was
 * attached to.
 */
#include "config.h"

#include <errno.h>
#include <fnmatch.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib-unix.h>
#include <libudev.h>

#include "target-private.h"

/* ---- contexts --------------------------------------------------------- */

/* libudev (systemd's code) sets up process-wide state on first use (the
 * hash key of its maps, its random pool) without a lock; each of our calls
 * has a context of its own, but the first two on different threads (a pool
 * thread resolving, the loop thread's monitor) could race on that state.
 * One warm-up under g_once makes the first use single. */
static gpointer warm_up(gpointer unused)
{
    struct udev *udev = udev_new();
    struct udev_enumerate *en = udev ? udev_enumerate_new(udev) : NULL;

    if (en)
        udev_enumerate_add_match_subsystem(en, "tty");
    udev_enumerate_unref(en);
    udev_unref(udev);
    return NULL;
}

static struct udev *context_new(void)
{
    static GOnce once = G_ONCE_INIT;

    g_once(&once, warm_up, NULL);
    return udev_new();
}

/* ---- matching --------------------------------------------------------- */

/* Whether sysfs attribute `attr` of `dev` is `value` in hex ("0403\n"). */
static gboolean hex_attr_is(struct udev_device *dev, const char *attr, guint value)
{
    const char *text = dev ? udev_device_get_sysattr_value(dev, attr) : NULL;
    char *copy = text ? g_strstrip(g_strdup(text)) : NULL;
    guint64 v = 0;
    gboolean ok = copy && g_ascii_string_to_unsigned(copy, 16, 0, G_MAXUINT32, &v, NULL);

    g_free(copy);
    return ok && v == value;
}

static gboolean usb_matches(const CrtTargetSpec *spec, struct udev_device *tty)
{
    struct udev_device *usb =
        udev_device_get_parent_with_subsystem_devtype(tty, "usb", "usb_device");

    if (spec->usb_ids && (!hex_attr_is(usb, "idVendor", spec->usb_vendor) ||
                          !hex_attr_is(usb, "idProduct", spec->usb_product)))
        return FALSE;
    if (spec->usb_serial) {
        const char *serial = usb ? udev_device_get_sysattr_value(usb, "serial") : NULL;
        if (serial == NULL || strcmp(serial, spec->usb_serial) != 0)
            return FALSE;
    }
    if (spec->usb_interface >= 0) {
        struct udev_device *intf =
            udev_device_get_parent_with_subsystem_devtype(tty, "usb", "usb_interface");
        if (!hex_attr_is(intf, "bInterfaceNumber", (guint)spec->usb_interface))
            return FALSE;
    }
    return TRUE;
}

static gboolean path_matches(const CrtTargetSpec *spec, struct udev_device *tty)
{
    const char *want = spec->usb_path;
    const char *id_path = udev_device_get_property_value(tty, "ID_PATH");
    struct udev_device *usb;

    if (want == NULL)
        return TRUE;
    if ((id_path && strcmp(id_path, want) == 0) ||
        g_strcmp0(udev_device_get_devpath(tty), want) == 0)
        return TRUE;
    usb = udev_device_get_parent_with_subsystem_devtype(tty, "usb", "usb_device");
    return usb && (g_strcmp0(udev_device_get_sysname(usb), want) == 0 ||
                   g_strcmp0(udev_device_get_devpath(usb), want) == 0);
}

static gboolean properties_match(const CrtTargetSpec *spec, struct udev_device *tty)
{
    for (guint i = 0; spec->match && spec->match[i]; i++) {
        const char *eq = strchr(spec->match[i], '=');
        char *key = g_strndup(spec->match[i], (gsize)(eq - spec->match[i]));
        const char *value = udev_device_get_property_value(tty, key);

        g_free(key);
        if (value == NULL || fnmatch(eq + 1, value, 0) != 0)
            return FALSE;
    }
    return TRUE;
}

static gboolean tty_matches(const CrtTargetSpec *spec, struct udev_device *tty)
{
    return udev_device_get_devnode(tty) != NULL && usb_matches(spec, tty) &&
           path_matches(spec, tty) && properties_match(spec, tty);
}

/* ---- resolution ------------------------------------------------------- */

char *crt_target_udev_identity(const CrtTargetSpec *spec)
{
    GString *s = g_string_new(NULL);
    char *matches = spec->match ? g_strjoinv(",", spec->match) : NULL;

    if (spec->usb_ids)
        g_string_append_printf(s, "usb:%04x:%04x", spec->usb_vendor, spec->usb_product);
    else
        g_string_append_printf(s, "udev:%s", matches ? matches : "");
    if (spec->usb_serial)
        g_string_append_printf(s, " serial=%s", spec->usb_serial);
    if (spec->usb_interface >= 0)
        g_string_append_printf(s, " interface=%d", spec->usb_interface);
    if (spec->usb_path)
        g_string_append_printf(s, " path=%s", spec->usb_path);
    if (spec->usb_ids && matches)
        g_string_append_printf(s, " match=%s", matches);
    g_free(matches);
    return g_string_free(s, FALSE);
}

/* The devices that match, each "NODE" with its devnum alongside. */
typedef struct {
    GPtrArray *nodes; /* char * */
    GArray *devnums;  /* dev_t */
} Matches;

static int enumerate(const CrtTargetSpec *spec, Matches *m, GError **error)
{
    struct udev *udev = context_new();
    struct udev_enumerate *en = udev ? udev_enumerate_new(udev) : NULL;
    struct udev_list_entry *e;

    if (en == NULL || udev_enumerate_add_match_subsystem(en, "tty") < 0 ||
        udev_enumerate_scan_devices(en) < 0) {
        int err = errno ? errno : ENOMEM;
        udev_enumerate_unref(en);
        udev_unref(udev);
        return crt_set_error(error, err, "cannot list the tty devices (libudev): %s",
                             g_strerror(err));
    }
    udev_list_entry_foreach(e, udev_enumerate_get_list_entry(en))
    {
        struct udev_device *dev =
            udev_device_new_from_syspath(udev, udev_list_entry_get_name(e));

        if (dev && tty_matches(spec, dev)) {
            dev_t devnum = udev_device_get_devnum(dev);
            g_ptr_array_add(m->nodes, g_strdup(udev_device_get_devnode(dev)));
            g_array_append_val(m->devnums, devnum);
        }
        udev_device_unref(dev);
    }
    udev_enumerate_unref(en);
    udev_unref(udev);
    return 0;
}

int crt_target_udev_resolve(const CrtTargetSpec *spec, char **node, dev_t *devnum,
                            GError **error)
{
    Matches m = {g_ptr_array_new_with_free_func(g_free),
                 g_array_new(FALSE, FALSE, sizeof(dev_t))};
    char *identity = crt_target_udev_identity(spec);
    int r;

    g_return_val_if_fail(spec->kind == CRT_TARGET_UDEV, -EINVAL);
    r = enumerate(spec, &m, error);
    if (r == 0 && m.nodes->len == 0) {
        r = crt_set_error(error, ENOENT, "no tty matches %s", identity);
    } else if (r == 0 && m.nodes->len > 1) {
        g_ptr_array_add(m.nodes, NULL);
        char *list = g_strjoinv(", ", (char **)m.nodes->pdata);
        r = crt_set_error(error, ENOTUNIQ,
                          "%u ttys match %s: %s; say which with serial=, interface=, "
                          "path= or match=",
                          m.nodes->len - 1, identity, list);
        g_free(list);
    } else if (r == 0) {
        *node = g_strdup(m.nodes->pdata[0]);
        *devnum = g_array_index(m.devnums, dev_t, 0);
    }
    g_free(identity);
    g_ptr_array_free(m.nodes, TRUE);
    g_array_free(m.devnums, TRUE);
    return r;
}

/* ---- the monitor ------------------------------------------------------ */

struct CrtUdevMonitor {
    struct udev *udev;
    struct udev_monitor *mon;
    GSource *src;
    CrtUdevMonitorFn fn;
    gpointer data;
};

/* udevd's events when it runs, the kernel's otherwise (see the top). */
static const char *monitor_source(void)
{
    return access("/run/udev/control", F_OK) == 0 ? "udev" : "kernel";
}

static gboolean monitor_ready(gint fd, GIOCondition cond, gpointer data)
{
    CrtUdevMonitor *m = data;
    struct udev_device *dev;

    /* One call per event: a removal names its node, which may be the one a
     * target has open. */
    while ((dev = udev_monitor_receive_device(m->mon)) != NULL) {
        const char *action = udev_device_get_action(dev);
        CrtUdevEvent ev = CRT_UDEV_OTHER;

        if (g_strcmp0(action, "add") == 0 || g_strcmp0(action, "change") == 0 ||
            g_strcmp0(action, "bind") == 0)
            ev = CRT_UDEV_APPEARED;
        else if (g_strcmp0(action, "remove") == 0)
            ev = CRT_UDEV_REMOVED;
        if (ev != CRT_UDEV_OTHER)
            m->fn(ev, udev_device_get_devnode(dev), m->data);
        udev_device_unref(dev);
    }
    return G_SOURCE_CONTINUE;
}

CrtUdevMonitor *crt_udev_monitor_new(GMainContext *ctx, CrtUdevMonitorFn fn,
                                     gpointer data)
{
    CrtUdevMonitor *m = g_new0(CrtUdevMonitor, 1);

    m->udev = context_new();
    m->mon = m->udev ? udev_monitor_new_from_netlink(m->udev, monitor_source()) : NULL;
    if (m->mon == NULL ||
        udev_monitor_filter_add_match_subsystem_devtype(m->mon, "tty", NULL) < 0 ||
        udev_monitor_enable_receiving(m->mon) < 0) {
        /* No netlink (a sandbox): the retry backoff still finds it. */
        crt_udev_monitor_free(m);
        return NULL;
    }
    m->fn = fn;
    m->data = data;
    m->src = g_unix_fd_source_new(udev_monitor_get_fd(m->mon), G_IO_IN);
    g_source_set_callback(m->src, G_SOURCE_FUNC(monitor_ready), m, NULL);
    g_source_attach(m->src, ctx);
    return m;
}

void crt_udev_monitor_free(CrtUdevMonitor *m)
{
    if (m == NULL)
        return;
    if (m->src) {
        g_source_destroy(m->src);
        g_source_unref(m->src);
    }
    udev_monitor_unref(m->mon);
    udev_unref(m->udev);
    g_free(m);
}
