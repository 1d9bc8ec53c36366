/* crtfs - suspend and resume with the system (see logind.h). */
#include "config.h"

#include <gio/gio.h>
#include <gio/gunixfdlist.h>
#include <unistd.h>

#include "logind.h"

#define LOGIND "org.freedesktop.login1"
#define LOGIND_PATH "/org/freedesktop/login1"
#define LOGIND_MANAGER "org.freedesktop.login1.Manager"

struct CrtSleepWatch {
    GDBusConnection *bus;
    GMainContext *ctx; /* signals are dispatched here, on `thread` */
    GMainLoop *loop;
    GThread *thread;
    guint sub;
    int lock_fd; /* the inhibitor lock, -1 when none */
    CrtSleepFn before, after;
    gpointer data;
};

/* Take a delay lock: logind waits for us (up to its InhibitDelayMaxSec)
 * before the system sleeps. */
static void take_lock(CrtSleepWatch *w)
{
    GUnixFDList *fds = NULL;
    GError *error = NULL;
    GVariant *r = g_dbus_connection_call_with_unix_fd_list_sync(
        w->bus, LOGIND, LOGIND_PATH, LOGIND_MANAGER, "Inhibit",
        g_variant_new("(ssss)", "sleep", "crtfs",
                      "stop and drain the targets with purge_on_suspend=1", "delay"),
        G_VARIANT_TYPE("(h)"), G_DBUS_CALL_FLAGS_NONE, 5000, NULL, &fds, NULL, &error);
    gint32 index;

    if (!r) {
        g_debug("logind: no inhibitor lock: %s", error->message);
        g_error_free(error);
        return;
    }
    g_variant_get(r, "(h)", &index);
    w->lock_fd = g_unix_fd_list_get(fds, index, &error);
    if (w->lock_fd < 0) {
        g_debug("logind: no inhibitor lock: %s", error->message);
        g_error_free(error);
    }
    g_variant_unref(r);
    g_object_unref(fds);
}

static void release_lock(CrtSleepWatch *w)
{
    if (w->lock_fd >= 0)
        close(w->lock_fd);
    w->lock_fd = -1;
}

static void on_prepare_for_sleep(GDBusConnection *bus, const char *sender, const char *path,
                                 const char *iface, const char *signal, GVariant *params,
                                 gpointer data)
{
    CrtSleepWatch *w = data;
    gboolean sleeping;

    if (!g_variant_is_of_type(params, G_VARIANT_TYPE("(b)")))
        return;
    g_variant_get(params, "(b)", &sleeping);
    if (sleeping) {
        g_message("logind: the system is going to sleep: suspending targets");
        w->before(w->data);
        release_lock(w);
    } else {
        g_message("logind: the system woke up: resuming targets");
        w->after(w->data);
        if (w->lock_fd < 0)
            take_lock(w);
    }
}

static gboolean quit_loop(gpointer loop)
{
    g_main_loop_quit(loop);
    return G_SOURCE_REMOVE;
}

static gpointer run(gpointer data)
{
    CrtSleepWatch *w = data;

    g_main_context_push_thread_default(w->ctx);
    g_main_loop_run(w->loop);
    g_main_context_pop_thread_default(w->ctx);
    return NULL;
}

CrtSleepWatch *crt_sleep_watch_new(CrtSleepFn before, CrtSleepFn after, gpointer data)
{
    GError *error = NULL;
    GDBusConnection *bus = g_bus_get_sync(G_BUS_TYPE_SYSTEM, NULL, &error);
    CrtSleepWatch *w;

    if (!bus) {
        g_debug("logind: no system bus (%s): not following suspend", error->message);
        g_error_free(error);
        return NULL;
    }
    /* Not the process's own: the daemon exits on SIGTERM, not on a bus
     * disconnection. */
    g_dbus_connection_set_exit_on_close(bus, FALSE);
    w = g_new0(CrtSleepWatch, 1);
    w->bus = bus;
    w->before = before;
    w->after = after;
    w->data = data;
    w->lock_fd = -1;
    w->ctx = g_main_context_new();
    w->loop = g_main_loop_new(w->ctx, FALSE);
    /* Subscribed with our context as the thread default: the signal is
     * dispatched on our thread. */
    g_main_context_push_thread_default(w->ctx);
    w->sub = g_dbus_connection_signal_subscribe(bus, LOGIND, LOGIND_MANAGER, "PrepareForSleep",
                                                LOGIND_PATH, NULL, G_DBUS_SIGNAL_FLAGS_NONE,
                                                on_prepare_for_sleep, w, NULL);
    g_main_context_pop_thread_default(w->ctx);
    take_lock(w);
    w->thread = g_thread_new("crtfs-logind", run, w);
    return w;
}

void crt_sleep_watch_free(CrtSleepWatch *w)
{
    if (!w)
        return;
    g_dbus_connection_signal_unsubscribe(w->bus, w->sub);
    /* Through the context: a quit before the loop runs would be lost. */
    g_main_context_invoke(w->ctx, quit_loop, w->loop);
    g_thread_join(w->thread);
    release_lock(w);
    g_main_loop_unref(w->loop);
    g_main_context_unref(w->ctx);
    g_object_unref(w->bus);
    g_free(w);
}
