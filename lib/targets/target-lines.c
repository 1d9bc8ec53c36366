/* crtfs - modem lines, break and line events (include/crtfs/lines.h): the
 * calls every target takes, answered through the kind's ops slots, and the
 * one watcher a target reports its events to.  A kind without a slot has
 * no such thing, and says so in words here. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "target-private.h"

static const struct {
    CrtLine line;
    const char *name;
} line_names[] = {
    {CRT_LINE_DTR, "dtr"}, {CRT_LINE_RTS, "rts"}, {CRT_LINE_CTS, "cts"},
    {CRT_LINE_DSR, "dsr"}, {CRT_LINE_DCD, "dcd"}, {CRT_LINE_RI, "ri"},
};

const char *crt_line_name(CrtLine line)
{
    for (size_t i = 0; i < G_N_ELEMENTS(line_names); i++) {
        if (line_names[i].line == line)
            return line_names[i].name;
    }
    return NULL;
}

CrtLine crt_line_from_name(const char *name)
{
    for (size_t i = 0; name && i < G_N_ELEMENTS(line_names); i++) {
        if (g_ascii_strcasecmp(name, line_names[i].name) == 0)
            return line_names[i].line;
    }
    return 0;
}

const char *crt_line_event_kind_to_string(CrtLineEventKind kind)
{
    switch (kind) {
    case CRT_LINE_EVENT_CHANGE:
        return "change";
    case CRT_LINE_EVENT_BREAK:
        return "break";
    case CRT_LINE_EVENT_FRAMING:
        return "framing";
    case CRT_LINE_EVENT_PARITY:
        return "parity";
    case CRT_LINE_EVENT_OVERRUN:
        return "overrun";
    }
    return "unknown";
}

/* What a target of a kind without modem lines is, for the refusal. */
static const char *kind_words(CrtTarget *t)
{
    switch (t->kind) {
    case CRT_TARGET_PATH:
    case CRT_TARGET_UDEV:
        return "is not a serial line";
    case CRT_TARGET_UNIX:
    case CRT_TARGET_TCP:
        return "is a socket";
    case CRT_TARGET_RFC2217:
        return "is a remote serial port";
    case CRT_TARGET_EXEC:
        return "is a command's pipes";
    case CRT_TARGET_SIM:
        return "is a simulator without a UART (use sim:uart)";
    }
    return "is not a serial line";
}

static int no_lines(CrtTarget *t, GError **error)
{
    crt_set_error(error, ENOTTY, "%s %s: it has no modem lines or break", t->text,
                  kind_words(t));
    return -ENOTTY;
}

int crt_target_lines_get(CrtTarget *target, guint *lines, GError **error)
{
    g_return_val_if_fail(target != NULL && lines != NULL, -EINVAL);
    *lines = 0;
    if (!target->ops->lines_get)
        return no_lines(target, error);
    return target->ops->lines_get(target, lines, error);
}

int crt_target_lines_set(CrtTarget *target, guint mask, guint values, GError **error)
{
    g_return_val_if_fail(target != NULL, -EINVAL);
    if (mask & ~(guint)CRT_LINES_OUTPUTS) {
        crt_set_error(error, EINVAL,
                      "only DTR and RTS can be set; CTS, DSR, DCD and RI "
                      "are inputs");
        return -EINVAL;
    }
    if (!target->ops->lines_set)
        return no_lines(target, error);
    return target->ops->lines_set(target, mask, values & mask, error);
}

int crt_target_send_break(CrtTarget *target, guint ms, GError **error)
{
    g_return_val_if_fail(target != NULL, -EINVAL);
    if (ms < 1 || ms > 10000) {
        crt_set_error(error, EINVAL, "a break lasts 1 ms to 10 s, not %u ms", ms);
        return -EINVAL;
    }
    if (!target->ops->send_break)
        return no_lines(target, error);
    return target->ops->send_break(target, ms, error);
}

int crt_target_line_inject(CrtTarget *target, CrtLineEventKind kind, guint count,
                           GError **error)
{
    g_return_val_if_fail(target != NULL, -EINVAL);
    if (kind < CRT_LINE_EVENT_BREAK || kind > CRT_LINE_EVENT_OVERRUN || count == 0) {
        crt_set_error(error, EINVAL,
                      "only breaks and framing, parity or overrun errors "
                      "can be injected, at least one");
        return -EINVAL;
    }
    if (!target->ops->line_inject) {
        crt_set_error(error, EOPNOTSUPP,
                      "%s: only the simulator's UART (sim:uart) injects line events",
                      target->text);
        return -EOPNOTSUPP;
    }
    return target->ops->line_inject(target, kind, count, error);
}

void crt_target_line_event(CrtTarget *t, const CrtLineEvent *ev)
{
    g_mutex_lock(&t->watch_lock);
    if (t->watch_fn)
        t->watch_fn(t, ev, t->watch_data);
    g_mutex_unlock(&t->watch_lock);
}

/* Take the watcher away (the kind has stopped reporting); destroy its data
 * outside the lock. */
static void drop_watcher(CrtTarget *t)
{
    GDestroyNotify destroy;
    gpointer data;

    g_mutex_lock(&t->watch_lock);
    destroy = t->watch_destroy;
    data = t->watch_data;
    t->watch_fn = NULL;
    t->watch_data = NULL;
    t->watch_destroy = NULL;
    g_mutex_unlock(&t->watch_lock);
    if (destroy)
        destroy(data);
}

void crt_target_unwatch_lines(CrtTarget *target)
{
    g_return_if_fail(target != NULL);
    if (target->watching && target->ops->unwatch_lines)
        target->ops->unwatch_lines(target);
    target->watching = FALSE;
    drop_watcher(target);
}

int crt_target_watch_lines(CrtTarget *target, CrtLineEventFn fn, gpointer data,
                           GDestroyNotify destroy, GError **error)
{
    int r;

    g_return_val_if_fail(target != NULL && fn != NULL, -EINVAL);
    crt_target_unwatch_lines(target);
    if (!target->ops->watch_lines) {
        if (destroy)
            destroy(data);
        crt_set_error(error, ENOTTY, "%s %s: it reports no line events", target->text,
                      kind_words(target));
        return -ENOTTY;
    }
    g_mutex_lock(&target->watch_lock);
    target->watch_fn = fn;
    target->watch_data = data;
    target->watch_destroy = destroy;
    g_mutex_unlock(&target->watch_lock);
    r = target->ops->watch_lines(target, error);
    if (r < 0) {
        drop_watcher(target);
        return r;
    }
    target->watching = TRUE;
    return 0;
}

void crt_target_lines_release(CrtTarget *t)
{
    if (t->watching || t->watch_fn)
        crt_target_unwatch_lines(t);
}

/* ---- the event queue of kinds that must not call the watcher themselves */

void crt_line_events_init(CrtLineEvents *q, CrtTarget *t)
{
    memset(q, 0, sizeof *q);
    q->t = t;
    g_mutex_init(&q->lock);
    g_cond_init(&q->wake);
    g_queue_init(&q->queue);
}

void crt_line_events_clear(CrtLineEvents *q)
{
    g_queue_clear_full(&q->queue, g_free);
    g_mutex_clear(&q->lock);
    g_cond_clear(&q->wake);
}

static gpointer events_thread(gpointer data)
{
    CrtLineEvents *q = data;
    CrtLineEvent *ev;

    g_mutex_lock(&q->lock);
    for (;;) {
        while (!(ev = g_queue_pop_head(&q->queue)) && !q->stopping)
            g_cond_wait(&q->wake, &q->lock);
        if (!ev)
            break;
        g_mutex_unlock(&q->lock);
        crt_target_line_event(q->t, ev);
        g_free(ev);
        g_mutex_lock(&q->lock);
    }
    g_mutex_unlock(&q->lock);
    return NULL;
}

void crt_line_events_start(CrtLineEvents *q, const char *thread_name)
{
    g_mutex_lock(&q->lock);
    if (!q->on) {
        q->on = TRUE;
        q->stopping = FALSE;
        q->thread = g_thread_new(thread_name, events_thread, q);
    }
    g_mutex_unlock(&q->lock);
}

void crt_line_events_stop(CrtLineEvents *q)
{
    GThread *thread;

    g_mutex_lock(&q->lock);
    thread = q->thread;
    q->thread = NULL;
    q->on = FALSE; /* nothing new is queued */
    q->stopping = TRUE;
    g_cond_signal(&q->wake);
    g_mutex_unlock(&q->lock);
    if (thread)
        g_thread_join(thread);
}

void crt_line_events_post(CrtLineEvents *q, CrtLineEventKind kind, CrtLine line,
                          gboolean up, guint64 count)
{
    CrtLineEvent *ev;

    g_mutex_lock(&q->lock);
    if (q->on) {
        ev = g_new0(CrtLineEvent, 1);
        ev->kind = kind;
        ev->line = line;
        ev->up = up;
        ev->count = count;
        ev->time_ns = g_get_real_time() * 1000;
        g_queue_push_tail(&q->queue, ev);
        g_cond_signal(&q->wake);
    }
    g_mutex_unlock(&q->lock);
}
