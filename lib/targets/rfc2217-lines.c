/* crtfs - rfc2217: modem lines, break and line events (the lines API of
 * include/crtfs/lines.h over RFC 2217).
 *
 * DTR, RTS and break are SET-CONTROL commands: the caller's thread hands
 * one to the loop thread (crt_loop_call), which puts it on the wire after
 * what is queued, and waits under `cmd_lock` for the server's answer
 * (SET-CONTROL + 100) at most REPLY_TIMEOUT_MS.  The inputs are the last
 * NOTIFY-MODEMSTATE; it and NOTIFY-LINESTATE arrive on the loop thread
 * (the shuttle's decoder), which counts and queues events; a thread of
 * the target's own takes them off the queue, one at a time, to
 * crt_target_line_event(), so the watcher never runs on the loop thread.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "rfc2217.h"

static void queue_event_unlocked(Rfc *r, CrtLineEventKind kind, CrtLine line, gboolean up,
                                 guint64 count)
{
    crt_line_events_post(&r->events, kind, line, up, count);
}

void crt_rfc2217_modem_state_unlocked(Rfc *r, guint8 now)
{
    static const struct {
        guint8 bit;
        CrtLine line;
    } inputs[] = {
        {MS_CTS, CRT_LINE_CTS},
        {MS_DSR, CRT_LINE_DSR},
        {MS_DCD, CRT_LINE_DCD},
        {MS_RI, CRT_LINE_RI},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(inputs); i++) {
        if ((now ^ r->modem) & inputs[i].bit)
            queue_event_unlocked(r, CRT_LINE_EVENT_CHANGE, inputs[i].line,
                                 (now & inputs[i].bit) != 0, 0);
    }
    r->modem = now;
}

void crt_rfc2217_line_state_unlocked(Rfc *r, guint8 ls)
{
    if (ls & LS_BREAK) {
        r->breaks++;
        queue_event_unlocked(r, CRT_LINE_EVENT_BREAK, 0, FALSE, 1);
    }
    if (ls & LS_FRAMING) {
        r->framing++;
        queue_event_unlocked(r, CRT_LINE_EVENT_FRAMING, 0, FALSE, 1);
    }
    if (ls & LS_PARITY) {
        r->parity++;
        queue_event_unlocked(r, CRT_LINE_EVENT_PARITY, 0, FALSE, 1);
    }
    if (ls & LS_OVERRUN) {
        r->overruns++;
        queue_event_unlocked(r, CRT_LINE_EVENT_OVERRUN, 0, FALSE, 1);
    }
}

typedef struct {
    Rfc *r;
    guint8 value;
} ControlCall;

/* Loop thread: put a SET-CONTROL on the wire (after queued data). */
static void control_on_loop(gpointer data)
{
    ControlCall *c = data;
    Rfc *r = c->r;

    if (r->t->closed || r->net_end)
        return;
    crt_rfc2217_queue_command(r, CPC_SET_CONTROL, &c->value, 1);
    crt_rfc2217_shuttle(r);
}

static int no_comport(CrtTarget *t, GError **error)
{
    return crt_set_error(error, ENOTTY,
                         "%s: the server refused COM-PORT-OPTION (RFC 2217), so it has "
                         "no modem lines or break here",
                         t->text);
}

/* Send SET-CONTROL `value` and wait for its answer; `what` names it. */
static int control(CrtTarget *t, guint8 value, const char *what, GError **error)
{
    Rfc *r = t->impl;
    ControlCall call = {r, value};
    gint64 deadline = g_get_monotonic_time() + REPLY_TIMEOUT_MS * 1000;
    int rc = 0;

    g_mutex_lock(&r->cmd_lock);
    crt_rfc2217_expect(r, CPC_SET_CONTROL);
    crt_loop_call(t->loop, control_on_loop, &call);
    g_mutex_lock(&r->lock);
    while (!r->answered && !r->gone)
        if (!g_cond_wait_until(&r->cond, &r->lock, deadline))
            break;
    if (r->answered)
        rc = 0;
    else if (r->gone)
        rc = crt_set_error(error, ENOTCONN, "%s: the connection to the server is gone",
                           t->text);
    else
        rc = crt_set_error(error, ETIMEDOUT,
                           "%s: the server did not confirm %s within %d ms (ser2net does "
                           "not answer for a port without modem lines, such as a pty)",
                           t->text, what, REPLY_TIMEOUT_MS);
    r->want = 0;
    g_mutex_unlock(&r->lock);
    g_mutex_unlock(&r->cmd_lock);
    return rc;
}

int crt_rfc2217_lines_get(CrtTarget *t, guint *lines, GError **error)
{
    Rfc *r = t->impl;
    guint v = 0;

    if (!r->comport)
        return no_comport(t, error);
    g_mutex_lock(&r->lock);
    v = r->outputs;
    v |= (r->modem & MS_CTS) ? CRT_LINE_CTS : 0;
    v |= (r->modem & MS_DSR) ? CRT_LINE_DSR : 0;
    v |= (r->modem & MS_DCD) ? CRT_LINE_DCD : 0;
    v |= (r->modem & MS_RI) ? CRT_LINE_RI : 0;
    g_mutex_unlock(&r->lock);
    *lines = v;
    return 0;
}

int crt_rfc2217_lines_set(CrtTarget *t, guint mask, guint values, GError **error)
{
    static const struct {
        CrtLine line;
        guint8 on, off;
        const char *name;
    } outs[] = {
        {CRT_LINE_DTR, CTL_DTR_ON, CTL_DTR_OFF, "DTR"},
        {CRT_LINE_RTS, CTL_RTS_ON, CTL_RTS_OFF, "RTS"},
    };
    Rfc *r = t->impl;

    if (!r->comport)
        return no_comport(t, error);
    for (size_t i = 0; i < G_N_ELEMENTS(outs); i++) {
        gboolean up = (values & outs[i].line) != 0;
        g_autofree char *what = NULL;
        int rc;

        if (!(mask & outs[i].line))
            continue;
        what = g_strdup_printf("%s %s", outs[i].name, up ? "on" : "off");
        rc = control(t, up ? outs[i].on : outs[i].off, what, error);
        if (rc < 0)
            return rc;
        g_mutex_lock(&r->lock);
        r->outputs = up ? r->outputs | outs[i].line : r->outputs & ~(guint)outs[i].line;
        g_mutex_unlock(&r->lock);
    }
    return 0;
}

int crt_rfc2217_send_break(CrtTarget *t, guint ms, GError **error)
{
    Rfc *r = t->impl;
    int rc;

    if (!r->comport)
        return no_comport(t, error);
    rc = control(t, CTL_BREAK_ON, "break on", error);
    if (rc < 0)
        return rc;
    g_usleep((gulong)ms * 1000);
    return control(t, CTL_BREAK_OFF, "break off", error);
}

int crt_rfc2217_watch_lines(CrtTarget *t, GError **error)
{
    Rfc *r = t->impl;

    if (!r->comport)
        return no_comport(t, error);
    crt_line_events_start(&r->events, "crtfs-rfc2217-ev");
    return 0;
}

void crt_rfc2217_unwatch_lines(CrtTarget *t)
{
    Rfc *r = t->impl;

    crt_line_events_stop(&r->events);
}
